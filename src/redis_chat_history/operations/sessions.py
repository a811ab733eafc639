"""Deleting and expiring a session: its history list and, when it is a LangGraph thread, the
whole thread.

A session id may name a thread of :class:`~redis_chat_history.checkpoint.RedisCheckpointSaver`:
its history list is then the thread's conversation, and the thread keeps companion keys
in the list's Cluster slot (:mod:`redis_chat_history.slots`): a data hash, an index (a
sorted set) and archived segments (lists, named by ``g\\0<seg>`` fields of the hash and
members of the index; see ``checkpoint/lua.py``). Deleting or expiring the list alone
would leave checkpoints that need it (their next read raises ``BrokenCheckpointError``),
so ``clear()``, ``store.delete``, ``expire``, ``persist`` and the command line's ``rm``
and ``ttl`` change all of them in one script: after a delete the checkpointer sees a new,
empty thread, and an expiry ends every key of the thread together. Overwriting the
conversation (``replace_messages``, an import or copy with overwrite: messages.py and
transfer_plans.py include :data:`FIND_THREAD` and :data:`DROP_THREAD`) deletes the
companion keys in the script that replaces the list: the checkpointer adopts the new list
as a new thread's first checkpoint. A plain history (no thread) is changed as before. This module needs no LangGraph: the store and the command
line handle threads written by another process.

Permissions: the history's commands (README, "A minimal ACL user") and, only for a
thread, ``ZRANGEBYLEX``. A user who may not run scripts gets the plain twins, one command
on the list, the hash and the index (archived segments are then left to their TTL).

Example::

    >>> [key.startswith("message_store:t1") for key in thread_keys("message_store:t1")]
    [True, True, True]
"""

from __future__ import annotations

from typing import Any

from redis_chat_history.operations.plans import (
    MAX_EXPIRE_SECONDS,
    PUSH_CHUNK,
    Command,
    Plan,
    check_int,
    check_key,
)
from redis_chat_history.operations.scripts import (
    Write,
    parse_result_bool,
    plain_write,
    register,
    write_script,
)
from redis_chat_history.slots import CHECKPOINT_INDEX, CHECKPOINTS, companion_key


def thread_keys(key: str) -> list[str]:
    """The history list ``key``, then its thread's data hash and index (same slot).

    Archived segments are named inside the hash (their keys carry a run id).
    """
    return [key, companion_key(key, CHECKPOINTS), companion_key(key, CHECKPOINT_INDEX)]


#: The refusal when this user may not read a thread's index. Worded without "run": a
#: NOPERM naming a command to run would switch the url's writes to plain commands.
_INDEX_REFUSED = (
    "NOPERM this session is a LangGraph thread: its archived segments are listed with "
    "ZRANGEBYLEX on its index (the checkpointer ACL user has it); nothing was changed"
)

#: Reads (a script's ``decide``) shared by the scripts that change a session whole: with
#: Lua locals ``history``, ``data`` and ``index`` (:func:`thread_keys`), it sets ``length``
#: of the list, ``ttls`` (PTTL of the three), ``thread`` (its data or index exists),
#: ``archives`` (the archived segments' keys) and ``expiring`` (one of the keys has an
#: expiry). PTTL replies -2 for a missing key of any type and is in the history's ACL list
#: (EXISTS is not). It calls ``failed(x)`` and ``refused(x)`` (a write script's, inlined;
#: a plain :class:`~.plans.Script` defines them, see :data:`THREAD_HELPERS`). Used by
#: DELETE, EXPIRE, the history's REPLACE and the import's COMMIT.
FIND_THREAD = f"""
local length = redis.pcall('LLEN', history)
if failed(length) then return refused(length) end
local ttls = {{}}
for at, name in ipairs({{history, data, index}}) do
  local ttl = redis.pcall('PTTL', name)
  if failed(ttl) then return refused(ttl) end
  ttls[at] = ttl
end
local thread = ttls[2] ~= -2 or ttls[3] ~= -2
local expiring = ttls[1] >= 0 or ttls[2] >= 0 or ttls[3] >= 0
local archives = {{}}
if ttls[3] ~= -2 then
  local members = redis.pcall('ZRANGEBYLEX', index, '[g\\0', '[g\\0\\255')
  if failed(members) then
    local e = members.err
    if string.find(e, 'NOPERM', 1, true) or string.find(e, "can't run", 1, true) then
      return redis.error_reply('{_INDEX_REFUSED}')
    end
    return redis.error_reply(e)
  end
  for at = 1, #members, {PUSH_CHUNK} do
    local last = math.min(at + {PUSH_CHUNK - 1}, #members)
    local names = redis.pcall('HMGET', data, unpack(members, at, last))
    if failed(names) then return refused(names) end
    for _, name in ipairs(names) do
      if name then archives[#archives + 1] = name end
    end
  end
end
"""

#: Deletes the thread's companion keys found by :data:`FIND_THREAD` (not the list): the
#: checkpointer then adopts the list, whatever it holds, as a new thread's first checkpoint.
DROP_THREAD = """
for _, name in ipairs(archives) do redis.call('DEL', name) end
if thread then redis.call('DEL', data, index) end
"""

#: ``failed`` and ``refused`` for a plain script (no plain twin: an error is passed on as
#: it is, a refusal of ZRANGEBYLEX worded as :data:`FIND_THREAD` words it).
THREAD_HELPERS = """
local function failed(x) return type(x) == 'table' and x.err ~= nil end
local function refused(x) return redis.error_reply(x.err) end
"""

DELETE = write_script(
    "delete",
    keys=("history", "data", "index"),
    # Replies 1 when the history or its thread existed.
    decide=FIND_THREAD
    + """
local existed = length > 0 or thread
result, unchanged = existed and '1' or '0', not existed
""",
    apply="""
for _, name in ipairs(archives) do redis.call('DEL', name) end
redis.call('DEL', history, data, index)
return {1, 1}
""",
)

EXPIRE = write_script(
    "expire",
    keys=("history", "data", "index"),
    args=("seconds",),
    # seconds from now, or 0 to remove the expiry (PERSIST), of every key of the session.
    # Replies 1 when it changed.
    decide=FIND_THREAD
    + """
local changed = (length > 0 or thread) and (seconds ~= '0' or expiring)
result, unchanged = changed and '1' or '0', not changed
""",
    apply="""
for _, name in ipairs({history, data, index, unpack(archives)}) do
  if seconds == '0' then
    redis.call('PERSIST', name)
  else
    redis.call('EXPIRE', name, seconds)
  end
end
return {1, 1}
""",
)


def _plain(key: str, *args: Any) -> Plan[bool]:
    """One command on the list, the hash and the index (``args`` before the keys)."""
    command = Command((args[0], *thread_keys(key), *args[1:]))
    return plain_write(key, [command], lambda replies: bool(replies[0]))


def delete_plan(key: str) -> Plan[bool]:
    """Delete the history and, if it is a LangGraph thread, every key of the thread.

    True when something existed. Deleting what does not exist writes nothing (no
    companion key either).
    """
    keys = thread_keys(check_key(key))
    return DELETE.plan(key, keys, [], parse_result_bool, plain=lambda: _plain(key, "DEL"))


def _plain_expiry(key: str, command: str, *args: Any) -> Plan[bool]:
    commands = [Command((command, name, *args)) for name in thread_keys(key)]
    return plain_write(key, commands, lambda replies: bool(replies[0]))


def expire_plan(key: str, seconds: int) -> Plan[bool]:
    """Expire the history (and its thread's keys) ``seconds`` from now; False (nothing
    written) when it does not exist."""
    keys = thread_keys(check_key(key))
    check_int("seconds", seconds, minimum=1, maximum=MAX_EXPIRE_SECONDS)

    def plain() -> Plan[bool]:
        return _plain_expiry(key, "EXPIRE", seconds)

    return EXPIRE.plan(key, keys, [seconds], parse_result_bool, plain=plain)


def persist_plan(key: str) -> Plan[bool]:
    """Remove the expiry of the history (and its thread's keys); False (nothing written)
    when there was none or no history."""
    keys = thread_keys(check_key(key))
    plain = lambda: _plain_expiry(key, "PERSIST")  # noqa: E731
    return EXPIRE.plan(key, keys, [0], parse_result_bool, plain=plain)


def prepared_thread(key: str) -> list[tuple[Any, ...]]:
    """A checkpointed thread's three keys, expiring: a state every sample changes."""
    history, data, index = thread_keys(key)
    return [
        ("DEL", history, data, index),
        ("RPUSH", history, b"c", b"b", b"a"),
        ("HSET", data, "k\x00\x00id", b"record"),
        ("ZADD", index, 0, "c\x00\x00id"),
        ("EXPIRE", history, 600),
    ]


for _write in (
    Write("delete", DELETE, delete_plan, prepared_thread),
    Write("expire", EXPIRE, lambda key: expire_plan(key, 1000), prepared_thread),
    Write("persist", EXPIRE, persist_plan, prepared_thread),
):
    register(_write)
