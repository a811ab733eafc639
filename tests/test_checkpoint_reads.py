"""A read of a thread this saver holds is spared its messages, and still gives what is stored.

The saver keeps the thread's history list as it last saw it; a read tells the script its
segment id and length, and the script sends the messages' count instead of them while
the list is still that. Each read must give new objects, equal to what Redis holds:
never the objects an earlier read or put handed to the graph, never a stale list.
"""

from __future__ import annotations

from typing import Any

import redis
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from redis_chat_history.checkpoint import RedisCheckpointSaver, steps
from redis_chat_history.checkpoint.flows import Run
from redis_chat_history.checkpoint.fresh import fresh_copy, recipe, remade
from redis_chat_history.checkpoint.steps import ThreadKeys
from redis_chat_history.codec import decode_element, encode_message
from tests.test_checkpoint_faults import put_turn

LATEST = {"configurable": {"thread_id": "t"}}


def conversation(turns: int) -> list[Any]:
    messages: list[Any] = []
    for at in range(turns):
        call = {"name": "lookup", "args": {"topic": f"t{at}", "tags": ["a"]}, "id": f"c{at}"}
        messages += [
            HumanMessage([{"type": "text", "text": f"q{at}"}], id=f"h{at}"),
            AIMessage("", tool_calls=[call], id=f"a{at}", response_metadata={"n": [at]}),
            ToolMessage(f"doc {at}", tool_call_id=f"c{at}", id=f"t{at}", artifact={"k": [1]}),
        ]
    return messages


def stored(saver: RedisCheckpointSaver, config: Any = LATEST) -> list[Any]:
    found = saver.get_tuple(config)
    assert found is not None
    return list(found.checkpoint["channel_values"]["messages"])


def _read(keys: ThreadKeys, known: tuple[str, int] | None) -> Run:
    return Run(steps.read_plan(keys, "", [], known=known))


def test_the_script_sends_a_count_for_the_list_the_reader_holds(redis_url: str) -> None:
    saver = RedisCheckpointSaver(redis_url)
    put_turn(saver, "t", None, conversation(2))
    keys = ThreadKeys.of("message_store:", "t")
    segment = saver._ctx.tips.get(keys.history).segment
    run = saver._step

    held = run(_read(keys, (segment, 6)))
    assert held.unsent == {segment: 6} and held.segments == {}
    for stale in [(segment, 5), ("f" * 16, 6), None]:  # another length, segment, nothing
        sent = run(_read(keys, stale))
        assert sent.unsent == {} and len(sent.segments[segment]) == 6, stale


def test_each_read_gives_new_objects_that_no_change_reaches(redis_url: str) -> None:
    saver = RedisCheckpointSaver(redis_url)
    messages = conversation(3)
    put_turn(saver, "t", None, messages)
    first = stored(saver)
    assert first == messages and all(a is not b for a, b in zip(first, messages, strict=True))
    # a node (or the application) changes what it was given, in place, deep down
    first[0].content[0]["text"] = "changed"
    first[1].tool_calls[0]["args"]["tags"].append("changed")
    first[1].response_metadata["n"].append(99)
    first[2].artifact["k"].append(2)
    second = stored(saver)
    assert second == messages  # what Redis holds, not the changed objects
    assert all(a is not b for a, b in zip(first, second, strict=True))
    assert RedisCheckpointSaver(redis_url).store.history("t").messages == messages


def test_a_list_changed_by_another_writer_is_read_again(redis_url: str) -> None:
    mine, other = RedisCheckpointSaver(redis_url), RedisCheckpointSaver(redis_url)
    messages = conversation(1)
    config = put_turn(mine, "t", None, messages)
    assert stored(mine) == messages  # held now
    longer = [*messages, HumanMessage("from the other process", id="other")]
    put_turn(other, "t", config, longer)
    assert stored(mine) == longer
    edited = [HumanMessage("edited elsewhere", id="h0"), *longer[1:]]  # same length
    put_turn(other, "t", config, edited)  # a new segment: the list is replaced
    assert stored(mine) == edited
    older = stored(mine, config)  # an older checkpoint: an archived segment, sent
    assert older == messages
    keys = ThreadKeys.of("message_store:", "t")
    assert redis.Redis.from_url(redis_url).llen(keys.history) == len(edited)


def test_a_fresh_copy_equals_the_decoded_message_and_shares_nothing() -> None:
    for message in conversation(1):
        decoded = decode_element(encode_message(message))
        copied = fresh_copy(decoded)
        assert copied == decoded and type(copied) is type(decoded)
        assert encode_message(copied) == encode_message(decoded)
        for name, value in decoded.__dict__.items():
            if isinstance(value, (dict, list)) and value:
                assert copied.__dict__[name] is not value, name


def test_a_remade_message_equals_the_decoded_one_and_what_json_would_change_is_copied() -> None:
    for message in conversation(1):
        decoded = decode_element(encode_message(message))
        made = recipe(decoded)
        assert made is not None, message
        again = remade(type(decoded), made)
        assert again == decoded and encode_message(again) == encode_message(decoded)
        assert again.__dict__ is not decoded.__dict__
        assert remade(type(decoded), made).__dict__ is not again.__dict__
    odd = [
        AIMessage("nan", id="n", response_metadata={"score": float("nan")}),
        AIMessage("inf", id="i", response_metadata={"score": float("inf")}),
        AIMessage("big", id="b", additional_kwargs={"n": 2**70}),
        AIMessage("lone", id="s", response_metadata={"note": "lone \ud800 surrogate"}),
    ]
    for message in odd:
        decoded = decode_element(encode_message(message))
        assert recipe(decoded) is None, message  # a round trip through orjson would change it
        assert encode_message(fresh_copy(decoded)) == encode_message(message)
    # strings and numbers are shared (immutable), not sent through orjson: exact as they are
    decoded = decode_element(encode_message(HumanMessage("lone \ud800 surrogate", id="s")))
    made = recipe(decoded)
    assert made is not None
    assert encode_message(remade(HumanMessage, made)) == encode_message(decoded)


def test_held_reads_of_what_json_would_change_are_exact(redis_url: str) -> None:
    saver = RedisCheckpointSaver(redis_url)
    messages: list[Any] = [
        HumanMessage("lone \ud800 surrogate", id="s"),
        AIMessage("big", id="b", additional_kwargs={"n": 2**70}, response_metadata={"x": 1.0}),
        AIMessage("inf", id="i", response_metadata={"score": float("inf")}),
    ]
    put_turn(saver, "t", None, messages)
    for _ in range(2):  # decoded once (the first read), copied after
        assert [encode_message(m) for m in stored(saver)] == [encode_message(m) for m in messages]
    assert type(stored(saver)[1].additional_kwargs["n"]) is int
    assert type(stored(saver)[1].response_metadata["x"]) is float
