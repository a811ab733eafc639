"""Export and import files: replaced only when complete, proven whole, refused naming the line.

The format itself is tested without a server in tests/test_format.py; these tests run
it through a real import (nothing of a refused session is written) and the CLI.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from redis_chat_history import CorruptHistoryError, ImportFormatError, RedisChatStore
from tests.servers import RedisProcess, wait_until
from tests.test_cli import cli as cli_run
from tests.test_transfer import contents_of, corrupt


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "line 4: not valid JSON"),
        ('{"session_id": "b", "position": 2, "type": "human"}', "line 4: missing field(s) data"),
        (
            '{"session_id": "b", "position": 2, "type": "alien", "data": {}}',
            "line 4: not a message",
        ),
        (
            '{"session_id": "b", "position": 7, "type": "human", "data": {"content": "x"}}',
            "line 4: position 7",
        ),
        (
            '{"session_id": "b", "position": 2, "type": "ai", "data": {"content": 5}}',
            "line 4: not a message",
        ),
        ("[1, 2]", "line 4: expected a JSON object"),
    ],
)
def test_malformed_line_names_it_and_writes_nothing_of_its_session(
    redis7: RedisProcess, tmp_path: Path, bad_line: str, message: str
) -> None:
    good = [
        {"session_id": "a", "position": 0, "type": "human", "data": {"content": "a0"}},
        {"session_id": "b", "position": 0, "type": "human", "data": {"content": "b0"}},
        {"session_id": "b", "position": 1, "type": "ai", "data": {"content": "b1"}},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([*map(json.dumps, good), bad_line]) + "\n")
    store = RedisChatStore(url=redis7.url)
    with pytest.raises(ImportFormatError) as raised:
        store.import_(path)
    assert message in str(raised.value) and raised.value.line == 4
    assert isinstance(raised.value, ValueError)
    assert sorted(store.sessions()) == ["a"]  # session a ended before the bad line
    client = redis7.client()
    try:
        lists = [k.decode() for k in client.keys("*") if client.type(k) == b"list"]
        assert lists == ["message_store:a"]  # no staging list left behind
    finally:
        client.close()


def test_session_lines_must_be_together(redis7: RedisProcess) -> None:
    lines = [
        {"session_id": "a", "position": 0, "type": "human", "data": {"content": "1"}},
        {"session_id": "b", "position": 0, "type": "human", "data": {"content": "2"}},
        {"session_id": "a", "position": 1, "type": "human", "data": {"content": "3"}},
    ]
    store = RedisChatStore(url=redis7.url)
    with pytest.raises(ImportFormatError, match="line 3: session 'a' appears again"):
        store.import_(io.BytesIO(b"\n".join(orjson.dumps(line) for line in lines)))


def test_a_failed_export_leaves_the_previous_file_and_no_empty_one(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    store = RedisChatStore(url=redis7.url)
    store.history("good").add_messages([HumanMessage("a"), AIMessage("b")])
    backup = tmp_path / "bk.jsonl"
    store.export(backup)
    previous = backup.read_bytes()
    os.chmod(backup, 0o640)
    store.history("bad").add_messages([HumanMessage("c")])
    corrupt(redis7, "message_store:bad")
    with pytest.raises(CorruptHistoryError, match="message_store:bad"):
        store.export(backup, ["good", "bad"])
    assert backup.read_bytes() == previous
    fresh = tmp_path / "fresh.jsonl"
    with pytest.raises(CorruptHistoryError):
        store.export(fresh, ["bad"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bk.jsonl"]  # no 0-byte file
    client = redis7.client()
    try:
        client.lpop("message_store:bad")  # repaired
    finally:
        client.close()
    store.export(backup, ["good", "bad"])
    assert backup.read_bytes() != previous
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640  # the file keeps its mode


INTERRUPTED_EXPORT = textwrap.dedent(
    """
    import os, signal, sys, time
    from redis_chat_history import export_format
    from redis_chat_history.cli import main

    # Ctrl-C raises KeyboardInterrupt, as at a terminal, even where this runs with SIGINT
    # ignored (a background job of a non-interactive shell inherits SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    add = export_format.ExportWriter.add

    def add_then_wait(self, messages):
        added = add(self, messages)
        if self.messages == 1000:  # the first window is written, more are to come
            open(os.environ["EXPORTING_MARKER"], "w").close()
            time.sleep(600)  # the test interrupts the export here
        return added

    export_format.ExportWriter.add = add_then_wait
    sys.exit(main(sys.argv[1:]))
    """
)


def test_an_interrupted_cli_export_leaves_the_previous_file(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    client = redis7.client()
    element = orjson.dumps({"type": "human", "data": {"content": "m" * 200}})
    try:  # a session of several windows (1,000 messages each), built server-side
        client.eval(
            "for i = 1, tonumber(ARGV[1]) do redis.call('LPUSH', KEYS[1], ARGV[2]) end",
            1,
            "message_store:long",
            5_000,
            element,
        )
    finally:
        client.close()
    out = tmp_path / "out"
    out.mkdir()
    backup = out / "bk.jsonl"
    backup.write_bytes(b"the previous backup\n")
    marker = tmp_path / "exporting"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            INTERRUPTED_EXPORT,
            "--url",
            redis7.url,
            "export",
            "-o",
            str(backup),
        ],
        env={**os.environ, "EXPORTING_MARKER": str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:  # the child says when it is in the middle of the export: no race with its phases
        wait_until(
            lambda: marker.exists() or process.poll() is not None, 60, "the export's first window"
        )
        assert process.poll() is None, process.communicate()
        temporaries = [p for p in out.iterdir() if p.name.endswith(".tmp")]
        assert len(temporaries) == 1 and temporaries[0].stat().st_size  # written, not renamed
        assert temporaries[0].name.startswith(".bk.jsonl.")  # beside the file it replaces
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130, stderr  # the CLI's exit code for an interruption
    assert b"interrupted" in stderr
    assert backup.read_bytes() == b"the previous backup\n"
    assert sorted(path.name for path in out.iterdir()) == ["bk.jsonl"]
    client = redis7.client()
    try:  # and the export's snapshot of the session was dropped
        assert client.keys("*") == [b"message_store:long"]
    finally:
        client.close()


# -- the format proves a file whole ---------------------------------------------------------------
def three_sessions(store: RedisChatStore, path: Path) -> bytes:
    store.history("a").add_messages([HumanMessage(f"a{i}") for i in range(3)])
    store.history("b").add_messages([HumanMessage(f"b{i}") for i in range(4)])
    store.history("c").add_messages([HumanMessage(f"c{i}") for i in range(2)])
    store.export(path, ["a", "b", "c"])
    return path.read_bytes()


def test_a_cut_file_is_refused_naming_what_is_missing(redis7: RedisProcess, tmp_path: Path) -> None:
    source = RedisChatStore(url=redis7.url, key_prefix="src:")
    whole = three_sessions(source, tmp_path / "whole.jsonl")
    lines = whole.splitlines(keepends=True)
    assert len(lines) == 1 + 9 + 3 + 1
    ends = [sum(map(len, lines[: i + 1])) for i in range(len(lines))]
    cuts = sorted({*ends[:-1], *(end - 5 for end in ends)})
    cut_path = tmp_path / "cut.jsonl"
    for cut in cuts:
        target = RedisChatStore(url=redis7.url, key_prefix=f"cut{cut}:")
        cut_path.write_bytes(whole[:cut])
        with pytest.raises(ImportFormatError) as raised:
            target.import_(cut_path)
        text = str(raised.value)
        assert "cut" in text, text
        closed = [
            line.split(b'"')[3].decode()
            for line, end in zip(lines, ends, strict=True)
            if b"session_end" in line and end - 1 <= cut
        ]
        assert sorted(target.sessions()) == closed, (cut, text)  # only whole sessions
        for session_id in closed:
            assert contents_of(target, session_id) == contents_of(source, session_id)
    # the messages of the session being read are named
    cut_path.write_bytes(b"".join(lines[:7]))
    with pytest.raises(ImportFormatError, match="inside session 'b' after 2 of its messages"):
        RedisChatStore(url=redis7.url, key_prefix="x:").import_(cut_path)
    cut_path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(ImportFormatError, match=r"before the export's closing record"):
        RedisChatStore(url=redis7.url, key_prefix="y:").import_(cut_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ls: ls[:8] + ls[9:], "session 'b' closes with 4 messages but 3 were read"),
        (lambda ls: ls[:9] + ls[10:], "session 'c' starts before the closing record"),
        (lambda ls: [*ls[:-1], b'{"export_end":true,"sessions":2,"messages":9}\n'], "counts 2"),
        (lambda ls: [*ls, ls[1]], "a line after the export's closing record"),
        (
            lambda ls: [b'{"format":"redis-chat-history-export","version":3}\n', *ls[1:]],
            "version 3",
        ),
    ],
)
def test_a_damaged_file_is_refused(
    redis7: RedisProcess, tmp_path: Path, change: Callable[[list[bytes]], list[bytes]], message: str
) -> None:
    source = RedisChatStore(url=redis7.url, key_prefix="src:")
    lines = three_sessions(source, tmp_path / "whole.jsonl").splitlines(keepends=True)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"".join(change(lines)))
    target = RedisChatStore(url=redis7.url, key_prefix="dst:")
    with pytest.raises(ImportFormatError, match=message):
        target.import_(damaged)
    assert "b" not in set(target.sessions()) or contents_of(target, "b") == contents_of(source, "b")


def test_a_file_of_the_first_format_imports_with_a_warning(
    redis7: RedisProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = RedisChatStore(url=redis7.url, key_prefix="src:")
    lines = three_sessions(source, tmp_path / "whole.jsonl").splitlines(keepends=True)
    old = tmp_path / "v1.jsonl"
    old.write_bytes(b"".join(line for line in lines if b'"session_id"' in line))
    target = RedisChatStore(url=redis7.url, key_prefix="dst:")
    result = target.import_(old)
    assert (result.sessions_written, result.messages) == (3, 9)
    assert len(result.warnings) == 1 and "completeness cannot be checked" in result.warnings[0]
    assert "completeness cannot be checked" in caplog.text
    assert contents_of(target, "b") == ["b0", "b1", "b2", "b3"]


# -- bad values are refused before anything is written ------------------------------------------
@pytest.mark.parametrize(
    "expires_in",
    ["1e300", "Infinity", "-Infinity", "NaN", "-1", '"soon"', "true", str(2**62 // 1000 + 1)],
)
def test_an_out_of_range_expiry_writes_nothing(
    redis_url: str, tmp_path: Path, expires_in: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"session_id": "a", "position": 0, "type": "human", "data": {"content": "a"}}\n'
        '{"session_id": "b", "position": 0, "type": "human", "data": {"content": "b"}, '
        f'"expires_in": {expires_in}}}\n'
    )
    store = RedisChatStore(url=redis_url)
    with pytest.raises(ImportFormatError, match="line 2: expires_in must be a number") as raised:
        store.import_(path)
    assert raised.value.session_id == "b"
    assert sorted(store.sessions()) == ["a"]


def test_the_longest_expiry_redis_accepts_is_imported(redis_url: str, tmp_path: Path) -> None:
    seconds = 2**62 // 1000
    path = tmp_path / "long.jsonl"
    path.write_text(
        '{"session_id": "b", "position": 0, "type": "human", "data": {"content": "b"}, '
        f'"expires_in": {seconds}}}\n'
    )
    store = RedisChatStore(url=redis_url)
    assert store.import_(path).sessions_written == 1
    assert (store.history("b").expires_in() or 0) > seconds - 60
    exported = io.BytesIO()
    store.export(exported)
    assert (
        RedisChatStore(url=redis_url, key_prefix="again:")
        .import_(io.BytesIO(exported.getvalue()))
        .sessions_written
        == 1
    )


def test_cli_import_of_a_bad_or_cut_file_exits_2(redis7: RedisProcess, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"session_id": "b", "position": 0, "type": "human", "data": {"content": "b"}, '
        '"expires_in": 1e300}\n'
    )
    done = cli_run("--url", redis7.url, "import", str(path))
    assert done.returncode == 2, done.stderr
    assert "line 1: expires_in must be a number" in done.stderr
    source = RedisChatStore(url=redis7.url, key_prefix="src:")
    whole = three_sessions(source, tmp_path / "whole.jsonl")
    path.write_bytes(whole[: len(whole) // 2])
    done = cli_run("--url", redis7.url, "import", str(path))
    assert done.returncode == 2 and "cut" in done.stderr, done.stderr
    old = tmp_path / "v1.jsonl"
    old.write_bytes(b"".join(line for line in whole.splitlines(True) if b'"session_id"' in line))
    done = cli_run("--url", redis7.url, "import", str(old))
    assert done.returncode == 0 and "warning: the file has no export header" in done.stderr


def test_an_import_line_expiring_now_is_skipped_and_counted(redis7: RedisProcess) -> None:
    lines = [
        {"session_id": "gone", "position": 0, "type": "human", "data": {"content": "x"}},
        {"session_id": "kept", "position": 0, "type": "human", "data": {"content": "y"}},
    ]
    lines[0]["expires_in"] = 0
    store = RedisChatStore(url=redis7.url)
    result = store.import_(io.BytesIO(b"\n".join(orjson.dumps(line) for line in lines)))
    assert (result.sessions_written, result.sessions_expired, result.messages) == (1, 1, 2)
    assert result.messages_written == 1
    assert sorted(store.sessions()) == ["kept"] and store.history("kept").expires_in() is None
