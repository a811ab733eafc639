"""The one number checker (checks.py): types refused as TypeError, ranges as ValueError."""

from __future__ import annotations

import math
from typing import Any

import pytest

from redis_chat_history import ChatHistoryError, InvalidArgumentError, InvalidArgumentTypeError
from redis_chat_history.checks import check_int, check_optional_int, check_seconds


def test_check_int_returns_the_value_in_range() -> None:
    assert check_int("n", 0, minimum=0) == 0
    assert check_int("n", 2**62, minimum=1) == 2**62
    assert check_int("n", 5, minimum=1, maximum=5) == 5
    assert check_optional_int("ttl", None, minimum=0) is None
    assert check_optional_int("ttl", 3, minimum=0) == 3


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (True, InvalidArgumentTypeError, "n must be an int, got bool"),
        (1.0, InvalidArgumentTypeError, "n must be an int, got float"),
        ("3", InvalidArgumentTypeError, "n must be an int, got str"),
        (0, InvalidArgumentError, "n must be >= 1, got 0"),
        (11, InvalidArgumentError, "n must be <= 10, got 11"),
    ],
)
def test_check_int_names_what_is_wrong(value: Any, error: type, text: str) -> None:
    with pytest.raises(error, match=text) as raised:
        check_int("n", value, minimum=1, maximum=10)
    assert isinstance(raised.value, ChatHistoryError)


def test_check_optional_int_says_none_is_allowed() -> None:
    with pytest.raises(InvalidArgumentTypeError, match="ttl must be an int or None, got float"):
        check_optional_int("ttl", 1.5, minimum=0)
    with pytest.raises(InvalidArgumentError, match="ttl must be >= 0, got -1"):
        check_optional_int("ttl", -1, minimum=0)


def test_check_seconds() -> None:
    assert check_seconds("t", 0) == 0.0
    assert check_seconds("t", 2, maximum=2) == 2.0
    assert check_seconds("t", 0.25, above_minimum=True) == 0.25
    for value, error, text in [
        ("1", InvalidArgumentTypeError, "t must be a number of seconds, got str"),
        (False, InvalidArgumentTypeError, "got bool"),
        (math.nan, InvalidArgumentError, "t must be a number of seconds >= 0 and <= 2, got nan"),
        (math.inf, InvalidArgumentError, "got inf"),
        (-0.5, InvalidArgumentError, ">= 0 and <= 2, got -0.5"),
        (3, InvalidArgumentError, "t must be a number of seconds >= 0 and <= 2, got 3"),
    ]:
        with pytest.raises(error, match=text):
            check_seconds("t", value, maximum=2)
    with pytest.raises(InvalidArgumentError, match="t must be a number of seconds > 0, got 0"):
        check_seconds("t", 0, above_minimum=True)


def test_settings_use_it() -> None:
    """The history's options are checked by it (messages as the checker words them)."""
    from redis_chat_history import RedisChatMessageHistory

    url = "redis://127.0.0.1:1/0"
    with pytest.raises(InvalidArgumentTypeError, match="wait_timeout must be a number of seconds"):
        RedisChatMessageHistory("s", url, wait_for_replicas=1, wait_timeout="1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="wait_timeout must be a number of seconds > 0"):
        RedisChatMessageHistory("s", url, wait_for_replicas=1, wait_timeout=0)
    with pytest.raises(InvalidArgumentError, match="max_messages must be >= 1, got 0"):
        RedisChatMessageHistory("s", url, max_messages=0)


def test_numbers_written_as_text() -> None:
    """A url's numbers: digits only, in range; the error never repeats the text."""
    from redis_chat_history.checks import int_from_text, seconds_from_text

    assert int_from_text("0", minimum=0, maximum=9) == 0
    assert int_from_text("0065535", minimum=1, maximum=65535) == 65535
    assert seconds_from_text("2.5") == 2.5 and seconds_from_text("30") == 30.0
    for text in ("", "+1", "-1", " 1", "1_0", "1.0", "١", "x"):
        with pytest.raises(ValueError, match=r"\Ais not a number\Z"):
            int_from_text(text, minimum=0, maximum=9)
    for text in ("10", "9" * 5000):
        with pytest.raises(ValueError, match=r"\Aout of range \(0-9\)\Z"):
            int_from_text(text, minimum=0, maximum=9)
    for text in ("0", "0.0", "", "nan", "inf", "1e3", "-1", ".5", "1234567890"):
        with pytest.raises(ValueError, match=r"\Ais not a number of seconds > 0 \(e\.g\. 2\.5\)\Z"):
            seconds_from_text(text)
