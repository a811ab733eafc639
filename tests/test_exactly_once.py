"""Exactly once under faults: lost replies re-sent late, paused servers, bursts of writers.

The guarantee under test (README, "What a write guarantees"): a write that returned
normally is stored exactly once, however many other writes reach the same session
before its re-send; a write that raised was applied at most once. Every write that
may be re-sent (append, delete_last, replace_messages, expire, persist, clear) is
recognised when it is; the plain writes of users who may not run scripts are never
re-sent once they may have reached the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import (
    RedisChatMessageHistory,
    RedisChatStore,
    RedisUnavailableError,
    RetryPolicy,
)
from redis_chat_history.operations import WRITES
from redis_chat_history.writers import WriterToken
from tests.proxy import ReplyDroppingProxy
from tests.servers import Cluster, RedisProcess, find_binaries, wait_until

OTHER_WRITES = 1000


def contents(history: RedisChatMessageHistory) -> list[str]:
    return [str(message.content) for message in history.messages]


@pytest.fixture
def proxy(redis7: RedisProcess) -> Iterator[ReplyDroppingProxy]:
    """A proxy in front of ``redis7``, whose scripts are loaded (so the lost reply is the
    write's own, not a NOSCRIPT)."""
    client = redis7.client()
    try:
        for write in WRITES.values():
            client.script_load(write.script.source)
    finally:
        client.close()
    proxy = ReplyDroppingProxy(redis7.port)
    yield proxy
    proxy.close()


def run_in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # reported by the test
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


# Each case: (prepare the session, the write whose reply is lost, expected final contents).
# Between the lost reply and the re-send, OTHER_WRITES appends reach the same session.
OTHERS = [f"other-{i}" for i in range(OTHER_WRITES)]
CASES: dict[str, tuple[list[str], Callable[[RedisChatMessageHistory], Any], list[str]]] = {
    "append": ([], lambda h: h.add_messages([HumanMessage("lost-1"), HumanMessage("lost-2")]),
               ["lost-1", "lost-2", *OTHERS]),
    "delete_last": (["a", "b", "c"], lambda h: h.delete_last(1), ["a", "b", *OTHERS]),
    "replace": (["a", "b"], lambda h: h.replace_messages([HumanMessage("summary")]),
                ["summary", *OTHERS]),
    "clear": (["a", "b"], lambda h: h.clear(), OTHERS),
}  # fmt: skip


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_lost_reply_resent_after_many_other_writes_applies_once(
    redis7: RedisProcess, proxy: ReplyDroppingProxy, case: str, mode: str
) -> None:
    before, write, expected = CASES[case]
    retry = RetryPolicy(attempts=3, socket_timeout=20, backoff_base=0.01)
    via_proxy = RedisChatMessageHistory("busy", url=proxy.url, retry=retry)
    direct = RedisChatMessageHistory("busy", url=redis7.url)
    direct.add_messages([HumanMessage(text) for text in before])
    via_proxy.count()  # connected and warmed up

    def call() -> Any:
        if mode == "sync":
            proxy.drop_next_reply(hold=True)
            return write(via_proxy)

        async def async_write() -> Any:
            await via_proxy.acount()  # this loop's client is connected and warmed up
            proxy.drop_next_reply(hold=True)
            twin = {
                "append": lambda: via_proxy.aadd_messages(
                    [HumanMessage("lost-1"), HumanMessage("lost-2")]
                ),
                "delete_last": lambda: via_proxy.adelete_last(1),
                "replace": lambda: via_proxy.areplace_messages([HumanMessage("summary")]),
                "clear": via_proxy.aclear,
            }[case]
            return await twin()

        return asyncio.run(async_write())

    thread, outcome = run_in_thread(call)
    wait_until(lambda: proxy.dropped == 1 and proxy.held >= 1, 20, "the re-send to be held")
    for text in OTHERS:
        direct.add_message(HumanMessage(text))
    proxy.release()
    thread.join(60)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert contents(direct) == expected


def test_resent_expire_does_not_undo_a_later_persist(
    redis7: RedisProcess, proxy: ReplyDroppingProxy
) -> None:
    retry = RetryPolicy(attempts=3, socket_timeout=20, backoff_base=0.01)
    via_proxy = RedisChatMessageHistory("ttl", url=proxy.url, retry=retry)
    direct = RedisChatMessageHistory("ttl", url=redis7.url)
    direct.add_user_message("a")
    via_proxy.count()
    proxy.drop_next_reply(hold=True)
    thread, outcome = run_in_thread(lambda: via_proxy.expire(1000))
    wait_until(lambda: proxy.held >= 1, 20, "the re-send to be held")
    assert direct.expires_in() is not None  # the first copy was applied
    for _ in range(OTHER_WRITES):
        direct.add_user_message("x")
    assert direct.persist() is True
    proxy.release()
    thread.join(60)
    assert outcome == {"value": True}
    assert direct.expires_in() is None  # the re-send was recognised, not applied again


def test_resend_held_for_the_longest_delay_the_policy_allows_is_recognised(
    redis7: RedisProcess, proxy: ReplyDroppingProxy
) -> None:
    """A re-send held in the network until the policy's longest call is still recognised."""
    retry = RetryPolicy(
        attempts=1, backoff_base=0.01, backoff_cap=0.05, connect_timeout=0.2, socket_timeout=0.3
    )
    longest = retry.longest_call_seconds
    assert 5 < longest < 8  # keeps the test short
    via_proxy = RedisChatMessageHistory("late", url=proxy.url, retry=retry)
    direct = RedisChatMessageHistory("late", url=redis7.url)
    via_proxy.count()
    proxy.drop_next_reply(hold=True)
    started = time.monotonic()
    with pytest.raises(RedisUnavailableError):  # its re-send is held: the call gives up
        via_proxy.add_user_message("late")
    assert proxy.held == 1 and contents(direct) == ["late"]  # the first copy was applied
    for _ in range(OTHER_WRITES):
        direct.add_user_message("other")
    wait_until(lambda: time.monotonic() - started > longest - 0.3, longest, "the longest delay")
    admin = redis7.client()
    try:
        scripts_run = _script_calls(admin)
        proxy.release()  # the held re-send reaches the server now
        wait_until(lambda: _script_calls(admin) > scripts_run, 60, "the late re-send to run")
    finally:
        admin.close()
    assert contents(direct).count("late") == 1
    assert direct.count() == OTHER_WRITES + 1


def _script_calls(admin: Any) -> int:
    """Script calls (EVALSHA and EVAL) the server has run so far."""
    stats = admin.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


@pytest.mark.parametrize("topology", ["standalone", "cluster"])
@pytest.mark.parametrize("name", sorted(WRITES))
def test_every_registered_write_is_recognised_after_many_other_writers(
    redis7: RedisProcess, cluster: Cluster, cluster_url: str, topology: str, name: str
) -> None:
    """The mechanism itself, for each write of the registry: replay its exact request after
    1,000 other writes; the replay changes nothing and replies the recorded result."""
    write = WRITES[name]
    url = redis7.url if topology == "standalone" else cluster_url
    history = RedisChatMessageHistory(f"replayed-{name}", url=url)
    client = redis7.client() if topology == "standalone" else cluster.client()
    try:
        for command in write.prepare(history.key):
            client.execute_command(*command)
        command = write.sample(history.key).commands[0]
        at = command.writer_at  # after the keys the script names
        assert at is not None
        token = WriterToken("feedbeef00", 7, 300)
        assert _applied(client.execute_command(*token.fill(command.as_eval(), at))) == 1
        after_first = _state(client, history.key)
        for i in range(OTHER_WRITES):
            client.execute_command("LPUSH", history.key, f"other-{i}")
        expected = _state(client, history.key)
        replay = WriterToken("feedbeef00", 7, 300)
        assert client.execute_command(*replay.fill(command.as_eval(), at))[0] == 0  # recognised
        assert _state(client, history.key) == expected != after_first
        older = WriterToken("feedbeef00", 6, 300)  # an even older re-send of that writer
        assert client.execute_command(*older.fill(command.as_eval(), at))[0] == 0
        newer = WriterToken("feedbeef00", 8, 300)  # the writer's next write is applied
        assert _applied(client.execute_command(*newer.fill(command.as_eval(), at))) in (1, 2)
    finally:
        client.close()


def _applied(reply: Any) -> int:
    """A write script's outcome: 1 applied (a bare reply, or {1, ...}), 0 re-send, 2 nothing."""
    return 1 if not isinstance(reply, list) else int(reply[0])


def _state(client: Any, key: str) -> tuple[list[bytes], bool]:
    """A history's elements and whether it has an expiry."""
    return client.lrange(key, 0, -1), client.ttl(key) >= 0


@pytest.fixture
def paused_server() -> Iterator[RedisProcess]:
    """A server of its own: SIGSTOP must not stall other tests."""
    server = RedisProcess(find_binaries()[0]).start()
    yield server
    with contextlib.suppress(Exception):
        assert server.process is not None
        server.process.send_signal(signal.SIGCONT)
    server.stop()


@contextlib.contextmanager
def paused(server: RedisProcess, seconds: float) -> Iterator[None]:
    """SIGSTOP the server for ``seconds`` in the background."""
    assert server.process is not None
    process = server.process

    def resume() -> None:
        process.send_signal(signal.SIGCONT)

    process.send_signal(signal.SIGSTOP)
    timer = threading.Timer(seconds, resume)
    timer.start()
    try:
        yield
    finally:
        timer.join()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_server_paused_while_many_writers_write_one_session(
    paused_server: RedisProcess, mode: str
) -> None:
    """40 writers on one session, socket_timeout=1 s, the server paused for 3 s."""
    retry = RetryPolicy(attempts=4, socket_timeout=1, backoff_base=0.05, connect_timeout=1)
    history = RedisChatMessageHistory("paused", url=paused_server.url, retry=retry)
    writers, per_writer = 40, 5
    acknowledged: list[str] = []
    failed: list[BaseException] = []
    started = threading.Event()

    async def async_writer(index: int) -> None:
        for i in range(per_writer):
            text = f"w{index}-{i}"
            try:
                await history.aadd_messages([HumanMessage(text)])
                acknowledged.append(text)
            except RedisUnavailableError as error:
                failed.append(error)
            if index == 0 and i == 0:
                started.set()
            await asyncio.sleep(0.3)

    def sync_writer(index: int) -> None:
        for i in range(per_writer):
            text = f"w{index}-{i}"
            try:
                history.add_message(HumanMessage(text))
                acknowledged.append(text)
            except RedisUnavailableError as error:
                failed.append(error)
            if index == 0 and i == 0:
                started.set()
            time.sleep(0.3)

    def write_all() -> None:
        if mode == "async":

            async def main() -> None:
                await asyncio.gather(*(async_writer(index) for index in range(writers)))

            asyncio.run(main())
        else:
            threads = [threading.Thread(target=sync_writer, args=(i,)) for i in range(writers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    thread, outcome = run_in_thread(write_all)
    assert started.wait(20)
    with paused(paused_server, 3.0):
        pass
    thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    assert failed == []  # the policy rode the pause out
    stored = contents(history)
    assert [text for text, n in Counter(stored).items() if n > 1] == []
    assert sorted(stored) == sorted(acknowledged)
    assert len(stored) == writers * per_writer


def test_cluster_master_paused_while_writers_write(cluster: Cluster, cluster_url: str) -> None:
    """The async Cluster path under a short master pause (shorter than the node timeout)."""
    retry = RetryPolicy(attempts=4, socket_timeout=0.4, backoff_base=0.05, connect_timeout=1)
    history = RedisChatMessageHistory("cluster-paused", url=cluster_url, retry=retry)
    history.add_user_message("first")
    master = next(node for node in cluster.masters() if _serves(node, history.key))
    acknowledged: list[str] = []

    async def writer(index: int, stop: asyncio.Event) -> None:
        i = 0
        while not stop.is_set():
            text = f"w{index}-{i}"
            with contextlib.suppress(RedisUnavailableError):
                await history.aadd_messages([HumanMessage(text)])
                acknowledged.append(text)
            i += 1

    async def main() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(writer(index, stop)) for index in range(30)]
        while len(acknowledged) < 30:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(_pause_for, master, 1.0)
        count = len(acknowledged)
        while len(acknowledged) < count + 30:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    cluster.wait_healthy()
    stored = contents(history)
    assert [text for text, n in Counter(stored).items() if n > 1] == []
    assert set(acknowledged) <= set(stored)


def _pause_for(server: RedisProcess, seconds: float) -> None:
    with paused(server, seconds):
        pass


def _serves(node: RedisProcess, key: str) -> bool:
    """True when ``node`` is the master of ``key``'s slot."""
    client = node.client()
    try:
        slot = client.execute_command("CLUSTER", "KEYSLOT", key)
        for start, end, master, *_replicas in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1]) == node.port
    finally:
        client.close()
    return False


def test_async_cluster_bursts_of_first_calls(cluster_url: str) -> None:
    """Many tasks making their first calls at once on new clients never see a client race."""

    async def burst(round_: int) -> None:
        store = RedisChatStore(url=cluster_url, retry=RetryPolicy(attempts=0))
        histories = [store.history(f"burst-{round_}-{i}") for i in range(60)]
        await asyncio.gather(*(h.aadd_messages([HumanMessage("hi")]) for h in histories))
        assert [await h.acount() for h in histories] == [1] * 60

    for round_ in range(6):
        asyncio.run(burst(round_))  # a new loop: new clients, first calls all at once
