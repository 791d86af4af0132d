"""Survival of accepted suggestions: range tracking through edits and the judgment."""

from __future__ import annotations

import asyncio

import pytest

from server.completion.outcomes import OutcomeTracker
from server.completion.recorder import NullRecorder, SurvivalEvent
from server.completion.survival import (
    Edit,
    SurvivalTracker,
    judge_near,
    kept_chars,
    nearest,
    shift,
)
from server.lsp.convert import offset_at
from server.lsp.features.documents import OpenTexts

URI = "file:///work/project/calc.py"


class Events(NullRecorder):
    def __init__(self) -> None:
        self.survivals: list[SurvivalEvent] = []

    def survival(self, event: SurvivalEvent) -> None:
        self.survivals.append(event)


class Editor:
    """Documents as a client edits them: incremental changes in UTF-16 positions,
    applied to the text (as pygls does) and then reported to the tracker (as the edge
    does)."""

    def __init__(self, text: str, encoding: str = "utf-16", **kwargs: object) -> None:
        self.texts: dict[str, str] = {URI: text}
        self.encoding = encoding
        self.docs = OpenTexts(self.texts.get, lambda: self.encoding)
        self.events = Events()
        self.tracker = SurvivalTracker(
            kwargs.pop("checkpoints", [30, 120, 600]),  # type: ignore[arg-type]
            recorder=self.events,
            documents=self.docs,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def text(self) -> str:
        return self.texts[URI]

    def at(self, line: int, character: int) -> int:
        return offset_at(self.text, line, character, self.encoding)

    def change(self, start: tuple[int, int], end: tuple[int, int], new: str) -> None:
        text = self.text
        self.texts[URI] = text[: self.at(*start)] + new + text[self.at(*end) :]
        self.tracker.edited(URI, start, end, new)

    def replace_all(self, new: str) -> None:
        self.texts[URI] = new
        self.tracker.rewritten(URI)

    def accept(self, completion_id: str, text: str, line: int, character: int) -> None:
        self.tracker.accepted(
            completion_id=completion_id, uri=URI, text=text, line=line, column=character
        )

    def kept(self, completion_id: str = "c1") -> int | None:
        return self.tracker.kept(completion_id)


async def timers_due_now() -> None:
    """Return once every timer due by now has run (the tracker's 0 s checkpoints): a
    timer due now runs with them, in the same turn of the loop, and wakes us after."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    loop.call_at(loop.time(), done.set_result, None)
    await done


# -- position arithmetic ---------------------------------------------------------------


def edit(start: tuple[int, int], end: tuple[int, int], new_end: tuple[int, int]) -> Edit:
    return Edit(start, end, new_end, inserted=0)


RANGE = ((2, 4), (2, 16))  # e.g. "return a + b" at line 2, column 4


@pytest.mark.parametrize(
    ("name", "e", "growing", "expected"),
    [
        ("typing after it", edit((2, 20), (2, 20), (2, 21)), False, ((2, 4), (2, 16))),
        ("typing at its end", edit((2, 16), (2, 16), (2, 17)), False, ((2, 4), (2, 16))),
        ("awaited text at its end", edit((2, 16), (2, 16), (2, 20)), True, ((2, 4), (2, 20))),
        ("typing at its start", edit((2, 4), (2, 4), (2, 6)), False, ((2, 6), (2, 18))),
        ("typing before it", edit((2, 0), (2, 0), (2, 1)), False, ((2, 5), (2, 17))),
        ("a line above", edit((0, 0), (0, 0), (1, 0)), False, ((3, 4), (3, 16))),
        ("lines joined above", edit((0, 3), (1, 0), (0, 3)), False, ((1, 4), (1, 16))),
        ("newline before it", edit((2, 2), (2, 2), (3, 0)), False, ((3, 2), (3, 14))),
        ("the line above joined", edit((1, 7), (2, 0), (1, 7)), False, ((1, 11), (1, 23))),
        ("insert inside", edit((2, 10), (2, 10), (2, 13)), False, ((2, 4), (2, 19))),
        ("delete inside", edit((2, 10), (2, 12), (2, 10)), False, ((2, 4), (2, 14))),
        ("delete all of it", edit((2, 4), (2, 16), (2, 4)), False, ((2, 4), (2, 4))),
        ("delete it and more", edit((1, 0), (3, 0), (1, 0)), False, ((1, 0), (1, 0))),
        ("replace its tail", edit((2, 10), (2, 20), (2, 11)), False, ((2, 4), (2, 11))),
        ("replace its head", edit((2, 0), (2, 8), (2, 1)), False, ((2, 0), (2, 9))),
        ("newline inside", edit((2, 10), (2, 10), (3, 4)), False, ((2, 4), (3, 10))),
        ("edit below", edit((5, 0), (6, 0), (5, 0)), False, ((2, 4), (2, 16))),
    ],
)
def test_shift(
    name: str,
    e: Edit,
    growing: bool,
    expected: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    start, end, _ = shift(*RANGE, e, growing=growing)
    assert (start, end) == expected, name


def test_a_pending_range_absorbs_the_text_inserted_at_it() -> None:
    start, end, absorbed = shift((2, 4), (2, 4), edit((2, 4), (2, 4), (2, 16)), growing=True)
    assert (start, end, absorbed) == ((2, 4), (2, 16), True)
    # A replacement of the word before the cursor (a plain completion item) too.
    start, end, absorbed = shift((2, 4), (2, 4), edit((2, 1), (2, 4), (2, 19)), growing=True)
    assert (start, end, absorbed) == ((2, 1), (2, 19), True)


# -- judgment -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ("return a + b", 12),  # untouched
        ("", 0),  # deleted
        ("return a - b", 11),  # one character changed
        ("return a", 8),  # the tail deleted
        ("return (a + b) * 2", 12),  # edited around: every accepted character is there
        ("xyz", 0),
    ],
)
def test_kept_chars(current: str, expected: int) -> None:
    assert kept_chars("return a + b", current) == expected


def test_kept_chars_in_a_large_range_counts_only_what_lines_up() -> None:
    noise = "".join(f"value_{i} = compute({i})\n" for i in range(200))
    accepted = "total = sum(values) / len(values)"
    edited = "total = sum(values) / max(len(values), 1)"
    assert kept_chars(accepted, noise + edited + noise) == kept_chars(accepted, edited)
    # Similar code nearby is not the accepted text: only runs that line up count.
    assert kept_chars(accepted, noise) < len(accepted) // 2
    assert kept_chars(accepted, "print('hello')\n" * 100) == 0


def test_nearest_copy_and_search_near() -> None:
    text = "x = 1\n" * 10 + "y = 2\n" + "x = 1\n" * 10
    assert nearest(text, "x = 1", 66) == 66
    assert nearest(text, "x = 1", 58) == 54
    assert nearest(text, "zzz", 10) is None
    assert judge_near("y = 2\n", text, 0) == (6, 60)
    kept, found = judge_near("y = 3\nx = 1", text, 60)
    assert found is None and 6 <= kept < 11


# -- tracking through edits ---------------------------------------------------------------

BEFORE = "def add(a, b):\n    \n"
AFTER = "def add(a, b):\n    return a + b\n"
ACCEPTED = "return a + b"


async def test_untouched_keeps_all() -> None:
    ed = Editor(AFTER)
    ed.accept("c1", ACCEPTED, 1, 4)
    ed.change((1, 16), (1, 16), "\n    # done")  # typing on after it
    assert ed.kept() == 12


async def test_text_inserted_before_keeps_all() -> None:
    ed = Editor(AFTER)
    ed.accept("c1", ACCEPTED, 1, 4)
    ed.change((0, 0), (0, 0), "import math\n\n")
    ed.change((3, 4), (3, 4), "x = 1; ")  # same line, right before it
    ed.change((3, 0), (3, 2), "")  # and an indentation change
    assert ed.text.splitlines()[3] == "  x = 1; return a + b"
    assert ed.kept() == 12


async def test_deleted_entirely_keeps_nothing() -> None:
    ed = Editor(AFTER)
    ed.accept("c1", ACCEPTED, 1, 4)
    ed.change((1, 4), (1, 16), "")
    assert ed.kept() == 0
    ed.change((1, 4), (1, 4), "pass")  # typed where it was: not the suggestion
    assert ed.kept() == 0


async def test_partly_edited_keeps_some() -> None:
    ed = Editor(AFTER)
    ed.accept("c1", ACCEPTED, 1, 4)
    ed.change((1, 13), (1, 14), "-")  # + → -
    ed.change((1, 16), (1, 16), " * 2")  # after it: not counted, not harmful
    assert ed.kept() == 11
    ed.change((1, 10), (1, 16), "")  # "a - b" deleted
    assert ed.kept() == 6


async def test_utf16_surrogate_pairs_before_the_range() -> None:
    # 😀 is two UTF-16 code units: positions after it on its line are off by one per emoji.
    ed = Editor("s = '😀😀'; \n")
    ed.change((0, 12), (0, 12), "total(x)")  # the client inserted the suggestion
    assert ed.text == "s = '😀😀'; total(x)\n"
    ed.accept("c1", "total(x)", 0, 12)
    ed.change((0, 0), (0, 0), "😀")  # before it, on its line
    ed.change((0, 9), (0, 9), "🎉")  # between the emoji
    assert ed.text == "😀s = '😀🎉😀'; total(x)\n"
    assert ed.kept() == 8
    ed.change((0, 22), (0, 23), "y")  # x → y, at UTF-16 column 22
    assert ed.text == "😀s = '😀🎉😀'; total(y)\n"
    assert ed.kept() == 7


async def test_utf8_positions() -> None:
    ed = Editor("é = 1; done\n", encoding="utf-8")
    ed.accept("c1", "done", 0, 8)  # é is two UTF-8 bytes
    ed.change((0, 0), (0, 0), "ü")
    assert ed.kept() == 4
    ed.change((0, 10), (0, 14), "")
    assert ed.kept() == 0


async def test_whole_document_replaced_is_judged_by_search() -> None:
    ed = Editor(AFTER)
    ed.accept("c1", ACCEPTED, 1, 4)
    ed.replace_all('"""Module."""\n\n' + AFTER + "\n\nprint(add(1, 2))\n")
    assert ed.kept() == 12
    ed.change((0, 0), (1, 0), "")  # tracked again from where it was found
    assert ed.kept() == 12
    ed.replace_all("def add(a, b):\n    return a - b\n")
    assert ed.kept() == 9  # outside a tracked range, runs under 3 characters are chance
    ed.replace_all("def add(a, b):\n    pass\n")
    assert ed.kept() == 0


async def test_accepted_before_the_client_sent_the_insertion() -> None:
    ed = Editor(BEFORE)
    ed.accept("c1", ACCEPTED, 1, 4)  # e.g. Neovim: the notification outruns its didChange
    assert ed.kept() == 0
    ed.change((1, 4), (1, 4), ACCEPTED)
    assert ed.kept() == 12
    ed.change((1, 16), (1, 16), "  # sum")  # typing on after it, no longer absorbed
    ed.change((1, 4), (1, 11), "")  # "return " deleted
    assert ed.kept() == 5


async def test_partial_acceptance_grows_step_by_step() -> None:
    ed = Editor(BEFORE)
    ed.change((1, 4), (1, 4), "return ")
    ed.accept("c1", "return ", 1, 4)
    ed.accept("c1", "return a", 1, 4)  # before its didChange
    ed.change((1, 11), (1, 11), "a")
    ed.accept("c1", "return a", 1, 4)  # the same step reported twice
    ed.change((1, 12), (1, 12), " + b")  # the user typing on
    assert ed.kept() == 8
    event_text = ed.tracker._by_id["c1"].text
    assert event_text == "return a"


async def test_checkpoints_record_the_text_kept_at_each() -> None:
    ed = Editor(AFTER, checkpoints=[0, 60])
    ed.accept("c1", ACCEPTED, 1, 4)
    await timers_due_now()
    assert ed.events.survivals == [SurvivalEvent("c1", 0, 12, 12)]
    assert len(ed.tracker) == 1  # awaiting its check at 60 s


async def test_a_closed_document_is_recorded_at_every_checkpoint_ahead() -> None:
    # Each checkpoint's rows cover every acceptance: one whose document was closed
    # within 30 s is among the 10 min checks too, counted there as closed.
    ed = Editor(AFTER)  # 30 s, 2 min, 10 min
    ed.accept("c1", ACCEPTED, 1, 4)
    ed.change((1, 4), (1, 11), "")  # "return " deleted, then closed
    ed.texts.pop(URI)  # pygls drops the document before the close handler runs
    ed.tracker.closed(URI)
    ed.tracker.closed(URI)  # told twice: recorded once
    assert ed.events.survivals == [
        SurvivalEvent("c1", after_s, 12, 5, document_closed=True) for after_s in (30, 120, 600)
    ]
    assert len(ed.tracker) == 0


async def test_after_a_checkpoint_a_close_records_only_those_ahead() -> None:
    ed = Editor(AFTER, checkpoints=[0, 60, 600])
    ed.accept("c1", ACCEPTED, 1, 4)
    await timers_due_now()
    ed.change((1, 4), (1, 11), "")
    ed.tracker.closed(URI)
    assert ed.events.survivals == [
        SurvivalEvent("c1", 0, 12, 12),
        SurvivalEvent("c1", 60, 12, 5, document_closed=True),
        SurvivalEvent("c1", 600, 12, 5, document_closed=True),
    ]


async def test_a_document_gone_unannounced_is_recorded_closed_at_its_checkpoint() -> None:
    ed = Editor(AFTER, checkpoints=[0, 60])
    ed.accept("c1", ACCEPTED, 1, 4)
    ed.texts.pop(URI)  # no close reached the tracker
    await timers_due_now()
    assert ed.events.survivals == [
        SurvivalEvent("c1", 0, 12, 12, document_closed=True),  # judged on its last text
        SurvivalEvent("c1", 60, 12, 12, document_closed=True),
    ]
    assert len(ed.tracker) == 0


def test_negative_checkpoints_are_refused() -> None:
    with pytest.raises(ValueError, match="checkpoints"):
        SurvivalTracker([30, -1], recorder=Events(), documents=Editor(AFTER).docs)


async def test_shutdown_drops_pending_checkpoints() -> None:
    ed = Editor(AFTER, checkpoints=[0])
    ed.accept("c1", ACCEPTED, 1, 4)
    ed.tracker.close()
    await timers_due_now()  # when its check would have run
    assert ed.events.survivals == []
    assert len(ed.tracker) == 0


async def test_tracked_acceptances_are_capped_oldest_first() -> None:
    ed = Editor(AFTER, max_tracked=3)
    for i in range(5):
        ed.accept(f"c{i}", ACCEPTED, 1, 4)
    assert len(ed.tracker) == 3
    assert ed.kept("c0") is None and ed.kept("c4") == 12
    ed.tracker.close()


async def test_outcome_tracker_feeds_survival_only_when_attached() -> None:
    ed = Editor(AFTER)
    outcomes = OutcomeTracker(NullRecorder(), survival=ed.tracker)
    outcomes.produced("c1", URI)
    outcomes.placed("c1", line=1, character=4, text=ACCEPTED + "\n")
    outcomes.accepted("c1", accepted_length=6)
    assert ed.tracker._by_id["c1"].text == "return"
    outcomes.edited(URI, (1, 4), (1, 10), "")
    assert ed.kept("c1") == 0
    outcomes.closed(URI)
    assert [(e.after_s, e.document_closed) for e in ed.events.survivals] == [
        (30, True),
        (120, True),
        (600, True),
    ]

    off = OutcomeTracker(NullRecorder())  # history.survival off: nothing is kept
    off.produced("c2", URI)
    off.placed("c2", line=1, character=4, text=ACCEPTED)
    off.accepted("c2")
    assert off._tracked["c2"].text is None


async def test_new_settings_adopt_the_tracked_acceptances() -> None:
    ed = Editor(AFTER, checkpoints=[0])
    ed.accept("c1", ACCEPTED, 1, 4)
    old = OutcomeTracker(NullRecorder(), survival=ed.tracker)
    events = Events()
    new = OutcomeTracker(
        NullRecorder(), survival=SurvivalTracker([5], recorder=events, documents=ed.docs)
    )
    new.adopt(old)
    assert len(ed.tracker) == 0 and new.survival is not None and len(new.survival) == 1
    await timers_due_now()
    assert ed.events.survivals == []
    assert events.survivals == [SurvivalEvent("c1", 0, 12, 12)]  # its own schedule
