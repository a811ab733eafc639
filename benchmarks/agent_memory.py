"""Agent memory: RedisChatHistoryMiddleware vs LangGraph checkpointers, turn by turn.

A scripted conversation through ``create_agent`` (the deterministic ``ScriptedChatModel``),
without tools and with one tool call per turn, for:

- ``middleware``: :class:`~redis_chat_history.agents.RedisChatHistoryMiddleware` with
  ``window=None`` (the model sees the whole conversation, as with a checkpointer);
  bytes = the stored list elements;
- ``inmemory``: langgraph's ``InMemorySaver``; bytes = everything it serialized;
- ``sqlite``: langgraph's ``SqliteSaver`` on a file; bytes = the database size;
- ``redissaver``: ``langgraph-checkpoint-redis``'s ``RedisSaver``, only when
  ``REDIS_MODULES_URL`` names a server with RediSearch and RedisJSON (else skipped);
  bytes = MEMORY USAGE of the keys it wrote for the thread.

After each turn: the bytes stored, and the time memory took in that turn (load plus
save: the middleware's own time in its hooks, the savers' time in ``get_tuple``, ``put``
and ``put_writes``), median over ``repeat`` conversations.

Example::

    result = run_agent_memory(url, turns=(20, 50), repeat=3)
    print(agent_table(result))
"""

from __future__ import annotations

import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Optional

import redis
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from benchmarks.targets import Target, Verdict
from redis_chat_history import RedisChatStore
from redis_chat_history.agents import RedisChatHistoryMiddleware
from redis_chat_history.demo import ScriptedChatModel

CONTENDERS = (
    ("middleware", "RedisChatHistoryMiddleware"),
    ("inmemory", "InMemorySaver"),
    ("sqlite", "SqliteSaver"),
    ("redissaver", "RedisSaver"),
)
VARIANTS = (("plain", "without tools"), ("tools", "one tool call per turn"))
#: Words of filler in each answer and question: a turn of about 1.2 KB without tools.
ANSWER_PADDING = 60
QUESTION_FILLER = "tell me more about the part we discussed, with an example " * 2


@tool
def search(topic: str) -> str:
    """Search the documentation for a topic."""
    return f"Documentation for {topic}: " + "a paragraph of reference text, " * 8


def question(turn: int, tools: bool) -> str:
    ask = f"please look up topic{turn}" if tools else f"question {turn}"
    return f"{ask}: {QUESTION_FILLER}".strip()


# -- timing hooks -------------------------------------------------------------------
class TimedMiddleware(RedisChatHistoryMiddleware):
    """The middleware, timing its own work (the model call inside wrap_model_call excluded)."""

    spent = 0.0

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        inner = 0.0

        def timed_handler(inner_request: Any) -> Any:
            nonlocal inner
            started = time.perf_counter()
            try:
                return handler(inner_request)
            finally:
                inner += time.perf_counter() - started

        started = time.perf_counter()
        try:
            return super().wrap_model_call(request, timed_handler)
        finally:
            self.spent += time.perf_counter() - started - inner

    def after_agent(
        self,
        state: Any,
        runtime: Any,
        config: Optional[RunnableConfig] = None,  # noqa: UP045 (langgraph injects this spelling)
    ) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            return super().after_agent(state, runtime, config)
        finally:
            self.spent += time.perf_counter() - started


class TimedSaver:
    """Mixin timing a checkpointer's loads and saves."""

    spent = 0.0

    def _timed(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - started

    def get_tuple(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(super().get_tuple, *args, **kwargs)  # type: ignore[misc]

    def put(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(super().put, *args, **kwargs)  # type: ignore[misc]

    def put_writes(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(super().put_writes, *args, **kwargs)  # type: ignore[misc]


class TimedInMemorySaver(TimedSaver, InMemorySaver):
    def serialized_bytes(self) -> int:
        total = sum(len(blob[1]) for blob in self.blobs.values())
        for namespaces in self.storage.values():
            for checkpoints in namespaces.values():
                for checkpoint, metadata, _parent in checkpoints.values():
                    total += len(checkpoint[1]) + len(metadata[1])
        for writes in self.writes.values():
            total += sum(len(write[2][1]) for write in writes.values())
        return total


# -- one contender through one conversation ------------------------------------------
class Run:
    """One contender's agent, its memory timer and its byte counter."""

    def __init__(self, name: str, url: str, directory: Path, thread: str) -> None:
        self.name = name
        self.thread = thread
        self.closers: list[Callable[[], None]] = []
        self.model = ScriptedChatModel(padding=ANSWER_PADDING, remember=False)
        self.timer: Any
        kwargs: dict[str, Any] = {}
        if name == "middleware":
            self.store = RedisChatStore(url=url)
            self.timer = TimedMiddleware(self.store, window=None)
            kwargs["middleware"] = [self.timer]
            self.client = redis.Redis.from_url(url)
            self.closers.append(self.client.close)
        elif name == "inmemory":
            self.timer = TimedInMemorySaver()
            kwargs["checkpointer"] = self.timer
        elif name == "sqlite":
            from langgraph.checkpoint.sqlite import SqliteSaver

            class TimedSqliteSaver(TimedSaver, SqliteSaver):
                pass

            self.path = directory / f"{thread}.sqlite"
            connection = sqlite3.connect(str(self.path), check_same_thread=False)
            self.connection = connection
            self.closers.append(connection.close)
            self.timer = TimedSqliteSaver(connection)
            kwargs["checkpointer"] = self.timer
        else:
            from langgraph.checkpoint.redis import RedisSaver  # type: ignore[import-not-found]

            self.modules_url = os.environ["REDIS_MODULES_URL"]
            saver = type("TimedRedisSaver", (TimedSaver, RedisSaver), {})(
                redis_url=self.modules_url
            )
            saver.setup()
            self.timer = saver
            kwargs["checkpointer"] = saver
            self.client = redis.Redis.from_url(self.modules_url)
            self.closers.append(self.client.close)
        self.agent = create_agent(
            self.model, tools=[search], system_prompt="You answer from the docs.", **kwargs
        )
        self.config: Any = {"configurable": {"thread_id": thread}}

    def turn(self, text: str) -> float:
        """One turn; returns the time memory took in it."""
        before = self.timer.spent
        self.agent.invoke({"messages": [HumanMessage(text)]}, self.config)
        return float(self.timer.spent - before)

    def stored_bytes(self) -> int:
        if self.name == "middleware":
            elements = self.client.lrange(self.store.key(self.thread), 0, -1)
            return sum(len(element) for element in elements)
        if self.name == "inmemory":
            return int(self.timer.serialized_bytes())
        if self.name == "sqlite":
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return self.path.stat().st_size
        total = 0
        for key in self.client.scan_iter(match=f"*{self.thread}*", count=1000):
            total += int(self.client.memory_usage(key, samples=0) or 0)
        return total

    def same_messages_bytes(self) -> int:
        """The stored messages written again by add_messages (middleware only)."""
        copy = self.store.history(f"{self.thread}-copy")
        copy.add_messages(self.store.history(self.thread).messages)
        elements = self.client.lrange(copy.key, 0, -1)
        return sum(len(element) for element in elements)

    def close(self) -> None:
        for close in self.closers:
            close()


@dataclass
class Series:
    """One contender on one conversation: per turn, medians over the repeats."""

    bytes_after_turn: list[float] = field(default_factory=list)
    memory_seconds: list[float] = field(default_factory=list)
    same_messages_bytes: float | None = None


@dataclass
class AgentMemory:
    turns: tuple[int, ...]
    repeat: int
    #: (variant, turns) -> contender -> series
    series: dict[str, dict[str, Series]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def key(variant: str, turns: int) -> str:
        return f"{variant}_{turns}"

    def get(self, variant: str, turns: int, name: str) -> Series | None:
        return self.series.get(self.key(variant, turns), {}).get(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "turns": list(self.turns),
            "repeat": self.repeat,
            "series": {
                key: {name: series.__dict__ for name, series in by_name.items()}
                for key, by_name in self.series.items()
            },
            "errors": self.errors,
            "skipped": self.skipped,
        }


def _conversation(
    name: str, url: str, directory: Path, variant: str, turns: int, round_: int
) -> tuple[list[int], list[float], int | None]:
    run = Run(name, url, directory, f"bench-{variant}-{turns}-{round_}")
    try:
        sizes, times = [], []
        for turn in range(1, turns + 1):
            times.append(run.turn(question(turn, variant == "tools")))
            sizes.append(run.stored_bytes())
        same = run.same_messages_bytes() if name == "middleware" else None
        return sizes, times, same
    finally:
        run.close()


def run_agent_memory(
    url: str,
    *,
    turns: Sequence[int] = (20, 50),
    repeat: int = 3,
    progress: Callable[[str], None] = lambda _: None,
) -> AgentMemory:
    """Every contender through each conversation, ``repeat`` times (rounds interleaved)."""
    result = AgentMemory(tuple(turns), repeat)
    names = [name for name, _ in CONTENDERS]
    if not os.environ.get("REDIS_MODULES_URL"):
        result.skipped["redissaver"] = "REDIS_MODULES_URL is not set (needs RediSearch + RedisJSON)"
        names.remove("redissaver")
    with tempfile.TemporaryDirectory(prefix="agent-memory-") as tmp:
        for variant, _title in VARIANTS:
            for count in turns:
                progress(f"agent memory: {count} turns {variant}")
                collected: dict[str, list[tuple[list[int], list[float], int | None]]] = {}
                for round_ in range(repeat):
                    for name in names:
                        if name in result.errors:
                            continue
                        try:
                            outcome = _conversation(name, url, Path(tmp), variant, count, round_)
                        except Exception as error:  # reported in the table, others go on
                            result.errors[name] = f"{type(error).__name__}: {error}"
                            continue
                        collected.setdefault(name, []).append(outcome)
                by_name = {}
                for name, outcomes in collected.items():
                    series = Series(
                        [median(o[0][t] for o in outcomes) for t in range(count)],
                        [median(o[1][t] for o in outcomes) for t in range(count)],
                    )
                    if name == "middleware":
                        series.same_messages_bytes = median(o[2] or 0 for o in outcomes)
                    by_name[name] = series
                result.series[result.key(variant, count)] = by_name
    return result


# -- targets, table, chart ------------------------------------------------------------
def _bytes_at(result: AgentMemory, variant: str, turns: int, name: str) -> float:
    series = result.get(variant, turns, name)
    return series.bytes_after_turn[-1] if series else math.nan


def _time_at(result: AgentMemory, variant: str, turns: int, name: str, turn: int) -> float:
    series = result.get(variant, turns, name)
    if series is None or len(series.memory_seconds) < turn:
        return math.nan
    # Median of the turns around ``turn`` (one turn's timing is a few hundred µs: noisy).
    window = series.memory_seconds[max(0, turn - 3) : turn + 2]
    return median(window)


def _growth(series: Series | None) -> float:
    """Bytes added by the last turn / bytes added by the second (1.0: a straight line)."""
    if series is None or len(series.bytes_after_turn) < 3:
        return math.nan
    sizes = series.bytes_after_turn
    first = sizes[1] - sizes[0]
    return (sizes[-1] - sizes[-2]) / first if first else math.inf


def agent_verdicts(result: AgentMemory) -> list[Verdict]:
    """The issue's targets for agent memory, measured in this run."""
    verdicts = []
    for variant, title in VARIANTS:
        last = max(result.turns)
        middleware = result.get(variant, last, "middleware")
        same = middleware.same_messages_bytes if middleware else None
        ratio = _bytes_at(result, variant, last, "middleware") / same if same else math.nan
        verdicts.append(
            Verdict(
                Target(f"agent memory {title}: middleware bytes / same messages via add_messages ({last} turns)", "agent_memory", lambda _: 0.0, "<=", 1.05),
                ratio,
            )
        )  # fmt: skip
        verdicts.append(
            Verdict(
                Target(f"agent memory {title}: middleware growth, bytes added by turn {last} / by turn 2 (linear: 1)", "agent_memory", lambda _: 0.0, "<=", 1.1),
                _growth(middleware),
            )
        )  # fmt: skip
        if 20 in result.turns:
            verdicts.append(
                Verdict(
                    Target(f"agent memory {title}: SqliteSaver bytes / middleware bytes at 20 turns", "agent_memory", lambda _: 0.0, ">=", 20),
                    _bytes_at(result, variant, 20, "sqlite") / _bytes_at(result, variant, 20, "middleware"),
                )
            )  # fmt: skip
            verdicts.append(
                Verdict(
                    Target(f"agent memory {title}: memory time per turn at turn 20, middleware / SqliteSaver", "agent_memory", lambda _: 0.0, "<=", 1 / 3),
                    _time_at(result, variant, 20, "middleware", 20) / _time_at(result, variant, 20, "sqlite", 20),
                )
            )  # fmt: skip
    return verdicts


def _kb(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value / 1024:,.1f} KB" if value < 1024 * 1024 else f"{value / 1024 / 1024:,.2f} MB"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1e3:.2f} ms"


def agent_table(result: AgentMemory) -> str:
    """Bytes after the last turn (and × the middleware), memory time per turn at turns 2 and 20."""
    lines = [
        "| agent memory | contender | bytes after the last turn | × middleware | bytes added by the last turn | memory time per turn (turn 2) | memory time per turn (turn 20) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for variant, title in VARIANTS:
        for count in result.turns:
            base = _bytes_at(result, variant, count, "middleware")
            for name, label in CONTENDERS:
                series = result.get(variant, count, name)
                if series is None:
                    continue
                sizes = series.bytes_after_turn
                total = sizes[-1]
                added = sizes[-1] - sizes[-2] if len(sizes) > 1 else total
                lines.append(
                    f"| {count} turns, {title} | {label} | {_kb(total)} | {total / base:.1f}x "
                    f"| {_kb(added)} | {_ms(_time_at(result, variant, count, name, 2))} "
                    f"| {_ms(_time_at(result, variant, count, name, 20))} |"
                )
    notes = [f"- {dict(CONTENDERS)[name]} skipped: {why}" for name, why in result.skipped.items()]
    notes += [f"- {dict(CONTENDERS)[name]} failed: {why}" for name, why in result.errors.items()]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def write_agent_chart(path: Path, result: AgentMemory) -> None:
    """Bytes stored after each turn, per contender, without and with tools (longest run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = max(result.turns)
    figure, axes = plt.subplots(1, len(VARIANTS), figsize=(12, 4.8), sharey=True)
    colors = {"middleware": "#1f77b4", "inmemory": "#ff7f0e", "sqlite": "#d62728", "redissaver": "#9467bd"}  # fmt: skip
    for axis, (variant, title) in zip(axes, VARIANTS, strict=True):
        for name, label in CONTENDERS:
            series = result.get(variant, last, name)
            if series is None:
                continue
            turns = range(1, len(series.bytes_after_turn) + 1)
            megabytes = [value / 1024 / 1024 for value in series.bytes_after_turn]
            axis.plot(turns, megabytes, label=label, color=colors[name], linewidth=2)
        axis.set_title(f"{last} turns, {title}")
        axis.set_xlabel("turn")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("bytes stored (MB)")
    axes[0].legend(fontsize=8)
    figure.suptitle("Agent memory: bytes stored after each turn")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
