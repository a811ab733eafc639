"""Export, import and copy of sessions: complete, atomic per session, exact, never duplicating.

The export format is JSON Lines. A header, then each session's messages oldest first,
each session closed by a record with its message count, and the file closed by a
record with the totals::

    {"format": "redis-chat-history-export", "version": 2}
    {"session_id": "s1", "position": 0, "type": "human", "data": {"content": "hi"}, "expires_in": 3599.5}
    {"session_id": "s1", "position": 1, "type": "ai", "data": {"content": "hello"}}
    {"session_end": "s1", "messages": 2}
    {"export_end": true, "sessions": 1, "messages": 2}

``type`` and ``data`` are what langchain_core's ``messages_from_dict`` reads (compressed
messages are written uncompressed; values are kept exactly, see codec.py).
``expires_in`` (seconds) appears on the first line of a session that expires, and an
import gives the session that much time again. The closing records prove a file
whole: an import writes a session only at its ``session_end`` with the right count,
and a file that ends before its ``export_end`` (cut, or from an export that failed)
raises :class:`~redis_chat_history.errors.ImportFormatError` naming what is missing;
nothing of an incomplete session is written. Files without the header (written by
version 1) still import, session by session, with a warning that their completeness
cannot be checked.

Every step is safe to interrupt and to run concurrently:

* An export to a path writes a temporary file beside it and renames it at the end, so
  an existing file stays as it was until a complete export replaces it.
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
* Each step may be re-sent after a lost reply (see operations/transfer.py).

Memory stays constant however long a history is (windows of 1,000 messages).
``skip_corrupt=True`` on the source store skips stored elements that are not messages
(counted in the result) instead of raising :class:`CorruptHistoryError`.

Example::

    store.export("backup.jsonl")
    RedisChatStore(url=new_url).import_("backup.jsonl")
    store.copy_to(RedisChatStore(url="redis+cluster://10.0.0.1:7000"))
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import stat
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from redis_chat_history import operations
from redis_chat_history.codec import (
    KNOWN_TYPES,
    compress_element,
    decode_payload,
    dumps_exact,
    element_json,
    loads_exact,
    message_from_payload,
)
from redis_chat_history.errors import (
    ChatHistoryError,
    CorruptHistoryError,
    ImportFormatError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from redis_chat_history.execution import run
from redis_chat_history.provider import ClientProvider
from redis_chat_history.settings import Settings
from redis_chat_history.slots import new_run_id

Progress = Callable[[int, int], None]
WINDOW = 1000
FORMAT = "redis-chat-history-export"
VERSION = 2

logger = logging.getLogger("redis_chat_history")

UNCHECKED_WARNING = (
    "the file has no export header (written by version 1 of the format): its completeness "
    "cannot be checked, a cut file would import its last session partially"
)


@dataclass(frozen=True)
class TransferResult:
    """Outcome of an import or a copy."""

    sessions_written: int
    sessions_skipped: int
    messages: int
    #: Stored elements that were not messages, skipped (copy with ``skip_corrupt=True``).
    corrupt_skipped: int = 0
    #: What the caller should know (an import file whose completeness was not checked).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportResult:
    """Outcome of an export: sessions and messages written, corrupt elements skipped."""

    sessions: int
    messages: int
    corrupt_skipped: int = 0


@dataclass(frozen=True)
class Endpoint:
    """What a transfer needs of a store: its clients, its settings, its session listing."""

    provider: ClientProvider
    settings: Settings
    list_sessions: Callable[[], Iterable[str]]

    def session_ids(self, session_ids: Iterable[str] | None) -> Iterable[str]:
        if session_ids is None:
            return self.list_sessions()
        if isinstance(session_ids, str):
            raise InvalidArgumentTypeError("session_ids must be a list of session ids, not a str")
        return session_ids


def _no_progress(sessions: int, messages: int) -> None:
    return None


# -- reading a session as one snapshot ---------------------------------------------------
class _SessionReader:
    """One session of a source, read as one consistent snapshot in windows (oldest first)."""

    def __init__(self, side: Endpoint, key: str, run_id: str) -> None:
        self.side = side
        self.key = key
        self.run_id = run_id
        plan = operations.snapshot_plan(key, run_id, window=WINDOW)
        self.snapshot = run(side.provider, plan)
        self.corrupt_skipped = 0

    @property
    def expire_ms(self) -> int:
        return self.snapshot.expire_ms

    def _raw_windows(self) -> Generator[list[bytes]]:
        snapshot = self.snapshot
        if not snapshot.copied:
            for start in range(0, len(snapshot.elements), WINDOW):
                yield snapshot.elements[start : start + WINDOW]
            return
        try:
            yield snapshot.elements
            start = len(snapshot.elements)
            while start < snapshot.length:
                plan = operations.snapshot_window_plan(
                    self.key, self.run_id, length=snapshot.length, start=start, count=WINDOW
                )
                window = run(self.side.provider, plan)
                yield window
                start += len(window)
        finally:
            with contextlib.suppress(ChatHistoryError):  # it expires by itself anyway
                run(self.side.provider, operations.drop_snapshot_plan(self.key, self.run_id))

    def windows(self) -> Generator[list[tuple[bytes, bytes | str, dict[str, Any]]]]:
        """Windows of (stored element, its JSON, its payload), corrupt ones checked."""
        length = self.snapshot.length
        skip = self.side.settings.skip_corrupt
        # closing: the snapshot key is deleted however the caller stops reading
        with contextlib.closing(self._raw_windows()) as raw_windows:
            yield from self._checked(raw_windows, length, skip)

    def _checked(
        self, raw_windows: Iterator[list[bytes]], length: int, skip: bool
    ) -> Iterator[list[tuple[bytes, bytes | str, dict[str, Any]]]]:
        position = 0
        for raw_window in raw_windows:
            checked = []
            for raw in raw_window:
                try:
                    text = element_json(raw)
                    payload = decode_payload(text)
                    message_from_payload(payload)  # what a read would refuse is corrupt
                except ValueError as error:
                    index = length - 1 - position
                    description = (
                        f"{self.key!r}: list element {index} (LRANGE index, 0 = newest; "
                        f"message {position} from the oldest) is not a stored message: {error}"
                    )
                    if not skip:
                        raise CorruptHistoryError(description, key=self.key, index=index) from error
                    logger.warning("skipping corrupt element: %s", description)
                    self.corrupt_skipped += 1
                else:
                    checked.append((raw, text, payload))
                position += 1
            if checked:
                yield checked


# -- export ------------------------------------------------------------------------------
def _record(fields: dict[str, Any]) -> bytes:
    return dumps_exact(fields) + b"\n"


def _message_line(
    session_id: str,
    position: int,
    expires_in: float | None,
    text: bytes | str,
    payload: dict[str, Any],
) -> bytes:
    """The export line of one message: the stored JSON itself when it can be spliced in."""
    head = b'{"session_id":' + dumps_exact(session_id) + b',"position":' + str(position).encode()
    if expires_in is not None:
        head += b',"expires_in":' + dumps_exact(expires_in)
    body = text
    if not (
        isinstance(body, bytes)
        and body.startswith(b'{"')
        and len(payload) == 2
        and b"\n" not in body
        and b"\r" not in body
    ):  # keep a line a line, and only type and data
        body = dumps_exact({"type": payload["type"], "data": payload["data"]})
    return head + b"," + body[1:] + b"\n"


@contextlib.contextmanager
def _atomic_file(path: str | os.PathLike[str]) -> Iterator[Callable[[bytes], Any]]:
    """Write to a temporary file beside ``path``, renamed over it only once complete."""
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    temporary = os.path.join(directory, f".{name}.{new_run_id()[:8]}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle.write
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):  # an existing file keeps its mode
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


@contextlib.contextmanager
def _output(file: str | os.PathLike[str] | IO[Any]) -> Iterator[Callable[[bytes], Any]]:
    if isinstance(file, (str, os.PathLike)):
        with _atomic_file(file) as write:
            yield write
    elif isinstance(file, io.TextIOBase):
        yield lambda line: file.write(line.decode("utf-8", "surrogateescape"))
    else:
        yield file.write


def export_sessions(
    side: Endpoint,
    file: str | os.PathLike[str] | IO[Any],
    session_ids: Iterable[str] | None = None,
    *,
    progress: Progress | None = None,
) -> ExportResult:
    """Write sessions in the export format (see the module docstring).

    To a path, the file is replaced only once the export is complete.
    """
    report = progress or _no_progress
    chosen = side.session_ids(session_ids)
    run_id = new_run_id()
    sessions = messages = corrupt = 0
    with _output(file) as write:
        write(_record({"format": FORMAT, "version": VERSION}))
        for session_id in chosen:
            key = side.settings.key(session_id)
            reader = _SessionReader(side, key, run_id)
            expires_in = reader.expire_ms / 1000 if reader.expire_ms else None
            position = 0
            with contextlib.closing(reader.windows()) as windows:
                for window in windows:
                    lines = []
                    for _raw, text, payload in window:
                        lines.append(
                            _message_line(
                                session_id,
                                position,
                                expires_in if position == 0 else None,
                                text,
                                payload,
                            )
                        )
                        position += 1
                    write(b"".join(lines))
                    messages += len(window)
                    report(sessions, messages)
            corrupt += reader.corrupt_skipped
            if position:
                write(_record({"session_end": session_id, "messages": position}))
                sessions += 1
                report(sessions, messages)
        write(_record({"export_end": True, "sessions": sessions, "messages": messages}))
    return ExportResult(sessions, messages, corrupt)


# -- staging into a target -----------------------------------------------------------------
class _Staging:
    """One session being written to a target: batches staged, committed at its end."""

    def __init__(self, side: Endpoint, key: str, run_id: str, overwrite: bool) -> None:
        self.side = side
        self.key = key
        self.run_id = run_id
        self.overwrite = overwrite
        self.count = 0
        self.staged = 0
        self.batch: list[bytes] = []
        # A session that already holds messages is kept: skip the staging work (the
        # commit checks again, atomically).
        self.skip = not overwrite and run(side.provider, operations.count_plan(key)) > 0

    def add(self, element: bytes) -> None:
        self.count += 1
        if self.skip:
            return
        self.batch.append(element)
        if len(self.batch) >= WINDOW:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            plan = operations.stage_plan(self.key, self.run_id, self.batch, before=self.staged)
            self.staged = run(self.side.provider, plan, self.side.settings.wait)
            self.batch = []

    def commit(self, expire_ms: int) -> bool:
        """True when the session was written, False when the target's was kept."""
        if self.skip:
            return False
        self.flush()
        ttl = self.side.settings.ttl
        expiry = expire_ms or (ttl * 1000 if ttl else None)
        plan = operations.commit_stage_plan(
            self.key,
            self.run_id,
            staged=self.staged,
            overwrite=self.overwrite,
            expire_ms=expiry,
            remember_seconds=self.side.provider.policy.window_seconds,
        )
        return run(self.side.provider, plan, self.side.settings.wait)

    def discard(self) -> None:
        if self.staged:
            with contextlib.suppress(ChatHistoryError):  # it expires by itself anyway
                run(self.side.provider, operations.discard_stage_plan(self.key, self.run_id))


# -- import --------------------------------------------------------------------------------
@contextlib.contextmanager
def _input(file: str | os.PathLike[str] | IO[Any]) -> Iterator[Iterable[bytes | str]]:
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            yield handle
    else:
        yield file


def _error(number: int, text: str, session_id: str | None = None) -> ImportFormatError:
    return ImportFormatError(f"line {number}: {text}", line=number, session_id=session_id)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _expire_ms(value: Any, number: int, session_id: str) -> int:
    """Milliseconds of a line's ``expires_in`` (0: none); refuses what PEXPIRE would."""
    if value is None or value == 0:
        return 0
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or value * 1000 > operations.MAX_EXPIRE_MS
    ):
        raise _error(
            number,
            f"expires_in must be a number of seconds in [0, {operations.MAX_EXPIRE_MS // 1000}],"
            f" got {value!r}",
            session_id,
        )
    return max(1, round(value * 1000))


class _Import:
    """The state of one import: the session being read, the totals, the file's records."""

    def __init__(self, side: Endpoint, overwrite: bool, report: Progress) -> None:
        self.side = side
        self.overwrite = overwrite
        self.report = report
        self.run_id = new_run_id()
        self.written = self.skipped = self.messages = 0
        self.seen: set[str] = set()
        self.current: _Staging | None = None
        self.current_id = ""
        self.current_line = 0
        self.expire_ms = 0
        #: None before the first record; True with a header (closing records required).
        self.checked: bool | None = None
        self.ended = False
        self.section_sessions = self.section_messages = 0
        self.warnings: list[str] = []

    def result(self) -> TransferResult:
        return TransferResult(
            self.written, self.skipped, self.messages, warnings=tuple(self.warnings)
        )

    def line(self, raw: bytes | str, number: int) -> None:
        try:
            record = loads_exact(raw)
        except ValueError as error:
            ended = raw.endswith(b"\n") if isinstance(raw, bytes) else raw.endswith("\n")
            if not ended:
                raise _error(
                    number,
                    f"not valid JSON and the file ends in it: the file is cut ({error}); "
                    + (
                        f"nothing of session {self.current_id!r} was written"
                        if self.current
                        else ""
                    ),
                ) from None
            raise _error(number, f"not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise _error(number, "expected a JSON object")
        if "format" in record:
            self.header(record, number)
        elif self.ended:
            raise _error(number, "a line after the export's closing record (export_end)")
        elif "session_end" in record:
            self.session_end(record, number)
        elif "export_end" in record:
            self.export_end(record, number)
        else:
            if self.checked is None:
                self.unchecked()
            self.message(record, number)

    def header(self, record: dict[str, Any], number: int) -> None:
        if record.get("format") != FORMAT:
            raise _error(number, f"not a {FORMAT} file (format {record.get('format')!r})")
        version = record.get("version")
        if version != VERSION:
            raise _error(number, f"format version {version!r} is not {VERSION} (a newer export?)")
        if self.checked is not None and not self.ended:
            raise _error(number, "a header inside an export (two files joined mid-way?)")
        self.checked, self.ended = True, False
        self.section_sessions = self.section_messages = 0

    def unchecked(self) -> None:
        self.checked = False
        self.warnings.append(UNCHECKED_WARNING)
        logger.warning("import: %s", UNCHECKED_WARNING)

    def message(self, line: dict[str, Any], number: int) -> None:
        missing = [name for name in ("session_id", "position", "type", "data") if name not in line]
        if missing:
            raise _error(number, f"missing field(s) {', '.join(missing)}")
        session_id = line["session_id"]
        if not isinstance(session_id, str) or not session_id:
            raise _error(number, "session_id must be a non-empty string")
        if self.current is None or session_id != self.current_id:
            self.start(session_id, number)
        assert self.current is not None
        position = line["position"]
        if not _is_count(position) or position != self.current.count:
            raise _error(
                number,
                f"position {position!r} of session {session_id!r}, expected {self.current.count}",
                session_id,
            )
        expire_ms = _expire_ms(line.get("expires_in"), number, session_id)
        if position == 0:
            self.expire_ms = expire_ms
        payload = {"type": line["type"], "data": line["data"]}
        try:
            if not isinstance(payload["type"], str) or payload["type"] not in KNOWN_TYPES:
                raise ValueError(f"unknown message type {payload['type']!r}")
            if not isinstance(payload["data"], dict):
                raise ValueError("field 'data' is not an object")
            message_from_payload(payload)
            raw = dumps_exact(payload)
        except (ValueError, TypeError) as error:
            raise _error(
                number, f"not a message of session {session_id!r}: {error}", session_id
            ) from None
        self.current.add(compress_element(raw) if self.side.settings.compress else raw)
        self.messages += 1
        self.section_messages += 1
        if self.messages % WINDOW == 0:
            self.report(self.written + self.skipped, self.messages)

    def start(self, session_id: str, number: int) -> None:
        if self.current is not None:
            if self.checked:
                raise _error(
                    number,
                    f"session {session_id!r} starts before the closing record (session_end) "
                    f"of session {self.current_id!r} (line {self.current_line}): the file is "
                    f"damaged; nothing of {self.current_id!r} was written",
                    self.current_id,
                )
            self.finish()
        if session_id in self.seen:
            raise _error(
                number,
                f"session {session_id!r} appears again (its lines must be together, as an "
                "export writes them)",
                session_id,
            )
        try:
            key = self.side.settings.key(session_id)
        except (InvalidArgumentError, InvalidArgumentTypeError) as error:
            raise _error(number, f"session {session_id!r}: {error}", session_id) from None
        self.seen.add(session_id)
        self.current = _Staging(self.side, key, self.run_id, self.overwrite)
        self.current_id, self.current_line, self.expire_ms = session_id, number, 0

    def session_end(self, record: dict[str, Any], number: int) -> None:
        session_id, count = record.get("session_end"), record.get("messages")
        if self.current is None or session_id != self.current_id:
            raise _error(
                number,
                f"closing record of session {session_id!r}, which has no lines before it",
            )
        if not _is_count(count) or count != self.current.count:
            raise _error(
                number,
                f"session {self.current_id!r} closes with {count!r} messages but "
                f"{self.current.count} were read: the file is damaged; nothing of it was written",
                self.current_id,
            )
        self.finish()
        self.section_sessions += 1

    def export_end(self, record: dict[str, Any], number: int) -> None:
        if self.current is not None:
            raise _error(
                number,
                f"the export ends inside session {self.current_id!r} (no session_end): "
                "nothing of it was written",
                self.current_id,
            )
        expected = (record.get("sessions"), record.get("messages"))
        if self.checked and expected != (self.section_sessions, self.section_messages):
            raise _error(
                number,
                f"the export counts {expected[0]!r} sessions and {expected[1]!r} messages but "
                f"{self.section_sessions} and {self.section_messages} were read: the file is "
                "damaged",
            )
        self.ended = True

    def finish(self) -> None:
        current = self.current
        assert current is not None
        if current.commit(self.expire_ms):
            self.written += 1
        else:
            self.skipped += 1
        self.current = None
        self.report(self.written + self.skipped, self.messages)

    def end_of_file(self, lines: int) -> None:
        number = lines + 1
        if not self.checked:
            if self.current is not None:
                self.finish()
            return
        if self.current is not None:
            raise _error(
                number,
                f"the file ends inside session {self.current_id!r} after "
                f"{self.current.count} of its messages, before its closing record "
                "(session_end): the file is cut; nothing of that session was written",
                self.current_id,
            )
        if not self.ended:
            raise _error(
                number,
                "the file ends before the export's closing record (export_end): it is cut "
                f"after {self.section_sessions} whole session(s), which were imported; "
                "sessions after them are missing",
            )

    def discard(self) -> None:
        if self.current is not None:
            self.current.discard()


def import_sessions(
    side: Endpoint,
    file: str | os.PathLike[str] | IO[Any],
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> TransferResult:
    """Read an export into the store of ``side`` (see the module docstring)."""
    state = _Import(side, overwrite, progress or _no_progress)
    with _input(file) as lines:
        try:
            number = 0
            for number, raw in enumerate(lines, start=1):
                if raw.strip():
                    state.line(raw, number)
            state.end_of_file(number)
        except BaseException:
            state.discard()
            raise
    return state.result()


# -- copy ----------------------------------------------------------------------------------
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
    report = progress or _no_progress
    run_id = new_run_id()
    written = skipped = messages = corrupt = 0
    for session_id in source.session_ids(session_ids):
        staged = _Staging(target, target.settings.key(session_id), run_id, overwrite)
        if staged.skip:
            skipped += 1
            report(written + skipped, messages)
            continue
        reader = _SessionReader(source, source.settings.key(session_id), run_id)
        try:
            with contextlib.closing(reader.windows()) as windows:
                for window in windows:
                    for raw, _text, _payload in window:
                        staged.add(raw)
                    messages += len(window)
                    report(written + skipped, messages)
            corrupt += reader.corrupt_skipped
            if staged.count == 0:
                continue  # the session vanished (expired or deleted), or held nothing valid
            if staged.commit(reader.expire_ms):
                written += 1
            else:
                skipped += 1
            report(written + skipped, messages)
        except BaseException:
            staged.discard()
            raise
    return TransferResult(written, skipped, messages, corrupt)
