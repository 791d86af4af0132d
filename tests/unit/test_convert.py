"""LSP positions <-> text offsets in every negotiated encoding."""

from __future__ import annotations

import pytest

from server.lsp.convert import BadPosition, field, offset_at, position_at

EMOJI = "\N{GRINNING FACE}"  # U+1F600: 2 UTF-16 units, 4 UTF-8 bytes
E_ACUTE = "\N{LATIN SMALL LETTER E WITH ACUTE}"  # 2 UTF-8 bytes, 1 UTF-16 unit
CJK = "\N{CJK UNIFIED IDEOGRAPH-4E2D}"  # 3 UTF-8 bytes, 1 UTF-16 unit


@pytest.mark.parametrize(
    ("text", "line", "character", "encoding", "expected"),
    [
        # ASCII: units are characters in every encoding.
        ("abc\ndef", 0, 2, "utf-16", 2),
        ("abc\ndef", 1, 0, "utf-16", 4),
        ("abc\ndef", 1, 3, "utf-16", 7),
        ("abc\ndef", 1, 1, "utf-8", 5),
        ("abc\ndef", 1, 1, "utf-32", 5),
        # UTF-16: the emoji before the cursor counts 2 units.
        (f"a{EMOJI}b", 0, 1, "utf-16", 1),
        (f"a{EMOJI}b", 0, 3, "utf-16", 2),
        (f"a{EMOJI}b", 0, 4, "utf-16", 3),
        (f"x\n{EMOJI}{EMOJI}=", 1, 4, "utf-16", 4),
        # Inside the surrogate pair: the start of the emoji.
        (f"a{EMOJI}b", 0, 2, "utf-16", 1),
        # UTF-8: bytes.
        (f"{E_ACUTE}t{E_ACUTE}", 0, 2, "utf-8", 1),
        (f"{E_ACUTE}t{E_ACUTE}", 0, 3, "utf-8", 2),
        (f"{CJK}x", 0, 3, "utf-8", 1),
        (f"{CJK}x", 0, 2, "utf-8", 0),  # inside a 3-byte character
        (f"a{EMOJI}b", 0, 5, "utf-8", 2),
        (f"a{EMOJI}b", 0, 3, "utf-8", 1),
        # UTF-32: code points.
        (f"a{EMOJI}b", 0, 2, "utf-32", 2),
        (f"{CJK}{EMOJI}z", 0, 3, "utf-32", 3),
        # UTF-16 with 1-unit non-ASCII characters.
        (f"{E_ACUTE}{CJK}z", 0, 2, "utf-16", 2),
    ],
)
def test_offset_at(text: str, line: int, character: int, encoding: str, expected: int) -> None:
    assert offset_at(text, line, character, encoding) == expected


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("abc\ndef", 0, 3),
        ("abc\ndef", 1, 7),
        ("abc\r\ndef", 0, 3),  # the \r is part of the line end, not the line
        ("abc\r\ndef\r\n", 1, 8),
        (f"a{EMOJI}\nnext", 0, 2),
        ("", 0, 0),
        ("abc\n", 1, 4),  # the empty last line
    ],
)
def test_character_past_the_end_of_the_line_clamps_to_the_line_end(
    text: str, line: int, expected: int, encoding: str
) -> None:
    assert offset_at(text, line, 999, encoding) == expected


@pytest.mark.parametrize(
    ("text", "line", "character", "expected"),
    [
        ("abc\r\ndef", 1, 0, 5),
        ("abc\r\ndef", 1, 2, 7),
        (f"{EMOJI}\r\n{EMOJI}x", 1, 2, 4),
        ("a\r\n\r\nb", 2, 0, 5),
    ],
)
def test_crlf_line_ends(text: str, line: int, character: int, expected: int) -> None:
    assert offset_at(text, line, character) == expected


@pytest.mark.parametrize(
    ("text", "line", "character"),
    [
        ("abc", 1, 0),
        ("abc\n", 2, 0),
        ("", 1, 0),
        ("abc", -1, 0),
        ("abc", 0, -1),
    ],
)
def test_bad_positions_raise(text: str, line: int, character: int) -> None:
    with pytest.raises(BadPosition):
        offset_at(text, line, character)


def test_bad_position_is_a_value_error() -> None:
    assert issubclass(BadPosition, ValueError)


@pytest.mark.parametrize(
    ("text", "offset", "encoding", "expected"),
    [
        ("abc\ndef", 0, "utf-16", (0, 0)),
        ("abc\ndef", 3, "utf-16", (0, 3)),
        ("abc\ndef", 4, "utf-16", (1, 0)),
        ("abc\ndef", 7, "utf-16", (1, 3)),
        (f"a{EMOJI}b", 2, "utf-16", (0, 3)),
        (f"a{EMOJI}b", 2, "utf-8", (0, 5)),
        (f"a{EMOJI}b", 2, "utf-32", (0, 2)),
        (f"{E_ACUTE}\n{CJK}x", 4, "utf-8", (1, 4)),
        ("ab\r\ncd", 5, "utf-16", (1, 1)),
    ],
)
def test_position_at(text: str, offset: int, encoding: str, expected: tuple[int, int]) -> None:
    assert position_at(text, offset, encoding) == expected


ROUND_TRIP_TEXT = f"def f():\r\n    s = '{EMOJI}{E_ACUTE}{CJK}'\r\r\n    return s{EMOJI}\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_position_at_is_the_inverse_of_offset_at(encoding: str) -> None:
    for offset in range(len(ROUND_TRIP_TEXT) + 1):
        if offset and ROUND_TRIP_TEXT[offset - 1 : offset + 1] == "\r\n":
            continue  # between \r and \n is not a position a client can name
        line, character = position_at(ROUND_TRIP_TEXT, offset, encoding)
        assert offset_at(ROUND_TRIP_TEXT, line, character, encoding) == offset


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"completion_id": "a"}, "a"),
        ({"completionId": "b"}, "b"),
        ({}, None),
    ],
)
def test_field_reads_dicts_in_either_case(params: dict[str, str], expected: str | None) -> None:
    assert field(params, "completion_id", "completionId") == expected


def test_field_reads_attributes() -> None:
    class Params:
        completionId = "c"

    assert field(Params(), "completion_id", "completionId") == "c"


@pytest.mark.parametrize(
    ("text", "line", "character", "expected"),
    [
        ("abc\rdef", 1, 1, 5),  # a lone \r ends a line too
        ("a\r\rb", 2, 0, 3),
        ("a\r\n\rb", 2, 1, 5),
        ("a\x0cb\u2028c\nd", 0, 99, 5),  # form feed, U+2028: not line ends in LSP
        ("a\x0cb\u2028c\nd", 1, 0, 6),
    ],
)
def test_only_lf_crlf_and_cr_end_lines(text: str, line: int, character: int, expected: int) -> None:
    assert offset_at(text, line, character) == expected
    assert position_at(text, expected)[0] == line
