"""Operations on whole threads (delete, runs, prune, copy) and delta-channel history.

Generators like :mod:`.flows`' (the saver drives them the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import DeltaChannelHistory, PendingWrite

from redis_chat_history.checkpoint import steps, upkeep
from redis_chat_history.checkpoint.flows import Context, Flow, Run, thread_ids, where
from redis_chat_history.checkpoint.values import Segments, broken, load_value, pending_writes
from redis_chat_history.errors import InvalidArgumentError


def delete_thread(ctx: Context, thread_id: str) -> Flow:
    keys = ctx.keys(thread_id)
    yield Run(upkeep.delete_plan(keys))
    ctx.tips.forget(keys.history)
    return None


def delete_for_runs(ctx: Context, run_ids: Sequence[str]) -> Flow:
    if not run_ids:
        return None
    for thread_id in (yield from thread_ids(ctx)):
        yield Run(upkeep.prune_plan(ctx.keys(thread_id), "runs", [str(run) for run in run_ids]))
    return None


def prune(ctx: Context, thread_ids: Sequence[str], strategy: str) -> Flow:
    if strategy not in ("keep_latest", "delete"):
        raise InvalidArgumentError(f"unknown prune strategy {strategy!r} (keep_latest, delete)")
    for thread_id in thread_ids:
        if strategy == "delete":
            yield from delete_thread(ctx, thread_id)
        else:
            yield Run(upkeep.prune_plan(ctx.keys(thread_id), "latest"))
    return None


def copy_thread(ctx: Context, source: str, target: str) -> Flow:
    dump = yield Run(upkeep.dump_plan(ctx.keys(source)))
    if not dump.fields and not dump.members and not dump.history:
        return None
    keys = ctx.keys(target)
    if not (yield Run(upkeep.restore_plan(keys, dump, ttl=ctx.ttl))):
        raise InvalidArgumentError(
            f"cannot copy thread {source!r} to {target!r}: the target already holds "
            "checkpoints or a chat history"
        )
    ctx.tips.forget(keys.history)
    return None


def delta_history(ctx: Context, config: RunnableConfig, channels: Sequence[str]) -> Flow:
    if not channels:
        return {}
    thread_id, ns, checkpoint_id = where(config)
    keys = ctx.keys(thread_id)
    chain, raw_segments, what = yield Run(steps.delta_plan(keys, ns, checkpoint_id, channels))
    if what is not None:
        raise broken(keys, checkpoint_id, what)
    segments = Segments(keys, raw_segments)
    collected: dict[str, list[PendingWrite]] = {channel: [] for channel in channels}
    seeds: dict[str, Any] = {}
    for ancestor in chain:
        for write in reversed(pending_writes(ctx.serde, ancestor.writes, segments)):
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
