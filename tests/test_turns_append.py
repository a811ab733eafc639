"""The agent middleware's write: an append that skips the batch's messages already stored.

A run whose write reached Redis but whose checkpoint did not (a crash, a cancellation)
sends the same messages again: the script finds them at the history's tail and pushes
only what is new. The plan is checked without a server, the script on every server.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from redis_chat_history import InvalidArgumentError, RedisChatMessageHistory
from redis_chat_history.codec import encode_messages
from redis_chat_history.execution import run
from redis_chat_history.operations import (
    APPEND_UNSTORED,
    ID_REACH_MARGIN,
    TAIL_SLACK,
    WRITER,
    Appended,
    append_unstored_plan,
    id_needle,
    writers_key,
)

KEY = "message_store:s1"


def turn(n: int, **kwargs: Any) -> list[BaseMessage]:
    return [
        HumanMessage(f"question {n}", id=f"q{n}", **kwargs),
        AIMessage(f"answer {n}", id=f"a{n}", **kwargs),
    ]


def append(history: RedisChatMessageHistory, messages: list[BaseMessage]) -> Appended:
    settings = history.settings
    encoded = encode_messages(messages, compress=settings.compress)
    plan = append_unstored_plan(
        history.key,
        [m.id or "" for m in messages],
        encoded,
        ttl=settings.ttl,
        max_messages=settings.max_messages,
    )
    return run(history._provider, plan)


# -- without a server --------------------------------------------------------------------
def test_plan_is_one_script_call_with_ids_needles_and_elements() -> None:
    messages = turn(1)
    encoded = encode_messages(messages)
    plan = append_unstored_plan(KEY, ["q1", "a1"], encoded, ttl=60, max_messages=None)
    (command,) = plan.commands
    assert command.script is APPEND_UNSTORED and command.writer_at == 5
    assert command.args[:5] == ("EVALSHA", APPEND_UNSTORED.sha, 2, KEY, writers_key(KEY))
    assert command.args[5:] == (
        WRITER,
        60,
        0,
        2,
        "q1",
        "a1",
        b'"id":"q1"',
        b'"id":"a1"',
        len(encoded[0]) - encoded[0].rfind(b'"id":"q1"') + ID_REACH_MARGIN,
        len(encoded[1]) - encoded[1].rfind(b'"id":"a1"') + ID_REACH_MARGIN,
        *encoded,
    )
    assert plan.writes and plan.idempotent
    assert plan.plain is not None
    plain = plan.plain()
    assert [c.args[0] for c in plain.commands] == ["LPUSH", "EXPIRE"] and not plain.idempotent
    assert plain.parse([2, 1]) == Appended(2, 0)


def test_plan_refuses_ids_that_do_not_match_the_batch() -> None:
    with pytest.raises(InvalidArgumentError, match="1 ids for 2 messages"):
        append_unstored_plan(KEY, ["q1"], encode_messages(turn(1)), ttl=None, max_messages=None)


def test_needle_is_spelled_as_the_element_spells_the_id() -> None:
    (compact,) = encode_messages([HumanMessage("hi", id="é/1")])
    tail = len(compact) - compact.rfind('"id":"é/1"'.encode())
    assert id_needle("é/1", compact) == ('"id":"é/1"'.encode(), tail + ID_REACH_MARGIN)
    # what orjson cannot write exactly goes through the stdlib: ASCII, with spaces
    big = HumanMessage("hi", id="é/1", additional_kwargs={"n": 2**70})
    (spaced,) = encode_messages([big])
    assert id_needle("é/1", spaced)[0] == b'"id": "\\u00e9/1"'
    # a compressed element is found by its bytes; its needle reaches everywhere
    (packed,) = encode_messages([HumanMessage("long " * 40, id="m1")], compress=True)
    assert packed[:1] == b"x" and id_needle("m1", packed) == (b'"id":"m1"', 0)


# -- on every server ---------------------------------------------------------------------
def test_a_batch_sent_again_is_stored_once(redis_url: str) -> None:
    history = RedisChatMessageHistory("s1", url=redis_url, ttl=600)
    assert append(history, turn(1)) == Appended(2, 0)
    assert append(history, turn(1)) == Appended(2, 2)  # the re-run after a crash
    # a re-run whose batch grew (the next run's input came first): only the rest is new
    assert append(history, [*turn(1), *turn(2)]) == Appended(4, 2)
    assert history.messages == [*turn(1), *turn(2)]
    assert 0 < (history.expires_in() or 0) <= 600


def test_found_behind_other_writers_up_to_the_slack(redis_url: str) -> None:
    history = RedisChatMessageHistory("s2", url=redis_url)
    append(history, turn(1))
    others = [HumanMessage(f"other {n}", id=f"o{n}") for n in range(TAIL_SLACK)]
    history.add_messages(others)
    assert append(history, [*turn(1), *turn(2)]) == Appended(4 + TAIL_SLACK, 2)
    assert history.messages == [*turn(1), *others, *turn(2)]
    # further back than 1 + TAIL_SLACK elements it is not looked for
    history.add_messages([HumanMessage("one more", id="o-last")])
    assert append(history, turn(2)).already_stored == 2  # the newest are still found
    assert append(history, turn(1)).already_stored == 0


def test_a_compressed_history_is_recognised_by_its_bytes(redis_url: str) -> None:
    history = RedisChatMessageHistory("s3", url=redis_url, compress=True)
    long_turn = turn(1, additional_kwargs={"pad": "x" * 500})
    append(history, long_turn)
    raw = history._provider.sync().lrange(history.key, 0, -1)
    assert all(element[:1] == b"x" for element in raw)
    assert append(history, long_turn) == Appended(2, 2)
    assert history.messages == long_turn


def test_an_id_quoted_in_another_message_is_no_match(redis_url: str) -> None:
    history = RedisChatMessageHistory("s4", url=redis_url)
    # its metadata holds the id of the message sent next (spelled as an id field)
    history.add_messages([AIMessage("earlier", id="e1", response_metadata={"id": "q1"})])
    assert append(history, turn(1)) == Appended(3, 0)
    assert [m.id for m in history.messages] == ["e1", "q1", "a1"]


def test_the_write_trims_and_a_stored_part_is_not_pushed_again(redis_url: str) -> None:
    history = RedisChatMessageHistory("s5", url=redis_url, max_messages=3)
    append(history, turn(1))
    assert append(history, [*turn(1), *turn(2)]) == Appended(3, 2)
    assert [m.id for m in history.messages] == ["a1", "q2", "a2"]
