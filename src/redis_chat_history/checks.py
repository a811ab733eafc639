"""The one number checker: ints and seconds given by callers, checked before anything is sent.

A wrong type is :class:`InvalidArgumentTypeError` (a TypeError), a value out of range
:class:`InvalidArgumentError` (a ValueError); each message names the argument. ``bool``
is refused where a number is meant (``True`` is an ``int`` to Python, not to a user).

Example::

    >>> check_int("max_messages", 200, minimum=1)
    200
    >>> check_optional_int("ttl", None, minimum=0)  # None: not set
    >>> check_seconds("wait_timeout", 0.5, minimum=0, above_minimum=True)
    0.5
    >>> check_int("limit", -1, minimum=0)
    Traceback (most recent call last):
    redis_chat_history.errors.InvalidArgumentError: limit must be >= 0, got -1
"""

from __future__ import annotations

import math
from typing import Any

from redis_chat_history.errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["check_int", "check_optional_int", "check_seconds"]


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
    low = ">" if above_minimum else ">="
    if not math.isfinite(value) or value < minimum or (above_minimum and value == minimum):
        raise InvalidArgumentError(
            f"{name} must be a number of seconds {low} {minimum}, got {value!r}"
        )
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be <= {maximum} seconds, got {value!r}")
    return float(value)
