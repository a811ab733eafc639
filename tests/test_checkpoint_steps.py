"""The checkpointer's plans and stored forms, without a server."""

from __future__ import annotations

import hashlib
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Send
from redis.crc import key_slot

from redis_chat_history.checkpoint.forms import (
    channel_code,
    channel_name,
    task_code,
    task_of,
    version_of,
    version_text,
)
from redis_chat_history.checkpoint.messages import Tip, Tips, plan_messages
from redis_chat_history.checkpoint.nested import load_nested, pack_nested
from redis_chat_history.checkpoint.steps import (
    ThreadKeys,
    pack,
    pack_record,
    pack_record_typed,
    parse_rows,
    put_plan,
    unpack,
    unpack_record,
)
from redis_chat_history.checkpoint.values import pending_writes, write_rows
from redis_chat_history.checkpoint.zdict import DICTIONARY_1_SHA1, dictionary
from redis_chat_history.codec import encode_message


def test_every_key_of_a_thread_is_in_its_history_slot() -> None:
    for thread_id in ["t1", "a{b", "{x}y", "{}z", "é\x00"]:
        keys = ThreadKeys.of("message_store:", thread_id)
        slots = {key_slot(key.encode()) for key in [*keys.base, keys.archive("0" * 16)]}
        assert slots == {key_slot(keys.history.encode())}


def test_values_records_and_rows_round_trip() -> None:
    big = ("msgpack", b"v" * 1000)
    assert unpack(pack(big)) == big and len(pack(big)) < 100  # compressed
    assert unpack(pack(("json", b"{}"))) == ("json", b"{}")
    raw = pack_record("parent-1", {"a": 1, "messages": "0001.ab"}, b"meta\x00x", b"check\x00y")
    assert raw.startswith(b"parent-1\x00") and b"a\x00#1\x00!m\x000001.ab\x00" in raw
    versions = {"a": 1, "messages": "0001.ab"}
    assert unpack_record(raw) == ("parent-1", b"meta\x00x", b"check\x00y", versions)


def test_a_record_deflates_its_metadata_and_checkpoint_together() -> None:
    metadata = ("msgpack", b'{"source": "loop", "step": 3, "parents": {}}' * 3)
    checkpoint = ("msgpack", b'{"versions_seen": {"__input__": {}}, "v": 4}' * 4)
    versions = {"a": 1, "messages": "0001.ab"}
    raw = pack_record_typed("parent-1", versions, metadata, checkpoint)
    separate = pack_record("parent-1", versions, pack(metadata), pack(checkpoint))
    assert len(raw) < len(separate)  # one stream: the checkpoint refers back to the metadata
    parent, packed_metadata, packed_checkpoint, read_versions = unpack_record(raw)
    assert (parent, read_versions) == ("parent-1", versions)
    assert (unpack(packed_metadata), unpack(packed_checkpoint)) == (metadata, checkpoint)
    # too small to gain from deflate: stored plain, in the form of separate values
    tiny = pack_record_typed("p", versions, ("json", b"{}"), ("json", b"[]"))
    assert unpack_record(tiny) == ("p", b"json\x00{}", b"json\x00[]", versions)
    assert b"d1+" not in tiny


def test_names_langgraph_repeats_are_stored_short_and_come_back_exactly() -> None:
    saver_version = "000000000297.24ca609dbe"
    versions = {
        "__start__": saver_version,
        "messages": "000000000299.b99157e42e",
        "branch:to:model": "000000000299.b99157e42e",  # the same: listed once
        "!odd": "=1",
        "^x": "^297.24ca609dbe",  # looks like a short form: escaped
        "n": 2.5,
    }
    raw = pack_record("p", versions, b"m", b"c")
    listed = raw.split(b"\x00", 2)[2]
    assert b"!s\x00^297.24ca609dbe\x00!m\x00^299.b99157e42e\x00!bmodel\x00=2\x00" in listed
    assert b"!!odd\x00'=1\x00^x\x00'^297.24ca609dbe\x00n\x00~2.5\x00" in listed
    assert unpack_record(raw)[3] == versions
    for channel in ["messages", "!m", "!!m", "branch:to:", "branch:to:x", "!bx", "__pregel_tasks"]:
        assert channel_name(channel_code(channel)) == channel
    for version in [saver_version, "1000000000000.24ca609dbe", "00000000029.24ca609dbe", 7, "#7"]:
        assert version_of(version_text(version)) == version


def test_writes_keep_task_path_and_come_back_in_langgraph_order() -> None:
    serde = JsonPlusSerializer()
    rows = write_rows(serde, [("b", 2), ("__error__", "boom")], "task-z", "path-2")
    rows += write_rows(serde, [("a", 1)], "task-a", "path-1")
    assert [(suffix, replace) for suffix, replace, _, _ in rows] == [
        (b"task-z\x000", False),
        (b"task-z\x00-1", True),  # special writes are replaced, others kept (HSETNX-like)
        (b"task-a\x000", False),
    ]
    assert parse_rows(b"") == []
    joined = b"".join(
        f"{len(suffix)}\x00".encode() + suffix + f"{len(value)}\x00".encode() + value
        for suffix, _, value, _ in rows
    )
    parsed = parse_rows(joined)
    assert [suffix.encode() for suffix, _ in parsed] == [row[0] for row in rows]
    task = "178875ab-b915-edd4-bc9f-0593cd2c2a51"  # LangGraph's task ids: stored as 16 bytes
    for task_id in [task, task.upper(), "\x01odd", "\x02odd", "plain"]:
        code = task_code(task_id, -3)
        assert task_of(code.decode("utf-8", "surrogateescape")) == (task_id, -3)
    assert len(task_code(task, 0)) == 19
    writes = pending_writes(serde, parsed, None)  # type: ignore[arg-type]
    assert writes == [("task-a", "a", 1), ("task-z", "__error__", "boom"), ("task-z", "b", 2)]


def test_a_put_sends_only_the_new_messages() -> None:
    first = [HumanMessage("one", id="1"), AIMessage("two", id="2")]
    tip = Tip("0" * 16, [encode_message(m) for m in first], list(first))
    extended = [*first, HumanMessage("three", id="3")]
    write = plan_messages(tip, extended)
    assert write is not None and write.mode == "a"
    assert write.elements == [encode_message(extended[2])]
    edited = [first[0], AIMessage("TWO", id="2")]
    replaced = plan_messages(tip, edited)
    assert replaced is not None and replaced.mode == "r" and len(replaced.elements) == 2
    same = plan_messages(tip, [HumanMessage("one", id="1"), AIMessage("two", id="2")])
    assert same is not None and same.mode == "k"  # equal copies are recognised too
    keys = ThreadKeys.of("message_store:", "t")
    plan = put_plan(
        keys,
        ns="",
        checkpoint_id="c2",
        record=b"r",
        run_id="",
        ttl=0,
        blobs=[],
        messages=write,
        messages_field="b\x00\x00messages\x001",
        new_segment="1" * 16,
    )
    args = plan.commands[0].args
    assert args[3 : 3 + len(keys.base)] == tuple(keys.base)
    assert args[-1] == encode_message(extended[2]) and plan.idempotent and plan.writes


def test_a_write_already_in_the_list_is_stored_as_a_reference() -> None:
    tips = Tips()
    messages = [HumanMessage("one", id="1"), AIMessage("two", id="2")]
    tips.set("k", Tip("a" * 16, [encode_message(m) for m in messages], list(messages)))
    assert tips.locate("k", [messages[1]]) == ("a" * 16, 1)
    assert tips.locate("k", [AIMessage("other", id="2")]) is None
    rows = write_rows(
        JsonPlusSerializer(), [("messages", [messages[1]])], "t", "", lambda v: ("a" * 16, 1)
    )
    assert rows[0][2].endswith(b"\x01w\x00" + b"a" * 16 + b":1:1")


def test_a_message_changed_in_place_and_written_is_not_taken_for_the_stored_one() -> None:
    """langchain < 1.3's HumanInTheLoopMiddleware edits the AI message of the state in
    place and writes it: the list's encoding, not the object's identity, is what it holds."""
    tips = Tips()
    messages = [HumanMessage("one", id="1"), AIMessage("two", id="2")]
    tips.set("k", Tip("a" * 16, [encode_message(m) for m in messages], list(messages)))
    messages[1].content = "TWO"  # the same object, changed
    assert tips.locate("k", [messages[1]]) is None
    row = (b"t\x000", [messages[1]], b"stored")
    tips.remember_writes("k", "w\x00\x00c1", [row])  # type: ignore[list-item]
    write = plan_messages(tips.get("k"), messages)
    assert write is not None and write.mode == "r"
    assert write.elements[1] == encode_message(AIMessage("TWO", id="2"))
    rewrites = tips.rewrites("k", write)
    assert [entry[:4] for entry in rewrites] == [("w\x00\x00c1", b"t\x000", 1, 1)]
    assert rewrites[0][4] == hashlib.sha1(b"stored").hexdigest()


def test_a_tool_call_sent_with_the_whole_state_refers_to_the_history_list() -> None:
    """langgraph < 1.2's Send("tools", ToolCallWithContext(state=...)): the state's messages
    the list holds are stored as a reference, the rest inline; it comes back equal."""
    serde = JsonPlusSerializer()
    listed = [HumanMessage("one", id="1"), AIMessage("two", id="2")]
    tip = Tip("a" * 16, [encode_message(m) for m in listed], list(listed))
    call = AIMessage("", id="3", tool_calls=[{"name": "t", "args": {}, "id": "c", "type": "tool_call"}])  # fmt: skip
    state = {"messages": [*listed, call], "other": [1, 2]}
    sent = [Send("tools", {"__type": "tool_call_with_context", "tool_call": {}, "state": state})]
    packed = pack_nested(serde.dumps_typed, sent, tip, tip.segment)
    assert packed is not None and packed.startswith(b"\x01s\x00" + b"a" * 16 + b":0:2\x00")
    assert len(packed) < len(pack(serde.dumps_typed(sent)))

    def oldest(segment: str, count: int) -> list[Any]:
        assert segment == "a" * 16
        return listed[:count]

    loaded = load_nested(serde.loads_typed, packed[3:], oldest)
    assert loaded == sent and loaded[0].arg["state"]["messages"][2] == call
    # a value holding the reference key itself, or no run of the list: stored as is
    assert pack_nested(serde.dumps_typed, [{"\x01rch": 0}, listed], tip, "s") is None
    assert pack_nested(serde.dumps_typed, {"m": [call]}, tip, "s") is None


def test_the_compression_dictionary_is_frozen() -> None:
    """Values stored with the marker d1+ need exactly these bytes to be read back."""
    assert hashlib.sha1(dictionary()).hexdigest() == DICTIONARY_1_SHA1
    assert DICTIONARY_1_SHA1 == "8967a10edcd9bcaf4771b1e23e15d8365583cc6c"
    record = pack(("msgpack", b"\x84\xa6source\xa4loop\xa4step\x01"))
    assert unpack(record) == ("msgpack", b"\x84\xa6source\xa4loop\xa4step\x01")
