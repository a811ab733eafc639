"""A server killed with SIGKILL mid-stream, and replies lost after the server applied a write.

The guarantee under test (also in the README): every write the library acknowledged is
stored exactly once; a write that raised may or may not be stored, never twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import RedisChatMessageHistory, RedisUnavailableError, RetryPolicy
from tests.proxy import ReplyDroppingProxy
from tests.servers import Binary, RedisProcess, wait_until
from tests.write_streams import WriteStream


@pytest.fixture
def durable_server(server_binary: Binary) -> Iterator[RedisProcess]:
    """appendonly yes, appendfsync always: what the server acknowledged is on disk."""
    server = RedisProcess(server_binary, persistent=True).start()
    yield server
    server.stop()


def contents(history: RedisChatMessageHistory) -> list[str]:
    return [str(m.content) for m in history.messages]


def test_sigkill_mid_stream_keeps_every_acknowledged_write_once(
    durable_server: RedisProcess,
) -> None:
    retry = RetryPolicy(attempts=2, backoff_base=0.01, backoff_cap=0.05, connect_timeout=0.5)
    histories = [
        RedisChatMessageHistory(f"s{i}", url=durable_server.url, retry=retry) for i in range(4)
    ]
    with WriteStream(histories) as stream:
        wait_until(lambda: len(stream.acknowledged) >= 40, 30, "writes before the kill")
        durable_server.kill()
        outage_start = len(stream.acknowledged)
        wait_until(lambda: len(stream.failed) >= 5, 30, "calls failing during the outage")
        outage_end = len(stream.acknowledged)
        durable_server.restart()
        wait_until(lambda: len(stream.acknowledged) >= outage_end + 40, 30, "writes after it")
    assert stream.failed, "calls during the outage must fail with RedisUnavailableError"
    assert all(durable_server.address in str(error) for error in stream.errors)
    assert outage_end - outage_start <= 1  # at most the write that was in flight
    assert len(stream.acknowledged) > outage_end  # the same objects work again afterwards
    stream.check_exactly_once()


def test_fail_fast_without_retries_then_recover_sync_and_async(
    durable_server: RedisProcess,
) -> None:
    history = RedisChatMessageHistory(
        "outage", url=durable_server.url, retry=RetryPolicy(attempts=0, connect_timeout=0.5)
    )
    history.add_user_message("before")

    async def async_add(text: str) -> int:
        await history.aadd_messages([HumanMessage(text)])
        return await history.acount()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(async_add("before async")) == 2
        durable_server.kill()
        started = time.monotonic()
        with pytest.raises(RedisUnavailableError) as raised:
            history.add_user_message("during")
        assert isinstance(raised.value, ConnectionError)
        assert durable_server.address in str(raised.value)
        with pytest.raises(RedisUnavailableError):
            loop.run_until_complete(async_add("during async"))
        assert time.monotonic() - started < 5  # no hidden retry loop
        durable_server.restart()
        history.add_user_message("after")
        assert loop.run_until_complete(async_add("after async")) == 4
    finally:
        loop.close()
    assert contents(history) == ["before", "before async", "after", "after async"]


class CountingRetry(RetryPolicy):
    """A policy that counts the backoffs it hands out: one per failed attempt of a call."""

    failures: ClassVar[list[int]] = []

    def backoff(self, failures: int) -> float:
        CountingRetry.failures.append(failures)
        return super().backoff(failures)


def test_bounded_retry_rides_out_a_short_outage(durable_server: RedisProcess) -> None:
    retry = CountingRetry(attempts=8, backoff_base=0.1, backoff_cap=0.5, connect_timeout=0.5)
    CountingRetry.failures.clear()
    history = RedisChatMessageHistory("ride", url=durable_server.url, retry=retry)
    history.add_user_message("one")
    durable_server.kill()
    writer = threading.Thread(target=history.add_user_message, args=("two",))
    writer.start()  # retried with backoff until the server is back
    try:
        wait_until(lambda: CountingRetry.failures, 30, "the write to fail once and back off")
    finally:
        durable_server.restart()
        writer.join(30)
    assert not writer.is_alive()
    assert CountingRetry.failures[0] == 1
    assert contents(history) == ["one", "two"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_lost_reply_is_retried_without_duplicating(redis7: RedisProcess, mode: str) -> None:
    proxy = ReplyDroppingProxy(redis7.port)
    try:
        history = RedisChatMessageHistory(
            "lost-reply", url=proxy.url, ttl=60, retry=RetryPolicy(attempts=3, backoff_base=0.01)
        )
        if mode == "sync":
            history.add_user_message("first")  # connected and warmed up
            proxy.drop_next_reply()
            history.add_messages([HumanMessage("second"), HumanMessage("third")])
        else:

            async def scenario() -> None:
                await history.aadd_messages([HumanMessage("first")])
                proxy.drop_next_reply()
                await history.aadd_messages([HumanMessage("second"), HumanMessage("third")])

            asyncio.run(scenario())
        assert proxy.dropped == 1
        assert contents(history) == ["first", "second", "third"]
    finally:
        proxy.close()
