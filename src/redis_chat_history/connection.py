"""How a url becomes a Redis client: standalone, unix socket, TLS, Sentinel, Cluster.

Urls understood (``rediss`` is the TLS twin of every ``redis`` scheme)::

    redis://[[user]:password@]host[:port][/db][?option=value...]
    rediss://...                      TLS, certificates verified unless ssl_cert_reqs=none
    unix:///path/to/redis.sock[?db=N]
    redis+sentinel://[user:pass@]host:port[,host2:port2...]/service_name[/db]
    redis+cluster://[user:pass@]host:port[,host2:port2...]
    embedded://[data_dir]             a private redis-server started on demand

A plain ``redis://`` url is checked for Cluster with ``INFO cluster`` on first use,
as langchain_community does; ``redis+cluster://`` skips that check, so a user
without the INFO permission works too.

Clients are shared: every history built for the same url (and options) uses one
sync client, and one asyncio client per event loop, so per-request histories
open no new connections. Building a client does no network I/O.

Example::

    >>> spec = parse_url("redis://alice:s3cret@cache:6380/2")
    >>> spec.display
    'redis://alice:***@cache:6380/2'
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from redis_chat_history.errors import InvalidArgumentError, InvalidURLError

SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
Mode = Literal["auto", "standalone", "cluster", "sentinel"]

_DEFAULT_PORT = 6379
#: Connections per pool unless the url says ``max_connections``; more callers wait their turn.
DEFAULT_MAX_CONNECTIONS = 64
_DEFAULT_SENTINEL_PORT = 26379

_SCHEMES: dict[str, tuple[Mode, bool]] = {
    "redis": ("auto", False),
    "rediss": ("auto", True),
    "unix": ("standalone", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}

_CERT_REQS = {"none", "optional", "required"}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _to_bool(value: str) -> bool:
    word = value.strip().lower()
    if word not in _BOOL_WORDS:
        raise ValueError("expected true or false")
    return _BOOL_WORDS[word]


def _to_positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be > 0")
    return number


def _to_positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be > 0")
    return number


def _to_cert_reqs(value: str) -> str:
    if value not in _CERT_REQS:
        raise ValueError(f"expected one of {sorted(_CERT_REQS)}")
    return value


#: Query options accepted in a url, with their parsers; anything else is an error.
_QUERY_OPTIONS: dict[str, Any] = {
    "db": int,
    "ssl_ca_certs": str,
    "ssl_ca_path": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": _to_cert_reqs,
    "ssl_check_hostname": _to_bool,
    "socket_timeout": _to_positive_float,
    "socket_connect_timeout": _to_positive_float,
    "max_connections": _to_positive_int,
    "health_check_interval": int,
    "client_name": str,
    "sentinel_username": str,
    "sentinel_password": str,
}
_TLS_OPTIONS = {
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How failed calls are retried: ``attempts`` retries with capped exponential backoff.

    Retrying a write is safe: every write carries a token that the server
    remembers, so a write whose reply was lost is not applied twice.

    Example::

        RedisChatMessageHistory("s1", url, retry=RetryPolicy(attempts=0))  # fail fast
    """

    attempts: int = 3
    backoff_base: float = 0.05
    backoff_cap: float = 1.0
    connect_timeout: float = 5.0
    socket_timeout: float | None = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 0:
            raise InvalidArgumentError(
                f"RetryPolicy.attempts must be an int >= 0, got {self.attempts!r}"
            )
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise InvalidArgumentError("RetryPolicy backoff values must be >= 0")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before re-sending after the ``attempt``-th failover reply."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))

    def sync_retry(self) -> Retry:
        backoff = (
            ExponentialWithJitterBackoff(base=self.backoff_base, cap=self.backoff_cap)
            if self.attempts
            else NoBackoff()
        )
        return Retry(backoff, self.attempts)

    def async_retry(self) -> redis.asyncio.retry.Retry:
        backoff = (
            ExponentialWithJitterBackoff(base=self.backoff_base, cap=self.backoff_cap)
            if self.attempts
            else NoBackoff()
        )
        return redis.asyncio.retry.Retry(backoff, self.attempts)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class ConnectionSpec:
    """A parsed connection url. ``display`` is safe to print; secrets are kept out of repr."""

    mode: Mode
    tls: bool
    display: str
    hosts: tuple[tuple[str, int], ...] = ()
    unix_socket_path: str | None = None
    db: int = 0
    service_name: str = "mymaster"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)

    @property
    def address(self) -> str:
        """Where the server is, without credentials (``host:port[,host:port]`` or a socket)."""
        if self.unix_socket_path:
            return self.unix_socket_path
        return ",".join(f"{host}:{port}" for host, port in self.hosts)

    def redact(self, text: str) -> str:
        """``text`` with the password (if any) replaced by ``***``."""
        secrets = [self.password, dict(self.options).get("sentinel_password")]
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also for urls that do not parse).

    Example::

        >>> redact_url("redis://:pw@h:1/0")
        'redis://:***@h:1/0'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, hostpart = authority.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        authority = f"{user}:***@{hostpart}"
    elif at:
        authority = f"{userinfo}@{hostpart}"
    return f"{scheme}://{authority}{slash}{tail}"


def _parse_hosts(text: str, default_port: int, url_for_errors: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise InvalidURLError(f"empty host in {url_for_errors}")
        if item.startswith("["):  # [ipv6]:port
            host, _, port_text = item[1:].partition("]")
            port_text = port_text.lstrip(":")
        elif item.count(":") == 1:
            host, port_text = item.split(":")
        else:
            host, port_text = item, ""
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise InvalidURLError(
                f"port {port_text!r} is not a number in {url_for_errors}"
            ) from None
        if not 0 < port < 65536:
            raise InvalidURLError(f"port {port} out of range in {url_for_errors}")
        hosts.append((unquote(host) or "localhost", port))
    return tuple(hosts)


def _parse_db(text: str, url_for_errors: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise InvalidURLError(f"database {text!r} is not a number in {url_for_errors}") from None
    if db < 0:
        raise InvalidURLError(f"database {db} is negative in {url_for_errors}")
    return db


def parse_url(url: str) -> ConnectionSpec:
    """Parse a connection url; raises :class:`InvalidURLError` naming what is wrong.

    Example::

        >>> parse_url("redis+sentinel://s1:26379,s2:26379/mymaster/0").mode
        'sentinel'
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"url must be a str, got {type(url).__name__}")
    shown = redact_url(url)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _SCHEMES:
        known = ", ".join(f"{name}://" for name in [*_SCHEMES, "embedded"])
        raise InvalidURLError(f"unsupported url {shown!r}: scheme must be one of {known}")
    mode, tls = _SCHEMES[scheme]
    rest, _, query = rest.partition("?")
    rest, _, _fragment = rest.partition("#")
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        parser = _QUERY_OPTIONS.get(name)
        if parser is None:
            raise InvalidURLError(
                f"unknown option {name!r} in {shown!r}; known: {', '.join(sorted(_QUERY_OPTIONS))}"
            )
        try:
            options[name] = parser(value)
        except ValueError as error:
            raise InvalidURLError(f"option {name}={value!r} in {shown!r}: {error}") from None
    if not tls and _TLS_OPTIONS & options.keys():
        raise InvalidURLError(f"TLS options need a rediss:// url, got {shown!r}")

    username: str | None = None
    password: str | None = None
    db = 0
    service_name = "mymaster"
    hosts: tuple[tuple[str, int], ...] = ()
    unix_socket_path: str | None = None
    if scheme == "unix":
        authority, path = "", rest
        userinfo, at, path_only = rest.rpartition("@")
        if at:
            authority, path = userinfo, path_only
        if not path.startswith("/"):
            raise InvalidURLError(f"unix url needs an absolute socket path: {shown!r}")
        unix_socket_path = unquote(path)
        userinfo = authority
    else:
        authority, _, path = rest.partition("/")
        userinfo, _, hostpart = authority.rpartition("@")
        default_port = _DEFAULT_SENTINEL_PORT if mode == "sentinel" else _DEFAULT_PORT
        hosts = _parse_hosts(hostpart or "localhost", default_port, shown)
        parts = [part for part in path.split("/") if part]
        if mode == "sentinel":
            if parts:
                service_name = unquote(parts[0])
            if len(parts) > 1:
                db = _parse_db(parts[1], shown)
            if len(parts) > 2:
                raise InvalidURLError(f"sentinel url path is /service_name/db: {shown!r}")
        else:
            if len(hosts) > 1 and mode != "cluster":
                raise InvalidURLError(
                    f"several hosts need redis+sentinel:// or redis+cluster://: {shown!r}"
                )
            if parts:
                if len(parts) > 1:
                    raise InvalidURLError(f"url path must be /db: {shown!r}")
                db = _parse_db(parts[0], shown)
    if userinfo:
        user_text, has_password, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if has_password else None
    if "db" in options:
        db = options.pop("db")
        if db < 0:
            raise InvalidURLError(f"database {db} is negative in {shown!r}")
    if mode == "cluster" and db != 0:
        raise InvalidURLError(f"Redis Cluster has only database 0: {shown!r}")
    return ConnectionSpec(
        mode=mode,
        tls=tls,
        display=shown,
        hosts=hosts,
        unix_socket_path=unix_socket_path,
        db=db,
        service_name=service_name,
        username=username,
        password=password,
        options=tuple(sorted(options.items())),
    )


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
    kwargs["retry"] = retry  # the policy's, not redis-py's default of 3 retries per sentinel
    kwargs.pop("db", None)
    kwargs.pop("client_name", None)
    if "sentinel_username" in options or "sentinel_password" in options:
        kwargs["username"] = options.get("sentinel_username")
        kwargs["password"] = options.get("sentinel_password")
    return kwargs


def build_sync_client(spec: ConnectionSpec, policy: RetryPolicy, mode: Mode) -> SyncClient:
    """Create (without connecting) the sync client for ``spec`` in ``mode``."""
    kwargs = _connection_kwargs(spec, policy)
    retry = policy.sync_retry()
    if mode == "sentinel":
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
        host, port = spec.hosts[0]
        client = redis.Redis(host=host, port=port, db=spec.db, retry=retry, **kwargs)
    return redis.Redis.from_pool(
        redis.BlockingConnectionPool(**_blocking_pool_kwargs(client.connection_pool, policy))
    )


def _blocking_pool_kwargs(pool: Any, policy: RetryPolicy) -> dict[str, Any]:
    """The same connections in a pool that makes callers wait for a free connection.

    redis-py's default pool raises "Too many connections" past its cap (1,000
    concurrent async requests hit it); a blocking pool queues them instead.
    """
    kwargs = dict(pool.connection_kwargs)
    limit = kwargs.pop("max_connections", None) or DEFAULT_MAX_CONNECTIONS
    return {
        "connection_class": pool.connection_class,
        "max_connections": limit,
        "timeout": policy.connect_timeout + (policy.socket_timeout or 0),
        **kwargs,
    }


def build_async_client(spec: ConnectionSpec, policy: RetryPolicy, mode: Mode) -> AsyncClient:
    """Create (without connecting) the asyncio client for ``spec`` in ``mode``."""
    kwargs = _connection_kwargs(spec, policy)
    retry = policy.async_retry()
    if mode == "sentinel":
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
        host, port = spec.hosts[0]
        client = redis.asyncio.Redis(host=host, port=port, db=spec.db, retry=retry, **kwargs)
    return redis.asyncio.Redis.from_pool(
        redis.asyncio.BlockingConnectionPool(
            **_blocking_pool_kwargs(client.connection_pool, policy)
        )
    )


def _is_cluster_reply(info: dict[str, Any]) -> bool:
    return bool(info.get("cluster_enabled"))


class ClientProvider:
    """Lazily built, shared clients for one connection: one sync, one async per event loop.

    ``mode`` starts as ``"auto"`` for ``redis://`` urls and becomes ``"standalone"``
    or ``"cluster"`` on first use (INFO cluster, as langchain_community does; a
    MOVED reply later also switches to cluster).
    """

    def __init__(
        self,
        spec: ConnectionSpec | None,
        policy: RetryPolicy = DEFAULT_RETRY,
        *,
        sync_client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
        display: str | None = None,
    ) -> None:
        self.spec = spec
        self.policy = policy
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
        self.display = display or (
            spec.display if spec else _describe_client(sync_client or async_client)
        )

    @property
    def is_cluster(self) -> bool:
        return self.mode == "cluster"

    @property
    def address(self) -> str:
        """Where the server is (host:port or socket path), never with credentials."""
        return self.spec.address if self.spec else self.display

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


def _describe_client(client: Any) -> str:
    """host:port of a user-provided client, without credentials."""
    try:
        if isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)):
            nodes = client.get_nodes()
            return ",".join(f"{node.host}:{node.port}" for node in nodes[:3]) or "redis cluster"
        kwargs = client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', _DEFAULT_PORT)}"
    except Exception:
        return type(client).__name__


_registry: dict[tuple[str, RetryPolicy], ClientProvider] = {}
_registry_lock = threading.Lock()


def shared_provider(url: str, policy: RetryPolicy = DEFAULT_RETRY) -> ClientProvider:
    """The process-wide provider for ``url``: histories of one url share its pools.

    ``embedded://[data_dir]`` starts (or reuses) a private redis-server first.
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"url must be a str, got {type(url).__name__}")
    key = (url, policy)
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
