"""Every use of redis-py below its public API, in one place: pools, packed commands, errors.

:mod:`redis_chat_history.call` decides what to send and what a reply means without
touching a socket; the drivers in :mod:`redis_chat_history.execution` hand its actions
to the functions here. Where sync and async must exist twice (taking a pooled
connection, sending, reading, reconnecting) both twins sit next to each other, a few
lines each, deciding nothing.

Each internal is marked ``redis-py:`` with the versions it was checked on: 6.2.0 (the
floor in constraints/lowest.txt) and 8.1.0 (the newest the suite runs). Errors are
recognised by their redis-py type; by their text only where redis-py has no type
(marked "no type").
"""

from __future__ import annotations

import contextlib
from typing import Any

import hiredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis import exceptions as redis_errors
from redis._parsers import BaseParser
from redis.connection import HiredisRespSerializer

SyncClient = redis.Redis | redis.cluster.RedisCluster
Commands = list[tuple[Any, ...]]
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

#: What redis-py raises (RedisClusterException is not a RedisError subclass).
REDIS_ERRORS = (redis_errors.RedisError, redis_errors.RedisClusterException)
#: Replies that refuse a request without applying it; it is sent again after a backoff.
BUSY_ERRORS = (
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    redis_errors.BusyLoadingError,
    redis_errors.MasterDownError,
)
MASTER_NOT_FOUND = (
    redis.sentinel.MasterNotFoundError,
    redis.asyncio.sentinel.MasterNotFoundError,
)


class Failed:
    """An exchange raised: ``sent`` tells whether the request may have reached the server."""

    __slots__ = ("error", "sent")

    def __init__(self, error: BaseException, sent: bool) -> None:
        self.error = error
        self.sent = sent


# ---------------------------------------------------------------------------
# Errors: what a redis-py exception means


def is_pool_exhausted(error: BaseException) -> bool:
    """Every connection of a pool is in use (nothing was sent)."""
    # redis-py 8.1: MaxConnectionsError; 6.2 raises a bare ConnectionError (no type) with
    # "Too many connections" (non-blocking pools) or "No connection available." (blocking).
    return isinstance(error, redis_errors.MaxConnectionsError) or (
        type(error) is redis_errors.ConnectionError
        and str(error) in ("No connection available.", "Too many connections")
    )


def pool_waited(error: BaseException) -> bool:
    """True when the pool had already waited its timeout before refusing (a blocking pool)."""
    # redis-py 6.2 and 8.1: BlockingConnectionPool raises this text after its timeout (no type).
    return str(error) == "No connection available."


def is_connection_failure(error: BaseException, sent: bool) -> bool:
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


def is_stale_master(error: BaseException) -> bool:
    """The node answered as a replica: a failover moved the master (Sentinel, Cluster)."""
    if isinstance(error, (redis_errors.ReadOnlyError, redis_errors.MasterDownError)):
        return True
    # no type: WAIT sent to a replica
    return isinstance(error, redis_errors.ResponseError) and str(error).startswith(
        "WAIT cannot be used with replica"
    )


def typed_error(reply: str) -> Exception:
    """The exception redis-py raises for the error reply ``reply`` (e.g. ReadOnlyError)."""
    # redis-py 6.2, 8.1: redis._parsers.BaseParser.parse_error (a classmethod)
    return BaseParser.parse_error(reply)  # type: ignore[no-any-return]


def is_credentials_refused(error: BaseException) -> bool:
    return isinstance(error, (redis_errors.AuthenticationError, redis_errors.AuthorizationError))


def is_no_permission(error: BaseException) -> bool:
    """NOPERM; Redis 6.2 says "can't run this command" inside a script (no type)."""
    return isinstance(error, redis_errors.NoPermissionError) or "can't run this command" in str(
        error
    )


# ---------------------------------------------------------------------------
# Sending: one packed write, one read per command


def _pack(connection: Any, commands: Commands) -> Any:
    # redis-py 6.2, 8.1: Connection.pack_command / pack_commands (sync and asyncio alike)
    if len(commands) == 1:
        command = commands[0]
        # redis-py 6.2, 8.1: a sync Connection's _command_packer; HiredisRespSerializer.pack
        # only splits a name holding a space and (8.x) copies bytearray and memoryview
        # arguments, which a plan never holds: packed here, ~0.7 µs less per call
        if type(getattr(connection, "_command_packer", None)) is HiredisRespSerializer:
            name = command[0]
            if type(name) is str and " " not in name:
                return [hiredis.pack_command(command)]
        return connection.pack_command(*command)
    return connection.pack_commands(commands)


def _node(client: Any, slot: int | None, node: Any, ask: Any) -> Any:
    """The Cluster node a request goes to: ``node``, else ``ask``'s, else ``slot``'s."""
    # redis-py 6.2, 8.1 (sync and asyncio RedisCluster): get_node(host=, port=),
    # nodes_manager.get_node_from_slot(slot)
    if ask is not None:
        return client.get_node(host=ask[0], port=ask[1])
    if node is None:
        return client.nodes_manager.get_node_from_slot(slot)
    return node


def exchange_sync(
    client: SyncClient, cluster: bool, commands: Commands, slot: int | None, node: Any, ask: Any
) -> list[Any] | Failed:
    """Send ``commands`` in one write and read one reply each (error replies as values).

    Raises no Exception: every failure is returned as a Failed that tells whether the
    request may have been sent (the drivers count on it).
    """
    try:
        # provider.is_cluster, not isinstance: RedisCluster's Protocol metaclass costs ~0.6 µs
        if cluster:
            # redis-py 6.2, 8.1: ClusterNode.redis_connection.connection_pool
            pool = _node(client, slot, node, ask).redis_connection.connection_pool
        else:
            pool = client.connection_pool  # type: ignore[union-attr]
        connection = pool.get_connection()
    except Exception as error:
        return Failed(error, sent=False)
    sent = False
    try:
        # redis-py 6.2, 8.1: Connection._sock is None until connected (no public flag in 6.2)
        if connection._sock is None:
            connection.connect()  # failing here, nothing was sent
        sent = True
        # check_health=False: no PING before each write (the package retries on failure)
        connection.send_packed_command(_pack(connection, commands), check_health=False)
        replies = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis_errors.ResponseError as refused:
                replies.append(refused)
        return replies
    except BaseException as error:
        # a reply may still be on its way: never reuse this socket
        # redis-py 6.2, 8.1: the sync disconnect() and release() swallow socket errors
        connection.disconnect()
        if isinstance(error, Exception):
            return Failed(error, sent)
        raise
    finally:
        pool.release(connection)


async def exchange_async(
    client: AsyncClient, cluster: bool, commands: Commands, slot: int | None, node: Any, ask: Any
) -> list[Any] | Failed:
    """Async :func:`exchange_sync` (it raises no Exception either)."""
    pool: Any = None
    try:
        if cluster:
            # redis-py 6.2, 8.1: asyncio ClusterNode.acquire_connection() / release(c);
            # acquire raises MaxConnectionsError at once when the node's pool is full
            node = _node(client, slot, node, ask)
            connection = node.acquire_connection()
        else:
            pool = client.connection_pool  # type: ignore[union-attr]
            connection = await pool.get_connection()
    except Exception as error:
        return Failed(error, sent=False)
    sent = False
    try:
        if not connection.is_connected:
            await connection.connect()
        sent = True
        await connection.send_packed_command(_pack(connection, commands), check_health=False)
        replies = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except redis_errors.ResponseError as refused:
                replies.append(refused)
        return replies
    except BaseException as error:
        await _drop(connection)
        if isinstance(error, Exception):
            return Failed(error, sent)
        raise
    finally:
        # redis-py 8.1: the asyncio pool's release() disconnects a connection a maintenance
        # notification marked, which may raise as _drop says: the outcome above stands
        try:  # not contextlib.suppress: no object more per call
            if pool is None:
                node.release(connection)
            else:
                await pool.release(connection)
        except Exception:
            pass


async def _drop(connection: Any) -> None:
    # redis-py 6.2, 8.1: the asyncio disconnect() raises TimeoutError when closing takes
    # longer than socket_connect_timeout; the socket is dropped all the same
    with contextlib.suppress(Exception):
        await connection.disconnect()


# ---------------------------------------------------------------------------
# Reconnecting, listing a Cluster's masters, preparing clients


def reconnect_sync(client: SyncClient | None) -> None:
    """After a failover: drop the connections (a Sentinel pool asks for the master again
    when it reconnects) or re-read a Cluster's slots."""
    # redis-py 6.2, 8.1: RedisCluster.nodes_manager.initialize(), ConnectionPool.disconnect()
    if isinstance(client, redis.cluster.RedisCluster):
        client.nodes_manager.initialize()
    elif client is not None:
        client.connection_pool.disconnect()


async def reconnect_async(client: AsyncClient) -> None:
    """Async :func:`reconnect_sync`."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        await client.nodes_manager.initialize()
    else:
        await client.connection_pool.disconnect()


def primaries(client: SyncClient | AsyncClient) -> list[Any]:
    """The nodes a listing visits: every master of a Cluster, else the server (None)."""
    if isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)):
        return list(client.get_primaries())
    return [None]


async def open_async_cluster(client: AsyncClient) -> None:
    """Read an asyncio Cluster's slots now, once, before tasks share the client."""
    # redis-py 6.2, 8.1: the lazy initialize races when many tasks make their first call
    # at once ('NoneType' object has no attribute 'writelines').
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        await client.initialize()


def blocking_pool_kwargs(pool: Any, max_connections: int, timeout: float) -> dict[str, Any]:
    """Arguments of a Blocking(Connection)Pool holding the same connections as ``pool``."""
    # redis-py 6.2, 8.1: ConnectionPool.connection_kwargs / connection_class (sync, asyncio)
    kwargs = dict(pool.connection_kwargs)
    kwargs.pop("max_connections", None)
    return {
        "connection_class": pool.connection_class,
        "max_connections": max_connections,
        "timeout": timeout,
        **kwargs,
    }


def client_address(client: Any) -> str:
    """host:port of a user-provided client, without credentials."""
    from redis_chat_history.connection_spec import DEFAULT_PORT

    try:
        if isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)):
            nodes = client.get_nodes()
            return ",".join(f"{node.host}:{node.port}" for node in nodes[:3]) or "redis cluster"
        kwargs = client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', DEFAULT_PORT)}"
    except Exception:
        return type(client).__name__
