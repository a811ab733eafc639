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

#: The command ``pip install`` put beside the interpreter, run as a user runs it.
COMMAND = Path(sys.executable).with_name("redis-chat-history")


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update(env or {})
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [str(COMMAND), *args],
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
    assert "exported 7 message(s) of 3 session(s) in " in exported.stderr
    assert "msg/s)" in exported.stderr  # the rate, in the summary: the progress bar is cleared
    imported = cli(
        "import", str(path), "--overwrite", env={"REDIS_URL": redis7.url.replace("/0", "/1")}
    )
    assert imported.returncode == 0, imported.stderr
    assert "imported 7 message(s): 3 session(s) written" in imported.stderr
    assert "(from $REDIS_URL)" in imported.stderr
    copy = RedisChatStore(url=redis7.url.replace("/0", "/1"))
    for session_id in ("user-1", "user-2", "other"):
        assert copy.history(session_id).messages == filled.history(session_id).messages
    again = cli("--url", redis7.url.replace("/0", "/1"), "import", str(path))
    assert again.returncode == 0
    assert "imported 0 of 7 read message(s): 0 session(s) written, 3 kept as they were" in (
        again.stderr
    )
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
    assert lines == [  # the export format: positions from 0, importable as it is
        {"format": "redis-chat-history-export", "version": 2},
        {
            "session_id": "user-1",
            "position": 0,
            "type": "ai",
            "data": {"content": "It rains in Oslo."},
        },
        {"session_end": "user-1", "messages": 1},
        {"export_end": True, "sessions": 1, "messages": 1},
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
    wait_until(lambda: not socket.exists(), 60, "the embedded server to stop after the command")


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


def fake_missing_module(folder: Path, name: str) -> dict[str, str]:
    """An environment where importing ``name`` fails as it does when it is not installed."""
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n"
    )
    return {"PYTHONPATH": str(folder)}


# -- issue 18: what a new user meets ------------------------------------------------------------
def test_demo_without_the_agents_extra_says_in_one_line_which_extra(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    result = cli("--url", redis7.url, "demo", env=fake_missing_module(tmp_path, "langchain"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: the demo needs the agents extra (langchain is missing): "
        "pip install 'redis-chat-history[agents]'"
    ]
    assert result.stdout == ""


def test_an_empty_import_file_is_refused_unless_allowed(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    empty = tmp_path / "backup.jsonl"
    empty.write_bytes(b"")  # what a failed `... > backup.jsonl` leaves
    refused = cli("--url", redis7.url, "import", str(empty))
    assert refused.returncode == 2, refused.stderr
    assert (
        "error: line 1: the file is empty" in refused.stderr and "--allow-empty" in refused.stderr
    )
    piped = subprocess.run(
        [str(COMMAND), "--url", redis7.url, "import", "-"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 2 and "the file is empty" in piped.stderr
    allowed = cli("--url", redis7.url, "import", "--allow-empty", str(empty))
    assert allowed.returncode == 0, allowed.stderr
    assert "imported 0 message(s): 0 session(s) written" in allowed.stderr
    client = redis7.client()
    try:
        assert client.dbsize() == 0  # nothing written, not even a companion key
    finally:
        client.close()


def test_export_or_copy_of_a_session_that_does_not_exist_fails(
    filled: RedisChatStore, redis7: RedisProcess, tmp_path: Path
) -> None:
    path = tmp_path / "f.jsonl"
    alone = cli("--url", redis7.url, "export", "nosuch", "-o", str(path))
    assert alone.returncode == 1, alone.stderr
    assert "error: session 'nosuch' not found" in alone.stderr
    assert not path.exists()  # refused before anything was written
    mixed = cli("--url", redis7.url, "export", "user-1", "nosuch", "ghost", "-o", str(path))
    assert mixed.returncode == 1 and "sessions not found: 'nosuch', 'ghost'" in mixed.stderr
    target = redis7.url.replace("/0", "/3")
    copied = cli("--url", redis7.url, "copy", "--to", target, "nosuch")
    assert copied.returncode == 1 and "session 'nosuch' not found" in copied.stderr
    everything = cli("--url", redis7.url, "export", "-o", str(path))  # no name: all there are
    assert everything.returncode == 0 and "of 3 session(s)" in everything.stderr


def test_import_and_copy_report_in_the_same_wording(
    filled: RedisChatStore, redis7: RedisProcess, tmp_path: Path
) -> None:
    target = redis7.url.replace("/0", "/4")
    RedisChatStore(url=target).history("user-2").add_messages([HumanMessage("mine")])
    path = tmp_path / "all.jsonl"
    assert cli("--url", redis7.url, "export", "-o", str(path)).returncode == 0
    imported = cli("--url", target, "import", str(path), "--json")
    RedisChatStore(url=target).delete("user-1", "other")
    copied = cli("--url", redis7.url, "copy", "--to", target, "--json")
    summaries = []
    for done in (imported, copied):
        assert done.returncode == 0, done.stderr
        summaries.append(done.stderr.splitlines()[-1])
    # user-2 (2 messages) is kept on the target: 5 messages written in 2 sessions, in both
    assert summaries[0].startswith(
        "imported 5 of 7 read message(s): 2 session(s) written, 1 kept as they were "
        "(--overwrite replaces them) in "
    )
    assert summaries[1].startswith(
        "copied 5 message(s): 2 session(s) written, 1 kept as they were "
        "(--overwrite replaces them) in "
    )  # copy does not read a session the target keeps: read = written
    results = [json.loads(done.stdout) for done in (imported, copied)]
    assert results[0] == {
        "sessions_written": 2,
        "sessions_kept": 1,
        "sessions_expired": 0,
        "messages_read": 7,
        "messages_written": 5,
        "corrupt_skipped": 0,
        "warnings": [],
    }
    assert results[1] == {**results[0], "messages_read": 5}


def test_a_bad_redis_url_is_said_to_come_from_redis_url() -> None:
    result = cli("sessions", env={"REDIS_URL": "redis://alice:s3cret-pw@host:notaport/0"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: $REDIS_URL: invalid redis:// url: port 'notaport' is not a number (the url "
        "is not shown: it may hold a password)"
    ]
    flag = cli("--url", "nosuch://x", "sessions")
    assert flag.returncode == 2 and flag.stderr.startswith("error: --url: unsupported url scheme")


def test_paths_are_named_as_the_user_gave_them(redis7: RedisProcess, tmp_path: Path) -> None:
    RedisChatStore(url=redis7.url).history("s").add_messages([HumanMessage("x")])
    nowhere = "/nonexistent/dir/out.jsonl"
    result = cli("--url", redis7.url, "export", "-o", nowhere)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == f"error: {nowhere}: No such file or directory"
    assert ".tmp" not in result.stderr
    folder = cli("--url", redis7.url, "export", "-o", str(tmp_path))
    assert folder.returncode == 2
    assert folder.stderr.splitlines()[-1] == f"error: {tmp_path}: Is a directory"
    imported = cli("--url", redis7.url, "import", str(tmp_path))
    assert imported.returncode == 2
    assert imported.stderr.splitlines() == [
        f"error: {tmp_path}: is a directory, not an export file"
    ]
    assert list(tmp_path.iterdir()) == []


def test_every_command_that_prints_data_has_json(
    filled: RedisChatStore, redis7: RedisProcess, tmp_path: Path
) -> None:
    url = ["--url", redis7.url]
    path = tmp_path / "u.jsonl"
    outputs = {
        "sessions": cli(*url, "sessions", "--json"),
        "show": cli(*url, "show", "user-2", "--json"),
        "export": cli(*url, "export", "user-2", "-o", str(path), "--json"),
        "import": cli("--url", redis7.url.replace("/0", "/5"), "import", str(path), "--json"),
        "copy": cli(*url, "copy", "--to", redis7.url.replace("/0", "/6"), "other", "--json"),
        "ttl": cli(*url, "ttl", "user-2", "120", "--json"),
        "stats": cli(*url, "stats", "--json"),
        "rm": cli(*url, "rm", "other", "--json"),
    }
    parsed = {}
    for name, done in outputs.items():
        assert done.returncode == 0, (name, done.stderr)
        lines = done.stdout.splitlines()
        parsed[name] = (
            [json.loads(line) for line in lines] if name == "show" else json.loads(done.stdout)
        )
    assert parsed["sessions"] == ["other", "user-1", "user-2"]
    assert [r.get("session_id") for r in parsed["show"]] == [None, "user-2", "user-2", None, None]
    assert parsed["export"] == {
        "sessions": 1,
        "messages": 2,
        "corrupt_skipped": 0,
        "sessions_expired": 0,
    }
    assert parsed["import"]["messages_written"] == 2 and parsed["copy"]["sessions_written"] == 1
    assert parsed["ttl"]["session"] == "user-2" and 110 < parsed["ttl"]["expires_in"] <= 120
    assert parsed["stats"]["sessions"] == 3
    assert parsed["rm"] == {"deleted": ["other"], "not_found": []}
    to_stdout = cli(*url, "export", "--json")  # stdout holds the export: nowhere for a summary
    assert to_stdout.returncode == 2 and "give -o FILE" in to_stdout.stderr


def test_show_json_output_imports_as_it_is(
    filled: RedisChatStore, redis7: RedisProcess, tmp_path: Path
) -> None:
    shown = cli("--url", redis7.url, "show", "user-1", "--last", "2", "--json")
    path = tmp_path / "last2.jsonl"
    path.write_text(shown.stdout)
    target = redis7.url.replace("/0", "/7")
    imported = cli("--url", target, "import", str(path))
    assert imported.returncode == 0, imported.stderr
    assert (
        RedisChatStore(url=target).history("user-1").messages
        == (filled.history("user-1").messages[-2:])
    )


def test_an_error_is_the_last_line_after_the_progress_is_cleared(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    store = RedisChatStore(url=redis7.url)
    store.history("bad").add_messages([HumanMessage("x")])
    client = redis7.client()
    try:
        client.lpush("message_store:bad", b"{not a message")
    finally:
        client.close()
    result = cli("--url", redis7.url, "export", "-o", str(tmp_path / "b.jsonl"))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("using redis://") and len(lines) == 2, lines
    assert lines[1].startswith("error: 'message_store:bad': list element 0")
