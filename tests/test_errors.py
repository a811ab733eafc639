"""Bad input gets a clear error naming what and where; nothing is written; no password shown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import (
    CorruptHistoryError,
    InvalidURLError,
    RedisChatMessageHistory,
    RedisChatStore,
    RedisUnavailableError,
    RetryPolicy,
    WrongTypeError,
)
from tests.servers import RedisProcess, free_port

FAST = RetryPolicy(attempts=0, connect_timeout=0.5)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"session_id": ""}, ValueError, "session_id must not be empty"),
        ({"session_id": 42}, TypeError, "session_id must be a str"),
        ({"session_id": None}, TypeError, "session_id must be a str"),
        ({"ttl": -1}, ValueError, "ttl must be >= 0"),
        ({"ttl": 1.5}, TypeError, "ttl must be an int"),
        ({"ttl": "60"}, TypeError, "ttl must be an int"),
        ({"ttl": True}, TypeError, "ttl must be an int"),
        ({"max_messages": 0}, ValueError, "max_messages must be >= 1"),
        ({"max_messages": 2.0}, TypeError, "max_messages must be an int"),
        ({"key_prefix": None}, TypeError, "key_prefix must be a str"),
        ({"key_prefix": b"x:"}, TypeError, "key_prefix must be a str"),
        ({"wait_for_replicas": 0}, ValueError, "wait_for_replicas must be >= 1"),
    ],
)
def test_bad_arguments_at_construction(kwargs: dict[str, object], error: type, text: str) -> None:
    arguments: dict[str, object] = {"session_id": "s", "url": "redis://127.0.0.1:1/0"} | kwargs
    with pytest.raises(error, match=text):
        RedisChatMessageHistory(**arguments)  # type: ignore[arg-type]


def test_zero_and_none_ttl_mean_no_expiry() -> None:
    for ttl in (None, 0):
        assert RedisChatMessageHistory("s", url="redis://127.0.0.1:1/0", ttl=ttl).ttl == ttl


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("http://user:s3cret@h:1/0", "scheme must be one of"),
        ("redis://user:s3cret@h:port/0", "port 'port' is not a number"),
        ("redis://user:s3cret@h:70000/0", "port '70000' out of range"),
        ("redis://user:s3cret@h:1/zero", "database 'zero' is not a number"),
        ("redis://user:s3cret@h:1/0?colour=blue", "unknown option 'colour'"),
        ("redis://user:s3cret@h:1/0?ssl_ca_certs=/x", "TLS options need a rediss:// url"),
        ("redis+cluster://user:s3cret@h:1/3", "only database 0"),
        ("unix://user:s3cret@relative.sock", "absolute socket path"),
        ("no scheme at all", "scheme must be one of"),
    ],
)
def test_unparsable_urls_are_value_errors_without_password(url: str, text: str) -> None:
    with pytest.raises(InvalidURLError, match=text) as raised:
        RedisChatMessageHistory("s", url=url)
    assert isinstance(raised.value, ValueError)
    assert "s3cret" not in str(raised.value)


def test_unreachable_server_is_a_connection_error_naming_host_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    history = RedisChatMessageHistory(
        "s", url=f"redis://alice:s3cret@127.0.0.1:{port}/0", retry=FAST
    )
    for call in (lambda: history.messages, lambda: history.add_user_message("x"), history.count):
        with pytest.raises(RedisUnavailableError) as raised:
            call()
        assert isinstance(raised.value, ConnectionError)
        assert f"127.0.0.1:{port}" in str(raised.value) and "s3cret" not in str(raised.value)
    assert "s3cret" not in repr(history) and "s3cret" not in str(history.url)
    assert all("s3cret" not in record.getMessage() for record in caplog.records)


def test_corrupt_elements_name_key_and_position(
    redis_url: str, redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    history = RedisChatMessageHistory("c", url=redis_url)
    history.add_messages([HumanMessage("0"), HumanMessage("1")])
    client = redis_server.client()
    try:
        client.lpush(history.key, b"\xff\xfegarbage")
        client.lpush(history.key, b'{"type": "alien", "data": {"content": "?"}}')
        history.add_user_message("4")
    finally:
        client.close()
    with pytest.raises(CorruptHistoryError) as raised:
        _ = history.messages
    # the oldest bad element is reported: the garbage bytes at LRANGE index 2
    assert raised.value.key == "message_store:c" and raised.value.index == 2
    assert "'message_store:c'" in str(raised.value) and "not valid JSON" in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert [m.content for m in history.get_messages(limit=1)] == ["4"]  # the window is clean
    with pytest.raises(CorruptHistoryError, match="unknown message type 'alien'") as window:
        history.get_messages(limit=2)
    assert window.value.index == 1
    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    skipping = RedisChatMessageHistory("c", url=redis_url, skip_corrupt=True)
    assert [m.content for m in skipping.messages] == ["0", "1", "4"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "redis_chat_history"]
    assert len(warnings) == 2 and all("message_store:c" in w for w in warnings)


def test_every_operation_on_a_wrong_type_key_raises_and_changes_nothing(
    redis_url: str, redis_server: RedisProcess
) -> None:
    """A key holding a string or a hash is refused by every operation, sync and async."""
    client = redis_server.client()
    client.set("message_store:str", "not a list", ex=500)
    client.hset("message_store:hash", "field", "value")
    store = RedisChatStore(url=redis_url, ttl=60, max_messages=3)
    message = [HumanMessage("x")]

    def sync_calls(history: RedisChatMessageHistory) -> list[Callable[[], object]]:
        return [
            lambda: history.messages,
            lambda: history.get_messages(limit=2),
            lambda: history.add_messages(message),
            history.count,
            history.clear,
            history.delete_last,
            lambda: history.replace_messages(message),
            lambda: history.replace_messages([]),
            lambda: history.expire(10),
            history.persist,
            history.expires_in,
            lambda: store.delete(history.session_id),
        ]

    def async_calls(history: RedisChatMessageHistory) -> list[Callable[[], Awaitable[object]]]:
        return [
            history.aget_messages,
            lambda: history.aadd_messages(message),
            history.acount,
            history.aclear,
            history.adelete_last,
            lambda: history.areplace_messages(message),
            lambda: history.aexpire(10),
            history.apersist,
            history.aexpires_in,
            lambda: store.adelete(history.session_id),
        ]

    async def expect_async(history: RedisChatMessageHistory, kind: str) -> int:
        raised = 0
        for call in async_calls(history):
            with pytest.raises(WrongTypeError, match=f"holds a Redis {kind}"):
                await call()
            raised += 1
        return raised

    try:
        for session_id, kind in (("str", "string"), ("hash", "hash")):
            history = store.history(session_id)
            for call in sync_calls(history):
                with pytest.raises(WrongTypeError) as raised:
                    call()
                assert f"'message_store:{session_id}' holds a Redis {kind}" in str(raised.value)
                assert raised.value.key == f"message_store:{session_id}"
            assert asyncio.run(expect_async(history, kind)) == 10
        assert client.get("message_store:str") == b"not a list"
        assert 400 < client.ttl("message_store:str") <= 500
        assert client.hgetall("message_store:hash") == {b"field": b"value"}
        assert client.ttl("message_store:hash") == -1
    finally:
        client.close()
