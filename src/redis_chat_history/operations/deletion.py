"""Deleting a session: its history list and, when it is a LangGraph thread, the whole thread.

A session id may name a thread of :class:`~redis_chat_history.checkpoint.RedisCheckpointSaver`:
its history list is then the thread's conversation, and the thread keeps companion keys
in the list's Cluster slot (:mod:`redis_chat_history.slots`): a data hash, an index (a
sorted set) and archived segments (lists, named by ``g\\0<seg>`` fields of the hash and
members of the index; see ``checkpoint/lua.py``). Deleting the list alone would leave
checkpoints that need it (the next read raises ``BrokenCheckpointError``), so ``clear()``,
``store.delete`` and ``redis-chat-history rm`` delete all of them in one script: the
checkpointer then sees a new, empty thread. A plain history (no thread) is deleted as
before. This module needs no LangGraph: the store and the command line delete threads
written by another process.

Permissions: the history's commands (README, "A minimal ACL user") and, only for a
thread, ``ZRANGEBYLEX``. A user who may not run scripts gets the plain twin, one ``DEL``
of the list, the hash and the index (archived segments are then left to their TTL).

Example::

    >>> [key.startswith("message_store:t1") for key in thread_keys("message_store:t1")]
    [True, True, True]
"""

from __future__ import annotations

from redis_chat_history.operations.plans import PUSH_CHUNK, Command, Plan, check_key
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


#: The refusal a thread's delete replies when this user may not read its index. Worded
#: without "run": a NOPERM naming a command to run would switch the url's writes plain.
_INDEX_REFUSED = (
    "NOPERM this session is a LangGraph thread: deleting its archived segments needs "
    "ZRANGEBYLEX on its index (the checkpointer ACL user has it); nothing was deleted"
)

DELETE = write_script(
    "delete",
    keys=("history", "data", "index"),
    # Replies 1 when the history or its thread existed. PTTL replies -2 for a missing key
    # (any type, and a command of the history's ACL list, unlike EXISTS).
    decide=f"""
local length = redis.pcall('LLEN', history)
if failed(length) then return refused(length) end
local probe = redis.pcall('PTTL', index)
if failed(probe) then return refused(probe) end
local thread = probe ~= -2
local archives = {{}}
if thread then
  local members = redis.pcall('ZRANGEBYLEX', index, '[g\\0', '[g\\0\\255')
  if failed(members) then
    local e = members.err
    if string.find(e, 'NOPERM', 1, true) or string.find(e, "can't run", 1, true) then
      return redis.error_reply('{_INDEX_REFUSED}')
    end
    return redis.error_reply(e)
  end
  for at = 1, #members, {PUSH_CHUNK} do
    local names = redis.pcall('HMGET', data, unpack(members, at, math.min(at + {PUSH_CHUNK - 1}, #members)))
    if failed(names) then return refused(names) end
    for _, name in ipairs(names) do
      if name then archives[#archives + 1] = name end
    end
  end
else
  probe = redis.pcall('PTTL', data)
  if failed(probe) then return refused(probe) end
  thread = probe ~= -2
end
local existed = length > 0 or thread
result, unchanged = existed and '1' or '0', not existed
""",
    apply="""
for _, name in ipairs(archives) do redis.call('DEL', name) end
redis.call('DEL', history, data, index)
return {1, 1}
""",
)


def delete_plan(key: str) -> Plan[bool]:
    """Delete the history and, if it is a LangGraph thread, every key of the thread.

    True when something existed. Deleting what does not exist writes nothing (no
    companion key either).
    """
    keys = thread_keys(check_key(key))

    def plain() -> Plan[bool]:
        return plain_write(key, [Command(("DEL", *keys))], lambda replies: bool(replies[0]))

    return DELETE.plan(key, keys, [], parse_result_bool, plain=plain)


def _prepared(key: str) -> list[tuple[object, ...]]:
    """A checkpointed thread's three keys: a state the sample deletes."""
    history, data, index = thread_keys(key)
    return [
        ("DEL", history, data, index),
        ("RPUSH", history, b"c", b"b", b"a"),
        ("HSET", data, "k\x00\x00id", b"record"),
        ("ZADD", index, 0, "c\x00\x00id"),
    ]


register(Write("delete", DELETE, delete_plan, _prepared))
