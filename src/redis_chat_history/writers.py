"""Writer tokens: how a re-sent write is recognised by the server (exactly once).

A *writer* is a (process, index) pair that sends its writes to one history one at a
time: a call checks a writer out for its whole duration (retries included), so two
calls never use the same writer at once. Each call gets a sequence number from one
counter of the process, so the numbers a writer sends only increase. The write scripts
(:mod:`redis_chat_history.operations.scripts`) keep, per history, the newest sequence
number of each writer for as long as a re-send can arrive; a write whose number is not
above its writer's newest is a re-send of an applied write.

A writer id must never be used by two live processes: a process cloned by a C-level
``fork()`` (uWSGI's default mode, snapshot-restored VMs) skips Python's fork hooks and
would reuse its parent's id and counter, so the child's new writes would be taken for
re-sends and dropped. So the process id is checked on every checkout (one ``getpid``)
and a process that finds itself a clone draws a new random prefix and counter.

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

#: The script arguments a token fills in: writer id, sequence (hex), window seconds, and
#: '1' when an earlier send of this call may still reach the server (so a write that
#: changes nothing is recorded all the same: that copy must be recognised when it arrives).
TOKEN_ARGUMENTS = 4


class WriterToken:
    """The script arguments that identify one write: writer, sequence, window, re-send."""

    __slots__ = ("_first", "_owner", "index", "sends", "sequence", "window_seconds", "writer")

    def __init__(
        self,
        writer: str,
        sequence: int,
        window_seconds: int,
        index: int = 0,
        owner: _ProcessWriters | None = None,
    ) -> None:
        self.writer = writer
        self.sequence = sequence
        self.window_seconds = window_seconds
        #: Which of this process's writers of the key (0 unless calls overlap).
        self.index = index
        #: Requests filled in so far: every send of a call fills its request once.
        self.sends = 0
        self._first: Any = None  # the first send's command name
        self._owner = owner

    def fill(self, args: tuple[Any, ...], at: int) -> tuple[Any, ...]:
        """``args`` with the :data:`~redis_chat_history.operations.WRITER` at ``at`` replaced.

        Called once per send. Every send but the first says it is a re-send, except the
        EVAL that follows a first EVALSHA: execution switches to EVAL only on a NOSCRIPT
        reply to the send before, so that copy was answered and never applied.
        """
        self.sends += 1
        if self.sends == 1:
            self._first = args[0]
        resend = self.sends > 2 or (
            self.sends == 2 and not (self._first == "EVALSHA" and args[0] == "EVAL")
        )
        return (
            *args[:at],
            self.writer,
            f"{self.sequence:x}",
            self.window_seconds,
            "1" if resend else "0",
            *args[at + 1 :],
        )


class _ProcessWriters:
    """The writers of one process: a random prefix, a sequence counter, busy indexes per key."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._prefix = secrets.token_hex(5)  # 40 random bits per process
        self._sequence = itertools.count(1)
        self._busy: dict[str, int] = {}  # key -> bit mask of the indexes in use

    def acquire(self, key: str, window_seconds: int) -> WriterToken:
        with self._lock:
            busy = self._busy.get(key, 0)
            index = 0
            while busy >> index & 1:
                index += 1
            self._busy[key] = busy | 1 << index
            sequence = next(self._sequence)
        return WriterToken(f"{self._prefix}{index:x}", sequence, window_seconds, index, self)

    def release(self, key: str, index: int) -> None:
        with self._lock:
            busy = self._busy.get(key, 0) & ~(1 << index)
            if busy:
                self._busy[key] = busy
            else:
                self._busy.pop(key, None)


_current = _ProcessWriters()


def _writers() -> _ProcessWriters:
    """This process's writers; new ones in a process that is a clone of their owner.

    Never waits on a lock a parent may have held when it was cloned (a new process gets
    new writers, with a new lock). Two threads of a new clone may both build writers:
    each set is consistent, and a token is given back to the set it came from.
    """
    global _current
    writers = _current
    if writers.pid != os.getpid():
        writers = _current = _ProcessWriters()
    return writers


def acquire(key: str, policy: RetryPolicy) -> WriterToken:
    """A writer of history ``key`` for one call; give it back with :func:`release`.

    No other call uses it meanwhile. The server remembers its write for as long as the
    policy lets a call keep re-sending.
    """
    return _writers().acquire(key, policy.window_seconds)


def release(key: str, token: WriterToken) -> None:
    owner = token._owner
    if owner is not None and owner.pid == os.getpid():
        owner.release(key, token.index)
