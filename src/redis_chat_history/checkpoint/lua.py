"""The checkpointer's Lua scripts: every change to a thread is one script, so it is atomic.

Every script takes ``KEYS[1]`` the thread's history list (its *main segment*),
``KEYS[2]`` its data hash and ``KEYS[3]`` its index (a sorted set, all scores 0, read
by lexical ranges); all are in one Cluster slot (:mod:`redis_chat_history.slots`).
The layout (``\\0`` separates the parts of a name)::

    hash  main                        id of the segment the history list holds
          g\\0<seg>                    key of an archived segment (a list)
          k\\0<ns>\\0<id>               a checkpoint: ``parent\\0<n>\\0<blob list><m>\\0
                                       <metadata><checkpoint>``, the blob list being
                                       ``channel\\0version\\0`` pairs
          w\\0<ns>\\0<id>               its pending writes: rows ``<n>\\0<task\\0idx>
                                       <m>\\0<channel\\0path\\0type\\0bytes>``
          b\\0<ns>\\0<channel>\\0<ver>   a channel value (``type\\0bytes``), or a reference
                                       ``rch-ref\\0<seg>:<n>``: the oldest n messages of
                                       segment seg
    index c\\0<ns>\\0<id>, n\\0<ns>, g\\0<seg>, r\\0<run id>\\0<ns>\\0<id>

A write whose messages were appended to the history list is rewritten as a reference
``rch-wref\\0<seg>:<start>:<count>`` (those messages, counted from the oldest), so each
message is stored once. Scripts read archived segments by the key names stored in the
hash: they are in the thread's slot (Lua cannot compute the CRC tails that put them there).
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
-- a write's reference 'channel\\0path\\0rch-wref\\0seg:start:count', or nil
local function write_ref(value)
  local seg, start, count = string.match(value,
    '^[^%z]*%z[^%z]*%zrch%-wref%z(%x+):(%d+):(%d+)$')
  if seg then return seg, tonumber(start), tonumber(count) end
  return nil
end
-- a checkpoint record: its parent id and blob list
local function parse_record(raw)
  local a = string.find(raw, '\\0', 1, true)
  local b = string.find(raw, '\\0', a + 1, true)
  local n = tonumber(string.sub(raw, a + 1, b - 1))
  return string.sub(raw, 1, a - 1), string.sub(raw, b + 1, b + n)
end
-- the rows {suffix, value} of a writes field
local function parse_rows(raw)
  local rows, at = {}, 1
  while raw and at <= #raw do
    local a = string.find(raw, '\\0', at, true)
    local n = tonumber(string.sub(raw, at, a - 1))
    local suffix = string.sub(raw, a + 1, a + n)
    local b = string.find(raw, '\\0', a + n + 1, true)
    local m = tonumber(string.sub(raw, a + n + 1, b - 1))
    rows[#rows + 1] = {suffix, string.sub(raw, b + 1, b + m)}
    at = b + m + 1
  end
  return rows
end
local function join_rows(rows)
  local parts = {}
  for _, row in ipairs(rows) do
    parts[#parts + 1] = #row[1] .. '\\0' .. row[1] .. #row[2] .. '\\0' .. row[2]
  end
  return table.concat(parts)
end
local function push(key, first, last)
  for at = first, last, __CHUNK__ do
    redis.call('LPUSH', key, unpack(ARGV, at, math.min(at + __LAST__, last)))
  end
end
"""


def script(name: str, body: str) -> Script:
    common = _COMMON.replace("__CHUNK__", str(PUSH_CHUNK)).replace("__LAST__", str(PUSH_CHUNK - 1))
    return Script(f"checkpoint_{name}", common + body)


#: Stores one checkpoint; a checkpoint id already stored is a re-send: nothing changes.
#: Replies {1, main seg, main length} | {0} re-send | {2, main seg, length} stale view.
PUT = script(
    "put",
    """
-- ARGV: 1 ns, 2 id, 3 record, 4 run id, 5 ttl, 6 messages mode ('' none, k keep,
-- a append, r replace), 7 expected main seg, 8 expected main length, 9 new seg id,
-- 10 messages blob field, 11 rewrites count, 12 blob pairs count, then rewrites
-- (writes field, row suffix, start from the oldest, count, sha1 of the row's value),
-- blob field/value pairs,
-- messages oldest first. KEYS[4]: the archive key of the main seg (mode 'r').
local ns, id = ARGV[1], ARGV[2]
local tail = ns .. '\\0' .. id
if redis.call('HEXISTS', KEYS[2], 'k\\0' .. tail) == 1 then return {0} end
local mode = ARGV[6]
local seg = main_seg()
if mode ~= '' then
  local length = redis.call('LLEN', KEYS[1])
  if seg ~= ARGV[7] or length ~= tonumber(ARGV[8]) then return {2, seg, length} end
end
local rewrites_at = 13
local pairs_at = rewrites_at + 5 * tonumber(ARGV[11])
local first = pairs_at + 2 * tonumber(ARGV[12])
if mode == 'r' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('RENAME', KEYS[1], KEYS[4])
    redis.call('HSET', KEYS[2], 'g\\0' .. seg, KEYS[4])
    redis.call('ZADD', KEYS[3], 0, 'g\\0' .. seg)
  end
  seg = ARGV[9]
  redis.call('HSET', KEYS[2], 'main', seg)
end
if (mode == 'a' or mode == 'r') and first <= #ARGV then push(KEYS[1], first, #ARGV) end
-- writes whose messages are now in the list become references to them
local by_field = {}
for at = rewrites_at, pairs_at - 1, 5 do
  local wanted = by_field[ARGV[at]] or {}
  wanted[ARGV[at + 1]] = {ARGV[at + 2] .. ':' .. ARGV[at + 3], ARGV[at + 4]}
  by_field[ARGV[at]] = wanted
end
for field, wanted in pairs(by_field) do
  local rows = parse_rows(redis.call('HGET', KEYS[2], field))
  local changed = false
  for _, row in ipairs(rows) do
    local place = wanted[row[1]]
    -- only the value the saver wrote (a re-sent write kept the first one)
    local head = place and redis.sha1hex(row[2]) == place[2] and
      string.match(row[2], '^([^%z]*%z[^%z]*%z)')
    if head then
      place = place[1]
      row[2] = head .. 'rch-wref\\0' .. seg .. ':' .. place
      changed = true
    end
  end
  if changed then redis.call('HSET', KEYS[2], field, join_rows(rows)) end
end
for at = pairs_at, first - 1, 2 do redis.call('HSET', KEYS[2], ARGV[at], ARGV[at + 1]) end
local length = redis.call('LLEN', KEYS[1])
if ARGV[10] ~= '' then redis.call('HSET', KEYS[2], ARGV[10], REF .. seg .. ':' .. length) end
redis.call('HSET', KEYS[2], 'k\\0' .. tail, ARGV[3])
redis.call('ZADD', KEYS[3], 0, 'c\\0' .. tail, 0, 'n\\0' .. ns)
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[3], 0, 'r\\0' .. ARGV[4] .. '\\0' .. tail) end
expire_all(tonumber(ARGV[5]))
return {1, seg, length}
""",
)

#: Stores the writes of one task; (task, idx) already stored is kept (special writes,
#: negative idx, are replaced), so a re-send changes nothing. Replies the rows changed.
PUT_WRITES = script(
    "put_writes",
    """
-- ARGV: 1 ns, 2 checkpoint id, 3 ttl, then triples: row suffix, replace flag, value
local field = 'w\\0' .. ARGV[1] .. '\\0' .. ARGV[2]
local rows = parse_rows(redis.call('HGET', KEYS[2], field))
local where = {}
for at, row in ipairs(rows) do where[row[1]] = at end
local changed = 0
for at = 4, #ARGV, 3 do
  local found = where[ARGV[at]]
  if not found then
    rows[#rows + 1] = {ARGV[at], ARGV[at + 2]}
    where[ARGV[at]] = #rows
    changed = changed + 1
  elseif ARGV[at + 1] == '1' then
    rows[found][2] = ARGV[at + 2]
    changed = changed + 1
  end
end
if changed > 0 then redis.call('HSET', KEYS[2], field, join_rows(rows)) end
expire_all(tonumber(ARGV[3]))
return changed
""",
)

# Reading: checkpoint records with their blobs and writes, and the message segments they
# reference (each segment read once, as far as the longest reference needs).
_READ_RECORDS = """
local function read_records(ns, ids, only)
  local records, longest = {}, {}
  local function need(seg, n) if n > (longest[seg] or 0) then longest[seg] = n end end
  for _, id in ipairs(ids) do
    local tail = ns .. '\\0' .. id
    local raw = redis.call('HGET', KEYS[2], 'k\\0' .. tail)
    if not raw then
      if redis.call('ZSCORE', KEYS[3], 'c\\0' .. tail) then
        return nil, 'checkpoint ' .. id .. ' is indexed but its record is gone'
      end
    else
      local parent, list = parse_record(raw)
      local blobs = {}
      local fields = split(list)
      for at = 1, #fields, 2 do
        if not only or only[fields[at]] then
          local value = redis.call('HGET', KEYS[2], 'b\\0' .. ns .. '\\0' .. fields[at] ..
            '\\0' .. fields[at + 1])
          if value then
            blobs[#blobs + 1] = fields[at]
            blobs[#blobs + 1] = value
            if string.sub(value, 1, #REF) == REF then
              local seg, n = parse_ref(value)
              if seg then need(seg, n) end
            end
          end
        end
      end
      local writes = redis.call('HGET', KEYS[2], 'w\\0' .. tail) or ''
      for _, row in ipairs(parse_rows(writes)) do
        local seg, start, count = write_ref(row[2])
        if seg then need(seg, start + count) end
      end
      records[#records + 1] = {id, raw, parent, blobs, writes}
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
local function latest(ns)
  local prefix = 'c\\0' .. ns .. '\\0'
  local found = redis.call('ZREVRANGEBYLEX', KEYS[3], '[' .. prefix .. '\\255', '[' .. prefix,
    'LIMIT', 0, 1)
  if #found == 0 then return nil end
  return string.sub(found[1], #prefix + 1)
end
"""

#: Reads checkpoints: ARGV 1 ns, 2 ttl to refresh (0: none), 3.. ids ('' alone: the
#: latest). Replies {1, main seg, main length, records, segments} or {-1, what broke};
#: a record is {id, record, parent, blobs as channel/value pairs, writes field}.
READ = script(
    "read",
    _READ_RECORDS
    + """
local ids = {}
if ARGV[3] == '' then
  local id = latest(ARGV[1])
  if not id then
    if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('HLEN', KEYS[2]) > 1 then
      return {-1, 'its index is gone but its data is not'}
    end
    return {1, main_seg(), redis.call('LLEN', KEYS[1]), {}, {}}
  end
  ids[1] = id
else
  for at = 3, #ARGV do ids[#ids + 1] = ARGV[at] end
end
local records, segments = read_records(ARGV[1], ids, nil)
if not records then return {-1, segments} end
expire_all(tonumber(ARGV[2]))
return {1, main_seg(), redis.call('LLEN', KEYS[1]), records, segments}
""",
)

#: One page of a listing: ARGV 1 ns, 2 before id ('' none), 3 count. Replies the ids and
#: records of the page, newest first: {id, record, id, record, ...}.
PAGE = script(
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
  reply[#reply + 1] = redis.call('HGET', KEYS[2], 'k\\0' .. ARGV[1] .. '\\0' .. id) or ''
end
return reply
""",
)

#: The parent chain of a checkpoint for delta channels: ARGV 1 ns, 2 id ('' latest),
#: 3.. channels. Replies {1, ancestors, segments}, each ancestor {id, writes of the
#: channels as suffix/value pairs, seeds as channel/value pairs}, nearest first.
DELTA = script(
    "delta",
    _READ_RECORDS
    + """
local ns, id = ARGV[1], ARGV[2]
if id == '' then id = latest(ns) end
if not id then return {1, {}, {}} end
local remaining, left = {}, 0
for at = 3, #ARGV do remaining[ARGV[at]] = true left = left + 1 end
local chain, all_segments = {}, {}
local raw = redis.call('HGET', KEYS[2], 'k\\0' .. ns .. '\\0' .. id)
local current = raw and parse_record(raw)
while current and current ~= '' and left > 0 do
  local records, segments = read_records(ns, {current}, remaining)
  if not records then return {-1, segments} end
  if #records == 0 then break end
  local record = records[1]
  local writes, seeds = {}, {}
  for _, row in ipairs(parse_rows(record[5])) do
    if remaining[string.match(row[2], '^([^%z]*)')] then
      writes[#writes + 1] = row[1]
      writes[#writes + 1] = row[2]
    end
  end
  for at = 1, #record[4], 2 do
    local channel, value = record[4][at], record[4][at + 1]
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
  current = record[3]
end
return {1, chain, all_segments}
""",
)
