"""Many conversations: the store holds the shared clients and finds, counts and deletes sessions.

Example::

    from redis_chat_history import RedisChatStore

    store = RedisChatStore(url="redis://localhost:6379/0", ttl=86400)
    chain = RunnableWithMessageHistory(llm_chain, store.history)   # a history per session
    for session_id in store.sessions(match="user-42:"):             # SCAN, never KEYS
        print(session_id, store.history(session_id).count())
    store.delete("user-42:old")
    store.export("backup.jsonl")                                    # see transfer.py

Session ids are matched literally: ``match`` is a prefix of the session id, and glob
characters (``* ? [ ] \\``) in it, in a session id or in the key prefix never widen the
match into other sessions.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from redis_chat_history import operations, transfer
from redis_chat_history.errors import InvalidArgumentTypeError, PermissionDeniedError
from redis_chat_history.execution import amasters, arun, masters, run
from redis_chat_history.history import RedisChatMessageHistory
from redis_chat_history.settings import (
    DEFAULT_KEY_PREFIX,
    DEFAULT_URL,
    SettingsAttributes,
    configure,
    spell_out_options,
)
from redis_chat_history.transfer import ExportResult, TransferResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from redis_chat_history.settings import Options

__all__ = ["ExportResult", "RedisChatStore", "StoreStats", "TransferResult", "glob_escape"]

_SCAN_COUNT = 1000
_GLOB_SPECIALS = frozenset("*?[]\\")


def glob_escape(text: str) -> str:
    """``text`` as a SCAN MATCH pattern that matches only itself.

    Example::

        >>> glob_escape("a*b[1]")
        'a\\\\*b\\\\[1\\\\]'
    """
    return "".join("\\" + char if char in _GLOB_SPECIALS else char for char in text)


@dataclass(frozen=True)
class StoreStats:
    """What ``store.stats()`` counts. ``memory_bytes`` is None when MEMORY USAGE is not allowed."""

    sessions: int
    messages: int
    memory_bytes: int | None


class _Tally:
    """Counts of :meth:`RedisChatStore.stats`; MEMORY USAGE is dropped once it is refused."""

    def __init__(self) -> None:
        self.sessions = self.messages = self.memory = 0
        self.memory_allowed = True

    def batch(self, keys: list[str]) -> operations.Plan[list[tuple[int, int | None]]]:
        plans = [operations.size_plan(key, memory=self.memory_allowed) for key in keys]
        return operations.batch_plan(plans)

    def add(self, sizes: list[tuple[int, int | None]]) -> None:
        for messages, memory in sizes:
            self.sessions += 1
            self.messages += messages
            self.memory += memory or 0

    def result(self) -> StoreStats:
        return StoreStats(
            self.sessions, self.messages, self.memory if self.memory_allowed else None
        )


class RedisChatStore(SettingsAttributes):
    """The histories of one Redis deployment under one key prefix, sharing clients.

    Takes what a history takes but the session id: ``url`` (None: the default),
    ``key_prefix``, ``ttl`` and the same keyword-only options
    (:class:`~redis_chat_history.settings.Options`), which every history it returns uses.
    Building a store does no network I/O.
    """

    @spell_out_options
    def __init__(
        self,
        url: str | None = DEFAULT_URL,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        ttl: int | None = None,
        **options: Unpack[Options],
    ) -> None:
        self.settings, self._provider = configure(
            type(self).__name__, url, key_prefix, ttl, options
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.display!r}, key_prefix={self.key_prefix!r})"

    def history(self, session_id: str) -> RedisChatMessageHistory:
        """The history of ``session_id``, sharing this store's clients and settings.

        Fits ``RunnableWithMessageHistory(chain, store.history)``.
        """
        return RedisChatMessageHistory(
            session_id, _provider=self._provider, _settings=self.settings
        )

    def key(self, session_id: str) -> str:
        return self.settings.key(session_id)

    # -- listing ------------------------------------------------------------------
    def _pattern(self, match: str | None) -> tuple[str, str]:
        if match is not None and not isinstance(match, str):
            raise InvalidArgumentTypeError(
                f"match must be a str or None, got {type(match).__name__}"
            )
        literal = self.key_prefix + (match or "")
        return literal, glob_escape(literal) + "*"

    def _session_of(self, raw: bytes | str, literal: str) -> str | None:
        key = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
        if not key.startswith(literal) or operations.is_companion_key(key):
            return None
        session_id = key[len(self.key_prefix) :]
        return session_id or None

    def _ids(self, keys: list[bytes], literal: str) -> list[str]:
        found = (self._session_of(raw, literal) for raw in keys)
        return [session_id for session_id in found if session_id is not None]

    def _scan_steps(self, match: str | None) -> Iterator[tuple[Any, list[str]]]:
        """(node, session ids) of each SCAN step, on every master."""
        literal, pattern = self._pattern(match)
        for node in masters(self._provider, pattern):
            cursor = -1
            while cursor:
                plan = operations.scan_plan(max(cursor, 0), pattern, count=_SCAN_COUNT)
                cursor, keys = run(self._provider, plan, node=node)
                yield node, self._ids(keys, literal)

    async def _ascan_steps(self, match: str | None) -> AsyncIterator[tuple[Any, list[str]]]:
        """Async :meth:`_scan_steps`."""
        literal, pattern = self._pattern(match)
        for node in await amasters(self._provider, pattern):
            cursor = -1
            while cursor:
                plan = operations.scan_plan(max(cursor, 0), pattern, count=_SCAN_COUNT)
                cursor, keys = await arun(self._provider, plan, node=node)
                yield node, self._ids(keys, literal)

    def sessions(self, match: str | None = None) -> Iterator[str]:
        """Session ids under the key prefix (those starting with ``match``), via SCAN.

        On a cluster every master is scanned. Order is arbitrary; a session written
        while the scan runs may or may not be listed.
        """
        for _node, session_ids in self._scan_steps(match):
            yield from session_ids

    def count_sessions(self, match: str | None = None) -> int:
        """How many sessions :meth:`sessions` lists."""
        return sum(1 for _ in self.sessions(match))

    async def asessions(self, match: str | None = None) -> AsyncIterator[str]:
        """Async :meth:`sessions`."""
        async for _node, session_ids in self._ascan_steps(match):
            for session_id in session_ids:
                yield session_id

    async def acount_sessions(self, match: str | None = None) -> int:
        """Async :meth:`count_sessions`."""
        count = 0
        async for _ in self.asessions(match):
            count += 1
        return count

    # -- deleting -----------------------------------------------------------------
    def delete(self, *session_ids: str) -> int:
        """Delete these sessions; returns how many existed."""
        keys = [self.key(session_id) for session_id in session_ids]
        wait = self.settings.wait
        return sum(run(self._provider, operations.delete_plan(key), wait) for key in keys)

    async def adelete(self, *session_ids: str) -> int:
        """Async :meth:`delete`."""
        keys = [self.key(session_id) for session_id in session_ids]
        wait = self.settings.wait
        return sum([await arun(self._provider, operations.delete_plan(key), wait) for key in keys])

    # -- statistics ---------------------------------------------------------------
    def stats(self, match: str | None = None) -> StoreStats:
        """Sessions, messages and the Redis memory their keys use (MEMORY USAGE).

        The sizes of one SCAN step's sessions are read in one round trip.
        """
        tally = _Tally()
        for node, session_ids in self._scan_steps(match):
            if not session_ids:
                continue
            keys = [self.key_prefix + session_id for session_id in session_ids]
            try:
                sizes = run(self._provider, tally.batch(keys), node=node)
            except PermissionDeniedError:
                if not tally.memory_allowed:
                    raise
                tally.memory_allowed = False  # MEMORY USAGE refused (ACL): count messages only
                sizes = run(self._provider, tally.batch(keys), node=node)
            tally.add(sizes)
        return tally.result()

    async def astats(self, match: str | None = None) -> StoreStats:
        """Async :meth:`stats`."""
        tally = _Tally()
        async for node, session_ids in self._ascan_steps(match):
            if not session_ids:
                continue
            keys = [self.key_prefix + session_id for session_id in session_ids]
            try:
                sizes = await arun(self._provider, tally.batch(keys), node=node)
            except PermissionDeniedError:
                if not tally.memory_allowed:
                    raise
                tally.memory_allowed = False  # MEMORY USAGE refused (ACL): count messages only
                sizes = await arun(self._provider, tally.batch(keys), node=node)
            tally.add(sizes)
        return tally.result()

    # -- export, import, copy (transfer.py) ---------------------------------------
    def _endpoint(self) -> transfer.Endpoint:
        return transfer.Endpoint(self._provider, self.settings, self.sessions)

    def export(
        self,
        file: str | os.PathLike[str] | IO[Any],
        session_ids: Iterable[str] | None = None,
        *,
        progress: transfer.Progress | None = None,
    ) -> ExportResult:
        """Write sessions (all when None) in the export format (see transfer.py).

        A path is replaced only once the export is complete; each session is one
        consistent snapshot. With ``skip_corrupt`` corrupt elements are skipped and counted.
        """
        return transfer.export_sessions(self._endpoint(), file, session_ids, progress=progress)

    def import_(
        self,
        file: str | os.PathLike[str] | IO[Any],
        *,
        overwrite: bool = False,
        allow_empty: bool = False,
        progress: transfer.Progress | None = None,
    ) -> TransferResult:
        """Read an export; each session atomically; non-empty ones kept unless ``overwrite``.

        An empty file (no header, no message) is refused unless ``allow_empty``.
        """
        return transfer.import_sessions(
            self._endpoint(), file, overwrite=overwrite, allow_empty=allow_empty, progress=progress
        )

    def copy_to(
        self,
        other: RedisChatStore,
        session_ids: Iterable[str] | None = None,
        *,
        overwrite: bool = False,
        progress: transfer.Progress | None = None,
    ) -> TransferResult:
        """Copy sessions (all when None) to another store, TTLs kept, each atomically."""
        return transfer.copy_sessions(
            self._endpoint(),
            other._endpoint(),
            session_ids,
            overwrite=overwrite,
            progress=progress,
        )
