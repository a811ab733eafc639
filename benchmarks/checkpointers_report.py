"""The checkpointer benchmark: every saver, both variants, one run; targets, table, chart.

Example::

    python -m benchmarks.checkpointers_report --turns 20,50,200
    POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test python -m benchmarks.checkpointers_report
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.checkpointers import (
    SAVERS,
    VARIANTS,
    Series,
    Servers,
    converse,
    find_valkey_server,
    messages_once_meter,
    open_contender,
)
from benchmarks.server import BenchServer
from benchmarks.targets import Target, Verdict

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Checkpointers:
    report: tuple[int, ...]
    series: dict[str, dict[str, Series]] = field(default_factory=dict)  # variant -> saver
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, variant: str, name: str) -> Series | None:
        return self.series.get(variant, {}).get(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_turns": list(self.report),
            "series": {v: {n: s.__dict__ for n, s in by.items()} for v, by in self.series.items()},
            "skipped": self.skipped,
            "errors": self.errors,
        }


def run_checkpointers(
    servers: Servers,
    *,
    report: Sequence[int] = (20, 50, 200),
    names: Sequence[str] = tuple(SAVERS),
    progress: Callable[[str], None] = lambda _: None,
) -> Checkpointers:
    """Each saver through each variant's conversation; a saver that cannot run is skipped."""
    result = Checkpointers(tuple(sorted(report)))
    once = messages_once_meter(servers.redis_url)
    with tempfile.TemporaryDirectory(prefix="checkpointers-") as tmp:
        for variant, _title in VARIANTS:
            for name in names:
                if name in result.skipped or name in result.errors:
                    continue
                progress(f"checkpointers: {SAVERS[name][0]}, {max(report)} turns {variant}")
                try:
                    with open_contender(name, servers, Path(tmp)) as contender:
                        series = converse(contender, variant, result.report, once)
                except (ImportError, LookupError) as why:
                    result.skipped[name] = f"{type(why).__name__}: {why}"
                    continue
                except Exception as error:  # reported in the table, the others go on
                    result.errors[name] = f"{type(error).__name__}: {error}"[:300]
                    continue
                result.series.setdefault(variant, {})[name] = series
    return result


# -- figures ----------------------------------------------------------------------------
def stored(series: Series | None, turn: int) -> float:
    return float(series.stored.get(turn, math.nan)) if series else math.nan


def added(series: Series | None, turn: int, window: int = 1) -> float:
    """Bytes added per turn over the ``window`` turns ending at ``turn``."""
    if series is None or turn - window not in series.stored or turn not in series.stored:
        return math.nan
    return (series.stored[turn] - series.stored[turn - window]) / window


def saver_time(series: Series | None, turn: int, kind: str = "saver_seconds") -> float:
    """Median saver time per turn over the 5 turns ending at ``turn`` (``kind``:
    ``saver_cpu_seconds`` for its CPU time, ``turn_seconds`` for the whole turn's)."""
    per_turn: list[float] = getattr(series, kind, []) if series else []
    if len(per_turn) < turn:
        return math.nan
    return median(per_turn[max(0, turn - 5) : turn])


def get_state_time(series: Series | None, turn: int) -> float:
    return series.get_state_seconds.get(turn, math.nan) if series else math.nan


def verdicts(result: Checkpointers) -> list[Verdict]:
    """The issue's targets for this package's saver, measured in this run."""
    last = max(result.report)
    found = []

    def target(text: str, op: str, limit: float, value: float, unit: str = "x") -> None:
        found.append(
            Verdict(Target(text, "checkpointers", lambda _: value, op, limit, unit), value)
        )

    for variant, title in VARIANTS:
        ours = result.get(variant, "ours")
        once = float(ours.messages_once.get(last, math.nan)) if ours else math.nan
        target(f"checkpointer {title}: ours, storage / the messages stored once ({last} turns)", "<=", 2.0, stored(ours, last) / once)  # fmt: skip
        if last >= 15:
            drift = abs(added(ours, last, 5) / added(ours, 10, 5) - 1)
            target(f"checkpointer {title}: ours, bytes per turn at turn {last} vs turn 10, |ratio - 1|", "<=", 0.15, drift)  # fmt: skip
        peers = [saver_time(s, last) for n, s in result.series.get(variant, {}).items() if n != "ours"]  # fmt: skip
        fastest = min((t for t in peers if not math.isnan(t)), default=math.nan)
        target(f"checkpointer {title}: ours, saver time per turn at turn {last} / the fastest peer's", "<=", 0.5, saver_time(ours, last) / fastest)  # fmt: skip
        inmemory = get_state_time(result.get(variant, "inmemory"), last)
        target(f"checkpointer {title}: ours, get_state at turn {last} / InMemorySaver's", "<=", 1.0, get_state_time(ours, last) / inmemory)  # fmt: skip
    return found


def _size(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 1024 * 1024:
        return f"{value / 1024 / 1024:,.1f} MB"
    return f"{value / 1024:,.1f} KB"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1e3:.2f} ms"


def table(result: Checkpointers) -> str:
    lines = [
        "| conversation | checkpointer | storage (measured as) | × messages once | bytes added by the last turn | saver time per turn | saver CPU per turn | turn time | get_state |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for variant, title in VARIANTS:
        for turn in result.report:
            for name, (label, kind) in SAVERS.items():
                series = result.get(variant, name)
                if series is None:
                    continue
                once = series.messages_once.get(turn, 0)
                times = stored(series, turn) / once if once else math.nan
                lines.append(
                    f"| {turn} turns, {title} | {label} | {_size(stored(series, turn))} ({kind}) "
                    f"| ×{times:,.1f} | {_size(added(series, turn))} | {_ms(saver_time(series, turn))} "
                    f"| {_ms(saver_time(series, turn, 'saver_cpu_seconds'))} "
                    f"| {_ms(saver_time(series, turn, 'turn_seconds'))} "
                    f"| {_ms(get_state_time(series, turn))} |"
                )
    last = max(result.report)
    ours = result.get("tools", "ours")
    if ours:
        once = ours.messages_once.get(last, 0)
        lines += ["", f"- the messages stored once ({last} turns, one tool call per turn): {_size(once)} (MEMORY USAGE of one list in this package's layout)"]  # fmt: skip
    lines += [f"- {SAVERS[name][0]} skipped: {why}" for name, why in result.skipped.items()]
    lines += [f"- {SAVERS[name][0]} failed: {why}" for name, why in result.errors.items()]
    return "\n".join(lines)


def write_chart(path: Path, result: Checkpointers) -> None:
    """Storage after each sampled turn, per saver, without and with tools (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(VARIANTS), figsize=(12, 4.8), sharey=True)
    for axis, (variant, title) in zip(axes, VARIANTS, strict=True):
        for name, (label, _kind) in SAVERS.items():
            series = result.get(variant, name)
            if series is None:
                continue
            turns = sorted(series.stored)
            axis.plot(
                turns, [series.stored[t] / 1024 / 1024 for t in turns], label=label, linewidth=2
            )
        ours = result.get(variant, "ours")
        if ours:
            turns = sorted(ours.messages_once)
            axis.plot(turns, [ours.messages_once[t] / 1024 / 1024 for t in turns], "k--", label="the messages stored once")  # fmt: skip
        axis.set_yscale("log")
        axis.set_title(f"{max(result.report)} turns, {title}")
        axis.set_xlabel("turn")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("storage (MB, log scale)")
    axes[0].legend(fontsize=7)
    figure.suptitle("LangGraph checkpointers: storage after each turn of one create_agent thread")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checkpointers_report")
    parser.add_argument("--turns", default="20,50,200", help="turns reported (the longest is run)")
    parser.add_argument("--only", help="comma-separated savers (default: all)")
    parser.add_argument("--json", type=Path, default=RESULTS / "checkpointers.json")
    parser.add_argument("--png", default=str(RESULTS / "checkpointers.png"), help="'' for none")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else tuple(SAVERS)
    progress = lambda label: print(f"... {label}", file=sys.stderr, flush=True)  # noqa: E731
    result, found = run_all(tuple(int(t) for t in args.turns.split(",")), names, progress)
    print(table(result))
    print()
    print("\n".join(verdict.line() for verdict in found))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"checkpointers": result.as_dict(), "targets": [v.as_dict() for v in found]}
    args.json.write_text(json.dumps(document, indent=1) + "\n")
    if args.png:
        write_chart(Path(args.png), result)
    return 0


def run_all(
    report: tuple[int, ...], names: Sequence[str], progress: Callable[[str], None]
) -> tuple[Checkpointers, list[Verdict]]:
    """Start redis-server (and valkey-server when at hand), run every saver, judge."""
    valkey = find_valkey_server()
    with BenchServer() as server, BenchServer(valkey) if valkey else _Nothing() as other:
        servers = Servers(server.url, other.url if valkey else None)
        result = run_checkpointers(servers, report=report, names=names, progress=progress)
    return result, verdicts(result)


class _Nothing:
    url = ""

    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
