"""SQL aggregates the history's readers share (``zi-coder stats``, ``zi-coder replay``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func


def sum_where(condition: Any, value: Any) -> Any:
    """The sum of `value` over the rows matching `condition`; 0 when none does."""
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def count_where(condition: Any) -> Any:
    """How many rows match `condition` (0 when none does), in one pass with the others."""
    return sum_where(condition, 1)
