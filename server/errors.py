"""Exceptions as one line of a message, for commands and logs alike."""

from __future__ import annotations


def describe(exc: BaseException) -> str:
    """`exc` in one line for a message: ``TypeName: first line of its text``.

    SQLAlchemy wraps the driver's error (``.orig``), and its own text adds the SQL
    and a link on more lines: the driver's error is named instead.
    """
    inner = getattr(exc, "orig", None)
    shown = inner if isinstance(inner, BaseException) else exc
    text = str(shown).strip()
    return f"{type(shown).__name__}: {text.splitlines()[0] if text else '(no detail)'}"
