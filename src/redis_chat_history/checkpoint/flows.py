"""The checkpointer's operations, written once for sync and async.

Each operation is a generator: it yields a :class:`Run` (a plan to send, optionally to
one node), :class:`Masters` (the nodes a listing visits) or :class:`Emit` (an item of a
listing), and is sent back the result. The saver's sync and async methods drive the
same generator with :func:`~redis_chat_history.execution.run` or ``arun``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    LATEST_VERSION,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from redis_chat_history.checkpoint import steps, upkeep
from redis_chat_history.checkpoint.forms import pack_record_typed
from redis_chat_history.checkpoint.fresh import Decoded, HeldSegments, held
from redis_chat_history.checkpoint.messages import (
    Tip,
    Tips,
    encodings_once,
    plan_messages,
    storable,
    tip_from_list,
)
from redis_chat_history.checkpoint.steps import EMPTY, ThreadKeys, blob_field, pack
from redis_chat_history.checkpoint.values import (
    WREF,
    Segments,
    broken,
    checkpoint_tuple,
    config_of,
    pack_value,
    tip_of,
    write_rows,
)
from redis_chat_history.errors import InvalidArgumentError
from redis_chat_history.operations.plans import Command, Plan
from redis_chat_history.slots import CHECKPOINT_INDEX, companion_key, new_run_id

#: Checkpoints whose metadata one listing step reads (and whose records one step reads).
PAGE = 25
#: Puts that find the history list changed under them (another writer) before giving up.
STALE_RETRIES = 5


@dataclass(frozen=True)
class Run:
    plan: Plan[Any]
    node: Any = None


@dataclass(frozen=True)
class Masters:
    pattern: str


@dataclass(frozen=True)
class Emit:
    item: CheckpointTuple


Flow = Generator[Any, Any, Any]


@dataclass
class Context:
    """What the operations share: the serializer, keys, tips and the thread TTL."""

    serde: SerializerProtocol
    key_prefix: str
    tips: Tips
    ttl: int
    read_ttl: int
    history: bool
    #: The history key of a thread id (the store's: it refuses ids that name a companion key).
    history_key: Callable[[str], str]
    #: The tips' messages, decoded once: a read that the script spares them copies these.
    decoded: Decoded = field(default_factory=Decoded)

    #: ThreadKeys of recently used threads (made once: each put and read names them).
    known_keys: dict[str, ThreadKeys] = field(default_factory=dict)

    def keys(self, thread_id: str) -> ThreadKeys:
        found = self.known_keys.get(thread_id)
        if found is None:
            if len(self.known_keys) >= 1024:
                self.known_keys.clear()
            found = ThreadKeys(str(thread_id), self.history_key(str(thread_id)))
            self.known_keys[thread_id] = found
        return found


def where(config: RunnableConfig) -> tuple[str, str, str]:
    configurable = config["configurable"]
    return (
        configurable["thread_id"],
        configurable.get("checkpoint_ns", ""),
        get_checkpoint_id(config) or "",
    )


def _tuples(
    ctx: Context,
    keys: ThreadKeys,
    ns: str,
    reply: steps.ReadReply,
    wanted: str,
    tip: Tip | None = None,
) -> list[CheckpointTuple]:
    if reply.broken is not None:
        raise broken(keys, wanted, reply.broken)
    if reply.unsent and tip is not None:
        segments: Segments = HeldSegments(keys, reply.segments, reply.unsent, tip, ctx.decoded)
    else:
        segments = Segments(keys, reply.segments)
    found = []
    for record in reply.records:
        item = checkpoint_tuple(ctx.serde, keys, ns, record, segments)
        if ns == "" and ctx.history:
            tip = tip_of(
                record, segments, item.checkpoint["channel_values"], reply.segment, reply.length
            )
            if tip is not None:
                ctx.tips.set(keys.history, tip)
        found.append(item)
    return found


def get_tuple(ctx: Context, config: RunnableConfig) -> Flow:
    thread_id, ns, checkpoint_id = where(config)
    keys = ctx.keys(thread_id)
    ids = [checkpoint_id] if checkpoint_id else []
    # the history list this saver holds is not sent again (one round trip either way)
    tip = ctx.tips.get(keys.history) if ns == "" and ctx.history else None
    known = held(tip) if tip is not None else None
    reply = yield Run(steps.read_plan(keys, ns, ids, ttl=ctx.read_ttl, known=known))
    found = _tuples(ctx, keys, ns, reply, checkpoint_id, tip)
    if not found and ns == "" and not checkpoint_id and reply.length and ctx.history:
        yield from _adopt(ctx, thread_id, keys)
        reply = yield Run(steps.read_plan(keys, ns, ids, ttl=ctx.read_ttl))
        found = _tuples(ctx, keys, ns, reply, checkpoint_id)
    return found[0] if found else None


#: The id of the checkpoint a thread starts from when its history list existed before
#: it had checkpoints (below every uuid6 LangGraph makes).
ADOPTED_ID = "00000000-0000-6000-8000-000000000000"


def _adopt(ctx: Context, thread_id: str, keys: ThreadKeys) -> Flow:
    """Store a first checkpoint holding the thread's existing chat history.

    A ``RunnableWithMessageHistory`` application (or the old class) wrote the list; the
    agent continues that conversation. Its id is fixed, so adopting twice stores it once.
    """
    tip = yield Run(_read_tip(keys))
    ctx.tips.set(keys.history, tip)
    # LangGraph gives messages without an id one (add_messages): give them theirs now,
    # so the list holds what the state holds (the list is then rewritten once)
    messages = [
        message if message.id else message.model_copy(update={"id": str(uuid.uuid4())})
        for message in tip.objects
        if message is not None
    ]
    version = f"{1:012}.{0:010x}"
    checkpoint: Checkpoint = {
        "v": LATEST_VERSION,
        "id": ADOPTED_ID,
        "ts": "1970-01-01T00:00:00+00:00",
        "channel_values": {"messages": messages},
        "channel_versions": {"messages": version},
        "versions_seen": {},
        "updated_channels": ["messages"],
    }
    metadata: CheckpointMetadata = {"source": "input", "step": -2, "parents": {}}
    config = config_of(thread_id, "", "")
    yield from put(ctx, config, checkpoint, metadata, {"messages": version})
    return None


def _matches(metadata: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    return not wanted or all(metadata.get(key) == value for key, value in wanted.items())


def thread_ids(ctx: Context) -> Flow:
    """Every thread with checkpoints under the key prefix (SCAN on every master)."""
    from redis_chat_history.store import glob_escape

    pattern = glob_escape(ctx.key_prefix) + "*"
    found: list[str] = []
    for node in (yield Masters(pattern)):
        cursor = -1
        while cursor:
            cursor, keys = yield Run(upkeep.scan_index_plan(max(cursor, 0), pattern), node)
            for raw in keys:
                thread_id = _thread_of_index(ctx, raw)
                if thread_id is not None and thread_id not in found:
                    found.append(thread_id)
    return found


def _thread_of_index(ctx: Context, raw: bytes | str) -> str | None:
    key = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    at = key.rfind("\x00" + CHECKPOINT_INDEX)
    while at > len(ctx.key_prefix):
        base = key[:at]
        if companion_key(base, CHECKPOINT_INDEX) == key:
            return base[len(ctx.key_prefix) :]
        at = key.rfind("\x00" + CHECKPOINT_INDEX, 0, at)
    return None


def list_checkpoints(
    ctx: Context,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> Flow:
    """Checkpoints newest first per namespace; yields :class:`Emit` items."""
    configurable = config["configurable"] if config else {}
    if config is not None and "thread_id" in configurable:
        wanted = [configurable["thread_id"]]
    else:
        wanted = yield from thread_ids(ctx)
    only_ns = configurable.get("checkpoint_ns")
    only_id = configurable.get("checkpoint_id")
    before_id = get_checkpoint_id(before) if before else None
    remaining = limit
    for thread_id in wanted:
        keys = ctx.keys(thread_id)
        namespaces = [only_ns] if only_ns is not None else (yield Run(steps.namespaces_plan(keys)))
        for ns in namespaces:
            top = before_id or ""
            while remaining is None or remaining > 0:
                page = yield Run(steps.page_plan(keys, ns, top, PAGE))
                chosen = [
                    cid
                    for cid, raw in page
                    if raw
                    and (not only_id or cid == only_id)
                    and _matches(ctx.serde.loads_typed(steps.unpack(raw)), filter)
                ]
                if remaining is not None:
                    chosen = chosen[:remaining]
                if chosen:
                    reply = yield Run(steps.read_plan(keys, ns, chosen))
                    for item in _tuples(ctx, keys, ns, reply, chosen[0]):
                        yield Emit(item)
                        if remaining is not None:
                            remaining -= 1
                if len(page) < PAGE:
                    break
                top = page[-1][0]
            if remaining == 0:
                return None
    return None


def _read_tip(keys: ThreadKeys) -> Plan[Tip]:
    commands = (Command(("HGET", keys.data, "main")), Command(("LRANGE", keys.history, 0, -1)))

    def parse(replies: list[Any]) -> Tip:
        segment = replies[0].decode() if replies[0] else Tip().segment
        return tip_from_list(segment, list(replies[1]), keys.history)[0]

    return Plan(commands, keys.history, parse)


def put(
    ctx: Context,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> Flow:
    thread_id, ns, parent_id = where(config)
    keys = ctx.keys(thread_id)
    stored: dict[str, Any] = dict(checkpoint)
    values: dict[str, Any] = stored.pop("channel_values")
    # the record's field name and blob list hold these (unpack_record puts them back)
    del stored["id"], stored["channel_versions"]
    full_metadata = get_checkpoint_metadata(config, metadata)
    messages = storable(values.get("messages")) if ns == "" and ctx.history else None
    for attempt in range(STALE_RETRIES):
        tip = ctx.tips.get(keys.history)
        write = plan_messages(tip, messages) if messages is not None else None
        rewrites = ctx.tips.rewrites(keys.history, write)
        if (
            write is not None
            and write.mode == "k"
            and "messages" not in new_versions
            and not rewrites
        ):
            write = None  # the list already holds them and nothing refers to it
        blobs, messages_field = [], ""
        for channel, version in new_versions.items():
            name = blob_field(ns, channel, version)
            if channel == "messages" and write is not None:
                messages_field = name
            elif channel in values:
                blobs.append((name, pack_value(ctx.serde, values[channel], write)))
            else:
                blobs.append((name, pack(EMPTY)))
        plan = steps.put_plan(
            keys,
            ns=ns,
            checkpoint_id=checkpoint["id"],
            record=pack_record_typed(
                parent_id,
                checkpoint["channel_versions"],
                ctx.serde.dumps_typed(full_metadata),
                ctx.serde.dumps_typed(stored),
            ),
            run_id=str(full_metadata.get("run_id") or ""),
            ttl=ctx.ttl,
            blobs=blobs,
            messages=write,
            messages_field=messages_field,
            # only a replaced list needs a segment id (os.urandom: a syscall, which hands
            # the GIL to the graph's thread while this runs in LangGraph's background one)
            new_segment=new_run_id() if write is not None and write.mode == "r" else "",
            rewrites=rewrites,
        )
        reply = yield Run(plan)
        if reply.status == 1:
            if write is not None:
                ctx.tips.set(
                    keys.history, Tip(reply.segment, write.after_encoded, write.after_objects)
                )
                ctx.tips.settle(keys.history, rewrites)
            break
        if reply.status == 0:  # stored before (a re-sent put): applied once
            ctx.tips.forget(keys.history)
            break
        ctx.tips.set(keys.history, (yield Run(_read_tip(keys))))
        if attempt == STALE_RETRIES - 1:
            raise InvalidArgumentError(
                f"thread {thread_id!r}: its history list kept changing during the put of "
                f"checkpoint {checkpoint['id']} (another writer?)"
            )
    return config_of(thread_id, ns, checkpoint["id"])


def put_writes(
    ctx: Context,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> Flow:
    thread_id, ns, checkpoint_id = where(config)
    if not writes:
        return None
    history = ctx.keys(thread_id).history
    locate = None
    encoded = encodings_once()
    if ns == "" and ctx.history:

        def locate(value: Any) -> tuple[str, int] | None:
            if not isinstance(value, list) or storable(value) is None:
                return None
            return ctx.tips.locate(history, value, encoded(value))

    tip = ctx.tips.get(history) if locate is not None else None
    rows = write_rows(ctx.serde, writes, task_id, task_path, locate, tip, encoded)
    if locate is not None:
        noted = [
            (row[0], value, row[2], encoded(value))
            for (channel, value), row in zip(writes, rows, strict=True)
            if channel == "messages"
            and isinstance(value, list)
            and value
            and storable(value) is not None
            and row[2].split(b"\x00", 3)[2] != WREF.encode()
        ]
        ctx.tips.remember_writes(history, steps.writes_field(ns, checkpoint_id), noted)
    yield Run(
        steps.put_writes_plan(
            ctx.keys(thread_id), ns=ns, checkpoint_id=checkpoint_id, ttl=ctx.ttl, writes=rows
        )
    )
    return None


__all__ = ["Context", "Emit", "Flow", "Masters", "Run", "thread_ids", "where"]
