"""How a connection url is parsed into a :class:`ConnectionSpec`, and shown without secrets.

Urls understood (``rediss`` is the TLS twin of every ``redis`` scheme)::

    redis://[[user]:password@]host[:port][/db][?option=value...]
    rediss://...                      TLS, certificates verified unless ssl_cert_reqs=none
    unix://[[user]:password@]/path/to/redis.sock[?db=N]
    redis+sentinel://[user:pass@]host:port[,host2:port2...]/service_name[/db]
    redis+cluster://[user:pass@]host:port[,host2:port2...]

``embedded://[data_dir]`` is resolved by :mod:`redis_chat_history.settings` (it starts
a server first, then parses the ``unix://`` url of that server).

Parsing is strict: a url that is not exactly one of these forms (no scheme, an unclosed
``[``, a bad port, a ``#``, an unencoded ``@`` in a password...) raises
:class:`InvalidURLError` before anything connects. A password may hold any character;
``/ ? # @ % :`` and spaces are written percent-encoded (``%2F %3F %23 %40 %25 %3A %20``).

Secrets (the password, ``?password=`` and ``?sentinel_password=``) are never shown: the
``display`` of a spec is rebuilt from its parts with every secret written ``***``, and
error messages name the part that is wrong, never the text around a password.

Example::

    >>> spec = parse_url("redis://alice:s3cret@cache:6380/2")
    >>> spec.display
    'redis://alice:***@cache:6380/2'
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import unquote, unquote_plus

from redis_chat_history.checks import int_from_text
from redis_chat_history.connection_spec import (
    DEFAULT_PORT,
    DEFAULT_SENTINEL_PORT,
    ConnectionSpec,
    Mode,
)
from redis_chat_history.errors import InvalidURLError
from redis_chat_history.url_options import (
    QUERY_OPTIONS,
    SECRET_OPTIONS,
    TLS_OPTIONS,
    to_db,
)

_SCHEMES: dict[str, tuple[Mode, bool]] = {
    "redis": ("auto", False),
    "rediss": ("auto", True),
    "unix": ("standalone", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_KNOWN_SCHEMES = ", ".join(f"{name}://" for name in [*_SCHEMES, "embedded"])

_SCHEME_SYNTAX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}\Z")
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}[A-Za-z0-9_])?\Z")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def redact_url(url: str) -> str:
    """``url`` rebuilt from its parts with every secret written ``***``.

    A url that does not parse is not shown at all (where its password is cannot be known).

    Example::

        >>> redact_url("redis://:pw@h:1/0")
        'redis://:***@h:1/0'
        >>> redact_url("redis://:pw@[::1/0")
        '(an invalid redis:// url, not shown)'
    """
    try:
        return parse_url(url).display
    except InvalidURLError:
        scheme = url.partition("://")[0] if isinstance(url, str) else ""
        if _SCHEME_SYNTAX.match(scheme) and "://" in url:
            return f"(an invalid {scheme.lower()}:// url, not shown)"
        return "(an invalid url, not shown)"


class _Parser:
    """One url being parsed. Errors echo a piece of the url only when it cannot hold a secret."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.scheme = ""
        # Pieces after the user info are echoed in errors only when the url has no '@'
        # outside it (one would mean a password with an unencoded '/' or '?').
        self.echo = True

    def fail(self, problem: str) -> InvalidURLError:
        kind = f"{self.scheme}:// url" if self.scheme else "url"
        return InvalidURLError(
            f"invalid {kind}: {problem} (the url is not shown: it may hold a password)"
        )

    def shown(self, piece: str) -> str:
        return repr(piece) if self.echo else "(not shown)"

    def parse(self) -> ConnectionSpec:
        url = self.url
        scheme_text, sep, rest = url.partition("://")
        if not sep:
            raise InvalidURLError(
                "the url has no scheme: scheme must be one of "
                f"{_KNOWN_SCHEMES} (the url is not shown: it may hold a password)"
            )
        if not _SCHEME_SYNTAX.match(scheme_text) or scheme_text.lower() not in _SCHEMES:
            named = repr(scheme_text) if _SCHEME_SYNTAX.match(scheme_text) else "(not shown)"
            raise InvalidURLError(
                f"unsupported url scheme {named}: scheme must be one of {_KNOWN_SCHEMES}"
            )
        self.scheme = scheme_text.lower()
        if _WHITESPACE_OR_CONTROL.search(url):
            raise self.fail(
                "it contains a space or control character (percent-encode it, e.g. %20)"
            )
        if "#" in rest:
            raise self.fail("it contains '#' (a '#' in a password is written %23)")
        mode, tls = _SCHEMES[self.scheme]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, after = rest[:cut], rest[cut:]
        path, _, query = after.partition("?")
        userinfo, at, hostport = authority.rpartition("@")
        if "@" in after and not at:
            self.echo = False
            if self.scheme != "unix":
                raise self.fail(
                    "an '@' follows the host part: a '/' or '?' in a password is written %2F or %3F"
                )
        if "@" in userinfo:
            raise self.fail("the user name or password contains '@' (write it %40)")
        username, password = self._userinfo(userinfo) if at else (None, None)
        options = self._query(query)
        if "username" in options:
            if username is not None:
                raise self.fail("the user name is given twice (before '@' and as ?username=)")
            username = options.pop("username") or None
        if "password" in options:
            if password is not None:
                raise self.fail("the password is given twice (before '@' and as ?password=)")
            password = options.pop("password")
        if not tls and TLS_OPTIONS & options.keys():
            raise self.fail("TLS options need a rediss:// url")

        hosts: tuple[tuple[str, int], ...] = ()
        unix_socket_path: str | None = None
        db = 0
        service_name = "mymaster"
        segments = self._segments(path)
        if self.scheme == "unix":
            if hostport or not path.startswith("/") or not path.strip("/"):
                raise self.fail(
                    "unix url needs an absolute socket path: unix:///path/to/redis.sock"
                )
            unix_socket_path = self._decode(path, "socket path")
        else:
            default_port = DEFAULT_SENTINEL_PORT if mode == "sentinel" else DEFAULT_PORT
            if not authority and mode == "auto":
                hosts = (("localhost", DEFAULT_PORT),)  # redis:// alone, as redis-py reads it
            else:
                hosts = self._hosts(hostport, default_port)
            if mode == "sentinel":
                if len(segments) > 2:
                    raise self.fail("sentinel url path is /service_name/db")
                if segments:
                    service_name = self._decode(segments[0], "service name")
                if len(segments) == 2:
                    db = self._db(segments[1])
            else:
                if len(hosts) > 1 and mode != "cluster":
                    raise self.fail("several hosts need redis+sentinel:// or redis+cluster://")
                if len(segments) > 1:
                    raise self.fail("url path must be /db")
                if segments:
                    db = self._db(segments[0])
        if "db" in options:
            if len(segments) == (2 if mode == "sentinel" else 1):
                raise self.fail("the database is given twice (in the path and as ?db=)")
            db = options.pop("db")
        if mode == "cluster" and db != 0:
            raise self.fail(f"database {db}: Redis Cluster has only database 0")
        return ConnectionSpec(
            mode=mode,
            tls=tls,
            scheme=self.scheme,
            hosts=hosts,
            unix_socket_path=unix_socket_path,
            db=db,
            service_name=service_name,
            username=username,
            password=password,
            options=tuple(options.items()),
        )

    def _decode(self, text: str, what: str, *, plus: bool = False) -> str:
        if _BAD_PERCENT.search(text):
            raise self.fail(
                f"a '%' in the {what} is not followed by two hex digits (write '%' as %25)"
            )
        try:
            return (unquote_plus if plus else unquote)(text, errors="strict")
        except UnicodeDecodeError:
            raise self.fail(f"the {what} has percent-encoded bytes that are not UTF-8") from None

    def _userinfo(self, userinfo: str) -> tuple[str | None, str | None]:
        user_text, has_password, password_text = userinfo.partition(":")
        username = self._decode(user_text, "user name") or None
        password = self._decode(password_text, "password") if has_password else None
        return username, password

    def _segments(self, path: str) -> list[str]:
        if self.scheme == "unix" or path in ("", "/"):
            return []
        segments = path[1:].removesuffix("/").split("/")
        if "" in segments:
            raise self.fail("the path has an empty segment ('//')")
        return segments

    def _db(self, text: str) -> int:
        try:
            return to_db(text)
        except ValueError as error:
            raise self.fail(f"database {self.shown(text)} {error}") from None

    def _hosts(self, text: str, default_port: int) -> tuple[tuple[str, int], ...]:
        if not text:
            raise self.fail("the host is empty (name it, e.g. localhost)")
        return tuple(self._host(item, default_port) for item in text.split(","))

    def _host(self, item: str, default_port: int) -> tuple[str, int]:
        if not item:
            raise self.fail("the host list has an empty entry")
        port_text: str | None = None
        if item.startswith("["):  # [ipv6] or [ipv6]:port
            host, closed, rest = item[1:].partition("]")
            if not closed:
                raise self.fail("an IPv6 address opened with '[' is not closed with ']'")
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise self.fail(f"{self.shown(host)} in brackets is not an IPv6 address") from None
            if rest:
                if not rest.startswith(":"):
                    raise self.fail("only ':port' may follow ']'")
                port_text = rest[1:]
        else:
            if item.count(":") > 1:
                raise self.fail("an IPv6 address must be in brackets, e.g. [::1]:6379")
            host, colon, rest = item.partition(":")
            port_text = rest if colon else None
            if not host:
                raise self.fail("the host is empty (name it, e.g. localhost)")
            if not _HOST_NAME.match(host):
                raise self.fail(f"host {self.shown(host)} is not a host name or IPv4 address")
        if port_text is None:
            return host, default_port
        try:
            return host, int_from_text(port_text, minimum=1, maximum=65535)
        except ValueError as error:
            raise self.fail(f"port {self.shown(port_text)} {error}") from None

    def _query(self, query: str) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if not query:
            return options
        for item in query.split("&"):
            name_text, has_value, value_text = item.partition("=")
            if not has_value or not name_text:
                raise self.fail(
                    f"option {self.shown(name_text)} without '=value' ('&' in a value is %26)"
                )
            name = self._decode(name_text, "option name")
            parser = QUERY_OPTIONS.get(name)
            if parser is None:
                raise self.fail(
                    f"unknown option {self.shown(name)}; known: {', '.join(sorted(QUERY_OPTIONS))}"
                )
            if name in options:
                raise self.fail(f"option {name!r} is given twice")
            value = self._decode(value_text, f"value of {name}", plus=True)
            try:
                options[name] = parser(value)
            except ValueError as error:
                raise self.fail(f"option {name}={self.shown(value)} {error}") from None
            if name in SECRET_OPTIONS:
                # A secret holding an unencoded '&' continues into the next items.
                self.echo = False
        return options


def parse_url(url: str) -> ConnectionSpec:
    """Parse a connection url strictly; raises :class:`InvalidURLError` naming what is wrong.

    The error never holds the url's password (nor text that could be part of it).

    Example::

        >>> parse_url("redis+sentinel://s1:26379,s2:26379/mymaster/0").mode
        'sentinel'
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"url must be a str, got {type(url).__name__}")
    return _Parser(url).parse()
