"""The ``messages`` channel as the thread's chat history: what a put sends for it.

A checkpoint's messages are stored as a reference, "the oldest n messages of segment
S", and the thread's main segment is its history list (this package's codec, the old
class's layout). The saver remembers, per thread, what it last saw the history list
hold (a :class:`Tip`: the segment id, the encoded elements, the message objects). A put
compares the new list with it: when the new list extends it, only the new messages are
sent (appended); otherwise the list is replaced, the old one archived under its segment
id so that older checkpoints stay readable. The script checks that the history still
holds what the tip says (segment id and length) and answers *stale* when it does not;
the saver then reads the list and sends again.

Messages are compared by identity first (LangGraph's ``add_messages`` keeps the objects
of the previous state), then by their encoding: an edited message is a new object with
a different encoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from redis_chat_history.codec import decode_newest_first, encode_message
from redis_chat_history.errors import MessageEncodeError

#: Message classes the codec stores exactly (a subclass would come back as its base).
EXACT_CLASSES = frozenset(
    {AIMessage, HumanMessage, SystemMessage, ToolMessage, ChatMessage, FunctionMessage}
)
#: The implicit segment id of a history list the checkpointer has not written yet.
MAIN0 = "0" * 16
#: Threads whose tip one saver keeps (each holds its conversation's encoded messages).
TIP_THREADS = 256


@dataclass
class Tip:
    """What the history list of one thread holds, as this saver last saw it."""

    segment: str = MAIN0
    encoded: list[bytes] = field(default_factory=list)
    objects: list[BaseMessage | None] = field(default_factory=list)


@dataclass(frozen=True)
class MessagesWrite:
    """What a put sends for the messages channel: ``mode`` '' (nothing), 'k' (check
    only), 'a' (append ``elements``) or 'r' (replace the list with ``elements``)."""

    mode: str
    expected: Tip
    elements: list[bytes]
    #: The tip after the put (when it applies).
    after_encoded: list[bytes]
    after_objects: list[BaseMessage | None]


def storable(value: Any) -> list[BaseMessage] | None:
    """``value`` as a list of exactly encodable messages, or None (then it is a blob)."""
    if not isinstance(value, list):
        return None
    for message in value:
        if type(message) not in EXACT_CLASSES:
            return None
    return value


def encode_all(messages: Sequence[BaseMessage]) -> list[bytes] | None:
    try:
        return [encode_message(message) for message in messages]
    except (MessageEncodeError, TypeError, ValueError):
        return None


def plan_messages(tip: Tip, messages: list[BaseMessage]) -> MessagesWrite | None:
    """How to make the history list hold ``messages`` (None: they cannot be stored as one)."""
    length = len(tip.encoded)
    same = 0
    encoded: list[bytes] = []
    limit = min(length, len(messages))
    while same < limit:
        message = messages[same]
        if message is tip.objects[same]:
            same += 1
            continue
        try:
            raw = encode_message(message)
        except (MessageEncodeError, TypeError, ValueError):
            return None
        if raw != tip.encoded[same]:
            break
        same += 1
    if same == length:
        fresh = encode_all(messages[length:])
        if fresh is None:
            return None
        mode = "a" if fresh else "k"
        encoded = [*tip.encoded, *fresh]
        return MessagesWrite(mode, tip, fresh, encoded, list(messages))
    whole = encode_all(messages)
    if whole is None:
        return None
    return MessagesWrite("r", tip, whole, whole, list(messages))


class Tips:
    """The tips of recently used threads (least recently used dropped first)."""

    def __init__(self, size: int = TIP_THREADS) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._tips: OrderedDict[str, Tip] = OrderedDict()

    def get(self, thread_key: str) -> Tip:
        with self._lock:
            tip = self._tips.get(thread_key)
            if tip is None:
                return Tip()
            self._tips.move_to_end(thread_key)
            return tip

    def set(self, thread_key: str, tip: Tip) -> None:
        with self._lock:
            self._tips[thread_key] = tip
            self._tips.move_to_end(thread_key)
            while len(self._tips) > self._size:
                self._tips.popitem(last=False)

    def forget(self, thread_key: str) -> None:
        with self._lock:
            self._tips.pop(thread_key, None)


def tip_from_list(segment: str, newest_first: list[bytes], key: str) -> tuple[Tip, list[Any]]:
    """A tip for a history list read from Redis, and its messages (oldest first)."""
    messages = decode_newest_first(newest_first, key=key)
    encoded = list(reversed(newest_first))
    return Tip(segment, encoded, list(messages)), messages
