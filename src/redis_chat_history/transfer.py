"""Export, import and copy of sessions: streaming, atomic per session, never duplicating.

The export format is JSON Lines, one object per message, the lines of a session
together and oldest first::

    {"session_id": "s1", "position": 0, "type": "human", "data": {"content": "hi"}, "expires_in": 3599.5}
    {"session_id": "s1", "position": 1, "type": "ai", "data": {"content": "hello"}}

``type`` and ``data`` are what langchain_core's ``messages_from_dict`` reads (compressed
messages are written uncompressed). ``expires_in`` (seconds) appears on the first line
of a session that expires, and an import gives the session that much time again.

Memory stays constant however long a history is: sessions are read in windows of
1,000 messages and written through a staging list that one atomic RENAME turns into
the history. So an import either writes a whole session or nothing of it; a malformed
line raises :class:`~redis_chat_history.errors.ImportFormatError` with its line number
and its session is not written (sessions that ended before that line stay written).
A session that already has messages is kept (not duplicated) unless ``overwrite=True``.

Example::

    store.export("backup.jsonl")
    RedisChatStore(url=new_url).import_("backup.jsonl")
    store.copy_to(RedisChatStore(url="redis+cluster://10.0.0.1:7000"))
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

import orjson

from redis_chat_history import operations
from redis_chat_history.codec import decode_element, decode_payload, encode_message
from redis_chat_history.errors import (
    CorruptHistoryError,
    ImportFormatError,
    InvalidArgumentTypeError,
)
from redis_chat_history.execution import run

if TYPE_CHECKING:
    from redis_chat_history.store import RedisChatStore, TransferResult

Progress = Callable[[int, int], None]
WINDOW = 1000


def _no_progress(sessions: int, messages: int) -> None:
    return None


# -- reading a history in windows ------------------------------------------------------
def _windows(store: RedisChatStore, key: str) -> Iterator[list[bytes]]:
    """The raw elements of ``key``, oldest first, ``WINDOW`` at a time."""
    start = 0
    while True:
        window = run(store._provider, operations.oldest_window_plan(key, start, WINDOW))
        if window:
            yield window
        if len(window) < WINDOW:
            return
        start += len(window)


def _expire_ms(store: RedisChatStore, key: str) -> int:
    milliseconds = run(store._provider, operations.pttl_plan(key))
    return milliseconds if milliseconds > 0 else 0


def _session_ids(store: RedisChatStore, session_ids: Iterable[str] | None) -> Iterable[str]:
    if session_ids is None:
        return store.sessions()
    if isinstance(session_ids, str):
        raise InvalidArgumentTypeError("session_ids must be a list of session ids, not a str")
    return session_ids


# -- export ----------------------------------------------------------------------------
@contextlib.contextmanager
def _output(file: str | os.PathLike[str] | IO[Any]) -> Iterator[Callable[[bytes], Any]]:
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as handle:
            yield handle.write
    elif isinstance(file, io.TextIOBase):
        yield lambda line: file.write(line.decode("utf-8"))
    else:
        yield file.write


def export_sessions(
    store: RedisChatStore,
    file: str | os.PathLike[str] | IO[Any],
    session_ids: Iterable[str] | None = None,
    *,
    progress: Progress | None = None,
) -> int:
    """Write sessions as JSON Lines (see the module docstring); returns messages written."""
    report = progress or _no_progress
    sessions = messages = 0
    with _output(file) as write:
        for session_id in _session_ids(store, session_ids):
            key = store.key(session_id)
            expire_ms = _expire_ms(store, key)
            position = 0
            for window in _windows(store, key):
                for raw in window:
                    try:
                        payload = decode_payload(raw)
                    except ValueError as error:
                        raise CorruptHistoryError(
                            f"{key!r}: message {position} (0 = oldest) is not a stored "
                            f"message: {error}",
                            key=key,
                            index=-(position + 1),
                        ) from error
                    line: dict[str, Any] = {
                        "session_id": session_id,
                        "position": position,
                        "type": payload["type"],
                        "data": payload["data"],
                    }
                    if position == 0 and expire_ms:
                        line["expires_in"] = expire_ms / 1000
                    write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
                    position += 1
                messages += len(window)
                report(sessions, messages)
            sessions += 1
            report(sessions, messages)
    return messages


# -- import ----------------------------------------------------------------------------
@contextlib.contextmanager
def _input(file: str | os.PathLike[str] | IO[Any]) -> Iterator[Iterable[bytes | str]]:
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            yield handle
    else:
        yield file


class _Session:
    """One session of an import: validated lines staged in batches, committed at its end."""

    def __init__(self, store: RedisChatStore, session_id: str, line: int, overwrite: bool):
        self.store = store
        self.session_id = session_id
        self.key = store.key(session_id)
        self.first_line = line
        self.overwrite = overwrite
        self.count = 0
        self.expire_ms = 0
        self.batch: list[bytes] = []
        self.staged = False
        # A session that already holds messages is kept: skip the staging work.
        self.skip = not overwrite and store.history(session_id).count() > 0

    def add(self, encoded: bytes) -> None:
        self.count += 1
        if self.skip:
            return
        self.batch.append(encoded)
        if len(self.batch) >= WINDOW:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            if not self.staged:
                run(self.store._provider, operations.discard_stage_plan(self.key))
                self.staged = True
            run(self.store._provider, operations.stage_plan(self.key, self.batch))
            self.batch = []

    def commit(self) -> bool:
        if self.skip:
            return False
        self.flush()
        expire_ms = self.expire_ms or (self.store.ttl or 0) * 1000
        plan = operations.commit_stage_plan(self.key, overwrite=self.overwrite, expire_ms=expire_ms)
        return run(self.store._provider, plan)

    def discard(self) -> None:
        if self.staged:
            run(self.store._provider, operations.discard_stage_plan(self.key))


def _parse_line(raw: bytes | str, number: int) -> dict[str, Any]:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ImportFormatError(f"line {number}: not valid JSON ({error})", line=number) from None
    if not isinstance(line, dict):
        raise ImportFormatError(f"line {number}: expected a JSON object", line=number)
    missing = [name for name in ("session_id", "position", "type", "data") if name not in line]
    if missing:
        raise ImportFormatError(
            f"line {number}: missing field(s) {', '.join(missing)}", line=number
        )
    session_id = line["session_id"]
    if not isinstance(session_id, str) or not session_id:
        raise ImportFormatError(
            f"line {number}: session_id must be a non-empty string", line=number
        )
    position = line["position"]
    if isinstance(position, bool) or not isinstance(position, int):
        raise ImportFormatError(
            f"line {number}: position must be an integer", line=number, session_id=session_id
        )
    expires_in = line.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in < 0
    ):
        raise ImportFormatError(
            f"line {number}: expires_in must be a number of seconds >= 0",
            line=number,
            session_id=session_id,
        )
    return line


def _encode_line(line: dict[str, Any], number: int, compress: bool) -> bytes:
    """The stored element for a line, after checking that it decodes into a message."""
    raw = orjson.dumps({"type": line["type"], "data": line["data"]})
    try:
        message = decode_element(raw)
    except ValueError as error:
        raise ImportFormatError(
            f"line {number}: not a message of session {line['session_id']!r}: {error}",
            line=number,
            session_id=line["session_id"],
        ) from None
    return encode_message(message, compress=compress) if compress else raw


def import_sessions(
    store: RedisChatStore,
    file: str | os.PathLike[str] | IO[Any],
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> TransferResult:
    """Read a JSON Lines export into ``store`` (see the module docstring)."""
    from redis_chat_history.store import TransferResult

    report = progress or _no_progress
    written = skipped = messages = 0
    seen: set[str] = set()
    current: _Session | None = None

    def finish(session: _Session) -> None:
        nonlocal written, skipped
        if session.commit():
            written += 1
        else:
            skipped += 1
        report(written + skipped, messages)

    with _input(file) as lines:
        try:
            number = 0
            for number, raw in enumerate(lines, start=1):
                if not raw.strip():
                    continue
                line = _parse_line(raw, number)
                session_id = line["session_id"]
                if current is None or session_id != current.session_id:
                    if current is not None:
                        finish(current)
                        current = None
                    if session_id in seen:
                        raise ImportFormatError(
                            f"line {number}: session {session_id!r} appears again (its lines "
                            f"must be together, as an export writes them)",
                            line=number,
                            session_id=session_id,
                        )
                    seen.add(session_id)
                    current = _Session(store, session_id, number, overwrite)
                if line["position"] != current.count:
                    raise ImportFormatError(
                        f"line {number}: position {line['position']} of session "
                        f"{session_id!r}, expected {current.count}",
                        line=number,
                        session_id=session_id,
                    )
                if line["position"] == 0 and line.get("expires_in"):
                    current.expire_ms = max(1, round(line["expires_in"] * 1000))
                current.add(_encode_line(line, number, store.compress))
                messages += 1
                if messages % WINDOW == 0:
                    report(written + skipped, messages)
            if current is not None:
                finish(current)
                current = None
        except BaseException:
            if current is not None:
                current.discard()
            raise
    return TransferResult(written, skipped, messages)


# -- copy ------------------------------------------------------------------------------
def copy_sessions(
    source: RedisChatStore,
    target: RedisChatStore,
    session_ids: Iterable[str] | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> TransferResult:
    """Copy sessions from ``source`` to ``target`` (another deployment or prefix).

    Stored elements are copied as they are (compressed ones stay compressed) and
    each session keeps its remaining TTL.
    """
    from redis_chat_history.store import TransferResult

    report = progress or _no_progress
    written = skipped = messages = 0
    for session_id in _session_ids(source, session_ids):
        key = source.key(session_id)
        staged = _Session(target, session_id, 0, overwrite)
        try:
            if staged.skip:
                skipped += 1
                report(written + skipped, messages)
                continue
            staged.expire_ms = _expire_ms(source, key)
            for window in _windows(source, key):
                for raw in window:
                    staged.add(raw)
                messages += len(window)
                report(written + skipped, messages)
            if staged.count == 0:
                continue  # the session vanished (expired or deleted) meanwhile
            if staged.commit():
                written += 1
            else:
                skipped += 1
            report(written + skipped, messages)
        except BaseException:
            staged.discard()
            raise
    return TransferResult(written, skipped, messages)
