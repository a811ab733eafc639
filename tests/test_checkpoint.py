"""RedisCheckpointSaver with real agents: the conversation is a chat history, stored once.

Each test runs ``create_agent`` (a deterministic model, a tool) on real servers and
asserts on what Redis holds: the history list, the thread's keys, their sizes.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

import pytest
import redis
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langgraph.checkpoint.serde.base import CipherProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from packaging.version import Version

from redis_chat_history import RedisChatStore
from redis_chat_history.checkpoint import BrokenCheckpointError, RedisCheckpointSaver
from redis_chat_history.checkpoint.steps import ThreadKeys, parse_rows, unpack, unpack_record
from redis_chat_history.demo import ScriptedChatModel, lookup

THREAD = {"configurable": {"thread_id": "t1"}}


def agent_of(saver: Any, padding: int = 0) -> Any:
    model = ScriptedChatModel(padding=padding, remember=False)
    return create_agent(model, tools=[lookup], checkpointer=saver)


def turn(agent: Any, number: int, config: Any = THREAD) -> dict[str, Any]:
    question = HumanMessage(
        f"Please look up window, turn {number} " + "q" * 400, id=f"question-{number:04}"
    )
    return agent.invoke({"messages": [question]}, config, durability="sync")  # type: ignore[no-any-return]


#: langgraph < 1.2 sends a tool call with the whole state (ToolCallWithContext) through its
#: __pregel_tasks channel: stored with references to the history list, but the AI message
#: that makes the call is not in the list yet when the call is written (a second copy).
OLD_SENDS = Version(version("langgraph")) < Version("1.2")


def _readable(packed: bytes) -> bytes:
    """A stored value as its serializer wrote it (deflated ones inflated; a nested one's
    references and its skeleton)."""
    kind, data = unpack(packed)
    if kind == "\x01s":
        references, _, skeleton = data.partition(b"\x00")
        return references + b"\x00" + _readable(skeleton)
    return kind.encode() + b"\x00" + data


def stored_bytes(client: redis.Redis, keys: ThreadKeys) -> tuple[int, bytes]:
    """Bytes of every field, value, member and element of the thread, and all of them
    (each stored value inflated) concatenated, for counting what is stored."""
    raw: list[bytes] = []
    readable: list[bytes] = []
    for name, value in client.hgetall(keys.data).items():
        raw += [name, value]
        if name[:2] == b"v\x00":  # versions -> channels -> values
            for _, values in parse_rows(value):
                readable += [_readable(part) for _, part in parse_rows(values)]
    for member in client.zrange(keys.index, 0, -1):
        raw.append(member)
        if member[:2] == b"c\x00":
            _ns, _id, size, rest = member[2:].split(b"\x00", 3)
            record, writes = rest[: int(size)], rest[int(size) :]
            _parent, metadata, checkpoint, _versions = unpack_record(record)
            readable += [_readable(metadata), _readable(checkpoint)]
            for _, row in parse_rows(writes):
                channel, path, packed = row.split(b"\x00", 2)
                readable += [channel, path, _readable(packed)]
    raw += client.lrange(keys.history, 0, -1)
    for seg in client.zrangebylex(keys.index, "[g\x00", "[g\x00\xff"):
        raw += client.lrange(client.hget(keys.data, seg), 0, -1)
    return sum(len(part) for part in raw), b"\x01".join(raw + readable)


def test_the_conversation_is_the_chat_history(redis_url: str) -> None:
    store = RedisChatStore(redis_url)
    agent = agent_of(RedisCheckpointSaver(store=store))
    for number in range(3):
        result = turn(agent, number)
    messages = result["messages"]
    assert len(messages) == 12  # question, tool call, tool result, answer per turn
    assert store.history("t1").messages == messages
    assert any(isinstance(m, AIMessage) and m.tool_calls for m in store.history("t1").messages)
    assert list(store.sessions()) == ["t1"]  # the companion keys are not sessions
    from langchain_community.chat_message_histories import RedisChatMessageHistory

    old = RedisChatMessageHistory("t1", url=redis_url)
    assert [m.content for m in old.messages] == [m.content for m in messages]


def test_each_message_is_stored_once_and_storage_grows_linearly(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    agent = agent_of(RedisCheckpointSaver(redis_url), padding=150)
    keys = ThreadKeys.of("message_store:", "t1")
    sizes = []
    for number in range(16):
        result = turn(agent, number)
        sizes.append(stored_bytes(client, keys)[0])
    size, everything = stored_bytes(client, keys)
    *earlier, last = result["messages"]
    for message in earlier:
        # a question is also the run's input, kept in LangGraph's __start__ channel
        calls = OLD_SENDS and isinstance(message, AIMessage) and bool(message.tool_calls)
        copies = 2 if isinstance(message, HumanMessage) or calls else 1
        assert message.id and everything.count(message.id.encode()) == copies, message
    # the last answer's write may reach the saver after the put that appended it and
    # become a reference at the next put only
    assert last.id and everything.count(last.id.encode()) in (1, 2), last
    messages_bytes = sum(len(e) for e in client.lrange(keys.history, 0, -1))
    # measured 1.71x (langgraph 1.2), 1.76x (langgraph 1.1: its sends hold references)
    assert size < 2 * messages_bytes, (size, messages_bytes)
    early, late = sizes[5] - sizes[4], sizes[15] - sizes[14]
    assert abs(late - early) <= 0.15 * early, (early, late)


def _checkpoint(number: int, messages: list[Any]) -> Any:
    """Checkpoint ``number`` holding ``messages``, and its new versions (one channel)."""
    version = f"{number:012}.{0:010x}"
    return (
        {
            "v": 4,
            "id": f"1f000000-0000-6000-8000-00000000000{number}",
            "ts": "2026-01-01T00:00:00+00:00",
            "channel_values": {"messages": messages},
            "channel_versions": {"messages": version},
            "versions_seen": {},
            "updated_channels": ["messages"],
        },
        {"messages": version},
    )


def test_a_second_write_of_a_task_keeps_the_first_even_once_the_list_holds_it(
    redis_url: str,
) -> None:
    """langgraph 1.1 replays a model call onto the old checkpoint with the same task id:
    the stored write (the first) is kept, as InMemorySaver keeps it, even when the next
    checkpoint's list holds the second one (it must not become a reference to it)."""
    saver = RedisCheckpointSaver(redis_url)
    question, first, second = (
        HumanMessage("q", id="q"),
        AIMessage("first answer", id="a1"),
        AIMessage("second answer", id="a2"),
    )

    root = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    one, versions = _checkpoint(1, [question])
    config = saver.put(root, one, {"source": "loop", "step": 1}, versions)
    saver.put_writes(config, [("messages", [first])], "task-1")
    saver.put_writes(config, [("messages", [second])], "task-1")  # kept out
    two, versions = _checkpoint(2, [question, second])
    saver.put(config, two, {"source": "loop", "step": 2}, versions)
    stored = saver.get_tuple(config)
    assert stored is not None and stored.pending_writes == [("task-1", "messages", [first])]
    assert RedisChatStore(redis_url).history("t1").messages == [question, second]


def test_a_write_that_comes_after_the_put_appending_its_messages_is_a_reference(
    redis_url: str,
) -> None:
    """The put that appends a task's messages may run before the task's put_writes (both
    in LangGraph's background threads): the put_writes script finds them in the list."""
    client = redis.Redis.from_url(redis_url)
    saver, other = RedisCheckpointSaver(redis_url), RedisCheckpointSaver(redis_url)
    question, answer = HumanMessage("q", id="q"), AIMessage("an answer", id="a1")
    configs: list[Any] = [{"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}]
    for number, messages in enumerate([[question], [question, answer]], 1):
        checkpoint, versions = _checkpoint(number, messages)
        metadata: Any = {"source": "loop", "step": number}
        configs.append(saver.put(configs[-1], checkpoint, metadata, versions))
    first = configs[1]
    # a saver that has not seen the list (its tip is empty) writes the answer late
    other.put_writes(first, [("messages", [answer])], "task-1")
    member = client.zrangebylex(
        ThreadKeys.of("message_store:", "t1").index, "[c\x00", "[c\x00\xff"
    )[0]
    assert b"\x01w\x000:1:1" in member  # the answer is element 1 of the list
    stored = saver.get_tuple(first)
    assert stored is not None and stored.pending_writes == [("task-1", "messages", [answer])]


def test_removal_fork_and_summary_start_new_segments(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    saver = RedisCheckpointSaver(store=store)
    agent = agent_of(saver)
    keys = ThreadKeys.of("message_store:", "t1")
    for number in range(2):
        turn(agent, number)
    before = agent.get_state(THREAD)
    first = before.values["messages"]
    # a removal: the list is archived (O(1) RENAME) and the new state becomes the list
    agent.update_state(THREAD, {"messages": [RemoveMessage(id=first[0].id)]})
    assert store.history("t1").messages == first[1:]
    assert len(client.zrangebylex(keys.index, "[g\x00", "[g\x00\xff")) == 1
    assert agent.get_state(before.config).values["messages"] == first  # still readable
    # a summary: everything replaced by one message
    everything = [RemoveMessage(id="__remove_all__"), AIMessage("summary", id="s1")]
    agent.update_state(THREAD, {"messages": everything})
    assert [m.content for m in store.history("t1").messages] == ["summary"]
    # a fork from the older checkpoint: its conversation becomes the history
    forked = agent.invoke({"messages": [HumanMessage("fork", id="f1")]}, before.config)
    assert store.history("t1").messages == forked["messages"]
    assert forked["messages"][: len(first)] == first
    history = list(agent.get_state_history(THREAD))
    assert all(snapshot.values.get("messages") is not None for snapshot in history)


def test_a_thread_starts_from_an_existing_history(redis_url: str) -> None:
    store = RedisChatStore(redis_url)
    store.history("legacy").add_messages([HumanMessage("my name is Ann"), AIMessage("Hi Ann")])
    model = ScriptedChatModel()
    agent = create_agent(model, tools=[lookup], checkpointer=RedisCheckpointSaver(store=store))
    config = {"configurable": {"thread_id": "legacy"}}
    result = agent.invoke({"messages": [HumanMessage("what did I say?")]}, config)
    assert [m.content for m in result["messages"][:3]] == [
        "my name is Ann",
        "Hi Ann",
        "what did I say?",
    ]
    assert "my name is Ann" in str(model.requests[0])
    assert store.history("legacy").messages == result["messages"]
    steps = [snapshot.metadata["step"] for snapshot in agent.get_state_history(config)]
    assert steps[-1] == -2 and steps[-2] == -1  # the adopted history, then the input


def test_ttl_covers_every_key_and_is_refreshed(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    agent = agent_of(RedisCheckpointSaver(redis_url, ttl=300))
    turn(agent, 0)
    agent.update_state(THREAD, {"messages": [RemoveMessage(id="question-0000")]})  # an archive too
    keys = ThreadKeys.of("message_store:", "t1")
    archive = client.hget(keys.data, client.zrangebylex(keys.index, "[g\x00", "[g\x00\xff")[0])
    thread_keys = [keys.history, keys.data, keys.index, archive]
    for key in thread_keys:
        client.expire(key, 5)
    turn(agent, 1)
    assert all(250 < client.ttl(key) <= 300 for key in thread_keys)


def test_a_broken_chain_raises_naming_thread_and_checkpoint(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    saver = RedisCheckpointSaver(redis_url)
    agent = agent_of(saver)
    turn(agent, 0)
    latest = saver.get_tuple(THREAD)
    assert latest is not None
    keys = ThreadKeys.of("message_store:", "t1")
    client.ltrim(keys.history, 0, 1)  # the list is shorter than the checkpoint needs
    with pytest.raises(BrokenCheckpointError) as error:
        saver.get_tuple(latest.config)
    assert "'t1'" in str(error.value) and latest.config["configurable"]["checkpoint_id"] in str(
        error.value
    )
    assert error.value.thread_id == "t1"
    client.delete(keys.history)  # deleted by hand
    with pytest.raises(BrokenCheckpointError):
        saver.get_tuple(THREAD)
    client.delete(keys.index)  # the index evicted, the data not
    with pytest.raises(BrokenCheckpointError, match="index"):
        saver.get_tuple(THREAD)


class _XorCipher(CipherProtocol):
    """A stand-in cipher (the serializer's protocol), so no crypto package is needed."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return "xor", bytes(byte ^ 0x5A for byte in plaintext)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "xor"
        return bytes(byte ^ 0x5A for byte in ciphertext)


def test_an_encrypted_serializer_keeps_messages_out_of_the_history(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    serde = EncryptedSerializer(_XorCipher())
    saver = RedisCheckpointSaver(redis_url, serde=serde)
    agent = agent_of(saver)
    result = turn(agent, 0)
    assert agent.get_state(THREAD).values["messages"] == result["messages"]
    assert client.llen("message_store:t1") == 0
    keys = ThreadKeys.of("message_store:", "t1")
    assert b"turn 0" not in stored_bytes(client, keys)[1]  # nothing in clear text


def test_async_agent_and_sync_reads_agree(redis_url: str) -> None:
    store = RedisChatStore(redis_url)
    agent = agent_of(RedisCheckpointSaver(store=store))

    async def run() -> Any:
        question = HumanMessage("Please look up once", id="a1")
        return await agent.ainvoke({"messages": [question]}, THREAD)

    result = asyncio.run(run())
    assert store.history("t1").messages == result["messages"]
    assert agent.get_state(THREAD).values["messages"] == result["messages"]


def test_cluster_thread_is_one_slot_and_a_chat_history(cluster_url: str) -> None:
    store = RedisChatStore(cluster_url)
    agent = agent_of(RedisCheckpointSaver(store=store))
    for number in range(2):
        result = turn(agent, number)
    assert store.history("t1").messages == result["messages"]
    agent.update_state(THREAD, {"messages": [RemoveMessage(id="question-0000")]})
    assert store.history("t1").messages == result["messages"][1:]
    assert len(list(agent.get_state_history(THREAD))) > 8
