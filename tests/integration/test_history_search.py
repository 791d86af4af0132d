"""Text search over a real history (SQLite and PostgreSQL): what `search_history`
(the MCP tool) finds, and what it cannot, since texts are kept only on request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from server.completion.recorder import CompletionEvent, ModelCallEvent, ModelCallKind
from server.history import repository
from server.history.database import create_engine_for, upgrade_to_head
from server.history.search import recent_history, search_history

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _completion(ident: str, uri: str, text: str, minutes_ago: int) -> CompletionEvent:
    return CompletionEvent(
        id=ident, parent_id=None, uri=uri, language="python", model="coder", template="qwen",
        mode="single_line", source="model", text=text, prompt_chars=10, first_token_ms=5.0,
        total_ms=9.0, at=NOW - timedelta(minutes=minutes_ago),
    )  # fmt: skip


def _call(ident: str, prompt: str, response: str, error: str | None = None) -> ModelCallEvent:
    return ModelCallEvent(
        id=ident, kind=ModelCallKind.REVIEW, model="chat", endpoint="http://h/v1",
        params={"max_tokens": 64}, prompt=prompt, response=response, finish_reason="stop",
        prompt_tokens=None, completion_tokens=None, first_token_ms=None, total_ms=20.0,
        error=error, language="python", at=NOW - timedelta(minutes=5),
    )  # fmt: skip


def test_search_finds_files_texts_and_calls_newest_first(history_url: str) -> None:
    engine = create_engine_for(history_url)
    upgrade_to_head(engine)
    with Session(engine) as session, session.begin():
        for event in (
            _completion("c1", "file:///repo/billing.py", "total = price * qty", 30),
            _completion("c2", "file:///repo/invoice.py", "send(BILLING_ADDRESS)", 10),
            _completion("c3", "file:///repo/other.py", "pass", 1),
        ):
            repository.record_completion(session=session, event=event, store_prompts=True)
        repository.record_model_call(
            session=session,
            event=_call("m1", "Review billing code", "[]", error="timeout: 100% of 10 s"),
            store_prompts=True,
        )
    with engine.connect() as connection:
        found = search_history(connection, text="Billing", limit=10)
        percent = search_history(connection, text="100%", limit=10)
        underscore = search_history(connection, text="_", limit=10)
        one = search_history(connection, text="billing", limit=1)
    engine.dispose()

    assert [(f.id, f.where) for f in found] == [("m1", "prompt"), ("c2", "text"), ("c1", "uri")]
    assert (found[1].snippet, found[1].outcome) == ("send(BILLING_ADDRESS)", "generated")
    assert [f.id for f in percent] == ["m1"]  # % is a character, not a wildcard
    assert [f.id for f in underscore] == ["c2"]  # nor is _: only BILLING_ADDRESS has one
    assert [f.id for f in one] == ["m1"]


def test_texts_kept_without_store_prompts_are_not_searchable(history_url: str) -> None:
    engine = create_engine_for(history_url)
    upgrade_to_head(engine)
    with Session(engine) as session, session.begin():
        event = _completion("c1", "file:///repo/a.py", "secret sauce", 1)
        repository.record_completion(session=session, event=event, store_prompts=False)
    with engine.connect() as connection:
        assert search_history(connection, text="sauce", limit=5) == []
        assert [f.id for f in search_history(connection, text="a.py", limit=5)] == ["c1"]
    engine.dispose()


def test_recent_history_is_the_newest_rows_of_both_tables(history_url: str) -> None:
    engine = create_engine_for(history_url)
    upgrade_to_head(engine)
    with Session(engine) as session, session.begin():
        for event in (
            _completion("c1", "file:///repo/a.py", "one", 30),
            _completion("c2", "file:///repo/b.py", "two", 1),
        ):
            repository.record_completion(session=session, event=event, store_prompts=False)
        call = _call("m1", "p", "r", error="HTTP 500: engine crashed")
        repository.record_model_call(session=session, event=call, store_prompts=False)
    with engine.connect() as connection:
        two = recent_history(connection, limit=2)
        everything = recent_history(connection, limit=10)
    engine.dispose()

    assert [f.id for f in two] == ["c2", "m1"]  # 1 and 5 minutes ago
    assert [f.id for f in everything] == ["c2", "m1", "c1"]
    assert everything[1].snippet == "HTTP 500: engine crashed"  # errors are always kept
    assert everything[0].snippet == ""  # texts only with store_prompts
