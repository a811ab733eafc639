"""``python -m benchmarks``: run every scenario and report.

Example::

    python -m benchmarks                 # full run (about 1-3 minutes)
    python -m benchmarks --quick --json /tmp/bench.json --png ''
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks.agent_memory import (
    agent_table,
    agent_verdicts,
    run_agent_memory,
    write_agent_chart,
)
from benchmarks.report import (
    machine_facts,
    machine_text,
    markdown_tables,
    targets_text,
    write_chart,
    write_json,
)
from benchmarks.scenarios import FULL, QUICK, Bench
from benchmarks.server import BenchServer
from benchmarks.server_time import measure_server_time, server_time_text
from benchmarks.targets import judge
from benchmarks.workload import Workload

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="redis-chat-history vs langchain_community vs a raw redis-py floor.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for the test suite)")
    parser.add_argument("--repeat", type=int, help="interleaved rounds per scenario (default 7)")
    parser.add_argument(
        "--json", type=Path, default=RESULTS / "latest.json", help="where to write the JSON"
    )
    parser.add_argument(
        "--png",
        default=str(RESULTS / "latest.png"),
        help="where to write the chart ('' for none)",
    )
    parser.add_argument(
        "--redis-server", help="redis-server binary (default: /usr/bin/redis-server if present)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--agent-turns",
        default=None,
        help="conversation lengths of the agent memory scenario (default 20,50; quick 3)",
    )
    parser.add_argument(
        "--only-agents", action="store_true", help="run the agent memory scenario only"
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeat is not None:
        sizes = replace(sizes, repeat=args.repeat, async_repeat=min(args.repeat, 5))
    started = time.perf_counter()
    workload = Workload()
    with BenchServer(args.redis_server) as server:
        meta = machine_facts(server.version(), server.binary)
        meta["sizes"] = sizes.__dict__ | {"quick": args.quick}
        meta["workload"] = workload.describe()
        bench = Bench(server.url, workload, sizes)
        progress = lambda label: print(f"... {label}", file=sys.stderr, flush=True)  # noqa: E731
        try:
            measurements = [] if args.only_agents else bench.run_all(progress)
        finally:
            bench.close()
        server_rows = []
        if not args.only_agents:
            progress("Redis server time per write")
            server_rows = measure_server_time(
                server.url,
                workload,
                writes=200 if args.quick else 5000,
                repeat=1 if args.quick else sizes.repeat,
            )
        turns = args.agent_turns or ("3" if args.quick else "20,50")
        agents = run_agent_memory(
            server.url,
            turns=tuple(int(count) for count in turns.split(",")),
            repeat=1 if args.quick else 3,
            progress=progress,
        )
    meta["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    meta["duration_seconds"] = round(time.perf_counter() - started, 1)
    everything = measurements + server_rows
    verdicts = ([] if args.only_agents else judge(everything, sizes)) + agent_verdicts(agents)
    if measurements:
        print(markdown_tables(measurements))
        print()
        print(server_time_text(server_rows))
        print()
    print(agent_table(agents))
    print()
    print(targets_text(verdicts))
    print()
    print(machine_text(meta))
    write_json(args.json, everything, verdicts, meta, agent_memory=agents.as_dict())
    print(f"JSON: {args.json}")
    if args.png:
        if measurements:
            write_chart(Path(args.png), measurements)
            print(f"chart: {args.png}")
        agent_png = Path(args.png).with_name(f"{Path(args.png).stem}_agent_memory.png")
        write_agent_chart(agent_png, agents)
        print(f"agent memory chart: {agent_png}")
    if not args.quick:  # the checkpointer table (a few minutes): benchmarks/checkpointers_report.py
        from benchmarks import checkpointers_report

        checkpointers_report.main([])
    failed = [
        verdict for verdict in verdicts if verdict.passed is False and not verdict.target.stretch
    ]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
