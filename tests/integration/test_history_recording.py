"""Model calls, jobs and survival through the real writer into a real database.

What is stored depends on ``history.store_prompts``: off, only lengths; on, the
texts, redacted. Endpoints and errors never keep credentials. Job rows are upserted
whatever order their events arrive in, and model calls and survival checks are
idempotent. Every row keeps the time its event happened, however late it is
written. Each test runs on SQLite and on PostgreSQL (``history_url``), the two
dialects the upserts are written for.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

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
from server.history.database import create_engine_for
from server.history.models import (
    CompletionRecord,
    JobRecord,
    ModelCallRecord,
    SurvivalRecord,
    utc_day,
)
from server.history.writer import HistoryWriter

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PROMPT = f'<|fim_prefix|>import boto3\nKEY = "{AWS_KEY}"\nclient = <|fim_suffix|><|fim_middle|>'
RESPONSE = "boto3.client('s3')"


def _completion(cid: str = "c1", **fields: Any) -> CompletionEvent:
    values: dict[str, Any] = {
        "id": cid,
        "parent_id": None,
        "uri": "file:///a.py",
        "language": "python",
        "model": "m",
        "template": "qwen",
        "mode": "single_line",
        "source": "model",
        "text": RESPONSE,
        "prompt_chars": len(PROMPT),
        "first_token_ms": 5.0,
        "total_ms": 9.0,
        "prompt": PROMPT,
    }
    values.update(fields)
    return CompletionEvent(**values)


def _call(call_id: str = "k1", **fields: Any) -> ModelCallEvent:
    values: dict[str, Any] = {
        "id": call_id,
        "kind": ModelCallKind.COMPLETION,
        "model": "m",
        "endpoint": "http://127.0.0.1:8000/v1/completions",
        "params": {"max_tokens": 64, "temperature": 0.2, "stop": ["\n"], "api_key": "sk-x"},
        "prompt": PROMPT,
        "response": RESPONSE,
        "finish_reason": "stop",
        "prompt_tokens": 30,
        "completion_tokens": 6,
        "first_token_ms": 12.5,
        "total_ms": 40.0,
        "language": "python",
        "template": "qwen",
        "completion_id": "c1",
    }
    values.update(fields)
    return ModelCallEvent(**values)


def _job(state: JobState, **fields: Any) -> JobEvent:
    values: dict[str, Any] = {
        "id": "zi-job1",
        "kind": "code_action",
        "function": "server.actions.jobs.fix_problem",
        "runner": "in-process",
        "state": state,
        "uri": "file:///a.py",
        "language": "python",
    }
    values.update(fields)
    return JobEvent(**values)


@pytest.fixture
def writer(history_url: str) -> Iterator[HistoryWriter]:
    writer = HistoryWriter(history_url)
    writer.start()
    yield writer
    writer.close()


def _rows(url: str, model: type[Any]) -> list[Any]:
    engine = create_engine_for(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            return list(session.scalars(select(model)).all())
    finally:
        engine.dispose()


def test_without_store_prompts_only_lengths_are_stored(history_url: str) -> None:
    writer = HistoryWriter(history_url, store_prompts=False)
    writer.start()
    writer.completion_generated(_completion())
    writer.model_call(_call())
    assert writer.flush(30)
    writer.close()
    [call] = _rows(history_url, ModelCallRecord)
    assert (call.prompt, call.response) == (None, None)
    assert (call.prompt_chars, call.response_chars) == (len(PROMPT), len(RESPONSE))
    assert (call.prompt_tokens, call.completion_tokens, call.finish_reason) == (30, 6, "stop")
    assert (call.completion_id, call.kind, call.replay) == ("c1", "completion", False)
    params = json.loads(call.params)
    assert params == {"max_tokens": 64, "temperature": 0.2, "stop": ["\n"]}  # no api_key
    [completion] = _rows(history_url, CompletionRecord)
    assert (completion.text, completion.prompt) == (None, None)
    assert completion.text_length == len(RESPONSE)


def test_with_store_prompts_texts_are_stored_redacted(history_url: str) -> None:
    writer = HistoryWriter(history_url, store_prompts=True)
    writer.start()
    writer.completion_generated(_completion())
    writer.model_call(_call())
    messages = [{"role": "user", "content": f"fix this:\nAWS_ACCESS_KEY_ID={AWS_KEY}\n"}]
    writer.model_call(
        _call(
            "k2",
            kind=ModelCallKind.CODE_ACTION,
            prompt=json.dumps(messages),
            response=f"use {AWS_KEY} here",
            completion_id=None,
            job_id="zi-job1",
        )
    )
    assert writer.flush(30)
    writer.close()
    calls = {c.id: c for c in _rows(history_url, ModelCallRecord)}
    [completion] = _rows(history_url, CompletionRecord)
    stored = [
        calls["k1"].prompt,
        calls["k1"].response,
        calls["k2"].prompt,
        calls["k2"].response,
        completion.prompt,
        completion.text,
    ]
    assert all(text is not None for text in stored)
    assert not any(AWS_KEY in text for text in stored)
    assert "import boto3" in calls["k1"].prompt  # the rest of the prompt is kept
    assert calls["k1"].response == RESPONSE
    assert completion.text == RESPONSE
    # A chat prompt stays a JSON list of messages (replays read it back).
    assert json.loads(calls["k2"].prompt)[0]["content"].startswith("fix this:")
    assert calls["k1"].prompt_chars == len(PROMPT)  # the length of what was sent


def test_a_settings_change_applies_to_events_recorded_after_it(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    writer = HistoryWriter(url, store_prompts=False, handover_s=60)
    writer.start()

    async def session() -> None:  # on a loop, where events are buffered
        writer.model_call(_call("before"))
        writer.set_store_prompts(True)
        writer.model_call(_call("after"))
        writer.set_store_prompts(True)  # unchanged: nothing happens
        await asyncio.to_thread(writer.flush, 30)

    asyncio.run(session())
    writer.close()
    calls = {c.id: c for c in _rows(url, ModelCallRecord)}
    assert calls["before"].prompt is None
    assert calls["after"].prompt is not None and AWS_KEY not in calls["after"].prompt


@pytest.mark.parametrize(
    "order",
    [
        ["queued", "finished"],
        ["finished", "queued"],  # the end arrives first: the row is still right
        ["queued", "finished", "queued"],
    ],
)
@pytest.mark.parametrize("same_batch", [True, False])
def test_job_rows_are_order_proof(
    writer: HistoryWriter, order: list[str], same_batch: bool
) -> None:
    events = {
        "queued": _job(JobState.QUEUED),
        "finished": _job(JobState.FINISHED, duration_ms=1500.0),
    }
    for name in order:
        writer.job(events[name])
        if not same_batch:
            assert writer.flush(30)
    assert writer.flush(30)
    [job] = _rows(writer.database_url, JobRecord)
    assert (job.status, job.duration_ms, job.error) == ("finished", 1500.0, None)
    assert (job.kind, job.runner, job.uri, job.language) == (
        "code_action",
        "in-process",
        "file:///a.py",
        "python",
    )
    assert job.finished_at is not None and job.created_at <= job.finished_at


def test_a_job_end_updates_status_times_and_error_once(writer: HistoryWriter) -> None:
    writer.job(_job(JobState.QUEUED, uri=None))
    writer.job(_job(JobState.FAILED, duration_ms=80.0, error="ModelHTTPError: HTTP 500"))
    assert writer.flush(30)
    [job] = _rows(writer.database_url, JobRecord)
    assert (job.status, job.duration_ms, job.error) == ("failed", 80.0, "ModelHTTPError: HTTP 500")
    assert job.uri == "file:///a.py"  # known from the end event
    # A rerun of the same job (same id) that succeeds replaces the failure; the
    # same end again (a result reused by an identical request) changes nothing.
    writer.job(_job(JobState.FINISHED, duration_ms=900.0))
    writer.job(_job(JobState.FINISHED, duration_ms=3.0))
    assert writer.flush(30)
    [job] = _rows(writer.database_url, JobRecord)
    assert (job.status, job.duration_ms, job.error) == ("finished", 900.0, None)


def test_model_calls_and_survival_are_idempotent(writer: HistoryWriter) -> None:
    writer.completion_generated(_completion())
    writer.model_call(_call(job_id="zi-job1", completion_id=None))
    writer.model_call(_call(job_id="zi-job1", completion_id=None))  # the same result twice
    writer.model_call(_call("k2", error="timeout: ReadTimeout"))
    writer.survival(SurvivalEvent("c1", after_s=30, accepted_chars=18, kept_chars=18))
    writer.survival(SurvivalEvent("c1", after_s=30, accepted_chars=18, kept_chars=12))
    writer.survival(SurvivalEvent("c1", after_s=120, accepted_chars=18, kept_chars=0))
    assert writer.flush(30)
    calls = {c.id: c.failed for c in _rows(writer.database_url, ModelCallRecord)}
    assert calls == {"k1": False, "k2": True}  # `failed`: what the statistics count
    survival = {s.after_s: s for s in _rows(writer.database_url, SurvivalRecord)}
    assert (survival[30].kept_chars, survival[120].kept_chars) == (12, 0)
    # Each check carries its completion's time, day, language and model (the
    # statistics read them without a join).
    [completion] = _rows(writer.database_url, CompletionRecord)
    assert completion.created_day == utc_day(completion.created_at)
    for check in survival.values():
        copied = (check.completion_created_at, check.created_day, check.language, check.model)
        assert copied == (
            completion.created_at,
            completion.created_day,
            completion.language,
            completion.model,
        )


def test_one_bad_event_costs_only_itself(writer: HistoryWriter) -> None:
    # In one batch with good events: a survival check of a completion this database
    # never saw (skipped) and a call the database refuses (no model: dropped alone).
    writer.survival(SurvivalEvent("unknown", after_s=30, accepted_chars=5, kept_chars=5))
    writer.model_call(_call())
    writer.model_call(_call("bad", model=None))
    writer.job(_job(JobState.QUEUED))
    assert writer.flush(30)
    assert [(c.id, c.failed) for c in _rows(writer.database_url, ModelCallRecord)] == [
        ("k1", False)
    ]
    assert len(_rows(writer.database_url, JobRecord)) == 1
    assert _rows(writer.database_url, SurvivalRecord) == []


def test_replays_use_the_same_function(history_url: str) -> None:
    engine = create_engine_for(history_url)
    from server.history.database import upgrade_to_head

    upgrade_to_head(engine)
    replay = _call("r1", replay_of="k1", completion_id=None)
    with Session(engine) as session, session.begin():
        repository.record_model_call(
            session=session, event=replay, at=repository.now(), store_prompts=True
        )
    engine.dispose()
    [row] = _rows(history_url, ModelCallRecord)
    assert (row.replay, row.replay_of) == (True, "k1")
    assert row.prompt is not None and AWS_KEY not in row.prompt


def _utc(at: datetime) -> datetime:
    """`at` as aware UTC (SQLite hands back naive UTC, PostgreSQL aware)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def test_rows_keep_the_time_their_event_happened_not_when_it_was_written(
    writer: HistoryWriter,
) -> None:
    # A writer behind by an hour (an outage, say): each event's own time is stored.
    made = datetime.now(UTC) - timedelta(hours=1)
    second = timedelta(seconds=1)
    writer.completion_generated(_completion(at=made))
    writer.model_call(_call(at=made + second))
    writer.job(_job(JobState.QUEUED, at=made))
    writer.job(_job(JobState.FINISHED, duration_ms=2000.0, at=made + 2 * second))
    writer.survival(SurvivalEvent("c1", 30, 18, 18, at=made + 30 * second))
    assert writer.flush(30)
    [completion] = _rows(writer.database_url, CompletionRecord)
    [call] = _rows(writer.database_url, ModelCallRecord)
    [job] = _rows(writer.database_url, JobRecord)
    [check] = _rows(writer.database_url, SurvivalRecord)
    assert _utc(completion.created_at) == made
    assert completion.created_day == utc_day(made)
    assert _utc(call.created_at) == made + second
    assert (_utc(job.created_at), _utc(job.finished_at)) == (made, made + 2 * second)
    assert _utc(check.checked_at) == made + 30 * second


def test_an_outcome_keeps_the_time_it_was_reported(history_url: str) -> None:
    writer = HistoryWriter(history_url, handover_s=60)  # held on the loop until flushed
    writer.start()
    writer.completion_generated(_completion())
    assert writer.flush(30)
    times: dict[str, datetime] = {}

    async def session() -> None:
        times["before"] = datetime.now(UTC)
        writer.outcome(completion_id="c1", outcome=Outcome.SHOWN)
        writer.outcome(completion_id="c1", outcome=Outcome.ACCEPTED)
        times["after"] = datetime.now(UTC)
        await asyncio.sleep(0.05)  # written later, at flush: the rows must not say so
        await asyncio.to_thread(writer.flush, 30)

    asyncio.run(session())
    writer.close()
    [completion] = _rows(history_url, CompletionRecord)
    assert completion.outcome == "accepted"
    assert times["before"] <= _utc(completion.shown_at) <= _utc(completion.decided_at)
    assert _utc(completion.decided_at) <= times["after"]


def test_endpoints_and_errors_keep_no_credentials(writer: HistoryWriter) -> None:
    base = "http://alice:Zq8-pass@gpu-box:8000/v1"
    writer.model_call(
        _call(
            endpoint=f"{base}/completions?api_key=k-12345&x=1",
            error=f"ModelUnavailable: cannot reach {base}/completions?api_key=k-12345: refused",
        )
    )
    writer.job(
        _job(
            JobState.FAILED,
            duration_ms=5.0,
            error=f"ModelHTTPError: HTTP 401 from {base}/chat/completions (after 3 attempts)",
        )
    )
    assert writer.flush(30)
    [call] = _rows(writer.database_url, ModelCallRecord)
    [job] = _rows(writer.database_url, JobRecord)
    assert call.endpoint == "http://gpu-box:8000/v1/completions"
    assert call.error == (
        "ModelUnavailable: cannot reach http://gpu-box:8000/v1/completions: refused"
    )
    assert job.error == (
        "ModelHTTPError: HTTP 401 from http://gpu-box:8000/v1/chat/completions (after 3 attempts)"
    )
