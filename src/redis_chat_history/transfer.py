"""Export, import and copy of sessions: the Redis work, atomic per session, exact, never duplicating.

The file format (header, message lines, closing records, how a file proves itself whole)
is :mod:`redis_chat_history.export_format`, which needs no server; this module reads
sessions from Redis into it and writes what it reads into Redis. Every step is safe to
interrupt and to run concurrently:

* An export to a path is written beside it and renamed at the end (atomic_file.py).
* An export or copy reads each session as one snapshot (one LRANGE when it fits in a
  window of 1,000 messages, else a server-side COPY read in windows), so a session
  being written comes out as some state it was in, never with gaps or duplicates.
* An import or copy assembles each session in a staging list of its own run (a
  companion key in the history's Cluster slot) and one Lua script, atomic on the
  server, makes it the history: it keeps a history that has messages unless
  ``overwrite=True``, else replaces it whole. Concurrent imports of one session are
  thereby serialized by Redis at their commits: with ``overwrite=False`` the first
  commit writes and the others keep it; with ``overwrite=True`` the last commit's copy
  stays. The session is always exactly one whole copy, never a mix, a double or empty.
* Each step may be re-sent after a lost reply (see operations/transfer_plans.py).

A session read in its last millisecond (PTTL 0, or ``expires_in: 0`` in a file) expires
as it is read: it is skipped and counted (``sessions_expired``), never written without
an expiry. Memory stays constant however long a history is (windows of 1,000 messages,
transfer_sessions.py).
``skip_corrupt=True`` on the source store skips stored elements that are not messages
(counted in the result) instead of raising :class:`CorruptHistoryError`.

Example::

    store.export("backup.jsonl")
    RedisChatStore(url=new_url).import_("backup.jsonl")
    store.copy_to(RedisChatStore(url="redis+cluster://10.0.0.1:7000"))
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from redis_chat_history.atomic_file import open_input, open_output
from redis_chat_history.codec import compress_element
from redis_chat_history.errors import InvalidArgumentError, InvalidArgumentTypeError
from redis_chat_history.export_format import (
    ExportReader,
    ExportWriter,
    MessageRecord,
    SessionStart,
    line_error,
)
from redis_chat_history.slots import new_run_id
from redis_chat_history.transfer_sessions import WINDOW, Endpoint, SessionReader, SessionStaging

__all__ = [
    "Endpoint",
    "ExportResult",
    "Progress",
    "TransferResult",
    "copy_sessions",
    "export_sessions",
    "import_sessions",
]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TransferResult:
    """Outcome of an import or a copy.

    ``messages`` were read (from the file, or from the source's sessions that were not
    kept as they were on the target); ``messages_written`` are in the sessions written.
    """

    sessions_written: int
    sessions_skipped: int
    messages: int
    #: Stored elements that were not messages, skipped (copy with ``skip_corrupt=True``).
    corrupt_skipped: int = 0
    #: What the caller should know (an import file whose completeness was not checked).
    warnings: tuple[str, ...] = ()
    messages_written: int = 0
    #: Sessions that expired as they were read (PTTL 0, ``expires_in: 0``): not written.
    sessions_expired: int = 0


@dataclass(frozen=True)
class ExportResult:
    """Outcome of an export: sessions and messages written, corrupt elements skipped."""

    sessions: int
    messages: int
    corrupt_skipped: int = 0
    #: Sessions that expired as they were read (PTTL 0): left out.
    sessions_expired: int = 0


def _no_progress(sessions: int, messages: int) -> None:
    return None


# -- export ------------------------------------------------------------------------------
def export_sessions(
    side: Endpoint,
    file: str | os.PathLike[str] | IO[Any],
    session_ids: Iterable[str] | None = None,
    *,
    progress: Progress | None = None,
) -> ExportResult:
    """Write sessions in the export format (see export_format.py).

    To a path, the file is replaced only once the export is complete.
    """
    report = progress or _no_progress
    chosen = side.session_ids(session_ids)
    run_id = new_run_id()
    corrupt = expired = 0
    with open_output(file) as write:
        writer = ExportWriter(write)
        for session_id in chosen:
            reader = SessionReader(side, side.settings.key(session_id), run_id)
            if reader.expired():
                expired += 1
                continue
            expires_in = None if reader.expire_ms is None else reader.expire_ms / 1000
            writer.start_session(session_id, expires_in=expires_in)
            with contextlib.closing(reader.windows()) as windows:
                for window in windows:
                    writer.add((payload, text) for _raw, text, payload in window)
                    report(writer.sessions, writer.messages)
            corrupt += reader.corrupt_skipped
            writer.end_session()
            report(writer.sessions, writer.messages)
        writer.close()
    return ExportResult(writer.sessions, writer.messages, corrupt, expired)


# -- import and copy ----------------------------------------------------------------------
class _Tally:
    """What an import or copy did so far; ``progress`` hears of every change."""

    def __init__(self, progress: Progress | None) -> None:
        self.report = progress or _no_progress
        self.written = self.skipped = self.expired = self.messages = self.messages_written = 0

    def update(self) -> None:
        self.report(self.written + self.skipped + self.expired, self.messages)

    def commit(self, staging: SessionStaging, expire_ms: int | None) -> None:
        if staging.commit(expire_ms):
            self.written += 1
            self.messages_written += staging.count
        else:
            self.skipped += 1
        self.update()

    def result(self, corrupt: int = 0, warnings: Iterable[str] = ()) -> TransferResult:
        return TransferResult(
            self.written,
            self.skipped,
            self.messages,
            corrupt,
            tuple(warnings),
            messages_written=self.messages_written,
            sessions_expired=self.expired,
        )


def import_sessions(
    side: Endpoint,
    file: str | os.PathLike[str] | IO[Any],
    *,
    overwrite: bool = False,
    allow_empty: bool = False,
    progress: Progress | None = None,
) -> TransferResult:
    """Read an export into the store of ``side`` (see export_format.py).

    Each session is written at its closing record; an empty file is refused unless
    ``allow_empty``.
    """
    tally = _Tally(progress)
    reader = ExportReader(allow_empty=allow_empty)
    run_id = new_run_id()
    compress = side.settings.compress
    staging: SessionStaging | None = None
    expire_ms: int | None = None
    with open_input(file) as lines:
        try:
            for record in reader.read(lines):
                if type(record) is MessageRecord:
                    if staging is not None:
                        element = record.element
                        staging.add(compress_element(element) if compress else element)
                    tally.messages += 1
                    if tally.messages % WINDOW == 0:
                        tally.update()
                elif type(record) is SessionStart:
                    expire_ms = record.expire_ms
                    try:  # checked even when it expired: a bad name is refused
                        key = side.settings.key(record.session_id)
                    except (InvalidArgumentError, InvalidArgumentTypeError) as error:
                        raise line_error(
                            record.line,
                            f"session {record.session_id!r}: {error}",
                            record.session_id,
                        ) from None
                    staging = (
                        None if expire_ms == 0 else SessionStaging(side, key, run_id, overwrite)
                    )
                elif staging is None:  # the end of a session that expired as it was read
                    tally.expired += 1
                    tally.update()
                else:  # the end of a session: write it
                    tally.commit(staging, expire_ms)
                    staging = None
        except BaseException:
            if staging is not None:
                staging.discard()
            raise
    return tally.result(warnings=reader.warnings)


def copy_sessions(
    source: Endpoint,
    target: Endpoint,
    session_ids: Iterable[str] | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> TransferResult:
    """Copy sessions from ``source`` to ``target`` (another deployment or prefix).

    Stored elements are copied as they are (compressed ones stay compressed) and each
    session keeps its remaining TTL. Each session is read as one snapshot and written
    atomically, as an import writes it.
    """
    tally = _Tally(progress)
    run_id = new_run_id()
    corrupt = 0
    for session_id in source.session_ids(session_ids):
        staged = SessionStaging(target, target.settings.key(session_id), run_id, overwrite)
        if staged.skip:
            tally.skipped += 1
            tally.update()
            continue
        reader = SessionReader(source, source.settings.key(session_id), run_id)
        if reader.expired():
            tally.expired += 1
            tally.update()
            continue
        try:
            with contextlib.closing(reader.windows()) as windows:
                for window in windows:
                    for raw, _text, _payload in window:
                        staged.add(raw)
                    tally.messages += len(window)
                    tally.update()
            corrupt += reader.corrupt_skipped
            if staged.count:  # else it vanished (expired or deleted), or held nothing valid
                tally.commit(staged, reader.expire_ms)
        except BaseException:
            staged.discard()
            raise
    return tally.result(corrupt)
