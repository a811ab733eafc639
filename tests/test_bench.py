"""The benchmark harness runs at tiny sizes and reports every row; speed is never asserted."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from benchmarks.__main__ import main
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
        assert item["errors"] == {}, measurement_id
        assert set(item["samples"]) == expected
        rounds = 1 if measurement_id in ("memory", "sync_connections") else 2
        for name, samples in item["samples"].items():
            assert len(samples) == rounds, (measurement_id, name)
            assert all(value >= 0 and math.isfinite(value) for value in samples)
            assert item["median"][name] == pytest.approx(statistics.median(samples))
        if item["unit"] in ("s", "cycles/s", "bytes"):
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
    assert len(statuses) == len(targets_for(QUICK))
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
    target = targets_for(QUICK)[0]  # write: package time / floor time <= 1.15
    assert Verdict(target, 1.15).passed is True
    assert Verdict(target, 1.16).passed is False


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
