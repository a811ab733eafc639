"""The storage layout is a contract: langchain_community's class and ours read each other's writes.

Every message type and field round-trips equal in both directions, on Redis 7 and 6.2.
"""

from __future__ import annotations

import pytest
from langchain_community.chat_message_histories import (
    RedisChatMessageHistory as CommunityHistory,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)

from redis_chat_history import RedisChatMessageHistory

IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

EVERY_KIND: list[BaseMessage] = [
    SystemMessage("You are helpful.", id="sys-1"),
    HumanMessage("Hello", name="ann", id="h-1", additional_kwargs={"locale": "fr"}),
    AIMessage(
        "Let me look.",
        id="run-abc-0",
        name="bot",
        tool_calls=[
            {"name": "search", "args": {"q": "redis", "n": 3}, "id": "call_1", "type": "tool_call"}
        ],
        invalid_tool_calls=[
            {
                "name": "broken",
                "args": "{not json",
                "id": "call_2",
                "error": "bad json",
                "type": "invalid_tool_call",
            }
        ],
        usage_metadata={
            "input_tokens": 12,
            "output_tokens": 5,
            "total_tokens": 17,
            "input_token_details": {"cache_read": 2},
        },
        response_metadata={"model_name": "gpt-x", "finish_reason": "tool_calls", "logprobs": None},
    ),
    ToolMessage("3 hits", tool_call_id="call_1", artifact={"hits": [1, 2, 3]}, status="success"),
    ToolMessage("failed", tool_call_id="call_2", status="error", name="broken"),
    FunctionMessage('{"ok": true}', name="legacy_fn"),
    ChatMessage("an aside", role="narrator"),
    AIMessageChunk(
        "partial",
        id="chunk-1",
        tool_call_chunks=[
            {"name": "f", "args": '{"a": 1}', "id": "c9", "index": 0, "type": "tool_call_chunk"}
        ],
    ),
    HumanMessageChunk("human chunk"),
    SystemMessageChunk("system chunk"),
    ToolMessageChunk("tool chunk", tool_call_id="call_9"),
    ChatMessageChunk("chat chunk", role="critic"),
    FunctionMessageChunk("function chunk", name="fn"),
    HumanMessage(
        [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": IMAGE}},
        ]
    ),
    HumanMessage("héllo wörld ✓ 日本語 🎉👩‍👩‍👧"),
    HumanMessage("lone surrogate \ud800 and \udfff in text"),
    AIMessage(""),
    HumanMessage('quotes " backslash \\ newline \n tab \t nul \x00'),
]

BIG = HumanMessage("x" * (10 * 1024 * 1024))


@pytest.mark.parametrize("compress", [False, True])
def test_old_class_writes_we_read_equal(redis_url: str, compress: bool) -> None:
    old = CommunityHistory("s", url=redis_url, key_prefix="message_store:")
    for message in EVERY_KIND:
        old.add_message(message)
    ours = RedisChatMessageHistory("s", url=redis_url, compress=compress)
    assert ours.messages == EVERY_KIND
    assert ours.get_messages(limit=3) == EVERY_KIND[-3:]


def test_we_write_old_class_reads_equal(redis_url: str) -> None:
    ours = RedisChatMessageHistory("s", url=redis_url)
    ours.add_messages(EVERY_KIND)
    old = CommunityHistory("s", url=redis_url)
    assert old.messages == EVERY_KIND
    assert ours.messages == EVERY_KIND


def test_mixed_writers_one_history(redis_url: str) -> None:
    ours = RedisChatMessageHistory("mixed", url=redis_url, ttl=60)
    old = CommunityHistory("mixed", url=redis_url, ttl=60)
    ours.add_user_message("1")
    old.add_ai_message("2")
    ours.add_messages([HumanMessage("3"), AIMessage("4")])
    old.add_user_message("5")
    expected = ["1", "2", "3", "4", "5"]
    assert [m.content for m in ours.messages] == expected
    assert [m.content for m in old.messages] == expected
    old.clear()
    assert ours.messages == []


def test_ten_megabyte_message_both_ways(redis_url: str) -> None:
    ours = RedisChatMessageHistory("big", url=redis_url)
    ours.add_message(BIG)
    assert CommunityHistory("big", url=redis_url).messages == [BIG]
    CommunityHistory("big2", url=redis_url).add_message(BIG)
    assert RedisChatMessageHistory("big2", url=redis_url).messages == [BIG]


def test_compressed_round_trip_and_smaller(redis_url: str, redis_server: object) -> None:
    plain = RedisChatMessageHistory("plain", url=redis_url)
    packed = RedisChatMessageHistory("packed", url=redis_url, compress=True)
    long_messages = [AIMessage("the same words again " * 200), *EVERY_KIND]
    plain.add_messages(long_messages)
    packed.add_messages(long_messages)
    assert packed.messages == long_messages == plain.messages
    client = redis_server.client()  # type: ignore[attr-defined]
    try:
        assert client.lindex("message_store:packed", -1)[:1] == b"x"  # zlib frame
        assert client.memory_usage("message_store:packed") < client.memory_usage(
            "message_store:plain"
        )
    finally:
        client.close()


def test_defaults_are_left_out_of_stored_json(redis_url: str, redis_server: object) -> None:
    RedisChatMessageHistory("lean", url=redis_url).add_user_message("hi")
    client = redis_server.client()  # type: ignore[attr-defined]
    try:
        assert client.lindex("message_store:lean", 0) == b'{"type":"human","data":{"content":"hi"}}'
    finally:
        client.close()
