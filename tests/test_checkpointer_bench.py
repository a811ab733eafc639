"""The checkpointer benchmark's harness at a tiny size: every figure taken, skips said.

Speed is never asserted here (``make bench`` measures it); sizes and counts are.
"""

from __future__ import annotations

import math

from benchmarks.checkpointers import Servers, sample_turns
from benchmarks.checkpointers_report import run_checkpointers, table, verdicts

from tests.servers import RedisProcess


def test_tiny_run_measures_each_saver_and_skips_with_reasons(redis7: RedisProcess) -> None:
    servers = Servers(redis7.url, valkey_url=None, modules_url=None, postgres_url=None)
    names = ("ours", "inmemory", "sqlite", "redissaver", "valkey", "postgres")
    result = run_checkpointers(servers, report=(2, 3), names=names)

    assert result.errors == {}
    assert set(result.skipped) == {"redissaver", "valkey", "postgres"}
    assert "REDIS_MODULES_URL" in result.skipped["redissaver"]
    assert "POSTGRES_URL" in result.skipped["postgres"]
    for variant in ("plain", "tools"):
        for name in ("ours", "inmemory", "sqlite"):
            series = result.get(variant, name)
            assert series is not None, (variant, name)
            assert sorted(series.stored) == [1, 2, 3]
            assert 0 < series.stored[1] < series.stored[2] < series.stored[3]
            assert len(series.saver_seconds) == 3 and all(t > 0 for t in series.saver_seconds)
            assert set(series.get_state_seconds) == {2, 3}
            assert series.messages_once[3] > series.messages_once[2] > 0
    # The same conversation for everyone: the messages once are the same size.
    assert (
        result.get("tools", "ours").messages_once == result.get("tools", "inmemory").messages_once
    )  # type: ignore[union-attr]
    found = verdicts(result)
    assert len(found) == 6  # storage, speed, get_state per variant (no drift under 15 turns)
    assert all(v.value is not None and not math.isnan(v.value) for v in found)
    text = table(result)
    assert text.count("| 3 turns,") == 6 and "RedisSaver skipped" in text


def test_sample_turns_cover_the_windows() -> None:
    turns = sample_turns(200, (20, 50, 200))
    assert {10, 5, 15, 20, 45, 50, 195, 200, 100} <= turns
    assert max(turns) == 200 and min(turns) == 1
