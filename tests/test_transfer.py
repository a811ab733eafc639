"""Export, import and copy: round trips equal, atomic per session, no duplicates, bounded memory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
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
    CorruptHistoryError,
    ImportFormatError,
    RedisChatStore,
)
from tests.servers import Cluster, RedisProcess
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


# -- an export to a path replaces the file only when it is complete -----------------------------
def corrupt(redis_process: RedisProcess, key: str) -> None:
    client = redis_process.client()
    try:
        client.lpush(key, b"{not a message")
    finally:
        client.close()


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
