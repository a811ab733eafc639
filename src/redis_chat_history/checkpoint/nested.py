"""Values that hold the conversation again, stored with references to the history list.

langgraph < 1.2 sends each tool call with the whole state (``Send("tools",
ToolCallWithContext(state=...))``, through ``__pregel_tasks``): stored as is, every such
value holds every message again and the thread grows with the square of its turns. Here a
list of messages inside a value (in dicts, lists and ``Send`` arguments) whose first k
messages are the history list's first k is stored as a reference to them, followed by the
rest; the value comes back equal.

Stored form: ``\\1s\\0<seg>:0:<k>;...\\0<packed skeleton>``, the skeleton being the value
with each such list ``[{MARK: i}, *rest]`` (reference i). The put's own values name the
segment ``*`` (the segment the list is in after the put: the script puts its id there).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from langgraph.types import Send

from redis_chat_history.checkpoint.forms import pack, unpack
from redis_chat_history.checkpoint.messages import RECHECKED, Tip
from redis_chat_history.codec import encode_message
from redis_chat_history.construct import EXACT_CLASSES
from redis_chat_history.errors import MessageEncodeError

NESTED = b"\x01s\x00"
NESTED_KIND = "\x01s"
#: The key of the dict that stands for a reference in a stored skeleton.
MARK = "\x01rch"
#: Shorter runs of messages are kept inline (a reference costs about 10 bytes).
SHORTEST = 1


def prefix_length(messages: Sequence[Any], base: Tip) -> int:
    """How many of ``messages``, from the first, the list of ``base`` holds from its first.

    The objects the list was written from are trusted, except the newest few and those
    written since (compared by encoding, as a put compares them)."""
    limit = min(len(messages), len(base.encoded))
    trusted = len(base.encoded) - RECHECKED
    same = 0
    while same < limit:
        message = messages[same]
        if message is base.objects[same] and same < trusted and id(message) not in base.dirty:
            same += 1
            continue
        if type(message) not in EXACT_CLASSES:
            break
        try:
            if encode_message(message) != base.encoded[same]:
                break
        except (MessageEncodeError, TypeError, ValueError):
            break
        same += 1
    return same


def _marked(value: Any) -> bool:
    """``value`` holds a dict with the reference key (then it is stored as is)."""
    if type(value) is Send:
        return _marked(value.arg)
    if type(value) is dict:
        return MARK in value or any(_marked(item) for item in value.values())
    if type(value) is list:
        return any(_marked(item) for item in value)
    return False


def _skeleton(value: Any, base: Tip, refs: list[int]) -> Any:
    if type(value) is Send:
        clone = copy.copy(value)
        clone.arg = _skeleton(value.arg, base, refs)
        return clone
    if type(value) is dict:
        return {key: _skeleton(item, base, refs) for key, item in value.items()}
    if type(value) is list:
        if value and all(type(item) in EXACT_CLASSES for item in value):
            count = prefix_length(value, base)
            if count < SHORTEST:
                return value
            refs.append(count)
            return [{MARK: len(refs) - 1}, *value[count:]]
        return [_skeleton(item, base, refs) for item in value]
    return value


def pack_nested(typed_dump: Any, value: Any, base: Tip | None, segment: str) -> bytes | None:
    """``value`` stored with references to ``base``'s list (segment ``segment``), or None
    when it holds no run of its messages. ``typed_dump`` is the serializer's ``dumps_typed``."""
    if base is None or not base.encoded or _marked(value):
        return None
    refs: list[int] = []
    skeleton = _skeleton(value, base, refs)
    if not refs:
        return None
    listed = ";".join(f"{segment}:0:{count}" for count in refs).encode()
    return NESTED + listed + b"\x00" + pack(typed_dump(skeleton))


def _restore(value: Any, messages: list[list[Any]]) -> Any:
    if type(value) is Send:
        clone = copy.copy(value)
        clone.arg = _restore(value.arg, messages)
        return clone
    if type(value) is dict:
        return {key: _restore(item, messages) for key, item in value.items()}
    if type(value) is list:
        first = value[0] if value else None
        if type(first) is dict and len(first) == 1 and MARK in first:
            return [*messages[first[MARK]], *value[1:]]
        return [_restore(item, messages) for item in value]
    return value


def references(data: bytes) -> list[tuple[str, int, int]]:
    """The (segment, start, count) references of a nested value's data (after its kind)."""
    listed = data.partition(b"\x00")[0].decode()
    found = []
    for ref in listed.split(";"):
        segment, start, count = ref.split(":")
        found.append((segment, int(start), int(count)))
    return found


def load_nested(typed_load: Any, data: bytes, oldest: Any) -> Any:
    """A nested value back from its data; ``oldest(segment, n)`` gives a segment's first n
    messages, ``typed_load`` is the serializer's ``loads_typed``."""
    messages = [
        list(oldest(segment, start + count)[start:]) for segment, start, count in references(data)
    ]
    skeleton = typed_load(unpack(data.partition(b"\x00")[2]))
    return _restore(skeleton, messages)
