"""Running a :class:`~redis_chat_history.operations.Plan`: a few lines of sync code, a few of async.

Both shells do the same things in the same order: send the plan's command (EVAL
when the server does not know the script yet), optionally WAIT for replicas on
the same connection, switch to Cluster on a MOVED reply, turn redis-py errors
into this package's errors, and parse the reply with the plan.

Example::

    from redis_chat_history.operations import count_plan
    n = run(provider, count_plan("message_store:s1"))
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
import redis.asyncio.cluster
import redis.cluster
import redis.sentinel
from redis import exceptions as redis_errors
from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError

from redis_chat_history.clients import AsyncClient, SyncClient
from redis_chat_history.errors import (
    ChatHistoryError,
    CommandError,
    InvalidArgumentError,
    PermissionDeniedError,
    RedisUnavailableError,
    ReplicationError,
    WrongTypeError,
)
from redis_chat_history.operations import Plan
from redis_chat_history.provider import ClientProvider

T = TypeVar("T")

_RESENDS = 3  # NOSCRIPT and MOVED each cost at most one more send
#: What redis-py raises (RedisClusterException is not a RedisError subclass).
REDIS_ERRORS = (redis_errors.RedisError, redis_errors.RedisClusterException)
#: Replies of a node that is no longer the master (after a failover).
_STALE_MARKERS = ("READONLY", "WAIT cannot be used with replica", "MASTERDOWN")


@dataclass(frozen=True)
class ReplicaWait:
    """Return from a write only once ``replicas`` replicas acknowledged it (Redis WAIT).

    Example::

        RedisChatMessageHistory("s1", url, wait_for_replicas=1, wait_timeout=0.5)
    """

    replicas: int
    timeout_ms: int

    def __post_init__(self) -> None:
        if (
            not isinstance(self.replicas, int)
            or isinstance(self.replicas, bool)
            or self.replicas < 1
        ):
            raise InvalidArgumentError(
                f"wait_for_replicas must be an int >= 1, got {self.replicas!r}"
            )
        if self.timeout_ms < 1:
            raise InvalidArgumentError(
                f"wait_timeout must be > 0 seconds, got {self.timeout_ms / 1000}"
            )

    def check(self, acknowledged: Any, key: str) -> None:
        count = int(acknowledged)
        if count < self.replicas:
            raise ReplicationError(
                f"write to {key!r} was applied on the master but only {count} of "
                f"{self.replicas} replicas acknowledged it within {self.timeout_ms} ms",
                acknowledged=count,
                requested=self.replicas,
            )


def translate(
    error: redis_errors.RedisError | Exception, provider: ClientProvider, key: str
) -> ChatHistoryError:
    """This package's error for a redis-py error, naming the key or server, never a password."""
    text = provider.redact(str(error))
    where = provider.address
    if isinstance(error, (redis_errors.AuthenticationError, redis_errors.AuthorizationError)):
        return PermissionDeniedError(f"Redis at {where} refused the credentials: {text}")
    if isinstance(error, redis_errors.NoPermissionError) or "can't run this command" in text:
        return PermissionDeniedError(f"Redis at {where} refused an operation on {key!r}: {text}")
    if isinstance(error, (redis.sentinel.MasterNotFoundError, AsyncMasterNotFoundError)):
        service = provider.spec.service_name if provider.spec else "?"
        return RedisUnavailableError(
            f"cannot reach Redis through the sentinels at {where}: none named a master "
            f"for service {service!r}"
        )
    if isinstance(error, redis_errors.MaxConnectionsError) or "No connection available" in text:
        return RedisUnavailableError(
            f"every pooled connection to Redis at {where} stayed busy; raise max_connections "
            f"in the url or lower the concurrency: {text}"
        )
    if isinstance(
        error,
        (
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
            redis_errors.ClusterDownError,
            redis_errors.TryAgainError,
            redis_errors.RedisClusterException,
            redis_errors.ReadOnlyError,
            ConnectionError,
            TimeoutError,
        ),
    ):
        return RedisUnavailableError(f"cannot reach Redis at {where}: {text}")
    if "WRONGTYPE" in text:
        return WrongTypeError(
            f"{key!r} holds a Redis value that is not a list, so it is not a chat history",
            key=key,
        )
    return CommandError(f"Redis at {where} failed an operation on {key!r}: {text}")


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def _sends_directly(client: SyncClient, wait: ReplicaWait | None) -> bool:
    """True when a command goes straight to a pooled connection (see :func:`_send_direct`)."""
    return (
        wait is None
        and isinstance(client, redis.Redis)
        and getattr(client, "connection", None) is None  # not a single-connection client
    )


def _send_direct(client: redis.Redis, args: tuple[Any, ...]) -> Any:
    """One command on a connection of the client's own pool, its raw reply back.

    redis-py 8's ``execute_command`` wraps each call in retry and metrics hooks
    that cost about 14 µs, as much as the rest of a write; the retry policy is
    applied by :func:`run` instead (a re-sent write is deduplicated by its token).
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command(connection.pack_command(*args))
        return connection.read_response()
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def _send_sync(
    client: SyncClient, args: tuple[Any, ...], key: str, wait: ReplicaWait | None
) -> Any:
    if wait is None:
        if _sends_directly(client, wait):
            return _send_direct(cast(redis.Redis, client), args)
        return client.execute_command(*args)
    # WAIT counts the writes of its own connection: send both through one pipeline.
    target: Any = client
    if isinstance(client, redis.cluster.RedisCluster):
        target = client.get_node_from_key(key).redis_connection
    pipe = target.pipeline(transaction=False)
    pipe.execute_command(*args)
    pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)
    replies = pipe.execute(raise_on_error=False)
    _raise_first_error(replies)
    wait.check(replies[1], key)
    return replies[0]


async def _send_async(
    client: AsyncClient, args: tuple[Any, ...], key: str, wait: ReplicaWait | None
) -> Any:
    if wait is None:
        return await client.execute_command(*args)
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        node = client.get_node_from_key(key)
        replies = await _async_cluster_node_pipeline(node, args, wait)
    else:
        pipe = client.pipeline(transaction=False)
        pipe.execute_command(*args)
        pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)
        replies = await pipe.execute(raise_on_error=False)
    _raise_first_error(replies)
    wait.check(replies[1], key)
    return replies[0]


async def _async_cluster_node_pipeline(
    node: Any, args: tuple[Any, ...], wait: ReplicaWait
) -> list[Any]:
    """Send the write and WAIT on one connection of a cluster node."""
    connection = node.acquire_connection()
    try:
        await connection.send_packed_command(
            connection.pack_commands([args, ("WAIT", wait.replicas, wait.timeout_ms)])
        )
        replies: list[Any] = []
        for _ in range(2):
            try:
                replies.append(await connection.read_response())
            except redis_errors.ResponseError as error:
                replies.append(error)
        return replies
    finally:
        node.release(connection)


def _is_connection_failure(error: Exception) -> bool:
    """The connection broke or timed out (not: refused credentials, a full pool)."""
    return isinstance(
        error, (redis_errors.ConnectionError, redis_errors.TimeoutError)
    ) and not isinstance(
        error,
        (
            redis_errors.AuthenticationError,
            redis_errors.AuthorizationError,
            redis_errors.MaxConnectionsError,
        ),
    )


def _is_stale_master(error: Exception) -> bool:
    """The node answered as a replica: a failover moved the master (Sentinel, Cluster)."""
    return isinstance(error, redis_errors.ReadOnlyError) or any(
        marker in str(error) for marker in _STALE_MARKERS
    )


class _Attempts:
    """Counts the re-sends of one call: script loads, cluster redirects, stale masters."""

    def __init__(self, provider: ClientProvider, plan: Plan[Any]) -> None:
        self.provider = provider
        self.plan = plan
        self.args = plan.command.args
        self.resends = 0
        self.stale = 0
        self.failures = 0
        #: True when the clients must reconnect (or re-read the cluster's slots) first.
        self.reconnect = False

    def next_after(self, error: Exception, *, retry_connection: bool = False) -> float | None:
        """Seconds to wait before sending again, or None when ``error`` is final.

        Re-sending a write is safe: its token makes the server apply it at most once.
        """
        self.reconnect = False
        if isinstance(error, redis_errors.NoScriptError):
            self.args = self.plan.command.as_eval()
        elif isinstance(error, redis_errors.MovedError):
            if self.provider.is_cluster:
                self.reconnect = True  # a slot moved (failover, resharding): re-read the map
            else:
                self.provider.switch_to_cluster()
        elif retry_connection and _is_connection_failure(error):
            # the direct path has no redis-py retry: apply the policy here
            if self.failures >= self.provider.policy.attempts:
                return None
            self.failures += 1
            return self.provider.policy.backoff(self.failures)
        elif _is_stale_master(error) and self.stale < self.provider.policy.attempts:
            self.stale += 1
            self.reconnect = True
            return self.provider.policy.backoff(self.stale)
        else:
            return None
        self.resends += 1
        return 0.0 if self.resends <= _RESENDS else None


def run(provider: ClientProvider, plan: Plan[T], wait: ReplicaWait | None = None) -> T:
    """Run ``plan`` with the shared sync client and return its parsed reply."""
    attempts = _Attempts(provider, plan)
    wait = wait if plan.writes else None
    while True:
        client: SyncClient | None = None
        try:
            client = provider.sync()
            reply = _send_sync(client, attempts.args, plan.key, wait)
        except REDIS_ERRORS as error:
            direct = client is not None and _sends_directly(client, wait)
            delay = attempts.next_after(error, retry_connection=direct)
            if delay is None:
                raise translate(error, provider, plan.key) from error
            if attempts.reconnect:
                provider.reconnect_sync()  # Sentinel finds the new master, Cluster its slots
            if delay:
                time.sleep(delay)
            continue
        return plan.parse(reply)


async def arun(provider: ClientProvider, plan: Plan[T], wait: ReplicaWait | None = None) -> T:
    """Run ``plan`` with the event loop's asyncio client and return its parsed reply."""
    attempts = _Attempts(provider, plan)
    wait = wait if plan.writes else None
    while True:
        try:
            reply = await _send_async(await provider.async_(), attempts.args, plan.key, wait)
        except REDIS_ERRORS as error:
            delay = attempts.next_after(error)
            if delay is None:
                raise translate(error, provider, plan.key) from error
            if attempts.reconnect:
                await provider.areconnect()
                await asyncio.sleep(delay)
            continue
        return plan.parse(reply)
