"""Keeps an embedded redis-server running while processes use it; stops it after the last one.

:mod:`redis_chat_history.embedded` starts it detached, in its own session::

    python -I embedded_supervisor.py DATA_DIR -- redis-server ARGUMENTS...

It uses the standard library only (it starts fast and imports nothing of the package).

Three lock files in ``DATA_DIR`` (``flock``, so the kernel drops a lock when its process
ends, SIGKILL included):

- ``.users``: every process using the server holds a shared lock on it. The supervisor
  waits for an exclusive lock, that is for the last user to be gone.
- ``.lock``: held by a process while it checks for (or starts) the server and takes its
  shared lock. The supervisor stops the server only while holding it too, so no process is
  joining a server that is being stopped.
- ``.supervisor``: held exclusively by the supervisor for its lifetime, so a starter can
  tell a server that is restarting from one that is gone.

A redis-server that dies on its own is started again on the same folder (its append-only
file keeps the data), at most :data:`RESTARTS` times in :data:`RESTART_WINDOW` seconds.
"""

from __future__ import annotations

import ctypes
import fcntl
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

RESTARTS = 5
RESTART_WINDOW = 60.0
STOP_TIMEOUT = 10.0  # seconds redis-server gets to flush its append-only file on SIGTERM
_PR_SET_PDEATHSIG = 1

try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_supervisor() -> None:
    """In the forked child: SIGTERM it when the supervisor dies (no orphan redis-server)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """One redis-server command, kept running until the last user of ``data_dir`` is gone."""

    def __init__(self, data_dir: Path, command: list[str]) -> None:
        self.data_dir = data_dir
        self.command = command
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        server = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_supervisor,  # only a prctl call: safe beside threads
        )
        with self._lock:
            self._server = server
            if self.stopping.is_set():
                server.terminate()
        return server

    def terminate(self) -> subprocess.Popen[bytes] | None:
        """Ask the server to stop (SIGTERM: it flushes the append-only file and exits)."""
        self.stopping.set()
        with self._lock:
            server = self._server
        if server is not None:
            server.terminate()
        return server

    def stop(self) -> None:
        """Stop the server; SIGKILL if it has not exited after :data:`STOP_TIMEOUT`."""
        server = self.terminate()
        if server is None:
            return
        try:
            server.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()

    def wait_for_last_user(self) -> None:
        """Block until no process uses the server and none is joining, then stop it."""
        with (
            open(self.data_dir / ".users", "a") as users,
            open(self.data_dir / ".lock", "a") as lock,
        ):
            while True:
                fcntl.flock(users, fcntl.LOCK_EX)
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    # A process is joining (it holds .lock, then takes .users shared):
                    # let it, and look again once it is done.
                    fcntl.flock(users, fcntl.LOCK_UN)
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    continue
                break
            self.stop()  # both locks are held until this process exits

    def run(self) -> int:
        """Run the server, restarted when it dies on its own; returns once it is stopped."""
        server = self.spawn()
        threading.Thread(target=self.wait_for_last_user, daemon=True).start()
        starts: deque[float] = deque([time.monotonic()])
        while True:
            code = server.wait()
            if self.stopping.is_set():
                return 0
            now = time.monotonic()
            while starts and now - starts[0] > RESTART_WINDOW:
                starts.popleft()
            if len(starts) > RESTARTS:
                return code or 1
            starts.append(now)
            server = self.spawn()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: embedded_supervisor.py DATA_DIR -- REDIS_SERVER ARGUMENTS...\n")
        return 2
    data_dir = Path(argv[1])
    alive = open(data_dir / ".supervisor", "a")  # noqa: SIM115 (held until the process exits)
    try:
        fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another supervisor runs this folder's server
    supervisor = Supervisor(data_dir, argv[3:])
    signal.signal(signal.SIGTERM, lambda *_: supervisor.terminate())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
