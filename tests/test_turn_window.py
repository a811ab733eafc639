"""Turn-aligned windows: get_messages(limit, whole_turns=True) never splits a tool call from its result.

The plan is checked without a server; then every window size of a conversation with tool
calls is compared with a reference in Python, on every server version and on a cluster,
for this package's writes, compressed ones, the old class's and a mix of the three.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langchain_community.chat_message_histories import (
    RedisChatMessageHistory as CommunityHistory,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from redis_chat_history import (
    CorruptHistoryError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RedisChatMessageHistory,
)
from redis_chat_history.codec import encode_message
from redis_chat_history.operations import (
    TURN_CHUNK,
    TURN_WINDOW,
    TurnWindow,
    from_first_turn,
    turn_window_plan,
)

KEY = "message_store:s1"


def call(n: int, content: str = "") -> AIMessage:
    return AIMessage(
        content,
        id=f"ai-call-{n}",
        tool_calls=[{"name": "lookup", "args": {"n": n}, "id": f"c{n}", "type": "tool_call"}],
    )


def result(n: int) -> ToolMessage:
    return ToolMessage(f"result {n}", tool_call_id=f"c{n}", id=f"tool-{n}")


#: Turns with 0, 1, 2 and many tool calls; a system message and a turn without an answer.
CONVERSATION: list[BaseMessage] = [
    HumanMessage("q1", id="h1"),
    AIMessage("a1", id="a1"),
    HumanMessage("q2", id="h2"),
    call(2),
    result(2),
    AIMessage("a2", id="a2"),
    HumanMessage("q3", id="h3"),
    call(30),
    result(30),
    call(31),
    result(31),
    AIMessage("a3", id="a3"),
    HumanMessage("q4 without answer", id="h4"),
    HumanMessage("q5", id="h5"),
    *[message for n in range(50, 50 + TURN_CHUNK + 3) for message in (call(n), result(n))],
    AIMessage("a5", id="a5"),
]


def reference(messages: list[BaseMessage], limit: int | None) -> list[BaseMessage]:
    """The window by definition: extend back to a human message, else from the first turn."""
    start = 0 if limit is None else max(0, len(messages) - limit)
    while start > 0 and not isinstance(messages[start], HumanMessage):
        start -= 1
    if start == 0:
        return from_first_turn(messages)
    return messages[start:]


def assert_tool_results_follow_their_calls(messages: list[BaseMessage]) -> None:
    open_calls: set[str] = set()
    for message in messages:
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in open_calls, f"orphan tool result {message.id}"
        elif isinstance(message, AIMessage):
            open_calls = {c["id"] or "" for c in message.tool_calls}
        else:
            open_calls = set()


# -- the plan, without a server ------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"limit": 0}, InvalidArgumentError, "limit must be >= 1"),
        ({"limit": -3}, InvalidArgumentError, "limit must be >= 1"),
        ({"limit": "5"}, InvalidArgumentTypeError, "limit must be an int"),
        ({"limit": True}, InvalidArgumentTypeError, "limit must be an int"),
        ({"limit": 2**60}, InvalidArgumentError, "limit must be <="),
    ],
)
def test_plan_refuses_bad_limits(kwargs: dict[str, Any], error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        turn_window_plan(KEY, **kwargs)


def test_plan_refuses_a_bad_key() -> None:
    with pytest.raises(InvalidArgumentError, match="non-empty str"):
        turn_window_plan("", limit=3)


def test_plan_is_one_script_call_on_its_key() -> None:
    plan = turn_window_plan(KEY, limit=40)
    (command,) = plan.commands
    assert command.script is TURN_WINDOW
    assert command.args == ("EVALSHA", TURN_WINDOW.sha, 1, KEY, 40, TURN_CHUNK)
    assert plan.key == KEY and not plan.writes and plan.idempotent
    assert turn_window_plan(KEY).commands[0].args[-2:] == (0, TURN_CHUNK)  # 0 = all
    assert plan.plain is not None
    assert plan.plain().commands[0].args == ("LRANGE", KEY, 0, 39)


def newest_first(messages: list[BaseMessage], compress: bool = False) -> list[bytes]:
    return [encode_message(m, compress=compress) for m in reversed(messages)]


def test_parse_status_human_found_and_list_start() -> None:
    plan = turn_window_plan(KEY, limit=2)
    found = plan.parse([[1, newest_first(CONVERSATION[2:6])]])
    assert found == TurnWindow(CONVERSATION[2:6])
    # The list's start was reached: a turn cut by max_messages is left out.
    at_start = plan.parse([[2, newest_first(CONVERSATION[4:8])]])
    assert at_start == TurnWindow(CONVERSATION[6:8])


#: A turn whose every message is long enough to be stored compressed.
BIG_TURN: list[BaseMessage] = [
    HumanMessage("q " * 100, id="big-h"),
    call(7, "thinking " * 30),
    ToolMessage("result " * 40, tool_call_id="c7", id="big-t"),
    AIMessage("answer " * 40, id="big-a"),
]


def test_parse_asks_for_older_elements_when_the_script_could_not_look() -> None:
    compressed = newest_first(BIG_TURN, compress=True)
    assert all(element[:1] == b"x" for element in compressed)
    plan = turn_window_plan(KEY, limit=3)
    window = plan.parse([[0, compressed[:3]]])  # oldest returned: a compressed AI call
    assert window.messages == BIG_TURN[1:] and window.more is not None
    assert window.more.commands[0].args == ("LRANGE", KEY, 3, 3 + TURN_CHUNK - 1)
    done = window.more.parse([compressed[3:]])
    assert done == TurnWindow(BIG_TURN)
    # A human message the client decoded itself ends the window at once.
    assert plan.parse([[0, compressed]]).more is None


def test_parse_plain_twin_extends_from_the_client() -> None:
    plan = turn_window_plan(KEY, limit=2)
    assert plan.plain is not None
    plain = plan.plain()
    window = plain.parse([newest_first(CONVERSATION[4:6])])
    assert window.more is not None
    assert window.more.parse([newest_first(CONVERSATION[2:4])]).messages == CONVERSATION[2:6]
    # Fewer elements than asked: the whole list was read.
    short = plain.parse([newest_first(CONVERSATION[4:5])])
    assert short == TurnWindow([])


def test_from_first_turn() -> None:
    assert from_first_turn(CONVERSATION[4:8]) == CONVERSATION[6:8]
    assert from_first_turn([result(1), result(2), AIMessage("x")]) == [AIMessage("x")]
    assert from_first_turn([]) == []


# -- on real servers -----------------------------------------------------------------
def write_mixed(url: str, session_id: str, messages: list[BaseMessage]) -> None:
    """Turns written alternately by this package, compressed, and the old class."""
    ours = RedisChatMessageHistory(session_id, url=url)
    packed = RedisChatMessageHistory(session_id, url=url, compress=True)
    old = CommunityHistory(session_id, url=url)
    writers: list[Any] = [ours, packed, old]
    for index, message in enumerate(messages):
        writers[index % 3].add_messages([message])


WRITERS = ["ours", "compressed", "old-class", "mixed"]


def write(url: str, session_id: str, how: str, messages: list[BaseMessage]) -> None:
    if how == "ours":
        RedisChatMessageHistory(session_id, url=url).add_messages(messages)
    elif how == "compressed":
        RedisChatMessageHistory(session_id, url=url, compress=True).add_messages(messages)
    elif how == "old-class":
        old = CommunityHistory(session_id, url=url)
        for message in messages:
            old.add_message(message)
    else:
        write_mixed(url, session_id, messages)


@pytest.mark.parametrize("how", WRITERS)
def test_every_window_size_matches_the_reference(redis_url: str, how: str) -> None:
    write(redis_url, "conv", how, CONVERSATION)
    history = RedisChatMessageHistory("conv", url=redis_url)
    for limit in [None, *range(1, len(CONVERSATION) + 3)]:
        window = history.get_messages(limit, whole_turns=True)
        assert window == reference(CONVERSATION, limit), f"limit={limit}"
        assert_tool_results_follow_their_calls(window)
    assert history.get_messages(0, whole_turns=True) == []


def test_async_twin_and_cluster(cluster_url: str) -> None:
    write(cluster_url, "conv", "compressed", CONVERSATION)
    history = RedisChatMessageHistory("conv", url=cluster_url)

    async def windows() -> list[list[BaseMessage]]:
        return [await history.aget_messages(n, whole_turns=True) for n in range(1, 12)]

    expected = [reference(CONVERSATION, n) for n in range(1, 12)]
    assert asyncio.run(windows()) == expected
    assert [history.get_messages(n, whole_turns=True) for n in range(1, 12)] == expected


def test_a_trimmed_history_starts_at_a_whole_turn(redis_url: str) -> None:
    history = RedisChatMessageHistory("trim", url=redis_url, max_messages=4)
    history.add_messages(CONVERSATION[:11])  # keeps call(31)'s turn without its question
    assert history.get_messages() == CONVERSATION[7:11]
    assert history.get_messages(2, whole_turns=True) == CONVERSATION[7:11]  # no human at all
    history.add_messages(CONVERSATION[11:14])
    assert history.get_messages(1, whole_turns=True) == CONVERSATION[13:14]
    assert history.get_messages(3, whole_turns=True) == CONVERSATION[12:14]
    assert history.get_messages(whole_turns=True) == CONVERSATION[12:14]


@contextlib.contextmanager
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every request the client writes to a socket (one per round trip)."""
    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def spy(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(b"".join(command) if isinstance(command, list) else command)
        original(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", spy)
        yield sent


def test_one_round_trip_and_only_the_window_is_read(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = RedisChatMessageHistory("long", url=redis_url)
    turns = [[HumanMessage(f"q{n}"), call(n), result(n), AIMessage(f"a{n}")] for n in range(500)]
    history.add_messages([message for turn in turns for message in turn])
    history.get_messages(1, whole_turns=True)  # loads the script
    with sends(monkeypatch) as sent:
        window = history.get_messages(6, whole_turns=True)
    assert len(sent) == 1 and b"EVALSHA" in sent[0]
    assert window == turns[-2] + turns[-1]


def test_compressed_history_needs_the_client_but_stays_small(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = RedisChatMessageHistory("packed", url=redis_url, compress=True)
    messages = [BIG_TURN[0], *[call(n, "thinking " * 30) for n in range(3)], BIG_TURN[3]]
    history.add_messages([HumanMessage("old " * 100)] * 200 + messages)
    history.get_messages(1, whole_turns=True)
    with sends(monkeypatch) as sent:
        window = history.get_messages(2, whole_turns=True)
    assert window == messages
    assert len(sent) == 2  # the script stopped at a compressed element; one LRANGE more
    assert b"LRANGE" in sent[1] and b"17" in sent[1]  # 2 .. 2 + TURN_CHUNK - 1


def test_corrupt_element_is_named_or_skipped(redis_url: str, redis_server: Any) -> None:
    history = RedisChatMessageHistory("bad", url=redis_url)
    history.add_messages(CONVERSATION[:6])
    client = redis_server.client()
    try:
        client.linsert(history.key, "AFTER", client.lindex(history.key, 2), zlib.compress(b"?"))
    finally:
        client.close()
    with pytest.raises(CorruptHistoryError, match="list element 3"):
        history.get_messages(3, whole_turns=True)
    skipping = RedisChatMessageHistory("bad", url=redis_url, skip_corrupt=True)
    assert skipping.get_messages(3, whole_turns=True) == CONVERSATION[2:6]
