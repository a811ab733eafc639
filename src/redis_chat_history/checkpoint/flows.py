"""The checkpointer's operations, written once for sync and async.

Each operation is a generator: it yields a :class:`Run` (a plan to send, optionally to
one node), :class:`Masters` (the nodes a listing visits) or :class:`Emit` (an item of a
listing), and is sent back the result. The saver's sync and async methods drive the
same generator with :func:`~redis_chat_history.execution.run` or ``arun``.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from redis_chat_history.checkpoint import steps
from redis_chat_history.checkpoint.messages import Tip, Tips, plan_messages, storable, tip_from_list
from redis_chat_history.checkpoint.steps import EMPTY, ThreadKeys, blob_field, pack
from redis_chat_history.checkpoint.values import (
    Segments,
    broken,
    checkpoint_tuple,
    config_of,
    load_value,
    pending_writes,
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

    def keys(self, thread_id: str) -> ThreadKeys:
        return ThreadKeys.of(self.key_prefix, str(thread_id))


def _where(config: RunnableConfig) -> tuple[str, str, str]:
    configurable = config["configurable"]
    return (
        configurable["thread_id"],
        configurable.get("checkpoint_ns", ""),
        get_checkpoint_id(config) or "",
    )


def _tuples(
    ctx: Context, keys: ThreadKeys, ns: str, reply: steps.ReadReply, wanted: str
) -> list[CheckpointTuple]:
    if reply.broken is not None:
        raise broken(keys, wanted, reply.broken)
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
    thread_id, ns, checkpoint_id = _where(config)
    keys = ctx.keys(thread_id)
    ids = [checkpoint_id] if checkpoint_id else []
    reply = yield Run(steps.read_plan(keys, ns, ids, ttl=ctx.read_ttl))
    found = _tuples(ctx, keys, ns, reply, checkpoint_id)
    return found[0] if found else None


def _matches(metadata: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    return not wanted or all(metadata.get(key) == value for key, value in wanted.items())


def _thread_ids(ctx: Context) -> Flow:
    """Every thread with checkpoints under the key prefix (SCAN on every master)."""
    from redis_chat_history.store import glob_escape

    pattern = glob_escape(ctx.key_prefix) + "*"
    found: list[str] = []
    for node in (yield Masters(pattern)):
        cursor = -1
        while cursor:
            cursor, keys = yield Run(steps.scan_index_plan(max(cursor, 0), pattern), node)
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
        thread_ids = [configurable["thread_id"]]
    else:
        thread_ids = yield from _thread_ids(ctx)
    only_ns = configurable.get("checkpoint_ns")
    only_id = configurable.get("checkpoint_id")
    before_id = get_checkpoint_id(before) if before else None
    remaining = limit
    for thread_id in thread_ids:
        keys = ctx.keys(thread_id)
        namespaces = [only_ns] if only_ns is not None else (yield Run(steps.namespaces_plan(keys)))
        for ns in namespaces:
            top = before_id or ""
            while remaining is None or remaining > 0:
                page = yield Run(steps.page_plan(keys, ns, top, PAGE))
                chosen = [
                    cid
                    for cid, raw in page
                    if (not only_id or cid == only_id)
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
    thread_id, ns, parent_id = _where(config)
    keys = ctx.keys(thread_id)
    stored: dict[str, Any] = dict(checkpoint)
    values: dict[str, Any] = stored.pop("channel_values")
    full_metadata = get_checkpoint_metadata(config, metadata)
    messages = storable(values.get("messages")) if ns == "" and ctx.history else None
    for attempt in range(STALE_RETRIES):
        tip = ctx.tips.get(keys.history)
        write = plan_messages(tip, messages) if messages is not None else None
        if write is not None and write.mode == "k" and "messages" not in new_versions:
            write = None  # the list already holds them and no reference is written
        blobs, messages_field = [], ""
        for channel, version in new_versions.items():
            name = blob_field(ns, channel, version)
            if channel == "messages" and write is not None:
                messages_field = name
            elif channel in values:
                blobs.append((name, pack(ctx.serde.dumps_typed(values[channel]))))
            else:
                blobs.append((name, pack(EMPTY)))
        plan = steps.put_plan(
            keys,
            ns=ns,
            checkpoint_id=checkpoint["id"],
            parent_id=parent_id,
            checkpoint=pack(ctx.serde.dumps_typed(stored)),
            metadata=pack(ctx.serde.dumps_typed(full_metadata)),
            versions=checkpoint["channel_versions"],
            run_id=str(full_metadata.get("run_id") or ""),
            ttl=ctx.ttl,
            blobs=blobs,
            messages=write,
            messages_field=messages_field,
            new_segment=new_run_id(),
        )
        reply = yield Run(plan)
        if reply.status == 1:
            if write is not None:
                ctx.tips.set(
                    keys.history, Tip(reply.segment, write.after_encoded, write.after_objects)
                )
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
    thread_id, ns, checkpoint_id = _where(config)
    if not writes:
        return None
    rows = write_rows(ctx.serde, writes, task_id, task_path)
    yield Run(
        steps.put_writes_plan(
            ctx.keys(thread_id), ns=ns, checkpoint_id=checkpoint_id, ttl=ctx.ttl, writes=rows
        )
    )
    return None


def delete_thread(ctx: Context, thread_id: str) -> Flow:
    keys = ctx.keys(thread_id)
    yield Run(steps.delete_plan(keys))
    ctx.tips.forget(keys.history)
    return None


def delete_for_runs(ctx: Context, run_ids: Sequence[str]) -> Flow:
    if not run_ids:
        return None
    for thread_id in (yield from _thread_ids(ctx)):
        yield Run(steps.prune_plan(ctx.keys(thread_id), "runs", [str(run) for run in run_ids]))
    return None


def prune(ctx: Context, thread_ids: Sequence[str], strategy: str) -> Flow:
    if strategy not in ("keep_latest", "delete"):
        raise InvalidArgumentError(f"unknown prune strategy {strategy!r} (keep_latest, delete)")
    for thread_id in thread_ids:
        if strategy == "delete":
            yield from delete_thread(ctx, thread_id)
        else:
            yield Run(steps.prune_plan(ctx.keys(thread_id), "latest"))
    return None


def copy_thread(ctx: Context, source: str, target: str) -> Flow:
    dump = yield Run(steps.dump_plan(ctx.keys(source)))
    if not dump.fields and not dump.members and not dump.history:
        return None
    keys = ctx.keys(target)
    if not (yield Run(steps.restore_plan(keys, dump, ttl=ctx.ttl))):
        raise InvalidArgumentError(
            f"cannot copy thread {source!r} to {target!r}: the target already holds "
            "checkpoints or a chat history"
        )
    ctx.tips.forget(keys.history)
    return None


def delta_history(ctx: Context, config: RunnableConfig, channels: Sequence[str]) -> Flow:
    if not channels:
        return {}
    thread_id, ns, checkpoint_id = _where(config)
    keys = ctx.keys(thread_id)
    chain, raw_segments, what = yield Run(steps.delta_plan(keys, ns, checkpoint_id, channels))
    if what is not None:
        raise broken(keys, checkpoint_id, what)
    segments = Segments(keys, raw_segments)
    collected: dict[str, list[PendingWrite]] = {channel: [] for channel in channels}
    seeds: dict[str, Any] = {}
    for ancestor in chain:
        for write in reversed(pending_writes(ctx.serde, ancestor.writes)):
            collected[write[1]].append(write)
        for channel, raw in ancestor.seeds.items():
            seeds[channel] = load_value(ctx.serde, raw, segments)
    result: dict[str, DeltaChannelHistory] = {}
    for channel in channels:
        entry: DeltaChannelHistory = {"writes": list(reversed(collected[channel]))}
        if channel in seeds:
            entry["seed"] = seeds[channel]
        result[channel] = entry
    return result


__all__ = ["Context", "Emit", "Masters", "Run", "writes_sort_key"]
