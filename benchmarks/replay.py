"""What a shared server spends on a contender's writes: its exact requests, replayed back to back.

On this benchmark's machine the client runs next to redis-server, and between two
writes the server sleeps while the client works: its next command then starts on cold
caches, and a contender whose client does more work gets a slower server. A shared
server (the case "server time per write" is about: how many conversations one Redis
carries) is kept busy by many clients instead. So each contender's writes go through a
recording proxy (the bytes its clients send, nothing changed), and the bytes are then
sent again on one connection, back to back, while the replies are read: the server's
time per write (``INFO commandstats``) for exactly those requests, every contender alike.

Example::

    with Recorder(port) as recorder:           # contenders use recorder.url
        ...                                    # writes to record
        sent = recorder.take()
    replay(port, sent)
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from types import TracebackType

_CHUNK = 1 << 16


class Recorder:
    """A TCP proxy on a free loopback port that records every byte clients send upstream."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sent = bytearray()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def mark(self) -> int:
        """Bytes recorded so far (a boundary between writes: each waited for its reply)."""
        with self._lock:
            return len(self._sent)

    def take(self) -> bytes:
        """The bytes recorded since the last ``take``."""
        with self._lock:
            sent = bytes(self._sent)
            self._sent.clear()
        return sent

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(_CHUNK):
                if record:
                    with self._lock:
                        self._sent += data
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def replay(port: int, sent: bytes, timeout: float = 120.0) -> None:
    """Send ``sent`` to the server on one connection, back to back, reading the replies as
    they come; return when all are read (an ECHO of a fresh token is the last reply)."""
    token = uuid.uuid4().hex.encode()
    tail = token + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done = threading.Event()
        failure: list[BaseException] = []

        def read() -> None:
            last = b""
            try:
                while data := sock.recv(_CHUNK):
                    last = (last + data)[-len(tail) :]
                    if last == tail:
                        done.set()
                        return
            except OSError as error:
                failure.append(error)
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sock.sendall(sent + b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (len(token), token))
        if not done.wait(timeout) or failure:
            raise RuntimeError(f"the replayed requests were not all answered: {failure}")
        reader.join()
