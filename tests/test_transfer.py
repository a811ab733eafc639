"""Export, import and copy: round trips equal, atomic per session, no duplicates, bounded memory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

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

from redis_chat_history import ImportFormatError, RedisChatStore
from tests.servers import Cluster, RedisProcess

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


@pytest.fixture(params=["standalone", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "standalone":
        return str(request.getfixturevalue("redis7").url)
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
    assert source.export(path) == len(ALL_KINDS) + 3
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {line["session_id"] for line in lines} == {"all*kinds", "short", "zipped"}
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
        assert sorted(k.decode() for k in client.keys("*")) == ["message_store:a"]  # no staging
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
    assert store.export(out, ["two", "never-written"]) == 1
    assert [json.loads(line)["session_id"] for line in out.getvalue().splitlines()] == ["two"]
    assert store.import_(io.StringIO("")).messages == 0
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
    exported = source.export(path, ["million"])
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
