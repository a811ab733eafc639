"""Turn-aligned windows: the newest messages, starting at a human message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from redis_chat_history.codec import decode_newest_first
from redis_chat_history.operations.plans import (
    MAX_MESSAGES,
    Command,
    Plan,
    Script,
    check_int,
    check_key,
)

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
