"""runlane.backoff: the one retry policy of a worker's loops while a service is away
(capped, jittered, growing delays; one log line when an outage starts and one when
it ends, none per attempt)."""

from __future__ import annotations

import logging

import pytest

from runlane.backoff import Backoff


def test_delays_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    draws = iter([0.0, 0.999] * 10)
    backoff = Backoff("x", logging.getLogger("test.backoff"), initial=0.1, cap=2.0,
                      jitter=lambda: next(draws))
    delays = [backoff.failed("down") for _ in range(8)]
    steps = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    for delay, step, low in zip(delays, steps, [True, False] * 4, strict=True):
        assert step / 2 <= delay <= step  # never below half a step: no spin
        assert delay == pytest.approx(step / 2 if low else step, rel=0.01)
    backoff.succeeded()
    assert not backoff.failing
    assert backoff.failed("down again") <= 0.1  # a new outage starts from the beginning


def test_an_outage_is_logged_when_it_starts_and_when_it_ends_only(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    backoff = Backoff("claiming runs", logging.getLogger("test.backoff"),
                      clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.backoff"):
        backoff.succeeded()  # no outage: nothing to say
        for _ in range(50):
            backoff.failed(ConnectionRefusedError("connection refused\nmore detail"))
            now[0] += 1.0
        backoff.succeeded()
        backoff.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "claiming runs failed (ConnectionRefusedError: connection refused); retrying with "
        "backoff (up to 2s apart) until it works",
        "claiming runs works again after 50.0s (50 failed attempt(s))",
    ]
