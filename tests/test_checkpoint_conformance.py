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
from tests.servers import RedisProcess  # noqa: E402

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


#: What RedisCheckpointSaver needs beyond the key prefix (README: Checkpointer).
CHECKPOINT_COMMANDS = (
    "evalsha eval hget hset hdel hexists hkeys hlen hgetall llen lpush lrange rename exists "
    "expire del zadd zrem zrange zrangebylex zrevrangebylex zscore scan"
)


async def test_conformance_with_a_least_privilege_user(redis7: RedisProcess) -> None:
    admin = redis7.client()
    password = "checkpoint-secret"
    admin.execute_command(
        "ACL", "SETUSER", "saver", "reset", "on", f">{password}", "~message_store:*",
        "resetchannels", "-@all", *[f"+{name}" for name in CHECKPOINT_COMMANDS.split()],
    )  # fmt: skip
    try:
        await _validate(f"redis://saver:{password}@127.0.0.1:{redis7.port}/0", "ACL")
        log = admin.acl_log()
        denied = {entry["object"] for entry in log if entry["username"] == "saver"}
        assert denied <= {"info"}, denied  # INFO is tried (cluster detection) and not needed
    finally:
        admin.execute_command("ACL", "DELUSER", "saver")
        admin.close()
