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
a different encoding. An object a task wrote since the tip was taken, and any of the
newest few, is compared by its encoding only (a node may change a message of the state
in place and write it back, as langchain < 1.3's ``HumanInTheLoopMiddleware`` does with
an edited tool call; its write and the next put may reach the saver in either order).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from redis_chat_history.codec import decode_newest_first, encode_message
from redis_chat_history.construct import EXACT_CLASSES
from redis_chat_history.errors import MessageEncodeError

#: The implicit segment id of a history list the checkpointer has not written yet.
MAIN0 = "0"
#: A noted write the put makes a reference: (writes field, row suffix, start, count, sha1).
Rewrite = tuple[str, str | bytes, int, int, str]
#: The newest messages of the list a put compares by their encoding even when the state
#: holds the very objects it stored (a node may have changed one in place: its write may
#: reach the saver after the put).
RECHECKED = 8
#: Threads whose tip one saver keeps (each holds its conversation's encoded messages).
TIP_THREADS = 256


@dataclass
class Tip:
    """What the history list of one thread holds, as this saver last saw it."""

    segment: str = MAIN0
    encoded: list[bytes] = field(default_factory=list)
    objects: list[BaseMessage | None] = field(default_factory=list)
    #: ``id()`` of objects written by a task since: compared by their encoding, not
    #: their identity (a node may change a message of the state in place and write it).
    dirty: set[int] = field(default_factory=set)


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
    trusted = length - RECHECKED
    while same < limit:
        message = messages[same]
        if message is tip.objects[same] and same < trusted and id(message) not in tip.dirty:
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


def encode_or_none(messages: Sequence[Any]) -> list[bytes] | None:
    """The encodings of ``messages`` (None when one cannot be encoded exactly)."""
    if storable(list(messages)) is None:
        return None
    return encode_all(messages)


def encodings_once() -> Callable[[Any], list[bytes] | None]:
    """:func:`encode_or_none`, made once per value (by identity: for one call's values)."""
    known: dict[int, list[bytes] | None] = {}

    def encoded(value: Any) -> list[bytes] | None:
        if id(value) not in known:
            known[id(value)] = encode_or_none(value)
        return known[id(value)]

    return encoded


def find_run(encoded: Sequence[bytes], wanted: Sequence[bytes], lowest: int) -> int | None:
    """Where the encodings ``wanted`` are, consecutive, among ``encoded[lowest:]``
    (newest tried first). Encodings, not objects: an object changed in place since it
    was stored is not what the list holds."""
    size = len(wanted)
    if not size:
        return None
    first = wanted[0]
    for start in range(len(encoded) - size, lowest - 1, -1):
        if encoded[start] == first and encoded[start : start + size] == wanted:
            return start
    return None


class Tips:
    """The tips of recently used threads (least recently used dropped first), and the
    messages of each thread's latest ``messages`` writes (to store them as references
    once the next checkpoint appends them to the history list)."""

    def __init__(self, size: int = TIP_THREADS) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._tips: OrderedDict[str, Tip] = OrderedDict()
        self._writes: OrderedDict[str, list[list[Any]]] = OrderedDict()

    def remember_writes(self, thread_key: str, field: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Note ``messages`` writes (row suffix, messages, stored value[, their encodings])
        of writes field ``field`` not yet in the history list: the put that appends them
        makes them references (when the row still holds that value: a re-sent write is
        kept)."""
        noted = []
        for suffix, messages, stored, *known in rows:
            encoded = known[0] if known else encode_or_none(messages)
            if encoded is not None:
                digest = hashlib.sha1(stored).hexdigest()
                noted.append([field, suffix, encoded, digest, 0])
        with self._lock:
            tip = self._tips.get(thread_key)
            if tip is not None:
                tip.dirty.update(id(message) for row in rows for message in row[1])
            if not noted:
                return
            known = self._writes.pop(thread_key, [])
            known += noted
            self._writes[thread_key] = known[-32:]
            while len(self._writes) > self._size:
                self._writes.popitem(last=False)

    def rewrites(self, thread_key: str, write: MessagesWrite | None) -> list[Rewrite]:
        """Noted writes whose messages the list holds after this put:
        (field, row suffix, start from the oldest, count, sha1 of the row's value)."""
        if write is None or write.mode == "":
            return []
        with self._lock:
            known = list(self._writes.get(thread_key, []))
        encoded = write.after_encoded
        found = []
        for name, suffix, wanted, digest, _tries in known:
            lowest = max(0, len(encoded) - len(wanted) - 64)
            start = find_run(encoded, wanted, lowest)
            if start is not None:
                found.append((name, suffix, start, len(wanted), digest))
        return found

    def settle(self, thread_key: str, done: Sequence[Rewrite]) -> None:
        """After a put: drop the rewritten writes, and those tried by a few puts."""
        finished = {(entry[0], entry[1]) for entry in done}
        with self._lock:
            known = self._writes.get(thread_key)
            if known is None:
                return
            kept = []
            for entry in known:
                entry[4] += 1
                if (entry[0], entry[1]) not in finished and entry[4] < 4:
                    kept.append(entry)
            self._writes[thread_key] = kept

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

    def locate(
        self, thread_key: str, messages: Sequence[Any], encoded: list[bytes] | None = None
    ) -> tuple[str, int] | None:
        """(segment, start) when the history list already holds ``messages`` (encoded
        the same, as ``encoded`` when given) among its newest elements: a write that
        arrives after the put."""
        with self._lock:
            tip = self._tips.get(thread_key)
        if tip is None or not messages:
            return None
        wanted = encoded if encoded is not None else encode_or_none(messages)
        if wanted is None:
            return None
        start = find_run(tip.encoded, wanted, max(0, len(tip.encoded) - 64))
        return None if start is None else (tip.segment, start)

    def forget(self, thread_key: str) -> None:
        with self._lock:
            self._tips.pop(thread_key, None)
            self._writes.pop(thread_key, None)


def tip_from_list(segment: str, newest_first: list[bytes], key: str) -> tuple[Tip, list[Any]]:
    """A tip for a history list read from Redis, and its messages (oldest first)."""
    messages = decode_newest_first(newest_first, key=key)
    encoded = list(reversed(newest_first))
    return Tip(segment, encoded, list(messages)), messages
