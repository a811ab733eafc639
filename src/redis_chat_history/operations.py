"""What each operation sends to Redis and how its reply is read, without any I/O.

Every operation is a :class:`Plan`: the commands to send together (one round trip,
on one connection), the key that routes them (its Cluster slot), and a function that
turns the replies into the result. :mod:`redis_chat_history.execution` runs a plan
with a sync or an asyncio client; the plans themselves are tested without a server.

Writes that change a history are Lua scripts, so a multi-step change is atomic, and
each carries a *writer token* (:data:`WRITER`, filled in by execution): the server
remembers the newest token of each writer of a history for as long as a re-send of
it can arrive, so a write whose reply was lost and that is sent again is recognised
and not applied twice. Each write also has a *plain* twin made of the commands the
old langchain_community class used (LPUSH, EXPIRE, ...), sent when the server refuses
scripts to this user; plain writes are not idempotent and never re-sent.

Example::

    >>> plan = read_plan("message_store:s1", limit=20)
    >>> plan.commands[0].args
    ('LRANGE', 'message_store:s1', 0, 19)
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from redis_chat_history.codec import decode_newest_first
from redis_chat_history.errors import (
    CommandError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from redis_chat_history.slots import (
    SNAPSHOT,
    STAGING,
    companion_key,
    writers_key_of,
)
from redis_chat_history.slots import is_companion_key as is_companion_key  # settings.py's

T = TypeVar("T")

#: The largest expiry accepted, in seconds (about 317 years): every Redis version
#: computes ``now + seconds * 1000`` in a signed 64-bit integer without overflowing.
MAX_EXPIRE_SECONDS = 10**10
#: The largest ``max_messages`` (integers above 2**53 are not exact in Lua).
MAX_MESSAGES = 2**53
#: LPUSH at most this many values per call inside scripts (Lua's unpack has a stack limit).
_PUSH_CHUNK = 1000


@dataclass(frozen=True, eq=False)
class Script:
    """A Lua script, sent as EVALSHA and, when the server lacks it, as EVAL.

    Not redis-py's ``Script``: ours is pipelined with WAIT on one connection and sent by
    execution.py's own path (redis-py 8's execute_command wrapper cost ~14 µs a call).
    """

    name: str
    source: str

    @functools.cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


class _WriterToken:
    """Placeholder in a script's arguments for the writer token (three arguments)."""

    def __repr__(self) -> str:
        return "WRITER"


#: Stands for ``writer id, sequence number, window seconds`` in a script call's arguments;
#: :mod:`redis_chat_history.execution` fills them in (see :mod:`redis_chat_history.writers`).
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
        # WRITER, when a script takes one, is its first argument (ARGV[1..3] once filled in)
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
    server (reads, and writes carrying a writer token); the others are re-sent only
    when their request never left the process. Treat a plan as immutable.
    """

    commands: tuple[Command, ...]
    key: str
    parse: Callable[[list[Any]], T]
    #: True when the commands change data (so ``wait_for_replicas`` applies).
    writes: bool = False
    idempotent: bool = True
    #: Builds the old class's commands for the same change, for users who may not run
    #: scripts (built only then: most calls never need it).
    plain: Callable[[], Plan[T]] | None = None

    @property
    def has_writer(self) -> bool:
        return any(command.writer_at is not None for command in self.commands)


def _single(parse: Callable[[Any], T]) -> Callable[[list[Any]], T]:
    def parse_first(replies: list[Any]) -> T:
        return parse(replies[0])

    return parse_first


def _ignore(replies: list[Any]) -> None:
    return None


# ---------------------------------------------------------------------------
# Argument checks: a plan never sends something its caller did not mean.


def check_int(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; the error names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be <= {maximum}, got {value}")
    return value


def _check_optional(name: str, value: int | None, *, maximum: int) -> int:
    """0 for None (the scripts' 'not set'), else an int in ``[1, maximum]``."""
    if value is None:
        return 0
    return check_int(name, value, minimum=0 if name == "ttl" else 1, maximum=maximum)


def _check_batch(encoded: Sequence[bytes], *, allow_empty: bool = False) -> None:
    if isinstance(encoded, (bytes, str)) or not isinstance(encoded, Sequence):
        raise InvalidArgumentTypeError("encoded messages must be a sequence of bytes")
    if not encoded and not allow_empty:
        raise InvalidArgumentError("a write needs at least one message")


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"a history key must be a non-empty str, got {key!r}")
    return key


# ---------------------------------------------------------------------------
# Lua scripts. Each names every key it touches in KEYS, as Cluster and ACLs need.
#
# Every write script starts with the same prelude. It reads the history's length (so a
# key of another type is refused before anything changes) and the writers key, and
# records this write's token in the writers key *before* touching the list: when this
# user may not run a command the script needs (TIME, GET, SET, LLEN) the script stops
# with an 'RCHPLAIN' error having written nothing, and execution switches to plain writes.
#
# The writers key holds 'writer,seq,expiry,result;' per writer of the last window
# (writer and seq in hex; expiry in server seconds). A writer sends its writes one at a time with
# increasing sequence numbers, so a sequence number not above the writer's last one is
# a re-send of a write already applied: the script answers with the stored result.

_PRELUDE = """
-- KEYS[1] history list, KEYS[2] its writers key; ARGV[1] writer, ARGV[2] sequence number
-- (hex), ARGV[3] seconds the server must remember this write
local function refused(reply)
  if string.sub(reply.err, 1, 9) == 'WRONGTYPE' then
    return redis.error_reply(reply.err)
  end
  return redis.error_reply('RCHPLAIN ' .. reply.err)
end
local length = redis.pcall('LLEN', KEYS[1])
if type(length) == 'table' then return refused(length) end
local clock = redis.pcall('TIME')
if clock.err then return refused(clock) end
local book = redis.pcall('GET', KEYS[2])
if type(book) == 'table' then return refused(book) end
local now = tonumber(clock[1])
local writer, seq = ARGV[1], tonumber(ARGV[2], 16)
local kept, applied = '', nil
if book then
  local mine = writer .. ','
  if string.sub(book, 1, #mine) == mine and string.find(book, ';', 1, true) == #book then
    -- the common case: this writer is the only one
    local s, r = string.match(book, '^[^,]*,(%x+),%d+,([^;]*);$')
    if s and tonumber(s, 16) >= seq then applied, kept = r, book end
  else
    for entry, w, s, e, r in string.gmatch(book, '(([^,;]+),(%x+),(%d+),([^;]*);)') do
      if w == writer then
        if tonumber(s, 16) >= seq then applied, kept = r, kept .. entry end
      elseif tonumber(e) > now then
        kept = kept .. entry
      end
    end
  end
end
-- remember(result): record this write (or refresh the record of a re-sent one, so that
-- WAIT on this connection also covers the first copy); false when the user may not SET.
local function remember(result)
  if applied == nil then
    kept = kept .. writer .. ',' .. ARGV[2] .. ',' .. (now + ARGV[3]) .. ',' .. result .. ';'
  end
  local ok = redis.pcall('SET', KEYS[2], kept, 'EX', ARGV[3])
  return type(ok) ~= 'table' or not ok.err, ok
end
local function push(key, first)
  for at = first, #ARGV, __CHUNK__ do
    redis.call('LPUSH', key, unpack(ARGV, at, math.min(at + __LAST__, #ARGV)))
  end
end
"""


def _write_script(name: str, body: str) -> Script:
    prelude = _PRELUDE.replace("__CHUNK__", str(_PUSH_CHUNK)).replace(
        "__LAST__", str(_PUSH_CHUNK - 1)
    )
    return Script(name, prelude + body)


APPEND = _write_script(
    "append",
    """
-- ARGV[4] ttl seconds (0 = leave as is), ARGV[5] keep newest N (0 = all),
-- ARGV[6..] encoded messages, oldest first. Replies {1 applied | 0 re-send, length}.
if applied then remember(applied) return {0, length} end
local ok, reply = remember('')
if not ok then return refused(reply) end
push(KEYS[1], 6)
length = length + #ARGV - 5
local keep = tonumber(ARGV[5])
if keep > 0 and length > keep then
  redis.call('LTRIM', KEYS[1], 0, keep - 1)
  length = keep
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return {1, length}
""",
)

DELETE_LAST = _write_script(
    "delete_last",
    """
-- ARGV[4] how many of the newest messages to remove. Replies {1, removed elements},
-- or {0, count} when this is a re-send of a removal already applied.
if applied then remember(applied) return {0, tonumber(applied)} end
local n = math.min(tonumber(ARGV[4]), length)
local ok, reply = remember(tostring(n))
if not ok then return refused(reply) end
local removed = {}
if n > 0 then
  removed = redis.call('LRANGE', KEYS[1], 0, n - 1)
  redis.call('LTRIM', KEYS[1], n, -1)
end
return {1, removed}
""",
)

REPLACE = _write_script(
    "replace",
    """
-- ARGV[4] ttl seconds (0 = keep the current expiry), ARGV[5..] encoded messages, oldest
-- first. Readers see the old or the new list. Replies {applied, length}.
local count = #ARGV - 4
if applied then remember(applied) return {0, count} end
local ok, reply = remember('')
if not ok then return refused(reply) end
local remaining = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
push(KEYS[1], 5)
local ttl = tonumber(ARGV[4])
if count > 0 then
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[1], ttl)
  elseif remaining > 0 then
    redis.call('PEXPIRE', KEYS[1], remaining)
  end
end
return {1, count}
""",
)

DELETE = _write_script(
    "delete",
    """
-- Deletes the history (its writers key stays, so a re-sent delete is recognised).
-- Replies {applied, 1 when the history existed}.
if applied then remember(applied) return {0, tonumber(applied)} end
local existed = 0
if length > 0 then existed = 1 end
local ok, reply = remember(tostring(existed))
if not ok then return refused(reply) end
redis.call('DEL', KEYS[1])
return {1, existed}
""",
)

EXPIRE = _write_script(
    "expire",
    """
-- ARGV[4] seconds from now, or 0 to remove the expiry (PERSIST).
-- Replies {applied, 1 when the expiry changed}.
if applied then remember(applied) return {0, tonumber(applied)} end
local changed = 0
if length > 0 then
  if ARGV[4] ~= '0' or redis.call('PTTL', KEYS[1]) >= 0 then changed = 1 end
end
local ok, reply = remember(tostring(changed))
if not ok then return refused(reply) end
if changed == 1 then
  if ARGV[4] == '0' then
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('EXPIRE', KEYS[1], ARGV[4])
  end
end
return {1, changed}
""",
)

# ---------------------------------------------------------------------------
# Companion keys


def writers_key(key: str) -> str:
    """The key remembering the recent writers of history ``key`` (see the scripts above).

    It starts with ``key`` (so an ACL on the prefix covers it) and hashes to the
    same Cluster slot, whatever the session id (see :mod:`redis_chat_history.slots`).
    """
    return writers_key_of(key)


# ---------------------------------------------------------------------------
# Reads


def read_plan(
    key: str, *, limit: int | None = None, skip_corrupt: bool = False
) -> Plan[list[BaseMessage]]:
    """The newest ``limit`` messages (all when None), oldest first: O(limit) on both sides.

    ``limit`` must be >= 1: LRANGE 0 -1 would read everything.
    """
    _check_key(key)
    stop = -1 if limit is None else check_int("limit", limit, minimum=1) - 1

    def parse(replies: list[Any]) -> list[BaseMessage]:
        return decode_newest_first(replies[0], key=key, skip_corrupt=skip_corrupt)

    return Plan((Command(("LRANGE", key, 0, stop)),), key, parse)


def count_plan(key: str) -> Plan[int]:
    """Number of stored messages (LLEN, O(1))."""
    return Plan((Command(("LLEN", _check_key(key))),), key, _single(int))


def _parse_ttl(replies: list[Any]) -> float | None:
    milliseconds = int(replies[1])
    if milliseconds < 0:  # -1 no expiry, -2 no key
        return None
    return milliseconds / 1000


def expires_in_plan(key: str) -> Plan[float | None]:
    """Seconds until the history expires; None when it never expires (or does not exist).

    LLEN first, so that a key of another type is refused (PTTL would answer for it).
    """
    _check_key(key)
    return Plan((Command(("LLEN", key)), Command(("PTTL", key))), key, _parse_ttl)


def pttl_plan(key: str) -> Plan[int]:
    """Milliseconds until ``key`` expires: -1 never, -2 no such key."""
    return Plan((Command(("PTTL", _check_key(key))),), key, _single(int))


def type_plan(key: str) -> Plan[str]:
    """The Redis type of ``key`` ('list', 'string', 'none', ...): names a wrong type in errors."""

    def parse(replies: list[Any]) -> str:
        kind = replies[0]
        return kind.decode() if isinstance(kind, bytes) else str(kind)

    return Plan((Command(("TYPE", _check_key(key))),), key, parse)


def oldest_window_plan(key: str, start: int, count: int) -> Plan[list[bytes]]:
    """Raw elements ``start .. start+count-1`` counted from the oldest, oldest first."""
    check_int("start", start, minimum=0)
    check_int("count", count, minimum=1)

    def parse(replies: list[Any]) -> list[bytes]:
        return list(reversed(replies[0]))

    return Plan((Command(("LRANGE", _check_key(key), -(start + count), -(start + 1))),), key, parse)


# ---------------------------------------------------------------------------
# Writes


def _parse_applied_int(replies: list[Any]) -> int:
    """The result of a write script's reply ``{applied, result}`` (the same for a re-send)."""
    return int(replies[0][1])


def _parse_applied_bool(replies: list[Any]) -> bool:
    return bool(replies[0][1])


def _parse_bool(replies: list[Any]) -> bool:
    return bool(replies[0])


def append_plan(
    key: str, encoded: Sequence[bytes], *, ttl: int | None, max_messages: int | None
) -> Plan[int]:
    """Push a batch (oldest first), refresh the expiry and trim, atomically; replies new length."""
    _check_key(key)
    _check_batch(encoded)
    ttl_arg = _check_optional("ttl", ttl, maximum=MAX_EXPIRE_SECONDS)
    keep = _check_optional("max_messages", max_messages, maximum=MAX_MESSAGES)
    command = Command.call(APPEND, [key, writers_key(key)], [WRITER, ttl_arg, keep, *encoded])

    def plain() -> Plan[int]:
        commands = [Command(("LPUSH", key, *encoded))]
        if keep:
            commands.append(Command(("LTRIM", key, 0, keep - 1)))
        if ttl_arg:
            commands.append(Command(("EXPIRE", key, ttl_arg)))

        def parse(replies: list[Any]) -> int:
            return min(int(replies[0]), keep) if keep else int(replies[0])

        return Plan(tuple(commands), key, parse, writes=True, idempotent=False)

    return Plan((command,), key, _parse_applied_int, writes=True, plain=plain)


def delete_last_plan(key: str, n: int, *, skip_corrupt: bool = False) -> Plan[list[BaseMessage]]:
    """Remove the newest ``n`` (>= 1) messages atomically; replies them oldest first.

    When the reply of an applied removal was lost and the re-send is recognised, the
    removal happened once but its messages cannot be returned: the result is empty.
    """
    _check_key(key)
    check_int("n", n, minimum=1, maximum=MAX_MESSAGES)

    def parse(replies: list[Any]) -> list[BaseMessage]:
        applied, removed = replies[0]
        if not applied:
            return []
        return decode_newest_first(removed, key=key, skip_corrupt=skip_corrupt)

    def plain() -> Plan[list[BaseMessage]]:
        def parse_plain(replies: list[Any]) -> list[BaseMessage]:
            return decode_newest_first(replies[0], key=key, skip_corrupt=skip_corrupt)

        commands = (Command(("LRANGE", key, 0, n - 1)), Command(("LTRIM", key, n, -1)))
        return Plan(commands, key, parse_plain, writes=True, idempotent=False)

    command = Command.call(DELETE_LAST, [key, writers_key(key)], [WRITER, n])
    return Plan((command,), key, parse, writes=True, plain=plain)


def replace_plan(key: str, encoded: Sequence[bytes], *, ttl: int | None) -> Plan[int]:
    """Replace the whole history atomically (readers see old or new, never a mix)."""
    _check_key(key)
    _check_batch(encoded, allow_empty=True)
    ttl_arg = _check_optional("ttl", ttl, maximum=MAX_EXPIRE_SECONDS)
    command = Command.call(REPLACE, [key, writers_key(key)], [WRITER, ttl_arg, *encoded])

    def plain() -> Plan[int]:
        commands = [Command(("DEL", key))]
        if encoded:
            commands.append(Command(("LPUSH", key, *encoded)))
            if ttl_arg:
                commands.append(Command(("EXPIRE", key, ttl_arg)))
        count = len(encoded)
        return Plan(tuple(commands), key, lambda _: count, writes=True, idempotent=False)

    return Plan((command,), key, _parse_applied_int, writes=True, plain=plain)


def _plain_single(key: str, *args: Any) -> Callable[[], Plan[bool]]:
    def plain() -> Plan[bool]:
        return Plan((Command(args),), key, _parse_bool, writes=True, idempotent=False)

    return plain


def delete_plan(key: str) -> Plan[bool]:
    """Delete the history; True when it existed (``clear`` and ``store.delete``)."""
    _check_key(key)
    command = Command.call(DELETE, [key, writers_key(key)], [WRITER])
    plain = _plain_single(key, "DEL", key)
    return Plan((command,), key, _parse_applied_bool, writes=True, plain=plain)


def expire_plan(key: str, seconds: int) -> Plan[bool]:
    """Expire the history ``seconds`` from now; False when it does not exist."""
    _check_key(key)
    check_int("seconds", seconds, minimum=1, maximum=MAX_EXPIRE_SECONDS)
    command = Command.call(EXPIRE, [key, writers_key(key)], [WRITER, seconds])
    plain = _plain_single(key, "EXPIRE", key, seconds)
    return Plan((command,), key, _parse_applied_bool, writes=True, plain=plain)


def persist_plan(key: str) -> Plan[bool]:
    """Remove the expiry; False when there was none or no history."""
    _check_key(key)
    command = Command.call(EXPIRE, [key, writers_key(key)], [WRITER, 0])
    plain = _plain_single(key, "PERSIST", key)
    return Plan((command,), key, _parse_applied_bool, writes=True, plain=plain)


# ---------------------------------------------------------------------------
# Listing and statistics (routed to a node, not a key: see execution.masters)


def scan_plan(cursor: int, pattern: str, *, count: int = 1000) -> Plan[tuple[int, list[bytes]]]:
    """One SCAN step over list keys matching ``pattern``: the next cursor and the keys."""
    check_int("cursor", cursor, minimum=0)
    check_int("count", count, minimum=1)

    def parse(replies: list[Any]) -> tuple[int, list[bytes]]:
        next_cursor, keys = replies[0]
        return int(next_cursor), list(keys)

    command = Command(("SCAN", cursor, "MATCH", pattern, "COUNT", count, "TYPE", "list"))
    return Plan((command,), pattern, parse)


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


def size_plan(key: str, *, memory: bool) -> Plan[tuple[int, int | None]]:
    """Messages of ``key`` and, with ``memory``, the bytes Redis uses for it (MEMORY USAGE)."""
    _check_key(key)
    commands = [Command(("LLEN", key))]
    if memory:
        commands.append(Command(("MEMORY", "USAGE", key, "SAMPLES", "0")))

    def parse(replies: list[Any]) -> tuple[int, int | None]:
        return int(replies[0]), (int(replies[1] or 0) if memory else None)

    return Plan(tuple(commands), key, parse)


# ---------------------------------------------------------------------------
# Transfer section (transfer.py: export, import, copy). Owned by the transfer work.
#
# An import or copy run assembles each session in a staging list of its own (a companion
# key with the run's id, so concurrent runs never share one), then one script makes it the
# history. Every step may be re-sent after a lost reply and is recognised when it is:
# a batch is pushed only onto a staging list of the length it expects (a re-send finds
# it longer by exactly the batch), and the commit leaves its outcome in place of the
# staging list for as long as a re-send can arrive. The commit never deletes a history
# because its staging list is missing. An export reads a snapshot: small sessions in one
# LRANGE, larger ones from a server-side COPY in the history's slot, read in windows.

#: A staging list of an import or copy expires an hour after its last batch.
STAGING_TTL_MS = 3_600_000
#: An export's snapshot of a session expires this long after its last window was read.
SNAPSHOT_TTL_MS = 600_000
#: The largest expiry an import sets, in ms: Redis refuses ``now + ms`` beyond 2**63 - 1
#: ("invalid expire time"); 2**62 ms (146 million years) leaves room for any clock.
MAX_EXPIRE_MS = 2**62

STAGE = Script(
    "stage",
    f"""
-- KEYS[1] a staging list; ARGV[1] its length before this batch, ARGV[2] its expiry (ms),
-- ARGV[3..] encoded messages, oldest first. Replies {{1 pushed | 0 re-send, length}}.
local n = redis.call('LLEN', KEYS[1])
local before = tonumber(ARGV[1])
local count = #ARGV - 2
if n == before + count then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {{0, n}}
end
if n ~= before then
  return redis.error_reply('RCHSTAGE staging list holds ' .. n .. ' messages, ' .. before ..
    ' expected (it expired, or was changed): the session is not written')
end
for at = 3, #ARGV, {_PUSH_CHUNK} do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, at, math.min(at + {_PUSH_CHUNK - 1}, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {{1, n + count}}
""",
)

COMMIT = Script(
    "commit",
    """
-- KEYS[1] staging list, KEYS[2] history; ARGV[1] '1' to overwrite a non-empty history,
-- ARGV[2] messages staged, ARGV[3] expiry in ms ('0' = none), ARGV[4] how long (ms) the
-- outcome stays recognisable. Replies 1 when written, 0 when the history was kept.
local staged = redis.call('TYPE', KEYS[1])['ok']
if staged == 'string' then
  return tonumber(redis.call('GET', KEYS[1]))  -- a re-send: the first copy's outcome
end
local existing = redis.call('LLEN', KEYS[2])  -- WRONGTYPE stops here, nothing changed
if staged ~= 'list' then
  return redis.error_reply('RCHSTAGE the staging list is gone (expired?): nothing written')
end
local n = redis.call('LLEN', KEYS[1])
if n ~= tonumber(ARGV[2]) then
  return redis.error_reply('RCHSTAGE staging list holds ' .. n .. ' messages, ' .. ARGV[2] ..
    ' expected: nothing written')
end
local outcome = 0
if ARGV[1] == '1' or existing == 0 then
  -- the expiry goes on the staging list first (RENAME keeps it): a refused value stops
  -- the script before anything changed
  if ARGV[3] == '0' then
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  end
  redis.call('RENAME', KEYS[1], KEYS[2])
  outcome = 1
else
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[1], outcome, 'PX', ARGV[4])
return outcome
""",
)

SNAPSHOT_READ = Script(
    "snapshot",
    """
-- KEYS[1] history, KEYS[2] snapshot key; ARGV[1] window, ARGV[2] snapshot expiry (ms).
-- Replies {length, PTTL, elements, copied}: every element (newest first) when the list
-- fits in a window or COPY is refused (Redis < 6.2, ACL); else copied = 1 and the oldest
-- window of the snapshot taken by COPY.
local n = redis.call('LLEN', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
local window = tonumber(ARGV[1])
if n <= window then return {n, pttl, redis.call('LRANGE', KEYS[1], 0, -1), 0} end
local copied = redis.pcall('COPY', KEYS[1], KEYS[2], 'REPLACE')
if type(copied) == 'table' and copied.err then
  return {n, pttl, redis.call('LRANGE', KEYS[1], 0, -1), 0}
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {n, pttl, redis.call('LRANGE', KEYS[2], n - window, n - 1), 1}
""",
)


def staging_key(key: str, run_id: str) -> str:
    """Where import or copy run ``run_id`` assembles history ``key`` (same slot)."""
    return companion_key(key, STAGING, run_id)


def snapshot_key(key: str, run_id: str) -> str:
    """Where export or copy run ``run_id`` keeps its snapshot of history ``key`` (same slot)."""
    return companion_key(key, SNAPSHOT, run_id)


def check_expire_ms(milliseconds: Any) -> int:
    """An expiry in ms that PEXPIRE accepts on every server: an int in ``[1, MAX_EXPIRE_MS]``."""
    return check_int("expiry (ms)", milliseconds, minimum=1, maximum=MAX_EXPIRE_MS)


def _parse_stage(replies: list[Any]) -> int:
    return int(replies[0][1])


def stage_plan(key: str, run_id: str, encoded: Sequence[bytes], *, before: int) -> Plan[int]:
    """Push a batch (oldest first) onto a staging list that holds ``before`` messages.

    Replies the staging list's new length. A re-send after a lost reply finds the list
    longer by exactly this batch and pushes nothing; a list of another length (expired,
    changed) is refused with an error, nothing pushed.
    """
    _check_key(key)
    _check_batch(encoded)
    check_int("before", before, minimum=0)
    command = Command.call(STAGE, [staging_key(key, run_id)], [before, STAGING_TTL_MS, *encoded])
    return Plan((command,), key, _parse_stage, writes=True)


def discard_stage_plan(key: str, run_id: str) -> Plan[int]:
    """Drop run ``run_id``'s staging list of history ``key`` (after a failed import)."""
    _check_key(key)
    return Plan((Command(("DEL", staging_key(key, run_id))),), key, _single(int), writes=True)


def commit_stage_plan(
    key: str,
    run_id: str,
    *,
    staged: int,
    overwrite: bool,
    expire_ms: int | None,
    remember_seconds: int,
) -> Plan[bool]:
    """Atomically make run ``run_id``'s staging list the history; False when one was kept.

    ``staged`` is the number of messages the staging list must hold, ``expire_ms`` the
    history's expiry (None: none). The outcome replaces the staging list for
    ``remember_seconds``, so a re-send replies the same and changes nothing; a staging
    list that is gone is an error, and the history is left as it is.
    """
    _check_key(key)
    check_int("staged", staged, minimum=1)
    expiry = "0" if expire_ms is None else str(check_expire_ms(expire_ms))
    remember_ms = check_int("remember_seconds", remember_seconds, minimum=1) * 1000
    command = Command.call(
        COMMIT,
        [staging_key(key, run_id), key],
        ["1" if overwrite else "0", staged, expiry, remember_ms],
    )
    return Plan((command,), key, _single(bool), writes=True)


@dataclass(frozen=True)
class Snapshot:
    """The state of a history at one moment, as :func:`snapshot_plan` found it.

    ``elements`` are raw, oldest first: all of them, or (``copied``) the oldest window
    of the snapshot key, whose next windows :func:`snapshot_window_plan` reads.
    """

    length: int
    #: Milliseconds before the history expires; 0 when it does not.
    expire_ms: int
    elements: list[bytes]
    copied: bool


def snapshot_plan(key: str, run_id: str, *, window: int) -> Plan[Snapshot]:
    """Take a consistent snapshot of history ``key``: one reply when it fits in ``window``.

    Larger histories are copied server-side (COPY, Redis >= 6.2) to run ``run_id``'s
    snapshot key, which expires :data:`SNAPSHOT_TTL_MS` after its last read; without
    COPY every element comes in the reply.
    """
    _check_key(key)
    check_int("window", window, minimum=1)

    def parse(replies: list[Any]) -> Snapshot:
        length, pttl, elements, copied = replies[0]
        return Snapshot(int(length), max(0, int(pttl)), elements[::-1], bool(copied))

    def plain() -> Plan[Snapshot]:
        def parse_plain(replies: list[Any]) -> Snapshot:
            pttl, elements = replies
            return Snapshot(len(elements), max(0, int(pttl)), elements[::-1], False)

        commands = (Command(("PTTL", key)), Command(("LRANGE", key, 0, -1)))
        return Plan(commands, key, parse_plain)

    command = Command.call(
        SNAPSHOT_READ, [key, snapshot_key(key, run_id)], [window, SNAPSHOT_TTL_MS]
    )
    # COPY REPLACE again on a re-send takes a newer, equally consistent snapshot.
    return Plan((command,), key, parse, writes=True, plain=plain)


def snapshot_window_plan(
    key: str, run_id: str, *, length: int, start: int, count: int
) -> Plan[list[bytes]]:
    """Raw elements ``start .. start+count-1`` (0 = oldest) of a snapshot of ``length``.

    Refreshes the snapshot's expiry; raises :class:`CommandError` when it expired.
    """
    _check_key(key)
    check_int("start", start, minimum=0, maximum=length - 1)
    check_int("count", count, minimum=1)
    snapshot = snapshot_key(key, run_id)
    last = min(length, start + count)

    def parse(replies: list[Any]) -> list[bytes]:
        alive, elements = replies
        if not alive or len(elements) != last - start:
            raise CommandError(
                f"the snapshot of {key!r} expired while it was read (more than "
                f"{SNAPSHOT_TTL_MS // 1000} s between two windows): nothing more is read"
            )
        return list(reversed(elements))

    commands = (
        Command(("PEXPIRE", snapshot, SNAPSHOT_TTL_MS)),
        Command(("LRANGE", snapshot, length - last, length - start - 1)),
    )
    return Plan(commands, key, parse, writes=True)


def drop_snapshot_plan(key: str, run_id: str) -> Plan[int]:
    """Delete run ``run_id``'s snapshot of history ``key``."""
    _check_key(key)
    return Plan((Command(("DEL", snapshot_key(key, run_id))),), key, _single(int), writes=True)


# ---------------------------------------------------------------------------
# Turn-aligned windows (agents section: get_messages(whole_turns=True), the agent middleware)
#
# The newest N messages, extended back so that the window starts at a human message:
# a tool result is never separated from the AI message that called it. A script reads
# the window and, while its oldest element is not a human message, older elements, in
# one round trip; it tells the type from the start of the JSON ('{"type":"human"' as
# this package writes it, '{"type": "human"' as the old class did). An element it cannot
# inspect (compressed with zlib, or not JSON) stops it: the client decodes that one and,
# when it is not a human message either, reads older elements itself.

#: Older elements read at a time while looking for the start of a turn.
TURN_CHUNK = 16

TURN_WINDOW = Script(
    "turn_window",
    """
-- KEYS[1] history; ARGV[1] how many of the newest elements (0 = all), ARGV[2] chunk.
-- Replies {status, elements newest first}: status 1 = the last element is a human
-- message; 2 = the list's oldest element is in the reply; 0 = the last element could
-- not be inspected here (compressed): the client decides.
local count, chunk = tonumber(ARGV[1]), tonumber(ARGV[2])
local elements = redis.call('LRANGE', KEYS[1], 0, count - 1)
if count == 0 or #elements < count then return {2, elements} end
local function status_of(element)
  local kind = string.match(element, '^%s*{%s*"type"%s*:%s*"([^"]*)"')
  if kind == nil then return 0 end
  if kind == 'human' or kind == 'HumanMessageChunk' then return 1 end
  return nil
end
local n = #elements
local status = status_of(elements[n])
while status == nil do
  local older = redis.call('LRANGE', KEYS[1], n, n + chunk - 1)
  for i = 1, #older do
    n = n + 1
    elements[n] = older[i]
    status = status_of(older[i])
    if status ~= nil then return {status, elements} end
  end
  if #older < chunk then return {2, elements} end
end
return {status, elements}
""",
)


@dataclass(frozen=True)
class TurnWindow:
    """One step of a turn-aligned read: the window, or ``more``, the plan to run next."""

    messages: list[BaseMessage]
    #: When not None the window is not complete: run this plan and look at its result.
    more: Plan[TurnWindow] | None = None


def from_first_turn(messages: list[BaseMessage]) -> list[BaseMessage]:
    """``messages`` (the oldest of a history) from its first human message on.

    What comes before it is the end of a turn whose start was trimmed away
    (``max_messages``); without any human message only leading tool results go.
    """
    for index, message in enumerate(messages):
        if isinstance(message, HumanMessage):
            return messages[index:]
    start = 0
    while start < len(messages) and isinstance(messages[start], ToolMessage):
        start += 1
    return messages[start:]


def _turn_step(
    key: str,
    messages: list[BaseMessage],
    *,
    complete: bool,
    at_start: bool,
    read: int,
    skip_corrupt: bool,
) -> TurnWindow:
    if complete or (messages and isinstance(messages[0], HumanMessage)):
        return TurnWindow(messages)
    if at_start:
        return TurnWindow(from_first_turn(messages))
    return TurnWindow(messages, _older_turn_plan(key, messages, read, skip_corrupt))


def _older_turn_plan(
    key: str, newer: list[BaseMessage], read: int, skip_corrupt: bool
) -> Plan[TurnWindow]:
    """Elements ``read ..`` (newest first), decoded here, until a human message is found."""

    def parse(replies: list[Any]) -> TurnWindow:
        elements = replies[0]
        older = decode_newest_first(elements, key=key, skip_corrupt=skip_corrupt)
        for index in range(len(older) - 1, -1, -1):
            if isinstance(older[index], HumanMessage):
                return TurnWindow(older[index:] + newer)
        return _turn_step(
            key,
            older + newer,
            complete=False,
            at_start=len(elements) < TURN_CHUNK,
            read=read + len(elements),
            skip_corrupt=skip_corrupt,
        )

    return Plan((Command(("LRANGE", key, read, read + TURN_CHUNK - 1)),), key, parse)


def turn_window_plan(
    key: str, *, limit: int | None = None, skip_corrupt: bool = False
) -> Plan[TurnWindow]:
    """The newest ``limit`` messages (all when None) extended back to a human message.

    One round trip unless the script meets an element it cannot inspect (compressed):
    then ``TurnWindow.more`` is the next plan to run. Messages come oldest first. A
    window that reaches the history's oldest message starts at its first human
    message (see :func:`from_first_turn`).

    Example::

        >>> plan = turn_window_plan("message_store:s1", limit=2)
        >>> plan.commands[0].args[2:]
        (1, 'message_store:s1', 2, 16)
    """
    _check_key(key)
    count = 0 if limit is None else check_int("limit", limit, minimum=1, maximum=MAX_MESSAGES)

    def parse(replies: list[Any]) -> TurnWindow:
        status, elements = replies[0]
        messages = decode_newest_first(elements, key=key, skip_corrupt=skip_corrupt)
        return _turn_step(
            key,
            messages,
            complete=int(status) == 1,
            at_start=int(status) == 2,
            read=len(elements),
            skip_corrupt=skip_corrupt,
        )

    def plain() -> Plan[TurnWindow]:
        # Users who may not run scripts read the window with LRANGE and extend it from here.
        def parse_plain(replies: list[Any]) -> TurnWindow:
            elements = replies[0]
            messages = decode_newest_first(elements, key=key, skip_corrupt=skip_corrupt)
            return _turn_step(
                key,
                messages,
                complete=False,
                at_start=count == 0 or len(elements) < count,
                read=len(elements),
                skip_corrupt=skip_corrupt,
            )

        return Plan((Command(("LRANGE", key, 0, count - 1)),), key, parse_plain)

    command = Command.call(TURN_WINDOW, [key], [count, TURN_CHUNK])
    return Plan((command,), key, parse, plain=plain)
