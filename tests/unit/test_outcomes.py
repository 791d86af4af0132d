"""What the outcome tracker tells the history, type-ahead continuations included.

A continuation (the rest of a shown suggestion, answered by the type-ahead as the
user types its start) shares its fate with the suggestion it continues, its root:
the statistics count roots alone, so the root must carry the user's decision.
"""

from __future__ import annotations

import pytest

from server.completion.outcomes import OutcomeTracker
from server.completion.recorder import NullRecorder
from server.completion.types import Outcome

URI = "file:///work/project/calc.py"
ROOT_TEXT = "return a + b"  # 12 characters

SHOWN, ACCEPTED, PARTIAL, REJECTED = (
    Outcome.SHOWN,
    Outcome.ACCEPTED,
    Outcome.PARTIALLY_ACCEPTED,
    Outcome.REJECTED,
)


class Outcomes(NullRecorder):
    """What the tracker tells the history, in order (test_stats_cli.py writes them)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Outcome, int | None]] = []

    def outcome(
        self, *, completion_id: str, outcome: Outcome, accepted_length: int | None = None
    ) -> None:
        self.events.append((completion_id, outcome, accepted_length))

    def of(self, completion_id: str) -> list[tuple[Outcome, int | None]]:
        return [(o, n) for i, o, n in self.events if i == completion_id]


def typed_along(tracker: OutcomeTracker, typed: int) -> list[str]:
    """The root shown, then one continuation per character typed, each shown."""
    tracker.produced("root", URI)
    tracker.shown("root")
    continuations = []
    for n in range(1, typed + 1):
        tracker.produced(f"c{n}", URI, parent_id="root", typed=n)
        tracker.shown(f"c{n}")
        continuations.append(f"c{n}")
    return continuations


def test_typing_5_characters_then_tab_accepts_the_root() -> None:
    recorded = Outcomes()
    tracker = OutcomeTracker(recorded)
    *_, last = typed_along(tracker, 5)

    tracker.accepted(last)

    assert recorded.of("root") == [(SHOWN, None), (ACCEPTED, None)]  # shown once
    assert recorded.of(last) == [(SHOWN, None), (ACCEPTED, None)]
    assert recorded.of("c1") == [(SHOWN, None)]  # an intermediate one is left as it was


@pytest.mark.parametrize(
    ("typed", "accepted", "root_length"),
    [
        (3, 4, 7),  # typed "ret", took "urn " of "urn a + b": "return " of the root
        (1, 0, 1),
        (11, 1, 12),  # the last character by a partial accept: still partial
    ],
)
def test_a_partial_accept_of_a_continuation_takes_the_root_up_to_there(
    typed: int, accepted: int, root_length: int
) -> None:
    recorded = Outcomes()
    tracker = OutcomeTracker(recorded)
    *_, last = typed_along(tracker, typed)

    tracker.accepted(last, accepted_length=accepted)

    assert recorded.of(last)[-1] == (PARTIAL, accepted)
    assert recorded.of("root")[-1] == (PARTIAL, root_length)
    assert ROOT_TEXT[:root_length] == ROOT_TEXT[:typed] + ROOT_TEXT[typed:][:accepted]


def test_a_continuation_passed_over_rejects_the_root() -> None:
    recorded = Outcomes()
    tracker = OutcomeTracker(recorded)
    *_, last = typed_along(tracker, 2)

    tracker.replaced(URI)  # a fresh suggestion replaces the one on screen

    assert recorded.of(last)[-1] == (REJECTED, None)
    assert recorded.of("root")[-1] == (REJECTED, None)


def test_a_root_taken_through_a_continuation_is_not_rejected_later() -> None:
    recorded = Outcomes()
    tracker = OutcomeTracker(recorded)
    first, second = typed_along(tracker, 2)
    tracker.accepted(first, accepted_length=2)  # a word of it

    tracker.replaced(URI)  # second, on screen, is passed over

    assert recorded.of(second)[-1] == (REJECTED, None)
    assert recorded.of("root") == [(SHOWN, None), (PARTIAL, 3)]


def test_a_root_never_reported_shown_is_shown_with_its_continuation() -> None:
    """Typed faster than the client displayed it: only the continuation was drawn."""
    recorded = Outcomes()
    tracker = OutcomeTracker(recorded)
    tracker.produced("root", URI)
    tracker.produced("c1", URI, parent_id="root", typed=1)

    tracker.shown("c1")

    assert recorded.of("root") == [(SHOWN, None)]


def test_a_suggestion_of_its_own_is_decided_alone() -> None:
    recorded = Outcomes()
    tracker = OutcomeTracker(recorded)
    tracker.produced("a", URI)
    tracker.shown("a")
    tracker.replaced(URI)
    tracker.produced("b", URI)
    tracker.shown("b")
    tracker.accepted("b", accepted_length=3)

    assert recorded.events == [
        ("a", SHOWN, None),
        ("a", REJECTED, None),
        ("b", SHOWN, None),
        ("b", PARTIAL, 3),
    ]


def test_the_root_is_decided_even_once_forgotten() -> None:
    """The tracker remembers 2048 suggestions; a continuation keeps its root's id."""
    recorded = Outcomes()
    tracker = OutcomeTracker(recorded)
    typed_along(tracker, 1)
    for n in range(2048):
        tracker.produced(f"other{n}", "file:///elsewhere.py")
    tracker.produced("late", URI, parent_id="root", typed=4)
    tracker.shown("late")

    tracker.accepted("late")

    assert recorded.of("root")[-1] == (ACCEPTED, None)
