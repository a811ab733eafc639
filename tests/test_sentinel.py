"""Sentinel: a real master, replica and 3 sentinels; histories follow a failover by themselves.

Also ``wait_for_replicas``: a write returns only after replicas acknowledged it.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import (
    RedisChatMessageHistory,
    ReplicationError,
    RetryPolicy,
)
from tests.servers import SentinelGroup, wait_until
from tests.write_streams import WriteStream

RETRY = RetryPolicy(attempts=3, backoff_base=0.05, backoff_cap=0.3, connect_timeout=1)


def contents(history: RedisChatMessageHistory) -> list[str]:
    return [str(m.content) for m in history.messages]


@pytest.mark.parametrize("single", [True, False], ids=["one-sentinel", "three-sentinels"])
def test_every_operation_through_sentinel(sentinel_group: SentinelGroup, single: bool) -> None:
    url = sentinel_group.url(db=2, single=single)
    history = RedisChatMessageHistory(f"sentinel-ops-{single}", url=url, ttl=300, retry=RETRY)
    history.clear()
    history.add_messages([HumanMessage("a"), HumanMessage("b"), HumanMessage("c")])
    assert contents(history) == ["a", "b", "c"]
    assert [m.content for m in history.get_messages(limit=1)] == ["c"]
    assert history.count() == 3 and 0 < (history.expires_in() or 0) <= 300
    assert [m.content for m in history.delete_last()] == ["c"]

    async def scenario() -> int:
        await history.aadd_messages([HumanMessage("d")])
        return await history.acount()

    assert asyncio.run(scenario()) == 3
    _host, port = sentinel_group.master_address()
    master = next(
        server
        for server in (sentinel_group.master, sentinel_group.replica)
        if server is not None and server.port == port
    )
    raw = master.client(db=2)
    try:  # the data is on the master the sentinels name, in the url's db
        assert raw.llen(history.key) == 3
    finally:
        raw.close()
    history.clear()


def test_wait_for_replicas_acknowledged_and_refused(sentinel_group: SentinelGroup) -> None:
    url = sentinel_group.url()
    durable = RedisChatMessageHistory(
        "waited", url=url, wait_for_replicas=1, wait_timeout=2, retry=RETRY
    )
    durable.clear()
    durable.add_user_message("replicated")
    assert contents(durable) == ["replicated"]
    too_many = RedisChatMessageHistory(
        "waited", url=url, wait_for_replicas=2, wait_timeout=0.2, retry=RETRY
    )
    with pytest.raises(ReplicationError) as raised:
        too_many.add_user_message("only one replica")
    assert raised.value.requested == 2 and raised.value.acknowledged == 1
    assert "'message_store:waited'" in str(raised.value)
    # the master applied it (the error says so): WAIT cannot roll back
    assert contents(durable) == ["replicated", "only one replica"]

    async def async_refused() -> None:
        await too_many.aadd_messages([HumanMessage("async")])

    with pytest.raises(ReplicationError):
        asyncio.run(async_refused())
    durable.clear()


def test_failover_during_writes_histories_follow_the_new_master(
    sentinel_group: SentinelGroup,
) -> None:
    url = sentinel_group.url()
    histories = [
        RedisChatMessageHistory(
            f"follow-{i}", url=url, wait_for_replicas=1, wait_timeout=1, retry=RETRY
        )
        for i in range(4)
    ]
    for history in histories:
        history.clear()
    old_master = sentinel_group.master_address()
    with WriteStream(histories, pause_after_error=0.02) as stream:
        wait_until(lambda: len(stream.acknowledged) >= 20, 30, "writes before the failover")
        sentinel = sentinel_group._sentinel_client(sentinel_group.sentinel_ports[0])
        try:
            sentinel.execute_command("SENTINEL", "FAILOVER", sentinel_group.service)
        finally:
            sentinel.close()
        wait_until(lambda: sentinel_group.master_address() != old_master, 30, "failover")
        new_master = sentinel_group.master_address()
        # the old master rejoins as a replica; then WAIT succeeds again
        wait_until(lambda: _replicated(sentinel_group), 30, "a replica of the new master")
        after = len(stream.acknowledged)
        wait_until(lambda: len(stream.acknowledged) > after + 20, 30, "writes on the new master")
    assert new_master != old_master
    stream.check_exactly_once()

    async def async_after() -> int:  # async clients follow the new master too
        await histories[0].aadd_messages([HumanMessage("async after failover")])
        return await histories[0].acount()

    assert asyncio.run(async_after()) == len(contents(histories[0]))
    for history in histories:
        history.clear()


def _replicated(group: SentinelGroup) -> bool:
    _host, port = group.master_address()
    master = group.master if group.master and group.master.port == port else group.replica
    assert master is not None
    client = master.client()
    try:
        info = client.info("replication")
    finally:
        client.close()
    return bool(info.get("connected_slaves", 0) >= 1 and info["slave0"]["state"] == "online")
