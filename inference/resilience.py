"""Failure policy for calls to the model server: backoff, a circuit breaker, Retry-After.

Pure and clock-injectable (no I/O, no asyncio) so every transition is unit-tested
with a fake clock; :mod:`inference.client` applies it. The numbers and why:

- Idempotent calls (``GET /models``, ``POST /tokenize``, ``GET /health``) retry
  connection errors, timeouts, 502/503/504 and short 429s: at most 3 attempts and
  8 s in all, waiting ``uniform(0, min(2 s, 0.25 s * 2**n))`` ("full jitter": many
  editors that lost the same server do not come back in lock-step).
- ``POST /completions`` is not idempotent and sits on the keystroke path: retried
  once, after 50 ms, and only when the connection could not be made (nothing sent).
- The breaker opens after 3 consecutive failed calls (connection errors, timeouts,
  5xx): then calls fail at once without touching the network for a cool-down of
  2 s that doubles on each failed trial up to 60 s, so a dead server costs one
  request per cool-down instead of one per keystroke. After the cool-down one trial
  call goes through (half-open); its success closes the breaker.
- A 429 pauses completions until its Retry-After (1 s when absent or unreadable,
  at most 60 s); an idempotent call waits out a Retry-After of up to 3 s.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: wait n is uniform(0, min(cap, base * factor**n))."""

    base_s: float = 0.25
    factor: float = 2.0
    cap_s: float = 2.0

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number `attempt` (0 = the first retry)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        # Bounded exponent: the power of a large attempt number would overflow.
        return min(self.cap_s, self.base_s * self.factor ** min(attempt, 64))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return self.ceiling(attempt) * rand()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How calls are retried; see the module docstring for why these numbers."""

    attempts: int = 3  # idempotent calls: total attempts, the first included
    budget_s: float = 8.0  # idempotent calls: no retry starts after this much time
    backoff: Backoff = Backoff()
    max_retry_after_s: float = 3.0  # longest 429 Retry-After an idempotent call waits out
    default_retry_after_s: float = 1.0  # a 429 without a usable Retry-After
    longest_pause_s: float = 60.0  # a Retry-After beyond this is clamped
    completion_connect_retry_s: float = 0.05  # the one retry of a completion not sent


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.

    `now` is the wall clock (``time.time()``) for HTTP-dates. None when the header
    is absent or unreadable; a date in the past is 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        return None
    try:
        import email.utils  # rare (HTTP-date Retry-After); 20 ms to import at start

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is taken as such
        return None
    wall = time.time() if now is None else now
    return max(0.0, when.timestamp() - wall)


# vLLM's wordings of a prompt that does not fit max_model_len, old and new:
#   "This model's maximum context length is 2048 tokens. However, you requested 2100
#    tokens (2000 in the messages, 100 in the completion). Please reduce ..."
#   "This model's maximum context length is 2048 tokens. However, your prompt contains
#    [at least ]2049 input tokens, which exceeds this limit even without any output tokens."
#   "This model's maximum context length is 2048 tokens. However, your prompt contains
#    9000 characters (more than 8192 characters, which is the upper bound for ...)"
#   "Input length (2100) exceeds model's maximum context length (2048)."
_LIMIT_RE = re.compile(r"maximum context length (?:is |\()(\d+)")
_REQUESTED_RE = re.compile(r"requested (\d+) tokens")
_INPUT_RE = re.compile(r"(?:contains|has) (?:at least )?(\d+) input tokens|Input length \((\d+)\)")


def parse_context_overflow(message: str) -> tuple[int, int | None, int | None] | None:
    """(max_model_len, tokens requested in all, prompt tokens) from a vLLM 400 message.

    None when the message is not about the context length; the two counts are None
    when the message does not give them.
    """
    limit = _LIMIT_RE.search(message)
    if limit is None:
        return None
    requested = _REQUESTED_RE.search(message)
    prompt = _INPUT_RE.search(message)
    return (
        int(limit.group(1)),
        int(requested.group(1)) if requested else None,
        int(prompt.group(1) or prompt.group(2)) if prompt else None,
    )


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go through; failures are counted
    OPEN = "open"  # calls fail fast until the cool-down ends
    HALF_OPEN = "half-open"  # one trial call goes through; the rest fail fast


class Admission(IntEnum):
    """What :meth:`CircuitBreaker.admit` decided; falsy when the call must not go."""

    DENIED = 0
    CALL = 1  # the breaker is closed
    TRIAL = 2  # the one call let through after a cool-down


class Transition(StrEnum):
    OPENED = "opened"  # from closed, or again after a failed trial
    CLOSED = "closed"  # a call succeeded after the breaker had opened


class CircuitBreaker:
    """Consecutive-failure breaker with a growing cool-down and a single trial call.

    Callers ask :meth:`admit` before a call and report its outcome with
    :meth:`succeeded`, :meth:`failed` or :meth:`abandoned` (a cancelled call: no
    verdict, but a trial slot must be given back). Answers that prove the server
    alive (any HTTP status but 5xx and 429) are successes.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown: Backoff = Backoff(base_s=2.0, factor=2.0, cap_s=60.0),
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self._cooldown = cooldown
        self._clock = clock
        self.failures = 0  # consecutive failed calls
        self.openings = 0  # consecutive openings without a success: the cool-down's exponent
        self.opened_until = 0.0
        self.last_cause = ""
        self._state = BreakerState.CLOSED
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self.opened_until:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def cooldown_s(self) -> float:
        """The cool-down of the current (or last) opening."""
        return self._cooldown.ceiling(max(self.openings - 1, 0))

    def remaining_s(self) -> float:
        """Seconds until the next trial may go; 0 when calls are admitted."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_until - self._clock())

    def admit(self) -> Admission:
        """Whether a call may go now; after a cool-down, the first caller gets the trial."""
        if self._state is BreakerState.CLOSED:
            return Admission.CALL
        if self._trial_out:
            return Admission.DENIED
        if self._state is BreakerState.OPEN and self._clock() < self.opened_until:
            return Admission.DENIED
        self._state = BreakerState.HALF_OPEN
        self._trial_out = True
        return Admission.TRIAL

    def succeeded(self) -> Transition | None:
        self.failures = 0
        if self._state is BreakerState.CLOSED:
            return None
        self._state = BreakerState.CLOSED
        self._trial_out = False
        self.openings = 0
        return Transition.CLOSED

    def failed(self, cause: str) -> Transition | None:
        self.failures += 1
        self.last_cause = cause
        if self._state is BreakerState.CLOSED and self.failures < self.failure_threshold:
            return None
        if self._state is BreakerState.OPEN:
            return None  # a call admitted before the opening came back late
        self._open()
        return Transition.OPENED

    def abandoned(self, admission: Admission) -> None:
        """A call ended without a verdict (cancelled): give back the trial slot it held."""
        if admission is Admission.TRIAL and self._state is BreakerState.HALF_OPEN:
            self._trial_out = False

    def _open(self) -> None:
        self.openings += 1
        self._state = BreakerState.OPEN
        self._trial_out = False
        self.opened_until = self._clock() + self.cooldown_s
