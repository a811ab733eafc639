"""retry.py: the policy's checks, its backoff, and the window arithmetic the exactly-once
guarantee rests on (one number of sends, :data:`EXTRA_SENDS`, bounds every call).

No server: tests/test_call.py drives the call machine against these bounds, and
tests/test_exactly_once.py shows a late re-send applied once inside the window.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from redis_chat_history import InvalidArgumentError, InvalidArgumentTypeError, RetryPolicy
from redis_chat_history.retry import DEFAULT_RETRY, EXTRA_SENDS


def test_the_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.backoff_base, policy.backoff_cap) == (3, 0.05, 1.0)
    assert (policy.connect_timeout, policy.socket_timeout) == (5.0, 10.0)
    assert policy == DEFAULT_RETRY and hash(DEFAULT_RETRY) == hash(policy)  # a registry key


@pytest.mark.parametrize(
    ("arguments", "error", "text"),
    [
        ({"attempts": -1}, InvalidArgumentError, "RetryPolicy.attempts must be >= 0, got -1"),
        ({"attempts": 1.5}, InvalidArgumentTypeError, "RetryPolicy.attempts must be an int"),
        ({"attempts": True}, InvalidArgumentTypeError, "RetryPolicy.attempts must be an int"),
        ({"attempts": "3"}, InvalidArgumentTypeError, "RetryPolicy.attempts must be an int"),
        ({"backoff_base": -0.1}, InvalidArgumentError, "RetryPolicy.backoff_base must be a"),
        ({"backoff_base": math.nan}, InvalidArgumentError, "backoff_base must be a number of sec"),
        ({"backoff_cap": math.inf}, InvalidArgumentError, "RetryPolicy.backoff_cap must be a"),
        ({"backoff_cap": "1"}, InvalidArgumentTypeError, "RetryPolicy.backoff_cap must be a"),
        ({"connect_timeout": 0}, InvalidArgumentError, "connect_timeout must be a number of "
         "seconds > 0, got 0"),
        ({"connect_timeout": None}, InvalidArgumentTypeError, "connect_timeout must be a number"),
        ({"socket_timeout": 0.0}, InvalidArgumentError, "RetryPolicy.socket_timeout must be a "
         "number of seconds > 0, got 0.0"),
        ({"socket_timeout": -1}, InvalidArgumentError, "RetryPolicy.socket_timeout"),
        ({"socket_timeout": False}, InvalidArgumentTypeError, "RetryPolicy.socket_timeout"),
    ],
)  # fmt: skip
def test_bad_values_are_errors_naming_the_field(
    arguments: dict[str, Any], error: type, text: str
) -> None:
    with pytest.raises(error, match=text):
        RetryPolicy(**arguments)


def test_edge_values_are_accepted() -> None:
    assert RetryPolicy(attempts=0, backoff_base=0, backoff_cap=0).attempts == 0
    assert RetryPolicy(socket_timeout=None).socket_timeout is None
    assert RetryPolicy(connect_timeout=0.001, socket_timeout=1).connect_timeout == 0.001


def test_backoff_is_random_up_to_the_doubling_bound_and_capped() -> None:
    policy = RetryPolicy(backoff_base=0.1, backoff_cap=0.5)
    for failures, most in [(1, 0.1), (2, 0.2), (3, 0.4)]:
        waits = [policy.backoff(failures) for _ in range(400)]
        assert all(0 <= wait <= most for wait in waits), failures
        assert max(waits) > most / 2 and len(set(waits)) > 300  # spread over the range
    waits = [policy.backoff(4) for _ in range(400)]  # up to 0.8, capped: 0.5 at the most
    assert max(waits) == 0.5 and min(waits) < 0.5
    assert max(policy.backoff(30) for _ in range(100)) == 0.5
    assert {RetryPolicy(backoff_cap=0).backoff(n) for n in range(1, 5)} == {0.0}


@pytest.mark.parametrize("attempts", [0, 1, 3, 8])
def test_one_number_of_sends_bounds_a_call(attempts: int) -> None:
    """The first send, the policy's re-sends, and the once-per-call extras (NOSCRIPT's EVAL,
    MOVED, ASK, the plain twin): four of them."""
    assert EXTRA_SENDS == 4
    assert RetryPolicy(attempts=attempts).max_sends == 1 + attempts + 4


def test_the_window_arithmetic() -> None:
    policy = RetryPolicy(attempts=2, backoff_cap=0.5, connect_timeout=1.5, socket_timeout=2)
    assert policy.pool_timeout == 1.5 + 2  # a pooled connection: connect and a reply's time
    assert policy.send_seconds == 3.5 + 1.5 + 2 + 0.5  # the pool, connecting, the reply, a backoff
    assert policy.max_sends == 7
    assert policy.longest_call_seconds == 7 * 7.5
    assert policy.window_seconds == 53 and isinstance(policy.window_seconds, int)  # ceil(52.5)


def test_the_window_is_whole_seconds_at_least_one() -> None:
    tiny = RetryPolicy(attempts=0, backoff_cap=0, connect_timeout=0.01, socket_timeout=0.01)
    assert tiny.longest_call_seconds == pytest.approx(5 * 0.04)
    assert tiny.window_seconds == 1
    assert RetryPolicy().window_seconds == math.ceil(RetryPolicy().longest_call_seconds) == 8 * 31


def test_no_socket_timeout_has_a_ten_minute_window() -> None:
    patient = RetryPolicy(socket_timeout=None, connect_timeout=2)
    assert patient.pool_timeout == 2  # connecting still has its limit
    assert patient.longest_call_seconds == 600.0 and patient.window_seconds == 600
