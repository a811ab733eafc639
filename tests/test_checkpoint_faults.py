"""Faults injected for real: a lost reply, a SIGKILLed server, round trips counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint

from redis_chat_history.checkpoint import RedisCheckpointSaver
from redis_chat_history.checkpoint.steps import ThreadKeys
from redis_chat_history.errors import RedisUnavailableError
from redis_chat_history.retry import RetryPolicy
from tests.proxy import ReplyDroppingProxy
from tests.servers import Binary, RedisProcess, SentinelGroup, wait_until


def checkpoint_with(messages: list[Any], number: int) -> tuple[Any, dict[str, Any]]:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": messages, "step": number}
    version = f"{number + 1:012}.0"
    checkpoint["channel_versions"] = {"messages": version, "step": version}
    return checkpoint, {"messages": version, "step": version}


def put_turn(saver: RedisCheckpointSaver, thread: str, parent: Any, messages: list[Any]) -> Any:
    config = parent or {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    checkpoint, versions = checkpoint_with(messages, len(messages))
    metadata: Any = {"source": "loop", "step": len(messages), "parents": {}}
    return saver.put(config, checkpoint, metadata, versions)


@pytest.mark.parametrize("what", ["put", "put_writes"])
def test_a_lost_reply_is_resent_and_applied_once(redis7: RedisProcess, what: str) -> None:
    proxy = ReplyDroppingProxy(redis7.port)
    try:
        retry = RetryPolicy(attempts=3, backoff_base=0.01)
        saver = RedisCheckpointSaver(proxy.url, retry=retry)
        messages: list[Any] = [HumanMessage("one", id="m1")]
        config = put_turn(saver, "t", None, messages)  # connected and warmed up
        messages = [*messages, AIMessage("two", id="m2"), HumanMessage("three", id="m3")]
        proxy.drop_next_reply()
        if what == "put":
            config = put_turn(saver, "t", config, messages)
        else:
            saver.put_writes(config, [("messages", [AIMessage("w", id="w1")])], "task-1")
        assert proxy.dropped == 1
        client = redis7.client()
        if what == "put":
            assert [m.id for m in saver.store.history("t").messages] == ["m1", "m2", "m3"]
            assert len(list(saver.list({"configurable": {"thread_id": "t"}}))) == 2
        else:
            latest = saver.get_tuple({"configurable": {"thread_id": "t"}})
            assert latest is not None and len(latest.pending_writes or []) == 1
        assert client.llen("message_store:t") == (3 if what == "put" else 1)
    finally:
        proxy.close()


@pytest.fixture
def durable_server(server_binary: Binary) -> Iterator[RedisProcess]:
    """appendonly yes, appendfsync always: what the server acknowledged is on disk."""
    server = RedisProcess(server_binary, persistent=True).start()
    yield server
    server.stop()


def test_sigkill_loses_no_acknowledged_checkpoint(durable_server: RedisProcess) -> None:
    retry = RetryPolicy(attempts=2, backoff_base=0.01, backoff_cap=0.05, connect_timeout=0.5)
    saver = RedisCheckpointSaver(durable_server.url, retry=retry)
    acknowledged: list[tuple[Any, int]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        config = None
        messages: list[Any] = []
        while not stop.is_set():
            candidate = [*messages, HumanMessage(f"m{len(messages)}", id=f"id-{len(messages)}")]
            try:
                config = put_turn(saver, "durable", config, candidate)
            except RedisUnavailableError as error:
                failures.append(error)
                time.sleep(0.01)
                continue
            messages = candidate
            acknowledged.append((config, len(messages)))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 30, 30, "checkpoints before the kill")
        durable_server.kill()
        wait_until(lambda: failures, 30, "puts failing during the outage")
        durable_server.restart()
        count = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= count + 10, 30, "checkpoints after the restart")
    finally:
        stop.set()
        thread.join(30)
    for config, length in acknowledged:
        found = saver.get_tuple(config)
        assert found is not None, config
        stored = found.checkpoint["channel_values"]["messages"]
        assert [m.content for m in stored] == [f"m{at}" for at in range(length)]
    history = saver.store.history("durable").messages
    assert [m.content for m in history] == [f"m{at}" for at in range(acknowledged[-1][1])]


def test_reads_and_writes_are_one_round_trip_each(redis_url: str) -> None:
    saver = RedisCheckpointSaver(redis_url)
    sent: list[str] = []
    step = saver._step

    def counting(request: Any) -> Any:
        sent.append(type(request).__name__)
        return step(request)

    saver._step = counting  # type: ignore[method-assign]
    config = None
    messages: list[Any] = []
    for number in range(6):
        messages = [*messages, HumanMessage(f"m{number}", id=f"id-{number}")]
        config = put_turn(saver, "t", config, messages)
        saver.put_writes(config, [("messages", [AIMessage("w")]), ("x", number)], f"task{number}")
    assert len(sent) == 12  # one per put, one per put_writes
    sent.clear()
    found = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert found is not None and len(sent) == 1
    sent.clear()
    history = saver.get_delta_channel_history(config=found.config, channels=["x", "step"])
    assert len(sent) == 1
    base = RedisCheckpointSaver.__mro__[1].get_delta_channel_history  # the generic walk
    assert history == base(saver, config=found.config, channels=["x", "step"])
    keys = ThreadKeys.of("message_store:", "t")
    assert redis.Redis.from_url(redis_url).llen(keys.history) == 6


def test_through_sentinel_with_replicas_acknowledging(sentinel_group: SentinelGroup) -> None:
    saver = RedisCheckpointSaver(sentinel_group.url(db=3), wait_for_replicas=1, wait_timeout=5)
    saver.delete_thread("sentinel")
    config = None
    messages: list[Any] = []
    for number in range(3):
        messages = [*messages, HumanMessage(f"m{number}", id=f"s-{number}")]
        config = put_turn(saver, "sentinel", config, messages)
    replica = sentinel_group.replica.client(db=3)
    assert replica.llen("message_store:sentinel") == 3  # WAIT: the replica has every write
    found = saver.get_tuple({"configurable": {"thread_id": "sentinel"}})
    assert found is not None and found.checkpoint["channel_values"]["messages"] == messages


def test_two_processes_writing_one_thread_keep_one_history(redis_url: str) -> None:
    first, second = RedisCheckpointSaver(redis_url), RedisCheckpointSaver(redis_url)
    config = None
    messages: list[Any] = []
    for number in range(6):  # each put finds the list changed by the other saver
        messages = [*messages, HumanMessage(f"m{number}", id=f"two-{number}")]
        config = put_turn(first if number % 2 else second, "shared", config, messages)
    assert [m.id for m in first.store.history("shared").messages] == [m.id for m in messages]
    first.store.history("shared").add_messages([AIMessage("appended by the old class")])
    messages = [*messages, HumanMessage("after", id="two-after")]  # not an extension now
    config = put_turn(second, "shared", config, messages)
    assert second.store.history("shared").messages == messages
    for found in first.list({"configurable": {"thread_id": "shared"}}):
        count = found.metadata["step"]
        assert len(found.checkpoint["channel_values"]["messages"]) == count
