"""Turning measurements into a Markdown table, a JSON file and an optional PNG chart.

Example::

    print(markdown_tables(measurements))
    write_json(path, measurements, verdicts, meta)
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.scenarios import Measurement
from benchmarks.targets import Verdict

COLUMNS = (
    ("package", "redis-chat-history"),
    ("community", "langchain_community"),
    ("floor", "redis-py floor"),
)
MEMORY_COLUMNS = (
    ("community", "langchain_community"),
    ("package", "redis-chat-history (default)"),
    ("package_compress", "redis-chat-history compress=True"),
    ("floor", "redis-py floor (orjson, full dicts)"),
)  # fmt: skip
VERSIONED = (
    "redis",
    "hiredis",
    "langchain-core",
    "langchain-community",
    "orjson",
    "pydantic",
    "langchain",
    "langgraph",
    "langgraph-checkpoint-sqlite",
)


def _format_value(measurement: Measurement, name: str) -> str:
    if name in measurement.errors:
        return "error"
    value = measurement.median(name)
    if measurement.unit == "s":
        if value >= 0.1:
            return f"{value:.2f} s"
        if value >= 1e-3:
            return f"{value * 1e3:.2f} ms"
        return f"{value * 1e6:.0f} µs"
    if measurement.unit == "cycles/s":
        return f"{value:,.0f} cycles/s"
    return f"{value:,.0f}"


def _format_ratio(measurement: Measurement, other: str) -> str:
    ratio = measurement.ratio("package", other)
    if measurement.unit == "connections":
        return "-"
    return "-" if math.isnan(ratio) else f"{ratio:.2f}x"


def markdown_tables(measurements: Sequence[Measurement]) -> str:
    """Speed rows (medians, and how many times better this package is) and the memory rows."""
    header = " | ".join(title for _, title in COLUMNS)
    lines = [
        f"| scenario (median) | {header} | vs langchain_community | vs floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    memory: Measurement | None = None
    for measurement in measurements:
        if measurement.id == "memory":
            memory = measurement
            continue
        cells = " | ".join(_format_value(measurement, name) for name, _ in COLUMNS)
        lines.append(
            f"| {measurement.title} | {cells} | {_format_ratio(measurement, 'community')} "
            f"| {_format_ratio(measurement, 'floor')} |"
        )
    lines.append("")
    lines.append("vs = how many times faster (or more throughput) this package is; > 1 is better.")
    if memory is not None:
        lines += ["", _memory_table(memory)]
    errors = [
        f"- {measurement.title}: {dict(COLUMNS + MEMORY_COLUMNS).get(name, name)} failed: {error}"
        for measurement in measurements
        for name, error in measurement.errors.items()
    ]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines)


def _memory_table(memory: Measurement) -> str:
    baseline = memory.median("community")
    lines = [
        f"| {memory.title} | bytes/message | vs langchain_community | of which list | "
        "of which writer keys | stored element bytes | writer-key bytes per active session "
        "| keys per session |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, title in MEMORY_COLUMNS:
        if name not in memory.samples:
            continue
        if name in memory.errors:
            lines.append(f"| {title} | error | - | - | - | - | - | - |")
            continue
        detail = memory.details[name]
        lines.append(
            f"| {title} | {memory.median(name):,.0f} | {memory.median(name) / baseline:.2f}x "
            f"| {detail['list_bytes_per_message']:,.0f} "
            f"| {detail['companion_key_bytes_per_message']:,.1f} "
            f"| {detail['payload_bytes_per_message']:,.0f} "
            f"| {detail.get('companion_key_bytes_per_session', 0):,.0f} "
            f"| {detail.get('keys_per_session', 0):.0f} |"
        )
    return "\n".join(lines)


def targets_text(verdicts: Sequence[Verdict]) -> str:
    return "\n".join(verdict.line() for verdict in verdicts)


def _run(command: Sequence[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_facts(redis_version: str, redis_binary: str) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, memory, load, versions."""
    cpu = ""
    for line in _run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    memory_total = ""
    free = _run(["free", "-h"]).splitlines()
    if len(free) > 1:
        memory_total = free[1].split()[1]
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory": memory_total,
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "redis_server": f"{redis_version} ({redis_binary})",
        "packages": versions,
    }


def machine_text(meta: dict[str, Any]) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in meta["packages"].items())
    return (
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory']} RAM, {meta['os']}; "
        f"load average {meta['load_average_at_start']} at start, "
        f"{meta.get('load_average_at_end', '?')} at end.\n"
        f"Python {meta['python']}, redis-server {meta['redis_server']}; {packages}."
    )


def write_json(
    path: Path,
    measurements: Sequence[Measurement],
    verdicts: Sequence[Verdict],
    meta: dict[str, Any],
    *,
    agent_memory: dict[str, Any] | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "measurements": [measurement.as_dict() for measurement in measurements],
        "targets": [verdict.as_dict() for verdict in verdicts],
    }
    if agent_memory is not None:
        document["agent_memory"] = agent_memory
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def write_chart(path: Path, measurements: Sequence[Measurement]) -> None:
    """Speed-ups (log scale) and memory per message, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed = [m for m in measurements if m.unit in ("s", "cycles/s")]
    memory = next((m for m in measurements if m.id == "memory"), None)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), width_ratios=(3, 2))
    height = 0.38
    for offset, (other, label, color) in enumerate(
        (
            ("community", "vs langchain_community", "#d62728"),
            ("floor", "vs redis-py floor", "#7f7f7f"),
        )
    ):
        for row, measurement in enumerate(speed):
            y = row + (offset - 0.5) * height
            ratio = measurement.ratio("package", other)
            if math.isnan(ratio):
                left.text(1.0, y, "  error", va="center", fontsize=8, color=color)
                continue
            left.barh(y, ratio, height, color=color, label=label if row == 0 else None)
            left.text(ratio, y, f" {ratio:.2f}x", va="center", fontsize=7)
    left.set_yticks(range(len(speed)), [m.title for m in speed], fontsize=8)
    left.invert_yaxis()
    left.set_xscale("log")
    left.axvline(1.0, color="black", linewidth=0.8)
    left.set_xlabel("times faster (log scale; > 1: redis-chat-history is faster)")
    left.legend(loc="upper right", fontsize=8)
    left.set_title("redis-chat-history speed-up (medians, same run)")
    if memory is not None:
        short = {
            "community": "langchain_\ncommunity",
            "package": "redis-chat-\nhistory",
            "package_compress": "redis-chat-\nhistory\ncompress=True",
            "floor": "redis-py\nfloor",
        }
        names = [name for name, _ in MEMORY_COLUMNS if memory.samples.get(name)]
        values = [memory.median(name) for name in names]
        colors = {"community": "#d62728", "package": "#1f77b4", "package_compress": "#2ca02c"}
        right.bar(
            [short[name] for name in names],
            values,
            color=[colors.get(name, "#7f7f7f") for name in names],
        )
        for index, value in enumerate(values):
            right.text(index, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=8)
        right.tick_params(axis="x", labelsize=8)
        right.set_ylabel("bytes of Redis memory per message")
        right.set_title("Redis memory per stored message")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
