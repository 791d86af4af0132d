"""Failure policy: backoff bounds and jitter, breaker transitions, server hints parsed."""

from __future__ import annotations

import email.utils

import pytest

from inference.resilience import (
    Admission,
    Backoff,
    BreakerState,
    CircuitBreaker,
    RetryPolicy,
    Transition,
    parse_context_overflow,
    parse_retry_after,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ------------------------------------------------------------------------- backoff


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 0.25), (1, 0.5), (2, 1.0), (3, 2.0), (4, 2.0), (50, 2.0), (10_000, 2.0)],
)
def test_backoff_ceiling_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert Backoff(base_s=0.25, factor=2.0, cap_s=2.0).ceiling(attempt) == ceiling


@pytest.mark.parametrize("attempt", [0, 1, 2, 5])
def test_backoff_full_jitter_spans_zero_to_the_ceiling(attempt: int) -> None:
    backoff = Backoff()
    assert backoff.delay(attempt, rand=lambda: 0.0) == 0.0
    assert backoff.delay(attempt, rand=lambda: 0.5) == backoff.ceiling(attempt) / 2
    assert backoff.delay(attempt, rand=lambda: 0.999999) <= backoff.ceiling(attempt)


def test_backoff_with_the_real_random_stays_in_bounds_and_varies() -> None:
    backoff = Backoff(base_s=1.0, cap_s=4.0)
    delays = [backoff.delay(2) for _ in range(200)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 100  # jittered, not lock-step


def test_backoff_rejects_a_negative_attempt() -> None:
    with pytest.raises(ValueError):
        Backoff().ceiling(-1)


def test_retry_policy_defaults_are_the_documented_ones() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.budget_s, policy.max_retry_after_s) == (3, 8.0, 3.0)
    # The longest idempotent retry sequence stays well inside the budget.
    assert sum(policy.backoff.ceiling(n) for n in range(policy.attempts - 1)) < policy.budget_s


# ------------------------------------------------------------------------- breaker


def make_breaker(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=threshold, cooldown=Backoff(base_s=2.0, cap_s=60.0), clock=clock
    )


def fail_calls(breaker: CircuitBreaker, n: int) -> list[Transition | None]:
    out = []
    for _ in range(n):
        assert breaker.admit()
        out.append(breaker.failed("connection refused"))
    return out


def test_breaker_opens_after_the_threshold_of_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    assert fail_calls(breaker, 3) == [None, None, Transition.OPENED]
    assert breaker.state is BreakerState.OPEN
    assert breaker.cooldown_s == 2.0
    assert breaker.remaining_s() == 2.0
    assert breaker.last_cause == "connection refused"
    assert breaker.admit() is Admission.DENIED


def test_a_success_resets_the_failure_count() -> None:
    breaker = make_breaker(FakeClock())
    fail_calls(breaker, 2)
    assert breaker.admit()
    assert breaker.succeeded() is None  # closed stays closed: no transition
    assert fail_calls(breaker, 2) == [None, None]
    assert breaker.state is BreakerState.CLOSED


def test_after_the_cooldown_one_trial_goes_through_and_its_success_closes() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    fail_calls(breaker, 3)
    clock.advance(1.9)
    assert breaker.admit() is Admission.DENIED
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit() is Admission.TRIAL
    assert breaker.admit() is Admission.DENIED  # only one trial at a time
    assert breaker.succeeded() is Transition.CLOSED
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit() is Admission.CALL


def test_failed_trials_double_the_cooldown_up_to_the_cap() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    fail_calls(breaker, 3)
    cooldowns = [breaker.cooldown_s]
    for _ in range(7):
        clock.advance(breaker.remaining_s())
        assert breaker.admit() is Admission.TRIAL
        assert breaker.failed("still down") is Transition.OPENED
        cooldowns.append(breaker.cooldown_s)
    assert cooldowns == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    # Recovery starts the next outage from the shortest cool-down again.
    clock.advance(60.0)
    assert breaker.admit() is Admission.TRIAL
    breaker.succeeded()
    fail_calls(breaker, 3)
    assert breaker.cooldown_s == 2.0


def test_an_abandoned_trial_gives_its_slot_back() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    fail_calls(breaker, 3)
    clock.advance(2.0)
    assert breaker.admit() is Admission.TRIAL
    breaker.abandoned(Admission.TRIAL)  # cancelled: no verdict
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit() is Admission.TRIAL


def test_an_abandoned_ordinary_call_does_not_free_the_trial_slot() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    assert breaker.admit() is Admission.CALL  # admitted before the outage, still running
    fail_calls(breaker, 3)
    clock.advance(2.0)
    assert breaker.admit() is Admission.TRIAL
    breaker.abandoned(Admission.CALL)
    assert breaker.admit() is Admission.DENIED


def test_a_late_failure_while_open_does_not_extend_the_cooldown() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    fail_calls(breaker, 3)
    clock.advance(1.0)
    assert breaker.failed("late") is None  # a call admitted before the opening
    assert breaker.remaining_s() == 1.0
    assert breaker.cooldown_s == 2.0


def test_threshold_one_opens_on_the_first_failure() -> None:
    breaker = make_breaker(FakeClock(), threshold=1)
    assert fail_calls(breaker, 1) == [Transition.OPENED]


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)


# --------------------------------------------------------------------- Retry-After

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 GMT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 10 ", 10.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # in the past: go now
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("Tue, 14 Nov 2023 22:13:50", None),  # no zone: not an HTTP-date
        ("Tue, 99 Nov 2023 25:61:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


# ------------------------------------------------------------- context overflow


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "This model's maximum context length is 2048 tokens. However, you requested "
            "2100 tokens (2000 in the messages, 100 in the completion). Please reduce the "
            "length of the messages or completion.",
            (2048, 2100, None),
        ),
        (
            "This model's maximum context length is 1024 tokens. However, your prompt "
            "contains at least 1025 input tokens, which exceeds this limit even without "
            "any output tokens. Please reduce the length of the input prompt.",
            (1024, None, 1025),
        ),
        (
            "This model's maximum context length is 1024 tokens. However, your prompt "
            "contains 9000 characters (more than 8192 characters, which is the upper "
            "bound for 1024 input tokens). Please reduce the length of the input prompt.",
            (1024, None, None),
        ),
        ("Input length (2100) exceeds model's maximum context length (2048).", (2048, None, 2100)),
        (
            "'max_tokens' is too large: 300. This model's maximum context length is 2048 "
            "tokens and your request has 1900 input tokens (300 > 2048 - 1900).",
            (2048, None, 1900),
        ),
        ("stop: List should have at most 4 items after validation, not 6", None),
        ("", None),
    ],
)
def test_parse_context_overflow(
    message: str, expected: tuple[int, int | None, int | None] | None
) -> None:
    assert parse_context_overflow(message) == expected
