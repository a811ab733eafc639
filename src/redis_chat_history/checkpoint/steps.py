"""What each checkpointer operation sends and how its reply is read: plans, no I/O.

Each function returns a :class:`~redis_chat_history.operations.Plan` of one script call
(see :mod:`.lua` for the layout), routed by the thread's history key. Plans are
idempotent by construction (a stored checkpoint id is never stored again; a stored
write ``(task, idx)`` is kept), so execution may re-send them after a lost reply.

Example::

    >>> keys = ThreadKeys.of("message_store:", "t1")
    >>> keys.history
    'message_store:t1'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from redis_chat_history.checkpoint import lua
from redis_chat_history.checkpoint.messages import MessagesWrite
from redis_chat_history.operations.plans import Command, Plan
from redis_chat_history.slots import CHECKPOINT_INDEX, CHECKPOINTS, SEGMENT, companion_key

SEP = "\x00"
REF = b"rch-ref\x00"
EMPTY = ("empty", b"")


@dataclass(frozen=True)
class ThreadKeys:
    """The keys of one thread, all in the history key's Cluster slot."""

    thread_id: str
    history: str

    @classmethod
    def of(cls, key_prefix: str, thread_id: str) -> ThreadKeys:
        return cls(thread_id, key_prefix + thread_id)

    @cached_property
    def data(self) -> str:
        return companion_key(self.history, CHECKPOINTS)

    @cached_property
    def index(self) -> str:
        return companion_key(self.history, CHECKPOINT_INDEX)

    def archive(self, segment: str) -> str:
        return companion_key(self.history, SEGMENT, segment)

    @property
    def base(self) -> list[str]:
        return [self.history, self.data, self.index]


def pack(typed: tuple[str, bytes]) -> bytes:
    """A serializer's ``(type, bytes)`` as stored: ``type\\0bytes``."""
    return typed[0].encode() + b"\x00" + typed[1]


def unpack(raw: bytes) -> tuple[str, bytes]:
    kind, _, data = raw.partition(b"\x00")
    return kind.decode(), data


def blob_field(ns: str, channel: str, version: Any) -> str:
    return f"b{SEP}{ns}{SEP}{channel}{SEP}{version}"


def versions_list(versions: dict[str, Any]) -> str:
    """The blob fields of a checkpoint, as ``channel\\0version\\0`` pairs (read by Lua)."""
    return "".join(f"{channel}{SEP}{version}{SEP}" for channel, version in versions.items())


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------
# Writes


@dataclass(frozen=True)
class PutReply:
    """``status`` 1 stored, 0 already stored (a re-send), 2 stale tip; the history list's
    segment id and length after the put (or as found, when stale)."""

    status: int
    segment: str = ""
    length: int = 0


def _parse_put(replies: list[Any]) -> PutReply:
    reply = replies[0]
    if int(reply[0]) == 0:
        return PutReply(0)
    return PutReply(int(reply[0]), _text(reply[1]), int(reply[2]))


def put_plan(
    keys: ThreadKeys,
    *,
    ns: str,
    checkpoint_id: str,
    parent_id: str,
    checkpoint: bytes,
    metadata: bytes,
    versions: dict[str, Any],
    run_id: str,
    ttl: int,
    blobs: Sequence[tuple[str, bytes]],
    messages: MessagesWrite | None,
    messages_field: str,
    new_segment: str,
) -> Plan[PutReply]:
    """Store one checkpoint, its new blobs and (root namespace) its messages, atomically."""
    script_keys = keys.base
    mode = messages.mode if messages is not None else ""
    if mode == "r":
        assert messages is not None
        script_keys = [*script_keys, keys.archive(messages.expected.segment)]
    expected = messages.expected if messages is not None else None
    args: list[Any] = [
        ns,
        checkpoint_id,
        parent_id,
        checkpoint,
        metadata,
        versions_list(versions),
        run_id,
        ttl,
        mode,
        expected.segment if expected else "",
        len(expected.encoded) if expected else 0,
        new_segment,
        messages_field,
        len(blobs),
    ]
    for name, value in blobs:
        args += (name, value)
    if messages is not None and mode in ("a", "r"):
        args += messages.elements
    command = Command.call(lua.PUT, script_keys, args)
    return Plan((command,), keys.history, _parse_put, writes=True)


def put_writes_plan(
    keys: ThreadKeys,
    *,
    ns: str,
    checkpoint_id: str,
    ttl: int,
    writes: Sequence[tuple[str, bool, bytes]],
) -> Plan[int]:
    """Store ``(field suffix, replace, value)`` writes of one task of one checkpoint."""
    args: list[Any] = [ns, checkpoint_id, ttl]
    for suffix, replace, value in writes:
        args += (suffix, "1" if replace else "0", value)
    command = Command.call(lua.PUT_WRITES, keys.base, args)
    return Plan((command,), keys.history, lambda replies: int(replies[0]), writes=True)


def prune_plan(keys: ThreadKeys, mode: str, run_ids: Sequence[str] = ()) -> Plan[int]:
    """Delete all but the latest checkpoint per namespace ('latest'), or a run's ('runs')."""
    command = Command.call(lua.PRUNE, keys.base, [mode, *run_ids])
    return Plan((command,), keys.history, lambda replies: int(replies[0]), writes=True)


def delete_plan(keys: ThreadKeys) -> Plan[bool]:
    command = Command.call(lua.DELETE, keys.base, [])
    return Plan((command,), keys.history, lambda replies: bool(replies[0]), writes=True)


# ---------------------------------------------------------------------------
# Reads


@dataclass(frozen=True)
class Record:
    """One stored checkpoint as read: packed checkpoint and metadata, parent id, blobs
    (channel -> packed value or reference) and writes (field suffix -> packed write)."""

    checkpoint_id: str
    checkpoint: bytes
    metadata: bytes
    parent_id: str
    blobs: dict[str, bytes]
    writes: list[tuple[str, bytes]]


@dataclass(frozen=True)
class ReadReply:
    """Records read, the segments they reference (newest first, as far as needed), and
    the history list's segment id and length; ``broken`` names what is missing."""

    records: list[Record]
    segments: dict[str, list[bytes]]
    segment: str = ""
    length: int = 0
    broken: str | None = None


def _pairs(flat: Sequence[Any]) -> list[tuple[Any, Any]]:
    return [(flat[at], flat[at + 1]) for at in range(0, len(flat), 2)]


def _record(row: Sequence[Any], ns: str) -> Record:
    checkpoint_id, checkpoint, metadata, parent, blobs, writes = row
    prefix = f"w{SEP}{ns}{SEP}{_text(checkpoint_id)}{SEP}"
    return Record(
        _text(checkpoint_id),
        checkpoint,
        metadata,
        _text(parent or b""),
        {_text(channel): value for channel, value in _pairs(blobs)},
        [(_text(field)[len(prefix) :], value) for field, value in _pairs(writes)],
    )


def _segments(flat: Sequence[Any]) -> dict[str, list[bytes]]:
    return {_text(seg): list(elements) for seg, elements in _pairs(flat)}


def read_plan(keys: ThreadKeys, ns: str, ids: Sequence[str], *, ttl: int = 0) -> Plan[ReadReply]:
    """Read checkpoints ``ids`` of namespace ``ns`` (``[]``: the latest) in one script."""

    def parse(replies: list[Any]) -> ReadReply:
        reply = replies[0]
        if int(reply[0]) == -1:
            return ReadReply([], {}, broken=_text(reply[1]))
        records = [_record(row, ns) for row in reply[3]]
        return ReadReply(records, _segments(reply[4]), _text(reply[1]), int(reply[2]))

    command = Command.call(lua.READ, keys.base, [ns, ttl, *(ids or [""])])
    return Plan((command,), keys.history, parse, writes=ttl > 0)


def page_plan(keys: ThreadKeys, ns: str, before: str, count: int) -> Plan[list[tuple[str, bytes]]]:
    """Ids and packed metadata of up to ``count`` checkpoints older than ``before``."""

    def parse(replies: list[Any]) -> list[tuple[str, bytes]]:
        return [(_text(cid), metadata) for cid, metadata in _pairs(replies[0])]

    command = Command.call(lua.PAGE, keys.base, [ns, before, count])
    return Plan((command,), keys.history, parse)


def namespaces_plan(keys: ThreadKeys) -> Plan[list[str]]:
    """The namespaces of the thread that hold checkpoints, sorted."""

    def parse(replies: list[Any]) -> list[str]:
        return [_text(member)[2:] for member in replies[0]]

    command = Command(("ZRANGEBYLEX", keys.index, f"[n{SEP}", f"[n{SEP}\xff"))
    return Plan((command,), keys.history, parse)


@dataclass(frozen=True)
class Ancestor:
    checkpoint_id: str
    writes: list[tuple[str, bytes]]
    seeds: dict[str, bytes]


def delta_plan(
    keys: ThreadKeys, ns: str, checkpoint_id: str, channels: Sequence[str]
) -> Plan[tuple[list[Ancestor], dict[str, list[bytes]], str | None]]:
    """The parent chain of a checkpoint for ``channels``, nearest ancestor first."""

    def parse(replies: list[Any]) -> tuple[list[Ancestor], dict[str, list[bytes]], str | None]:
        reply = replies[0]
        if int(reply[0]) == -1:
            return [], {}, _text(reply[1])
        chain = []
        for ancestor_id, writes, seeds in reply[1]:
            prefix = f"w{SEP}{ns}{SEP}{_text(ancestor_id)}{SEP}"
            chain.append(
                Ancestor(
                    _text(ancestor_id),
                    [(_text(f)[len(prefix) :], value) for f, value in _pairs(writes)],
                    {_text(channel): value for channel, value in _pairs(seeds)},
                )
            )
        return chain, _segments(reply[2]), None

    command = Command.call(lua.DELTA, keys.base, [ns, checkpoint_id, *channels])
    return Plan((command,), keys.history, parse)


@dataclass(frozen=True)
class Dump:
    """Everything one thread stores (for copy_thread)."""

    fields: list[tuple[bytes, bytes]]
    members: list[bytes]
    history: list[bytes]
    archives: list[tuple[str, list[bytes]]]


def dump_plan(keys: ThreadKeys) -> Plan[Dump]:
    def parse(replies: list[Any]) -> Dump:
        fields, members, history, archives = replies[0]
        return Dump(
            _pairs(fields),
            list(members),
            list(history),
            [(_text(seg), list(elements)) for seg, elements in _pairs(archives)],
        )

    return Plan((Command.call(lua.DUMP, keys.base, []),), keys.history, parse)


def restore_plan(keys: ThreadKeys, dump: Dump, *, ttl: int) -> Plan[bool]:
    """Write ``dump`` into an empty thread; False when it already holds something."""
    archive_keys = [keys.archive(seg) for seg, _ in dump.archives]
    renamed = {
        f"g{SEP}{seg}".encode(): key.encode()
        for (seg, _), key in zip(dump.archives, archive_keys, strict=True)
    }
    args: list[Any] = [ttl, len(dump.fields), len(dump.members), len(dump.history)]
    args.append(len(dump.archives))
    for name, value in dump.fields:
        args += (name, renamed.get(name, value))
    args += dump.members
    args += reversed(dump.history)
    for _, elements in dump.archives:
        args.append(len(elements))
        args += reversed(elements)
    command = Command.call(lua.RESTORE, [*keys.base, *archive_keys], args)
    return Plan((command,), keys.history, lambda replies: bool(replies[0]), writes=True)


def scan_index_plan(cursor: int, pattern: str) -> Plan[tuple[int, list[bytes]]]:
    """One SCAN step over checkpoint index keys (sorted sets) matching ``pattern``."""

    def parse(replies: list[Any]) -> tuple[int, list[bytes]]:
        next_cursor, found = replies[0]
        return int(next_cursor), list(found)

    command = Command(("SCAN", cursor, "MATCH", pattern, "COUNT", 1000, "TYPE", "zset"))
    return Plan((command,), pattern, parse)
