"""Writes history off the latency path: a queue drained by one background thread.

Callers return at once. On the event loop, events are buffered and handed to the
thread every ``handover_s`` as one batch: a thread woken per event competes for
the GIL exactly while the answer it records is being sent (measured: a third of
a millisecond per request). The thread applies the migrations first, then writes
events in short transactions of up to ``batch_size`` events, each statement once
per transaction over all its rows (``repository.write_events``). Events carry
their own time, so a late write stores the right one.

Faults: the editor must never wait for, or crash because of, history.

- The database unreachable (SQLite "database is locked", PostgreSQL refusing or
  closing connections): events wait in memory, at most ``max_pending`` of them
  (the oldest are dropped beyond that, and counted), and the thread tries again
  after 0.5 s, 1 s, 2 s, ... up to 30 s. The user is told once (``on_problem``)
  and once more when it is back (``on_recovered``, with what was dropped); the log
  gets one line per failed attempt, not a traceback per event.
- The database unusable (from a newer zi-coder, a path that cannot be created):
  history is off for this process, the user told once, events dropped. No retry.
- A batch the database refuses for another reason is written again one event at a
  time, so one bad event (a call without a model, say) costs only itself.

Every write is idempotent (see ``repository``), so a batch cut off by an outage is
simply written again. At shutdown, events that could not be written are counted
in the log (:meth:`HistoryWriter.close`).

``store_prompts`` (the setting ``history.store_prompts``) travels with each batch:
events are stored with their texts, redacted, only if it was on when they were
recorded; :meth:`HistoryWriter.set_store_prompts` applies a client's change.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.completion.recorder import (
    CompletionEvent,
    JobEvent,
    ModelCallEvent,
    OutcomeEvent,
    SurvivalEvent,
)
from server.completion.types import Outcome
from server.history import faults, repository
from server.history.database import SchemaTooNewError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from server.history.repository import Event

log = logging.getLogger(__name__)

_STOP = object()

# What waits in memory while the database is unreachable: at a brisk typist's four
# events a second, forty minutes of typing (a few MB, most of it the prompts).
MAX_PENDING = 10_000
RETRY_S = (0.5, 30.0)  # first and longest pause between attempts while it is down

Tell = Callable[[str], None]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(frozen=True, slots=True)
class _Batch:
    items: list[Event]
    store_prompts: bool


class HistoryWriter:
    def __init__(
        self,
        database_url: str,
        *,
        store_prompts: bool = False,
        batch_size: int = 256,
        handover_s: float = 0.2,
        max_pending: int = MAX_PENDING,
        retry_s: tuple[float, float] = RETRY_S,
        on_problem: Tell | None = None,
        on_recovered: Tell | None = None,
    ) -> None:
        """`on_problem` / `on_recovered`: told once per outage (or once, for a database
        that cannot be used), on the event loop that records events if there is one."""
        self.database_url = database_url
        self._store_prompts = store_prompts
        self._queue: queue.SimpleQueue[_Batch | object] = queue.SimpleQueue()
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._retry_s = retry_s
        self._on_problem = on_problem
        self._on_recovered = on_recovered
        self._idle = threading.Condition()
        self._pending = 0  # recorded, neither written nor dropped yet
        self._engine: Engine | None = None
        self._migrated = False
        self.failed: str | None = None  # history is off for good: why
        self._handover_s = handover_s
        self._buffer: list[Event] = []  # touched only on the event loop's thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handover: asyncio.TimerHandle | None = None
        # The thread's own: events taken from the queue, oldest first, until written.
        self._backlog: deque[tuple[Event, bool]] = deque()
        self._down: str | None = None  # the database is unreachable: the last error
        self._dropped = 0  # events dropped from a full backlog during this outage
        self._pause = retry_s[0]  # before the next attempt, if this one fails
        self._retry_at = 0.0  # no attempt before this (time.monotonic)
        self._thread = threading.Thread(target=self._run, name="zi-history", daemon=True)

    def start(self) -> None:
        # The loop the user is told from (its messages go out there), known before
        # the first event: the thread connects at once, and may fail at once.
        self._loop = self._loop or _running_loop()
        self._thread.start()

    @property
    def store_prompts(self) -> bool:
        return self._store_prompts

    @property
    def pending(self) -> int:
        """Events recorded and not written yet (nor dropped)."""
        with self._idle:
            return self._pending

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
        self._put(OutcomeEvent(completion_id, outcome, accepted_length))

    def model_call(self, event: ModelCallEvent) -> None:
        self._put(event)

    def job(self, event: JobEvent) -> None:
        self._put(event)

    def survival(self, event: SurvivalEvent) -> None:
        self._put(event)

    # -- lifecycle ----------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is written (tests, shutdown); at once
        if the thread has stopped (closed), since nothing would be written then."""
        self._hand_over_anywhere()
        with self._idle:
            if not self._thread.is_alive():
                return self._pending == 0
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (it first writes what it holds, unless the database is
        down); what could not be written is lost, and the log says how much."""
        self._hand_over_anywhere()
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        lost = self.pending
        if lost:
            reason = self.failed or self._down or "the history writer did not finish in time"
            log.warning("%d history events were not written and are lost (%s)", lost, reason)
        if self._engine is not None and not self._thread.is_alive():
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

    def _put(self, item: Event) -> None:
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

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        # Migrations applied before the user types, not with their first suggestion.
        self._attempt(self._ready_engine)
        stopping = False
        while True:
            wait: float | None = None  # nothing held: sleep until something comes
            if self._backlog:
                wait = max(0.0, self._retry_at - time.monotonic())
            stopping = self._take(wait) or stopping
            if self.failed is not None:
                self._done(len(self._backlog))  # history is off: dropped
                self._backlog.clear()
            elif stopping:
                if self._backlog and self._down is None:
                    self._attempt(self._write_backlog)  # the last; what fails, close counts
            elif self._backlog and time.monotonic() >= self._retry_at:
                self._attempt(self._write_backlog)
            if stopping:
                return

    def _attempt(self, step: Callable[[], object]) -> None:
        """Run `step` (connecting, writing), and act on how it failed."""
        try:
            step()
        except faults.Unusable as exc:
            self._turn_off(exc)
        except faults.Unreachable as exc:
            self._retry_at = time.monotonic() + self._pause
            self._unreachable(exc, self._pause)
            self._pause = min(self._pause * 2, self._retry_s[1])
        except Exception as exc:  # a bug here: history off, the server unharmed
            log.exception("the history writer failed")
            self._turn_off(faults.Unusable(f"internal error: {exc!r}"))
        else:
            self._pause = self._retry_s[0]
            self._reachable()

    def _take(self, wait: float | None) -> bool:
        """Move what was handed over into the backlog, waiting up to `wait` seconds
        (None: as long as it takes) for the first batch; True once told to stop."""
        stop = False
        try:
            item = self._queue.get(timeout=wait) if wait != 0 else self._queue.get_nowait()
        except queue.Empty:
            return False
        while True:
            if item is _STOP:
                stop = True
            elif isinstance(item, _Batch):
                self._backlog.extend((event, item.store_prompts) for event in item.items)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        overflow = len(self._backlog) - self._max_pending
        if overflow > 0:  # the database is down (or far too slow): the oldest go
            for _ in range(overflow):
                self._backlog.popleft()
            self._done(overflow)
            if self._down is not None:
                self._dropped += overflow  # told with the recovery
            else:
                log.warning(
                    "%d history events dropped: more than %d waiting", overflow, self._max_pending
                )
        return stop

    def _done(self, count: int) -> None:
        if count:
            with self._idle:
                self._pending -= count
                self._idle.notify_all()

    def _write_backlog(self) -> None:
        """Write the backlog, `batch_size` events per transaction, oldest first."""
        engine = self._ready_engine()
        while self._backlog:
            count = min(self._batch_size, len(self._backlog))
            batch = [self._backlog[i] for i in range(count)]
            self._write_batch(engine, batch)
            for _ in range(count):
                self._backlog.popleft()
            self._done(count)

    def _ready_engine(self) -> Engine:
        """The engine, the migrations applied (once)."""
        from server.history.database import create_engine_for, upgrade_to_head

        if self._engine is None:
            try:
                self._engine = create_engine_for(self.database_url)
            except Exception as exc:  # a malformed URL, a driver not installed
                raise faults.Unusable(faults.describe(exc)) from exc
        if not self._migrated:
            faults.classified(upgrade_to_head, self._engine, otherwise=faults.Unusable)
            self._migrated = True
        return self._engine

    def _write_batch(self, engine: Engine, batch: list[tuple[Event, bool]]) -> None:
        try:
            faults.classified(_write, engine, batch)
            return
        except faults.Refused as exc:
            if len(batch) == 1:
                log.warning(
                    "a history event was refused and dropped: %s", exc, exc_info=exc.__cause__
                )
                return
            log.info("%d history events refused together (%s); again one by one", len(batch), exc)
        refused: list[faults.Refused] = []
        for item in batch:
            try:
                faults.classified(_write, engine, [item])
            except faults.Refused as exc:
                refused.append(exc)
        if refused:
            log.warning(
                "%d of %d history events were refused and dropped; the first: %s",
                len(refused),
                len(batch),
                refused[0],
                exc_info=refused[0].__cause__,
            )

    # -- telling the user ---------------------------------------------------------------

    def _unreachable(self, exc: faults.Unreachable, pause: float) -> None:
        url = faults.display_url(self.database_url)
        log.warning(
            "history database %s unreachable (%s): %d events waiting, %d dropped; next try in %g s",
            url,
            exc,
            len(self._backlog),
            self._dropped,
            pause,
        )
        first, self._down = self._down is None, str(exc)
        if first:
            self._tell(
                self._on_problem,
                f"history database {url} is unreachable ({exc}); up to {self._max_pending} "
                "events are kept until it is back",
            )

    def _reachable(self) -> None:
        if self._down is None:
            return
        self._down = None
        dropped, self._dropped = self._dropped, 0
        message = f"history database {faults.display_url(self.database_url)} is reachable again"
        if dropped:
            message += f"; {dropped} events recorded while it was down were dropped"
        log.info("%s", message)
        self._tell(self._on_recovered, message)

    def _turn_off(self, exc: faults.Unusable) -> None:
        self.failed = f"history is off ({faults.display_url(self.database_url)}): {exc}"
        cause = exc.__cause__  # a newer zi-coder's database: the sentence says it all
        log.error(
            "%s", self.failed, exc_info=None if isinstance(cause, SchemaTooNewError) else cause
        )
        self._done(len(self._backlog))
        self._backlog.clear()
        self._down = None
        self._tell(self._on_problem, self.failed)

    def _tell(self, callback: Tell | None, message: str) -> None:
        """Call `callback` on the loop that records events (the user's messages go out
        from there), or here when there is none."""
        if callback is None:
            return
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                loop.call_soon_threadsafe(callback, message)
                return
            except RuntimeError:  # closed since
                pass
        try:
            callback(message)
        except Exception:
            log.exception("telling the user about the history failed")


def _write(engine: Engine, batch: list[tuple[Event, bool]]) -> None:
    with engine.begin() as connection:
        repository.write_events(connection=connection, events=batch)
