"""What a history and a store share, declared once: their options, settings and attributes.

- :class:`Options`: the keyword-only options both take (``**options`` in their signatures).
- :class:`Settings`: those options checked, as every history of a store reads and writes.
- :func:`configure`: a url, the old class's ``key_prefix`` and ``ttl``, and the options
  become (settings, clients); both constructors are this one call.
- :class:`SettingsAttributes`: the attributes both show (``key_prefix``, ``ttl``, ...).

A new option is one line in :class:`Options` and one in :data:`OPTION_DEFAULTS`; a setting
(not a client choice) also gets its field in :class:`Settings` and its check in
:meth:`Settings.build`, and, to be read back, a property in :class:`SettingsAttributes`:
all in this file, none in history.py or store.py.

Example::

    settings = Settings.build(ttl=3600, max_messages=200)
    settings.key("user-42")        # 'message_store:user-42'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ForwardRef, TypedDict, TypeVar

from redis_chat_history.checks import check_optional_int, check_seconds
from redis_chat_history.clients import AsyncClient, SyncClient
from redis_chat_history.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from redis_chat_history.operations import MAX_EXPIRE_SECONDS, MAX_MESSAGES, is_companion_key
from redis_chat_history.provider import ClientProvider, shared_provider
from redis_chat_history.replication import ReplicaWait
from redis_chat_history.retry import DEFAULT_RETRY, RetryPolicy

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_KEY_PREFIX = "message_store:"
_Init = TypeVar("_Init", bound=Callable[..., None])
_MAX_WAIT_SECONDS = 2**31 / 1000  # WAIT's timeout is a C int of milliseconds


class Options(TypedDict, total=False):
    """The keyword-only options of :class:`~redis_chat_history.RedisChatMessageHistory` and
    :class:`~redis_chat_history.RedisChatStore` (a store's histories all use its options).

    Attributes:
        client / async_client: use these redis-py clients (``redis.Redis``,
            ``RedisCluster`` or their asyncio twins) instead of the url.
        max_messages: keep only the newest N messages (trimmed in the same atomic write).
        compress: store messages zlib-compressed when smaller (the old class cannot read those).
        wait_for_replicas / wait_timeout: a write returns only once that many replicas
            acknowledged it within ``wait_timeout`` seconds (default 1.0), else raises
            :class:`~redis_chat_history.ReplicationError`.
        retry: how calls are retried when the server cannot be reached (a RetryPolicy).
        skip_corrupt: log and skip stored elements that are not messages instead of raising.
    """

    client: SyncClient | None
    async_client: AsyncClient | None
    max_messages: int | None
    compress: bool
    wait_for_replicas: int | None
    wait_timeout: float
    retry: RetryPolicy | None
    skip_corrupt: bool


#: Each option's value when it is left out (the keys are exactly :class:`Options`').
OPTION_DEFAULTS: Mapping[str, Any] = {
    "client": None,
    "async_client": None,
    "max_messages": None,
    "compress": False,
    "wait_for_replicas": None,
    "wait_timeout": 1.0,
    "retry": None,
    "skip_corrupt": False,
}
assert set(OPTION_DEFAULTS) == set(Options.__annotations__), "one default per option"
#: The options that choose the clients (the others are :class:`Settings`), in
#: :func:`make_provider`'s order.
_CONNECTION_OPTIONS = ("client", "async_client", "retry")


def validate_session_id(session_id: Any) -> str:
    """A session id must be a non-empty str (any characters, glob ones included)."""
    if not isinstance(session_id, str):
        raise InvalidArgumentTypeError(f"session_id must be a str, got {type(session_id).__name__}")
    if not session_id:
        raise InvalidArgumentError("session_id must not be empty")
    return session_id


@dataclass(frozen=True)
class Settings:
    """How the histories of one store (or one history) read and write.

    Build it with :meth:`build`, which checks every value and names the bad one.
    """

    key_prefix: str = DEFAULT_KEY_PREFIX
    ttl: int | None = None
    max_messages: int | None = None
    compress: bool = False
    wait: ReplicaWait | None = None
    skip_corrupt: bool = False

    @classmethod
    def build(
        cls, *, key_prefix: Any = DEFAULT_KEY_PREFIX, ttl: Any = None, **options: Any
    ) -> Settings:
        """Check ``key_prefix``, ``ttl`` and the :class:`Options` that are settings."""
        unknown = sorted(set(options) - set(OPTION_DEFAULTS).difference(_CONNECTION_OPTIONS))
        if unknown:
            raise InvalidArgumentTypeError(f"unknown setting {unknown[0]!r}")
        given = {**OPTION_DEFAULTS, **options}
        if not isinstance(key_prefix, str):
            raise InvalidArgumentTypeError(
                f"key_prefix must be a str, got {type(key_prefix).__name__}"
            )
        # ttl=0 means never, as in the old class; it silently deleted on a negative ttl: refused.
        ttl = check_optional_int("ttl", ttl, minimum=0, maximum=MAX_EXPIRE_SECONDS)
        max_messages = check_optional_int(
            "max_messages", given["max_messages"], minimum=1, maximum=MAX_MESSAGES
        )
        wait = None
        replicas = check_optional_int(
            "wait_for_replicas", given["wait_for_replicas"], minimum=1, maximum=2**31
        )
        if replicas is not None:
            timeout = check_seconds(
                "wait_timeout", given["wait_timeout"], maximum=_MAX_WAIT_SECONDS, above_minimum=True
            )
            wait = ReplicaWait(replicas, max(1, round(timeout * 1000)))
        return cls(
            key_prefix,
            ttl,
            max_messages,
            bool(given["compress"]),
            wait,
            bool(given["skip_corrupt"]),
        )

    def key(self, session_id: Any) -> str:
        """The Redis key of ``session_id``; refuses ids that name another session's companion key."""
        key = self.key_prefix + validate_session_id(session_id)
        if "\x00" in session_id and is_companion_key(key):
            raise InvalidArgumentError(
                f"session_id {session_id!r} names a key this package keeps beside another "
                "session (its writers or staging key); choose another id"
            )
        return key


def make_provider(
    url: Any,
    client: SyncClient | None,
    async_client: AsyncClient | None,
    retry: RetryPolicy | None,
) -> ClientProvider:
    """The clients to use: the caller's own, or the shared ones for ``url`` (None: the default)."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise InvalidArgumentTypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
    if client is not None or async_client is not None:
        return ClientProvider(
            None, retry or DEFAULT_RETRY, sync_client=client, async_client=async_client
        )
    # None is the default, as leaving url out is: os.environ.get("REDIS_URL") may be None.
    return shared_provider(DEFAULT_URL if url is None else url, retry or DEFAULT_RETRY, _resolve)


def _resolve(url: str) -> str:
    """``embedded://[data_dir]``: the socket url of its private server, started (or reused)."""
    if not url.startswith("embedded://"):
        return url
    from redis_chat_history.embedded import embedded_url  # the embedded server is optional

    return embedded_url(url[len("embedded://") :] or None)


def configure(
    owner: str, url: Any, key_prefix: Any, ttl: Any, options: Mapping[str, Any]
) -> tuple[Settings, ClientProvider]:
    """The checked settings and the clients of a history or a store (``owner`` names it)."""
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise InvalidArgumentTypeError(
            f"{owner}() got an unexpected keyword argument {unknown[0]!r}"
        )
    given = {**OPTION_DEFAULTS, **options}
    connection = [given.pop(name) for name in _CONNECTION_OPTIONS]
    return Settings.build(key_prefix=key_prefix, ttl=ttl, **given), make_provider(url, *connection)


def _spelled(annotation: Any) -> Any:
    return annotation.__forward_arg__ if isinstance(annotation, ForwardRef) else annotation


def spell_out_options(init: _Init) -> _Init:
    """Show ``init``'s ``**options`` as the keyword-only :class:`Options`, with defaults.

    For ``help()`` and ``inspect.signature`` (type checkers read ``Unpack[Options]``).
    """
    parameters = inspect.signature(init).parameters.values()
    spelled = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=default,
            annotation=_spelled(Options.__annotations__[name]),
        )
        for name, default in OPTION_DEFAULTS.items()
    ]
    public = [p for p in parameters if p.kind is not p.VAR_KEYWORD and not p.name.startswith("_")]
    private = [p for p in parameters if p.name.startswith("_")]
    init.__signature__ = inspect.Signature([*public, *spelled, *private], return_annotation=None)  # type: ignore[attr-defined]
    return init


class SettingsAttributes:
    """The attributes a history and a store show: their settings and where the data lives."""

    settings: Settings
    _provider: ClientProvider

    @property
    def key_prefix(self) -> str:
        return self.settings.key_prefix

    @property
    def ttl(self) -> int | None:
        """Seconds after the latest write at which a history expires; None or 0: never."""
        return self.settings.ttl

    @property
    def max_messages(self) -> int | None:
        return self.settings.max_messages

    @property
    def compress(self) -> bool:
        return self.settings.compress

    @property
    def skip_corrupt(self) -> bool:
        return self.settings.skip_corrupt

    @property
    def url(self) -> str:
        """Where the data lives, without credentials."""
        return self._provider.display

    display = url  # the store's name for it (the command line shows it)


__all__ = [
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_URL",
    "OPTION_DEFAULTS",
    "Options",
    "ReplicaWait",
    "Settings",
    "SettingsAttributes",
    "configure",
    "make_provider",
    "spell_out_options",
    "validate_session_id",
]
