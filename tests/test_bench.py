"""The benchmark harness runs at tiny sizes and reports every row; speed is never asserted."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path

import pytest
from benchmarks.__main__ import main
from benchmarks.agent_memory import AgentMemory, Series, agent_table, agent_verdicts
from benchmarks.report import markdown_tables
from benchmarks.scenarios import QUICK, Measurement
from benchmarks.targets import Verdict, judge, paired, targets_for
from benchmarks.workload import MAX_CHARS, MIN_CHARS, Workload

CONTENDERS = {"package", "community", "floor"}
MEMORY_VARIANTS = {"package", "package_compress", "community", "floor"}
EXPECTED_IDS = {
    "write_turn",
    "request_cycle",
    *(f"read_all_{length}" for length in QUICK.read_lengths),
    f"read_newest_{QUICK.newest}_of_{QUICK.newest_of}",
    "async_throughput",
    "async_connections",
    "sync_connections",
    "memory",
    "server_write",
    "server_write_busy",
    "client_cpu_write",
    "server_write_bursts",
}
SERVER_ROWS = {
    "server_write": CONTENDERS | {"bare_script"},
    "server_write_busy": CONTENDERS | {"bare_script"},
    "client_cpu_write": CONTENDERS | {"bare_script"},
    "server_write_bursts": {"1 writers", "100 writers", "1000 writers"},
}


def test_quick_run_reports_every_row_target_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_path, png_path = tmp_path / "bench.json", tmp_path / "bench.png"
    code = main(["--quick", "--repeat", "2", "--json", str(json_path), "--png", str(png_path)])
    out = capsys.readouterr().out

    assert code == 0
    document = json.loads(json_path.read_text())
    measurements = {item["id"]: item for item in document["measurements"]}
    assert set(measurements) == EXPECTED_IDS
    for measurement_id, item in measurements.items():
        expected = MEMORY_VARIANTS if measurement_id == "memory" else CONTENDERS
        expected = SERVER_ROWS.get(measurement_id, expected)
        assert item["errors"] == {}, measurement_id
        assert set(item["samples"]) == expected
        rounds = 1 if measurement_id in ("memory", "sync_connections", *SERVER_ROWS) else 2
        for name, samples in item["samples"].items():
            assert len(samples) == rounds, (measurement_id, name)
            assert all(value >= 0 and math.isfinite(value) for value in samples)
            assert item["median"][name] == pytest.approx(statistics.median(samples))
        if item["unit"] in ("s", "cycles/s", "bytes", "us"):
            assert all(value > 0 for samples in item["samples"].values() for value in samples)

    # The package shares its clients, the old class builds one per history object.
    assert measurements["sync_connections"]["median"]["package"] == 0
    assert measurements["sync_connections"]["median"]["community"] == 1000
    memory = measurements["memory"]["details"]
    assert memory["community"]["companion_key_bytes_per_message"] == 0
    assert memory["package"]["companion_key_bytes_per_message"] > 0  # write tokens are counted
    assert (
        memory["package_compress"]["payload_bytes_per_message"]
        < memory["package"]["payload_bytes_per_message"]
    )

    statuses = [target["status"] for target in document["targets"]]
    agent_targets = [t for t in document["targets"] if t["measurement"] == "agent_memory"]
    assert len(agent_targets) == 4  # bytes vs add_messages and linear growth, both variants
    assert len(statuses) == len(targets_for(QUICK)) + len(agent_targets)
    assert set(statuses) <= {"PASS", "FAIL"}
    for target in document["targets"]:
        assert f"{target['status']:4}  " in out
        assert target["target"] in out
    for item in measurements.values():
        assert item["title"] in out
    assert document["meta"]["sizes"]["quick"] is True
    assert document["meta"]["redis_server"].startswith(("6.", "7.", "8."))
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _measurement(samples: dict[str, list[float]], unit: str = "s") -> Measurement:
    return Measurement("write_turn", "write", unit, unit == "cycles/s", samples)


def test_ratios_pair_rounds_and_orient_by_unit() -> None:
    times = _measurement(
        {"package": [1.0, 2.0, 10.0], "community": [3.0, 6.0, 20.0], "floor": [1.0, 1.0, 1.0]}
    )
    assert times.ratio("package", "community") == 3.0  # per round: 3, 3, 2 -> median 3
    assert paired(times, "package", "floor") == 2.0  # per round: 1, 2, 10
    rates = _measurement({"package": [400.0], "community": [100.0], "floor": [500.0]}, "cycles/s")
    assert rates.ratio("package", "community") == 4.0
    assert rates.ratio("package", "floor") == 0.8


def test_failed_contender_fails_its_targets_and_shows_as_error() -> None:
    failed = _measurement({"package": [], "community": [2.0], "floor": [1.0]})
    failed.errors["package"] = "RedisUnavailableError: Too many connections"
    verdicts = {v.target.text: v for v in judge([failed], QUICK)}
    write = verdicts["write: speed-up vs langchain_community"]
    assert write.passed is False
    assert "error" in write.line()
    assert verdicts["request cycle: speed-up vs langchain_community"].status == "n/a"
    table = markdown_tables([failed])
    assert "| error |" in table
    assert "Too many connections" in table


def test_verdict_limits_are_inclusive() -> None:
    target = targets_for(QUICK)[0]  # write: package time / floor time <= 1.10
    assert Verdict(target, 1.10).passed is True
    assert Verdict(target, 1.11).passed is False


def test_workload_is_deterministic_and_realistic() -> None:
    first, second = Workload(seed=3, pool_size=60), Workload(seed=3, pool_size=60)
    assert first.messages(40) == second.messages(40)
    messages = first.messages(120)
    assert [message.type for message in messages[:4]] == ["human", "ai", "human", "ai"]
    assert all(MIN_CHARS <= len(message.content) <= MAX_CHARS for message in messages)
    ais = [message for message in messages if message.type == "ai"]
    assert any(message.tool_calls for message in ais)
    assert any(message.usage_metadata for message in ais)
    facts = first.describe()
    assert 0 < facts["ai_with_tool_calls"] < 1
    assert facts["chars_min"] >= MIN_CHARS and facts["chars_max"] <= MAX_CHARS


def test_repeat_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        main(["--repeat", "0"])


def test_agent_memory_quick_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_path, png_path = tmp_path / "bench.json", tmp_path / "bench.png"
    code = main(["--only-agents", "--quick", "--agent-turns", "3,4", "--json", str(json_path), "--png", str(png_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    document = json.loads(json_path.read_text())
    agents = document["agent_memory"]
    assert agents["errors"] == {}
    assert "redissaver" in agents["skipped"] or "redissaver" in agents["series"]["plain_3"]
    for key in ("plain_3", "plain_4", "tools_3", "tools_4"):
        series = agents["series"][key]
        assert {"middleware", "inmemory", "sqlite"} <= set(series)
        turns = int(key.split("_")[1])
        for name, values in series.items():
            sizes = values["bytes_after_turn"]
            assert len(sizes) == turns and all(b > a for a, b in itertools.pairwise(sizes)), name
            assert all(t >= 0 for t in values["memory_seconds"])
        middleware = series["middleware"]
        # Stored once: the same messages written by add_messages take the same bytes.
        assert middleware["same_messages_bytes"] == middleware["bytes_after_turn"][-1]
        assert series["sqlite"]["bytes_after_turn"][-1] > middleware["bytes_after_turn"][-1]
    for target in document["targets"]:
        assert f"{target['status']:4}  " in out and target["target"] in out
    assert "| 4 turns, one tool call per turn | SqliteSaver |" in out
    assert "RedisSaver skipped" in out or "RedisSaver |" in out
    assert Path(tmp_path / "bench_agent_memory.png").read_bytes()[:4] == b"\x89PNG"


def test_agent_targets_at_twenty_turns() -> None:
    result = AgentMemory((20,), 1)
    line = [1000.0 * turn for turn in range(1, 21)]
    quadratic = [1000.0 * turn * turn for turn in range(1, 21)]
    for variant in ("plain", "tools"):
        result.series[AgentMemory.key(variant, 20)] = {
            "middleware": Series(line, [0.001] * 20, same_messages_bytes=line[-1]),
            "inmemory": Series(quadratic, [0.002] * 20),
            "sqlite": Series(quadratic, [0.004] * 20),
        }
    verdicts = agent_verdicts(result)
    assert len(verdicts) == 8
    assert all(verdict.passed for verdict in verdicts), [v.line() for v in verdicts]
    result.series["tools_20"]["middleware"].same_messages_bytes = line[-1] / 2  # stored twice
    result.series["tools_20"]["sqlite"] = Series(line, [0.002] * 20)
    failed = {v.target.text for v in agent_verdicts(result) if not v.passed}
    assert len(failed) == 3 and all("one tool call" in text for text in failed)
    assert "| 20 turns, without tools | SqliteSaver | 390.6 KB | 20.0x |" in agent_table(result)
