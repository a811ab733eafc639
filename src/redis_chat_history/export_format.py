"""The export format: JSON Lines written and read here, with no server.

A header, then each session's messages oldest first, each session closed by a record
with its message count, and the file closed by a record with the totals::

    {"format": "redis-chat-history-export", "version": 2}
    {"session_id": "s1", "position": 0, "type": "human", "data": {"content": "hi"}, "expires_in": 3599.5}
    {"session_id": "s1", "position": 1, "type": "ai", "data": {"content": "hello"}}
    {"session_end": "s1", "messages": 2}
    {"export_end": true, "sessions": 1, "messages": 2}

``type`` and ``data`` are what langchain_core's ``messages_from_dict`` reads (values are
kept exactly, see codec.py). ``position`` numbers a session's lines from 0 in the file.
``expires_in`` (seconds) appears on the first line of a session that expires; absent or
null, the session does not expire; 0, it expired as it was read (a reader skips it).
The closing records prove a file whole: a reader hands a session over only at its
``session_end`` with the right count; a cut or damaged file raises ``ImportFormatError``
naming the line and what is missing. An empty file is refused unless ``allow_empty`` (a
failed ``> backup.jsonl`` leaves one). Files without the header (version 1) are still
read, session by session, with a warning that their completeness cannot be checked.
:class:`ExportWriter` writes it (export, ``show --json``), :class:`ExportReader` reads it
(import); transfer.py does the Redis work around them.

Example::

    >>> import io
    >>> out = io.BytesIO()
    >>> writer = ExportWriter(out.write)
    >>> writer.start_session("s1", expires_in=None)
    >>> writer.add([{"type": "human", "data": {"content": "hi"}}])
    1
    >>> writer.end_session(); writer.close()
    >>> [type(r).__name__ for r in ExportReader().read(out.getvalue().splitlines(True))]
    ['SessionStart', 'MessageRecord', 'SessionEnd']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from redis_chat_history.checks import check_seconds
from redis_chat_history.codec import check_payload, dumps_exact, loads_exact, message_from_payload
from redis_chat_history.errors import (
    ImportFormatError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from redis_chat_history.operations.transfer_plans import MAX_EXPIRE_MS

FORMAT = "redis-chat-history-export"
VERSION = 2

UNCHECKED_WARNING = (
    "the file has no export header (written by version 1 of the format): its completeness "
    "cannot be checked, a cut file would import its last session partially"
)

logger = logging.getLogger("redis_chat_history")


def line_error(number: int, text: str, session_id: str | None = None) -> ImportFormatError:
    """The error of line ``number`` (1 = the first) of a file being read."""
    return ImportFormatError(f"line {number}: {text}", line=number, session_id=session_id)


# -- writing -------------------------------------------------------------------------------
def record_line(fields: dict[str, Any]) -> bytes:
    """One line of the format: ``fields`` as exact JSON and a newline."""
    return dumps_exact(fields) + b"\n"


def message_line(
    session_id: str,
    position: int,
    payload: dict[str, Any],
    *,
    stored: bytes | str | None = None,
    expires_in: float | None = None,
) -> bytes:
    """The line of one message; ``stored``, its stored JSON, is spliced in when it can be.

    Example::

        >>> message_line("s", 0, {"type": "human", "data": {"content": "hi"}})
        b'{"session_id":"s","position":0,"type":"human","data":{"content":"hi"}}\\n'
    """
    head = b'{"session_id":' + dumps_exact(session_id) + b',"position":' + str(position).encode()
    if expires_in is not None:
        head += b',"expires_in":' + dumps_exact(expires_in)
    body = stored
    if not (
        isinstance(body, bytes)
        and body.startswith(b'{"')
        and len(payload) == 2
        and b"\n" not in body
        and b"\r" not in body
    ):  # keep a line a line, and only type and data
        body = dumps_exact({"type": payload["type"], "data": payload["data"]})
    return head + b"," + body[1:] + b"\n"


class ExportWriter:
    """Writes an export through ``write`` (bytes): the header now, records as told.

    A session with no messages is left out (no closing record, not counted).
    """

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self._write = write
        self.sessions = self.messages = 0
        self._session: str | None = None
        self._position = 0
        self._expires_in: float | None = None
        write(record_line({"format": FORMAT, "version": VERSION}))

    def start_session(self, session_id: str, *, expires_in: float | None) -> None:
        """Begin a session; ``expires_in`` (seconds, None: never) goes on its first line."""
        self._session, self._position, self._expires_in = session_id, 0, expires_in

    def add(self, messages: Iterable[dict[str, Any] | tuple[dict[str, Any], bytes | str]]) -> int:
        """Write messages of the session (payloads, or (payload, stored JSON)); their number."""
        session_id = self._session
        assert session_id is not None, "start_session first"
        lines = []
        position = self._position
        for item in messages:
            payload, stored = item if isinstance(item, tuple) else (item, None)
            expires_in = self._expires_in if position == 0 else None
            lines.append(
                message_line(session_id, position, payload, stored=stored, expires_in=expires_in)
            )
            position += 1
        self._write(b"".join(lines))
        added = position - self._position
        self._position = position
        self.messages += added
        return added

    def end_session(self) -> None:
        """Close the session (its record with the count), when it had messages."""
        if self._session is not None and self._position:
            self._write(record_line({"session_end": self._session, "messages": self._position}))
            self.sessions += 1
        self._session = None

    def close(self) -> None:
        """Write the closing record with the totals."""
        self.end_session()
        self._write(
            record_line({"export_end": True, "sessions": self.sessions, "messages": self.messages})
        )


# -- reading -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SessionStart:
    """A session's first line: ``expire_ms`` None never expires, 0 expired as it was read."""

    session_id: str
    expire_ms: int | None
    line: int


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message: ``element`` is its stored JSON (uncompressed)."""

    session_id: str
    position: int
    element: bytes
    line: int


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """A session read whole (its closing record, or its last line in a version 1 file)."""

    session_id: str
    messages: int
    line: int


Record = SessionStart | MessageRecord | SessionEnd


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_expires_in(value: Any, number: int, session_id: str) -> int | None:
    """Milliseconds of a line's ``expires_in``: None never, 0 now; refuses what PEXPIRE would."""
    if value is None:
        return None
    try:
        check_seconds("expires_in", value, maximum=MAX_EXPIRE_MS // 1000)
    except (InvalidArgumentError, InvalidArgumentTypeError) as error:
        raise line_error(number, str(error), session_id) from None
    return 0 if value == 0 else max(1, round(value * 1000))  # an int stays exact


class ExportReader:
    """Reads the format line by line into records, checking every line (see the docstring).

    ``warnings`` collects what the caller should know (a file without a header).
    """

    def __init__(self, *, allow_empty: bool = False) -> None:
        self.allow_empty = allow_empty
        self.warnings: list[str] = []
        #: None before the first record; True with a header (closing records required).
        self._checked: bool | None = None
        self._ended = False
        self._seen: set[str] = set()
        self._session: str | None = None
        self._session_line = 0
        self._count = 0
        self._sessions = self._messages = 0  # of the current export section

    def read(self, lines: Iterable[bytes | str]) -> Iterator[Record]:
        """The records of ``lines`` (each with its newline), in order; raises on the first bad one."""
        number = 0
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                yield from self._line(raw, number)
        yield from self._end_of_file(number)

    def _line(self, raw: bytes | str, number: int) -> Iterator[Record]:
        try:
            record = loads_exact(raw)
        except ValueError as error:
            ended = raw.endswith(b"\n") if isinstance(raw, bytes) else raw.endswith("\n")
            if not ended:
                raise line_error(
                    number,
                    f"not valid JSON and the file ends in it: the file is cut ({error}); "
                    + (
                        f"nothing of session {self._session!r} was written" if self._session else ""
                    ),
                ) from None
            raise line_error(number, f"not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise line_error(number, "expected a JSON object")
        if "format" in record:
            self._header(record, number)
        elif self._ended:
            raise line_error(number, "a line after the export's closing record (export_end)")
        elif "session_end" in record:
            yield self._session_end(record, number)
        elif "export_end" in record:
            self._export_end(record, number)
        else:
            if self._checked is None:
                self._checked = False
                self.warnings.append(UNCHECKED_WARNING)
                logger.warning("import: %s", UNCHECKED_WARNING)
            yield from self._message(record, number)

    def _header(self, record: dict[str, Any], number: int) -> None:
        if record.get("format") != FORMAT:
            raise line_error(number, f"not a {FORMAT} file (format {record.get('format')!r})")
        version = record.get("version")
        if version != VERSION:
            raise line_error(
                number, f"format version {version!r} is not {VERSION} (a newer export?)"
            )
        if self._checked is not None and not self._ended:
            raise line_error(number, "a header inside an export (two files joined mid-way?)")
        self._checked, self._ended = True, False
        self._sessions = self._messages = 0

    def _message(self, line: dict[str, Any], number: int) -> Iterator[Record]:
        missing = [name for name in ("session_id", "position", "type", "data") if name not in line]
        if missing:
            raise line_error(number, f"missing field(s) {', '.join(missing)}")
        session_id = line["session_id"]
        if not isinstance(session_id, str) or not session_id:
            raise line_error(number, "session_id must be a non-empty string")
        new_session = session_id != self._session
        if new_session:
            yield from self._start(session_id, number)
        position = line["position"]
        if not _is_count(position) or position != self._count:
            raise line_error(
                number,
                f"position {position!r} of session {session_id!r}, expected {self._count}",
                session_id,
            )
        expire_ms = parse_expires_in(line.get("expires_in"), number, session_id)
        try:
            payload = check_payload({"type": line["type"], "data": line["data"]})
            message_from_payload(payload)
            element = dumps_exact(payload)
        except (ValueError, TypeError) as error:
            raise line_error(
                number, f"not a message of session {session_id!r}: {error}", session_id
            ) from None
        if new_session:
            yield SessionStart(session_id, expire_ms, number)
        self._count += 1
        self._messages += 1
        yield MessageRecord(session_id, position, element, number)

    def _start(self, session_id: str, number: int) -> Iterator[Record]:
        if self._session is not None:
            if self._checked:
                raise line_error(
                    number,
                    f"session {session_id!r} starts before the closing record (session_end) "
                    f"of session {self._session!r} (line {self._session_line}): the file is "
                    f"damaged; nothing of {self._session!r} was written",
                    self._session,
                )
            yield self._close_session(number - 1)
        if session_id in self._seen:
            raise line_error(
                number,
                f"session {session_id!r} appears again (its lines must be together, as an "
                "export writes them)",
                session_id,
            )
        self._seen.add(session_id)
        self._session, self._session_line, self._count = session_id, number, 0

    def _close_session(self, number: int) -> SessionEnd:
        assert self._session is not None
        done = SessionEnd(self._session, self._count, number)
        self._session = None
        self._sessions += 1
        return done

    def _session_end(self, record: dict[str, Any], number: int) -> SessionEnd:
        session_id, count = record.get("session_end"), record.get("messages")
        if self._session is None or session_id != self._session:
            raise line_error(
                number,
                f"closing record of session {session_id!r}, which has no lines before it",
            )
        if not _is_count(count) or count != self._count:
            raise line_error(
                number,
                f"session {self._session!r} closes with {count!r} messages but "
                f"{self._count} were read: the file is damaged; nothing of it was written",
                self._session,
            )
        return self._close_session(number)

    def _export_end(self, record: dict[str, Any], number: int) -> None:
        if self._session is not None:
            raise line_error(
                number,
                f"the export ends inside session {self._session!r} (no session_end): "
                "nothing of it was written",
                self._session,
            )
        expected = (record.get("sessions"), record.get("messages"))
        if self._checked and expected != (self._sessions, self._messages):
            raise line_error(
                number,
                f"the export counts {expected[0]!r} sessions and {expected[1]!r} messages but "
                f"{self._sessions} and {self._messages} were read: the file is damaged",
            )
        self._ended = True

    def _end_of_file(self, lines: int) -> Iterator[Record]:
        number = lines + 1
        if self._checked is None:
            if not self.allow_empty:
                raise line_error(
                    number,
                    "the file is empty (no export header, no message): not an export "
                    "(a failed redirect?); allow_empty (--allow-empty) accepts it",
                )
            return
        if not self._checked:
            if self._session is not None:
                yield self._close_session(lines)
            return
        if self._session is not None:
            raise line_error(
                number,
                f"the file ends inside session {self._session!r} after "
                f"{self._count} of its messages, before its closing record "
                "(session_end): the file is cut; nothing of that session was written",
                self._session,
            )
        if not self._ended:
            raise line_error(
                number,
                "the file ends before the export's closing record (export_end): it is cut "
                f"after {self._sessions} whole session(s), which were imported; "
                "sessions after them are missing",
            )
