"""The settings a history and a store share, checked once: :class:`Settings`.

Example::

    settings = Settings.build(ttl=3600, max_messages=200)
    settings.key("user-42")        # 'message_store:user-42'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from redis_chat_history.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    ReplicationError,
)
from redis_chat_history.operations import (
    MAX_EXPIRE_SECONDS,
    MAX_MESSAGES,
    check_int,
    is_companion_key,
)

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_KEY_PREFIX = "message_store:"


@dataclass(frozen=True)
class ReplicaWait:
    """Return from a write only once ``replicas`` replicas acknowledged it (Redis WAIT).

    Example::

        RedisChatMessageHistory("s1", url, wait_for_replicas=1, wait_timeout=0.5)
    """

    replicas: int
    timeout_ms: int

    def check(self, acknowledged: Any, key: str) -> None:
        count = int(acknowledged)
        if count < self.replicas:
            raise ReplicationError(
                f"write to {key!r} was applied on the master but only {count} of "
                f"{self.replicas} replicas acknowledged it within {self.timeout_ms} ms",
                acknowledged=count,
                requested=self.replicas,
            )


def _optional_int(name: str, value: Any, *, minimum: int, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"{name} must be an int or None, got {type(value).__name__}")
    return check_int(name, value, minimum=minimum, maximum=maximum)


def validate_session_id(session_id: Any) -> str:
    """A session id must be a non-empty str (any characters, glob ones included)."""
    if not isinstance(session_id, str):
        raise InvalidArgumentTypeError(f"session_id must be a str, got {type(session_id).__name__}")
    if not session_id:
        raise InvalidArgumentError("session_id must not be empty")
    return session_id


@dataclass(frozen=True)
class Settings:
    """How the histories of one store (or one history) read and write.

    Build it with :meth:`build`, which checks every value and names the bad one.
    """

    key_prefix: str = DEFAULT_KEY_PREFIX
    ttl: int | None = None
    max_messages: int | None = None
    compress: bool = False
    wait: ReplicaWait | None = None
    skip_corrupt: bool = False

    @classmethod
    def build(
        cls,
        *,
        key_prefix: Any = DEFAULT_KEY_PREFIX,
        ttl: Any = None,
        max_messages: Any = None,
        compress: Any = False,
        wait_for_replicas: Any = None,
        wait_timeout: Any = 1.0,
        skip_corrupt: Any = False,
    ) -> Settings:
        if not isinstance(key_prefix, str):
            raise InvalidArgumentTypeError(
                f"key_prefix must be a str, got {type(key_prefix).__name__}"
            )
        # The old class silently deleted the history on a negative ttl; refuse it instead.
        ttl = _optional_int("ttl", ttl, minimum=0, maximum=MAX_EXPIRE_SECONDS)
        max_messages = _optional_int("max_messages", max_messages, minimum=1, maximum=MAX_MESSAGES)
        wait = None
        if wait_for_replicas is not None:
            replicas = _optional_int(
                "wait_for_replicas", wait_for_replicas, minimum=1, maximum=2**31
            )
            if (
                isinstance(wait_timeout, bool)
                or not isinstance(wait_timeout, (int, float))
                or not math.isfinite(wait_timeout)
                or not 0 < wait_timeout <= 2**31 / 1000
            ):
                raise InvalidArgumentError(
                    f"wait_timeout must be a number of seconds > 0, got {wait_timeout!r}"
                )
            assert replicas is not None
            wait = ReplicaWait(replicas, max(1, round(wait_timeout * 1000)))
        return cls(key_prefix, ttl, max_messages, bool(compress), wait, bool(skip_corrupt))

    def key(self, session_id: Any) -> str:
        """The Redis key of ``session_id``; refuses ids that name another session's companion key."""
        key = self.key_prefix + validate_session_id(session_id)
        if "\x00" in session_id and is_companion_key(key):
            raise InvalidArgumentError(
                f"session_id {session_id!r} names a key this package keeps beside another "
                "session (its writers or staging key); choose another id"
            )
        return key
