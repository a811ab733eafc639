"""The plans of one history: reads, the write scripts with their writer tokens, listing.

Writes that change a history are Lua scripts, so a multi-step change is atomic, and
each carries a *writer token* (:data:`~redis_chat_history.operations.plans.WRITER`,
filled in by execution): the server remembers the newest token of each writer of a
history for as long as a re-send of it can arrive, so a write whose reply was lost and
that is sent again is recognised and not applied twice. Each write also has a *plain*
twin made of the commands the old langchain_community class used (LPUSH, EXPIRE, ...),
sent when the server refuses scripts to this user; plain writes are never re-sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from redis_chat_history.codec import decode_newest_first
from redis_chat_history.operations.plans import (
    MAX_EXPIRE_SECONDS,
    MAX_MESSAGES,
    PUSH_CHUNK,
    WRITER,
    Command,
    Plan,
    Script,
    check_batch,
    check_int,
    check_key,
    check_optional,
    single_reply,
)
from redis_chat_history.slots import (
    writers_key_of,
)

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
    prelude = _PRELUDE.replace("__CHUNK__", str(PUSH_CHUNK)).replace(
        "__LAST__", str(PUSH_CHUNK - 1)
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
    check_key(key)
    stop = -1 if limit is None else check_int("limit", limit, minimum=1) - 1

    def parse(replies: list[Any]) -> list[BaseMessage]:
        return decode_newest_first(replies[0], key=key, skip_corrupt=skip_corrupt)

    return Plan((Command(("LRANGE", key, 0, stop)),), key, parse)


def count_plan(key: str) -> Plan[int]:
    """Number of stored messages (LLEN, O(1))."""
    return Plan((Command(("LLEN", check_key(key))),), key, single_reply(int))


def _parse_ttl(replies: list[Any]) -> float | None:
    milliseconds = int(replies[1])
    if milliseconds < 0:  # -1 no expiry, -2 no key
        return None
    return milliseconds / 1000


def expires_in_plan(key: str) -> Plan[float | None]:
    """Seconds until the history expires; None when it never expires (or does not exist).

    LLEN first, so that a key of another type is refused (PTTL would answer for it).
    """
    check_key(key)
    return Plan((Command(("LLEN", key)), Command(("PTTL", key))), key, _parse_ttl)


def pttl_plan(key: str) -> Plan[int]:
    """Milliseconds until ``key`` expires: -1 never, -2 no such key."""
    return Plan((Command(("PTTL", check_key(key))),), key, single_reply(int))


def type_plan(key: str) -> Plan[str]:
    """The Redis type of ``key`` ('list', 'string', 'none', ...): names a wrong type in errors."""

    def parse(replies: list[Any]) -> str:
        kind = replies[0]
        return kind.decode() if isinstance(kind, bytes) else str(kind)

    return Plan((Command(("TYPE", check_key(key))),), key, parse)


def oldest_window_plan(key: str, start: int, count: int) -> Plan[list[bytes]]:
    """Raw elements ``start .. start+count-1`` counted from the oldest, oldest first."""
    check_int("start", start, minimum=0)
    check_int("count", count, minimum=1)

    def parse(replies: list[Any]) -> list[bytes]:
        return list(reversed(replies[0]))

    return Plan((Command(("LRANGE", check_key(key), -(start + count), -(start + 1))),), key, parse)


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
    check_key(key)
    check_batch(encoded)
    ttl_arg = check_optional("ttl", ttl, maximum=MAX_EXPIRE_SECONDS)
    keep = check_optional("max_messages", max_messages, maximum=MAX_MESSAGES)
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
    check_key(key)
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
    check_key(key)
    check_batch(encoded, allow_empty=True)
    ttl_arg = check_optional("ttl", ttl, maximum=MAX_EXPIRE_SECONDS)
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
    check_key(key)
    command = Command.call(DELETE, [key, writers_key(key)], [WRITER])
    plain = _plain_single(key, "DEL", key)
    return Plan((command,), key, _parse_applied_bool, writes=True, plain=plain)


def expire_plan(key: str, seconds: int) -> Plan[bool]:
    """Expire the history ``seconds`` from now; False when it does not exist."""
    check_key(key)
    check_int("seconds", seconds, minimum=1, maximum=MAX_EXPIRE_SECONDS)
    command = Command.call(EXPIRE, [key, writers_key(key)], [WRITER, seconds])
    plain = _plain_single(key, "EXPIRE", key, seconds)
    return Plan((command,), key, _parse_applied_bool, writes=True, plain=plain)


def persist_plan(key: str) -> Plan[bool]:
    """Remove the expiry; False when there was none or no history."""
    check_key(key)
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


def size_plan(key: str, *, memory: bool) -> Plan[tuple[int, int | None]]:
    """Messages of ``key`` and, with ``memory``, the bytes Redis uses for it (MEMORY USAGE)."""
    check_key(key)
    commands = [Command(("LLEN", key))]
    if memory:
        commands.append(Command(("MEMORY", "USAGE", key, "SAMPLES", "0")))

    def parse(replies: list[Any]) -> tuple[int, int | None]:
        return int(replies[0]), (int(replies[1] or 0) if memory else None)

    return Plan(tuple(commands), key, parse)
