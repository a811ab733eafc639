"""Turning read records into LangGraph's values, and values into what is stored.

Server-free: the saver's operations (:mod:`.operations`) call these on the replies of
the plans in :mod:`.steps`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    Checkpoint,
    CheckpointTuple,
    PendingWrite,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from redis_chat_history.checkpoint.forms import channel_code, channel_name, task_code, task_of
from redis_chat_history.checkpoint.messages import MessagesWrite, Tip, encode_or_none
from redis_chat_history.checkpoint.nested import NESTED, NESTED_KIND, load_nested, pack_nested
from redis_chat_history.checkpoint.steps import REF, Record, ThreadKeys, pack, unpack
from redis_chat_history.codec import decode_newest_first
from redis_chat_history.errors import CorruptHistoryError

#: The type of a write stored as a reference to messages of a segment.
WREF = "\x01w"


class BrokenCheckpointError(CorruptHistoryError):
    """A thread's stored chain is broken (a key evicted or deleted by hand, a history list
    shorter than a checkpoint needs): the state is never returned empty or shortened."""

    def __init__(self, message: str, *, key: str, thread_id: str, checkpoint_id: str) -> None:
        super().__init__(message, key=key)
        self.thread_id = thread_id
        self.checkpoint_id = checkpoint_id


def broken(keys: ThreadKeys, checkpoint_id: str, what: str) -> BrokenCheckpointError:
    return BrokenCheckpointError(
        f"thread {keys.thread_id!r} (history {keys.history!r}), checkpoint "
        f"{checkpoint_id or '(latest)'}: the stored chain is broken: {what}",
        key=keys.history,
        thread_id=keys.thread_id,
        checkpoint_id=checkpoint_id,
    )


def parse_ref(raw: bytes) -> tuple[str, int]:
    segment, _, count = raw[len(REF) :].decode().partition(":")
    return segment, int(count)


class Segments:
    """The message segments of one reply, decoded once each (oldest first)."""

    def __init__(self, keys: ThreadKeys, raw: dict[str, list[bytes]]) -> None:
        self._keys = keys
        self._raw = raw
        self._decoded: dict[str, list[Any]] = {}

    def oldest(self, segment: str, count: int) -> list[Any]:
        if count == 0:
            return []
        decoded = self._decoded.get(segment)
        if decoded is None:
            decoded = decode_newest_first(self._raw.get(segment, []), key=self._keys.history)
            self._decoded[segment] = decoded
        if len(decoded) < count:  # (the script checks lengths; this guards a reply bug)
            raise broken(self._keys, "", f"segment {segment} holds {len(decoded)} of {count}")
        return decoded[:count]

    def raw_oldest(self, segment: str, count: int) -> list[bytes]:
        return list(reversed(self._raw.get(segment, [])))[:count]


def load_value(serde: SerializerProtocol, raw: bytes, segments: Segments) -> Any:
    if raw.startswith(REF):
        return segments.oldest(*parse_ref(raw))
    if raw.startswith(NESTED):
        return load_nested(serde.loads_typed, raw[len(NESTED) :], segments.oldest)
    return serde.loads_typed(unpack(raw))


def pack_value(serde: SerializerProtocol, value: Any, write: MessagesWrite | None) -> bytes:
    """A value a put gives, with references to the messages the list holds after the put
    (when the put writes the list: the script checks it holds what the saver saw)."""
    if write is not None:
        after = Tip("*", write.after_encoded, write.after_objects)
        nested = pack_nested(serde.dumps_typed, value, after, "*")
        if nested is not None:
            return nested
    return pack(serde.dumps_typed(value))


def channel_values(serde: SerializerProtocol, record: Record, segments: Segments) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for channel, raw in record.blobs.items():
        if raw.startswith(b"empty\x00"):
            continue
        values[channel] = load_value(serde, raw, segments)
    return values


def _head(channel: str, task_path: str) -> bytes:
    """A write's ``channel\\0path\\0`` (the channel stored short, see :mod:`.forms`)."""
    return f"{channel_code(channel)}\x00{task_path}\x00".encode("utf-8", "surrogateescape")


def pack_write(serde: SerializerProtocol, channel: str, value: Any, task_path: str) -> bytes:
    head = _head(channel, task_path)
    return head + pack(serde.dumps_typed(value))


def write_rows(
    serde: SerializerProtocol,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
    locate: Callable[[Any], tuple[str, int] | None] | None = None,
    tip: Tip | None = None,
    encode: Callable[[Any], list[bytes] | None] = encode_or_none,
) -> list[tuple[bytes, bool, bytes, list[bytes]]]:
    """put_writes' rows: field suffix ``task\\0idx`` (:func:`.forms.task_code`), replace (special writes), value, and
    the history encodings of a ``messages`` write (the script stores it as a reference
    when the list holds them: the put that appends them may run first).

    ``locate`` finds a ``messages`` write already in the history list (as this saver last
    saw it): it is stored as a reference to it. Given only for the root namespace of a
    thread whose messages are its chat history, with ``tip`` (that list): runs of its
    messages in other writes are stored as references too (:mod:`.nested`).
    """
    rows = []
    for position, (channel, value) in enumerate(writes):
        idx = WRITES_IDX_MAP.get(channel, position)
        found = locate(value) if locate is not None and channel == "messages" else None
        hints: list[bytes] = []
        if found is not None:
            # (never deflated: the scripts read it)
            packed = (
                _head(channel, task_path) + f"{WREF}\x00{found[0]}:{found[1]}:{len(value)}".encode()
            )
        else:
            nested = None
            if tip is not None and channel != "messages":
                nested = pack_nested(serde.dumps_typed, value, tip, tip.segment)
            if locate is not None and channel == "messages" and isinstance(value, list):
                hints = encode(value) or []
            if nested is not None:
                packed = _head(channel, task_path) + nested
            else:
                # deflated even with hints: a write the list never comes to hold (the last
                # step's, a removal's) stays stored as it is (measured: x2.0 the messages
                # stored once undeflated, x1.8 deflated, 200 turns with tools)
                packed = pack_write(serde, channel, value, task_path)
        rows.append((task_code(task_id, idx), idx < 0, packed, hints))
    return rows


def _write_value(serde: SerializerProtocol, rest: bytes, segments: Segments) -> Any:
    kind, data = unpack(rest)
    if kind == NESTED_KIND:
        return load_nested(serde.loads_typed, data, segments.oldest)
    if kind == WREF:
        segment, start, count = data.decode().split(":")
        first, size = int(start), int(count)
        return segments.oldest(segment, first + size)[first:]
    return serde.loads_typed((kind, data))


def pending_writes(
    serde: SerializerProtocol, rows: list[tuple[str, bytes]], segments: Segments
) -> list[PendingWrite]:
    """Stored writes in LangGraph's order (``writes_sort_key``)."""
    decoded = []
    for suffix, raw in rows:
        task_id, idx = task_of(suffix)
        channel, path, rest = raw.split(b"\x00", 2)
        key = writes_sort_key(path.decode("utf-8", "surrogateescape"), task_id, idx)
        name = channel_name(channel.decode("utf-8", "surrogateescape"))
        decoded.append((key, task_id, name, rest))
    decoded.sort(key=lambda row: row[0])
    return [
        (task_id, channel, _write_value(serde, rest, segments))
        for _, task_id, channel, rest in decoded
    ]


def config_of(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def checkpoint_tuple(
    serde: SerializerProtocol, keys: ThreadKeys, ns: str, record: Record, segments: Segments
) -> CheckpointTuple:
    stored = serde.loads_typed(unpack(record.checkpoint))
    checkpoint = cast(
        Checkpoint, {"id": record.checkpoint_id, "channel_versions": record.versions, **stored}
    )
    checkpoint["channel_values"] = channel_values(serde, record, segments)
    return CheckpointTuple(
        config=config_of(keys.thread_id, ns, record.checkpoint_id),
        checkpoint=checkpoint,
        metadata=serde.loads_typed(unpack(record.metadata)),
        parent_config=config_of(keys.thread_id, ns, record.parent_id) if record.parent_id else None,
        pending_writes=pending_writes(serde, record.writes, segments),
    )


def tip_of(
    record: Record, segments: Segments, values: dict[str, Any], segment: str, length: int
) -> Tip | None:
    """The history list's tip when ``record``'s messages are exactly the whole list."""
    raw = record.blobs.get("messages")
    if raw is None or not raw.startswith(REF):
        return None
    ref_segment, count = parse_ref(raw)
    if ref_segment != segment or count != length:
        return None
    return Tip(segment, segments.raw_oldest(segment, count), list(values.get("messages", [])))
