"""Reading a thread's conversation without receiving it again.

The saver's tip of a thread (:class:`~.messages.Tip`) says what its history list holds.
A read sends the tip's segment id and length; when the list is still that segment and
that long, the script sends the count of the messages the checkpoint needs instead of
the messages (``ReadReply.unsent``). They are then made from a private copy, decoded
once per element from the tip's encoded elements (:class:`Decoded`): each read gets
new objects, deep copies of those, as decoding the elements again would give (what a
node or the application changes in a state it was given never reaches another read).
A copy shares the message's strings and numbers (immutable) and makes its dicts and lists
by orjson from bytes (:func:`recipe`, checked once to load back equal), else it is made
field by field (:func:`fresh_copy`).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson
from langchain_core.messages import BaseMessage

from redis_chat_history.checkpoint.messages import Tip
from redis_chat_history.checkpoint.steps import ThreadKeys
from redis_chat_history.checkpoint.values import Segments, broken
from redis_chat_history.codec import decode_newest_first

#: Threads whose decoded messages one saver keeps (a thread beyond is decoded per read,
#: as before: objects take several times the bytes of the elements the tips keep).
DECODED_THREADS = 32
_ATOMS = frozenset({str, int, float, bool, type(None)})
_set = object.__setattr__


def _data(value: Any) -> Any:
    """A deep copy of decoded JSON data (dicts, lists, atoms); anything else deep-copied."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return _fields(value)
    if kind is list:
        return [item if type(item) in _ATOMS else _data(item) for item in value]
    return copy.deepcopy(value)


def _fields(source: dict[str, Any]) -> dict[str, Any]:
    copied = {}
    for name, value in source.items():
        kind = type(value)
        if kind in _ATOMS:
            copied[name] = value
        elif not value and (kind is dict or kind is list):
            copied[name] = kind()
        else:
            copied[name] = _data(value)
    return copied


def fresh_copy(message: BaseMessage) -> BaseMessage:
    """A new message equal to ``message``, sharing nothing mutable with it (what
    pydantic's ``__copy__`` does, with the field values copied deeply)."""
    kind = type(message)
    copied = kind.__new__(kind)
    _set(copied, "__dict__", _fields(message.__dict__))
    extra = message.__pydantic_extra__
    _set(copied, "__pydantic_extra__", None if extra is None else _fields(extra))
    _set(copied, "__pydantic_fields_set__", set(message.__pydantic_fields_set__))
    private = getattr(message, "__pydantic_private__", None)
    _set(copied, "__pydantic_private__", None if private is None else _fields(private))
    return copied


#: How to remake a held message fast: its fields with the immutable values (strings,
#: numbers: shared, as a deep copy would give equal ones) in place, the names of its
#: non-empty dicts and lists with their values as orjson bytes (None: there are none), its
#: empty ones, its extra (as orjson bytes; None when empty), its fields set, and whether it
#: had no extra dict at all.
Recipe = tuple[
    dict[str, Any],
    "bytes | None",
    tuple[tuple[str, type], ...],
    "bytes | None",
    frozenset[str],
    bool,
]


def _plain(value: Any) -> bool:
    """``value`` is JSON data of exactly the types orjson gives back."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False


def _round_trip(value: Any) -> bytes | None:
    """Orjson bytes that load back equal to ``value`` (checked), or None.

    Equality after a round trip leaves out what JSON would change: NaN and infinities,
    integers beyond 64 bits, lone surrogates (orjson refuses those).
    """
    if not _plain(value):
        return None
    try:
        blob = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return None
    return blob if orjson.loads(blob) == value else None


def recipe(message: BaseMessage) -> Recipe | None:
    """How :func:`remade` copies ``message`` (None: field by field, :func:`fresh_copy`)."""
    fields, extra = message.__dict__, message.__pydantic_extra__
    if getattr(message, "__pydantic_private__", None) is not None:
        return None
    template: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    empty: list[tuple[str, type]] = []
    for name, value in fields.items():
        kind = type(value)
        template[name] = value if kind in _ATOMS else None
        if kind in _ATOMS:
            continue
        if (kind is dict or kind is list) and not value:
            empty.append((name, kind))
        else:
            nested[name] = value
    blob = _round_trip(nested) if nested else None
    extra_blob = _round_trip(extra) if extra else None  # mostly {}: made below
    if (nested and blob is None) or (extra and extra_blob is None):
        return None
    fields_set = frozenset(message.__pydantic_fields_set__)
    return template, blob, tuple(empty), extra_blob, fields_set, extra is None


def remade(kind: type[BaseMessage], made: Recipe) -> BaseMessage:
    """A new message of ``kind`` from a :func:`recipe` (its dicts and lists by orjson loads:
    C speed; its strings shared)."""
    template, blob, empty, extra_blob, fields_set, no_extra = made
    fields = template.copy()  # (assigning to a name keeps the fields' order)
    if blob is not None:
        fields.update(orjson.loads(blob))
    for name, container in empty:
        fields[name] = container()
    copied = kind.__new__(kind)
    _set(copied, "__dict__", fields)
    if extra_blob is not None:
        _set(copied, "__pydantic_extra__", orjson.loads(extra_blob))
    else:
        _set(copied, "__pydantic_extra__", None if no_extra else {})
    _set(copied, "__pydantic_fields_set__", set(fields_set))
    _set(copied, "__pydantic_private__", None)
    return copied


def _held(message: BaseMessage) -> tuple[BaseMessage, Recipe | None]:
    return message, recipe(message)


_Held = tuple[BaseMessage, "Recipe | None"]


class Decoded:
    """Per thread, the tip's elements decoded once (never handed out: only copies are).

    Kept valid by identity: entry ``i`` is used while the tip's element ``i`` is the
    same bytes object it was decoded from (a tip read again from Redis, or another
    segment, is decoded again).
    """

    def __init__(self, size: int = DECODED_THREADS) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._threads: OrderedDict[str, tuple[list[bytes], list[_Held]]] = OrderedDict()

    def messages(self, history: str, tip: Tip, count: int) -> list[BaseMessage]:
        """Fresh copies of the oldest ``count`` messages of ``tip``."""
        with self._lock:
            encoded, objects = self._threads.pop(history, ([], []))
        same = 0
        limit = min(len(encoded), len(tip.encoded), count)
        while same < limit and encoded[same] is tip.encoded[same]:
            same += 1
        if same < count:
            wanted = tip.encoded[same:count]
            decoded = decode_newest_first(wanted[::-1], key=history)
            objects = objects[:same] + [_held(message) for message in decoded]
            encoded = encoded[:same] + wanted
        with self._lock:
            self._threads[history] = (encoded, objects)
            while len(self._threads) > self._size:
                self._threads.popitem(last=False)
        return [
            fresh_copy(message) if made is None else remade(type(message), made)
            for message, made in objects[:count]
        ]

    def forget(self, history: str) -> None:
        with self._lock:
            self._threads.pop(history, None)


class HeldSegments(Segments):
    """:class:`Segments` of a reply that left out the main segment the saver holds."""

    def __init__(
        self,
        keys: ThreadKeys,
        raw: dict[str, list[bytes]],
        unsent: dict[str, int],
        tip: Tip,
        decoded: Decoded,
    ) -> None:
        super().__init__(keys, raw)
        self._unsent = unsent
        self._tip = tip
        self._held: Decoded = decoded
        self._copies: dict[str, list[Any]] = {}

    def oldest(self, segment: str, count: int) -> list[Any]:
        if segment not in self._unsent or count == 0:
            return super().oldest(segment, count)
        if segment != self._tip.segment or count > len(self._tip.encoded):
            raise broken(self._keys, "", f"segment {segment}: {count} messages not sent")
        copies = self._copies.get(segment)
        if copies is None:  # one copy per reply, as one decoding is shared by its values
            needed = max(self._unsent[segment], count)
            copies = self._held.messages(self._keys.history, self._tip, needed)
            self._copies[segment] = copies
        return copies[:count]

    def raw_oldest(self, segment: str, count: int) -> list[bytes]:
        if segment in self._unsent and segment == self._tip.segment:
            return list(self._tip.encoded[:count])
        return super().raw_oldest(segment, count)


def held(tip: Tip) -> tuple[str, int] | None:
    """What a read tells the script the saver holds (None: nothing worth skipping)."""
    return (tip.segment, len(tip.encoded)) if tip.encoded else None


__all__: Sequence[str] = ("Decoded", "HeldSegments", "fresh_copy", "held", "recipe", "remade")
