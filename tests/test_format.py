"""The export format without a server: what the writer writes, what the reader accepts and refuses."""

from __future__ import annotations

import doctest
import io
import json
from typing import Any

import pytest

from redis_chat_history import export_format
from redis_chat_history.codec import check_payload, decode_payload, dumps_exact
from redis_chat_history.errors import ImportFormatError
from redis_chat_history.export_format import (
    UNCHECKED_WARNING,
    ExportReader,
    ExportWriter,
    MessageRecord,
    SessionEnd,
    SessionStart,
    message_line,
    parse_expires_in,
)

HI = {"type": "human", "data": {"content": "hi"}}
HELLO = {"type": "ai", "data": {"content": "hello", "id": "m2"}}
HEADER = {"format": "redis-chat-history-export", "version": 2}


def written(sessions: dict[str, tuple[float | None, list[dict[str, Any]]]]) -> bytes:
    out = io.BytesIO()
    writer = ExportWriter(out.write)
    for session_id, (expires_in, payloads) in sessions.items():
        writer.start_session(session_id, expires_in=expires_in)
        writer.add(payloads)
        writer.end_session()
    writer.close()
    return out.getvalue()


def lines_of(*records: dict[str, Any]) -> list[bytes]:
    return [json.dumps(record).encode() + b"\n" for record in records]


def message(session_id: str, position: int, **extra: Any) -> dict[str, Any]:
    return {"session_id": session_id, "position": position, **HI, **extra}


def read(lines: list[bytes], **options: Any) -> list[Any]:
    return list(ExportReader(**options).read(lines))


def test_the_writer_writes_header_messages_and_closing_records() -> None:
    data = written({"s1": (3599.5, [HI, HELLO]), "empty": (None, []), "s2": (None, [HI])})
    assert [json.loads(line) for line in data.splitlines()] == [
        HEADER,
        {"session_id": "s1", "position": 0, "expires_in": 3599.5, **HI},
        {"session_id": "s1", "position": 1, **HELLO},
        {"session_end": "s1", "messages": 2},
        {"session_id": "s2", "position": 0, **HI},
        {"session_end": "s2", "messages": 1},
        {"export_end": True, "sessions": 2, "messages": 3},
    ]


def test_a_stored_json_is_spliced_only_when_it_is_one_line_of_type_and_data() -> None:
    stored = dumps_exact(HI)
    assert message_line("s", 4, HI, stored=stored) == (
        b'{"session_id":"s","position":4,"type":"human","data":{"content":"hi"}}\n'
    )
    # what cannot be spliced is rewritten from the payload: same record, one line
    odd = {"type": "human", "data": {"content": "a\nb"}}
    spaced = json.dumps(odd, indent=2).encode()  # newlines between fields
    line = message_line("s", 0, odd, stored=spaced)
    assert line.count(b"\n") == 1 and json.loads(line) == {"session_id": "s", "position": 0, **odd}
    extra = {**HI, "extra": 1}
    assert json.loads(message_line("s", 0, extra, stored=dumps_exact(extra))) == message("s", 0)


def test_what_the_writer_writes_the_reader_reads_back() -> None:
    data = written({"a": (12.0, [HI, HELLO]), "b": (None, [HELLO])})
    reader = ExportReader()
    records = list(reader.read(io.BytesIO(data)))
    assert records == [
        SessionStart("a", 12_000, 2),
        MessageRecord("a", 0, dumps_exact(HI), 2),
        MessageRecord("a", 1, dumps_exact(HELLO), 3),
        SessionEnd("a", 2, 4),
        SessionStart("b", None, 5),
        MessageRecord("b", 0, dumps_exact(HELLO), 5),
        SessionEnd("b", 1, 6),
    ]
    assert reader.warnings == []


def test_an_export_of_no_session_is_a_whole_file() -> None:
    assert read(written({}).splitlines(keepends=True)) == []


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_empty_file_is_refused_unless_allowed(content: bytes) -> None:
    with pytest.raises(ImportFormatError, match="the file is empty") as raised:
        read(content.splitlines(keepends=True))
    assert raised.value.line == content.count(b"\n") + 1
    assert read(content.splitlines(keepends=True), allow_empty=True) == []


def test_a_file_without_header_is_read_session_by_session_with_a_warning() -> None:
    reader = ExportReader()
    records = list(reader.read(lines_of(message("a", 0), message("a", 1), message("b", 0))))
    assert [type(record).__name__ for record in records] == [
        "SessionStart",
        "MessageRecord",
        "MessageRecord",
        "SessionEnd",  # of a, when b starts: a version 1 file has no closing records
        "SessionStart",
        "MessageRecord",
        "SessionEnd",
    ]
    assert records[3] == SessionEnd("a", 2, 2) and records[-1] == SessionEnd("b", 1, 3)
    assert reader.warnings == [UNCHECKED_WARNING]


@pytest.mark.parametrize(
    ("lines", "line", "text"),
    [
        ([b"{not json\n"], 1, "not valid JSON"),
        ([json.dumps(HEADER).encode() + b"\n", b'{"session_id": "a"'], 2, "the file is cut"),
        (lines_of(HEADER, {"session_id": "a", "position": 0, "type": "human"}), 2, "data"),
        (lines_of(HEADER, message("a", 1)), 2, "position 1 of session 'a', expected 0"),
        (lines_of(HEADER, message("", 0)), 2, "session_id must be a non-empty string"),
        (
            lines_of(HEADER, {"session_id": "a", "position": 0, "type": "alien", "data": {}}),
            2,
            "not a message of session 'a': unknown message type 'alien'",
        ),
        (
            lines_of(HEADER, {"session_id": "a", "position": 0, "type": "ai", "data": 5}),
            2,
            "field 'data' is missing or not an object",
        ),
        (
            lines_of(HEADER, {"session_id": "a", "position": 0, "type": "ai", "data": {}}),
            2,
            "invalid ai message",
        ),
        (lines_of(HEADER, [1, 2]), 2, "expected a JSON object"),  # type: ignore[arg-type]
        (lines_of({"format": "csv", "version": 2}), 1, "not a redis-chat-history-export file"),
        (lines_of({**HEADER, "version": 3}), 1, "format version 3 is not 2"),
        (lines_of(HEADER, HEADER), 2, "a header inside an export"),
        (lines_of(HEADER, message("a", 0), message("b", 0)), 3, "starts before the closing"),
        (
            lines_of(HEADER, message("a", 0), {"session_end": "a", "messages": 2}),
            3,
            "session 'a' closes with 2 messages but 1 were read",
        ),
        (lines_of(HEADER, {"session_end": "a", "messages": 0}), 2, "which has no lines before"),
        (
            lines_of(HEADER, message("a", 0), {"export_end": True, "sessions": 1, "messages": 1}),
            3,
            "the export ends inside session 'a'",
        ),
        (
            lines_of(HEADER, {"export_end": True, "sessions": 1, "messages": 0}),
            2,
            "the export counts 1 sessions and 0 messages but 0 and 0 were read",
        ),
        (
            lines_of(HEADER, {"export_end": True, "sessions": 0, "messages": 0}, message("a", 0)),
            3,
            "a line after the export's closing record",
        ),
        (lines_of(HEADER, message("a", 0)), 3, "ends inside session 'a' after 1 of its messages"),
        (lines_of(HEADER), 2, "before the export's closing record (export_end): it is cut"),
        (lines_of(message("a", 0), message("b", 0), message("a", 1)), 3, "'a' appears again"),
    ],
)
def test_a_bad_line_is_refused_naming_its_number(lines: list[bytes], line: int, text: str) -> None:
    with pytest.raises(ImportFormatError) as raised:
        read(lines)
    assert raised.value.line == line
    assert str(raised.value).startswith(f"line {line}: ") and text in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_records_before_the_bad_line_are_handed_over_first() -> None:
    lines = lines_of(HEADER, message("a", 0), {"session_end": "a", "messages": 1}, message("b", 3))
    seen: list[Any] = []
    with pytest.raises(ImportFormatError, match="line 4: position 3"):
        seen.extend(ExportReader().read(lines))
    assert seen == [
        SessionStart("a", None, 2),
        MessageRecord("a", 0, dumps_exact(HI), 2),
        SessionEnd("a", 1, 3),
    ]  # an import has written session a whole, and nothing of b


@pytest.mark.parametrize(
    ("value", "expire_ms"),
    [
        (None, None),
        (0, 0),
        (0.0, 0),
        (0.0001, 1),
        (1.5, 1500),
        (2**62 // 1000, 2**62 // 1000 * 1000),
    ],
)
def test_expires_in_none_is_never_and_zero_is_now(value: Any, expire_ms: int | None) -> None:
    assert parse_expires_in(value, 1, "s") == expire_ms


@pytest.mark.parametrize("value", [-1, True, "soon", float("nan"), float("inf"), 1e300])
def test_an_expires_in_pexpire_would_refuse_is_refused(value: Any) -> None:
    with pytest.raises(ImportFormatError, match="line 7: expires_in must be a number"):
        parse_expires_in(value, 7, "s")


def test_a_session_read_as_it_expired_is_announced_with_expire_ms_zero() -> None:
    records = read(lines_of(message("a", 0, expires_in=0)))
    assert records[0] == SessionStart("a", 0, 1)


def test_one_shape_check_serves_stored_elements_and_export_lines() -> None:
    for bad, text in [([1], "JSON list, not an object"), ({"type": "x"}, "unknown message type")]:
        with pytest.raises(ValueError, match=text):
            check_payload(bad)
        with pytest.raises(ValueError, match=text):
            decode_payload(json.dumps(bad))
    assert check_payload(HI) is HI


def test_the_module_example_runs() -> None:
    results = doctest.testmod(export_format, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0 and results.attempted >= 4
