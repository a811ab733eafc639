"""Native asyncio, several event loops, shared pools, and many writers at once."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

import redis
from langchain_core.messages import AIMessage, HumanMessage

from redis_chat_history import RedisChatMessageHistory
from tests.servers import RedisProcess


def connections_received(server: RedisProcess) -> int:
    client = server.client()
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


def test_async_twins(redis_url: str) -> None:
    history = RedisChatMessageHistory("a", url=redis_url, ttl=30)

    async def scenario() -> tuple[list[str], list[str], int]:
        await history.aadd_messages([HumanMessage("1"), AIMessage("2"), HumanMessage("3")])
        every = [str(m.content) for m in await history.aget_messages()]
        newest = [str(m.content) for m in await history.aget_messages(limit=2)]
        count = await history.acount()
        await history.aclear()
        assert await history.acount() == 0
        return every, newest, count

    assert asyncio.run(scenario()) == (["1", "2", "3"], ["2", "3"], 3)


def test_one_history_across_event_loops_and_sync(redis_url: str) -> None:
    history = RedisChatMessageHistory("loops", url=redis_url)
    asyncio.run(history.aadd_messages([HumanMessage("loop 1")]))
    asyncio.run(history.aadd_messages([HumanMessage("loop 2")]))  # a new loop: no error
    history.add_user_message("sync")
    result: list[int] = []

    def in_thread() -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(history.aadd_messages([HumanMessage("thread loop")]))
            result.append(loop.run_until_complete(history.acount()))
        finally:
            loop.close()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert result == [4]
    assert [m.content for m in history.messages] == ["loop 1", "loop 2", "sync", "thread loop"]


def test_async_uses_redis_asyncio_not_threads(redis_url: str) -> None:
    history = RedisChatMessageHistory("native", url=redis_url)

    async def scenario() -> tuple[type, int]:
        threads_before = threading.active_count()
        await history.aadd_messages([HumanMessage("x")])
        await history.aget_messages()
        client = await history._provider.async_()
        return type(client), threading.active_count() - threads_before

    client_type, new_threads = asyncio.run(scenario())
    assert issubclass(client_type, redis.asyncio.Redis) and new_threads == 0


def test_construction_does_no_network_io(redis_url: str, redis_server: RedisProcess) -> None:
    before = connections_received(redis_server)
    histories = [RedisChatMessageHistory(f"s{i}", url=redis_url) for i in range(50)]
    assert connections_received(redis_server) == before + 1  # only our own INFO
    RedisChatMessageHistory("x", url="redis://127.0.0.1:1/0")  # unreachable: still fine
    assert len({id(h._provider) for h in histories}) == 1  # one shared pool per url


def test_request_cycles_open_no_new_connections(redis_url: str, redis_server: RedisProcess) -> None:
    def cycle(i: int) -> None:
        history = RedisChatMessageHistory(f"user-{i % 10}", url=redis_url, ttl=60)
        history.get_messages(limit=20)
        history.add_messages([HumanMessage("q"), AIMessage("a")])

    async def acycle(i: int) -> None:
        history = RedisChatMessageHistory(f"user-{i % 10}", url=redis_url, ttl=60)
        await history.aget_messages(limit=20)
        await history.aadd_messages([HumanMessage("q"), AIMessage("a")])

    async def many(count: int) -> None:
        for i in range(count):
            await acycle(i)
        await asyncio.gather(*(acycle(i) for i in range(50)))

    async def server_life() -> tuple[int, int]:
        await many(5)  # warm-up
        warm = connections_received(redis_server)
        await many(200)
        return warm, connections_received(redis_server)

    for i in range(5):
        cycle(i)
    warm = connections_received(redis_server)
    for i in range(200):
        cycle(i)
    assert connections_received(redis_server) == warm + 1  # our own INFO call only

    warm_async, after_async = asyncio.run(server_life())
    assert after_async - warm_async == 1


def test_thirty_two_threads_lose_nothing_and_keep_order(redis_url: str) -> None:
    history = RedisChatMessageHistory("threads", url=redis_url)
    barrier = threading.Barrier(32)

    def writer(w: int) -> None:
        barrier.wait()
        for seq in range(25):
            if seq % 5 == 0:
                history.add_messages([HumanMessage(f"{w}:{seq}")])
            else:
                RedisChatMessageHistory("threads", url=redis_url).add_message(
                    HumanMessage(f"{w}:{seq}")
                )

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_writers(history, 32, 25)


def test_thirty_two_tasks_lose_nothing_and_keep_order(redis_url: str) -> None:
    history = RedisChatMessageHistory("tasks", url=redis_url)

    async def writer(w: int) -> None:
        for seq in range(25):
            await history.aadd_messages([HumanMessage(f"{w}:{seq}")])

    async def main() -> None:
        await asyncio.gather(*(writer(w) for w in range(32)))

    asyncio.run(main())
    check_writers(history, 32, 25)


def check_writers(history: RedisChatMessageHistory, writers: int, each: int) -> None:
    by_writer: dict[str, list[int]] = defaultdict(list)
    for message in history.messages:
        writer, seq = str(message.content).split(":")
        by_writer[writer].append(int(seq))
    assert len(by_writer) == writers
    assert all(seqs == list(range(each)) for seqs in by_writer.values())


def test_a_thousand_concurrent_async_writes_over_fifty_sessions(
    redis_url: str, redis_server: RedisProcess
) -> None:
    histories = [RedisChatMessageHistory(f"burst-{i}", url=redis_url) for i in range(50)]

    async def main() -> list[int]:
        await asyncio.gather(
            *(histories[i % 50].aadd_messages([HumanMessage(str(i))]) for i in range(1000))
        )
        return [await history.acount() for history in histories]

    before = connections_received(redis_server)
    assert asyncio.run(main()) == [20] * 50
    opened = connections_received(redis_server) - before
    assert 1 <= opened <= 66  # one pool of at most 64, the cluster probe (INFO), our INFO
