"""What a write costs Redis: server time per write from ``INFO commandstats``, and client CPU.

Redis runs commands on one thread, so its time per write decides how many conversations
one shared server carries. Measured per contender over ``writes`` two-message writes with
a ttl, and for ours after bursts of 1, 100 and 1,000 writers on one session (the
bookkeeping then holds that many entries). For ours and the bare script it is the
script's own time (EVALSHA's ``usec``, which includes the commands the script runs:
Redis also counts those under their own names, and adding them would count them twice);
for the old class and the floor, every command's. Client CPU (``time.process_time``) per
write, on the same writes.

``python -m benchmarks.server_time`` runs the write part of ``make bench`` alone: the
timed "write a turn" scenario and these rows, with their targets.

Example::

    rows = measure_server_time(url, Workload(), writes=5000, repeat=5)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from statistics import median
from typing import Any

import redis

from benchmarks.contenders import KEY_PREFIX, Community, Contender, Floor, Package
from benchmarks.replay import Recorder, replay
from benchmarks.report import markdown_tables, targets_text
from benchmarks.scenarios import FULL, TTL, Bench, Measurement
from benchmarks.server import BenchServer
from benchmarks.targets import judge
from benchmarks.workload import Workload
from redis_chat_history.codec import encode_messages
from redis_chat_history.operations import append_plan
from redis_chat_history.writers import WriterToken

#: LPUSH + EXPIRE in a script: what any Lua write costs before it does anything of its own.
BARE_SCRIPT = (
    "redis.call('LPUSH', KEYS[1], unpack(ARGV, 2)) redis.call('EXPIRE', KEYS[1], ARGV[1]) return 1"
)
#: The harness's own commands, left out of the server time.
_HARNESS = {"info", "config|resetstat", "config", "flushall", "hello", "client|setinfo",
            "ping", "select", "script|load", "script", "echo"}  # fmt: skip
BURSTS = (1, 100, 1000)
#: Replays of each recorded round (the least is kept).
REPLAYS = 3


_SCRIPT_CALLS = ("evalsha", "eval")


def _server_usec(admin: redis.Redis, writes: int, scripted: bool) -> float:
    """Server µs of the last ``writes`` writes: the scripts' own time (``scripted``), else
    every command's but the harness's."""
    stats = {
        name.removeprefix("cmdstat_"): entry
        for name, entry in admin.info("commandstats").items()
        if name.removeprefix("cmdstat_") not in _HARNESS
    }
    if not scripted:
        return float(sum(entry["usec"] for entry in stats.values()))
    calls = sum(stats.get(name, {}).get("calls", 0) for name in _SCRIPT_CALLS)
    if calls != writes:  # a write sent something else (plain commands): not comparable
        raise RuntimeError(f"{writes} script writes made {calls} script calls: {sorted(stats)}")
    return float(sum(stats.get(name, {}).get("usec", 0) for name in _SCRIPT_CALLS))


def _per_write(
    admin: redis.Redis, writes: int, run: Callable[[], None], scripted: bool
) -> tuple[float, float]:
    """(server µs, client CPU µs) per write of ``run`` (which makes ``writes`` writes)."""
    admin.config_resetstat()
    cpu = time.process_time()
    run()
    cpu = time.process_time() - cpu
    return _server_usec(admin, writes, scripted) / writes, cpu * 1e6 / writes


class _BareScript(Contender):
    """LPUSH + EXPIRE in one EVALSHA, on redis-py's own client: the same stored bytes as
    ours (this package's encoding), the same EVALSHA request path on the server."""

    name = "bare_script"
    label = "bare LPUSH+EXPIRE script"

    def __init__(self, url: str, ttl: int | None) -> None:
        super().__init__(url, ttl)
        self.client = redis.Redis.from_url(url)
        self.sha = self.client.script_load(BARE_SCRIPT)

    def open(self, session_id: str) -> str:
        return KEY_PREFIX + session_id

    def write(self, handle: str, messages: Any) -> None:
        self.client.evalsha(self.sha, 1, handle, self.ttl, *encode_messages(messages))

    def close(self) -> None:
        self.client.close()


def _contenders(url: str) -> list[Contender]:
    return [Package(url, TTL), Community(url, TTL), Floor(url, TTL), _BareScript(url, TTL)]


def _busy_server_time(
    admin: redis.Redis, recorder: Recorder, contender: Contender, turns: list[Any]
) -> float:
    """Server µs per write of ``contender``'s recorded requests, replayed back to back
    (see benchmarks/replay.py; its first write, connecting and loading, is replayed before
    the count starts): the least of :data:`REPLAYS` replays of the same bytes."""
    port = int(admin.connection_pool.connection_kwargs["port"])
    admin.flushall()
    recorder.take()
    history = contender.open(f"busy-{contender.name}")
    contender.write(history, turns[0])
    first = recorder.mark()
    for turn in turns:
        contender.write(history, turn)
    sent = recorder.take()
    scripted = contender.name in ("package", "bare_script")
    served = []
    for _ in range(REPLAYS):  # the least of a few: other processes' bursts only add time
        admin.flushall()
        replay(port, sent[:first])
        admin.config_resetstat()
        replay(port, sent[first:])
        served.append(_server_usec(admin, len(turns), scripted) / len(turns))
    return min(served)


def measure_server_time(
    url: str, workload: Workload, *, writes: int, repeat: int
) -> list[Measurement]:
    """Rows: server time per write by contender (live, and replayed on a busy server),
    client CPU per write, and ours after bursts."""
    admin = redis.Redis.from_url(url)
    contenders = _contenders(url)
    recorder = Recorder(int(admin.connection_pool.connection_kwargs["port"]))
    recorded = _contenders(recorder.url)
    names = [contender.name for contender in contenders]
    server = Measurement(
        "server_write", f"Redis server time per write ({writes:,} writes of a turn, ttl set)",
        "us", False, {name: [] for name in names},
    )  # fmt: skip
    busy = Measurement(
        "server_write_busy",
        "Redis server time per write, the same requests on a busy server (replayed)",
        "us", False, {name: [] for name in names},
    )  # fmt: skip
    cpu = Measurement(
        "client_cpu_write", "client CPU per write (same writes)", "us", False,
        {name: [] for name in names},
    )  # fmt: skip
    turns = [workload.turn(i) for i in range(writes)]
    try:
        for round_ in range(repeat):
            for contender in contenders[round_ % 4 :] + contenders[: round_ % 4]:
                admin.flushall()
                history = contender.open(f"server-{contender.name}")
                contender.write(history, turns[0])  # connected, script loaded

                def run(contender: Contender = contender, history: Any = history) -> None:
                    for turn in turns:
                        contender.write(history, turn)

                scripted = contender.name in ("package", "bare_script")
                served, used = _per_write(admin, writes, run, scripted)
                server.samples[contender.name].append(served)
                cpu.samples[contender.name].append(used)
            for contender in recorded[round_ % 4 :] + recorded[: round_ % 4]:
                served = _busy_server_time(admin, recorder, contender, turns)
                busy.samples[contender.name].append(served)
        bursts = Measurement(
            "server_write_bursts",
            "ours: Redis server time per write after a burst of N writers on one session",
            "us", False, {f"{n} writers": [] for n in BURSTS},
        )  # fmt: skip
        package = contenders[0]
        for _ in range(repeat):
            for count in BURSTS:
                admin.flushall()
                history = package.open("burst")
                request = (
                    append_plan(history.key, encode_messages(turns[0]), ttl=TTL, max_messages=None)
                    .commands[0]
                    .as_eval()
                )
                pipe = admin.pipeline(transaction=False)
                for writer in range(count - 1):  # other writers, each with its own entry
                    pipe.execute_command(*WriterToken(f"b{writer:09x}", 1, 310).fill(request, 5))
                pipe.execute()
                package.write(history, turns[0])

                def run(history: Any = history) -> None:
                    for turn in turns:
                        package.write(history, turn)

                served = _per_write(admin, writes, run, scripted=True)[0]
                bursts.samples[f"{count} writers"].append(served)
    finally:
        for contender in contenders[1:] + recorded[1:]:
            contender.close()
        recorded[0].close()
        recorder.close()
        admin.close()
    return [server, busy, cpu, bursts]


def server_time_text(rows: list[Measurement]) -> str:
    """A Markdown table of the rows (medians, µs)."""
    lines = ["| per write (median) | " + " | ".join(rows[0].samples) + " |",
             "|---|" + "---:|" * len(rows[0].samples)]  # fmt: skip
    for row in rows[:3]:
        values = [f"{median(v):.1f} µs" if v else "-" for v in row.samples.values()]
        lines.append(f"| {row.title} | " + " | ".join(values) + " |")
    bursts = rows[3]
    lines.append("")
    lines.append("| " + bursts.title + " | " + " | ".join(bursts.samples) + " |")
    lines.append("|---|" + "---:|" * len(bursts.samples))
    values = [f"{median(v):.1f} µs" if v else "-" for v in bursts.samples.values()]
    lines.append("| server time | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The write part of ``make bench``: "write a turn", these rows, and their targets."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.server_time", description=main.__doc__
    )
    parser.add_argument("--repeat", type=int, default=FULL.repeat, help="rounds (default 7)")
    parser.add_argument("--writes", type=int, default=5000, help="writes per server-time round")
    parser.add_argument("--redis-server", help="redis-server binary")
    args = parser.parse_args(argv)
    sizes = replace(FULL, repeat=args.repeat)
    workload = Workload()
    with BenchServer(args.redis_server) as server:
        bench = Bench(server.url, workload, sizes)
        try:
            rows = [bench.write_turn()]
        finally:
            bench.close()
        rows += measure_server_time(server.url, workload, writes=args.writes, repeat=args.repeat)
        version = server.version()
    print(markdown_tables(rows[:1]))
    print()
    print(server_time_text(rows[1:]))
    print()
    print(targets_text([verdict for verdict in judge(rows, sizes) if verdict.value is not None]))
    print(f"(redis-server {version}, {args.repeat} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
