"""A server that echoes the password it was sent: no secret in any error, chain, traceback or log.

Some servers and proxies repeat a refused command's arguments in their error (Redis itself
does for an unknown command: ``unknown command 'AUTH', with args beginning with: ...``). The
fake server here speaks enough RESP over a real socket to refuse every command that way, AUTH
included (``WRONGPASS invalid password '<password>' for user default``). Every error this
package raises for it, and everything reachable from that error (its ``__cause__`` and
``__context__`` chain, ``traceback.format_exception``, ``logger.exception`` output, the
command line's ``--debug`` traceback), must be free of the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import (
    ChatHistoryError,
    RedisChatMessageHistory,
    RedisChatStore,
    RetryPolicy,
)
from redis_chat_history.checkpoint import RedisCheckpointSaver
from tests.servers import free_port
from tests.test_cli import cli

PASSWORD = "s3cr3t-XYZ"
SENTINEL_PASSWORD = "s3nt1nel-QRS"
SECRETS = (PASSWORD, SENTINEL_PASSWORD)
FAST = RetryPolicy(attempts=1, backoff_cap=0.01, connect_timeout=2, socket_timeout=2)


def _read_command(stream: Any) -> list[str] | None:
    """One RESP array of bulk strings (what redis-py sends), or None at end of stream."""
    header = stream.readline()
    if not header:
        return None
    assert header.startswith(b"*"), header
    arguments = []
    for _ in range(int(header[1:])):
        size = int(stream.readline()[1:])
        arguments.append(stream.read(size + 2)[:-2].decode("utf-8", "replace"))
    return arguments


class EchoingServer:
    """Refuses every command with an error that repeats its arguments, AUTH first of all."""

    def __init__(self, style: str) -> None:
        self.style = style
        self.port = free_port()
        self.commands: list[list[str]] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def reply(self, command: list[str]) -> bytes:
        name, arguments = command[0].upper(), command[1:]
        quoted = " ".join(f"'{argument}'" for argument in arguments)
        if name == "AUTH" and self.style == "wrongpass":
            user = arguments[0] if len(arguments) > 1 else "default"
            return f"-WRONGPASS invalid password '{arguments[-1]}' for user {user}\r\n".encode()
        if name == "HELLO" and self.style == "wrongpass":
            return f"-WRONGPASS invalid HELLO arguments {quoted}\r\n".encode()
        return (
            f"-ERR unknown command '{command[0]}', with args beginning with: {quoted}\r\n".encode()
        )

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        quiet = contextlib.suppress(OSError, ValueError, AssertionError)
        with connection, connection.makefile("rb") as stream, quiet:
            while (command := _read_command(stream)) is not None:
                self.commands.append(command)
                connection.sendall(self.reply(command))

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(params=["wrongpass", "unknown-command"])
def echoing(request: pytest.FixtureRequest) -> Iterator[EchoingServer]:
    server = EchoingServer(request.param)
    yield server
    server.close()


def urls(port: int) -> dict[str, str]:
    where = f"127.0.0.1:{port}"
    return {
        "password only": f"redis://:{PASSWORD}@{where}/0",
        "user and password": f"redis://alice:{PASSWORD}@{where}/0",
        "query password": f"redis://{where}/0?password={PASSWORD}",
        "cluster": f"redis+cluster://alice:{PASSWORD}@{where}",
        "sentinel": (
            f"redis+sentinel://alice:{PASSWORD}@{where}/mymaster/0"
            f"?sentinel_password={SENTINEL_PASSWORD}"
        ),
    }


def everything_shown(error: BaseException) -> list[str]:
    """What an error lets anyone see: text, repr, args, attributes, its whole chain, the
    traceback as Python prints it."""
    shown = ["".join(traceback.format_exception(type(error), error, error.__traceback__))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        shown += [str(link), repr(link), repr(link.args), repr(vars(link))]
        pending += [link.__cause__, link.__context__]
    return shown


def leaks(texts: list[str]) -> list[str]:
    return [text for text in texts for secret in SECRETS if secret in text]


def operations(url: str) -> dict[str, Callable[[], object]]:
    history = RedisChatMessageHistory("s", url=url, retry=FAST)
    store = RedisChatStore(url=url, retry=FAST)
    saver = RedisCheckpointSaver(url, retry=FAST)
    thread = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    return {
        "count": history.count,
        "write": lambda: history.add_user_message("x"),
        "async write": lambda: asyncio.run(history.aadd_messages([HumanMessage("x")])),
        "async read": lambda: asyncio.run(history.aget_messages()),
        "list sessions": lambda: list(store.sessions()),
        "checkpoint read": lambda: saver.get_tuple(thread),  # type: ignore[arg-type]
        "async checkpoint read": lambda: asyncio.run(saver.aget_tuple(thread)),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("kind", list(urls(1)))
def test_an_echoed_password_is_nowhere_in_errors_chains_tracebacks_or_logs(
    echoing: EchoingServer, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("an.application")
    url = urls(echoing.port)[kind]
    shown: list[str] = []
    for name, operation in operations(url).items():
        try:
            operation()
        except ChatHistoryError as error:
            logger.exception("%s failed", name)  # what an application's handler does
            shown += everything_shown(error)
            assert error.__cause__ is None and error.__suppress_context__ is False
            assert error.__context__ is None, f"{name}: raised inside an except block"
        else:
            pytest.fail(f"{name} did not fail against a server that refuses everything")
    # the server was reached and did echo the password: the test can fail
    sent = [" ".join(command) for command in echoing.commands]
    assert leaks(sent), sent
    shown += [record.getMessage() for record in caplog.records]
    shown.append(caplog.text)
    assert not leaks(shown), leaks(shown)
    assert any(f"127.0.0.1:{echoing.port}" in text for text in shown)


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("kind", ["password only", "sentinel"])
def test_the_command_lines_debug_traceback_holds_no_echoed_password(
    echoing: EchoingServer, kind: str, debug: bool
) -> None:
    url = urls(echoing.port)[kind]
    result = cli("--url", url, *(["--debug"] if debug else []), "sessions")
    assert result.returncode != 0
    assert ("Traceback" in result.stderr) is debug, result.stderr
    assert echoing.commands  # the server was asked, and refused with the password in its text
    assert not leaks([result.stdout, result.stderr]), result.stderr
