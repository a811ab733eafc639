"""Upkeep of whole threads: prune, delete (also of runs), copy, and finding threads.

Lua scripts and their plans (the layout is in :mod:`.lua`). ``prune`` and
``delete_for_runs`` drop checkpoints, then the blobs and archived segments nothing
refers to any more; the history list (the conversation) stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis_chat_history.checkpoint.forms import SEP, _text
from redis_chat_history.checkpoint.lua import script
from redis_chat_history.checkpoint.steps import ThreadKeys, _pairs
from redis_chat_history.operations.plans import Command, Plan

_DROP = """
local function drop_member(member)
  local tail = split_member(member)
  redis.call('ZREM', KEYS[3], member)
  redis.call('HDEL', KEYS[2], 'w\\0' .. tail)
end
-- drops values no checkpoint refers to, archived segments nothing refers to, run index
-- entries and namespaces without checkpoints
local function collect()
  local used, segs, alive = {}, {}, {}
  local function refer(rows)
    local found = {}
    for _, row in ipairs(parse_rows(rows)) do row_needs(row[2], found) end
    for _, pair in ipairs(found) do segs[pair[1]] = true end
  end
  for _, member in ipairs(range('c\\0')) do
    local tail, record, writes = split_member(member)
    alive[tail] = true
    local ns = string.match(tail, '^([^%z]*)')
    local _, list = parse_record(record)
    for _, pair in ipairs(versions_of(list)) do
      local field = group_field(ns, pair[2])
      used[field] = used[field] or {}
      used[field][pair[2]] = true
    end
    refer(writes)
  end
  for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
    local kind = string.sub(name, 1, 2)
    if kind == 'v\\0' then
      local wanted, kept = used[name] or {}, {}
      local outer = parse_rows(redis.call('HGET', KEYS[2], name))
      for _, row in ipairs(outer) do
        if wanted[row[1]] then
          kept[#kept + 1] = row
          local found = {}
          for _, value in ipairs(parse_rows(row[2])) do needs(value[2], found) end
          for _, pair in ipairs(found) do segs[pair[1]] = true end
        end
      end
      if #kept == 0 then
        redis.call('HDEL', KEYS[2], name)
      elseif #kept < #outer then
        redis.call('HSET', KEYS[2], name, join_rows(kept))
      end
    elseif kind == 'w\\0' then
      refer(redis.call('HGET', KEYS[2], name))
    end
  end
  for _, member in ipairs(range('g\\0')) do
    if not segs[string.sub(member, 3)] then
      local key = redis.call('HGET', KEYS[2], member)
      if key then redis.call('DEL', key) end
      redis.call('HDEL', KEYS[2], member)
      redis.call('ZREM', KEYS[3], member)
    end
  end
  for _, member in ipairs(range('r\\0')) do
    local tail = string.match(member, '^r%z[^%z]*%z(.*)$')
    if not tail or not alive[tail] then redis.call('ZREM', KEYS[3], member) end
  end
  for _, member in ipairs(range('n\\0')) do
    local prefix = 'c\\0' .. string.sub(member, 3) .. '\\0'
    local any = redis.call('ZRANGEBYLEX', KEYS[3], '[' .. prefix, '[' .. prefix .. '\\255',
      'LIMIT', 0, 1)
    if #any == 0 then
      redis.call('ZREM', KEYS[3], member)
    end
  end
end
"""

#: Deletes checkpoints: ARGV 1 'latest' (all but the newest of each namespace) or 'runs'
#: (those of the run ids ARGV 2..), then unused blobs and segments. Replies the count.
PRUNE = script(
    "prune",
    _DROP
    + """
local dropped = 0
if ARGV[1] == 'latest' then
  for _, member in ipairs(range('n\\0')) do
    local ns = string.sub(member, 3)
    local prefix = 'c\\0' .. ns .. '\\0'
    local members = range(prefix)
    for at = 1, #members - 1 do
      drop_member(members[at])
      dropped = dropped + 1
    end
  end
else
  for at = 2, #ARGV do
    for _, member in ipairs(range('r\\0' .. ARGV[at] .. '\\0')) do
      local tail = string.match(member, '^r%z[^%z]*%z(.*)$')
      local found = tail and member_of(tail)
      if found then
        drop_member(found)
        dropped = dropped + 1
      end
    end
  end
end
if dropped > 0 then collect() end
return dropped
""",
)

#: Deletes the thread: its history list, data, index and archived segments. Replies 1
#: when there was something to delete.
DELETE = script(
    "delete",
    """
local keys = archives()
local existed = redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3])
for _, key in ipairs(keys) do redis.call('DEL', key) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if existed > 0 then return 1 end
return 0
""",
)

#: Everything a thread stores, for copying it: {hash as field/value pairs, index members,
#: history list (newest first), {seg, elements, ...}}.
DUMP = script(
    "dump",
    """
local segments = {}
for _, member in ipairs(range('g\\0')) do
  local key = redis.call('HGET', KEYS[2], member)
  segments[#segments + 1] = string.sub(member, 3)
  local elements = {}
  if key then elements = redis.call('LRANGE', key, 0, -1) end
  segments[#segments + 1] = elements
end
return {redis.call('HGETALL', KEYS[2]), redis.call('ZRANGE', KEYS[3], 0, -1),
  redis.call('LRANGE', KEYS[1], 0, -1), segments}
""",
)

#: Writes a copied thread into an empty one. KEYS[4..] archive keys; ARGV 1 ttl, 2 hash
#: pair count, 3 member count, 4 history length, 5 archive count, then the hash pairs,
#: members, history (oldest first), and per archive its length and elements (oldest
#: first). Replies 1, or 0 when the target already holds a thread or a history.
RESTORE = script(
    "restore",
    """
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) > 0 then return 0 end
local at = 6
local pairs_end = at + 2 * tonumber(ARGV[2])
for i = at, pairs_end - 1, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
at = pairs_end
local members_end = at + tonumber(ARGV[3])
for i = at, members_end - 1 do redis.call('ZADD', KEYS[3], 0, ARGV[i]) end
at = members_end
local history_end = at + tonumber(ARGV[4])
if history_end > at then push(KEYS[1], at, history_end - 1) end
at = history_end
for k = 1, tonumber(ARGV[5]) do
  local count = tonumber(ARGV[at])
  if count > 0 then push(KEYS[3 + k], at + 1, at + count) end
  at = at + 1 + count
end
expire_all(tonumber(ARGV[1]))
return 1
""",
)


def prune_plan(keys: ThreadKeys, mode: str, run_ids: Sequence[str] = ()) -> Plan[int]:
    """Delete all but the latest checkpoint per namespace ('latest'), or a run's ('runs')."""
    command = Command.call(PRUNE, keys.base, [mode, *run_ids])
    return Plan((command,), keys.history, lambda replies: int(replies[0]), writes=True)


def delete_plan(keys: ThreadKeys) -> Plan[bool]:
    command = Command.call(DELETE, keys.base, [])
    return Plan((command,), keys.history, lambda replies: bool(replies[0]), writes=True)


@dataclass(frozen=True)
class Dump:
    """Everything one thread stores (for copy_thread)."""

    fields: list[tuple[bytes, bytes]]
    members: list[bytes]
    history: list[bytes]
    archives: list[tuple[str, list[bytes]]]


def dump_plan(keys: ThreadKeys) -> Plan[Dump]:
    def parse(replies: list[Any]) -> Dump:
        fields, members, history, archives = replies[0]
        return Dump(
            _pairs(fields),
            list(members),
            list(history),
            [(_text(seg), list(elements)) for seg, elements in _pairs(archives)],
        )

    return Plan((Command.call(DUMP, keys.base, []),), keys.history, parse)


def restore_plan(keys: ThreadKeys, dump: Dump, *, ttl: int) -> Plan[bool]:
    """Write ``dump`` into an empty thread; False when it already holds something."""
    archive_keys = [keys.archive(seg) for seg, _ in dump.archives]
    renamed = {
        f"g{SEP}{seg}".encode(): key.encode()
        for (seg, _), key in zip(dump.archives, archive_keys, strict=True)
    }
    args: list[Any] = [ttl, len(dump.fields), len(dump.members), len(dump.history)]
    args.append(len(dump.archives))
    for name, value in dump.fields:
        args += (name, renamed.get(name, value))
    args += dump.members
    args += reversed(dump.history)
    for _, elements in dump.archives:
        args.append(len(elements))
        args += reversed(elements)
    command = Command.call(RESTORE, [*keys.base, *archive_keys], args)
    return Plan((command,), keys.history, lambda replies: bool(replies[0]), writes=True)


def scan_index_plan(cursor: int, pattern: str) -> Plan[tuple[int, list[bytes]]]:
    """One SCAN step over checkpoint index keys (sorted sets) matching ``pattern``."""

    def parse(replies: list[Any]) -> tuple[int, list[bytes]]:
        next_cursor, found = replies[0]
        return int(next_cursor), list(found)

    command = Command(("SCAN", cursor, "MATCH", pattern, "COUNT", 1000, "TYPE", "zset"))
    return Plan((command,), pattern, parse)
