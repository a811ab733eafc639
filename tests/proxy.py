"""A TCP proxy in front of a real redis-server that loses replies and holds requests.

It forwards bytes unchanged. ``drop_next_reply()`` makes it swallow the next bytes the
server sends and cut the client's connection: the command ran, the client never hears so.
With ``hold=True`` it also stops forwarding what clients send (on every connection, new
ones too, past their set-up) until ``release()``: the client's re-send waits in the
proxy while the test does other things, then reaches the server late.
``hold_replies()`` keeps what the server sends in the proxy until ``release_replies()``:
the command ran, its reply is in flight.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.servers import free_port

_HANDSHAKE = (b"HELLO", b"AUTH", b"CLIENT", b"SELECT")


def _is_handshake(request: bytes) -> bool:
    """A new connection's set-up (held requests are the commands after it)."""
    return any(word in request[:40].upper() for word in _HANDSHAKE)


class ReplyDroppingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.dropped = 0
        #: Requests (chunks from clients) waiting for release().
        self.held = 0
        #: Replies (chunks from the server) seen, delivered or not.
        self.replies = 0
        self._drop = threading.Event()
        self._hold_after_drop = False
        self._open = threading.Event()
        self._open.set()
        self._replies_open = threading.Event()
        self._replies_open.set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_next_reply(self, *, hold: bool = False) -> None:
        self._hold_after_drop = hold
        self._drop.set()

    def release(self) -> None:
        """Forward every held request now, and everything after it."""
        self._open.set()

    def hold_replies(self) -> None:
        """Keep every reply from now on in the proxy (the commands still run)."""
        self._replies_open.clear()

    def release_replies(self) -> None:
        self._replies_open.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        close_target = True
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    if not replies:
                        # The client closed: pass that on as a half-close, so the server
                        # still runs what it received (a late re-send) and answers it.
                        target.shutdown(socket.SHUT_WR)
                        close_target = False
                    break
                if replies:
                    with self._lock:
                        self.replies += 1
                    self._replies_open.wait()
                if replies and self._drop.is_set():
                    self._drop.clear()
                    if self._hold_after_drop:
                        self._open.clear()
                    self.dropped += 1
                    break  # the server answered; the client never gets it
                if not replies and not self._open.is_set() and not _is_handshake(data):
                    with self._lock:
                        self.held += 1
                    self._open.wait()
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target) if close_target else (source,):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._closed = True
        self._open.set()
        self._replies_open.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
