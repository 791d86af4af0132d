"""Writes history off the latency path: a queue drained by one background thread.

Callers return at once. On the event loop, events are buffered and handed to the
thread every ``handover_s`` as one batch: a thread woken per event competes for
the GIL exactly while the answer it records is being sent (measured: a third of
a millisecond per request). The thread applies the migrations first, then
writes events in short transactions. If the database fails, events are logged
and dropped: the editor must never wait for, or crash because of, history.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.completion.recorder import CompletionEvent
from server.completion.types import Outcome
from server.history import repository

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

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


class HistoryWriter:
    def __init__(
        self, database_url: str, *, batch_size: int = 256, handover_s: float = 0.2
    ) -> None:
        self.database_url = database_url
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
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

    # -- Recorder ---------------------------------------------------------------

    def completion_generated(self, event: CompletionEvent) -> None:
        self._put(event)

    def outcome(
        self, *, completion_id: str, outcome: Outcome, accepted_length: int | None = None
    ) -> None:
        self._put(_OutcomeEvent(completion_id, outcome, accepted_length))

    # -- lifecycle ----------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is written (tests, shutdown)."""
        if self._buffer and self._loop is not None:
            # On the loop, or with the loop gone (the process is ending): no one else
            # touches the buffer, so hand it over from here.
            if _running_loop() is self._loop or not self._loop.is_running():
                self._hand_over()
            else:
                self._loop.call_soon_threadsafe(self._hand_over)
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()

    def _put(self, item: object) -> None:
        with self._idle:
            self._pending += 1
        loop = _running_loop()
        if loop is None:
            self._queue.put([item])
            return
        self._loop = loop
        self._buffer.append(item)
        if self._handover is None:
            self._handover = loop.call_later(self._handover_s, self._hand_over)

    def _hand_over(self) -> None:
        if self._handover is not None:
            self._handover.cancel()
            self._handover = None
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._queue.put(batch)

    def _run(self) -> None:
        from sqlalchemy.orm import Session

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
            batch = self._take(self._queue.get())
            while len(batch) < self._batch_size:
                try:
                    batch += self._take(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stop = True
                batch = [item for item in batch if item is not _STOP]
            if self._engine is not None and self.failed is None and batch:
                try:
                    with Session(self._engine) as session, session.begin():
                        self._write(session, batch)
                except Exception:
                    log.exception("writing %d history events failed; dropped", len(batch))
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    @staticmethod
    def _take(item: object) -> list[object]:
        return list(item) if isinstance(item, list) else [item]

    @staticmethod
    def _write(session: object, batch: list[object]) -> None:
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        at = repository.now()
        for item in batch:
            if isinstance(item, CompletionEvent):
                repository.record_completion(session=session, event=item, at=at)
                session.flush()  # outcomes in the same batch update this row
            elif isinstance(item, _OutcomeEvent):
                repository.record_outcome(
                    session=session,
                    completion_id=item.completion_id,
                    outcome=item.outcome,
                    accepted_length=item.accepted_length,
                    at=at,
                )
