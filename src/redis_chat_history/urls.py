"""How a connection url is parsed into a :class:`ConnectionSpec`, and shown without secrets.

Urls understood (``rediss`` is the TLS twin of every ``redis`` scheme)::

    redis://[[user]:password@]host[:port][/db][?option=value...]
    rediss://...                      TLS, certificates verified unless ssl_cert_reqs=none
    unix:///path/to/redis.sock[?db=N]
    redis+sentinel://[user:pass@]host:port[,host2:port2...]/service_name[/db]
    redis+cluster://[user:pass@]host:port[,host2:port2...]

``embedded://[data_dir]`` is resolved by :mod:`redis_chat_history.provider` (it starts
a server first, then parses the ``unix://`` url of that server).

Example::

    >>> spec = parse_url("redis://alice:s3cret@cache:6380/2")
    >>> spec.display
    'redis://alice:***@cache:6380/2'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from redis_chat_history.errors import InvalidURLError

Mode = Literal["auto", "standalone", "cluster", "sentinel"]

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

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
        default_port = DEFAULT_SENTINEL_PORT if mode == "sentinel" else DEFAULT_PORT
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
