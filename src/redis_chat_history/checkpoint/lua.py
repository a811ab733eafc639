"""The checkpointer's Lua scripts: every change to a thread is one script, so it is atomic.

Every script takes ``KEYS[1]`` the thread's history list (its *main segment*),
``KEYS[2]`` its data hash and ``KEYS[3]`` its index (a sorted set, all scores 0, read
by lexical ranges); all are in one Cluster slot (:mod:`redis_chat_history.slots`).
The layout (fields and members; ``\\0`` separates their parts)::

    hash  main                       id of the segment the history list holds
          g\\0<seg>                   key of an archived segment (a list)
          c|m|p|v\\0<ns>\\0<id>        checkpoint, metadata, parent id, blob fields
          b\\0<ns>\\0<channel>\\0<ver>  a channel value (``type\\0bytes``), or a
                                      reference ``rch-ref\\0<seg>:<n>``: the oldest n
                                      messages of segment seg
          w\\0<ns>\\0<id>\\0<task>\\0<idx> a pending write ``channel\\0path\\0type\\0bytes``
    index c\\0<ns>\\0<id>, w\\0..., b\\0..., g\\0<seg>, n\\0<ns>, r\\0<run id>\\0<ns>\\0<id>

Scripts read archived segments by the key names stored in the hash: they are in the
thread's slot (Lua cannot compute the CRC tails that put them there).
"""

from __future__ import annotations

from redis_chat_history.operations.plans import PUSH_CHUNK, Script

_COMMON = """
local MAIN0 = '0000000000000000'
local REF = 'rch-ref\\0'
local function main_seg() return redis.call('HGET', KEYS[2], 'main') or MAIN0 end
local function range(prefix)
  return redis.call('ZRANGEBYLEX', KEYS[3], '[' .. prefix, '[' .. prefix .. '\\255')
end
local function split(text)
  local parts = {}
  for part in string.gmatch(text, '([^%z]*)%z') do parts[#parts + 1] = part end
  return parts
end
local function archives()
  local keys = {}
  for _, member in ipairs(range('g\\0')) do
    local key = redis.call('HGET', KEYS[2], member)
    if key then keys[#keys + 1] = key end
  end
  return keys
end
local function expire_all(ttl)
  if ttl <= 0 then return end
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  for _, key in ipairs(archives()) do redis.call('EXPIRE', key, ttl) end
end
-- the list holding segment seg, or nil when it is gone
local function segment_key(seg)
  if seg == main_seg() then return KEYS[1] end
  local key = redis.call('HGET', KEYS[2], 'g\\0' .. seg)
  if key then return key end
  return nil
end
local function parse_ref(value)
  local seg, n = string.match(string.sub(value, #REF + 1), '^(%x+):(%d+)$')
  return seg, tonumber(n)
end
local function push(key, first, last)
  for at = first, last, __CHUNK__ do
    redis.call('LPUSH', key, unpack(ARGV, at, math.min(at + __LAST__, last)))
  end
end
"""


def _script(name: str, body: str) -> Script:
    common = _COMMON.replace("__CHUNK__", str(PUSH_CHUNK)).replace("__LAST__", str(PUSH_CHUNK - 1))
    return Script(f"checkpoint_{name}", common + body)


#: Stores one checkpoint; a checkpoint id already stored is a re-send: nothing changes.
#: Replies {1, main seg, main length} | {0} re-send | {2, main seg, length} stale view.
PUT = _script(
    "put",
    """
-- ARGV: 1 ns, 2 id, 3 parent, 4 checkpoint, 5 metadata, 6 blob fields (v-list), 7 run id,
-- 8 ttl, 9 messages mode ('' none, k keep, a append, r replace), 10 expected main seg,
-- 11 expected main length, 12 new seg id, 13 messages blob field, 14 blob pairs count,
-- 15.. blob field/value pairs, then messages oldest first (KEYS[4] archive key on 'r')
local ns, id = ARGV[1], ARGV[2]
local tail = ns .. '\\0' .. id
if redis.call('HEXISTS', KEYS[2], 'c\\0' .. tail) == 1 then return {0} end
local mode = ARGV[9]
local seg = main_seg()
if mode ~= '' then
  local length = redis.call('LLEN', KEYS[1])
  if seg ~= ARGV[10] or length ~= tonumber(ARGV[11]) then return {2, seg, length} end
end
local pairs_at = 15
local first = pairs_at + 2 * tonumber(ARGV[14])
if mode == 'r' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('RENAME', KEYS[1], KEYS[4])
    redis.call('HSET', KEYS[2], 'g\\0' .. seg, KEYS[4])
    redis.call('ZADD', KEYS[3], 0, 'g\\0' .. seg)
  end
  seg = ARGV[12]
  redis.call('HSET', KEYS[2], 'main', seg)
end
if (mode == 'a' or mode == 'r') and first <= #ARGV then push(KEYS[1], first, #ARGV) end
for at = pairs_at, first - 1, 2 do
  redis.call('HSET', KEYS[2], ARGV[at], ARGV[at + 1])
  redis.call('ZADD', KEYS[3], 0, ARGV[at])
end
local length = redis.call('LLEN', KEYS[1])
if ARGV[13] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[13], REF .. seg .. ':' .. length)
  redis.call('ZADD', KEYS[3], 0, ARGV[13])
end
redis.call('HSET', KEYS[2], 'c\\0' .. tail, ARGV[4], 'm\\0' .. tail, ARGV[5],
  'p\\0' .. tail, ARGV[3], 'v\\0' .. tail, ARGV[6])
redis.call('ZADD', KEYS[3], 0, 'c\\0' .. tail, 0, 'n\\0' .. ns)
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[3], 0, 'r\\0' .. ARGV[7] .. '\\0' .. tail) end
expire_all(tonumber(ARGV[8]))
return {1, seg, length}
""",
)

#: Stores the writes of one task; (task, idx) already stored is kept (special writes,
#: negative idx, are replaced), so a re-send changes nothing. Replies the count.
PUT_WRITES = _script(
    "put_writes",
    """
-- ARGV: 1 ns, 2 checkpoint id, 3 ttl, then triples: field suffix, replace flag, value
local prefix = 'w\\0' .. ARGV[1] .. '\\0' .. ARGV[2] .. '\\0'
for at = 4, #ARGV, 3 do
  local field = prefix .. ARGV[at]
  if ARGV[at + 1] == '1' then
    redis.call('HSET', KEYS[2], field, ARGV[at + 2])
  else
    redis.call('HSETNX', KEYS[2], field, ARGV[at + 2])
  end
  redis.call('ZADD', KEYS[3], 0, field)
end
expire_all(tonumber(ARGV[3]))
return (#ARGV - 3) / 3
""",
)

# Reading: the records of checkpoints with their blobs, writes and the message segments
# they reference (each segment read once, as far as the longest reference needs).
_READ_RECORDS = """
local function read_records(ns, ids, with_writes, only)
  local records, longest = {}, {}
  for _, id in ipairs(ids) do
    local tail = ns .. '\\0' .. id
    local row = redis.call('HMGET', KEYS[2], 'c\\0' .. tail, 'm\\0' .. tail, 'p\\0' .. tail,
      'v\\0' .. tail)
    if not row[1] then
      if redis.call('ZSCORE', KEYS[3], 'c\\0' .. tail) then
        return nil, 'checkpoint ' .. id .. ' is indexed but its record is gone'
      end
    else
      local blobs = {}
      local fields = split(row[4])
      for at = 1, #fields, 2 do
        local value = nil
        if not only or only[fields[at]] then
          value = redis.call('HGET', KEYS[2], 'b\\0' .. ns .. '\\0' .. fields[at] ..
            '\\0' .. fields[at + 1])
        end
        if value then
          blobs[#blobs + 1] = fields[at]
          blobs[#blobs + 1] = value
          if string.sub(value, 1, #REF) == REF then
            local seg, n = parse_ref(value)
            if seg and n > (longest[seg] or 0) then longest[seg] = n end
          end
        end
      end
      local writes = {}
      if with_writes then
        local members = range('w\\0' .. tail .. '\\0')
        if #members > 0 then
          local values = redis.call('HMGET', KEYS[2], unpack(members))
          for at = 1, #members do
            if values[at] then
              writes[#writes + 1] = members[at]
              writes[#writes + 1] = values[at]
            end
          end
        end
      end
      records[#records + 1] = {id, row[1], row[2], row[3], blobs, writes}
    end
  end
  local segments = {}
  for seg, n in pairs(longest) do
    local key = segment_key(seg)
    local length = 0
    if key then length = redis.call('LLEN', key) end
    if length < n then
      return nil, 'segment ' .. seg .. ' holds ' .. length .. ' messages, a checkpoint needs ' .. n
    end
    segments[#segments + 1] = seg
    segments[#segments + 1] = redis.call('LRANGE', key, -n, -1)
  end
  return records, segments
end
"""

#: Reads checkpoints: ARGV 1 ns, 2 ttl to refresh (0: none), 3.. ids ('' alone: the
#: latest). Replies {1, main seg, main length, records, segments} or {-1, what broke}.
READ = _script(
    "read",
    _READ_RECORDS
    + """
local ns = ARGV[1]
local ids = {}
if ARGV[3] == '' then
  local prefix = 'c\\0' .. ns .. '\\0'
  local latest = redis.call('ZREVRANGEBYLEX', KEYS[3], '[' .. prefix .. '\\255', '[' .. prefix,
    'LIMIT', 0, 1)
  if #latest == 0 then
    if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('HLEN', KEYS[2]) > 1 then
      return {-1, 'its index is gone but its data is not'}
    end
    return {1, main_seg(), redis.call('LLEN', KEYS[1]), {}, {}}
  end
  ids[1] = string.sub(latest[1], #prefix + 1)
else
  for at = 3, #ARGV do ids[#ids + 1] = ARGV[at] end
end
local records, segments = read_records(ns, ids, true)
if not records then return {-1, segments} end
expire_all(tonumber(ARGV[2]))
return {1, main_seg(), redis.call('LLEN', KEYS[1]), records, segments}
""",
)

#: One page of a listing: ARGV 1 ns, 2 before id ('' none), 3 count. Replies the ids and
#: metadata of the page, newest first: {id, metadata, id, metadata, ...}.
PAGE = _script(
    "page",
    """
local prefix = 'c\\0' .. ARGV[1] .. '\\0'
local top = '[' .. prefix .. '\\255'
if ARGV[2] ~= '' then top = '(' .. prefix .. ARGV[2] end
local members = redis.call('ZREVRANGEBYLEX', KEYS[3], top, '[' .. prefix, 'LIMIT', 0,
  tonumber(ARGV[3]))
local reply = {}
for _, member in ipairs(members) do
  local id = string.sub(member, #prefix + 1)
  reply[#reply + 1] = id
  reply[#reply + 1] = redis.call('HGET', KEYS[2], 'm\\0' .. ARGV[1] .. '\\0' .. id) or ''
end
return reply
""",
)

#: The parent chain of a checkpoint for delta channels: ARGV 1 ns, 2 id ('' latest),
#: 3.. channels. Replies {1, ancestors, segments} where each ancestor is
#: {id, writes of the channels, seeds}, nearest first; or {-1, what broke}.
DELTA = _script(
    "delta",
    _READ_RECORDS
    + """
local ns, id = ARGV[1], ARGV[2]
if id == '' then
  local prefix = 'c\\0' .. ns .. '\\0'
  local latest = redis.call('ZREVRANGEBYLEX', KEYS[3], '[' .. prefix .. '\\255', '[' .. prefix,
    'LIMIT', 0, 1)
  if #latest == 0 then return {1, {}, {}} end
  id = string.sub(latest[1], #prefix + 1)
end
local remaining, left = {}, 0
for at = 3, #ARGV do remaining[ARGV[at]] = true left = left + 1 end
local chain = {}
local current = redis.call('HGET', KEYS[2], 'p\\0' .. ns .. '\\0' .. id)
local all_segments = {}
while current and current ~= '' and left > 0 do
  local records, segments = read_records(ns, {current}, true, remaining)
  if not records then return {-1, segments} end
  if #records == 0 then break end
  local record = records[1]
  local writes, seeds = {}, {}
  for at = 1, #record[6], 2 do
    local channel = string.match(record[6][at + 1], '^([^%z]*)')
    if remaining[channel] then
      writes[#writes + 1] = record[6][at]
      writes[#writes + 1] = record[6][at + 1]
    end
  end
  for at = 1, #record[5], 2 do
    local channel, value = record[5][at], record[5][at + 1]
    if remaining[channel] and string.sub(value, 1, 6) ~= 'empty\\0' then
      seeds[#seeds + 1] = channel
      seeds[#seeds + 1] = value
    end
  end
  for at = 1, #seeds, 2 do
    if remaining[seeds[at]] then remaining[seeds[at]] = nil left = left - 1 end
  end
  for _, part in ipairs(segments) do all_segments[#all_segments + 1] = part end
  chain[#chain + 1] = {current, writes, seeds}
  current = record[4]
end
return {1, chain, all_segments}
""",
)

_DROP = """
local function drop_checkpoint(ns, id)
  local tail = ns .. '\\0' .. id
  redis.call('HDEL', KEYS[2], 'c\\0' .. tail, 'm\\0' .. tail, 'p\\0' .. tail, 'v\\0' .. tail)
  redis.call('ZREM', KEYS[3], 'c\\0' .. tail)
  local writes = range('w\\0' .. tail .. '\\0')
  if #writes > 0 then
    redis.call('HDEL', KEYS[2], unpack(writes))
    redis.call('ZREM', KEYS[3], unpack(writes))
  end
end
-- drops blobs no checkpoint refers to, archived segments no blob refers to, run index
-- entries and namespaces without checkpoints
local function collect()
  local used, segs, alive = {}, {}, {}
  for _, member in ipairs(range('c\\0')) do
    alive[member] = true
    local ns, id = string.match(member, '^c%z([^%z]*)%z(.*)$')
    local fields = split(redis.call('HGET', KEYS[2], 'v\\0' .. ns .. '\\0' .. id) or '')
    for at = 1, #fields, 2 do
      used['b\\0' .. ns .. '\\0' .. fields[at] .. '\\0' .. fields[at + 1]] = true
    end
  end
  for _, member in ipairs(range('b\\0')) do
    if not used[member] then
      redis.call('HDEL', KEYS[2], member)
      redis.call('ZREM', KEYS[3], member)
    else
      local value = redis.call('HGET', KEYS[2], member)
      if value and string.sub(value, 1, #REF) == REF then
        local seg = parse_ref(value)
        if seg then segs[seg] = true end
      end
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
    if not tail or not alive['c\\0' .. tail] then redis.call('ZREM', KEYS[3], member) end
  end
  for _, member in ipairs(range('n\\0')) do
    if #range('c\\0' .. string.sub(member, 3) .. '\\0') == 0 then
      redis.call('ZREM', KEYS[3], member)
    end
  end
end
"""

#: Deletes checkpoints: ARGV 1 'latest' (all but the newest of each namespace) or 'runs'
#: (those of the run ids ARGV 2..), then unused blobs and segments. Replies the count.
PRUNE = _script(
    "prune",
    _DROP
    + """
local dropped = 0
if ARGV[1] == 'latest' then
  for _, member in ipairs(range('n\\0')) do
    local ns = string.sub(member, 3)
    local prefix = 'c\\0' .. ns .. '\\0'
    local ids = range(prefix)
    for at = 1, #ids - 1 do
      drop_checkpoint(ns, string.sub(ids[at], #prefix + 1))
      dropped = dropped + 1
    end
  end
else
  for at = 2, #ARGV do
    for _, member in ipairs(range('r\\0' .. ARGV[at] .. '\\0')) do
      local ns, id = string.match(member, '^r%z[^%z]*%z([^%z]*)%z(.*)$')
      if ns and redis.call('ZSCORE', KEYS[3], 'c\\0' .. ns .. '\\0' .. id) then
        drop_checkpoint(ns, id)
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
DELETE = _script(
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
DUMP = _script(
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
RESTORE = _script(
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
