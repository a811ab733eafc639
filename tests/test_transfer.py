"""Export, import and copy: round trips equal, atomic per session, no duplicates, bounded memory."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from redis_chat_history import (
    CommandError,
    CorruptHistoryError,
    ImportFormatError,
    RedisChatStore,
    operations,
)
from redis_chat_history.execution import run
from redis_chat_history.operations import COMMIT, SNAPSHOT_READ, STAGE
from tests.proxy import ReplyDroppingProxy
from tests.servers import Cluster, RedisProcess, wait_until
from tests.test_cli import cli as cli_run
from tests.test_security import HISTORY_COMMANDS, set_user
from tests.test_security import PASSWORD as ACL_PASSWORD

ALL_KINDS: list[BaseMessage] = [
    SystemMessage("be brief"),
    HumanMessage("héllo 👋", id="h1", name="ann"),
    AIMessage(
        "",
        id="run-1",
        tool_calls=[
            {"name": "search", "args": {"q": "redis"}, "id": "call_1", "type": "tool_call"}
        ],
        usage_metadata={"input_tokens": 10, "output_tokens": 2, "total_tokens": 12},
        response_metadata={"model_name": "fake", "finish_reason": "tool_calls"},
    ),
    ToolMessage("42 results", tool_call_id="call_1", artifact={"rows": [1, 2]}, status="success"),
    FunctionMessage("done", name="legacy"),
    ChatMessage("aside", role="narrator"),
    AIMessageChunk("partial"),
    HumanMessage(
        [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]
    ),
]


@pytest.fixture(params=["standalone", "valkey", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "standalone":
        return str(request.getfixturevalue("redis7").url)
    if request.param == "valkey":
        return str(request.getfixturevalue("valkey").url)
    return str(request.getfixturevalue("cluster_url"))


def test_export_import_round_trip_is_equal(url: str, tmp_path: Path) -> None:
    source = RedisChatStore(url=url, key_prefix="src:")
    source.history("all*kinds").add_messages(ALL_KINDS)
    source.history("short").add_messages([HumanMessage("one")])
    source.history("short").expire(900)
    source.history("zipped").add_messages([HumanMessage("z" * 500)])
    compressed = RedisChatStore(url=url, key_prefix="src:", compress=True)
    compressed.history("zipped").add_messages([AIMessage("y" * 500)])
    path = tmp_path / "backup.jsonl"
    exported = source.export(path)
    assert (exported.sessions, exported.messages) == (3, len(ALL_KINDS) + 3)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0] == {"format": "redis-chat-history-export", "version": 2}
    assert records[-1] == {"export_end": True, "sessions": 3, "messages": 11}
    lines = [line for line in records if "session_id" in line]
    assert {line["session_id"] for line in lines} == {"all*kinds", "short", "zipped"}
    closing = {line["session_end"]: line["messages"] for line in records if "session_end" in line}
    assert closing == {"all*kinds": len(ALL_KINDS), "short": 1, "zipped": 2}
    first = next(line for line in lines if line["session_id"] == "short")
    assert first["position"] == 0 and 890 < first["expires_in"] <= 900
    assert all(
        line["data"]["content"][0] != "x"
        for line in lines
        if line["type"] == "ai" and line["session_id"] == "zipped"
    )

    target = RedisChatStore(url=url, key_prefix="dst:")
    result = target.import_(path)
    assert (result.sessions_written, result.sessions_skipped, result.messages) == (3, 0, 11)
    assert target.history("all*kinds").messages == ALL_KINDS
    assert [m.content for m in target.history("zipped").messages] == ["z" * 500, "y" * 500]
    assert 880 < (target.history("short").expires_in() or 0) <= 900
    assert target.history("all*kinds").expires_in() is None


def test_reimport_does_not_duplicate_and_overwrite_replaces(url: str, tmp_path: Path) -> None:
    store = RedisChatStore(url=url)
    store.history("s").add_messages([HumanMessage("a"), AIMessage("b")])
    path = tmp_path / "s.jsonl"
    store.export(path)
    again = store.import_(path)
    assert (again.sessions_written, again.sessions_skipped) == (0, 1)
    assert [m.content for m in store.history("s").messages] == ["a", "b"]
    store.history("s").add_user_message("c")
    replaced = store.import_(path, overwrite=True)
    assert (replaced.sessions_written, replaced.sessions_skipped) == (1, 0)
    assert [m.content for m in store.history("s").messages] == ["a", "b"]


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


def test_export_of_chosen_and_empty_sessions_to_a_text_stream(redis7: RedisProcess) -> None:
    store = RedisChatStore(url=redis7.url)
    store.history("one").add_messages([HumanMessage("1")])
    store.history("two").add_messages([HumanMessage("2")])
    out = io.StringIO()
    assert store.export(out, ["two", "never-written"]).messages == 1
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["session_id"] for line in records if "session_id" in line] == ["two"]
    assert records[-2:] == [
        {"session_end": "two", "messages": 1},
        {"export_end": True, "sessions": 1, "messages": 1},
    ]
    with pytest.raises(ImportFormatError, match="line 1: the file is empty"):
        store.import_(io.StringIO(""))
    assert store.import_(io.StringIO(""), allow_empty=True).messages == 0
    with pytest.raises(TypeError, match="not a str"):
        store.export(io.StringIO(), "two")


def test_copy_standalone_to_cluster_keeps_ttl_and_skips_existing(
    redis7: RedisProcess, cluster: Cluster, cluster_url: str
) -> None:
    source = RedisChatStore(url=redis7.url)
    for i in range(30):
        source.history(f"user-{i}").add_messages([HumanMessage(f"q{i}"), AIMessage(f"a{i}")])
    source.history("user-0").expire(600)
    source.history("big").add_messages([HumanMessage(str(i)) for i in range(2500)])
    target = RedisChatStore(url=cluster_url)
    target.history("user-1").add_messages([HumanMessage("already there")])
    seen: list[tuple[int, int]] = []
    result = source.copy_to(target, progress=lambda s, m: seen.append((s, m)))
    assert (result.sessions_written, result.sessions_skipped) == (30, 1)
    assert seen[-1] == (31, result.messages)
    assert target.count_sessions() == 31
    assert [m.content for m in target.history("user-7").messages] == ["q7", "a7"]
    assert [m.content for m in target.history("user-1").messages] == ["already there"]
    assert [m.content for m in target.history("big").messages] == [str(i) for i in range(2500)]
    assert 590 < (target.history("user-0").expires_in() or 0) <= 600
    back = RedisChatStore(url=redis7.url, key_prefix="back:")
    assert target.copy_to(back, ["user-0", "big"]).sessions_written == 2
    assert back.history("big").count() == 2500


MILLION_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from redis_chat_history import RedisChatStore
    url, path = sys.argv[1], sys.argv[2]
    source = RedisChatStore(url=url, key_prefix="big:")
    target = RedisChatStore(url=url, key_prefix="copy:")
    source.history("warm").add_user_message("x")
    source.export(path, ["warm"]); target.import_(path)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    exported = source.export(path, ["million"]).messages
    after_export = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    imported = target.import_(path)
    after_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(exported, imported.messages, after_export - base, after_import - base)
    """
)


def test_million_message_export_import_in_bounded_memory(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    client = redis7.client()
    element = orjson.dumps({"type": "human", "data": {"content": "m" * 200}})
    try:  # build the list server-side: a million 230-byte messages (~230 MB if held in memory)
        client.eval(
            "for i = 1, tonumber(ARGV[1]) do redis.call('LPUSH', KEYS[1], ARGV[2]) end",
            1,
            "big:million",
            1_000_000,
            element,
        )
        path = tmp_path / "million.jsonl"
        out = subprocess.run(
            [sys.executable, "-c", MILLION_SCRIPT, redis7.url, str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        print("million export/import: messages and peak RSS growth (KiB):", out)
        exported, imported, export_growth_kb, import_growth_kb = map(int, out)
        assert exported == imported == 1_000_000
        assert client.llen("copy:million") == 1_000_000
        assert client.lindex("copy:million", 0) == element
        assert export_growth_kb < 40_000 and import_growth_kb < 40_000, out
        assert path.stat().st_size > 230_000_000
    finally:
        client.delete("big:million", "copy:million")
        client.close()


# -- concurrent imports and copies: exactly one whole copy -------------------------------------
def contents_of(store: RedisChatStore, session_id: str) -> list[str]:
    return [str(message.content) for message in store.history(session_id).messages]


def staging_lists(client: Any) -> list[bytes]:
    """Companion lists left on a server (staging or snapshot), which must not outlive a run."""
    return [key for key in client.scan_iter(match=b"*\x00*") if client.type(key) == b"list"]


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads released at once; re-raise the first error."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def work(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = calls[index]()
        except BaseException as error:  # reported below
            outcomes[index] = error

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


@pytest.mark.parametrize("overwrite", [False, True])
def test_concurrent_imports_and_copies_leave_exactly_one_whole_copy(
    redis7: RedisProcess, tmp_path: Path, overwrite: bool
) -> None:
    source = RedisChatStore(url=redis7.url, key_prefix="src:")
    expected = [f"m{i}" for i in range(5000)]
    source.history("s").add_messages([HumanMessage(text) for text in expected])
    path = tmp_path / "s.jsonl"
    source.export(path)
    target = RedisChatStore(url=redis7.url)
    client = redis7.client()
    try:
        for _round in range(4):
            target.delete("s")
            results = run_together(
                [
                    lambda: target.import_(path, overwrite=overwrite),
                    lambda: target.import_(path, overwrite=overwrite),
                    lambda: target.import_(path, overwrite=overwrite),
                    lambda: source.copy_to(target, ["s"], overwrite=overwrite),
                ]
            )
            assert contents_of(target, "s") == expected  # never doubled, mixed or empty
            written = sum(result.sessions_written for result in results)
            skipped = sum(result.sessions_skipped for result in results)
            assert (written, skipped) == ((4, 0) if overwrite else (1, 3))
            assert staging_lists(client) == []
        # a session that has messages is kept whole (or replaced whole) by concurrent runs
        target.delete("s")
        target.history("s").add_messages([HumanMessage("mine")])
        run_together([lambda: target.import_(path, overwrite=overwrite) for _ in range(3)])
        assert contents_of(target, "s") == (expected if overwrite else ["mine"])
    finally:
        client.close()


# -- every step may be re-sent after a lost reply ---------------------------------------------
@pytest.fixture
def lossy(redis7: RedisProcess) -> Iterator[ReplyDroppingProxy]:
    """A proxy that can lose replies, in front of ``redis7`` with the transfer scripts loaded."""
    client = redis7.client()
    try:
        for script in (STAGE, COMMIT, SNAPSHOT_READ):
            client.script_load(script.source)
    finally:
        client.close()
    proxy = ReplyDroppingProxy(redis7.port)
    yield proxy
    proxy.close()


def numbered_file(path: Path, count: int, session_id: str = "s") -> list[str]:
    store_lines = [
        {"format": "redis-chat-history-export", "version": 2},
        *(
            {"session_id": session_id, "position": i, "type": "human", "data": {"content": f"m{i}"}}
            for i in range(count)
        ),
        {"session_end": session_id, "messages": count},
        {"export_end": True, "sessions": 1, "messages": count},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in store_lines) + b"\n")
    return [f"m{i}" for i in range(count)]


@pytest.mark.parametrize(
    ("lost", "count", "at"),
    [("stage", 2500, 1000), ("commit", 2000, 2000), ("kept commit", 2000, 2000)],
)
def test_a_lost_reply_of_any_step_is_recognised_when_re_sent(
    redis7: RedisProcess,
    lossy: ReplyDroppingProxy,
    tmp_path: Path,
    lost: str,
    count: int,
    at: int,
) -> None:
    expected = numbered_file(tmp_path / "s.jsonl", count)
    store = RedisChatStore(url=lossy.url)
    direct = redis7.client()

    def progress(sessions: int, messages: int) -> None:
        if messages == at and lossy.dropped == 0 and not lossy._drop.is_set():
            if lost == "kept commit":  # another writer got there first
                direct.lpush(
                    "message_store:s", orjson.dumps({"type": "ai", "data": {"content": "x"}})
                )
            lossy.drop_next_reply()

    try:
        result = store.import_(tmp_path / "s.jsonl", progress=progress)
        assert lossy.dropped == 1
        if lost == "kept commit":
            assert (result.sessions_written, result.sessions_skipped) == (0, 1)
            assert contents_of(store, "s") == ["x"]
        else:
            assert (result.sessions_written, result.sessions_skipped) == (1, 0)
            assert contents_of(store, "s") == expected  # the batch was pushed once
        assert staging_lists(direct) == []
    finally:
        direct.close()


def test_the_commit_never_deletes_a_history_whose_staging_list_is_gone(
    redis7: RedisProcess,
) -> None:
    store = RedisChatStore(url=redis7.url)
    store.history("s").add_messages([HumanMessage("keep me")])
    key = store.key("s")
    plan = operations.commit_stage_plan(
        key, "0" * 16, staged=3, overwrite=True, expire_ms=None, remember_seconds=60
    )
    with pytest.raises(CommandError, match="staging list is gone"):
        run(store._provider, plan)
    assert contents_of(store, "s") == ["keep me"]
    # a stage that does not find the length it expects pushes nothing
    stage = operations.stage_plan(key, "0" * 16, [b"{}"], before=5)
    with pytest.raises(CommandError, match="holds 0 messages, 5 expected"):
        run(store._provider, stage)
    client = redis7.client()
    try:
        assert staging_lists(client) == []
    finally:
        client.close()


# -- a session being written is exported and copied as one consistent snapshot -----------------
class Appender:
    """Appends numbered batches of 50 to a history (max_messages=3000) until stopped."""

    def __init__(self, store: RedisChatStore, session_id: str) -> None:
        self.history = store.history(session_id)
        self.next = 0
        self.batches = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def append(self) -> None:
        self.history.add_messages([HumanMessage(str(self.next + i)) for i in range(50)])
        self.next += 50
        self.batches += 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.append()

    def __enter__(self) -> Appender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def assert_a_state_it_was_in(numbers: list[int]) -> None:
    """Every state of the list is 3,000 consecutive numbers ending at a batch boundary."""
    assert len(numbers) == 3000
    assert numbers == list(range(numbers[0], numbers[0] + 3000)), "gap or duplicate"
    assert (numbers[-1] + 1) % 50 == 0


@pytest.mark.parametrize("how", ["export", "copy"])
def test_a_session_being_written_is_read_as_one_snapshot(
    redis_url: str, tmp_path: Path, how: str
) -> None:
    store = RedisChatStore(url=redis_url, max_messages=3000)
    appender = Appender(store, "busy")
    for _ in range(60):
        appender.append()
    target = RedisChatStore(url=redis_url, key_prefix="copy:")
    with appender:
        for _attempt in range(4):
            seen = appender.batches
            wait_until(lambda seen=seen: appender.batches > seen, 10, "the writer appends")
            before = appender.batches
            if how == "export":
                out = io.BytesIO()
                store.export(out, ["busy"])
                lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
                numbers = [int(line["data"]["content"]) for line in lines if "position" in line]
            else:
                store.copy_to(target, ["busy"], overwrite=True)
                numbers = [int(text) for text in contents_of(target, "busy")]
            assert appender.batches > before, "the session was not written during the read"
            assert_a_state_it_was_in(numbers)
    client = redis.Redis.from_url(redis_url)
    try:
        assert staging_lists(client) == []  # no snapshot is left behind
    finally:
        client.close()


# -- an export to a path replaces the file only when it is complete -----------------------------
def corrupt(redis_process: RedisProcess, key: str) -> None:
    client = redis_process.client()
    try:
        client.lpush(key, b"{not a message")
    finally:
        client.close()


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
    import sys
    from redis_chat_history.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_an_interrupted_cli_export_leaves_the_previous_file(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    client = redis7.client()
    element = orjson.dumps({"type": "human", "data": {"content": "m" * 200}})
    try:  # a session long enough to interrupt: 300,000 messages, built server-side
        client.eval(
            "for i = 1, tonumber(ARGV[1]) do redis.call('LPUSH', KEYS[1], ARGV[2]) end",
            1,
            "message_store:long",
            300_000,
            element,
        )
    finally:
        client.close()
    backup = tmp_path / "bk.jsonl"
    backup.write_bytes(b"the previous backup\n")
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
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        temporary = wait_until(
            lambda: [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p.stat().st_size],
            30,
            "the export writes its temporary file",
        )[0]
        assert temporary.name.startswith(".bk.jsonl.")  # beside the file it replaces
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.communicate()
    assert backup.read_bytes() == b"the previous backup\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bk.jsonl"]


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


# -- skip_corrupt applies to export and copy --------------------------------------------------------
def test_skip_corrupt_is_applied_by_export_and_copy_and_counted(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    store = RedisChatStore(url=redis7.url)
    store.history("s").add_messages([HumanMessage("a")])
    corrupt(redis7, "message_store:s")
    store.history("s").add_messages([HumanMessage("b")])
    corrupt(redis7, "message_store:s")
    lenient = RedisChatStore(url=redis7.url, skip_corrupt=True)
    path = tmp_path / "s.jsonl"
    result = lenient.export(path)
    assert (result.sessions, result.messages, result.corrupt_skipped) == (1, 2, 2)
    target = RedisChatStore(url=redis7.url, key_prefix="dst:")
    assert target.import_(path).messages == 2
    assert contents_of(target, "s") == ["a", "b"]
    copied = lenient.copy_to(RedisChatStore(url=redis7.url, key_prefix="cpy:"))
    assert (copied.sessions_written, copied.messages, copied.corrupt_skipped) == (1, 2, 2)
    strict_target = RedisChatStore(url=redis7.url, key_prefix="strict:")
    with pytest.raises(CorruptHistoryError, match="list element 2"):
        store.copy_to(strict_target)
    assert list(strict_target.sessions()) == []

    exported = cli_run("--url", redis7.url, "export", "-o", str(path), "--skip-corrupt")
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 message(s) of 1 session(s); skipped 2 corrupt element(s)" in exported.stderr
    refused = cli_run("--url", redis7.url, "export", "-o", str(path))
    assert refused.returncode == 1 and "not a stored message" in refused.stderr


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


# -- what a restricted user needs -------------------------------------------------------------------
TRANSFER_COMMANDS = "scan rename type copy"


@pytest.mark.parametrize("copy_allowed", [True, False])
def test_a_restricted_user_exports_imports_and_copies(
    redis7: RedisProcess, tmp_path: Path, copy_allowed: bool
) -> None:
    commands = f"{HISTORY_COMMANDS} {TRANSFER_COMMANDS}"
    admin = redis7.client()
    try:
        set_user(admin, commands if copy_allowed else commands.replace(" copy", ""))
        admin.execute_command("ACL", "LOG", "RESET")
        url = f"redis://chat:{ACL_PASSWORD}@127.0.0.1:{redis7.port}/0"
        store = RedisChatStore(url=url)
        store.history("big").add_messages([HumanMessage(str(i)) for i in range(2500)])
        store.history("small").add_messages([HumanMessage("x")])
        store.history("small").expire(600)
        path = tmp_path / "bk.jsonl"
        assert store.export(path).messages == 2501
        store.delete("big", "small")
        assert store.import_(path).sessions_written == 2
        assert contents_of(store, "big") == [str(i) for i in range(2500)]
        assert 590 < (store.history("small").expires_in() or 0) <= 600
        copied = store.copy_to(RedisChatStore(url=url, key_prefix="message_store:copy:"))
        assert copied.sessions_written == 2
        denied = {entry["object"] for entry in admin.acl_log() if entry["username"] == "chat"}
        assert denied <= ({"info", "client|setinfo"} | (set() if copy_allowed else {"copy"}))
    finally:
        admin.execute_command("ACL", "DELUSER", "chat")
        admin.execute_command("ACL", "LOG", "RESET")
        admin.close()


def test_a_failed_export_or_copy_leaves_no_snapshot_or_staging_list(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    store = RedisChatStore(url=redis7.url)
    store.history("big").add_messages([HumanMessage(str(i)) for i in range(1500)])
    corrupt(redis7, "message_store:big")  # the newest, read in the second window
    store.history("big").add_messages([HumanMessage("last")])
    target = RedisChatStore(url=redis7.url, key_prefix="copy:")
    client = redis7.client()
    try:
        with pytest.raises(CorruptHistoryError, match="message 1500 from the oldest"):
            store.export(tmp_path / "bk.jsonl")
        assert staging_lists(client) == []
        with pytest.raises(CorruptHistoryError):
            store.copy_to(target)
        assert staging_lists(client) == [] and list(target.sessions()) == []

        def stop(sessions: int, messages: int) -> None:
            raise KeyboardInterrupt

        lenient = RedisChatStore(url=redis7.url, skip_corrupt=True)
        with pytest.raises(KeyboardInterrupt):
            lenient.copy_to(target, progress=stop)  # stopped after its first window
        assert staging_lists(client) == [] and list(target.sessions()) == []
    finally:
        client.close()


# -- PTTL 0 is "expires now", never "no expiry" ------------------------------------------------------
@pytest.mark.parametrize("operation", ["export", "copy"])
def test_a_session_read_in_its_last_millisecond_is_skipped_and_counted(
    redis7: RedisProcess, operation: str
) -> None:
    source = RedisChatStore(url=redis7.url, key_prefix="src:")
    target = RedisChatStore(url=redis7.url, key_prefix="dst:")
    client = redis7.client()
    element = orjson.dumps({"type": "human", "data": {"content": "last"}})
    deadline = time.monotonic() + 60
    attempts = expired = 0
    try:
        while not expired:  # until a read lands in the session's last millisecond
            assert time.monotonic() < deadline, f"no read saw PTTL 0 in {attempts} attempts"
            attempts += 1
            client.delete("src:s", "dst:s")
            client.lpush("src:s", element)
            client.pexpire("src:s", 3)
            while client.pttl("src:s") > 1:  # the next read lands in the last ms, or after
                pass
            if operation == "copy":
                result = source.copy_to(target, ["s"])
                assert client.pttl("dst:s") != -1  # a copy never lives forever
                expired = result.sessions_expired
                written = result.sessions_written
            else:
                out = io.BytesIO()
                exported = source.export(out, ["s"])
                lines = [json.loads(line) for line in out.getvalue().splitlines()]
                firsts = [line for line in lines if line.get("position") == 0]
                assert all(line["expires_in"] > 0 for line in firsts)  # never "no expiry"
                expired = exported.sessions_expired
                written = exported.sessions
            assert written + expired <= 1
        assert written == 0 and client.exists("dst:s") == 0
        print(f"PTTL 0 observed after {attempts} attempt(s)")
    finally:
        client.close()


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
