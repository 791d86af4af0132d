"""Writes history off the latency path: a queue drained by one background thread.

Callers return at once. On the event loop, events are buffered and handed to the
thread every ``handover_s`` as one batch: a thread woken per event competes for
the GIL exactly while the answer it records is being sent (measured: a third of
a millisecond per request). The thread applies the migrations first, then
writes events in short transactions. If the database fails, events are logged
and dropped: the editor must never wait for, or crash because of, history. A
batch that fails is written again one event at a time, so one bad event (a
survival check of a completion this database never saw, say) costs only itself.

``store_prompts`` (the setting ``history.store_prompts``) travels with each batch:
events are stored with their texts, redacted, only if it was on when they were
recorded; :meth:`HistoryWriter.set_store_prompts` applies a client's change.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.completion.recorder import CompletionEvent, JobEvent, ModelCallEvent, SurvivalEvent
from server.completion.types import Outcome
from server.history import repository

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_STOP = object()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(frozen=True, slots=True)
class _OutcomeEvent:
    completion_id: str
    outcome: Outcome
    accepted_length: int | None


@dataclass(frozen=True, slots=True)
class _Batch:
    items: list[object]
    store_prompts: bool


class HistoryWriter:
    def __init__(
        self,
        database_url: str,
        *,
        store_prompts: bool = False,
        batch_size: int = 256,
        handover_s: float = 0.2,
    ) -> None:
        self.database_url = database_url
        self._store_prompts = store_prompts
        self._queue: queue.SimpleQueue[_Batch | object] = queue.SimpleQueue()
        self._batch_size = batch_size
        self._ready = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self._engine: Engine | None = None
        self.failed: str | None = None
        self._handover_s = handover_s
        self._buffer: list[object] = []  # touched only on the event loop's thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handover: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(target=self._run, name="zi-history", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def store_prompts(self) -> bool:
        return self._store_prompts

    def set_store_prompts(self, value: bool) -> None:
        """Apply a settings change: events recorded from now on follow `value`."""
        if value == self._store_prompts:
            return
        # What was recorded under the old value leaves with it.
        self._hand_over_anywhere()
        self._store_prompts = value

    # -- Recorder ---------------------------------------------------------------

    def completion_generated(self, event: CompletionEvent) -> None:
        self._put(event)

    def outcome(
        self, *, completion_id: str, outcome: Outcome, accepted_length: int | None = None
    ) -> None:
        self._put(_OutcomeEvent(completion_id, outcome, accepted_length))

    def model_call(self, event: ModelCallEvent) -> None:
        self._put(event)

    def job(self, event: JobEvent) -> None:
        self._put(event)

    def survival(self, event: SurvivalEvent) -> None:
        self._put(event)

    # -- lifecycle ----------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is written (tests, shutdown)."""
        self._hand_over_anywhere()
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()

    def _hand_over_anywhere(self) -> None:
        """Hand the buffer over from any thread (the buffer belongs to the loop's)."""
        if self._buffer and self._loop is not None:
            # On the loop, or with the loop gone (the process is ending): no one else
            # touches the buffer, so hand it over from here.
            if _running_loop() is self._loop or not self._loop.is_running():
                self._hand_over()
            else:
                # Captured now: the flag may change before the loop runs this.
                store = self._store_prompts
                self._loop.call_soon_threadsafe(self._hand_over, store)

    def _put(self, item: object) -> None:
        with self._idle:
            self._pending += 1
        loop = _running_loop()
        if loop is None:
            self._queue.put(_Batch([item], self._store_prompts))
            return
        self._loop = loop
        self._buffer.append(item)
        if self._handover is None:
            self._handover = loop.call_later(self._handover_s, self._hand_over)

    def _hand_over(self, store_prompts: bool | None = None) -> None:
        if self._handover is not None:
            self._handover.cancel()
            self._handover = None
        if self._buffer:
            batch, self._buffer = self._buffer, []
            store = self._store_prompts if store_prompts is None else store_prompts
            self._queue.put(_Batch(batch, store))

    def _run(self) -> None:
        from server.history.database import create_engine_for, upgrade_to_head

        try:
            self._engine = create_engine_for(self.database_url)
            upgrade_to_head(self._engine)
        except Exception as exc:
            self.failed = f"history database unavailable: {exc}"
            log.exception("history database %s unavailable; history is off", self.database_url)
        self._ready.set()
        stop = False
        while not stop:
            batches = [self._queue.get()]
            size = self._size(batches[0])
            while size < self._batch_size:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
                size += self._size(batches[-1])
            if _STOP in batches:
                stop = True
            work = [b for b in batches if isinstance(b, _Batch)]
            count = sum(len(b.items) for b in work)
            if self._engine is not None and self.failed is None and count:
                self._write_all(self._engine, work, count)
            with self._idle:
                self._pending -= count
                self._idle.notify_all()

    @staticmethod
    def _size(item: object) -> int:
        return len(item.items) if isinstance(item, _Batch) else 0

    def _write_all(self, engine: Engine, batches: list[_Batch], count: int) -> None:
        from sqlalchemy.orm import Session

        try:
            with Session(engine) as session, session.begin():
                for batch in batches:
                    for item in batch.items:
                        self._write(session, item, batch.store_prompts)
            return
        except Exception:
            if count == 1:
                log.exception("writing a history event failed; dropped")
                return
            log.warning("writing %d history events failed; again one by one", count, exc_info=True)
        for batch in batches:
            for item in batch.items:
                try:
                    with Session(engine) as session, session.begin():
                        self._write(session, item, batch.store_prompts)
                except Exception:
                    log.exception("writing history event %s failed; dropped", type(item).__name__)

    @staticmethod
    def _write(session: Session, item: object, store_prompts: bool) -> None:
        at = repository.now()
        if isinstance(item, CompletionEvent):
            repository.record_completion(
                session=session, event=item, at=at, store_prompts=store_prompts
            )
            session.flush()  # outcomes in the same batch update this row
        elif isinstance(item, _OutcomeEvent):
            repository.record_outcome(
                session=session,
                completion_id=item.completion_id,
                outcome=item.outcome,
                accepted_length=item.accepted_length,
                at=at,
            )
        elif isinstance(item, ModelCallEvent):
            repository.record_model_call(
                session=session, event=item, at=at, store_prompts=store_prompts
            )
        elif isinstance(item, JobEvent):
            repository.record_job(session=session, event=item, at=at)
        elif isinstance(item, SurvivalEvent):
            repository.record_survival(session=session, event=item, at=at)
        else:
            log.error("unknown history event %r dropped", item)
