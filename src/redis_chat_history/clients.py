"""How a parsed url becomes a redis-py client: standalone, unix socket, TLS, Sentinel, Cluster.

Building a client does no network I/O. Every client is built with redis-py's own retry
switched off: :mod:`redis_chat_history.execution` applies the package's
:class:`~redis_chat_history.retry.RetryPolicy` to every call, sync and async alike, so
nothing is retried twice over.

Example::

    client = build_sync_client(parse_url("redis://localhost:6379/0"), RetryPolicy(), "standalone")
"""

from __future__ import annotations

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

from redis_chat_history.retry import RetryPolicy
from redis_chat_history.urls import DEFAULT_PORT, ConnectionSpec, Mode

SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

#: Connections per pool unless the url says ``max_connections``; more callers wait their turn.
DEFAULT_MAX_CONNECTIONS = 64


def _no_retry(kind: Any) -> Any:
    """redis-py's retry switched off: execution.py applies the RetryPolicy to every call."""
    return kind(NoBackoff(), 0)


def _connection_kwargs(spec: ConnectionSpec, policy: RetryPolicy) -> dict[str, Any]:
    """Keyword arguments shared by redis.Redis, RedisCluster and Sentinel connections."""
    options = dict(spec.options)
    options.pop("sentinel_username", None)
    options.pop("sentinel_password", None)
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
    kwargs.pop("max_connections", None)
    if "sentinel_username" in options or "sentinel_password" in options:
        kwargs["username"] = options.get("sentinel_username")
        kwargs["password"] = options.get("sentinel_password")
    return kwargs


def pool_size(spec: ConnectionSpec) -> int:
    """Connections per pool for ``spec`` (the url's ``max_connections`` or the default)."""
    return int(dict(spec.options).get("max_connections") or DEFAULT_MAX_CONNECTIONS)


def _blocking_pool_kwargs(pool: Any, spec: ConnectionSpec, policy: RetryPolicy) -> dict[str, Any]:
    """The same connections in a pool that makes callers wait for a free connection.

    redis-py's default pool raises "Too many connections" past its cap (1,000
    concurrent async requests hit it); a blocking pool queues them instead, for at
    most ``policy.pool_timeout`` seconds.
    """
    kwargs = dict(pool.connection_kwargs)
    kwargs.pop("max_connections", None)
    return {
        "connection_class": pool.connection_class,
        "max_connections": pool_size(spec),
        "timeout": policy.pool_timeout,
        **kwargs,
    }


def build_sync_client(spec: ConnectionSpec, policy: RetryPolicy, mode: Mode) -> SyncClient:
    """Create (without connecting) the sync client for ``spec`` in ``mode``."""
    kwargs = _connection_kwargs(spec, policy)
    retry = _no_retry(Retry)
    if mode == "sentinel":
        kwargs.pop("max_connections", None)
        sentinel = redis.sentinel.Sentinel(
            list(spec.hosts), sentinel_kwargs=_sentinel_kwargs(spec, policy, retry), **kwargs
        )
        return cast(redis.Redis, sentinel.master_for(spec.service_name, db=spec.db, retry=retry))
    if mode == "cluster":
        kwargs.pop("max_connections", None)
        nodes = [redis.cluster.ClusterNode(host, port) for host, port in spec.hosts]
        return redis.cluster.RedisCluster(startup_nodes=nodes, retry=retry, **kwargs)
    if spec.unix_socket_path:
        client = redis.Redis(
            unix_socket_path=spec.unix_socket_path, db=spec.db, retry=retry, **kwargs
        )
    else:
        host, port = spec.hosts[0] if spec.hosts else ("localhost", DEFAULT_PORT)
        client = redis.Redis(host=host, port=port, db=spec.db, retry=retry, **kwargs)
    return redis.Redis.from_pool(
        redis.BlockingConnectionPool(**_blocking_pool_kwargs(client.connection_pool, spec, policy))
    )


def build_async_client(spec: ConnectionSpec, policy: RetryPolicy, mode: Mode) -> AsyncClient:
    """Create (without connecting) the asyncio client for ``spec`` in ``mode``."""
    kwargs = _connection_kwargs(spec, policy)
    retry = _no_retry(redis.asyncio.retry.Retry)
    if mode == "sentinel":
        kwargs.pop("max_connections", None)
        sentinel = redis.asyncio.sentinel.Sentinel(
            list(spec.hosts), sentinel_kwargs=_sentinel_kwargs(spec, policy, retry), **kwargs
        )
        return cast(
            redis.asyncio.Redis, sentinel.master_for(spec.service_name, db=spec.db, retry=retry)
        )
    if mode == "cluster":
        kwargs.pop("max_connections", None)
        nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in spec.hosts]
        return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, retry=retry, **kwargs)
    if spec.unix_socket_path:
        client = redis.asyncio.Redis(
            unix_socket_path=spec.unix_socket_path, db=spec.db, retry=retry, **kwargs
        )
    else:
        host, port = spec.hosts[0] if spec.hosts else ("localhost", DEFAULT_PORT)
        client = redis.asyncio.Redis(host=host, port=port, db=spec.db, retry=retry, **kwargs)
    return redis.asyncio.Redis.from_pool(
        redis.asyncio.BlockingConnectionPool(
            **_blocking_pool_kwargs(client.connection_pool, spec, policy)
        )
    )


def describe_client(client: Any) -> str:
    """host:port of a user-provided client, without credentials."""
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
