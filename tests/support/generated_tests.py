"""The scripted model's answers for "Generate tests" of tests/support/code_actions.py's
`mean`, the same for the editor's code action and the MCP tool: a first answer with one
test that fails in the sandbox (`mean([])` divides by zero), and the repair."""

from __future__ import annotations

FAILING_AND_PASSING = """```python
from stats import mean


def test_mean_of_two():
    assert mean([1, 3]) == 2


def test_mean_of_empty_is_zero():
    assert mean([]) == 0
```"""

REPAIRED = """```python
import pytest

from stats import mean


def test_mean_of_two():
    assert mean([1, 3]) == 2


def test_mean_of_empty_raises():
    with pytest.raises(ZeroDivisionError):
        mean([])
```"""

#: The test file the repair writes: its code, out of the fence.
REPAIRED_FILE = REPAIRED.removeprefix("```python\n").removesuffix("```")
