"""How a parsed url becomes a redis-py client: standalone, unix socket, TLS, Sentinel, Cluster.

Building a client does no network I/O (but a sync Cluster client reads its slots when
built). Every client is built with redis-py's own retry switched off: the call machine
(:mod:`redis_chat_history.call`) applies the package's
:class:`~redis_chat_history.retry.RetryPolicy` to every call, sync and async alike, so
nothing is retried twice over. One builder serves both: :data:`SYNC` and :data:`ASYNC`
name the redis-py classes of each side.

Example::

    client = build_sync_client(parse_url("redis://localhost:6379/0"), RetryPolicy(), "standalone")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_chat_history.connection_spec import DEFAULT_PORT, ConnectionSpec, Mode
from redis_chat_history.retry import RetryPolicy
from redis_chat_history.transport import (
    AsyncClient,
    SyncClient,
    blocking_pool_kwargs,
    client_address,
)

__all__ = [
    "ASYNC",
    "DEFAULT_MAX_CONNECTIONS",
    "SYNC",
    "AsyncClient",
    "SyncClient",
    "build_async_client",
    "build_sync_client",
    "describe_client",
    "pool_size",
]

#: Connections per pool unless the url says ``max_connections``; more callers wait their turn.
DEFAULT_MAX_CONNECTIONS = 64


@dataclass(frozen=True)
class Classes:
    """The redis-py classes one side (sync or asyncio) builds its clients from."""

    redis: Any
    cluster: Any
    cluster_node: Any
    sentinel: Any
    blocking_pool: Any
    retry: Any


SYNC = Classes(
    redis.Redis,
    redis.cluster.RedisCluster,
    redis.cluster.ClusterNode,
    redis.sentinel.Sentinel,
    redis.BlockingConnectionPool,
    Retry,
)
ASYNC = Classes(
    redis.asyncio.Redis,
    redis.asyncio.cluster.RedisCluster,
    redis.asyncio.cluster.ClusterNode,
    redis.asyncio.sentinel.Sentinel,
    redis.asyncio.BlockingConnectionPool,
    redis.asyncio.retry.Retry,
)


def _connection_kwargs(spec: ConnectionSpec, policy: RetryPolicy) -> dict[str, Any]:
    """Keyword arguments shared by redis.Redis, RedisCluster and Sentinel connections."""
    options = dict(spec.options)
    options.pop("sentinel_username", None)
    options.pop("sentinel_password", None)
    options.pop("max_connections", None)  # see pool_size: each mode passes it its own way
    kwargs: dict[str, Any] = {
        "username": spec.username,
        "password": spec.password,
        "socket_connect_timeout": policy.connect_timeout,
        "socket_timeout": policy.socket_timeout,
    }
    kwargs.update(options)
    if spec.tls:
        kwargs["ssl"] = True
        kwargs.setdefault("ssl_cert_reqs", "required")
        if kwargs["ssl_cert_reqs"] == "none":
            kwargs.setdefault("ssl_check_hostname", False)
    return kwargs


def _sentinel_kwargs(spec: ConnectionSpec, policy: RetryPolicy, retry: Any) -> dict[str, Any]:
    """Connection options for the sentinels themselves (same TLS, own credentials if given)."""
    options = dict(spec.options)
    kwargs = _connection_kwargs(spec, policy)
    kwargs["retry"] = retry
    kwargs.pop("db", None)
    kwargs.pop("client_name", None)
    if "sentinel_username" in options or "sentinel_password" in options:
        kwargs["username"] = options.get("sentinel_username")
        kwargs["password"] = options.get("sentinel_password")
    return kwargs


def pool_size(spec: ConnectionSpec) -> int:
    """Connections per pool for ``spec`` (the url's ``max_connections`` or the default)."""
    return int(dict(spec.options).get("max_connections") or DEFAULT_MAX_CONNECTIONS)


def build_client(classes: Classes, spec: ConnectionSpec, policy: RetryPolicy, mode: Mode) -> Any:
    """Create (without connecting) the client of ``classes`` for ``spec`` in ``mode``.

    Standalone clients get a blocking pool: redis-py's default pool raises "Too many
    connections" past its cap, a blocking pool makes callers wait at most
    ``policy.pool_timeout`` seconds. Sentinel and Cluster pools refuse at once when full;
    the call machine then waits for a free connection for as long (see call.py).
    """
    kwargs = _connection_kwargs(spec, policy)
    retry = classes.retry(NoBackoff(), 0)  # the RetryPolicy applies, not redis-py's
    size = pool_size(spec)
    if mode == "sentinel":
        sentinel = classes.sentinel(
            list(spec.hosts), sentinel_kwargs=_sentinel_kwargs(spec, policy, retry), **kwargs
        )
        return sentinel.master_for(spec.service_name, db=spec.db, retry=retry, max_connections=size)
    if mode == "cluster":
        nodes = [classes.cluster_node(host, port) for host, port in spec.hosts]
        return classes.cluster(startup_nodes=nodes, retry=retry, max_connections=size, **kwargs)
    if spec.unix_socket_path:
        client = classes.redis(
            unix_socket_path=spec.unix_socket_path, db=spec.db, retry=retry, **kwargs
        )
    else:
        host, port = spec.hosts[0] if spec.hosts else ("localhost", DEFAULT_PORT)
        client = classes.redis(host=host, port=port, db=spec.db, retry=retry, **kwargs)
    pool = blocking_pool_kwargs(client.connection_pool, size, policy.pool_timeout)
    return classes.redis.from_pool(classes.blocking_pool(**pool))


def build_sync_client(spec: ConnectionSpec, policy: RetryPolicy, mode: Mode) -> SyncClient:
    """The sync client for ``spec`` in ``mode`` (see :func:`build_client`)."""
    return cast(SyncClient, build_client(SYNC, spec, policy, mode))


def build_async_client(spec: ConnectionSpec, policy: RetryPolicy, mode: Mode) -> AsyncClient:
    """The asyncio client for ``spec`` in ``mode`` (see :func:`build_client`)."""
    return cast(AsyncClient, build_client(ASYNC, spec, policy, mode))


def describe_client(client: Any) -> str:
    """host:port of a user-provided client, without credentials."""
    return client_address(client)
