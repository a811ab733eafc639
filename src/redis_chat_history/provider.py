"""Shared clients for one deployment: one sync client, one asyncio client per event loop.

Every history built for the same url (and retry policy) uses one
:class:`ClientProvider`, so per-request histories open no new connections. A plain
``redis://`` url is checked for Cluster with ``INFO cluster`` on first use, as
langchain_community does; ``redis+cluster://`` skips that check, so a user without
the INFO permission works too.

Example::

    provider = shared_provider("redis://localhost:6379/0")
    provider.sync()          # the shared redis.Redis (or RedisCluster), built on first use
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from typing import Any

import redis
import redis.asyncio.cluster
import redis.cluster

from redis_chat_history.clients import (
    AsyncClient,
    SyncClient,
    build_async_client,
    build_sync_client,
    describe_client,
    pool_size,
)
from redis_chat_history.errors import InvalidArgumentError, InvalidURLError
from redis_chat_history.retry import DEFAULT_RETRY, RetryPolicy
from redis_chat_history.urls import ConnectionSpec, Mode, parse_url


def _is_cluster_reply(info: dict[str, Any]) -> bool:
    return bool(info.get("cluster_enabled"))


class ClientProvider:
    """Lazily built, shared clients for one connection: one sync, one async per event loop.

    ``mode`` starts as ``"auto"`` for ``redis://`` urls and becomes ``"standalone"``
    or ``"cluster"`` on first use (INFO cluster; a MOVED reply later also switches).
    """

    def __init__(
        self,
        spec: ConnectionSpec | None,
        policy: RetryPolicy = DEFAULT_RETRY,
        *,
        sync_client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
    ) -> None:
        self.spec = spec
        self.policy = policy
        #: True once the server refused scripts or string commands (see execution.py):
        #: writes then use the old class's plain commands.
        self.scripts_refused = False
        self._lock = threading.Lock()
        self._sync = sync_client
        self._given_async = async_client
        self._async_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        if spec is not None:
            self.mode: Mode = spec.mode
        elif sync_client is not None:
            self.mode = (
                "cluster" if isinstance(sync_client, redis.cluster.RedisCluster) else "standalone"
            )
        elif async_client is not None:
            self.mode = (
                "cluster"
                if isinstance(async_client, redis.asyncio.cluster.RedisCluster)
                else "standalone"
            )
        else:
            raise InvalidArgumentError("a ClientProvider needs a url, a client or an async_client")
        self.display = spec.display if spec else describe_client(sync_client or async_client)

    @property
    def is_cluster(self) -> bool:
        return self.mode == "cluster"

    @property
    def address(self) -> str:
        """Where the server is (host:port or socket path), never with credentials."""
        return self.spec.address if self.spec else self.display

    @property
    def pool_size(self) -> int | None:
        """Connections per pool of the clients this provider builds (None: the caller's)."""
        return pool_size(self.spec) if self.spec else None

    def redact(self, text: str) -> str:
        return self.spec.redact(text) if self.spec else text

    # -- sync ---------------------------------------------------------------
    def sync(self) -> SyncClient:
        """The shared sync client, created (and its mode detected) on first call."""
        client = self._sync
        if client is not None:
            return client
        with self._lock:
            if self._sync is None:
                if self.spec is None:
                    raise InvalidArgumentError(
                        "this history was built with async_client only; use the async methods "
                        "or pass client= as well"
                    )
                if self.mode == "auto":
                    self.mode = self._detect_sync()
                self._sync = build_sync_client(self.spec, self.policy, self.mode)
            return self._sync

    def _detect_sync(self) -> Mode:
        assert self.spec is not None
        probe = build_sync_client(self.spec, self.policy, "standalone")
        try:
            info = probe.info("cluster")
        except redis.exceptions.ResponseError:
            return "standalone"  # INFO not allowed (ACL): MOVED replies will switch later
        finally:
            probe.close()
        return "cluster" if _is_cluster_reply(info) else "standalone"

    def switch_to_cluster(self) -> None:
        """Called on a MOVED reply: the server is a cluster node after all."""
        if self.spec is None or self.mode == "cluster":
            return
        with self._lock:
            self.mode = "cluster"
            old, self._sync = self._sync, None
            self._async_by_loop = weakref.WeakKeyDictionary()
        if old is not None:
            old.close()

    def reconnect_sync(self) -> None:
        """After a failover: drop connections (Sentinel re-discovers) or re-read Cluster slots."""
        client = self._sync
        if isinstance(client, redis.cluster.RedisCluster):
            client.nodes_manager.initialize()
        elif client is not None:
            client.connection_pool.disconnect()

    # -- async --------------------------------------------------------------
    async def areconnect(self) -> None:
        """Async :meth:`reconnect_sync` for the running loop's client."""
        client = await self.async_()
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            await client.nodes_manager.initialize()
        else:
            await client.connection_pool.disconnect()

    async def async_(self) -> AsyncClient:
        """The asyncio client for the running event loop (one per loop, created on demand)."""
        if self._given_async is not None:
            return self._given_async
        if self.spec is None:
            raise InvalidArgumentError(
                "this history was built with a sync client only; pass async_client= "
                "to use the async methods"
            )
        loop = asyncio.get_running_loop()
        client = self._async_by_loop.get(loop)
        if client is not None:
            return client
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        async with lock:  # a thousand first calls at once build one client, probe once
            client = self._async_by_loop.get(loop)
            if client is None:
                if self.mode == "auto":
                    mode = await self._detect_async()
                    with self._lock:
                        if self.mode == "auto":
                            self.mode = mode
                client = build_async_client(self.spec, self.policy, self.mode)
                if isinstance(client, redis.asyncio.cluster.RedisCluster):
                    # redis-py's lazy initialize races when many tasks make their first
                    # call at once ('NoneType' object has no attribute 'writelines').
                    await client.initialize()
                self._async_by_loop[loop] = client
        return client

    async def _detect_async(self) -> Mode:
        assert self.spec is not None
        probe = build_async_client(self.spec, self.policy, "standalone")
        try:
            info = await probe.info("cluster")
        except redis.exceptions.ResponseError:
            return "standalone"
        finally:
            await probe.aclose()
        return "cluster" if _is_cluster_reply(info) else "standalone"

    def close(self) -> None:
        """Close the sync client's connections (async ones close with their loops)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None and self.spec is not None:
            client.close()


# The registry is keyed by a digest of the url, so no password sits in a dict key.
_registry: dict[tuple[bytes, RetryPolicy], ClientProvider] = {}
_registry_lock = threading.Lock()


def shared_provider(url: str, policy: RetryPolicy = DEFAULT_RETRY) -> ClientProvider:
    """The process-wide provider for ``url``: histories of one url share its pools.

    ``embedded://[data_dir]`` starts (or reuses) a private redis-server first.
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"url must be a str, got {type(url).__name__}")
    key = (hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=16).digest(), policy)
    provider = _registry.get(key)
    if provider is not None:
        return provider
    if url.startswith("embedded://"):
        from redis_chat_history.embedded import embedded_url

        spec = parse_url(embedded_url(url[len("embedded://") :] or None))
    else:
        spec = parse_url(url)
    with _registry_lock:
        provider = _registry.get(key)
        if provider is None:
            provider = _registry[key] = ClientProvider(spec, policy)
        return provider


def close_shared_clients() -> None:
    """Close every shared sync client (for tests and orderly shutdown)."""
    with _registry_lock:
        providers = list(_registry.values())
        _registry.clear()
    for provider in providers:
        provider.close()
