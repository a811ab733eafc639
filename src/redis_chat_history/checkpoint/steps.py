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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from redis_chat_history.checkpoint import lua, lua_reads
from redis_chat_history.checkpoint.forms import (
    _EMPTY,
    SEP,
    _text,
    channel_code,
    channel_name,
    parse_rows,
    unpack_record,
)

# (re-exported: the saver's operations and the tests name the stored forms here)
from redis_chat_history.checkpoint.forms import EMPTY as EMPTY
from redis_chat_history.checkpoint.forms import REF as REF
from redis_chat_history.checkpoint.forms import blob_field as blob_field
from redis_chat_history.checkpoint.forms import pack as pack
from redis_chat_history.checkpoint.forms import pack_record as pack_record
from redis_chat_history.checkpoint.forms import pack_record_typed as pack_record_typed
from redis_chat_history.checkpoint.forms import unpack as unpack
from redis_chat_history.checkpoint.forms import writes_field as writes_field
from redis_chat_history.checkpoint.messages import MessagesWrite
from redis_chat_history.operations.plans import Command, Plan
from redis_chat_history.slots import CHECKPOINT_INDEX, CHECKPOINTS, SEGMENT, companion_key


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
        """The key of archived segment ``segment`` (16 hex digits; the first one is '0')."""
        return companion_key(self.history, SEGMENT, segment.rjust(16, "0"))

    @property
    def base(self) -> list[str]:
        return [self.history, self.data, self.index]


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
    record: bytes,
    run_id: str,
    ttl: int,
    blobs: Sequence[tuple[str, bytes]],
    messages: MessagesWrite | None,
    messages_field: str,
    new_segment: str,
    rewrites: Sequence[tuple[str, str | bytes, int, int, str]] = (),
) -> Plan[PutReply]:
    """Store one checkpoint, its new values and (root namespace) its messages, atomically.

    ``blobs`` are the new values, named by :func:`blob_field` (an empty one is not
    stored: no value is empty); ``messages_field`` names the one the list holds.
    ``rewrites`` name rows of writes fields whose messages the list holds after the put,
    from a position counted from the oldest (they become references to them, when the
    row still holds the value whose sha1 is given).
    """
    script_keys = keys.base
    mode = messages.mode if messages is not None else ""
    if mode == "r":
        assert messages is not None
        script_keys = [*script_keys, keys.archive(messages.expected.segment)]
    expected = messages.expected if messages is not None else None
    sending = mode in ("a", "r")
    rewrites = rewrites if mode else ()
    args: list[Any] = [
        ns,
        checkpoint_id,
        record,
        run_id,
        ttl,
        mode,
        expected.segment if expected else "",
        len(expected.encoded) if expected else 0,
        new_segment,
        messages_field.partition(SEP)[0],
        len(rewrites),
    ]
    given = [(name.partition(SEP), b"" if value == _EMPTY else value) for name, value in blobs]
    args.append(len(given))
    for field, suffix, start, count, digest in rewrites:
        args += (field, suffix, start, count, digest)
    for (version, _, channel), value in given:
        args += (version, channel, value)
    if messages is not None and sending:
        args += messages.elements
    command = Command.call(lua.PUT, script_keys, args)
    return Plan((command,), keys.history, _parse_put, writes=True, idempotent=True)


def put_writes_plan(
    keys: ThreadKeys,
    *,
    ns: str,
    checkpoint_id: str,
    ttl: int,
    writes: Sequence[
        tuple[str | bytes, bool, bytes] | tuple[str | bytes, bool, bytes, Sequence[bytes]]
    ],
) -> Plan[int]:
    """Store ``(field suffix, replace, value[, history encodings])`` writes of one task of
    one checkpoint. A write given the history encodings of its messages is stored as a
    reference to them when the history list holds them among its newest elements."""
    args: list[Any] = [ns, checkpoint_id, ttl]
    for suffix, replace, value, *more in writes:
        hints = list(more[0]) if more else []
        args += (suffix, "1" if replace else "0", value, len(hints), *hints)
    command = Command.call(lua.PUT_WRITES, keys.base, args)
    return Plan(
        (command,), keys.history, lambda replies: int(replies[0]), writes=True, idempotent=True
    )


# ---------------------------------------------------------------------------
# Reads


@dataclass(frozen=True)
class Record:
    """One stored checkpoint as read: packed checkpoint and metadata, parent id, blobs
    (channel -> packed value or reference) and writes (``task\\0idx`` -> packed write)."""

    checkpoint_id: str
    checkpoint: bytes
    metadata: bytes
    parent_id: str
    blobs: dict[str, bytes]
    writes: list[tuple[str, bytes]]
    versions: dict[str, Any]


@dataclass(frozen=True)
class ReadReply:
    """Records read, the segments they reference (newest first, as far as needed), and
    the history list's segment id and length; ``broken`` names what is missing."""

    records: list[Record]
    segments: dict[str, list[bytes]]
    segment: str = ""
    length: int = 0
    broken: str | None = None
    #: Segments the reader said it holds, not sent: id -> the count the records need.
    unsent: dict[str, int] = dataclasses.field(default_factory=dict)


def _pairs(flat: Sequence[Any]) -> list[tuple[Any, Any]]:
    return [(flat[at], flat[at + 1]) for at in range(0, len(flat), 2)]


def _record(row: Sequence[Any]) -> Record:
    checkpoint_id, raw, _parent, blobs, writes = row
    parent, metadata, checkpoint, versions = unpack_record(raw)
    return Record(
        _text(checkpoint_id),
        checkpoint,
        metadata,
        parent,
        {channel_name(_text(channel)): value for channel, value in _pairs(blobs)},
        parse_rows(writes),
        versions,
    )


def _segments(flat: Sequence[Any]) -> dict[str, list[bytes]]:
    """Segment id -> its oldest elements (newest first), the longest read of each."""
    found: dict[str, list[bytes]] = {}
    for seg, elements in _pairs(flat):
        if isinstance(elements, int):  # held by the reader (see read_plan)
            continue
        if len(elements) >= len(found.get(_text(seg), ())):
            found[_text(seg)] = list(elements)
    return found


def read_plan(
    keys: ThreadKeys,
    ns: str,
    ids: Sequence[str],
    *,
    ttl: int = 0,
    known: tuple[str, int] | None = None,
) -> Plan[ReadReply]:
    """Read checkpoints ``ids`` of namespace ``ns`` (``[]``: the latest) in one script.

    ``known`` (segment id, length): the main segment the reader holds; when the history
    list is still that segment, that long, its elements are not sent (``unsent``).
    """

    def parse(replies: list[Any]) -> ReadReply:
        reply = replies[0]
        if int(reply[0]) == -1:
            return ReadReply([], {}, broken=_text(reply[1]))
        records = [_record(row) for row in reply[3]]
        unsent = {
            _text(seg): int(count) for seg, count in _pairs(reply[4]) if isinstance(count, int)
        }
        return ReadReply(
            records, _segments(reply[4]), _text(reply[1]), int(reply[2]), unsent=unsent
        )

    held = [known[0], known[1]] if known else ["", 0]
    command = Command.call(lua_reads.READ, keys.base, [ns, ttl, *held, *(ids or [""])])
    return Plan((command,), keys.history, parse, writes=ttl > 0)


def page_plan(keys: ThreadKeys, ns: str, before: str, count: int) -> Plan[list[tuple[str, bytes]]]:
    """Ids and packed metadata of up to ``count`` checkpoints older than ``before``."""

    def parse(replies: list[Any]) -> list[tuple[str, bytes]]:
        return [
            (_text(cid), unpack_record(raw)[1] if raw else b"") for cid, raw in _pairs(replies[0])
        ]

    command = Command.call(lua_reads.PAGE, keys.base, [ns, before, count])
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
            chain.append(
                Ancestor(
                    _text(ancestor_id),
                    [(_text(suffix), value) for suffix, value in _pairs(writes)],
                    {channel_name(_text(channel)): value for channel, value in _pairs(seeds)},
                )
            )
        return chain, _segments(reply[2]), None

    coded = [channel_code(channel) for channel in channels]
    command = Command.call(lua_reads.DELTA, keys.base, [ns, checkpoint_id, *coded])
    return Plan((command,), keys.history, parse)
