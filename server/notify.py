"""Telling the user about problems without flooding them.

Features report problems by key. Every report is logged (and, through the edge,
sent as ``window/logMessage``, rate-limited per key); a *lasting* problem such as
an unreachable model is shown once with ``window/showMessage`` until it resolves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import IntEnum

log = logging.getLogger(__name__)


class Level(IntEnum):  # same numbers as LSP MessageType
    ERROR = 1
    WARNING = 2
    INFO = 3
    LOG = 4


Sink = Callable[[Level, str], None]


def _discard(level: Level, message: str) -> None:
    return None


class Notifier:
    def __init__(self, log_interval_s: float = 5.0) -> None:
        self.log_sink: Sink = _discard
        self.show_sink: Sink = _discard
        self._log_interval_s = log_interval_s
        self._last_logged: dict[str, float] = {}
        self._shown: set[str] = set()

    def connect(self, *, log_sink: Sink, show_sink: Sink) -> None:
        self.log_sink, self.show_sink = log_sink, show_sink

    def problem(
        self, key: str, message: str, *, lasting: bool = False, level: Level = Level.WARNING
    ) -> None:
        log.log(logging.ERROR if level is Level.ERROR else logging.WARNING, "%s", message)
        now = time.monotonic()
        if now - self._last_logged.get(key, -1e9) >= self._log_interval_s:
            self._last_logged[key] = now
            self.log_sink(level, f"Zi: {message}")
        if lasting and key not in self._shown:
            self._shown.add(key)
            self.show_sink(level, f"Zi: {message}")

    def resolved(self, key: str, message: str) -> None:
        if key in self._shown or key in self._last_logged:
            log.info("%s", message)
            self.log_sink(Level.INFO, f"Zi: {message}")
        self._shown.discard(key)
        self._last_logged.pop(key, None)

    def info(self, message: str) -> None:
        log.info("%s", message)
        self.log_sink(Level.INFO, f"Zi: {message}")
