"""The command line end to end: real subprocesses against a real server (and the embedded one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from redis_chat_history import RedisChatStore
from tests.servers import RedisProcess, wait_until


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update(env or {})
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "redis_chat_history", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture
def filled(redis7: RedisProcess) -> RedisChatStore:
    store = RedisChatStore(url=redis7.url)
    store.history("user-1").add_messages(
        [
            HumanMessage("what is the weather?"),
            AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "c1"}]),
            ToolMessage("rain", tool_call_id="c1"),
            AIMessage("It rains in Oslo."),
        ]
    )
    store.history("user-2").add_messages([HumanMessage("hi"), AIMessage("hello")])
    store.history("other").add_messages([HumanMessage("x")])
    return store


def test_export_then_import_round_trips_equal(
    filled: RedisChatStore, redis7: RedisProcess, tmp_path: Path
) -> None:
    path = tmp_path / "backup.jsonl"
    exported = cli("--url", redis7.url, "export", "-o", str(path))
    assert exported.returncode == 0, exported.stderr
    assert "exported 7 message(s) of 3 session(s)" in exported.stderr
    assert "sessions" in exported.stderr and "msg/s" in exported.stderr  # the progress bar
    imported = cli(
        "import", str(path), "--overwrite", env={"REDIS_URL": redis7.url.replace("/0", "/1")}
    )
    assert imported.returncode == 0, imported.stderr
    assert "3 session(s) written" in imported.stderr and "(from REDIS_URL)" in imported.stderr
    copy = RedisChatStore(url=redis7.url.replace("/0", "/1"))
    for session_id in ("user-1", "user-2", "other"):
        assert copy.history(session_id).messages == filled.history(session_id).messages
    again = cli("--url", redis7.url.replace("/0", "/1"), "import", str(path))
    assert again.returncode == 0 and "0 session(s) written, 3 kept" in again.stderr
    assert copy.history("user-2").count() == 2


def test_bad_import_file_exits_2_naming_the_line(redis7: RedisProcess, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {"session_id": "s", "position": 0, "type": "human", "data": {"content": "ok"}}
    path.write_text(json.dumps(good) + "\n" + "this is not json\n")
    result = cli("--url", redis7.url, "import", str(path))
    assert result.returncode == 2
    assert "line 2: not valid JSON" in result.stderr and "Traceback" not in result.stderr
    assert RedisChatStore(url=redis7.url).count_sessions() == 0
    missing = cli("--url", redis7.url, "import", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_show_missing_session_exits_1(redis7: RedisProcess) -> None:
    result = cli("--url", redis7.url, "show", "ghost")
    assert result.returncode == 1
    assert "session 'ghost' not found" in result.stderr and "Traceback" not in result.stderr
    debug = cli("--url", redis7.url, "--debug", "show", "ghost")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_show_sessions_rm_ttl_stats(filled: RedisChatStore, redis7: RedisProcess) -> None:
    url = ["--url", redis7.url]
    shown = cli(*url, "show", "user-1")
    assert shown.returncode == 0
    for text in (
        "user",
        "assistant",
        "tool",
        "calls weather(city='Oslo')",
        "result of c1",
        "It rains in Oslo.",
    ):
        assert text in shown.stdout, text
    last = cli(*url, "show", "user-1", "--last", "1", "--json")
    lines = [json.loads(line) for line in last.stdout.splitlines()]
    assert lines == [
        {
            "session_id": "user-1",
            "position": 3,
            "type": "ai",
            "data": {"content": "It rains in Oslo."},
        }
    ]
    listed = cli(*url, "sessions", "--match", "user-")
    assert listed.stdout.split() == ["user-1", "user-2"]
    assert json.loads(cli(*url, "sessions", "--json").stdout) == ["other", "user-1", "user-2"]
    assert "expires in 300 s" in cli(*url, "ttl", "user-2", "300").stdout
    assert 290 < (filled.history("user-2").expires_in() or 0) <= 300
    assert "never expires" in cli(*url, "ttl", "user-2", "--persist").stdout
    assert cli(*url, "ttl", "user-2", "0").returncode == 2
    stats = json.loads(cli(*url, "stats", "--json").stdout)
    assert stats["sessions"] == 3 and stats["messages"] == 7 and stats["memory_bytes"] > 0
    removed = cli(*url, "rm", "other", "ghost")
    assert removed.returncode == 1 and "not found: 'ghost'" in removed.stderr
    assert sorted(filled.sessions()) == ["user-1", "user-2"]
    assert cli(*url, "nonsense").returncode == 2


def test_copy_to_another_database(filled: RedisChatStore, redis7: RedisProcess) -> None:
    target = redis7.url.replace("/0", "/2")
    result = cli("--url", redis7.url, "copy", "--to", target, "user-1")
    assert result.returncode == 0, result.stderr
    assert (
        RedisChatStore(url=target).history("user-1").messages == filled.history("user-1").messages
    )
    assert list(RedisChatStore(url=target).sessions()) == ["user-1"]


def test_password_never_printed_and_unreachable_is_one_line(tmp_path: Path) -> None:
    result = cli("--url", "redis://alice:s3cret-pw@127.0.0.1:1/0", "sessions")
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "cannot reach Redis at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
    bad_url = cli("--url", "redis://alice:s3cret-pw@host:notaport/0", "sessions")
    assert bad_url.returncode == 2 and "s3cret-pw" not in bad_url.stderr


def test_demo_twice_on_the_embedded_redis(tmp_path: Path) -> None:
    first = cli("--data-dir", str(tmp_path / "data"), "demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "using the embedded Redis in" in first.stderr
    assert "stored history of 'demo': 8 messages" in first.stdout  # 3 turns, one tool call
    second = cli("--data-dir", str(tmp_path / "data"), "demo", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "turns 4-6" in second.stdout
    assert "stored history of 'demo': 16 messages" in second.stdout
    # The agent saw the first run's turns, tool call included, read back from Redis.
    assert "the first one: 'Hi! Where do you keep our conversation?'" in second.stdout
    assert "I looked up: window, once" in second.stdout
    socket = tmp_path / "data" / "redis.sock"
    wait_until(lambda: not socket.exists(), 15, "the embedded server to stop after the command")


def test_without_the_cli_extra_one_line_says_how_to_get_it(tmp_path: Path) -> None:
    # A typer package that is not there, as after `pip install redis-chat-history`.
    (tmp_path / "typer").mkdir()
    (tmp_path / "typer" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'typer'\", name='typer')\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment["PYTHONPATH"] = str(tmp_path)
    installed = Path(sys.executable).with_name("redis-chat-history")
    assert installed.exists(), "make setup installs the command"
    for command in ([str(installed)], [sys.executable, "-m", "redis_chat_history"]):
        result = subprocess.run(
            [*command, "sessions"], capture_output=True, text=True, env=environment, timeout=60
        )
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "redis-chat-history: the command line needs the cli extra (typer is missing): "
            "pip install 'redis-chat-history[cli]'"
        ]
