"""How the command line reads its arguments and describes itself, as a user meets it.

The installed ``redis-chat-history`` command in a subprocess (tests/test_cli.py's
``cli``), against a private server where a command needs one.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from typer.main import get_command

from redis_chat_history import RedisChatStore
from redis_chat_history.cli import app
from redis_chat_history.cli.usage import EXIT_CODES, numbers_as_values
from tests.servers import RedisProcess
from tests.test_cli import COMMAND, cli

COMMANDS = ["demo", "sessions", "show", "export", "import", "copy", "rm", "ttl", "stats"]
README = Path(__file__).resolve().parent.parent / "README.md"


def test_version_and_short_help() -> None:
    version = cli("--version")
    assert version.returncode == 0
    assert re.fullmatch(r"redis-chat-history \d+\.\d+\.\d+\S*\n", version.stdout), version.stdout
    short, long = cli("-h"), cli("--help")
    assert short.returncode == long.returncode == 0 and short.stdout == long.stdout
    assert short.stdout.startswith("Usage: redis-chat-history [OPTIONS] COMMAND [ARGS]...")


@pytest.mark.parametrize(
    ("name", "usage"),
    [
        ("show", "Usage: redis-chat-history show [OPTIONS] SESSION"),
        ("ttl", "Usage: redis-chat-history ttl [OPTIONS] SESSION [SECONDS]"),
        ("export", "Usage: redis-chat-history export [OPTIONS] [SESSION...]"),
        ("rm", "Usage: redis-chat-history rm [OPTIONS] SESSION..."),
        ("import", "Usage: redis-chat-history import [OPTIONS] FILE"),
    ],
)
def test_usage_lines_read_like_the_tools_users_know(name: str, usage: str) -> None:
    result = cli(name, "-h")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == usage
    for unreadable in ("{", "<str>", "<int", "INTEGER", "TEXT", "\\["):
        assert unreadable not in result.stdout, (unreadable, result.stdout)


def test_every_command_has_its_full_summary_on_one_line_of_the_help() -> None:
    helped = cli("-h", env={"COLUMNS": "80"}).stdout
    rows = helped.split("Commands:\n")[1].split("\n\n")[0].splitlines()
    assert [row.split()[0] for row in rows] == COMMANDS  # one line each
    group = app.registered_commands
    for info in group:
        summary = (info.callback.__doc__ or "").strip().splitlines()[0]
        name = info.name or info.callback.__name__
        assert f"  {name:<8}  {summary}" in rows, (name, summary)  # whole, never cut
    assert EXIT_CODES.split(",")[0] in helped


def test_negative_numbers_are_values(redis7: RedisProcess) -> None:
    RedisChatStore(url=redis7.url).history("x").add_messages([HumanMessage("hi")])
    for seconds in ("-5", "0"):
        result = cli("--url", redis7.url, "ttl", "x", seconds)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"error: SECONDS must be at least 1, got {seconds}: --persist removes the expiry, "
            "rm deletes the session now"
        ]
    assert RedisChatStore(url=redis7.url).history("x").expires_in() is None
    last = cli("--url", redis7.url, "show", "x", "--last", "-2")
    assert last.returncode == 2 and last.stderr == "error: --last must be at least 1, got -2\n"
    assert "expires in 60 s" in cli("--url", redis7.url, "ttl", "x", "60").stdout


def test_numbers_are_moved_after_the_options_only_where_they_are_values() -> None:
    ttl = get_command(app).commands["ttl"]  # type: ignore[attr-defined]
    show = get_command(app).commands["show"]  # type: ignore[attr-defined]
    assert numbers_as_values(ttl, ["x", "60"]) == ["x", "60"]  # nothing to do
    assert numbers_as_values(ttl, ["x", "-5", "--json"]) == ["--json", "--", "x", "-5"]
    assert numbers_as_values(show, ["--last", "-2", "x"]) == ["--last", "-2", "--", "x"]
    assert numbers_as_values(ttl, ["--", "-x", "-5"]) == ["--", "-x", "-5"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["show", "--bogus", "x"], "error: No such option"),
        (["show"], "error: Missing argument 'SESSION' (see 'redis-chat-history show -h')"),
        (["copy"], "error: Missing option '--to' (see 'redis-chat-history copy -h')"),
        (["nonsense"], "error: No such command"),
        (["ttl", "x", "soon"], "error: Invalid value"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2(arguments: list[str], message: str) -> None:
    result = cli("--url", "redis://127.0.0.1:1/0", *arguments)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines


def test_no_arguments_prints_the_help_and_exit_code_2() -> None:
    result = cli()
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: redis-chat-history [OPTIONS] COMMAND [ARGS]...")


def test_the_readme_documents_the_exit_codes_the_help_prints() -> None:
    assert EXIT_CODES in README.read_text().replace("\n", " ")


def test_on_a_terminal_the_progress_bar_is_cleared_before_the_error(
    redis7: RedisProcess, tmp_path: Path
) -> None:
    store = RedisChatStore(url=redis7.url)
    store.history("big").add_messages([HumanMessage(str(i)) for i in range(3000)])
    client = redis7.client()
    try:
        client.lpush("message_store:big", b"{not a message")  # read in the last window
    finally:
        client.close()
    leader, follower = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update({"COLUMNS": "120", "TERM": "xterm"})
    process = subprocess.Popen(
        [str(COMMAND), "--url", redis7.url, "export", "-o", str(tmp_path / "b.jsonl")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=environment,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the command exited: the terminal is closed
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    assert process.wait(timeout=30) == 1
    text = output.decode(errors="replace")
    assert "export" in text and "sessions ·" in text, text  # the bar was shown
    bar_end = text.rindex("sessions ·")
    error_at = text.index("error: ")
    assert error_at > bar_end and "\x1b[2K" in text[bar_end:error_at], repr(text[bar_end:])
    error = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text[error_at:])  # colours (rich 13 resets late)
    assert "\n" not in error.strip(), repr(error)  # one line
