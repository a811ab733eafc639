"""The checkpointer's Lua scripts: every change to a thread is one script, so it is atomic.

Every script takes ``KEYS[1]`` the thread's history list (its *main segment*),
``KEYS[2]`` its data hash and ``KEYS[3]`` its index (a sorted set, all scores 0, read
by lexical ranges); all are in one Cluster slot (:mod:`redis_chat_history.slots`).
The layout (``\\0`` separates the parts of a name; names and values in the short forms of
:mod:`.forms`: ``!m`` the messages channel, ``^297.24ca609dbe`` a saver version)::

    index c\\0<ns>\\0<id>\\0<n>\\0<record><writes>
                                  a checkpoint: its record (``parent\\0<n>\\0<blob list>
                                  <metadata><checkpoint>``, the blob list being
                                  ``channel\\0version\\0`` pairs, ``=k`` for the version
                                  of pair k) and its pending writes (rows ``<n>\\0
                                  <task\\0idx><m>\\0<channel\\0path\\0value>``); one
                                  member per checkpoint, ordered by (ns, id)
          n\\0<ns>, g\\0<seg>, r\\0<run id>\\0<ns>\\0<id>
    hash  main                    id of the segment the history list holds ('0' first)
          g\\0<seg>               key of an archived segment (a list)
          v\\0<ns>\\0<bucket>     the values checkpoints gave versions: rows ``version``
                                  -> rows ``channel`` -> value (no row: empty); the
                                  saver's versions ^<n>.<hex> share a field per 16 n
          w\\0<ns>\\0<id>         writes that came before their checkpoint (its put
                                  moves them into its member)

A value is ``type\\0bytes`` (``d1+\\0`` and that deflated), or ``\\1r\\0<seg>:<n>`` (the
oldest n messages of segment seg: the messages channel), or ``\\1s\\0<refs>\\0<skeleton>``
(a value holding runs of the list's messages, :mod:`.nested`). A write whose messages the
list holds is ``\\1w\\0<seg>:<start>:<count>`` (those messages, counted from the oldest):
the put_writes script makes it so when the list already holds them, the next put when it
appends them; so each message is stored once. Scripts read archived segments by the key
names stored in the hash: they are in the thread's slot (Lua cannot compute the CRC tails
that put them there).
"""

from __future__ import annotations

from redis_chat_history.operations.plans import PUSH_CHUNK, Script

_COMMON = """
local MAIN0 = '0'
local REF = '\\1r\\0'
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
-- a write's reference 'channel\\0path\\0\\1w\\0seg:start:count', or nil
local function write_ref(value)
  local seg, start, count = string.match(value,
    '^[^%z]*%z[^%z]*%z\\1w%z(%x+):(%d+):(%d+)$')
  if seg then return seg, tonumber(start), tonumber(count) end
  return nil
end
local NESTED = '\\1s\\0'
-- adds the {seg, n} a value needs to found: a reference's, a nested value's
local function needs(value, found)
  if string.sub(value, 1, #REF) == REF then
    local seg, n = parse_ref(value)
    if seg then found[#found + 1] = {seg, n} end
  elseif string.sub(value, 1, #NESTED) == NESTED then
    local listed = string.match(value, '^\\1s%z([^%z]*)%z')
    for seg, start, count in string.gmatch(listed or '', '(%x+):(%d+):(%d+)') do
      found[#found + 1] = {seg, tonumber(start) + tonumber(count)}
    end
  end
end
-- the same for a write's row 'channel\\0path\\0value'
local function row_needs(value, found)
  local seg, start, count = write_ref(value)
  if seg then
    found[#found + 1] = {seg, start + count}
  else
    local rest = string.match(value, '^[^%z]*%z[^%z]*%z(.*)$')
    if rest then needs(rest, found) end
  end
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
-- the {channel, version} pairs of a blob list ('=k': the version of pair k)
local function versions_of(list)
  local fields, found = split(list), {}
  for at = 1, #fields - 1, 2 do
    local version = fields[at + 1]
    if string.sub(version, 1, 1) == '=' then
      version = found[tonumber(string.sub(version, 2))][2]
    end
    found[#found + 1] = {fields[at], version}
  end
  return found
end
-- the index member of checkpoint tail (ns .. '\\0' .. id), or nil
local function member_of(tail)
  local found = redis.call('ZRANGEBYLEX', KEYS[3], '[c\\0' .. tail .. '\\0',
    '(c\\0' .. tail .. '\\1', 'LIMIT', 0, 1)
  return found[1]
end
-- a member's tail, record and writes
local function split_member(member)
  local a = string.find(member, '\\0', 3, true)
  local b = string.find(member, '\\0', a + 1, true)
  local c = string.find(member, '\\0', b + 1, true)
  local n = tonumber(string.sub(member, b + 1, c - 1))
  return string.sub(member, 3, b - 1), string.sub(member, c + 1, c + n),
    string.sub(member, c + n + 1)
end
local function make_member(tail, record, writes)
  return 'c\\0' .. tail .. '\\0' .. #record .. '\\0' .. record .. writes
end
-- checkpoint tail's writes: its member and record (nil before its put) and its rows
local function load_writes(tail)
  local member, record, raw = member_of(tail), nil, nil
  if member then
    local _skip
    _skip, record, raw = split_member(member)
  else
    raw = redis.call('HGET', KEYS[2], 'w\\0' .. tail)
  end
  return member, record, parse_rows(raw)
end
local function store_writes(tail, member, record, rows)
  if member then
    redis.call('ZREM', KEYS[3], member)
    redis.call('ZADD', KEYS[3], 0, make_member(tail, record, join_rows(rows)))
  else
    redis.call('HSET', KEYS[2], 'w\\0' .. tail, join_rows(rows))
  end
end
-- the field holding a version's values: the saver's versions (^<n>.<hex>) 16 a field
local function group_field(ns, version)
  local number = string.match(version, '^%^(%d+)%.')
  if number then version = '^' .. math.floor(tonumber(number) / 16) end
  return 'v\\0' .. ns .. '\\0' .. version
end
-- channel -> value of a version's values (cache: field -> version -> map)
local function read_group(cache, ns, version)
  local field = group_field(ns, version)
  local outer = cache[field]
  if not outer then
    outer = {}
    for _, row in ipairs(parse_rows(redis.call('HGET', KEYS[2], field))) do
      outer[row[1]] = row[2]
    end
    cache[field] = outer
  end
  local found = outer[version]
  if type(found) ~= 'table' then
    local channels = {}
    for _, row in ipairs(parse_rows(found or '')) do channels[row[1]] = row[2] end
    outer[version] = channels
    found = channels
  end
  return found
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
-- 10 the version of messages whose value is the list ('' none), 11 rewrites count,
-- 12 values count, then rewrites (writes field, row suffix, start from the oldest,
-- count, sha1 of the row's value), values (version, channel, value; '' empty), messages
-- oldest first. KEYS[4]: the archive key of the main seg (mode 'r').
local ns, id = ARGV[1], ARGV[2]
local tail = ns .. '\\0' .. id
if member_of(tail) then return {0} end
local mode = ARGV[6]
local seg = main_seg()
if mode ~= '' then
  local length = redis.call('LLEN', KEYS[1])
  if seg ~= ARGV[7] or length ~= tonumber(ARGV[8]) then return {2, seg, length} end
end
local rewrites_at = 13
local values_at = rewrites_at + 5 * tonumber(ARGV[11])
local first = values_at + 3 * tonumber(ARGV[12])
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
local length = redis.call('LLEN', KEYS[1])
-- writes whose messages are now in the list become references to them
local by_tail = {}
for at = rewrites_at, values_at - 1, 5 do
  local where = string.sub(ARGV[at], 3)
  local wanted = by_tail[where] or {}
  wanted[ARGV[at + 1]] = {ARGV[at + 2] .. ':' .. ARGV[at + 3], ARGV[at + 4]}
  by_tail[where] = wanted
end
for where, wanted in pairs(by_tail) do
  local member, record, rows = load_writes(where)
  local changed = false
  for _, row in ipairs(rows) do
    local place = wanted[row[1]]
    -- only the value the saver wrote (a re-sent write kept the first one)
    local head = place and redis.sha1hex(row[2]) == place[2] and
      string.match(row[2], '^([^%z]*%z[^%z]*%z)')
    if head then
      row[2] = head .. '\\1w\\0' .. seg .. ':' .. place[1]
      changed = true
    end
  end
  if changed then store_writes(where, member, record, rows) end
end
-- the values this checkpoint gives new versions (in order: field, version, channel)
local given, fields, versions = {}, {}, {}
local function give(version, channel, value)
  local field = group_field(ns, version)
  if not given[field] then
    given[field] = {}
    fields[#fields + 1] = field
    versions[field] = {}
  end
  if not given[field][version] then
    given[field][version] = {}
    versions[field][#versions[field] + 1] = version
  end
  local channels = given[field][version]
  if channels[channel] == nil then channels[#channels + 1] = channel end
  channels[channel] = value
end
for at = values_at, first - 1, 3 do
  local value = ARGV[at + 2]
  local listed, rest = string.match(value, '^\\1s%z([^%z]*)%z(.*)$')
  if listed then  -- references to the list after this put: its segment is '*'
    value = NESTED .. (string.gsub(listed, '%*', seg)) .. '\\0' .. rest
  end
  give(ARGV[at], ARGV[at + 1], value)
end
if ARGV[10] ~= '' then give(ARGV[10], '!m', REF .. seg .. ':' .. length) end
for _, field in ipairs(fields) do
  local outer = parse_rows(redis.call('HGET', KEYS[2], field))
  for _, version in ipairs(versions[field]) do
    local channels = given[field][version]
    local row = nil
    for _, found in ipairs(outer) do if found[1] == version then row = found end end
    if not row then
      row = {version, ''}
      outer[#outer + 1] = row
    end
    local kept = {}
    for _, old in ipairs(parse_rows(row[2])) do
      local value = channels[old[1]]
      if value == nil then kept[#kept + 1] = old end
    end
    for _, channel in ipairs(channels) do
      if channels[channel] ~= '' then kept[#kept + 1] = {channel, channels[channel]} end
    end
    row[2] = join_rows(kept)
  end
  local rows = {}
  for _, row in ipairs(outer) do if row[2] ~= '' then rows[#rows + 1] = row end end
  if #rows > 0 then
    redis.call('HSET', KEYS[2], field, join_rows(rows))
  else
    redis.call('HDEL', KEYS[2], field)
  end
end
local early = redis.call('HGET', KEYS[2], 'w\\0' .. tail)
if early then redis.call('HDEL', KEYS[2], 'w\\0' .. tail) end
redis.call('ZADD', KEYS[3], 0, make_member(tail, ARGV[3], early or ''), 0, 'n\\0' .. ns)
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
-- ARGV: 1 ns, 2 checkpoint id, 3 ttl, then per row: suffix, replace flag, value, n, and
-- n history encodings of its messages (oldest first: a reference when the list has them)
local tail = ARGV[1] .. '\\0' .. ARGV[2]
local member, record, rows = load_writes(tail)
local where = {}
for at, row in ipairs(rows) do where[row[1]] = at end
-- where the encodings ARGV[at .. at + n - 1] are, consecutive, among the list's n + 4
-- newest elements (a put that appended them ran first)
local function locate(at, n)
  local length = redis.call('LLEN', KEYS[1])
  local window = redis.call('LRANGE', KEYS[1], 0, n + 3)
  for start = length - n, math.max(0, length - #window), -1 do
    local same = true
    for j = 0, n - 1 do
      if window[length - start - j] ~= ARGV[at + j] then same = false break end
    end
    if same then return start end
  end
  return nil
end
local changed = 0
local at = 4
while at <= #ARGV do
  local suffix, value, n = ARGV[at], ARGV[at + 2], tonumber(ARGV[at + 3])
  local found = where[suffix]
  if not found or ARGV[at + 1] == '1' then
    if n > 0 and n <= 32 then
      local start = locate(at + 4, n)
      local head = start and string.match(value, '^([^%z]*%z[^%z]*%z)')
      if head then value = head .. '\\1w\\0' .. main_seg() .. ':' .. start .. ':' .. n end
    end
    if found then
      rows[found][2] = value
    else
      rows[#rows + 1] = {suffix, value}
      where[suffix] = #rows
    end
    changed = changed + 1
  end
  at = at + 4 + n
end
if changed > 0 then store_writes(tail, member, record, rows) end
expire_all(tonumber(ARGV[3]))
return changed
""",
)
