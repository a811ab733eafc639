"""The checkpointer's reading scripts (the layout is in :mod:`.lua`): checkpoints with
their values, writes and the message segments they reference, listing pages, and the
parent chain of delta channels. Each reads one thread in one script call.
"""

from __future__ import annotations

from redis_chat_history.checkpoint.lua import script

# Reading: checkpoint records with their values and writes, and the message segments they
# reference (each segment read once, as far as the longest reference needs).
_READ_RECORDS = """
-- the main segment the reader holds (READ: its id and length): not sent again
local known_seg, known_len = nil, -1
local function read_records(ns, ids, only)
  local records, longest, cache = {}, {}, {}
  local function need(seg, n) if n > (longest[seg] or 0) then longest[seg] = n end end
  for _, id in ipairs(ids) do
    local tail = ns .. '\\0' .. id
    local member = member_of(tail)
    if member then
      local _, raw, writes = split_member(member)
      local parent, list = parse_record(raw)
      local blobs = {}
      for _, pair in ipairs(versions_of(list)) do
        local channel = pair[1]
        if not only or only[channel] then
          local value = read_group(cache, ns, pair[2])[channel]
          if value then
            blobs[#blobs + 1] = channel
            blobs[#blobs + 1] = value
            local found = {}
            needs(value, found)
            for _, pair in ipairs(found) do need(pair[1], pair[2]) end
          end
        end
      end
      writes = writes .. (redis.call('HGET', KEYS[2], 'w\\0' .. tail) or '')
      local found = {}
      for _, row in ipairs(parse_rows(writes)) do row_needs(row[2], found) end
      for _, pair in ipairs(found) do need(pair[1], pair[2]) end
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
    if seg == known_seg and key == KEYS[1] and length == known_len then
      segments[#segments + 1] = n  -- the reader holds these: their count, not them
    else
      segments[#segments + 1] = redis.call('LRANGE', key, -n, -1)
    end
  end
  return records, segments
end
local function latest(ns)
  local prefix = 'c\\0' .. ns .. '\\0'
  local found = redis.call('ZREVRANGEBYLEX', KEYS[3], '[' .. prefix .. '\\255', '[' .. prefix,
    'LIMIT', 0, 1)
  if #found == 0 then return nil end
  local ending = string.find(found[1], '\\0', #prefix + 1, true)
  return string.sub(found[1], #prefix + 1, ending - 1)
end
"""

#: Reads checkpoints: ARGV 1 ns, 2 ttl to refresh (0: none), 3 the main segment id the
#: reader holds ('' none), 4 its length, 5.. ids ('' alone: the latest). Replies {1, main
#: seg, main length, records, segments} or {-1, what broke}; a record is {id, record,
#: parent, blobs as channel/value pairs, writes rows}; a segment the reader holds (the
#: main one, still that long) comes as its count instead of its elements.
READ = script(
    "read",
    _READ_RECORDS
    + """
local ids = {}
if ARGV[3] ~= '' then known_seg, known_len = ARGV[3], tonumber(ARGV[4]) end
if ARGV[5] == '' then
  local id = latest(ARGV[1])
  if not id then
    -- values or archived segments without an index: it was evicted (writes may come
    -- before their checkpoint)
    if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('EXISTS', KEYS[2]) == 1 then
      for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
        local kind = string.sub(name, 1, 2)
        if kind == 'v\\0' or kind == 'g\\0' then
          return {-1, 'its index is gone but its data is not'}
        end
      end
    end
    return {1, main_seg(), redis.call('LLEN', KEYS[1]), {}, {}}
  end
  ids[1] = id
else
  for at = 5, #ARGV do ids[#ids + 1] = ARGV[at] end
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
  local tail, record = split_member(member)
  reply[#reply + 1] = string.sub(tail, #ARGV[1] + 2)
  reply[#reply + 1] = record
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
local member = member_of(ns .. '\\0' .. id)
local current = nil
if member then
  local _, raw = split_member(member)
  current = parse_record(raw)
end
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
