"""Agent memory's plans: turn-aligned windows, and appends that store a run's messages once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from redis_chat_history.codec import decode_newest_first, element_json
from redis_chat_history.errors import InvalidArgumentError
from redis_chat_history.operations.messages import append_plan
from redis_chat_history.operations.plans import (
    MAX_EXPIRE_SECONDS,
    MAX_MESSAGES,
    PUSH_CHUNK,
    Command,
    Plan,
    Script,
    check_batch,
    check_int,
    check_key,
    check_optional,
)
from redis_chat_history.operations.scripts import plain_write, write_script

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
    check_key(key)
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


# ---------------------------------------------------------------------------
# Appends that recognise what is already stored (the agent middleware's write)
#
# A run's messages are appended after the run; the checkpoint that records "stored" is
# committed after that write. A crash or a cancellation in between re-runs the append
# with the same messages (same ids), and a new writer token: the writers key cannot tell.
# The script looks for the batch's messages among the newest 1 + TAIL_SLACK elements (the
# same bytes, or the id as the element spells it, near where this package writes it,
# confirmed by decoding that element only). The earlier write was one LPUSH: the element
# found, batch[j], follows batch[1..j-1]; those are checked, skipped, the rest pushed,
# in one atomic step. When nothing is found (every run but a re-run) it costs one LRANGE
# of 1 + TAIL_SLACK elements and a bounded substring search per message and element.

#: Elements written by others after the batch within which it is still recognised. Each
#: element read costs Redis ~2.4 µs per KB (measured: LRANGE into Lua dominates).
TAIL_SLACK = 4
#: Bytes around where the encoded message has its id that are searched for it (the
#: fields after the id, e.g. an AI message's tool calls, written the same way again).
ID_REACH_MARGIN = 256

APPEND_UNSTORED = write_script(
    "append_unstored",
    keys=("history",),
    args=("ttl", "keep", "count"),
    rest="batch",
    # ttl seconds (0 = leave as is), keep newest N (0 = all), count n; then the n messages'
    # ids, each id as its element spells it ('"id":"..."'), how far from the element's end
    # to look for it (0 = everywhere), and the n encoded messages, oldest first.
    # Replies {1 applied | 0 re-send, length, how many of the batch were stored already}.
    decide="""
local length = redis.pcall('LLEN', history)
if failed(length) then return refused(length) end
local n = tonumber(count)
local ids = batch - 1
local needles, reaches, values = ids + n, ids + 2 * n, ids + 3 * n
local function holds(element, i)
  if element == ARGV[values + i] then return true end
  local reach = tonumber(ARGV[reaches + i])
  local from = 1
  if reach > 0 then from = -reach end
  if not string.find(element, ARGV[needles + i], from, true) then return false end
  -- the id is in the element: is it the message's own (not a quote in its metadata)?
  local ok, decoded = pcall(cjson.decode, element)
  return ok and type(decoded) == 'table' and type(decoded.data) == 'table'
    and decoded.data.id == ARGV[ids + i]
end
-- The newest of the batch's messages already stored is among the newest elements; the
-- write that stored it stored the batch's older ones just before it (one LPUSH).
local stored = 0
local newest = redis.call('LRANGE', history, 0, __SLACK__)
for depth = 1, #newest do
  local found = nil
  for i = n, 1, -1 do
    if holds(newest[depth], i) then found = i break end
  end
  if found then
    local older = {}
    if found > 1 then older = redis.call('LRANGE', history, depth, depth + found - 2) end
    stored = found
    for back = 1, found - 1 do
      if older[back] == nil or not holds(older[back], found - back) then stored = 0 break end
    end
    break
  end
end
result = tostring(stored)
""".replace("__SLACK__", str(TAIL_SLACK)),
    apply="""
local last = values + n
for at = values + stored + 1, last, __CHUNK__ do
  redis.call('LPUSH', history, unpack(ARGV, at, math.min(at + __LAST__, last)))
end
length = length + n - stored
keep = tonumber(keep)
if keep > 0 and length > keep then
  redis.call('LTRIM', history, 0, keep - 1)
  length = keep
end
if ttl ~= '0' then redis.call('EXPIRE', history, ttl) end
return {1, length, stored}
""".replace("__CHUNK__", str(PUSH_CHUNK)).replace("__LAST__", str(PUSH_CHUNK - 1)),
    on_resend="redis.call('LLEN', history), tonumber(recorded)",
)


@dataclass(frozen=True)
class Appended:
    """What :func:`append_unstored_plan` did: the history's length, and what it skipped."""

    length: int
    #: How many of the batch's oldest messages were found stored (and not pushed again).
    already_stored: int


def id_needle(message_id: str, element: bytes) -> tuple[bytes, int]:
    """How ``element`` spells its id field, and how far from its end to look for it.

    The compact form orjson writes (``b'"id":"m1"'``), else the stdlib's (the codec's
    fallback); the reach is 0 (the whole element) when the JSON does not hold it, or
    when the element is compressed (found by equal bytes in Redis).
    """
    text = element_json(element)
    raw = text if isinstance(text, bytes) else text.encode()
    for needle in (
        b'"id":' + orjson.dumps(message_id),
        b'"id": ' + json.dumps(message_id).encode(),
    ):
        at = raw.rfind(needle)
        if at >= 0:
            compressed = raw is not element and raw != element
            return needle, 0 if compressed else len(raw) - at + ID_REACH_MARGIN
    return b'"id":' + orjson.dumps(message_id), 0


def append_unstored_plan(
    key: str,
    ids: Sequence[str],
    encoded: Sequence[bytes],
    *,
    ttl: int | None,
    max_messages: int | None,
) -> Plan[Appended]:
    """Append the messages of ``encoded`` (oldest first) that the history's tail lacks.

    ``ids`` are the messages' ids. A batch whose oldest messages were stored (an append
    that ran, then its caller crashed before recording it), the newest of them among the
    history's newest ``1 + TAIL_SLACK`` elements, pushes only the rest, atomically, with
    the expiry and trim of
    :func:`~redis_chat_history.operations.append_plan`. Users who may not run scripts
    get that plan's plain LPUSH (which cannot recognise anything).

    Example::

        >>> plan = append_unstored_plan("message_store:s1", ["m1"],
        ...     [b'{"type":"human","data":{"content":"hi","id":"m1"}}'], ttl=None, max_messages=None)
        >>> plan.commands[0].args[11:14]
        (1, 'm1', b'"id":"m1"')
    """
    check_key(key)
    check_batch(encoded)
    if len(ids) != len(encoded):
        raise InvalidArgumentError(f"{len(ids)} ids for {len(encoded)} messages")
    ttl_arg = check_optional("ttl", ttl, maximum=MAX_EXPIRE_SECONDS)
    keep = check_optional("max_messages", max_messages, maximum=MAX_MESSAGES)
    found = [id_needle(i, element) for i, element in zip(ids, encoded, strict=True)]
    needles = [needle for needle, _ in found]
    reaches = [reach for _, reach in found]
    args = [ttl_arg, keep, len(encoded), *ids, *needles, *reaches, *encoded]

    def parse(replies: list[Any]) -> Appended:
        _, length, stored = replies[0]
        return Appended(int(length), int(stored))

    def plain() -> Plan[Appended]:
        pushed = append_plan(key, encoded, ttl=ttl, max_messages=max_messages).plain
        assert pushed is not None
        plan = pushed()

        def parse_plain(replies: list[Any]) -> Appended:
            return Appended(plan.parse(replies), 0)

        return plain_write(key, plan.commands, parse_plain)

    return APPEND_UNSTORED.plan(key, [key], args, parse, plain=plain)
