"""What each operation sends to Redis and how its reply is read, without any I/O.

Every operation is a :class:`Plan`: one command (often a Lua script, so that a
multi-step change is atomic and one round trip) and a function that turns the
reply into the result. :mod:`redis_chat_history.execution` runs a plan with a
sync or an asyncio client; tests can check a plan without a server.

Example::

    >>> plan = read_plan("message_store:s1", limit=20)
    >>> plan.command.args
    ('LRANGE', 'message_store:s1', 0, 19)
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from langchain_core.messages import BaseMessage

from redis_chat_history.codec import decode_newest_first
from redis_chat_history.slots import same_slot_suffix

T = TypeVar("T")

#: How many recent write tokens a history remembers, and for how long.
RECENT_TOKENS = 16  # a retry follows its lost reply within seconds; 16 covers busy sessions
TOKEN_TTL_MS = 600_000
#: A staging list of an import or copy expires after an hour if never committed.
STAGING_TTL_MS = 3_600_000
#: Bytes of recent tokens kept: at least RECENT_TOKENS of the longest (24 characters + '|').
_TOKENS_BYTES = RECENT_TOKENS * 25
#: LPUSH at most this many values per call inside scripts (Lua's unpack has a stack limit).
_PUSH_CHUNK = 1000


@dataclass(frozen=True, eq=False)
class Script:
    """A Lua script, sent as EVALSHA and, when the server lacks it, as EVAL."""

    name: str
    source: str

    @functools.cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


@dataclass(frozen=True)
class Command:
    """One Redis command: plain arguments, or a script call with keys and arguments."""

    args: tuple[Any, ...]
    script: Script | None = None

    @classmethod
    def call(cls, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Command:
        return cls(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    def as_eval(self) -> tuple[Any, ...]:
        """The same call with the script's source (after a NOSCRIPT reply)."""
        assert self.script is not None
        return ("EVAL", self.script.source, *self.args[2:])


@dataclass(frozen=True)
class Plan(Generic[T]):
    """One operation: the command to send, the key it concerns, and how to read the reply."""

    command: Command
    key: str
    parse: Callable[[Any], T]
    #: True when the command changes data (so ``wait_for_replicas`` applies).
    writes: bool = False


# ---------------------------------------------------------------------------
# Lua scripts. Each names every key it touches in KEYS, as Cluster and ACLs need.

APPEND = Script(
    "append",
    f"""
-- KEYS[1] history list, KEYS[2] recent write tokens of that history ('|t1|t2|...|')
-- ARGV[1] write token ('' for none), ARGV[2] ttl seconds (0 = leave as is),
-- ARGV[3] keep newest N (0 = all), ARGV[4..] encoded messages, oldest first
local token = ARGV[1]
local recent = false
if token ~= '' then
  recent = redis.call('GET', KEYS[2])
  if recent and string.find(recent, '|' .. token .. '|', 1, true) then
    return {{0, redis.call('LLEN', KEYS[1])}}
  end
  -- remember the token first: if this user may not write it, nothing is written
  recent = '|' .. token .. (recent or '|')
  if #recent > {_TOKENS_BYTES} then
    recent = string.match(string.sub(recent, 1, {_TOKENS_BYTES}), '^(.*|)')
  end
  redis.call('SET', KEYS[2], recent, 'PX', {TOKEN_TTL_MS})
end
local length = 0
if #ARGV <= {_PUSH_CHUNK + 3} then
  length = redis.call('LPUSH', KEYS[1], unpack(ARGV, 4))
else
  for first = 4, #ARGV, {_PUSH_CHUNK} do
    length = redis.call('LPUSH', KEYS[1], unpack(ARGV, first, math.min(first + {_PUSH_CHUNK - 1}, #ARGV)))
  end
end
local keep = tonumber(ARGV[3])
if keep > 0 and length > keep then
  redis.call('LTRIM', KEYS[1], 0, keep - 1)
  length = keep
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return {{1, length}}
""",
)

DELETE_LAST = Script(
    "delete_last",
    """
-- KEYS[1] history list; ARGV[1] how many of the newest messages to remove
local n = tonumber(ARGV[1])
local removed = redis.call('LRANGE', KEYS[1], 0, n - 1)
if #removed > 0 then
  redis.call('LTRIM', KEYS[1], #removed, -1)
end
return removed
""",
)

REPLACE = Script(
    "replace",
    f"""
-- KEYS[1] history list; ARGV[1] ttl seconds (0 = keep the current expiry),
-- ARGV[2..] encoded messages, oldest first. Readers see the old or the new list.
local remaining = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
local length = 0
for first = 2, #ARGV, {_PUSH_CHUNK} do
  length = redis.call('LPUSH', KEYS[1], unpack(ARGV, first, math.min(first + {_PUSH_CHUNK - 1}, #ARGV)))
end
local ttl = tonumber(ARGV[1])
if length > 0 then
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[1], ttl)
  elseif remaining > 0 then
    redis.call('PEXPIRE', KEYS[1], remaining)
  end
end
return length
""",
)

DELETE = Script(
    "delete",
    """
-- KEYS[1] history list, KEYS[2] its write tokens; replies 1 when the history existed
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return existed
""",
)

STAGE = Script(
    "stage",
    f"""
-- KEYS[1] a staging list; ARGV[1..] encoded messages, oldest first. Staging lists
-- expire by themselves, so an import that dies half-way leaves nothing behind.
for first = 1, #ARGV, {_PUSH_CHUNK} do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, first, math.min(first + {_PUSH_CHUNK - 1}, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], {STAGING_TTL_MS})
return redis.call('LLEN', KEYS[1])
""",
)

COMMIT = Script(
    "commit",
    """
-- KEYS[1] staging list, KEYS[2] history; ARGV[1] '1' to overwrite a non-empty history,
-- ARGV[2] expiry in ms (0 = none). Replies 1 when written, 0 when the history was kept.
if ARGV[1] ~= '1' and redis.call('LLEN', KEYS[2]) > 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('RENAME', KEYS[1], KEYS[2])
local ms = tonumber(ARGV[2])
if ms > 0 then
  redis.call('PEXPIRE', KEYS[2], ms)
else
  redis.call('PERSIST', KEYS[2])
end
return 1
""",
)

SCRIPTS = (APPEND, DELETE_LAST, REPLACE, DELETE, STAGE, COMMIT)


# ---------------------------------------------------------------------------
# Write tokens: unique per write, cheap (a per-process random prefix and a counter).


class _TokenSource:
    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = secrets.token_urlsafe(6)  # 8 characters, 48 random bits
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


_tokens = _TokenSource()


def new_write_token() -> str:
    """A token no other write of any process uses (random per process, counted within)."""
    return _tokens.next()


def tokens_key(key: str) -> str:
    """The key remembering recent write tokens of history ``key``.

    It starts with ``key`` (so an ACL on the prefix covers it) and hashes to the
    same Cluster slot (see :func:`redis_chat_history.slots.same_slot_suffix`).
    """
    return f"{key}\x00w{same_slot_suffix(key)}"


def staging_key(key: str) -> str:
    """Where an import or copy of history ``key`` is assembled before one atomic RENAME."""
    return f"{key}\x00i{same_slot_suffix(key)}"


def is_companion_key(key: str) -> bool:
    """True for a write-token or staging key (never a session of its own)."""
    for marker in ("\x00w", "\x00i"):
        start = key.rfind(marker)
        while start > 0:
            base = key[:start]
            if key == f"{base}{marker}{same_slot_suffix(base)}":
                return True
            start = key.rfind(marker, 0, start)
    return False


# ---------------------------------------------------------------------------
# Plans


def _parse_append(reply: Any) -> int:
    return int(reply[1])


def append_plan(
    key: str,
    encoded: Sequence[bytes],
    *,
    ttl: int | None,
    max_messages: int | None,
    token: str | None,
) -> Plan[int]:
    """Push a batch (oldest first), refresh the expiry and trim, atomically; replies new length.

    A write token makes a retried write (one whose reply was lost) a no-op.
    """
    command = Command.call(
        APPEND,
        [key, tokens_key(key)],
        [token or "", ttl or 0, max_messages or 0, *encoded],
    )
    return Plan(command, key, _parse_append, writes=True)


def read_plan(
    key: str, *, limit: int | None = None, skip_corrupt: bool = False
) -> Plan[list[BaseMessage]]:
    """The newest ``limit`` messages (all when None), oldest first: O(limit) on both sides."""
    stop = -1 if limit is None else limit - 1

    def parse(reply: Any) -> list[BaseMessage]:
        return decode_newest_first(reply, key=key, skip_corrupt=skip_corrupt)

    return Plan(Command(("LRANGE", key, 0, stop)), key, parse)


def count_plan(key: str) -> Plan[int]:
    """Number of stored messages (LLEN, O(1))."""
    return Plan(Command(("LLEN", key)), key, int)


def clear_plan(key: str) -> Plan[int]:
    """Delete the history and its write tokens."""
    return Plan(Command(("DEL", key, tokens_key(key))), key, int, writes=True)


def delete_last_plan(key: str, n: int, *, skip_corrupt: bool = False) -> Plan[list[BaseMessage]]:
    """Remove the newest ``n`` messages atomically; replies them oldest first."""

    def parse(reply: Any) -> list[BaseMessage]:
        return decode_newest_first(reply, key=key, skip_corrupt=skip_corrupt)

    return Plan(Command.call(DELETE_LAST, [key], [n]), key, parse, writes=True)


def replace_plan(key: str, encoded: Sequence[bytes], *, ttl: int | None) -> Plan[int]:
    """Replace the whole history atomically (readers see old or new, never a mix)."""
    return Plan(Command.call(REPLACE, [key], [ttl or 0, *encoded]), key, int, writes=True)


def expire_plan(key: str, seconds: int) -> Plan[bool]:
    """Expire the history ``seconds`` from now; False when it does not exist."""
    return Plan(Command(("EXPIRE", key, seconds)), key, bool, writes=True)


def persist_plan(key: str) -> Plan[bool]:
    """Remove the expiry; False when there was none or no history."""
    return Plan(Command(("PERSIST", key)), key, bool, writes=True)


def _parse_ttl(reply: Any) -> float | None:
    milliseconds = int(reply)
    if milliseconds < 0:  # -1 no expiry, -2 no key
        return None
    return milliseconds / 1000


def expires_in_plan(key: str) -> Plan[float | None]:
    """Seconds until the history expires; None when it never expires (or does not exist)."""
    return Plan(Command(("PTTL", key)), key, _parse_ttl)


def delete_plan(key: str) -> Plan[bool]:
    """Delete the history and its write tokens; True when the history existed."""
    return Plan(Command.call(DELETE, [key, tokens_key(key)], []), key, bool, writes=True)


def oldest_window_plan(key: str, start: int, count: int) -> Plan[list[bytes]]:
    """Raw elements ``start .. start+count-1`` counted from the oldest, oldest first.

    Indexes from the tail stay valid while new messages are pushed at the head,
    so a long history can be streamed in windows while it is being written.
    """

    def parse(reply: Any) -> list[bytes]:
        return list(reversed(reply))

    return Plan(Command(("LRANGE", key, -(start + count), -(start + 1))), key, parse)


def pttl_plan(key: str) -> Plan[int]:
    """Milliseconds until ``key`` expires: -1 never, -2 no such key."""
    return Plan(Command(("PTTL", key)), key, int)


def stage_plan(key: str, encoded: Sequence[bytes]) -> Plan[int]:
    """Append a batch (oldest first) to the staging list of history ``key``."""
    return Plan(Command.call(STAGE, [staging_key(key)], list(encoded)), key, int, writes=True)


def discard_stage_plan(key: str) -> Plan[int]:
    """Drop the staging list of history ``key`` (after a failed import)."""
    return Plan(Command(("DEL", staging_key(key))), key, int, writes=True)


def commit_stage_plan(key: str, *, overwrite: bool, expire_ms: int) -> Plan[bool]:
    """Atomically make the staged list the history; False when a non-empty one was kept."""
    command = Command.call(
        COMMIT, [staging_key(key), key], ["1" if overwrite else "0", max(0, expire_ms)]
    )
    return Plan(command, key, bool, writes=True)
