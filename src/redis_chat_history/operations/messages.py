"""The plans of one history: reads, its writes (scripts with writer tokens), listing.

Writes that change a history are Lua scripts built by :mod:`.scripts` (so a multi-step
change is atomic and a re-send after a lost reply is recognised, not applied twice); each
is declared with its plain twin, the commands the old langchain_community class used
(LPUSH, EXPIRE, ...), sent when the server refuses scripts to this user and never re-sent.
Every write is listed in :data:`~redis_chat_history.operations.scripts.WRITES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from redis_chat_history.codec import decode_newest_first
from redis_chat_history.operations.plans import (
    MAX_EXPIRE_SECONDS,
    MAX_MESSAGES,
    PUSH_CHUNK,
    Command,
    Plan,
    check_batch,
    check_int,
    check_key,
    check_optional,
    single_reply,
)
from redis_chat_history.operations.scripts import (
    Write,
    parse_result_int,
    plain_write,
    register,
    write_script,
)
from redis_chat_history.operations.sessions import (
    DROP_THREAD,
    FIND_THREAD,
    prepared_thread,
    thread_keys,
)
from redis_chat_history.slots import writers_key_of

# ---------------------------------------------------------------------------
# Write scripts (KEYS and ARGV are named by the builder). A history is a list: its first
# read is LLEN (or LPUSH's own reply), so a key of another type is refused unchanged.

_PUSH = f"""
local function push(key, first)
  for at = first, #ARGV, {PUSH_CHUNK} do
    redis.call('LPUSH', key, unpack(ARGV, at, math.min(at + {PUSH_CHUNK - 1}, #ARGV)))
  end
end
"""

APPEND = write_script(
    "append",
    keys=("history",),
    args=("ttl", "keep"),
    rest="messages",
    # ttl seconds (0 = leave as is), keep newest N (0 = all), messages oldest first.
    # Replies the new length, bare (a table reply costs Redis ~0.5 µs more); a re-send
    # {0, the length now}.
    decide="",
    apply=f"""
local length
if #ARGV - messages < {PUSH_CHUNK} then
  length = redis.pcall('LPUSH', history, unpack(ARGV, messages))
  if failed(length) then undo() return refused(length) end
else
  length = redis.pcall('LPUSH', history, unpack(ARGV, messages, messages + {PUSH_CHUNK - 1}))
  if failed(length) then undo() return refused(length) end
  for at = messages + {PUSH_CHUNK}, #ARGV, {PUSH_CHUNK} do
    length = redis.call('LPUSH', history, unpack(ARGV, at, math.min(at + {PUSH_CHUNK - 1}, #ARGV)))
  end
end
if keep ~= '0' then
  keep = tonumber(keep)
  if length > keep then
    redis.call('LTRIM', history, 0, keep - 1)
    length = keep
  end
end
if ttl ~= '0' then redis.call('EXPIRE', history, ttl) end
return length
""",
    on_resend="redis.call('LLEN', history)",
)

DELETE_LAST = write_script(
    "delete_last",
    keys=("history",),
    args=("count",),
    # Removes the newest ``count``; replies them (a re-send: how many, the elements went
    # with the lost reply).
    decide="""
local length = redis.pcall('LLEN', history)
if failed(length) then return refused(length) end
local n = math.min(tonumber(count), length)
result, unchanged = tostring(n), n == 0
""",
    apply="""
local removed = redis.call('LRANGE', history, 0, n - 1)
redis.call('LTRIM', history, n, -1)
return {1, removed}
""",
)

REPLACE = write_script(
    "replace",
    keys=("history", "data", "index"),
    args=("ttl",),
    rest="messages",
    # ttl seconds (0 = keep the current expiry), messages oldest first. Readers see the old
    # or the new list. Replies the new length. When the session is a LangGraph thread, its
    # companion keys go too (sessions.py): the checkpointer adopts the new conversation as
    # a new thread's first checkpoint, so no older checkpoint reads what was not its own.
    decide=FIND_THREAD
    + """
local count = #ARGV - messages + 1
result, unchanged = tostring(count), count == 0 and length == 0 and not thread
""",
    apply=_PUSH
    + DROP_THREAD
    + """
local remaining = ttls[1]
redis.call('DEL', history)
push(history, messages)
if count > 0 then
  if ttl ~= '0' then
    redis.call('EXPIRE', history, ttl)
  elseif remaining > 0 then
    redis.call('PEXPIRE', history, remaining)
  end
end
return {1, count}
""",
)

# ---------------------------------------------------------------------------
# Companion keys


def writers_key(key: str) -> str:
    """The hash remembering the recent writers of history ``key`` (see :mod:`.scripts`).

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


def type_plan(key: str) -> Plan[str]:
    """The Redis type of ``key`` ('list', 'string', 'none', ...): names a wrong type in errors."""

    def parse(replies: list[Any]) -> str:
        kind = replies[0]
        return kind.decode() if isinstance(kind, bytes) else str(kind)

    return Plan((Command(("TYPE", check_key(key))),), key, parse)


# ---------------------------------------------------------------------------
# Writes: each plan next to its plain twin


def append_plan(
    key: str, encoded: Sequence[bytes], *, ttl: int | None, max_messages: int | None
) -> Plan[int]:
    """Push a batch (oldest first), refresh the expiry and trim, atomically; replies new length."""
    check_key(key)
    if type(encoded) is not list or not encoded:  # what the codec returns needs no more check
        check_batch(encoded)
    ttl_arg = check_optional("ttl", ttl, maximum=MAX_EXPIRE_SECONDS)
    keep = check_optional("max_messages", max_messages, maximum=MAX_MESSAGES)

    def plain() -> Plan[int]:
        commands = [Command(("LPUSH", key, *encoded))]
        if keep:
            commands.append(Command(("LTRIM", key, 0, keep - 1)))
        if ttl_arg:
            commands.append(Command(("EXPIRE", key, ttl_arg)))

        def parse(replies: list[Any]) -> int:
            return min(int(replies[0]), keep) if keep else int(replies[0])

        return plain_write(key, commands, parse)

    return APPEND.plan_for(key, (ttl_arg, keep), encoded, parse_result_int, plain=plain)


def delete_last_plan(key: str, n: int, *, skip_corrupt: bool = False) -> Plan[list[BaseMessage]]:
    """Remove the newest ``n`` (>= 1) messages atomically; replies them oldest first.

    When the reply of an applied removal was lost and the re-send is recognised, the
    removal happened once but its messages cannot be returned: the result is empty.
    """
    check_key(key)
    check_int("n", n, minimum=1, maximum=MAX_MESSAGES)

    def parse(replies: list[Any]) -> list[BaseMessage]:
        applied, removed = replies[0]
        if applied != 1:
            return []
        return decode_newest_first(removed, key=key, skip_corrupt=skip_corrupt)

    def plain() -> Plan[list[BaseMessage]]:
        def parse_plain(replies: list[Any]) -> list[BaseMessage]:
            return decode_newest_first(replies[0], key=key, skip_corrupt=skip_corrupt)

        commands = (Command(("LRANGE", key, 0, n - 1)), Command(("LTRIM", key, n, -1)))
        return plain_write(key, commands, parse_plain)

    return DELETE_LAST.plan(key, [key], [n], parse, plain=plain)


def replace_plan(key: str, encoded: Sequence[bytes], *, ttl: int | None) -> Plan[int]:
    """Replace the whole history atomically (readers see old or new, never a mix).

    When the session is a LangGraph thread, its checkpoints are deleted with the old list
    (the checkpointer then starts a new thread from the new conversation). The plain twin
    deletes the list, the thread's hash and index (archived segments are left to expire).
    """
    keys = thread_keys(check_key(key))
    check_batch(encoded, allow_empty=True)
    ttl_arg = check_optional("ttl", ttl, maximum=MAX_EXPIRE_SECONDS)

    def plain() -> Plan[int]:
        commands = [Command(("DEL", *keys))]
        if encoded:
            commands.append(Command(("LPUSH", key, *encoded)))
            if ttl_arg:
                commands.append(Command(("EXPIRE", key, ttl_arg)))
        count = len(encoded)
        return plain_write(key, commands, lambda _: count)

    return REPLACE.plan(key, keys, [ttl_arg, *encoded], parse_result_int, plain=plain)


def _prepared(key: str) -> list[tuple[Any, ...]]:
    """Three messages with an expiry: a state every sample below changes."""
    return [("DEL", key), ("RPUSH", key, b"c", b"b", b"a"), ("EXPIRE", key, 600)]


_SAMPLE = [b'{"type":"human","data":{"content":"once"}}']
for _write in (
    Write("append", APPEND, lambda key: append_plan(key, _SAMPLE, ttl=60, max_messages=None)),
    Write("delete_last", DELETE_LAST, lambda key: delete_last_plan(key, 1), _prepared),
    Write("replace", REPLACE, lambda key: replace_plan(key, _SAMPLE, ttl=None), _prepared),
    Write(
        "replace_thread",
        REPLACE,
        lambda key: replace_plan(key, _SAMPLE, ttl=None),
        prepared_thread,
    ),
):
    register(_write)


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
