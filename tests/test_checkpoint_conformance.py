"""LangGraph's official checkpointer conformance suite (langgraph-checkpoint-conformance).

Run as its README says: register a factory with ``checkpointer_test`` and ``validate``
it; every capability the saver implements (all eight) must pass, on every standalone
server of the matrix (Redis 7.x, 6.2, Valkey 9) and on a Cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

conformance = pytest.importorskip("langgraph.checkpoint.conformance")

from redis_chat_history.checkpoint import RedisCheckpointSaver  # noqa: E402

#: The capabilities and how many tests each has in langgraph-checkpoint-conformance 0.0.2.
CAPABILITIES = {
    "put",
    "put_writes",
    "get_tuple",
    "list",
    "delete_thread",
    "delete_for_runs",
    "copy_thread",
    "prune",
}


async def _validate(url: str, name: str) -> None:
    @conformance.checkpointer_test(name=name)
    async def factory() -> AsyncIterator[RedisCheckpointSaver]:
        yield RedisCheckpointSaver(url)

    report = await conformance.validate(factory)
    results = report.results
    failures = {
        capability: result.failures for capability, result in results.items() if not result.passed
    }
    assert not failures, failures
    assert set(results) == CAPABILITIES
    assert all(result.detected and result.passed for result in results.values())
    assert all(result.tests_passed > 0 for result in results.values())


async def test_conformance_standalone(redis_url: str) -> None:
    await _validate(redis_url, "RedisCheckpointSaver")


async def test_conformance_cluster(cluster_url: str) -> None:
    await _validate(cluster_url, "RedisCheckpointSaver (cluster)")
