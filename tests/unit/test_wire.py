"""The id of a message that could not be parsed: only the top-level one is ever taken,
since replying to the wrong id would fail another request of the client's."""

from __future__ import annotations

import pytest

from server.lsp.wire import MAX_DEPTH, Problem, check_envelope, content_length, sniff_id


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":7,"method":"x","params":{', 7),
        (b'{"id": -3, "method"', -3),
        (b'{"id":"a\\"b","method":', 'a"b'),
        (b'{"method":"x","params":{"id":5},"id":6,', 6),
        (b'{"method":"x","params":{"id":5},', None),  # only a nested id
        (b'{"method":"x","params":[{"id":5}],', None),
        (b'{"id":1.5,', None),  # not a valid id
        (b'{"id":1e3,', None),
        (b'{"id":true,', None),
        (b'{"id":null,', None),
        (b'["id", 4]', None),
        (b"garbage", None),
        (b"", None),
    ],
)
def test_sniff_id_takes_only_a_valid_top_level_id(body: bytes, expected: object) -> None:
    assert sniff_id(body) == expected


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (b"Content-Length: 12", 12),
        (b"content-length:12", 12),
        (b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 3", 3),
        (b'{"tail":"of a lost body"}Content-Length: 9', 9),  # resynchronised
    ],
)
def test_content_length_is_read_leniently_where_it_is_unambiguous(
    block: bytes, expected: int
) -> None:
    assert content_length(block) == expected


@pytest.mark.parametrize(
    "block",
    [b"Content-Type: x", b"Content-Length: x", b"Content-Length: -1",
     b"Content-Length: 1\r\nContent-Length: 2", b"Content-Length: 99999999999999"],
)  # fmt: skip
def test_content_length_refuses_what_is_ambiguous(block: bytes) -> None:
    assert isinstance(content_length(block), Problem)


def test_envelope_depth_counts_the_message_itself() -> None:
    value: object = 1
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    assert check_envelope({"jsonrpc": "2.0", "id": 1, "method": "x", "params": [value]}) is not None
    assert check_envelope({"jsonrpc": "2.0", "id": 1, "method": "x", "params": value}) is None
