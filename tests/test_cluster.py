"""Every history operation on a real 6-node Redis Cluster, and a failover while writes run."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from redis_chat_history import RedisChatMessageHistory
from redis_chat_history.slots import key_slot
from tests.servers import Cluster, RedisProcess, wait_until
from tests.write_streams import AsyncWriteStream, WriteStream


def turn(i: int) -> list[BaseMessage]:
    return [HumanMessage(f"question {i}"), AIMessage(f"answer {i}", id=f"a{i}")]


@pytest.mark.parametrize("scheme", ["explicit", "detected"])
def test_every_operation_on_cluster(cluster: Cluster, cluster_url: str, scheme: str) -> None:
    url = cluster_url if scheme == "explicit" else cluster.plain_url
    history = RedisChatMessageHistory("alice", url=url, ttl=600, max_messages=5)
    history.add_messages(turn(1) + turn(2))
    history.add_user_message("third")
    assert [m.content for m in history.messages] == [
        "question 1",
        "answer 1",
        "question 2",
        "answer 2",
        "third",
    ][-5:]
    history.add_ai_message("fourth")  # trimmed to the newest 5
    assert [m.content for m in history.get_messages(limit=2)] == ["third", "fourth"]
    assert history.count() == len(history) == 5
    assert 590 < (history.expires_in() or 0) <= 600
    assert [m.content for m in history.delete_last(2)] == ["third", "fourth"]
    history.replace_messages([HumanMessage("summary")])
    assert [m.content for m in history.messages] == ["summary"]
    assert history.expire(100) is True and 90 < (history.expires_in() or 0) <= 100
    assert history.persist() is True and history.expires_in() is None
    history.clear()
    assert history.messages == [] and history.count() == 0


def test_async_operations_on_cluster(cluster_url: str) -> None:
    history = RedisChatMessageHistory("bob", url=cluster_url, ttl=60)

    async def scenario() -> list[str]:
        await history.aadd_messages(turn(1))
        await history.aadd_messages(turn(2))
        assert await history.acount() == 4
        removed = await history.adelete_last(1)
        assert [m.content for m in removed] == ["answer 2"]
        await history.areplace_messages([HumanMessage("x"), AIMessage("y")])
        assert await history.aexpire(30) is True
        assert 0 < (await history.aexpires_in() or 0) <= 30
        messages = await history.aget_messages()
        await history.aclear()
        assert await history.acount() == 0
        return [str(m.content) for m in messages]

    assert asyncio.run(scenario()) == ["x", "y"]
    assert asyncio.run(history.acount()) == 0  # a second event loop works too


def test_sessions_spread_over_every_master(cluster: Cluster, cluster_url: str) -> None:
    sessions = [f"user-{i}" for i in range(60)]
    for session in sessions:
        RedisChatMessageHistory(session, url=cluster_url).add_messages(turn(0))
    holders = Counter()
    for master in cluster.masters():
        client = master.client()
        try:
            for session in sessions:
                key = "message_store:" + session
                # a master owns a slot if CLUSTER COUNTKEYSINSLOT finds the key there
                if client.execute_command("CLUSTER", "COUNTKEYSINSLOT", key_slot(key)) and (
                    client.exists(key)
                ):
                    holders[master.port] += 1
        finally:
            client.close()
    assert len(holders) == 3 and sum(holders.values()) == len(sessions)
    for session in sessions:
        history = RedisChatMessageHistory(session, url=cluster_url)
        assert [m.content for m in history.messages] == ["question 0", "answer 0"]


def test_failover_while_writing_loses_and_duplicates_nothing(
    cluster: Cluster, cluster_url: str
) -> None:
    histories = [RedisChatMessageHistory(f"fo-{i}", url=cluster_url) for i in range(12)]
    with WriteStream(histories, pause_after_error=0) as stream:
        wait_until(lambda: len(stream.acknowledged) >= 24, 30, "writes before the failover")
        before = len(stream.acknowledged)
        cluster.failover(cluster.masters()[0])
        wait_until(lambda: len(stream.acknowledged) > before, 30, "writes after the failover")
    print(f"failover: {len(stream.acknowledged)} acknowledged, {len(stream.failed)} failed")
    assert len(stream.acknowledged) > before > 0
    stream.check_exactly_once()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_master_killed_with_wait_for_replicas_loses_no_acknowledged_write(
    cluster: Cluster, cluster_url: str, mode: str
) -> None:
    histories = [
        RedisChatMessageHistory(f"kill-{i}", url=cluster_url, wait_for_replicas=1, wait_timeout=2)
        for i in range(12)
    ]
    victim = cluster.masters()[1]
    try:
        stream_class = WriteStream if mode == "sync" else AsyncWriteStream
        with stream_class(histories, pause_after_error=0) as stream:
            wait_until(lambda: len(stream.acknowledged) >= 24, 30, "writes before the kill")
            victim.kill()
            # the replica takes over after cluster-node-timeout; writes continue meanwhile
            wait_until(lambda: len(cluster.masters()) == 3, 30, "a replica to take over")
            after = len(stream.acknowledged)
            wait_until(lambda: len(stream.acknowledged) > after, 30, "writes acknowledged again")
    finally:
        victim.restart()  # rejoins as a replica of its old slots' new master
        cluster.wait_healthy()
    print(f"kill: {len(stream.acknowledged)} acknowledged, {len(stream.failed)} failed")
    assert len(stream.acknowledged) > after
    stream.check_exactly_once()


def test_slot_migration_while_writing_loses_and_duplicates_nothing(
    cluster: Cluster, cluster_url: str
) -> None:
    """Reshard the slot of a busy session to another master while it is being written."""
    history = RedisChatMessageHistory("migrating", url=cluster_url)
    history.add_user_message("m-1")  # so the key exists before the move
    slot = key_slot(history.key)
    masters = cluster.masters()
    source = next(m for m in masters if _owns(m, slot))
    target = next(m for m in masters if m is not source)
    source_id, target_id = Cluster._node_id(source), Cluster._node_id(target)
    with WriteStream([history], pause_after_error=0) as stream:
        wait_until(lambda: len(stream.acknowledged) >= 10, 30, "writes before the move")
        with contextlib.closing(target.client()) as dst, contextlib.closing(source.client()) as src:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            half_moved = len(stream.acknowledged) + len(stream.failed)
            # writes meet the slot half-moved (ASK / TRYAGAIN)
            wait_until(
                lambda: len(stream.acknowledged) + len(stream.failed) >= half_moved + 5,
                30,
                "writes while the slot is half-moved",
            )
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            for node in cluster.masters():
                with contextlib.closing(node.client()) as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        moved = len(stream.acknowledged)
        wait_until(lambda: len(stream.acknowledged) > moved, 30, "writes at the new owner")
    assert len(stream.acknowledged) > moved  # writes go on at the new owner
    assert _owns(target, slot) and not _owns(source, slot)
    stored = [m.content for m in history.messages]
    assert stored[0] == "m-1" and stored.count("m-1") == 1
    acknowledged = set(stream.acknowledged)
    assert acknowledged <= set(stored[1:])
    assert len(stored[1:]) == len(set(stored[1:]))
    assert set(stored[1:]) <= acknowledged | set(stream.failed)


def _owns(node: RedisProcess, slot: int) -> bool:
    """Whether CLUSTER SLOTS, as ``node`` sees it, names ``node`` the master of ``slot``."""
    with contextlib.closing(node.client()) as client:
        for first, last, master, *_replicas in client.execute_command("CLUSTER", "SLOTS"):
            if int(first) <= slot <= int(last):
                return int(master[1]) == node.port
    return False
