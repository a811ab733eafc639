"""How a call is retried: one :class:`RetryPolicy` for the sync and the asyncio path.

The call machine (:mod:`redis_chat_history.call`) applies it to every call: when the
server cannot be reached, a request is re-sent after a backoff with jitter (redis-py's
``ExponentialWithJitterBackoff``), at most ``attempts`` times. A write is re-sent only
when that is safe: its request never left this process, or the write is idempotent
(every write the package sends with scripts carries a writer token the server checks).

Example::

    RedisChatMessageHistory("s1", url, retry=RetryPolicy(attempts=0))  # fail fast
    RedisChatMessageHistory("s1", url, retry=RetryPolicy(attempts=8, backoff_cap=2.0))
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from redis.backoff import ExponentialWithJitterBackoff

from redis_chat_history.checks import check_int, check_seconds

#: Sends a call may make besides the first and its ``attempts`` re-sends, each at most once
#: per call: the script's source after NOSCRIPT, a slot redirect (MOVED, which may also
#: switch the client to Cluster), an ASK redirect, the plain twin after the server refused
#: scripts. Any further redirect takes one of the policy's attempts.
EXTRA_SENDS = 4


@dataclass(frozen=True)
class RetryPolicy:
    """How calls are retried when the server cannot be reached (sync and async alike).

    Args:
        attempts: re-sends after a connection failure or a failover reply (0: fail fast).
        backoff_base / backoff_cap: the n-th re-send waits a random time up to
            ``min(backoff_cap, backoff_base * 2**n)`` seconds.
        connect_timeout: seconds to open a connection.
        socket_timeout: seconds to wait for a reply (None: wait as long as it takes).

    Example::

        RedisChatMessageHistory("s1", url, retry=RetryPolicy(attempts=0))  # fail fast
    """

    attempts: int = 3
    backoff_base: float = 0.05
    backoff_cap: float = 1.0
    connect_timeout: float = 5.0
    socket_timeout: float | None = 10.0

    def __post_init__(self) -> None:
        check_int("RetryPolicy.attempts", self.attempts, minimum=0)
        check_seconds("RetryPolicy.backoff_base", self.backoff_base)
        check_seconds("RetryPolicy.backoff_cap", self.backoff_cap)
        check_seconds("RetryPolicy.connect_timeout", self.connect_timeout, above_minimum=True)
        if self.socket_timeout is not None:
            check_seconds("RetryPolicy.socket_timeout", self.socket_timeout, above_minimum=True)

    def backoff(self, failures: int) -> float:
        """Seconds to wait before the ``failures``-th re-send (full jitter, capped)."""
        return float(
            ExponentialWithJitterBackoff(cap=self.backoff_cap, base=self.backoff_base).compute(
                failures - 1
            )
        )

    @property
    def pool_timeout(self) -> float:
        """Seconds a call waits for a free pooled connection before it fails."""
        return self.connect_timeout + (self.socket_timeout or 0)

    @property
    def max_sends(self) -> int:
        """The most times one call sends its request: the call machine never sends more."""
        return 1 + self.attempts + EXTRA_SENDS

    @property
    def send_seconds(self) -> float:
        """The longest one send may take: a pooled connection, connecting, the reply, a backoff."""
        return (
            self.pool_timeout + self.connect_timeout + (self.socket_timeout or 0) + self.backoff_cap
        )

    @property
    def longest_call_seconds(self) -> float:
        """An upper bound of the time between a call's first send and its last re-send.

        The server remembers a write's token at least this long after applying it, so a
        re-send that arrives late is still recognised (writer tokens, see
        :mod:`redis_chat_history.writers`): :attr:`max_sends` sends of :attr:`send_seconds` each. The call machine
        holds a call to it: it makes no re-send that could end later than this after the
        first send (time spent reconnecting included). A policy without a socket timeout
        has no such bound: ten minutes are used.
        """
        if self.socket_timeout is None:
            return 600.0
        return self.max_sends * self.send_seconds

    @functools.cached_property
    def window_seconds(self) -> int:
        """:attr:`longest_call_seconds` in whole seconds (what the write scripts are told)."""
        return max(1, math.ceil(self.longest_call_seconds))


DEFAULT_RETRY = RetryPolicy()
