"""What is measured, and how: interleaved batches on one server, medians of per-op times.

Every timed scenario runs each contender in batches of ``n`` operations (``n``
calibrated per contender so that a batch lasts about ``Sizes.batch_seconds``),
``repeat`` times, rotating the order of contenders each round so that a burst of
noise from other processes hits all of them alike. Set-up (loading sessions,
resetting them) is never timed; the harness's own objects are frozen out of the
garbage collector during a batch (the objects an operation creates are still
collected as usual). Before timing, each read is checked to return
messages equal to the ones written, so no contender is fast by being wrong.

Example::

    bench = Bench(url, Workload(), QUICK)
    results = bench.run_all()
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import redis
from langchain_core.messages import BaseMessage, message_to_dict

from benchmarks.contenders import (
    KEY_PREFIX,
    Community,
    Contender,
    Floor,
    Package,
    floor_encode,
)
from benchmarks.workload import Workload
from redis_chat_history.codec import encode_messages

TTL = 3600


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does."""

    repeat: int = 7
    batch_seconds: float = 0.1
    max_batch: int = 2000
    read_lengths: tuple[int, ...] = (20, 200, 2000)
    newest: int = 20
    newest_of: int = 2000
    cycle_history: int = 20
    async_cycles: int = 1000
    async_sessions: int = 50
    async_repeat: int = 5
    connection_cycles: int = 1000
    memory_messages: int = 10_000
    memory_sessions: int = 50


FULL = Sizes()
QUICK = Sizes(
    repeat=1,
    batch_seconds=0.001,
    max_batch=2,
    read_lengths=(20, 60),
    newest=5,
    newest_of=60,
    cycle_history=20,
    async_cycles=20,
    async_sessions=5,
    async_repeat=1,
    connection_cycles=10,
    memory_messages=100,
    memory_sessions=5,
)


@dataclass
class Measurement:
    """One row: samples per contender, in ``unit``."""

    id: str
    title: str
    unit: str  # "s" (seconds per operation), "cycles/s", "connections", "bytes"
    higher_is_better: bool
    samples: dict[str, list[float]]
    details: dict[str, Any] = field(default_factory=dict)
    #: contender name -> the error that stopped its measurement (its samples stay empty)
    errors: dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> float:
        """Median sample of ``name``; NaN when it failed."""
        values = self.samples.get(name)
        return median(values) if values else math.nan

    def ratio(self, name: str, other: str) -> float:
        """How many times better ``name`` is than ``other`` (paired by round, then median)."""
        if not self.samples.get(name) or not self.samples.get(other):
            return math.nan
        pairs = zip(self.samples[name], self.samples[other], strict=False)
        if self.higher_is_better:
            values = [mine / theirs if theirs else float("inf") for mine, theirs in pairs]
        else:
            values = [theirs / mine if mine else float("inf") for mine, theirs in pairs]
        return median(values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "median": {name: self.median(name) for name in self.samples},
            "samples": self.samples,
            "details": self.details,
            "errors": self.errors,
        }


def stored_form(contender: Contender, messages: Sequence[BaseMessage]) -> list[bytes]:
    """The list elements ``contender`` would have written for ``messages``, oldest first."""
    if isinstance(contender, Package):
        return encode_messages(messages, compress=contender.compress)
    if isinstance(contender, Community):
        return [json.dumps(message_to_dict(message)).encode() for message in messages]
    return [floor_encode(message) for message in messages]


class BenchmarkError(RuntimeError):
    """A contender returned wrong results; its timings would mean nothing."""


@contextlib.contextmanager
def _harness_heap_frozen() -> Iterator[None]:
    """Collect, then keep the harness's own objects out of the timed batch's GC passes.

    Without this, full collections triggered by a batch traverse the workload pool and
    every earlier result, and times of large reads vary by 50% between runs.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _recorded(result: Measurement, contender: Contender) -> Iterator[None]:
    """Record a contender's failure in ``result`` (and drop its samples) instead of stopping."""
    try:
        yield
    except Exception as error:  # a failing contender is a result, not a crash of the benchmark
        result.errors[contender.name] = f"{type(error).__name__}: {error}"
        result.samples[contender.name] = []


class Bench:
    """Runs every scenario against the three contenders on the server at ``url``."""

    def __init__(self, url: str, workload: Workload, sizes: Sizes) -> None:
        self.url = url
        self.workload = workload
        self.sizes = sizes
        self.admin = redis.Redis.from_url(url)
        self.contenders: list[Contender] = [
            Package(url, TTL),
            Community(url, TTL),
            Floor(url, TTL),
        ]
        self.loop = asyncio.new_event_loop()

    # -- helpers ---------------------------------------------------------------
    def load(self, contender: Contender, session_id: str, messages: Sequence[BaseMessage]) -> None:
        """Store ``messages`` as ``contender`` would have, replacing the session (untimed)."""
        key = KEY_PREFIX + session_id
        pipe = self.admin.pipeline(transaction=False)
        pipe.delete(key)
        if messages:
            pipe.lpush(key, *stored_form(contender, messages))
            pipe.expire(key, TTL)
        pipe.execute()

    def connections_received(self) -> int:
        return int(self.admin.info("stats")["total_connections_received"])

    def check(
        self, contender: Contender, got: Sequence[BaseMessage], expected: Sequence[Any]
    ) -> None:
        if list(got) != list(expected):
            raise BenchmarkError(
                f"{contender.label} read {len(got)} messages that differ from the "
                f"{len(expected)} written"
            )

    def _rounds(self, rounds: int) -> list[list[Contender]]:
        count = len(self.contenders)
        return [self.contenders[r % count :] + self.contenders[: r % count] for r in range(rounds)]

    def timed(
        self,
        id: str,
        title: str,
        check: Callable[[Contender], None],
        make_batch: Callable[[Contender, int], Callable[[], None]],
    ) -> Measurement:
        """Seconds per operation: ``repeat`` interleaved batches per contender, after ``check``."""
        sizes = self.sizes
        result = Measurement(id, title, "s", False, {c.name: [] for c in self.contenders})
        batch: dict[str, int] = {}
        for contender in self.contenders:  # check, warm up, and fit the batch to the time budget
            with _recorded(result, contender):
                check(contender)
                run = make_batch(contender, 2)
                start = time.perf_counter()
                run()
                per_op = max((time.perf_counter() - start) / 2, 1e-7)
                batch[contender.name] = max(
                    1, min(sizes.max_batch, round(sizes.batch_seconds / per_op))
                )
        for order in self._rounds(sizes.repeat):
            for contender in order:
                if contender.name in result.errors:
                    continue
                with _recorded(result, contender):
                    count = batch[contender.name]
                    run = make_batch(contender, count)
                    with _harness_heap_frozen():
                        start = time.perf_counter()
                        run()
                        elapsed = time.perf_counter() - start
                    result.samples[contender.name].append(elapsed / count)
        return result

    # -- scenarios ---------------------------------------------------------------
    def write_turn(self) -> Measurement:
        workload = self.workload

        def check(contender: Contender) -> None:
            session = f"write-check-{contender.name}"
            history = contender.open(session)
            contender.write(history, workload.turn(0))
            self.check(contender, contender.read_all(history), workload.turn(0))
            if self.admin.ttl(KEY_PREFIX + session) <= 0:
                raise BenchmarkError(f"{contender.label} did not set the ttl")

        def make_batch(contender: Contender, count: int) -> Callable[[], None]:
            session = f"write-{contender.name}"
            self.admin.delete(KEY_PREFIX + session)
            history = contender.open(session)
            turns = [workload.turn(i) for i in range(count)]

            def run() -> None:
                for turn in turns:
                    contender.write(history, turn)

            return run

        return self.timed("write_turn", "write a turn (2 messages, ttl set)", check, make_batch)

    def request_cycle(self) -> Measurement:
        workload = self.workload
        length = self.sizes.cycle_history
        history = workload.messages(length)

        def check(contender: Contender) -> None:
            self.load(contender, "cycle-check", history)
            self.check(contender, contender.read_all(contender.open("cycle-check")), history)

        def make_batch(contender: Contender, count: int) -> Callable[[], None]:
            sessions = [f"cycle-{contender.name}-{i}" for i in range(count)]
            for session in sessions:
                self.load(contender, session, history)
            turns = [workload.turn(length + i) for i in range(count)]

            def run() -> None:
                for session, turn in zip(sessions, turns, strict=True):
                    handle = contender.open(session)
                    contender.read_all(handle)
                    contender.write(handle, turn)

            return run

        title = f"request cycle: new history, read {length}, append 2"
        return self.timed("request_cycle", title, check, make_batch)

    def read(self, length: int, newest: int | None = None) -> Measurement:
        messages = self.workload.messages(length)
        expected = messages if newest is None else messages[-newest:]
        handles: dict[str, Any] = {}

        def read_once(contender: Contender) -> list[BaseMessage]:
            handle = handles[contender.name]
            if newest is None:
                return contender.read_all(handle)
            return contender.read_newest(handle, newest)

        def check(contender: Contender) -> None:
            session = f"read-{length}-{contender.name}"
            self.load(contender, session, messages)
            handles[contender.name] = contender.open(session)
            self.check(contender, read_once(contender), expected)

        def make_batch(contender: Contender, count: int) -> Callable[[], None]:
            def run() -> None:
                for _ in range(count):
                    read_once(contender)

            return run

        if newest is None:
            return self.timed(f"read_all_{length}", f"read all of {length}", check, make_batch)
        return self.timed(
            f"read_newest_{newest}_of_{length}",
            f"read newest {newest} of {length}",
            check,
            make_batch,
        )

    async def _async_cycles(self, contender: Contender, sessions: list[str], count: int) -> None:
        workload = self.workload
        length = self.sizes.cycle_history

        async def cycle(index: int) -> None:
            # As RunnableWithMessageHistory: the factory runs in the loop, then async read/append.
            handle = contender.open(sessions[index % len(sessions)])
            await contender.aread_all(handle)
            await contender.awrite(handle, workload.turn(length + index))

        outcomes = await asyncio.gather(
            *(cycle(index) for index in range(count)), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise BenchmarkError(
                f"{len(failures)} of {count} cycles failed, first: "
                f"{type(failures[0]).__name__}: {failures[0]}"
            ) from failures[0]

    def async_throughput(self) -> tuple[Measurement, Measurement]:
        sizes = self.sizes
        history = self.workload.messages(sizes.cycle_history)
        names = [contender.name for contender in self.contenders]
        title = (
            f"{sizes.async_cycles} concurrent request cycles over {sizes.async_sessions} sessions"
        )
        throughput = Measurement(
            "async_throughput", f"async: {title}", "cycles/s", True, {name: [] for name in names}
        )
        connections = Measurement(
            "async_connections",
            "new connections per 1,000 async request cycles (after warm-up)",
            "connections",
            False,
            {name: [] for name in names},
        )
        sessions = {
            name: [f"async-{name}-{i}" for i in range(sizes.async_sessions)] for name in names
        }

        def run(contender: Contender) -> tuple[float, int]:
            for session in sessions[contender.name]:
                self.load(contender, session, history)
            before = self.connections_received()
            with _harness_heap_frozen():
                start = time.perf_counter()
                self.loop.run_until_complete(
                    self._async_cycles(contender, sessions[contender.name], sizes.async_cycles)
                )
                elapsed = time.perf_counter() - start
            # The admin client's INFO reuses its own pooled connection: it does not count.
            return elapsed, self.connections_received() - before

        for contender in self.contenders:  # warm-up: pools grow to the concurrency
            with _recorded(throughput, contender):
                run(contender)
        for order in self._rounds(sizes.async_repeat):
            for contender in order:
                if contender.name in throughput.errors:
                    continue
                with _recorded(throughput, contender):
                    elapsed, opened = run(contender)
                    throughput.samples[contender.name].append(sizes.async_cycles / elapsed)
                    connections.samples[contender.name].append(opened * 1000 / sizes.async_cycles)
        connections.errors.update(throughput.errors)
        for name in throughput.errors:
            connections.samples[name] = []
        return throughput, connections

    def sync_connections(self) -> Measurement:
        sizes = self.sizes
        history = self.workload.messages(sizes.cycle_history)
        result = Measurement(
            "sync_connections",
            "new connections per 1,000 request cycles (after warm-up)",
            "connections",
            False,
            {contender.name: [] for contender in self.contenders},
        )
        for contender in self.contenders:
            sessions = [f"conn-{contender.name}-{i}" for i in range(sizes.async_sessions)]

            def cycles(
                count: int, contender: Contender = contender, sessions: list[str] = sessions
            ) -> None:
                for index in range(count):
                    handle = contender.open(sessions[index % len(sessions)])
                    contender.read_all(handle)
                    contender.write(handle, self.workload.turn(index))

            with _recorded(result, contender):
                for session in sessions:
                    self.load(contender, session, history)
                cycles(5)  # warm-up: the shared pools connect
                gc.collect()
                before = self.connections_received()
                cycles(sizes.connection_cycles)
                gc.collect()
                opened = self.connections_received() - before
                result.samples[contender.name].append(opened * 1000 / sizes.connection_cycles)
        return result

    def memory(self) -> Measurement:
        """Bytes of Redis memory per stored message (MEMORY USAGE summed over every key)."""
        sizes = self.sizes
        variants: list[Contender] = [
            Community(self.url, TTL),
            Package(self.url, TTL),
            Package(self.url, TTL, compress=True),
            Floor(self.url, TTL),
        ]
        messages = self.workload.messages(sizes.memory_messages)
        turns = [messages[i : i + 2] for i in range(0, len(messages), 2)]
        result = Measurement(
            "memory",
            f"Redis memory per message ({sizes.memory_messages:,} messages, "
            f"{sizes.memory_sessions} sessions)",
            "bytes",
            False,
            {variant.name: [] for variant in variants},
        )
        for variant in variants:
            with _recorded(result, variant):
                self.admin.flushall()
                result.samples[variant.name].append(self._stored_bytes(variant, turns, result))
            if not isinstance(variant, Package):  # the package's shared clients stay in use
                variant.close()
        self.admin.flushall()
        return result

    def _stored_bytes(
        self, variant: Contender, turns: list[list[BaseMessage]], result: Measurement
    ) -> float:
        sessions = [f"memory-{i}" for i in range(self.sizes.memory_sessions)]
        handles = [variant.open(session) for session in sessions]
        for index, turn in enumerate(turns):  # round-robin, as live traffic arrives
            variant.write(handles[index % len(handles)], turn)
        lists = {KEY_PREFIX + session for session in sessions}
        list_bytes = other_bytes = payload_bytes = 0
        for key in self.admin.scan_iter(count=1000):
            usage = int(self.admin.memory_usage(key, samples=0) or 0)
            if key.decode() in lists:
                list_bytes += usage
                payload_bytes += sum(len(element) for element in self.admin.lrange(key, 0, -1))
            else:  # the package's write-token keys
                other_bytes += usage
        count = sum(len(turn) for turn in turns)
        keys = self.admin.dbsize()
        result.details[variant.name] = {
            "label": variant.label,
            "list_bytes_per_message": list_bytes / count,
            "companion_key_bytes_per_message": other_bytes / count,
            # every session was written len(turns)/sessions times within the writers' window:
            # what the exactly-once bookkeeping costs per active session
            "companion_key_bytes_per_session": other_bytes / len(sessions),
            "writes_per_session": len(turns) / len(sessions),
            "payload_bytes_per_message": payload_bytes / count,
            "keys": keys,
            "keys_per_session": keys / len(sessions),
        }
        return (list_bytes + other_bytes) / count

    # -- all ---------------------------------------------------------------------
    def run_all(self, progress: Callable[[str], None] = lambda _: None) -> list[Measurement]:
        """Every scenario, in order; the server is flushed between them."""
        sizes = self.sizes
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("write a turn", self.write_turn),
            ("request cycle", self.request_cycle),
            *[
                (f"read all of {length}", lambda length=length: self.read(length))
                for length in sizes.read_lengths
            ],
            (
                f"newest {sizes.newest} of {sizes.newest_of}",
                lambda: self.read(sizes.newest_of, sizes.newest),
            ),
            ("async request cycles", self.async_throughput),
            ("connections", self.sync_connections),
            ("memory", self.memory),
        ]
        results: list[Measurement] = []
        for label, step in steps:
            progress(label)
            self.admin.flushall()
            outcome = step()
            results.extend(outcome if isinstance(outcome, tuple) else [outcome])
        return results

    def close(self) -> None:
        for contender in self.contenders:
            self.loop.run_until_complete(contender.aclose())
            contender.close()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()
        self.admin.close()
