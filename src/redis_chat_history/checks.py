"""The one argument checker: numbers (ints, seconds), a history key and a batch of encoded
messages given by callers, checked before anything is sent.

A wrong type is :class:`InvalidArgumentTypeError` (a TypeError), a value out of range
:class:`InvalidArgumentError` (a ValueError); each message names the argument. ``bool``
is refused where a number is meant (``True`` is an ``int`` to Python, not to a user).
Numbers written as text (a url's port, database and query options) are read by
:func:`int_from_text` and :func:`seconds_from_text`, whose errors never repeat the text
(it may be part of a password): the caller names what was wrong and where.

Example::

    >>> check_int("max_messages", 200, minimum=1)
    200
    >>> check_optional_int("ttl", None, minimum=0)  # None: not set
    >>> check_seconds("wait_timeout", 0.5, minimum=0, above_minimum=True)
    0.5
    >>> check_int("limit", -1, minimum=0)
    Traceback (most recent call last):
    redis_chat_history.errors.InvalidArgumentError: limit must be >= 0, got -1
    >>> int_from_text("6380", minimum=1, maximum=65535)
    6380
    >>> int_from_text("+1", minimum=1, maximum=65535)
    Traceback (most recent call last):
    ValueError: is not a number
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from redis_chat_history.errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "check_batch",
    "check_int",
    "check_key",
    "check_optional_int",
    "check_seconds",
    "int_from_text",
    "seconds_from_text",
]

_DIGITS = re.compile(r"[0-9]+\Z")
_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?\Z")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; the error names ``name``."""
    if not _is_int(value):
        raise InvalidArgumentTypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_optional_int(
    name: str, value: Any, *, minimum: int, maximum: int | None = None
) -> int | None:
    """None, or ``value`` checked by :func:`check_int`."""
    if value is None:
        return None
    if not _is_int(value):
        raise InvalidArgumentTypeError(f"{name} must be an int or None, got {type(value).__name__}")
    return check_int(name, value, minimum=minimum, maximum=maximum)


def check_seconds(
    name: str,
    value: Any,
    *,
    minimum: float = 0,
    maximum: float | None = None,
    above_minimum: bool = False,
) -> float:
    """A finite number of seconds (int or float) in range; ``above_minimum``: ``minimum`` excluded."""
    if not (_is_int(value) or isinstance(value, float)):
        raise InvalidArgumentTypeError(
            f"{name} must be a number of seconds, got {type(value).__name__}"
        )
    above = value > minimum if above_minimum else value >= minimum
    if not (math.isfinite(value) and above and (maximum is None or value <= maximum)):
        bounds = (">" if above_minimum else ">=") + f" {minimum}"
        bounds += "" if maximum is None else f" and <= {maximum}"
        raise InvalidArgumentError(f"{name} must be a number of seconds {bounds}, got {value!r}")
    return float(value)


def int_from_text(text: str, *, minimum: int, maximum: int) -> int:
    """``text``, decimal digits only (no sign, space or ``_``), as an int in ``[minimum, maximum]``.

    The ValueError completes "<what> <text> ...": ``is not a number`` or ``out of range
    (minimum-maximum)``; it never repeats ``text``.
    """
    if not _DIGITS.match(text):
        raise ValueError("is not a number")
    digits = text.lstrip("0") or "0"
    # int() of thousands of digits is slow (refused from Python 3.11): more digits, too big
    if len(digits) > len(str(maximum)) or not minimum <= int(digits) <= maximum:
        raise ValueError(f"out of range ({minimum}-{maximum})")
    return int(digits)


def seconds_from_text(text: str) -> float:
    """``text`` as a number of seconds > 0, digits with an optional fraction (``2.5``).

    Like :func:`int_from_text`, the ValueError never repeats ``text``.
    """
    if not _DECIMAL.match(text) or float(text) <= 0:
        raise ValueError("is not a number of seconds > 0 (e.g. 2.5)")
    return float(text)


def check_key(key: Any) -> str:
    """A history key: a non-empty str."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"a history key must be a non-empty str, got {key!r}")
    return key


def check_batch(encoded: Sequence[bytes], *, allow_empty: bool = False) -> None:
    """Encoded messages to write: a sequence (not bytes or str), not empty unless allowed."""
    if isinstance(encoded, (bytes, str)) or not isinstance(encoded, Sequence):
        raise InvalidArgumentTypeError("encoded messages must be a sequence of bytes")
    if not encoded and not allow_empty:
        raise InvalidArgumentError("a write needs at least one message")
