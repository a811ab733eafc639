"""Full pools of Cluster and Sentinel clients, on real servers: callers wait for a free
connection (redis-py's Cluster and Sentinel pools refuse at once; the call machine waits),
and fail with a true PoolExhaustedError only after the pool stayed busy for its timeout.

The url's ``max_connections`` reaches every pool those clients build.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langchain_core.messages import HumanMessage

from redis_chat_history import PoolExhaustedError, RedisChatMessageHistory, RetryPolicy
from tests.servers import Cluster, SentinelGroup

NAME = "rch-pool"
#: Replies held by CLIENT PAUSE arrive well within the wait (pool_timeout = 1 + 20 s).
PATIENT = RetryPolicy(connect_timeout=1, socket_timeout=20)
#: A pool that stays busy past 0.6 s fails the call.
HASTY = RetryPolicy(attempts=1, connect_timeout=0.2, socket_timeout=0.4)
BUSY = re.compile(r"stayed busy for ([0-9.]+) s \(pool of (\d+)\).*max_connections")


def contents(history: RedisChatMessageHistory) -> list[str]:
    return [str(message.content) for message in history.messages]


def node_admin(cluster: Cluster, port: int) -> redis.Redis:
    master = next(node for node in cluster.masters() if node.port == port)
    return master.client()


def paused_writes(admin: redis.Redis) -> int:
    """Our connections whose request the server holds (CLIENT PAUSE: flag ``b``)."""
    return sum(
        1 for client in admin.client_list() if client.get("name") == NAME and "b" in client["flags"]
    )


@pytest.fixture
def paused_cluster(cluster: Cluster, cluster_url: str) -> Iterator[tuple[Cluster, str]]:
    yield cluster, cluster_url
    for node in cluster.masters():  # never leave a node paused for the next test
        with node.client() as admin:
            admin.execute_command("CLIENT", "UNPAUSE")


def assert_waited_busy(error: PoolExhaustedError, elapsed: float, size: int) -> None:
    """The message is true: the pool of ``size`` was busy the whole time it says."""
    found = BUSY.search(str(error))
    assert found, str(error)
    waited, pool = float(found.group(1)), int(found.group(2))
    assert pool == size
    assert HASTY.pool_timeout - 0.01 <= waited <= elapsed + 0.01  # printed to 3 digits
    assert elapsed < HASTY.pool_timeout + 10  # once after the wait, not after each re-send


# -- the async Cluster client (the case) --------------------------------------
def test_async_cluster_writers_wait_for_a_connection_freed_within_the_wait(
    paused_cluster: tuple[Cluster, str],
) -> None:
    cluster, url = paused_cluster
    history = RedisChatMessageHistory(
        "crowd", url=f"{url}?max_connections=2&client_name={NAME}", retry=PATIENT
    )
    writers = 30

    async def scenario() -> None:
        await history.aadd_messages([HumanMessage("warm")])
        client: Any = await history._provider.async_()
        node = client.nodes_manager.get_node_from_slot(client.keyslot(history.key))
        admin = node_admin(cluster, node.port)
        try:
            admin.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")  # scripts wait
            tasks = [
                asyncio.create_task(history.aadd_messages([HumanMessage(f"w{i}")]))
                for i in range(writers)
            ]
            deadline = time.monotonic() + 20
            while await asyncio.to_thread(paused_writes, admin) < 2:
                assert time.monotonic() < deadline, "the writers never filled the pool"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # the other writers keep asking the full pool
            assert not any(task.done() for task in tasks)  # two held, the rest waiting
            assert await asyncio.to_thread(paused_writes, admin) == 2  # never a third
            assert len(node._connections) == 2 and not node._free
            admin.execute_command("CLIENT", "UNPAUSE")
            await asyncio.gather(*tasks)  # every writer got a connection: none raised
            assert len(node._connections) <= 2
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
            admin.close()

    asyncio.run(scenario())
    stored = contents(history)
    assert stored[0] == "warm" and sorted(stored[1:]) == sorted(f"w{i}" for i in range(writers))


def test_async_cluster_pool_that_stays_busy_fails_after_the_wait_saying_so(
    cluster_url: str,
) -> None:
    history = RedisChatMessageHistory("held", url=f"{cluster_url}?max_connections=2", retry=HASTY)

    async def timed_write(text: str) -> tuple[BaseException | None, float]:
        began = time.monotonic()
        try:
            await history.aadd_messages([HumanMessage(text)])
        except PoolExhaustedError as error:
            return error, time.monotonic() - began
        return None, time.monotonic() - began

    async def scenario() -> list[tuple[BaseException | None, float]]:
        await history.aadd_messages([HumanMessage("warm")])
        client: Any = await history._provider.async_()
        node = client.nodes_manager.get_node_from_slot(client.keyslot(history.key))
        held = [node.acquire_connection() for _ in range(2)]  # the whole pool, for good
        try:
            outcomes = await asyncio.gather(*(timed_write(f"w{i}") for i in range(5)))
        finally:
            for connection in held:
                node.release(connection)
        await history.aadd_messages([HumanMessage("after")])  # the pool is free again
        return outcomes

    for error, elapsed in asyncio.run(scenario()):
        assert isinstance(error, PoolExhaustedError), error
        assert_waited_busy(error, elapsed, 2)
    assert contents(history) == ["warm", "after"]  # the refused writes stored nothing


# -- the sync Cluster client ------------------------------------------------------------
def test_sync_cluster_writers_wait_for_a_free_connection_and_fail_when_it_stays_busy(
    cluster_url: str,
) -> None:
    url = f"{cluster_url}?max_connections=1"
    history = RedisChatMessageHistory("sync-held", url=url, retry=HASTY)
    history.add_user_message("warm")
    pool = node_pool(history)
    held = pool.get_connection()
    began = time.monotonic()
    try:
        with pytest.raises(PoolExhaustedError) as raised:
            history.add_user_message("refused")
    finally:
        pool.release(held)
    assert_waited_busy(raised.value, time.monotonic() - began, 1)

    patient = RedisChatMessageHistory("sync-held", url=url, retry=PATIENT)  # its own clients
    patient.count()
    pool = node_pool(patient)
    held = pool.get_connection()
    freed = threading.Event()

    def release_while_the_writer_waits() -> None:
        time.sleep(0.3)  # the fault's length, not a wait for a condition
        freed.set()
        pool.release(held)

    threading.Thread(target=release_while_the_writer_waits, daemon=True).start()
    patient.add_user_message("waited")  # no error: the connection came back within the wait
    assert freed.is_set()
    assert contents(history) == ["warm", "waited"]


def node_pool(history: RedisChatMessageHistory) -> Any:
    """The sync Cluster client's pool of the node serving ``history``."""
    client: Any = history._provider.sync()
    node = client.nodes_manager.get_node_from_slot(client.keyslot(history.key))
    return node.redis_connection.connection_pool


# -- Sentinel ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sentinel_pool_waits_then_fails_after_the_wait(
    sentinel_group: SentinelGroup, mode: str
) -> None:
    url = sentinel_group.url() + "?max_connections=1"
    history = RedisChatMessageHistory(f"sentinel-held-{mode}", url=url, retry=HASTY)
    patient = RedisChatMessageHistory(f"sentinel-held-{mode}", url=url, retry=PATIENT)
    history.clear()

    def sync_scenario() -> tuple[BaseException, float]:
        history.add_user_message("warm")
        pool: Any = history._provider.sync().connection_pool
        held = pool.get_connection()
        began = time.monotonic()
        try:
            with pytest.raises(PoolExhaustedError) as raised:
                history.add_user_message("refused")
        finally:
            pool.release(held)
        elapsed = time.monotonic() - began
        pool = patient._provider.sync().connection_pool
        held = pool.get_connection()
        threading.Timer(0.3, pool.release, (held,)).start()
        patient.add_user_message("waited")
        return raised.value, elapsed

    async def async_scenario() -> tuple[BaseException, float]:
        await history.aadd_messages([HumanMessage("warm")])
        client: Any = await history._provider.async_()
        held = await client.connection_pool.get_connection()
        began = time.monotonic()
        try:
            with pytest.raises(PoolExhaustedError) as raised:
                await history.aadd_messages([HumanMessage("refused")])
        finally:
            await client.connection_pool.release(held)
        elapsed = time.monotonic() - began
        pool = (await patient._provider.async_()).connection_pool  # type: ignore[union-attr]
        held = await pool.get_connection()
        asyncio.get_running_loop().call_later(
            0.3, lambda: asyncio.ensure_future(pool.release(held))
        )
        await patient.aadd_messages([HumanMessage("waited")])
        return raised.value, elapsed

    error, elapsed = sync_scenario() if mode == "sync" else asyncio.run(async_scenario())
    assert isinstance(error, PoolExhaustedError)
    assert_waited_busy(error, elapsed, 1)
    assert contents(history) == ["warm", "waited"]
    history.clear()


# -- the url's max_connections reaches every pool -------------------------------------
def test_cluster_clients_keep_the_urls_max_connections(cluster_url: str) -> None:
    history = RedisChatMessageHistory("sized", url=f"{cluster_url}?max_connections=3")
    history.count()
    client: Any = history._provider.sync()
    sizes = {node.redis_connection.connection_pool.max_connections for node in client.get_nodes()}
    assert sizes == {3}

    async def async_sizes() -> set[int]:
        await history.acount()
        client: Any = await history._provider.async_()
        return {node.max_connections for node in client.get_nodes()}

    assert asyncio.run(async_sizes()) == {3}


def test_sentinel_and_standalone_clients_keep_the_urls_max_connections(
    sentinel_group: SentinelGroup,
) -> None:
    for url in (
        sentinel_group.url() + "?max_connections=3",
        "redis://127.0.0.1:1/0?max_connections=3",
    ):
        history = RedisChatMessageHistory("sized", url=url)
        assert history._provider.sync().connection_pool.max_connections == 3  # type: ignore[union-attr]

        async def async_size(history: RedisChatMessageHistory) -> int:
            client: Any = await history._provider.async_()
            return int(client.connection_pool.max_connections)

        assert asyncio.run(async_size(history)) == 3
    history = RedisChatMessageHistory("sized", url=sentinel_group.url() + "?max_connections=3")
    history.add_user_message("through a pool of 3")
    assert contents(history) == ["through a pool of 3"]
    history.clear()
