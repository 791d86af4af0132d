"""Write test sources with the cursor as a `|` marker."""

from __future__ import annotations


def split_cursor(source: str) -> tuple[str, int]:
    """The text without the single `|` marker, and the marker's offset."""
    assert source.count("|") == 1, f"exactly one cursor marker expected in {source!r}"
    offset = source.index("|")
    return source[:offset] + source[offset + 1 :], offset
