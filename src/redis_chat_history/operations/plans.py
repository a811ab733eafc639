"""The shape of every operation: a :class:`Plan` of :class:`Command` s.

A plan is plain data: the commands of one round trip (pipelined on one connection), the
key that routes them, and how to read the replies. The call machine
(:mod:`redis_chat_history.call`) decides how it is sent, :mod:`redis_chat_history.execution`
sends it; ``tests/test_operations.py`` checks plans without a server. Their arguments are
checked with :mod:`redis_chat_history.checks` (re-exported here for the operations).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

# re-exported: the operations' plans check their arguments with them
from redis_chat_history.checks import check_batch as check_batch
from redis_chat_history.checks import check_int as check_int
from redis_chat_history.checks import check_key as check_key
from redis_chat_history.checks import check_optional_int
from redis_chat_history.errors import InvalidArgumentError

T = TypeVar("T")

#: The largest expiry accepted, in seconds (about 317 years): every Redis version
#: computes ``now + seconds * 1000`` in a signed 64-bit integer without overflowing.
MAX_EXPIRE_SECONDS = 10**10
#: The largest ``max_messages`` (integers above 2**53 are not exact in Lua).
MAX_MESSAGES = 2**53
#: LPUSH at most this many values per call inside scripts (Lua's unpack has a stack limit).
PUSH_CHUNK = 1000


@dataclass(frozen=True, eq=False)
class Script:
    """A Lua script, sent as EVALSHA and, when the server lacks it, as EVAL.

    Not redis-py's ``Script``: ours is pipelined with WAIT on one connection and sent by
    transport.py's own path (redis-py 8's execute_command wrapper cost ~14 µs a call).
    """

    name: str
    source: str

    @functools.cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


class _WriterToken:
    """Placeholder in a script's arguments for the writer token (four arguments)."""

    def __repr__(self) -> str:
        return "WRITER"


#: Stands for ``writer id, sequence number, window seconds, re-send flag`` in a script
#: call's arguments; the call machine (:mod:`redis_chat_history.call`) fills them in
#: (see :mod:`redis_chat_history.writers`; scripts.py builds the scripts that read them).
WRITER = _WriterToken()


@dataclass(slots=True)
class Command:
    """One Redis command: plain arguments, or a script call with keys and arguments.

    Treat it as immutable (it is not frozen: building one is on every call's path).
    """

    args: tuple[Any, ...]
    script: Script | None = None
    #: Index in ``args`` of :data:`WRITER`, when the command carries a writer token.
    writer_at: int | None = None

    @classmethod
    def call(cls, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Command:
        full = ("EVALSHA", script.sha, len(keys), *keys, *args)
        # WRITER, when a script takes one, is its first argument (ARGV[1..4] once filled in)
        writer_at = 3 + len(keys) if args and args[0] is WRITER else None
        return cls(full, script, writer_at)

    def as_eval(self) -> tuple[Any, ...]:
        """The same call with the script's source (after a NOSCRIPT reply)."""
        assert self.script is not None
        return ("EVAL", self.script.source, *self.args[2:])


@dataclass(slots=True)
class Plan(Generic[T]):
    """One operation: commands sent together, the key routing them, how to read the replies.

    ``parse`` receives one reply per command (error replies are raised before).
    ``idempotent`` plans may be re-sent after their request may have reached the
    server; the others are re-sent only when their request never left the process. It
    follows from the kind: reads and writes carrying a writer token are, other writes are
    not (build them with :func:`~redis_chat_history.operations.scripts.plain_write`),
    unless declared ``idempotent=True`` because they recognise a re-send by themselves
    (transfer's length-checked staging). Treat a plan as immutable.
    """

    commands: tuple[Command, ...]
    key: str
    parse: Callable[[list[Any]], T]
    #: True when the commands change data (so ``wait_for_replicas`` applies).
    writes: bool = False
    #: None: derived from the kind (see above).
    idempotent: bool | None = None
    #: Builds the old class's commands for the same change, for users who may not run
    #: scripts (built only then: most calls never need it).
    plain: Callable[[], Plan[T]] | None = None

    def __post_init__(self) -> None:
        if self.idempotent is None:
            self.idempotent = not self.writes or self.has_writer

    @property
    def has_writer(self) -> bool:
        for command in self.commands:  # noqa: SIM110 (no generator: this runs on every call)
            if command.writer_at is not None:
                return True
        return False


def single_reply(parse: Callable[[Any], T]) -> Callable[[list[Any]], T]:
    def parse_first(replies: list[Any]) -> T:
        return parse(replies[0])

    return parse_first


# ---------------------------------------------------------------------------
# Argument checks (checks.py): a plan never sends something its caller did not mean.


def check_optional(name: str, value: int | None, *, maximum: int) -> int:
    """0 for None (the scripts' 'not set'), else an int in ``[1, maximum]``."""
    checked = check_optional_int(name, value, minimum=0 if name == "ttl" else 1, maximum=maximum)
    return 0 if checked is None else checked


def batch_plan(plans: Sequence[Plan[T]]) -> Plan[list[T]]:
    """Several reads in one round trip (pipelined on one connection); results in order.

    The reads must share a node (one server, or keys a Cluster SCAN found on one master).
    """
    if not plans:
        raise InvalidArgumentError("a batch needs at least one plan")
    if any(plan.writes for plan in plans):
        raise InvalidArgumentError("only reads are batched (a write has its own writer token)")
    sizes = [len(plan.commands) for plan in plans]

    def parse(replies: list[Any]) -> list[T]:
        results: list[T] = []
        at = 0
        for plan, size in zip(plans, sizes, strict=True):
            results.append(plan.parse(replies[at : at + size]))
            at += size
        return results

    commands = tuple(command for plan in plans for command in plan.commands)
    return Plan(commands, plans[0].key, parse)
