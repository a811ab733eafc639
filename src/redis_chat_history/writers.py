"""Writer tokens: how a re-sent write is recognised by the server (exactly once).

A *writer* is a (process, slot) pair that sends its writes to one history one at a
time: a call checks a writer out for its whole duration (retries included), so
two calls never use the same writer at once. Each call gets a sequence number from
one counter of the process, so the numbers a writer sends only increase. The
write scripts (:mod:`redis_chat_history.operations`) keep, per history, the newest
sequence number of each writer for as long as a re-send can arrive; a write whose
number is not above its writer's newest is a re-send of an applied write.

What the server keeps grows with the number of writers that wrote a history within
that window (one per concurrent call on that history), never with the write rate.

Example::

    token = acquire("message_store:s1", RetryPolicy())
    try:
        command = plan.commands[0]
        args = token.fill(command.args, command.writer_at)   # ... send ...
    finally:
        release("message_store:s1", token)
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
from typing import Any

from redis_chat_history.retry import RetryPolicy


class WriterToken:
    """The three script arguments that identify one write: writer, sequence, window."""

    __slots__ = ("sequence", "slot", "window_seconds", "writer")

    def __init__(self, writer: str, sequence: int, window_seconds: int, slot: int = 0) -> None:
        self.writer = writer
        self.sequence = sequence
        self.window_seconds = window_seconds
        #: Which of this process's writers of the key (0 unless calls overlap).
        self.slot = slot

    def fill(self, args: tuple[Any, ...], at: int) -> tuple[Any, ...]:
        """``args`` with the :data:`~redis_chat_history.operations.WRITER` at ``at`` replaced."""
        return (
            *args[:at],
            self.writer,
            f"{self.sequence:x}",
            self.window_seconds,
            *args[at + 1 :],
        )


class _Writers:
    """The writers of this process: a random prefix, a sequence counter, busy slots per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._prefix = secrets.token_hex(5)  # 40 random bits per process
        self._sequence = itertools.count(1)
        self._busy: dict[str, int] = {}  # key -> bit mask of the slots in use

    def acquire(self, key: str, window_seconds: int) -> WriterToken:
        with self._lock:
            busy = self._busy.get(key, 0)
            slot = 0
            while busy >> slot & 1:
                slot += 1
            self._busy[key] = busy | 1 << slot
            sequence = next(self._sequence)
        return WriterToken(f"{self._prefix}{slot:x}", sequence, window_seconds, slot)

    def release(self, key: str, slot: int) -> None:
        with self._lock:
            busy = self._busy.get(key, 0) & ~(1 << slot)
            if busy:
                self._busy[key] = busy
            else:
                self._busy.pop(key, None)


_writers = _Writers()


def acquire(key: str, policy: RetryPolicy) -> WriterToken:
    """A writer of history ``key`` for one call; give it back with :func:`release`.

    No other call uses it meanwhile. The server remembers its write for as long as the
    policy lets a call keep re-sending.
    """
    return _writers.acquire(key, policy.window_seconds)


def release(key: str, token: WriterToken) -> None:
    _writers.release(key, token.slot)
