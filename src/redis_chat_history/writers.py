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

**Chained writes** (what keeps a write cheap for Redis). A writer's entry on the server
is ``"<sequence>,<expiry>,<result>"``; the expiry (server seconds) must cover the
write's window. With a *lifetime* of the window, one send and some seconds more
(:func:`lifetime_of`), the token proposes the expiry, ``<now> + lifetime + 1 +
EXPIRY_SPREAD / 2`` on this machine's clock; the script checks it against ``TIME`` and
takes its own least expiry (``now + lifetime + 1``) when the proposal is below it or more
than :data:`EXPIRY_SPREAD` above (clocks differ). The writer's next writes to that history,
while they start within :func:`reach` of that first one (by this process's monotonic
clock) and within ``EXPIRY_SPREAD / 2 - 1`` seconds of it (so that a server which lost the entry still accepts the expiry on the
full path, and the chain goes on), send the entry they expect to find (their previous
write's) and the new one with the same expiry. A script that finds exactly
that entry knows the write is no re-send (the entry is this writer's previous write,
whose sequence is lower) and that the expiry still covers this write's window: it writes
the entry as sent, without reading the clock or building strings. Anything else (no
entry, another one, a re-send's) takes the full path. The client's clock only decides
whether writes chain: an expiry's lower bound always comes from the server's clock.

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
import math
import os
import secrets
import threading
import time
from typing import Any

from redis_chat_history.retry import RetryPolicy

#: The script arguments a token fills in: writer id; the new entry without its result,
#: ``"<sequence hex>,<expiry>,"``; the lifetime (seconds the entry must last at least),
#: negative when an earlier send of this call may still reach the server (so a write
#: that changes nothing is recorded all the same: that copy must be recognised when it
#: arrives); the entry this writer's previous write left (``""``: none expected). Four,
#: not more: every argument costs Redis time on every write.
TOKEN_ARGUMENTS = 4
#: Seconds above the scripts' least expiry that a proposed expiry may be (clock skew).
EXPIRY_SPREAD = 20
#: Chained writers remembered per process (all are forgotten when there are more).
MAX_CHAINS = 10_000


def lifetime_of(window_seconds: int, send_seconds: float) -> int:
    """How long an entry lasts: its window, one send, 2 s and half the spread: long enough
    for the writer's next writes within half the spread to chain (see :func:`reach`)."""
    return window_seconds + math.ceil(send_seconds) + 2 + EXPIRY_SPREAD // 2


def reach(window_seconds: int, lifetime: int, send_seconds: float) -> float:
    """How long after its anchor a chained write may start: its first copy is sent within
    ``send_seconds`` of the checkout and the last arrives within its window of that, so
    the anchor's expiry (``lifetime`` after it, at least) still covers it, with 2 s spare."""
    return lifetime - window_seconds - send_seconds - 2


def proposed_tail(lifetime: int, wall: float) -> str:
    """``",<expiry>,"``: the least expiry for ``lifetime`` at ``wall`` (this clock), and half
    the spread (accepted by a server whose clock is up to that far from this one's)."""
    return f",{int(wall) + lifetime + 1 + EXPIRY_SPREAD // 2},"


class WriterToken:
    """The script arguments that identify one write: writer, entry, lifetime (and re-send),
    expected entry."""

    __slots__ = (
        "_anchored",
        "_first",
        "_owner",
        "_reach",
        "_tail",
        "expected",
        "index",
        "lifetime",
        "record",
        "sends",
        "sequence",
        "window_seconds",
        "writer",
    )

    def __init__(
        self,
        writer: str,
        sequence: int,
        window_seconds: int,
        index: int = 0,
        owner: _ProcessWriters | None = None,
        lifetime: int | None = None,
        tail: str = ",0,",
        expected: str = "",
    ) -> None:
        self.writer = writer
        self.sequence = sequence
        self.window_seconds = window_seconds
        #: Seconds the entry must last at least (the window unless the writer chains).
        self.lifetime = window_seconds if lifetime is None else lifetime
        #: The entry this write leaves, less its result: ``tail`` holds the proposed expiry
        #: (0: the script's own least expiry), or an earlier write's when chained.
        self.record = f"{sequence:x}{tail}"
        self._tail = tail
        #: The entry the previous write of this writer left ("" for the full path).
        self.expected = expected
        #: Which of this process's writers of the key (0 unless calls overlap).
        self.index = index
        #: Requests filled in so far: every send of a call fills its request once.
        self.sends = 0
        self._first: Any = None  # the first send's command name
        self._owner = owner
        #: The chain's first write (monotonic seconds), and how long after it writes chain
        #: (0: this writer does not chain).
        self._anchored = 0.0
        self._reach = 0.0

    def fill(self, args: tuple[Any, ...], at: int) -> tuple[Any, ...]:
        """``args`` with the :data:`~redis_chat_history.operations.WRITER` at ``at`` replaced.

        Called once per send. Every send but the first says it is a re-send, except the
        EVAL that follows a first EVALSHA: execution switches to EVAL only on a NOSCRIPT
        reply to the send before, so that copy was answered and never applied.
        """
        self.sends += 1
        lifetime = self.lifetime
        if self.sends == 1:
            self._first = args[0]
        elif self.sends > 2 or not (self._first == "EVALSHA" and args[0] == "EVAL"):
            lifetime = -lifetime  # a re-send
        return (*args[:at], self.writer, self.record, lifetime, self.expected, *args[at + 1 :])


class _ProcessWriters:
    """The writers of one process: a random prefix, a sequence counter, busy indexes per
    key, and the last token of each chaining writer (see the module doc)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._prefix = secrets.token_hex(5)  # 40 random bits per process
        self._first_writer = self._prefix + "0"
        self._sequence = itertools.count(1)
        self._busy: dict[str, int] = {}  # key -> bit mask of the indexes in use
        #: key (writer 0) or (key, index) -> the writer's last token, while it chains
        self._chains: dict[Any, WriterToken] = {}

    def acquire(
        self, key: str, window_seconds: int, lifetime: int, chain_reach: float
    ) -> WriterToken:
        now = time.monotonic()
        with self._lock:
            busy = self._busy.get(key, 0)
            index = 0
            while busy >> index & 1:
                index += 1
            self._busy[key] = busy | 1 << index
            sequence = next(self._sequence)
            last = self._chains.get(key if index == 0 else (key, index))
        writer = self._first_writer if index == 0 else f"{self._prefix}{index:x}"
        if last is not None and last.lifetime == lifetime and now - last._anchored <= chain_reach:
            token = WriterToken(
                writer, sequence, window_seconds, index, self, lifetime, last._tail, last.record
            )
            token._anchored = last._anchored
        else:
            tail = proposed_tail(lifetime, time.time())
            token = WriterToken(writer, sequence, window_seconds, index, self, lifetime, tail)
            token._anchored = now
        token._reach = chain_reach
        return token

    def release(self, key: str, token: WriterToken) -> None:
        index = token.index
        with self._lock:
            busy = self._busy.get(key, 0) & ~(1 << index)
            if busy:
                self._busy[key] = busy
            else:
                self._busy.pop(key, None)
            if token._reach > 0:
                # The script verifies the chain: a write that was not applied as sent only
                # sends the next one down the full path.
                chains = self._chains
                if len(chains) >= MAX_CHAINS:
                    chains.clear()
                chains[key if index == 0 else (key, index)] = token


_current = _ProcessWriters()
#: id(policy) -> (policy, its window seconds, lifetime, chain reach): computed once.
_terms: dict[int, tuple[RetryPolicy, int, int, float]] = {}


def _terms_of(policy: RetryPolicy) -> tuple[RetryPolicy, int, int, float]:
    window_seconds, send_seconds = policy.window_seconds, policy.send_seconds
    lifetime = lifetime_of(window_seconds, send_seconds)
    # how long a chain lasts: within reach, and while a server that lost the entry
    # would still accept the expiry (half the spread, less a second, by this clock)
    chain_reach = min(reach(window_seconds, lifetime, send_seconds), EXPIRY_SPREAD // 2 - 1)
    return policy, window_seconds, lifetime, chain_reach


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
    terms = _terms.get(id(policy))
    if terms is None or terms[0] is not policy:
        if len(_terms) > 64:  # policies made per call: keep a few
            _terms.clear()
        terms = _terms[id(policy)] = _terms_of(policy)
    return _writers().acquire(key, terms[1], terms[2], terms[3])


def release(key: str, token: WriterToken) -> None:
    owner = token._owner
    if owner is not None and owner.pid == os.getpid():
        owner.release(key, token)
