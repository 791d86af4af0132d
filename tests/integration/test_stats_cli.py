"""`zi-coder stats` over a real history written by the server's own repository.

The fixture history (figures worked out by hand in each test); "now" is when it
was written, every row but `old` is 1 h old, `old` 10 days:

    completions (suggestions)
    id   language  source        outcome             text  accepted  total ms  first token
    py1  python    model         accepted            6     -         40        10
    py2  python    model         partially_accepted  9     3         20        5
    py3  python    model         rejected            4     -         30        8
    py4  python    model         shown (undecided)   4     -         60        12
    ta   python    model         accepted            12    -         50        15
    rs1  rust      model         rejected            5     -         100       50
    rs2  rust      shared_cache  generated           2     -         0.5       -
    old  python    model         accepted            20    -         1000      200

    type-ahead: `ta` ("return a + b") was shown; the user typed "re" ("turn a + b"
    answered by type-ahead, ta1), then "t" ("urn a + b", ta2), and took ta2 with
    Tab. server.completion.outcomes (run here) records ta1 and ta2 shown, ta2
    accepted, and `ta` accepted: 1 suggestion accepted (its 12 characters), and 2
    requests answered by type-ahead, neither a suggestion nor a cache hit.

    survival checks (characters kept of accepted)
    py1  30 s: 6 of 6, 2 min: 6 of 6, 10 min: 4 of 6
    py2  30 s: 3 of 3, 10 min: document closed (judges nothing)
    old  10 min: 10 of 20

    model calls (model, kind, prompt/output tokens, ms)
    one per model-served suggestion: scripted-coder, completion, 30/5, its total ms,
    but rs1's reported no usage (its stream was stopped early): no tokens
    a failed one: scripted-coder, completion, no tokens, 2000 ms, error
    two cancelled ones (superseded while typing): no tokens, 5 ms and 7 ms
    chat-model, code_action, 200/50, 1500 ms; chat-model, review, 400/80, 3000 ms
    two replays of py1's call (replay true): scripted-coder, completion, 30/5, 35 ms;
    one names py1 as its completion, which must not change py1's figures

    jobs (kind, status, ms): code_action finished 1500, review finished 3000,
    review failed 500, and `old`'s age: review finished 1000

Every test runs on SQLite; `test_the_figures_on_each_database` on PostgreSQL too
(`history_url`, tests/support/postgres.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.cli import main
from server.completion.outcomes import OutcomeTracker
from server.completion.recorder import (
    CompletionEvent,
    JobEvent,
    JobState,
    ModelCallEvent,
    ModelCallKind,
    SurvivalEvent,
)
from server.completion.types import Outcome
from server.history import repository
from server.history.database import create_engine_for, upgrade_to_head
from tests.e2e.conftest import server_env
from tests.unit.test_outcomes import Outcomes

_HOUR, _TEN_DAYS = timedelta(hours=1), timedelta(days=10)
_PARTIAL = Outcome.PARTIALLY_ACCEPTED

# fmt: off
_ROWS: list[tuple[str, str, timedelta, str, Outcome, str, int | None, float, float | None]] = [
    ("py1", "python", _HOUR, "model", Outcome.ACCEPTED, "abcdef", None, 40, 10),
    ("py2", "python", _HOUR, "model", _PARTIAL, "x = 1 + 2", 3, 20, 5),
    ("py3", "python", _HOUR, "model", Outcome.REJECTED, "pass", None, 30, 8),
    ("py4", "python", _HOUR, "model", Outcome.SHOWN, "None", None, 60, 12),
    ("rs1", "rust", _HOUR, "model", Outcome.REJECTED, "Ok(x)", None, 100, 50),
    ("rs2", "rust", _HOUR, "shared_cache", Outcome.GENERATED, "()", None, 0.5, None),
    ("old", "python", _TEN_DAYS, "model", Outcome.ACCEPTED, "x" * 20, None, 1000, 200),
]
# Suggestions whose model call reported no token usage (a stream stopped early).
_NO_USAGE = {"rs1"}
# The type-ahead chain: `ta`, then what was left of it after the user typed its start.
_ROOT = ("ta", "python", _HOUR, "model", "return a + b", 50, 15)
_TYPED = [("ta1", 2), ("ta2", 3)]  # (id, characters typed), in order; ta2 is accepted
# (completion, after_s, accepted, kept, document closed)
_SURVIVAL = [
    ("py1", 30, 6, 6, False), ("py1", 120, 6, 6, False), ("py1", 600, 6, 4, False),
    ("py2", 30, 3, 3, False), ("py2", 600, 3, 0, True),
    ("old", 600, 20, 10, False),
]
# (id, kind, model, tokens, total ms, error, age, completion, replay of)
_CALLS: list[tuple[str, ModelCallKind, str, tuple[int, int] | None, float, str | None,
                   timedelta, str | None, str | None]] = [
    ("failed", ModelCallKind.COMPLETION, "scripted-coder", None, 2000, "timeout: 2 s", _HOUR,
     None, None),
    ("cx1", ModelCallKind.COMPLETION, "scripted-coder", None, 5, "cancelled", _HOUR, None, None),
    ("cx2", ModelCallKind.COMPLETION, "scripted-coder", None, 7, "cancelled", _HOUR, None, None),
    ("act", ModelCallKind.CODE_ACTION, "chat-model", (200, 50), 1500, None, _HOUR, None, None),
    ("rev", ModelCallKind.REVIEW, "chat-model", (400, 80), 3000, None, _HOUR, None, None),
    ("re1", ModelCallKind.COMPLETION, "scripted-coder", (30, 5), 35, None, _HOUR, None,
     "call-py1"),
    ("re2", ModelCallKind.COMPLETION, "scripted-coder", (30, 5), 35, None, _HOUR, "py1",
     "call-py1"),
]
# (id, kind, state, ms, age)
_JOBS = [
    ("j1", "code_action", JobState.FINISHED, 1500.0, _HOUR),
    ("j2", "review", JobState.FINISHED, 3000.0, _HOUR),
    ("j3", "review", JobState.FAILED, 500.0, _HOUR),
    ("j4", "review", JobState.FINISHED, 1000.0, _TEN_DAYS),
]
# fmt: on


def write_history(url: str, *, survival: bool = True) -> datetime:
    """The tables above, through the migrations and the repository the server uses;
    returns the "now" the ages count from."""
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    now = repository.now()
    with Session(engine) as session, session.begin():
        for ident, language, age, source, outcome, text, partial, total, first in _ROWS:
            _completion(session, now - age, ident, language, source, text, total, first)
            _decide(session, now - age, ident, outcome, partial)
            if source == "model":
                tokens = None if ident in _NO_USAGE else (30, 5)
                call = (ident, ModelCallKind.COMPLETION, "scripted-coder", tokens, total)
                _call(session, now - age, *call, None, ident, None, first=first)
        _typeahead_chain(session, now)
        for ident, kind, model, tokens, total, error, age, completion, of in _CALLS:
            _call(session, now - age, ident, kind, model, tokens, total, error, completion, of)
        for ident, job_kind, state, ms, age in _JOBS:
            queued = JobEvent(ident, job_kind, f"server.jobs.{job_kind}", "rq", JobState.QUEUED)
            started = now - age - timedelta(milliseconds=ms)
            repository.record_job(session=session, event=queued, at=started)
            end = replace(queued, state=state, duration_ms=ms)
            repository.record_job(session=session, event=end, at=now - age)
        for completion, after, accepted, kept, closed in _SURVIVAL if survival else ():
            event = SurvivalEvent(completion, after, accepted, kept, document_closed=closed)
            repository.record_survival(session=session, event=event, at=now)
    engine.dispose()
    return now


def _typeahead_chain(session: Session, now: datetime) -> None:
    """`ta` and its continuations, their outcomes as the server's tracker makes them."""
    root, language, age, source, text, total, first = _ROOT
    recorded = Outcomes()
    tracker = OutcomeTracker(recorded)
    _completion(session, now - age, root, language, source, text, total, first)
    _call(session, now - age, root, ModelCallKind.COMPLETION, "scripted-coder", (30, 5), total,
          None, root, None, first=first)  # fmt: skip
    tracker.produced(root, f"file:///{root}")
    tracker.shown(root)
    for ident, typed in _TYPED:
        rest = text[typed:]
        _completion(session, now - age, ident, language, "typeahead", rest, 0.3, None, root)
        tracker.produced(ident, f"file:///{root}", parent_id=root, typed=typed)
        tracker.shown(ident)
    tracker.accepted(_TYPED[-1][0])
    for ident, outcome, length in recorded.events:
        at = now - age
        repository.record_outcome(
            session=session, completion_id=ident, outcome=outcome, accepted_length=length, at=at
        )


def _completion(
    session: Session,
    at: datetime,
    ident: str,
    language: str,
    source: str,
    text: str,
    total: float,
    first: float | None,
    parent: str | None = None,
) -> None:
    event = CompletionEvent(
        id=ident,
        parent_id=parent,
        uri=f"file:///{ident}",
        language=language,
        model="scripted-coder",
        template="qwen",
        mode="single_line",
        source=source,
        text=text,
        prompt_chars=100,
        first_token_ms=first,
        total_ms=total,
    )
    repository.record_completion(session=session, event=event, at=at)


def _decide(
    session: Session, at: datetime, ident: str, outcome: Outcome, partial: int | None
) -> None:
    """As the server does: shown first, then the decision."""
    if outcome is not Outcome.GENERATED:
        repository.record_outcome(
            session=session, completion_id=ident, outcome=Outcome.SHOWN, accepted_length=None, at=at
        )
    if outcome not in (Outcome.GENERATED, Outcome.SHOWN):
        repository.record_outcome(
            session=session, completion_id=ident, outcome=outcome, accepted_length=partial, at=at
        )


def _call(
    session: Session,
    at: datetime,
    ident: str,
    kind: ModelCallKind,
    model: str,
    tokens: tuple[int, int] | None,
    total: float,
    error: str | None,
    completion: str | None,
    replay_of: str | None,
    *,
    first: float | None = None,
) -> None:
    event = ModelCallEvent(
        id=f"call-{ident}",
        kind=kind,
        model=model,
        endpoint="http://127.0.0.1:8000/v1",
        params={"max_tokens": 64},
        prompt="p" * 100,
        response="" if error else "r",
        finish_reason=None if error else "stop",
        prompt_tokens=None if tokens is None else tokens[0],
        completion_tokens=None if tokens is None else tokens[1],
        first_token_ms=first,
        total_ms=total,
        error=error,
        completion_id=completion,
        replay_of=replay_of,
    )
    repository.record_model_call(session=session, event=event, at=at, store_prompts=False)


def _day(at: datetime) -> str:
    return f"{at:%Y-%m-%d}"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ZI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZI_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def history_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, datetime]:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    now = write_history(url)
    monkeypatch.setenv("ZI_DATABASE_URL", url)
    return url, now


@pytest.fixture
def history(history_now: tuple[str, datetime]) -> str:
    return history_now[0]


def stats(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["stats", *args])
    out, err = capsys.readouterr()
    return code, out, err


def squeezed(text: str) -> list[str]:
    """The lines of `text` with runs of spaces as one: table rows, whatever the widths."""
    return [" ".join(line.split()) for line in text.splitlines()]


# -- the figures -------------------------------------------------------------------------


_SUMMARY = [
    "Completions generated: 8, shown: 7",  # suggestions: ta1 and ta2 are not
    "Completions shown: 7, accepted: 3, partially accepted: 1, rejected: 2, undecided: 1",
    "Acceptance rate: 57.1 % (4 of 7 shown)",  # ta taken through ta2
    "Characters accepted: 41",  # 6 + 3 + 12 + 20
    # model latencies 20 30 40 50 60 100 1000; the shared cache's 0.5 ms is left out
    "Latency: median 50 ms, p90 460 ms (7 completions from the model)",  # 100 + 0.4 * 900
    "Time to first token: median 12 ms, p90 110 ms (7 completions)",  # 50 + 0.4 * 150
    # py1 4 of 6, old 10 of 20; py2's check came after its document closed
    "Characters kept after 10 min: 53.8 % (14 of 26 characters, 2 accepted suggestions; "
    "1 not judged, document closed)",
    "Cache hit rate: 12.5 % (1 of 8 without a model call: shared cache 1)",
    "Answered by type-ahead: 2 requests (typing along a shown suggestion; not counted as "
    "suggestions)",
]


def test_all_time_as_text(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = stats(capsys)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:10] == [f"Zi Coder stats: {history} (all time)", *_SUMMARY]
    rows = squeezed(out)
    for row in [
        "By language (accepted: in full or in part)",
        "Language Shown Accepted Rate Chars accepted Kept after 10 min",
        "python 6 4 66.7 % 41 53.8 %",
        "rust 1 0 0.0 % 0 -",
        "scripted-coder 7 4 57.1 % 41 53.8 %",
        "Total 7 50 ms 460 ms 946 ms",  # p99: 100 + 0.94 * 900
        "First token 7 12 ms 110 ms 191 ms",  # 50 + 0.94 * 150
        # 10 calls: 7 of suggestions, the failed one, 2 cancelled; the mean is 3300 ms / 8
        # (the cancelled left out; 412.5 rounds to even), replays left out
        "Kind Model Calls Errors Cancelled Mean",
        "completion scripted-coder 10 1 2 412 ms",
        "code_action chat-model 1 0 0 1,500 ms",
        "review chat-model 1 0 0 3,000 ms",
        "Tokens of the model calls",
        "Kind Model Prompt tokens Output tokens Tokens reported by",
        "completion scripted-coder 180 30 6 of 10 calls",  # not rs1's, nor the failed ones
        "code_action chat-model 200 50 1 of 1 calls",
        "Replays (zi-coder replay; not counted above)",
        "completion scripted-coder 2 0 0 35 ms",
        "completion scripted-coder 60 10 2 of 2 calls",
        "review finished 2 2,000 ms",
        "review failed 1 500 ms",
        "code_action finished 1 1,500 ms",
    ]:
        assert row in rows, f"{row!r} not in\n{out}"
    assert "\x1b[" not in out  # piped: no colour codes


def test_json_has_every_figure(
    history_now: tuple[str, datetime], capsys: pytest.CaptureFixture[str]
) -> None:
    history, now = history_now
    code, out, _ = stats(capsys, "--json")

    assert code == 0
    figures = json.loads(out)
    assert _without_groups(figures) == {
        "database": history,
        "since": None,
        "note": None,
        "generated": 8,
        "shown": 7,
        "accepted": 3,
        "partially_accepted": 1,
        "rejected": 2,
        "undecided": 1,
        "acceptance_rate": 4 / 7,
        "characters_accepted": 41,
        "kept": {
            "checkpoint_s": 600,
            "documents_closed": 1,
            "suggestions": 2,
            "characters": 26,
            "characters_kept": 14,
            "rate": 14 / 26,
        },
        "sources": {"model": 7, "shared_cache": 1},
        "cache_hit_rate": 1 / 8,
        "answered_by_typeahead": 2,
        "latency_ms": {"count": 7, "median": 50.0, "p90": 460.0, "p99": 946.0},
        "first_token_ms": {"count": 7, "median": 12.0, "p90": 110.0, "p99": 191.0},
        "model_calls": [
            _calls("completion", "scripted-coder", 10, 1, 2, 180, 30, 6, 412.5),
            _calls("code_action", "chat-model", 1, 0, 0, 200, 50, 1, 1500.0),
            _calls("review", "chat-model", 1, 0, 0, 400, 80, 1, 3000.0),
        ],
        "replays": [_calls("completion", "scripted-coder", 2, 0, 0, 60, 10, 2, 35.0)],
        "jobs": [
            {"kind": "code_action", "status": "finished", "count": 1, "mean_duration_ms": 1500.0},
            {"kind": "review", "status": "finished", "count": 2, "mean_duration_ms": 2000.0},
            {"kind": "review", "status": "failed", "count": 1, "mean_duration_ms": 500.0},
        ],
    }
    python, rust = figures["languages"]
    assert python == {
        "language": "python",
        "generated": 6,
        "shown": 6,
        "accepted": 3,
        "partially_accepted": 1,
        "rejected": 1,
        "undecided": 1,
        "acceptance_rate": 4 / 6,
        "characters_accepted": 41,
        "kept": {"suggestions": 2, "characters": 26, "characters_kept": 14, "rate": 14 / 26},
    }
    assert (rust["language"], rust["generated"], rust["shown"], rust["rejected"]) == (
        "rust",
        2,
        1,
        1,
    )
    assert rust["kept"] == {"suggestions": 0, "characters": 0, "characters_kept": 0, "rate": None}
    assert [(m["model"], m["generated"], m["acceptance_rate"]) for m in figures["models"]] == [
        ("scripted-coder", 8, 4 / 7)
    ]
    old_day, recent_day = figures["days"]
    assert (old_day["day"], recent_day["day"]) == (_day(now - _TEN_DAYS), _day(now - _HOUR))
    assert (old_day["generated"], old_day["acceptance_rate"], old_day["kept"]["rate"]) == (
        1,
        1.0,
        0.5,
    )
    assert (recent_day["shown"], recent_day["acceptance_rate"], recent_day["kept"]["rate"]) == (
        6,
        0.5,
        4 / 6,
    )


def _without_groups(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in figures.items() if k not in ("languages", "models", "days")}


def _calls(
    kind: str,
    model: str,
    n: int,
    errors: int,
    cancelled: int,
    prompt: int,
    output: int,
    with_tokens: int,
    mean: float,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": model,
        "calls": n,
        "errors": errors,
        "cancelled": cancelled,
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "with_tokens": with_tokens,
        "mean_ms": mean,
    }


_SINCE_7D = [  # the figures without `old`
    "Completions generated: 7, shown: 6",
    "Completions shown: 6, accepted: 2, partially accepted: 1, rejected: 2, undecided: 1",
    "Acceptance rate: 50.0 % (3 of 6 shown)",
    "Characters accepted: 21",  # 6 + 3 + 12
    "Latency: median 45 ms, p90 80 ms (6 completions from the model)",
    "Time to first token: median 11 ms, p90 32 ms (6 completions)",  # 32.5, to even
    "Characters kept after 10 min: 66.7 % (4 of 6 characters, 1 accepted suggestions; "
    "1 not judged, document closed)",
    "Cache hit rate: 14.3 % (1 of 7 without a model call: shared cache 1)",
    "Answered by type-ahead: 2 requests (typing along a shown suggestion; not counted as "
    "suggestions)",
]


def test_since_leaves_older_rows_out(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = stats(capsys, "--since", "7d")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"Zi Coder stats: {history} (last 7d, since ")
    assert lines[0].endswith(" UTC)")
    assert lines[1:10] == _SINCE_7D

    code, out, _ = stats(capsys, "--since", "7d", "--json")
    figures = json.loads(out)
    # model latencies 20 30 40 50 60 100, first tokens 5 8 10 12 15 50 (p99: 15 + 0.95
    # * 35, 48.25 and a hair in floating point)
    assert figures["first_token_ms"] == {"count": 6, "median": 11.0, "p90": 32.5, "p99": 48.3}
    assert figures["latency_ms"] == {"count": 6, "median": 45.0, "p90": 80.0, "p99": 98.0}
    # old's call left out: 9 calls, 5 of them with tokens; 2300 ms / 7 not cancelled
    assert figures["model_calls"][0] == _calls(
        "completion", "scripted-coder", 9, 1, 2, 150, 25, 5, 328.6
    )
    assert [(j["kind"], j["status"], j["count"]) for j in figures["jobs"]] == [
        ("code_action", "finished", 1),
        ("review", "failed", 1),
        ("review", "finished", 1),
    ]
    assert len(figures["days"]) == 1

    _, recent, _ = stats(capsys, "--since", "30m")
    assert "Completions generated: 0, shown: 0" in recent.splitlines()
    assert "Acceptance rate: - (0 of 0 shown)" in recent.splitlines()
    assert "Characters kept after 10 min: - (0 of 0 characters, 0 accepted suggestions)" in (
        recent.splitlines()
    )


def test_replays_are_never_live_traffic(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A replay named py1 as its completion; py1 and the live calls do not change."""
    _, out, _ = stats(capsys, "--json")
    figures = json.loads(out)

    # 7 of suggestions + failed + 2 cancelled + act + rev
    assert sum(c["calls"] for c in figures["model_calls"]) == 12
    assert sum(c["calls"] for c in figures["replays"]) == 2
    assert (figures["generated"], figures["accepted"]) == (8, 3)
    assert figures["sources"]["model"] == 7


def test_the_figures_on_each_database(
    history_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_history(history_url)
    monkeypatch.setenv("ZI_DATABASE_URL", history_url)

    code, out, err = stats(capsys, "--json")
    assert (code, err) == (0, "")
    figures = json.loads(out)
    assert (figures["generated"], figures["shown"], figures["acceptance_rate"]) == (8, 7, 4 / 7)
    assert figures["answered_by_typeahead"] == 2
    assert figures["latency_ms"] == {"count": 7, "median": 50.0, "p90": 460.0, "p99": 946.0}
    assert figures["first_token_ms"]["p99"] == 191.0
    assert figures["kept"]["rate"] == 14 / 26
    assert [d["generated"] for d in figures["days"]] == [1, 7]
    calls = figures["model_calls"][0]
    assert (calls["calls"], calls["errors"], calls["cancelled"], calls["with_tokens"]) == (
        10,
        1,
        2,
        6,
    )
    assert calls["mean_ms"] == 412.5
    assert figures["replays"][0]["calls"] == 2
    assert len(figures["jobs"]) == 3

    code, out, _ = stats(capsys, "--since", "7d")
    assert out.splitlines()[1:10] == _SINCE_7D


def test_the_same_figures_with_the_indexes_the_bench_proposes(
    history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Percentiles then walk an index (LIMIT/OFFSET) instead of a window query."""
    from bench.history_stats import PROPOSED_INDEXES

    _, before, _ = stats(capsys, "--json")
    _, before_since, _ = stats(capsys, "--json", "--since", "7d")
    with sqlite3.connect(tmp_path / "history.sqlite3") as connection:
        for statement in PROPOSED_INDEXES.values():
            connection.execute(statement)
    connection.close()

    _, after, _ = stats(capsys, "--json")
    _, after_since, _ = stats(capsys, "--json", "--since", "7d")
    assert json.loads(after) == json.loads(before)
    assert {**json.loads(after_since), "since": None} == {**json.loads(before_since), "since": None}
    assert json.loads(after)["first_token_ms"]["p99"] == 191.0


def test_the_largest_checkpoint_when_none_is_at_10_minutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    write_history(url, survival=False)
    engine = create_engine_for(url)
    with Session(engine) as session, session.begin():
        for after, kept in ((30, 6), (120, 3)):
            event = SurvivalEvent("py1", after, 6, kept)
            repository.record_survival(session=session, event=event, at=repository.now())
    engine.dispose()
    monkeypatch.setenv("ZI_DATABASE_URL", url)

    _, out, _ = stats(capsys)
    assert "Characters kept after 2 min: 50.0 % (3 of 6 characters, 1 accepted suggestions)" in (
        out.splitlines()
    )
    assert "python 6 4 66.7 % 41 50.0 %" in squeezed(out)
    _, out, _ = stats(capsys, "--json")
    assert json.loads(out)["kept"]["checkpoint_s"] == 120


def test_a_checkpoint_with_closed_documents_only_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """py2's document closed 20 s after its acceptance: it got its checks at 30 s, 2 min
    and 10 min at once. py1 (still open) has been judged at 30 s only, so far."""
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    write_history(url, survival=False)
    engine = create_engine_for(url)
    with Session(engine) as session, session.begin():
        events = [SurvivalEvent("py2", after, 3, 0, document_closed=True) for after in _CHECKS]
        for event in [*events, SurvivalEvent("py1", 30, 6, 6)]:
            repository.record_survival(session=session, event=event, at=repository.now())
    engine.dispose()
    monkeypatch.setenv("ZI_DATABASE_URL", url)

    _, out, _ = stats(capsys)
    assert (
        "Characters kept after 30 s: 100.0 % (6 of 6 characters, 1 accepted suggestions; "
        "1 not judged, document closed)"
    ) in out.splitlines()
    _, out, _ = stats(capsys, "--json")
    assert json.loads(out)["kept"]["checkpoint_s"] == 30


_CHECKS = (30, 120, 600)


def test_since_a_date_or_a_time(
    history_now: tuple[str, datetime], capsys: pytest.CaptureFixture[str]
) -> None:
    """As `zi-coder replay --since`: a UTC date (from its start) or time, not only a duration."""
    _, now = history_now
    for since, period in [
        (f"{now - timedelta(days=5):%Y-%m-%d}", f"{now - timedelta(days=5):%Y-%m-%d} 00:00"),
        (f"{now - 2 * _HOUR:%Y-%m-%dT%H:%M}", f"{now - 2 * _HOUR:%Y-%m-%d %H:%M}"),
    ]:
        code, out, err = stats(capsys, "--since", since)

        assert (code, err) == (0, "")
        assert out.splitlines()[0].endswith(f"(since {period} UTC)"), out
        assert out.splitlines()[1:10] == _SINCE_7D  # all but `old`

    _, out, _ = stats(capsys, "--since", f"{now + _HOUR:%Y-%m-%dT%H:%M}")
    assert "Completions generated: 0, shown: 0" in out.splitlines()


def test_a_row_written_by_a_server_of_migration_0001_counts_on_its_day(
    history_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older server still writing to the upgraded history (another editor window, a
    team mid-upgrade) inserts the columns 0001 had, without `created_day`: the database
    gives it today's UTC date, the day the statistics group it by."""
    engine = create_engine_for(history_url)
    upgrade_to_head(engine)
    before = f"{datetime.now(UTC):%Y-%m-%d}"
    with engine.begin() as connection:  # the insert of 0001's repository
        connection.execute(
            sa.text(
                "INSERT INTO completions (id, created_at, uri, language, model, template,"
                " mode, source, text_length, prompt_chars, first_token_ms, total_ms, outcome)"
                " VALUES ('a', :at, 'file:///a', 'go', 'm', 'qwen', 'single_line', 'model',"
                " 3, 10, 5.0, 25.0, 'generated')"
            ),
            {"at": datetime.now(UTC)},
        )
    engine.dispose()
    after = f"{datetime.now(UTC):%Y-%m-%d}"
    monkeypatch.setenv("ZI_DATABASE_URL", history_url)

    code, out, err = stats(capsys, "--json")

    assert (code, err) == (0, "")
    (day,) = json.loads(out)["days"]
    assert day["day"] in (before, after)  # the same unless run across midnight UTC
    assert (day["generated"], day["shown"]) == (1, 0)


def test_a_cancelled_call_is_stored_cancelled_not_failed(history: str) -> None:
    engine = create_engine_for(history)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, failed, cancelled FROM model_calls WHERE error IS NOT NULL")
        )
        flags = {ident: (bool(failed), bool(cancelled)) for ident, failed, cancelled in rows}
    engine.dispose()
    assert flags == {
        "call-failed": (True, False),
        "call-cx1": (False, True),
        "call-cx2": (False, True),
    }


# -- empty and odd databases ----------------------------------------------------------------


def test_an_empty_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    engine.dispose()
    monkeypatch.setenv("ZI_DATABASE_URL", url)

    code, out, err = stats(capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"Zi Coder stats: {url} (all time)",
        "Completions generated: 0, shown: 0",
        "Completions shown: 0, accepted: 0, partially accepted: 0, rejected: 0, undecided: 0",
        "Acceptance rate: - (0 of 0 shown)",
        "Characters accepted: 0",
        "Latency: - (0 completions from the model)",
        "Time to first token: - (0 completions)",
        "Characters kept: - (no survival checks recorded)",
        "Cache hit rate: - (0 of 0 without a model call)",
        "Answered by type-ahead: 0 requests (typing along a shown suggestion; not counted as "
        "suggestions)",
        "By language: none",
    ]
    code, out, _ = stats(capsys, "--json")
    figures = json.loads(out)
    assert figures["note"] is None
    assert figures["latency_ms"] == {"count": 0, "median": None, "p90": None, "p99": None}
    assert figures["kept"]["checkpoint_s"] is None
    for key in ("languages", "models", "days", "model_calls", "replays", "jobs"):
        assert figures[key] == []


def test_a_history_of_an_older_zi_coder_has_completions_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Migration 0001 made only `completions`: the other figures are empty, not errors."""
    from alembic import command
    from alembic.config import Config

    from server.history.database import migrations_dir

    path = tmp_path / "old.sqlite3"
    engine = create_engine_for(f"sqlite:///{path}")
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(
            "INSERT INTO completions (id, created_at, uri, language, model, template, mode,"
            " source, text_length, prompt_chars, first_token_ms, total_ms, outcome, shown_at)"
            " VALUES ('a', '2026-01-02 03:04:05.000000', 'file:///a', 'go', 'm', 'qwen',"
            " 'single_line', 'model', 3, 10, 5.0, 25.0, 'accepted', '2026-01-02 03:04:05.1')"
        )
    engine.dispose()
    monkeypatch.setenv("ZI_DATABASE_URL", f"sqlite:///{path}")

    code, out, err = stats(capsys, "--json")
    assert (code, err) == (0, "")
    figures = json.loads(out)
    assert (figures["accepted"], figures["latency_ms"]["median"]) == (1, 25.0)
    assert [d["day"] for d in figures["days"]] == ["2026-01-02"]
    assert (figures["model_calls"], figures["jobs"], figures["kept"]["checkpoint_s"]) == (
        [],
        [],
        None,
    )


def test_reading_leaves_the_database_as_it_was(
    history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "history.sqlite3"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    assert stats(capsys)[0] == 0
    assert stats(capsys, "--json", "--html", str(tmp_path / "r.html"))[0] == 0
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_it_reads_while_the_server_is_writing(
    history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_engine_for(history)
    try:
        with Session(engine) as session, session.begin():  # a write held open (WAL)
            _completion(session, repository.now(), "new", "go", "model", "nil", 2.0, 1.0)
            session.flush()

            code, out, err = stats(capsys)

            assert (code, err) == (0, "")
            assert "Completions generated: 8, shown: 7" in out.splitlines()  # not "new" yet
        assert "Completions generated: 9, shown: 7" in stats(capsys)[1].splitlines()
    finally:
        engine.dispose()


def test_a_missing_database_is_an_empty_report_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'absent.sqlite3'}"
    monkeypatch.setenv("ZI_DATABASE_URL", url)

    code, out, err = stats(capsys)

    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == [
        f"Zi Coder stats: {url} (all time)",
        f"Note: no history yet at {url}",
    ]
    assert "Acceptance rate: - (0 of 0 shown)" in out.splitlines()
    assert not (tmp_path / "absent.sqlite3").exists()  # reading must not create it

    code, out, _ = stats(capsys, "--json")
    assert code == 0
    assert json.loads(out)["note"] == f"no history yet at {url}"


def test_a_database_without_the_table_is_no_history_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE unrelated (x INTEGER)")
    connection.close()
    monkeypatch.setenv("ZI_DATABASE_URL", f"sqlite:///{path}")

    code, out, _ = stats(capsys)

    assert code == 0
    assert out.splitlines()[1] == f"Note: no history yet at sqlite:///{path}"
    with sqlite3.connect(path) as connection:  # and it was not migrated
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert tables == {"unrelated"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "ArgumentError"),
        ("nosuchdb://host/db", "NoSuchModuleError"),
        ("postgresql://zi:s3cret@127.0.0.1:9/zi", "postgresql://zi:***@127.0.0.1:9/zi"),
        ("sqlite:///{tmp}/garbage.sqlite3", "file is not a database"),
    ],
)
def test_a_database_it_cannot_open_is_one_line_and_exit_1(
    url: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "garbage.sqlite3").write_bytes(b"not sqlite at all, " * 100)
    monkeypatch.setenv("ZI_DATABASE_URL", url.format(tmp=tmp_path))

    code, out, err = stats(capsys)

    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1, err
    assert err.startswith("zi-coder: stats: cannot read the history database ")
    assert expected in err
    assert "s3cret" not in err


def test_a_bad_since_is_a_usage_error(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("7", "d7", "-1d", "0h", "1y", "99999999w"):
        with pytest.raises(SystemExit) as exit_:
            main(["stats", f"--since={bad}"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "argument --since:" in err and repr(bad) in err, err


def test_the_installed_command_in_a_subprocess(history: str, tmp_path: Path) -> None:
    zi_coder = Path(sys.executable).with_name("zi-coder")
    result = subprocess.run(
        [str(zi_coder), "stats", "--since", "7d"],
        env=server_env(ZI_DATABASE_URL=history, ZI_STATE_DIR=str(tmp_path / "state")),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Acceptance rate: 50.0 % (3 of 6 shown)" in result.stdout.splitlines()
    assert "\x1b[" not in result.stdout  # piped: rich writes no colour codes

    broken = subprocess.run(
        [str(zi_coder), "stats"],
        env=server_env(ZI_DATABASE_URL="nosuchdb://host/db"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode == 1
    assert broken.stdout == ""
    assert len(broken.stderr.splitlines()) == 1 and "Traceback" not in broken.stderr
