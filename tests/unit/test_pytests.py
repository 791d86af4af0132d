"""Listing, keeping and merging pytest tests, case by case.

Imported as a module: a function named ``test_names`` imported into a test module
would be collected as a test.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from server.actions import pytests


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


MODULE = src(
    '''
    """Tests for calc."""

    import pytest

    from pkg.calc import add


    @pytest.fixture
    def two():
        return 2


    # adds two numbers
    def test_add(two):
        assert add(1, 1) == two


    @pytest.mark.parametrize(
        "a",
        [1, 2],
    )
    def test_param(a):
        assert a


    def helper():
        return 0


    class TestCalc:
        def test_zero(self):
            assert add(0, 0) == helper()

        def test_negative(self):
            assert add(-1, 1) == 0


    async def test_async():
        pass
    '''
)


@pytest.mark.parametrize(
    ("source", "names"),
    [
        (MODULE, ["test_add", "test_param", "test_zero", "test_negative", "test_async"]),
        ("x = 1\n", []),
        ("def helper():\n    pass\n\ndef testing():\n    pass\n", ["testing"]),
        ("class Helper:\n    def test_not_collected(self):\n        pass\n", []),
        (
            "import unittest\n\nclass Calc(unittest.TestCase):\n    def test_a(self):\n"
            "        pass\n",
            ["test_a"],
        ),
        (
            "class TestA:\n    def test_x(self):\n        pass\n\ndef test_x():\n    pass\n",
            ["test_x"],
        ),
        ("def outer():\n    def test_inner():\n        pass\n", []),
    ],
    ids=["module", "no tests", "test prefix", "non-test class", "unittest", "dedup", "nested"],
)
def test_test_names(source: str, names: list[str]) -> None:
    assert pytests.test_names(source) == names


KEEP_CASES = [
    (
        "drop a decorated test and its comment, keep fixtures and helpers",
        ["test_param", "test_zero", "test_negative", "test_async"],
        MODULE.replace(
            "# adds two numbers\ndef test_add(two):\n    assert add(1, 1) == two\n\n\n", ""
        ),
    ),
    (
        "drop a multi-line decorator with its test",
        ["test_add", "test_zero", "test_negative", "test_async"],
        MODULE.replace(
            '@pytest.mark.parametrize(\n    "a",\n    [1, 2],\n)\n'
            "def test_param(a):\n    assert a\n\n\n",
            "",
        ),
    ),
    (
        "drop one method of a test class",
        ["test_add", "test_param", "test_negative", "test_async"],
        MODULE.replace("    def test_zero(self):\n        assert add(0, 0) == helper()\n\n", ""),
    ),
    (
        "drop a class left without tests",
        ["test_add", "test_param", "test_async"],
        MODULE.replace(
            "class TestCalc:\n    def test_zero(self):\n        assert add(0, 0) == helper()\n\n"
            "    def test_negative(self):\n        assert add(-1, 1) == 0\n\n\n",
            "",
        ),
    ),
    (
        "drop the last test without leaving blank lines at the end",
        ["test_add", "test_param", "test_zero", "test_negative"],
        MODULE.replace("\n\nasync def test_async():\n    pass\n", ""),
    ),
    (
        "node ids and parameters name the function",
        [
            "tests/test_calc.py::test_add",
            "test_param[1]",
            "tests/test_calc.py::TestCalc::test_zero",
            "test_negative",
            "test_async",
        ],
        MODULE,
    ),
]


@pytest.mark.parametrize(
    ("names", "expected"),
    [(names, expected) for _, names, expected in KEEP_CASES],
    ids=[case[0] for case in KEEP_CASES],
)
def test_keep_tests(names: list[str], expected: str) -> None:
    kept = pytests.keep_tests(MODULE, names)
    assert kept == expected
    pytests.test_names(kept)  # still parses


@pytest.mark.parametrize(
    ("source", "names", "expected"),
    [
        (
            "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n",
            [],
            "",
        ),
        (
            "import os\n\ndef test_a():\n    pass\n",
            [],
            "import os\n",
        ),
        (
            "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n",
            ["test_b"],
            "def test_b():\n    pass\n",
        ),
        (
            "class TestA:\n\n    def test_a(self):\n        pass\n\n    def test_b(self):\n"
            "        pass\n",
            ["test_b"],
            "class TestA:\n\n    def test_b(self):\n        pass\n",
        ),
        (
            "class TestA:\n    def test_a(self):\n        pass\n\n    def test_b(self):\n"
            "        pass\n",
            ["test_b"],
            "class TestA:\n    def test_b(self):\n        pass\n",
        ),
        (
            "def test_a():\r\n    pass\r\n\r\n\r\ndef test_b():\r\n    pass\r\n",
            ["test_a"],
            "def test_a():\r\n    pass\r\n",
        ),
        (
            "def test_a():\n    s = 'caf\u00e9\u000c'\n\ndef test_b():\n    pass",
            ["test_b"],
            "def test_b():\n    pass\n",
        ),
    ],
    ids=[
        "nothing left",
        "only imports left",
        "first test goes with the blank lines after it",
        "blank line after the class line kept",
        "first method goes with the blank line after it",
        "CRLF",
        "form feed in a string, no final newline",
    ],
)
def test_keep_tests_spacing(source: str, names: list[str], expected: str) -> None:
    assert pytests.keep_tests(source, names) == expected


EXISTING = src(
    '''
    """Tests for calc."""

    import pytest

    from pkg.calc import add


    @pytest.fixture
    def two():
        return 2


    def test_add(two):
        assert add(1, 1) == two
    '''
)

MERGE_CASES = [
    (
        "new tests appended, present imports and identical fixtures skipped",
        src(
            """
            import pytest
            from pkg.calc import add


            @pytest.fixture
            def two():
                return 2


            # big numbers
            def test_add_big(two):
                assert add(10**9, two) > 10**9
            """
        ),
        EXISTING
        + "\n\n"
        + src(
            """
            # big numbers
            def test_add_big(two):
                assert add(10**9, two) > 10**9
            """
        ),
    ),
    (
        "a clashing test is renamed; a new name joins the existing from-import",
        "from pkg.calc import add, sub\n\n\ndef test_add():\n    assert sub(add(1, 1), 1) == 1\n",
        EXISTING.replace("from pkg.calc import add\n", "from pkg.calc import add, sub\n")
        + "\n\ndef test_add_2():\n    assert sub(add(1, 1), 1) == 1\n",
    ),
    (
        "new imports go to the end of the import block",
        "import math\n\nfrom pkg import calc as c\n\n\n"
        "def test_pi():\n    assert c.add(math.pi, 0)\n",
        EXISTING.replace(
            "from pkg.calc import add\n",
            "from pkg.calc import add\nimport math\nfrom pkg import calc as c\n",
        )
        + "\n\ndef test_pi():\n    assert c.add(math.pi, 0)\n",
    ),
    (
        "a different fixture with a taken name is renamed with its uses",
        src(
            """
            import pytest


            @pytest.fixture
            def two():
                return 1 + 1


            def test_two(two):
                assert two == 2
            """
        ),
        EXISTING
        + "\n\n"
        + src(
            """
            @pytest.fixture
            def two_2():
                return 1 + 1


            def test_two(two_2):
                assert two_2 == 2
            """
        ),
    ),
    (
        "an import binding a taken name is imported under another name",
        "from other import two\n\n\ndef test_other():\n    assert two() == 2\n",
        EXISTING.replace(
            "from pkg.calc import add\n",
            "from pkg.calc import add\nfrom other import two as two_2\n",
        )
        + "\n\ndef test_other():\n    assert two_2() == 2\n",
    ),
    (
        "adjacent new statements keep their own spacing and comments",
        "LOW = 1\n# the top\nHIGH = 9\n\n\ndef test_range():\n    assert LOW < HIGH\n",
        EXISTING
        + "\n\nLOW = 1\n# the top\nHIGH = 9\n\n\ndef test_range():\n    assert LOW < HIGH\n",
    ),
    (
        "future imports go before everything",
        "from __future__ import annotations\n\n\ndef test_x() -> None:\n    pass\n",
        EXISTING.replace(
            '"""Tests for calc."""\n\n',
            '"""Tests for calc."""\n\nfrom __future__ import annotations\n',
        )
        + "\n\ndef test_x() -> None:\n    pass\n",
    ),
    (
        "the new module docstring is dropped",
        '"""Generated tests."""\n\n\ndef test_new():\n    pass\n',
        EXISTING + "\n\ndef test_new():\n    pass\n",
    ),
]


@pytest.mark.parametrize(
    ("new", "expected"),
    [(new, expected) for _, new, expected in MERGE_CASES],
    ids=[case[0] for case in MERGE_CASES],
)
def test_merge_tests(new: str, expected: str) -> None:
    assert pytests.merge_tests(EXISTING, new) == expected


@pytest.mark.parametrize(
    ("existing", "new", "expected"),
    [
        (
            "",
            "import os\n\n\ndef test_a():\n    pass\n",
            "import os\n\n\ndef test_a():\n    pass\n",
        ),
        (
            "def test_a():\n    pass\n",
            "import os\n\n\ndef test_b():\n    assert os.sep\n",
            "import os\n\n\ndef test_a():\n    pass\n\n\ndef test_b():\n    assert os.sep\n",
        ),
        (
            '"""Doc."""\n',
            "import os\n\n\ndef test_b():\n    pass\n",
            '"""Doc."""\n\nimport os\n\n\ndef test_b():\n    pass\n',
        ),
        (
            "def test_a():\r\n    pass\r\n",
            "def test_a():\n    assert 1\n",
            "def test_a():\r\n    pass\r\n\r\n\r\ndef test_a_2():\r\n    assert 1\r\n",
        ),
        (
            "def test_a():\n    pass\n\n\ndef test_a_2():\n    pass\n",
            "def test_a():\n    assert 1\n",
            "def test_a():\n    pass\n\n\ndef test_a_2():\n    pass\n\n\ndef test_a_3():\n"
            "    assert 1\n",
        ),
        ("def test_a():\n    pass\n", "def test_a():\n    pass\n", "def test_a():\n    pass\n"),
    ],
    ids=[
        "empty existing file",
        "existing file without imports",
        "docstring only",
        "CRLF existing file",
        "next free suffix",
        "identical test not repeated",
    ],
)
def test_merge_tests_edges(existing: str, new: str, expected: str) -> None:
    assert pytests.merge_tests(existing, new) == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: pytests.test_names("def test_(:\n"),
        lambda: pytests.keep_tests("def test_(:\n", []),
        lambda: pytests.merge_tests("def test_(:\n", "def test_a():\n    pass\n"),
        lambda: pytests.merge_tests("def test_a():\n    pass\n", "def test_(:\n"),
    ],
    ids=["test_names", "keep_tests", "merge into broken file", "merge broken tests"],
)
def test_source_that_does_not_parse_raises_syntax_error(call: Callable[[], object]) -> None:
    with pytest.raises(SyntaxError):
        call()
