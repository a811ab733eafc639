"""Waiting for replicas: a write returns only once enough replicas acknowledged it (WAIT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis_chat_history.errors import ReplicationError


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
