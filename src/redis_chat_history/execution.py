"""Running a :class:`~redis_chat_history.operations.Plan`: one set of rules, sync and async.

:class:`_Call` decides everything (sans I/O): what to send, and what a reply or a
failure means — send again as EVAL after NOSCRIPT, follow MOVED and ASK, re-read a
failed-over master, retry a connection failure under the
:class:`~redis_chat_history.retry.RetryPolicy`, switch to the old class's plain commands
when scripts are refused, raise this package's errors. :func:`run` and :func:`arun`
only move bytes: take a pooled connection (of the key's Cluster node), send the plan's
commands in one write, read one reply per command, give the connection back.

A request is re-sent after it may have reached the server only when the plan is
idempotent (reads, and writes carrying a writer token: see writers.py); otherwise the
call raises :class:`~redis_chat_history.errors.WriteOutcomeUnknownError`.

Example::

    from redis_chat_history.operations import count_plan
    n = run(provider, count_plan("message_store:s1"))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio.cluster
import redis.cluster
import redis.sentinel
from redis import exceptions as redis_errors
from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError
from redis.crc import key_slot

from redis_chat_history import writers
from redis_chat_history.clients import AsyncClient, SyncClient
from redis_chat_history.errors import (
    ChatHistoryError,
    CommandError,
    PermissionDeniedError,
    PoolExhaustedError,
    RedisUnavailableError,
    WriteOutcomeUnknownError,
    WrongTypeError,
)
from redis_chat_history.operations import Plan, type_plan
from redis_chat_history.provider import ClientProvider
from redis_chat_history.settings import ReplicaWait

T = TypeVar("T")

logger = logging.getLogger("redis_chat_history")

#: NOSCRIPT, MOVED, ASK and a switch to Cluster each cost one more send, a few at most.
_REDIRECTS = 4
#: What redis-py raises (RedisClusterException is not a RedisError subclass).
REDIS_ERRORS = (redis_errors.RedisError, redis_errors.RedisClusterException)
#: Replies of a node that is no longer the master (after a failover).
_STALE_MARKERS = ("READONLY", "WAIT cannot be used with replica", "MASTERDOWN")
#: Replies that refuse a request without applying it; it is sent again after a backoff.
_BUSY_ERRORS = (
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    redis_errors.BusyLoadingError,
    redis_errors.MasterDownError,
)
_PLAIN_MARKER = "RCHPLAIN"


# ---------------------------------------------------------------------------
# Errors


def translate(error: BaseException, provider: ClientProvider, key: str) -> ChatHistoryError:
    """This package's error for a redis-py error, naming the key or server, never a password."""
    raw = str(error)  # for recognising the error; only ``text`` is shown
    text = provider.redact(raw)
    where = provider.address
    if isinstance(error, (redis_errors.AuthenticationError, redis_errors.AuthorizationError)):
        return PermissionDeniedError(f"Redis at {where} refused the credentials: {text}")
    if isinstance(error, redis_errors.NoPermissionError) or "can't run this command" in raw:
        return PermissionDeniedError(f"Redis at {where} refused an operation on {key!r}: {text}")
    if isinstance(error, (redis.sentinel.MasterNotFoundError, AsyncMasterNotFoundError)):
        service = provider.spec.service_name if provider.spec else "?"
        return RedisUnavailableError(
            f"cannot reach Redis through the sentinels at {where}: none named a master "
            f"for service {service!r}"
        )
    if "WRONGTYPE" in raw:
        return WrongTypeError(
            f"{key!r} holds a Redis value that is not a list, so it is not a chat history "
            "(nothing was changed)",
            key=key,
        )
    if isinstance(
        error, (*_BUSY_ERRORS, redis_errors.MovedError, redis_errors.AskError)
    ) or _is_stale_master(error):
        return RedisUnavailableError(f"Redis at {where} cannot serve {key!r} now: {text}")
    if isinstance(error, (*REDIS_ERRORS, ConnectionError, TimeoutError, OSError)) and not (
        isinstance(error, redis_errors.ResponseError)
    ):
        return RedisUnavailableError(f"cannot reach Redis at {where}: {text}")
    return CommandError(f"Redis at {where} failed an operation on {key!r}: {text}")


def _is_pool_exhausted(error: BaseException) -> bool:
    return isinstance(error, redis_errors.MaxConnectionsError) or (
        isinstance(error, redis_errors.ConnectionError) and str(error) == "No connection available."
    )


def _is_connection_failure(error: BaseException, sent: bool) -> bool:
    """The connection broke or timed out: the request may be re-sent under the policy.

    Before the request was written, any failure of the client counts (redis-py's
    asyncio Cluster has raised AttributeError while connecting under load).
    """
    if isinstance(
        error,
        (
            redis_errors.AuthenticationError,
            redis_errors.AuthorizationError,
            redis_errors.ResponseError,
        ),
    ):
        return False
    if isinstance(
        error,
        (
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
            redis_errors.RedisClusterException,
            ConnectionError,
            TimeoutError,
            OSError,
        ),
    ):
        return True
    return not sent and isinstance(error, (redis_errors.RedisError, AttributeError))


def _is_stale_master(error: BaseException) -> bool:
    """The node answered as a replica: a failover moved the master (Sentinel, Cluster)."""
    return isinstance(error, redis_errors.ReadOnlyError) or any(
        marker in str(error) for marker in _STALE_MARKERS
    )


_plain_warned = False
_plain_lock = threading.Lock()


def _warn_plain_once(provider: ClientProvider, reason: str) -> None:
    global _plain_warned
    with _plain_lock:
        if _plain_warned:
            return
        _plain_warned = True
    logger.warning(
        "Redis at %s refused the scripts this package writes with (%s): writes now use "
        "the old class's plain commands (LPUSH, LTRIM, EXPIRE, pipelined). Given up: "
        "exactly-once on re-send (a write whose reply is lost raises "
        "WriteOutcomeUnknownError instead of being re-sent) and the atomic push+trim+expire. "
        "Grant the commands listed in the README ('A minimal ACL user') to get them back.",
        provider.address,
        reason,
    )


# ---------------------------------------------------------------------------
# The decisions of one call


class _WrongType(Exception):
    """A reply said WRONGTYPE: the shells look up the key's type, then raise."""


@dataclass(slots=True)
class _Step:
    """What the shells do next: return ``value``, or wait ``delay`` seconds and send again."""

    done: bool
    value: Any = None
    delay: float = 0.0


class _Call(Generic[T]):
    """The state of one call of a plan: what to send next and what each outcome means."""

    def __init__(
        self,
        provider: ClientProvider,
        plan: Plan[T],
        wait: ReplicaWait | None,
        token: writers.WriterToken | None,
        node: Any,
    ) -> None:
        self.provider = provider
        self.plan = plan
        self.active: Plan[T] = (
            plan.plain() if provider.scripts_refused and plan.plain is not None else plan
        )
        self.wait = wait if plan.writes else None
        self.token = token
        self.node = node
        self.as_eval = False
        self.ask: tuple[str, int] | None = None
        self.failures = 0
        self.redirects = 0
        #: True when the clients must reconnect (or re-read the cluster's slots) first.
        self.reconnect = False

    @property
    def slot(self) -> int:
        """The Cluster slot of the plan's key."""
        return key_slot(self.plan.key.encode("utf-8", "surrogateescape"))

    def commands(self) -> list[tuple[Any, ...]]:
        """The commands of the next send (ASKING and WAIT around the plan's own)."""
        commands: list[tuple[Any, ...]] = [("ASKING",)] if self.ask else []
        for command in self.active.commands:
            args = command.as_eval() if self.as_eval and command.script else command.args
            if self.token is not None and command.writer_at is not None:
                args = self.token.fill(args, command.writer_at)
            commands.append(args)
        if self.wait is not None:
            commands.append(("WAIT", self.wait.replicas, self.wait.timeout_ms))
        return commands

    def _retry_delay(self, error: BaseException) -> float:
        if self.failures >= self.provider.policy.attempts:
            raise translate(error, self.provider, self.plan.key) from error
        self.failures += 1
        return self.provider.policy.backoff(self.failures)

    def _redirect(self, error: BaseException) -> float:
        self.redirects += 1
        if self.redirects <= _REDIRECTS:
            return 0.0
        if isinstance(error, (redis_errors.MovedError, redis_errors.AskError)):
            # the Cluster's map is still settling (a failover, a reshard): wait, per the policy
            return self._retry_delay(error)
        raise translate(error, self.provider, self.plan.key) from error

    def failed(self, error: BaseException, sent: bool) -> _Step:
        """The exchange raised (nothing or not all was read): send again, or raise."""
        self.reconnect = False
        if _is_pool_exhausted(error) and not sent:
            size = self.provider.pool_size
            raise PoolExhaustedError(
                f"every pooled connection to Redis at {self.provider.address} stayed busy for "
                f"{self.provider.policy.pool_timeout:g} s"
                + (f" (pool of {size})" if size else "")
                + "; raise max_connections in the url (e.g. ?max_connections=256) or lower "
                "the concurrency"
            ) from error
        if not _is_connection_failure(error, sent):
            raise translate(error, self.provider, self.plan.key) from error
        if sent and not self.active.idempotent:
            raise WriteOutcomeUnknownError(
                f"the connection to Redis at {self.provider.address} failed after a write to "
                f"{self.plan.key!r} was sent: it may or may not have been applied "
                f"({self.provider.redact(str(error))})"
            ) from error
        # The failed connection is closed already (a Sentinel connection asks for the master
        # again when it reconnects); a Cluster re-reads its slots, the node may have failed over.
        self.reconnect = self.provider.is_cluster
        if self.failures >= self.provider.policy.attempts:
            raised = translate(error, self.provider, self.plan.key)
            if isinstance(raised, CommandError):  # e.g. redis-py's AttributeError on connect
                raised = RedisUnavailableError(
                    f"cannot reach Redis at {self.provider.address}: "
                    f"{self.provider.redact(str(error))}"
                )
            raise raised from error
        return _Step(False, delay=self._retry_delay(error))

    def replied(self, replies: list[Any]) -> _Step:
        """Every reply was read: the result, or why and when to send again."""
        self.reconnect = False
        if self.ask is None and self.wait is None:  # the common case, kept short
            for reply in replies:
                if isinstance(reply, Exception):
                    return self._refused(reply, replies)
            return _Step(True, self.active.parse(replies))
        if self.ask:
            replies = replies[1:]
            self.ask = None
        wait_reply = replies.pop() if self.wait is not None else None
        error = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if error is None and isinstance(wait_reply, Exception):
            error = wait_reply
        if error is not None:
            return self._refused(error, replies)
        if self.wait is not None:
            self.wait.check(wait_reply, self.plan.key)
        return _Step(True, self.active.parse(replies))

    def _refused(self, error: Exception, replies: list[Any]) -> _Step:
        """The server refused the request (so applied nothing of it, for a script)."""
        text = str(error)
        if not self.active.idempotent and any(
            not isinstance(reply, Exception) for reply in replies
        ):
            # part of a plain pipeline was applied: sending it again could apply it twice
            raise translate(error, self.provider, self.plan.key) from error
        if isinstance(error, redis_errors.NoScriptError):
            self.as_eval = True
            return _Step(False, delay=self._redirect(error))
        if isinstance(error, redis_errors.MovedError):
            if self.provider.is_cluster:
                self.reconnect = True  # a slot moved (failover, resharding): re-read the map
            else:
                self.provider.switch_to_cluster()
            return _Step(False, delay=self._redirect(error))
        if isinstance(error, redis_errors.AskError):
            self.ask = (error.host, int(error.port))
            return _Step(False, delay=self._redirect(error))
        if (
            self.active is self.plan
            and self.plan.plain is not None
            and (
                text.startswith(_PLAIN_MARKER) or isinstance(error, redis_errors.NoPermissionError)
            )
        ):
            reason = text[len(_PLAIN_MARKER) :].strip() if text.startswith(_PLAIN_MARKER) else text
            self.provider.scripts_refused = True
            _warn_plain_once(self.provider, self.provider.redact(reason))
            self.active = self.plan.plain()
            return _Step(False)
        if "WRONGTYPE" in text:
            raise _WrongType(text)
        if isinstance(error, _BUSY_ERRORS):
            return _Step(False, delay=self._retry_delay(error))
        if _is_stale_master(error):
            self.reconnect = True
            return _Step(False, delay=self._retry_delay(error))
        raise translate(error, self.provider, self.plan.key) from error

    def wrong_type(self, kind: str | None) -> WrongTypeError:
        what = f"a Redis {kind}" if kind else "a Redis value that is not a list"
        return WrongTypeError(
            f"{self.plan.key!r} holds {what}, so it is not a chat history (nothing was changed)",
            key=self.plan.key,
        )


def _no_reply(replies: list[Any]) -> None:
    return None


class _SendFailed(Exception):
    """An exchange failed; ``sent`` tells whether the request may have reached the server."""

    def __init__(self, error: BaseException, sent: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent


# ---------------------------------------------------------------------------
# Sync shell


def _pack(connection: Any, commands: list[tuple[Any, ...]]) -> Any:
    if len(commands) == 1:
        return connection.pack_command(*commands[0])
    return connection.pack_commands(commands)


def _read_sync(connection: Any) -> Any:
    try:
        return connection.read_response()
    except redis_errors.ResponseError as error:
        return error


def _pool_sync(client: SyncClient, call: _Call[Any]) -> Any:
    # provider.is_cluster, not isinstance: RedisCluster's Protocol metaclass costs ~0.6 µs
    if not call.provider.is_cluster:
        return client.connection_pool  # type: ignore[union-attr]
    assert isinstance(client, redis.cluster.RedisCluster)
    if call.ask is not None:
        node = client.get_node(host=call.ask[0], port=call.ask[1])
    else:
        node = call.node or client.nodes_manager.get_node_from_slot(call.slot)
    return node.redis_connection.connection_pool


def _exchange_sync(client: SyncClient, call: _Call[Any]) -> list[Any]:
    commands = call.commands()
    try:
        pool = _pool_sync(client, call)
        connection = pool.get_connection()
    except Exception as error:
        raise _SendFailed(error, sent=False) from error
    sent = False
    try:
        if connection._sock is None:  # failing here, nothing was sent
            connection.connect()
        sent = True
        connection.send_packed_command(_pack(connection, commands), check_health=False)
        return [_read_sync(connection) for _ in commands]
    except BaseException as error:
        connection.disconnect()  # a reply may still be on its way: never reuse this socket
        if isinstance(error, Exception):
            raise _SendFailed(error, sent) from error
        raise
    finally:
        pool.release(connection)


def run(
    provider: ClientProvider,
    plan: Plan[T],
    wait: ReplicaWait | None = None,
    *,
    node: Any = None,
) -> T:
    """Run ``plan`` with the shared sync client and return its parsed reply."""
    token = writers.acquire(plan.key, provider.policy) if plan.has_writer else None
    try:
        call = _Call(provider, plan, wait, token, node)
        while True:
            try:
                step = call.replied(_exchange_sync(provider.sync(), call))
            except _SendFailed as failure:
                step = call.failed(failure.error, failure.sent)
            except _WrongType:
                raise call.wrong_type(_type_sync(provider, plan.key)) from None
            except REDIS_ERRORS as error:  # building a Cluster client reads its slots
                step = call.failed(error, sent=False)
            if step.done:
                return step.value  # type: ignore[no-any-return]
            if call.reconnect:
                with contextlib.suppress(*REDIS_ERRORS, OSError):
                    provider.reconnect_sync()
            if step.delay:
                time.sleep(step.delay)
    finally:
        if token is not None:
            writers.release(plan.key, token)


def _type_sync(provider: ClientProvider, key: str) -> str | None:
    try:
        return run(provider, type_plan(key))
    except ChatHistoryError:
        return None  # TYPE not allowed or the server went away: say less


def masters(provider: ClientProvider, key: str) -> list[Any]:
    """The nodes a listing must visit: every master of a Cluster, else the server (None).

    Finding them may need the network (Cluster detection, the slot map): the retry
    policy applies, and ``key`` (a pattern) is named in errors.
    """
    call: _Call[None] = _Call(provider, Plan((), key, _no_reply), None, None, None)
    while True:
        try:
            client = provider.sync()
            if isinstance(client, redis.cluster.RedisCluster):
                return list(client.get_primaries())
            return [None]
        except REDIS_ERRORS as error:
            step = call.failed(error, sent=False)
        time.sleep(step.delay)


# ---------------------------------------------------------------------------
# Async shell


async def _read_async(connection: Any) -> Any:
    try:
        return await connection.read_response()
    except redis_errors.ResponseError as error:
        return error


async def _exchange_async(client: AsyncClient, call: _Call[Any]) -> list[Any]:
    commands = call.commands()
    node: Any = None
    pool: Any = None
    try:
        if call.provider.is_cluster:
            assert isinstance(client, redis.asyncio.cluster.RedisCluster)
            if call.ask is not None:
                node = client.get_node(host=call.ask[0], port=call.ask[1])
            else:
                node = call.node or client.nodes_manager.get_node_from_slot(call.slot)
            connection = node.acquire_connection()
        else:
            pool = client.connection_pool  # type: ignore[union-attr]
            connection = await pool.get_connection()
    except Exception as error:
        raise _SendFailed(error, sent=False) from error
    sent = False
    try:
        if not connection.is_connected:  # failing here, nothing was sent
            await connection.connect()
        sent = True
        await connection.send_packed_command(_pack(connection, commands), check_health=False)
        return [await _read_async(connection) for _ in commands]
    except BaseException as error:
        await connection.disconnect()
        if isinstance(error, Exception):
            raise _SendFailed(error, sent) from error
        raise
    finally:
        if node is not None:
            node.release(connection)
        else:
            await pool.release(connection)


async def arun(
    provider: ClientProvider,
    plan: Plan[T],
    wait: ReplicaWait | None = None,
    *,
    node: Any = None,
) -> T:
    """Run ``plan`` with the event loop's asyncio client and return its parsed reply."""
    token = writers.acquire(plan.key, provider.policy) if plan.has_writer else None
    try:
        call = _Call(provider, plan, wait, token, node)
        while True:
            try:
                step = call.replied(await _exchange_async(await provider.async_(), call))
            except _SendFailed as failure:
                step = call.failed(failure.error, failure.sent)
            except _WrongType:
                raise call.wrong_type(await _type_async(provider, plan.key)) from None
            except REDIS_ERRORS as error:
                step = call.failed(error, sent=False)
            if step.done:
                return step.value  # type: ignore[no-any-return]
            if call.reconnect:
                with contextlib.suppress(*REDIS_ERRORS, OSError):
                    await provider.areconnect()
            if step.delay:
                await asyncio.sleep(step.delay)
    finally:
        if token is not None:
            writers.release(plan.key, token)


async def _type_async(provider: ClientProvider, key: str) -> str | None:
    try:
        return await arun(provider, type_plan(key))
    except ChatHistoryError:
        return None


async def amasters(provider: ClientProvider, key: str) -> list[Any]:
    """Async :func:`masters`."""
    call: _Call[None] = _Call(provider, Plan((), key, _no_reply), None, None, None)
    while True:
        try:
            client = await provider.async_()
            if isinstance(client, redis.asyncio.cluster.RedisCluster):
                return list(client.get_primaries())
            return [None]
        except REDIS_ERRORS as error:
            step = call.failed(error, sent=False)
        await asyncio.sleep(step.delay)
