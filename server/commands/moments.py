"""Points in time on the command line, as argparse ``type=`` functions.

``stats --since``, ``replay --since/--until`` take a duration back from now
(``30m``, ``12h``, ``7d``, ``2w``) or a UTC date or time (``2025-01-31``,
``2025-01-31T14:00``, or with an offset); ``history prune --older-than`` takes a
duration only. A bad value raises ``argparse.ArgumentTypeError``: argparse
prints it with the option's name and exits 2. Standard library only: the
commands import this module when the CLI starts.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class Duration:
    text: str
    delta: timedelta


@dataclass(frozen=True, slots=True)
class Moment:
    """A moment as given (`text`) and as meant (`at`, aware UTC); `ago`: the
    duration it was given as, None for a date or a time."""

    text: str
    at: datetime
    ago: Duration | None = None


def parse_duration(text: str) -> Duration:
    """``30m``, ``12h``, ``7d`` or ``2w``."""
    match = _DURATION.fullmatch(text.strip().lower())
    problem = f"expected a duration like 30m, 12h, 7d or 2w, got {text!r}"
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(problem)
    try:
        delta = timedelta(**{_UNITS[match[2]]: int(match[1])})
        datetime.now(UTC) - delta  # the start must stay within datetime's range
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} reaches back too far") from None
    return Duration(text=match[0], delta=delta)


def since_type(text: str) -> Moment:
    """From this moment on; a date means from its start (00:00 UTC)."""
    return _moment(text, end_of_day=False)


def until_type(text: str) -> Moment:
    """Before this moment; a date includes that whole day."""
    return _moment(text, end_of_day=True)


def _moment(text: str, *, end_of_day: bool) -> Moment:
    """A duration back from now or an ISO date or time (UTC if naive)."""
    value = text.strip()
    if value[:-1].isdigit() and value[-1:].lower() in ("m", "h", "d", "w"):
        duration = parse_duration(value)
        return Moment(duration.text, datetime.now(UTC) - duration.delta, duration)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        at = datetime.combine(day, time(), tzinfo=UTC)
        return Moment(value, at + timedelta(days=1) if end_of_day else at)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 30m, 12h, 7d or 2w, or a date like 2025-01-31, got {text!r}"
        ) from None
    return Moment(value, (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC))
