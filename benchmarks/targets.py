"""The issue's targets, as ratios between contenders in the same run.

Example::

    for verdict in judge(measurements, QUICK):
        print(verdict.line())
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from benchmarks.scenarios import Measurement, Sizes


def paired(measurement: Measurement, name: str, other: str) -> float:
    """Median over rounds of ``name``'s value divided by ``other``'s (time, bytes ...)."""
    if not measurement.samples.get(name) or not measurement.samples.get(other):
        return math.nan
    pairs = zip(measurement.samples[name], measurement.samples[other], strict=False)
    return median(mine / theirs if theirs else float("inf") for mine, theirs in pairs)


@dataclass(frozen=True)
class Target:
    """``value(measurement) <op> limit``, e.g. package time / floor time <= 1.15."""

    text: str
    measurement: str
    value: Callable[[Measurement], float]
    op: str  # "<=" or ">="
    limit: float
    unit: str = "x"
    stretch: bool = False


@dataclass(frozen=True)
class Verdict:
    target: Target
    value: float | None

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        if math.isnan(self.value):  # a contender failed
            return False
        if self.target.op == "<=":
            return self.value <= self.target.limit
        return self.value >= self.target.limit

    @property
    def status(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]

    def line(self) -> str:
        kind = "stretch " if self.target.stretch else ""
        if self.value is None or math.isnan(self.value):
            shown = "-" if self.value is None else "error"
        else:
            shown = f"{self.value:.3g}{self.target.unit}"
        return (
            f"{self.status:4}  {kind}{self.target.text}: {shown} "
            f"(target {self.target.op} {self.target.limit:g}{self.target.unit})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.text,
            "measurement": self.target.measurement,
            "op": self.target.op,
            "limit": self.target.limit,
            "value": self.value,
            "status": self.status,
            "stretch": self.target.stretch,
        }


def targets_for(sizes: Sizes) -> list[Target]:
    """The issue's targets, with measurement ids for these sizes."""

    def speedup(other: str, name: str = "package") -> Callable[[Measurement], float]:
        return lambda measurement: measurement.ratio(name, other)

    def share(other: str, name: str = "package") -> Callable[[Measurement], float]:
        return lambda measurement: paired(measurement, name, other)

    def package_median(measurement: Measurement) -> float:  # NaN when the package failed
        return measurement.median("package")

    def bookkeeping_per_session(measurement: Measurement) -> float:
        detail = measurement.details.get("package", {})
        return float(detail.get("companion_key_bytes_per_session", math.nan))

    newest = f"read_newest_{sizes.newest}_of_{sizes.newest_of}"
    targets = [
        Target("write: package time / floor time", "write_turn", share("floor"), "<=", 1.10),
        Target("write: Redis server time, package / bare LPUSH+EXPIRE script", "server_write", share("bare_script"), "<=", 1.3),
        Target("write: Redis server time on a busy server (same requests replayed), package / bare script", "server_write_busy", share("bare_script"), "<=", 1.3),
        Target("write: Redis server time after 1,000 writers / after 1", "server_write_bursts", share("1 writers", "1000 writers"), "<=", 2.0),
        Target("write: client CPU, package / floor", "client_cpu_write", share("floor"), "<=", 1.10),
        Target("write: speed-up vs langchain_community", "write_turn", speedup("community"), ">=", 2.5),
        Target("request cycle: speed-up vs langchain_community", "request_cycle", speedup("community"), ">=", 3),
        Target(f"newest {sizes.newest} of {sizes.newest_of}: speed-up vs langchain_community", newest, speedup("community"), ">=", 50),
        Target("async throughput vs langchain_community", "async_throughput", speedup("community"), ">=", 4),
        Target("async throughput vs floor", "async_throughput", speedup("floor"), ">=", 0.9),
        Target("memory per message, default layout / langchain_community", "memory", share("community"), "<=", 0.9),
        Target("memory per message, compress=True / langchain_community", "memory", share("community", "package_compress"), "<=", 0.55),
        Target("exactly-once bookkeeping per active session (was ~200 bytes)", "memory", bookkeeping_per_session, "<=", 150, unit=" bytes"),
        Target("new connections per 1,000 sync request cycles", "sync_connections", package_median, "<=", 0, unit=""),
        Target("new connections per 1,000 async request cycles", "async_connections", package_median, "<=", 0, unit=""),
    ]  # fmt: skip
    targets.extend(
        Target(f"read all of {length}: speed-up vs floor", f"read_all_{length}", speedup("floor"), ">=", 1.0, stretch=True)
        for length in sizes.read_lengths
    )  # fmt: skip
    return targets


def judge(measurements: Sequence[Measurement], sizes: Sizes) -> list[Verdict]:
    """A verdict per target; ``n/a`` when its measurement was not taken."""
    by_id = {measurement.id: measurement for measurement in measurements}
    verdicts = []
    for target in targets_for(sizes):
        measurement = by_id.get(target.measurement)
        verdicts.append(Verdict(target, None if measurement is None else target.value(measurement)))
    return verdicts
