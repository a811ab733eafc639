"""Shared clients for one deployment: one sync client, one asyncio client per event loop.

Every history built for the same url (and retry policy) uses one
:class:`ClientProvider`, so per-request histories open no new connections. The provider
does no I/O of its own: the first call of a url sends ``INFO`` with its commands (see
:mod:`redis_chat_history.call`), and :meth:`ClientProvider.learn` reads the reply: a
plain ``redis://`` url that points at a Cluster node switches to Cluster, as
langchain_community detects it (a ``redis+cluster://`` url is a Cluster without it, and a
user without the INFO permission works too: the refusal teaches nothing), and an eviction
policy that voids part of the guarantee is named in one warning.

Example::

    provider = shared_provider("redis://localhost:6379/0")
    provider.sync()          # the shared redis.Redis (or RedisCluster), built on first use
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
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
from redis_chat_history.connection_spec import ConnectionSpec, Mode
from redis_chat_history.errors import InvalidArgumentError, InvalidURLError
from redis_chat_history.retry import DEFAULT_RETRY, RetryPolicy
from redis_chat_history.transport import open_async_cluster
from redis_chat_history.urls import parse_url

logger = logging.getLogger("redis_chat_history")

#: After the server refused scripts, writes use plain commands this long, then try a
#: script again (so a fixed ACL is picked up without a restart).
PLAIN_RECHECK_SECONDS = 300.0

#: What each eviction policy gives up (the README's "Eviction" paragraph says the same).
_EVICTION_GIVES_UP = {
    "volatile": (
        "it evicts keys that have a TTL first, and the writers key that makes a re-sent "
        "write apply once always has one: a write whose reply was lost and that is re-sent "
        "after that key was evicted is stored twice (exactly-once is given up under memory "
        "pressure)"
    ),
    "allkeys": (
        "it may evict any key, stored messages and whole histories included (messages "
        "acknowledged as stored can disappear under memory pressure)"
    ),
}


def _info_fields(reply: Any) -> dict[str, str]:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    fields = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            fields[name] = value.strip()
    return fields


class ClientProvider:
    """Lazily built, shared clients for one connection: one sync, one async per event loop.

    ``mode`` starts as ``"auto"`` for ``redis://`` urls and becomes ``"standalone"``
    or ``"cluster"`` once the first call's INFO is read (a MOVED reply later also
    switches). ``probe_server=False`` skips that INFO (the embedded server's pings).
    """

    def __init__(
        self,
        spec: ConnectionSpec | None,
        policy: RetryPolicy = DEFAULT_RETRY,
        *,
        sync_client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
        probe_server: bool = True,
    ) -> None:
        self.spec = spec
        self.policy = policy
        #: While ``time.monotonic()`` is below it, writes use the old class's plain
        #: commands: the server refused the scripts to this user (see call.py).
        self.plain_until = 0.0
        self.plain_recheck_seconds = PLAIN_RECHECK_SECONDS
        self.plain_warned = False
        #: Whether the next call sends INFO first (urls only: a given client is the user's).
        self.unprobed = spec is not None and probe_server
        self._lock = threading.Lock()
        self._sync = sync_client
        self._given_async = async_client
        self._async_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        given = sync_client or async_client
        if spec is not None:
            self.mode: Mode = spec.mode
        elif given is None:
            raise InvalidArgumentError("a ClientProvider needs a url, a client or an async_client")
        else:
            cluster = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
            self.mode = "cluster" if isinstance(given, cluster) else "standalone"
        self.display = spec.display if spec else describe_client(given)

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

    # -- what the calls learned ---------------------------------------------
    def plain_now(self) -> bool:
        """True while writes use plain commands (the server refused the scripts)."""
        return self.plain_until > time.monotonic()

    def refuse_scripts(self) -> None:
        """The server refused the scripts to this user: plain writes for a while."""
        self.plain_until = time.monotonic() + self.plain_recheck_seconds

    def claim_probe(self) -> bool:
        """True for the call that sends INFO first (one at a time; see :meth:`learn`)."""
        if not self.unprobed:
            return False
        self.unprobed = False
        return True

    def probe_again(self) -> None:
        """The call that sent INFO failed before reading it: the next call sends it."""
        self.unprobed = True

    def learn(self, info: Any) -> bool:
        """Read the first call's INFO reply; True when the clients must become Cluster clients.

        An error reply (INFO refused by an ACL) leaves a ``redis://`` url standalone
        (MOVED replies still switch it) and warns about nothing.
        """
        fields = {} if isinstance(info, Exception) else _info_fields(info)
        cluster = fields.get("cluster_enabled") == "1"
        policy = fields.get("maxmemory_policy", "noeviction")
        kind = policy.partition("-")[0]
        if kind in _EVICTION_GIVES_UP and fields.get("maxmemory", "0") != "0":
            logger.warning(
                "Redis at %s has maxmemory-policy %s: %s. Set maxmemory-policy noeviction "
                "to keep every guarantee (writes then fail with OutOfMemoryError when "
                "memory is full).",
                self.address,
                policy,
                _EVICTION_GIVES_UP[kind],
            )
        if self.mode != "auto":
            return False
        if cluster:
            return True
        with self._lock:
            if self.mode == "auto":
                self.mode = "standalone"
        return False

    # -- clients ------------------------------------------------------------
    def sync(self) -> SyncClient:
        """The shared sync client, created on first call (a Cluster client reads its slots)."""
        client = self._sync
        if client is not None:
            return client
        with self._lock:
            if self._sync is None:
                self._sync = build_sync_client(self._own_spec(), self.policy, self.mode)
            return self._sync

    def sync_if_built(self) -> SyncClient | None:
        """The sync client when one exists (reconnecting one that does not is a no-op)."""
        return self._sync

    async def async_(self) -> AsyncClient:
        """The asyncio client for the running event loop (one per loop, created on demand)."""
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        client = self._async_by_loop.get(loop)
        if client is not None:
            return client
        spec = self._own_spec()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        async with lock:  # a thousand first calls at once build one client
            client = self._async_by_loop.get(loop)
            if client is None:
                client = build_async_client(spec, self.policy, self.mode)
                await open_async_cluster(client)
                self._async_by_loop[loop] = client
        return client

    def _own_spec(self) -> ConnectionSpec:
        if self.spec is None:
            given = "an async_client" if self._given_async is not None else "a sync client"
            raise InvalidArgumentError(
                f"this history was built with {given} only; pass the other one "
                "(client= or async_client=) to use these methods"
            )
        return self.spec

    def switch_to_cluster(self) -> None:
        """The server is a Cluster node after all (INFO, or a MOVED reply)."""
        if self.spec is None or self.mode == "cluster":
            return
        with self._lock:
            self.mode = "cluster"
            old, self._sync = self._sync, None
            self._async_by_loop = weakref.WeakKeyDictionary()
        if old is not None:
            old.close()

    def close(self) -> None:
        """Close the sync client's connections (async ones close with their loops)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None and self.spec is not None:
            client.close()


# The registry is keyed by a digest of the url, so no password sits in a dict key.
_registry: dict[tuple[bytes, RetryPolicy], ClientProvider] = {}
_registry_lock = threading.Lock()


def shared_provider(
    url: str, policy: RetryPolicy = DEFAULT_RETRY, resolve: Callable[[str], str] = str
) -> ClientProvider:
    """The process-wide provider for ``url``: histories of one url share its pools.

    ``resolve`` turns ``url`` into the one to connect to, on first use only (settings.py
    starts the server of an ``embedded://`` url there).
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"url must be a str, got {type(url).__name__}")
    key = (hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=16).digest(), policy)
    provider = _registry.get(key)
    if provider is not None:
        return provider
    spec = parse_url(resolve(url))
    with _registry_lock:
        provider = _registry.get(key)
        if provider is None:
            provider = _registry[key] = ClientProvider(spec, policy)
        return provider


def close_shared_clients() -> None:
    """Close every shared sync client (for tests and orderly shutdown)."""
    with _registry_lock:
        providers = [_registry.pop(key) for key in list(_registry)]
    for provider in providers:
        provider.close()
