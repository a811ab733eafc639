"""A parsed connection url: :class:`ConnectionSpec`, and how it is shown without secrets.

:func:`redis_chat_history.urls.parse_url` builds it; its ``display`` is rebuilt from its
parts with every secret written ``***``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from redis_chat_history.url_options import SECRET_OPTIONS, WITHHELD

Mode = Literal["auto", "standalone", "cluster", "sentinel"]

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
MASK = "***"


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return quote(str(value), safe="/:,.-_~")


@dataclass(frozen=True, repr=False)
class ConnectionSpec:
    """A parsed connection url. ``display``, ``address`` and ``repr`` hold no secret."""

    mode: Mode
    tls: bool
    scheme: str = "redis"
    hosts: tuple[tuple[str, int], ...] = ()
    unix_socket_path: str | None = None
    db: int = 0
    service_name: str = "mymaster"
    username: str | None = None
    password: str | None = None
    #: Query options other than db/username/password, in the url's order.
    options: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def address(self) -> str:
        """Where the server is, without credentials (``host:port[,host:port]`` or a socket)."""
        if self.unix_socket_path:
            return self.unix_socket_path
        return ",".join(f"{_host_text(host)}:{port}" for host, port in self.hosts)

    @property
    def display(self) -> str:
        """The url rebuilt from its parts, every secret written ``***``.

        Example::

            >>> parse_url("redis://:p%40ss@h/0?sentinel_password=x").display
            'redis://:***@h:6379/0?sentinel_password=***'
        """
        userinfo = quote(self.username, safe="") if self.username else ""
        if self.password is not None:
            userinfo += f":{MASK}"
        authority = f"{userinfo}@" if userinfo else ""
        query = [
            (name, MASK if name in SECRET_OPTIONS else _option_text(value))
            for name, value in self.options
        ]
        if self.unix_socket_path:
            path = quote(self.unix_socket_path, safe="/:,.-_~+")
            query.insert(0, ("db", str(self.db)))
        else:
            authority += self.address
            if self.mode == "sentinel":
                path = f"/{quote(self.service_name, safe='')}/{self.db}"
            elif self.mode == "cluster":
                path = ""
            else:
                path = f"/{self.db}"
        tail = "&".join(f"{name}={value}" for name, value in query)
        return f"{self.scheme}://{authority}{path}" + (f"?{tail}" if tail else "")

    def __repr__(self) -> str:
        return f"ConnectionSpec({self.display!r})"

    def secrets(self) -> list[str]:
        """The credentials of this spec (to keep them out of any text shown)."""
        found = [self.password, *(str(v) for k, v in self.options if k in SECRET_OPTIONS)]
        return [secret for secret in found if secret]

    def redact(self, text: str) -> str:
        """``text`` if no secret occurs in it, else :data:`WITHHELD` (never a masked copy).

        Masking each occurrence would show where a password sits (with the password
        ``127``, ``***.0.0.1``), so a text is shown whole or not at all. An occurrence
        inside a public part (a host, the address, the user name) is not a secret's.

        Example::

            >>> spec = parse_url("redis://:127@127.0.0.1:1/0")
            >>> spec.redact("Error 111 connecting to 127.0.0.1:1. Connection refused.")
            'Error 111 connecting to 127.0.0.1:1. Connection refused.'
            >>> spec.redact("ERR unknown command 'HELLO', with args beginning with: '127'")
            '(message not shown: it may contain a credential)'
        """
        secrets = self.secrets()
        if not secrets:
            return text
        public = {self.address, self.username or "", self.service_name, self.unix_socket_path or ""}
        for host, port in self.hosts:
            public |= {host, _host_text(host), str(port), f"{host}:{port}"}
            public.add(f"{_host_text(host)}:{port}")
        covered = [
            (match.start(), match.end())
            for part in public - {""}
            for match in re.finditer(re.escape(part), text)
        ]
        for secret in secrets:
            for match in re.finditer(f"(?={re.escape(secret)})", text):
                start, end = match.start(), match.start() + len(secret)
                if not any(low <= start and end <= high for low, high in covered):
                    return WITHHELD
        return text
