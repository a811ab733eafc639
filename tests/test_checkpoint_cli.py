"""A checkpointed thread seen as a session: listed, shown, exported, and deleted whole.

``rm``, ``store.delete``/``adelete`` and ``history.clear()`` of a session that is a
RedisCheckpointSaver thread delete every key of the thread in one script (the checkpointer
then sees a new, empty thread), on a standalone server and on a Cluster; a plain history
is deleted as before.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, RemoveMessage

from redis_chat_history import PermissionDeniedError, RedisChatStore
from redis_chat_history.checkpoint import RedisCheckpointSaver
from redis_chat_history.demo import ScriptedChatModel, lookup
from redis_chat_history.slots import writers_key_of
from tests.servers import Cluster, RedisProcess, wait_until
from tests.test_cli import cli

THREAD = {"configurable": {"thread_id": "t1"}}
KEY = "message_store:t1"


def agent_of(saver: RedisCheckpointSaver) -> Any:
    return create_agent(ScriptedChatModel(remember=False), tools=[lookup], checkpointer=saver)


def checkpointed(store: RedisChatStore) -> tuple[Any, RedisCheckpointSaver, list[Any]]:
    """Thread t1: two turns with a tool call, then a removal (an archived segment too)."""
    saver = RedisCheckpointSaver(store=store)
    agent = agent_of(saver)
    for number in range(2):
        question = HumanMessage(f"Please look up window, turn {number}", id=f"q{number}")
        agent.invoke({"messages": [question]}, THREAD, durability="sync")
    agent.update_state(THREAD, {"messages": [RemoveMessage(id="q0")]})
    messages = agent.get_state(THREAD).values["messages"]
    return agent, saver, messages


def keys_of(client: Any, key: str) -> dict[bytes, int]:
    """Every key starting with ``key`` (SCAN, every master of a Cluster), with its TTL."""
    found = client.scan_iter(match=key.replace("[", "\\[") + "*", count=1000)
    return {name: client.ttl(name) for name in found}


def assert_thread_gone(client: Any, saver: RedisCheckpointSaver) -> None:
    # only the writers key of the delete remains, expiring within its window
    left = keys_of(client, KEY)
    assert set(left) <= {writers_key_of(KEY).encode()}, left
    assert all(0 < ttl <= 400 for ttl in left.values()), left
    assert saver.get_tuple(THREAD) is None  # a new, empty thread: no BrokenCheckpointError
    assert list(saver.list(THREAD)) == []


def test_cli_lists_shows_exports_and_deletes_a_thread(redis_url: str, tmp_path: Any) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    agent, saver, messages = checkpointed(store)
    store.history("plain").add_user_message("a plain history")
    assert len(keys_of(client, KEY)) >= 4  # list, data, index, an archived segment
    url = ["--url", redis_url]

    listed = cli(*url, "sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == ["plain", "t1"]  # no companion key listed

    shown = cli(*url, "show", "t1", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    rows = [row for row in rows if "data" in row]  # the messages, not the framing records
    assert [row["data"]["content"] for row in rows] == [m.content for m in messages]
    assert any(row["type"] == "ai" and row["data"].get("tool_calls") for row in rows)
    text = cli(*url, "show", "t1")
    assert text.returncode == 0 and "turn 1" in text.stdout and "lookup" in text.stdout

    exported = cli(*url, "export", "t1", "-o", str(tmp_path / "t1.jsonl"))
    assert exported.returncode == 0, exported.stderr
    lines = (tmp_path / "t1.jsonl").read_text().splitlines()
    assert (
        sum('"data"' in line for line in lines) == len(messages)
        and f"{len(messages)} message(s)" in exported.stderr
    )

    removed = cli(*url, "rm", "t1", "plain", "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) == {"deleted": ["t1", "plain"], "not_found": []}
    assert_thread_gone(client, saver)
    assert client.exists("message_store:plain") == 0
    again = agent.invoke({"messages": [HumanMessage("hello again")]}, THREAD)
    assert again["messages"][0].content == "hello again"  # a fresh thread
    assert store.history("t1").messages == again["messages"]
    assert cli(*url, "rm", "nobody").returncode == 1


def test_store_delete_and_history_clear_delete_the_whole_thread(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    _agent, saver, _messages = checkpointed(store)
    assert store.delete("t1") == 1
    assert_thread_gone(client, saver)
    assert store.delete("t1") == 0  # nothing left: nothing written either

    checkpointed(store)
    store.history("t1").clear()
    assert_thread_gone(client, saver)

    checkpointed(store)
    assert asyncio.run(store.adelete("t1", "nobody")) == 1
    assert_thread_gone(client, saver)

    checkpointed(store)
    asyncio.run(store.history("t1").aclear())
    assert_thread_gone(client, saver)


def test_a_thread_without_messages_is_deleted_too(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    agent, saver, _messages = checkpointed(store)
    agent.update_state(THREAD, {"messages": [RemoveMessage(id="__remove_all__")]})
    assert client.exists(KEY) == 0 and store.history("t1").count() == 0
    assert list(store.sessions()) == []  # no conversation: not a session to list
    assert store.delete("t1") == 1  # but its checkpoints are deleted
    assert_thread_gone(client, saver)


def test_a_plain_history_is_deleted_as_before(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    store.history("p").add_user_message("hi")
    assert store.delete("p") == 1
    assert set(keys_of(client, "message_store:p")) <= {writers_key_of("message_store:p").encode()}
    assert store.delete("p") == 0


def test_cluster_rm_deletes_the_thread_in_its_slot(cluster: Cluster, cluster_url: str) -> None:
    client = cluster.client()
    store = RedisChatStore(cluster_url)
    agent, saver, _messages = checkpointed(store)
    assert len(keys_of(client, KEY)) >= 4
    assert json.loads(cli("--url", cluster_url, "sessions", "--json").stdout) == ["t1"]
    removed = cli("--url", cluster_url, "rm", "t1")
    assert removed.returncode == 0, removed.stderr
    assert_thread_gone(client, saver)
    again = agent.invoke({"messages": [HumanMessage("hello again")]}, THREAD)
    assert store.history("t1").messages == again["messages"] and len(again["messages"]) == 2
    checkpointed(store)
    store.history("t1").clear()
    assert_thread_gone(client, saver)


def test_a_user_without_the_index_commands_is_refused_and_nothing_is_deleted(
    redis7: RedisProcess,
) -> None:
    from tests.test_security import HISTORY_COMMANDS, PASSWORD, STORE_COMMANDS, set_user

    admin = redis7.client()
    admin.flushall()
    store = RedisChatStore(redis7.url)
    checkpointed(store)
    before = keys_of(admin, KEY)
    set_user(admin, f"{HISTORY_COMMANDS} {STORE_COMMANDS}")  # the history's list only
    try:
        restricted = RedisChatStore(f"redis://chat:{PASSWORD}@127.0.0.1:{redis7.port}/0")
        with pytest.raises(PermissionDeniedError, match="ZRANGEBYLEX"):
            restricted.delete("t1")
        assert keys_of(admin, KEY).keys() == before.keys()
        restricted.history("plain").add_user_message("still written by scripts")
        assert admin.hlen(writers_key_of("message_store:plain")) > 0  # not switched to plain
        set_user(admin, f"{HISTORY_COMMANDS} {STORE_COMMANDS} zrangebylex")
        assert restricted.delete("t1", "plain") == 2
        assert set(keys_of(admin, KEY)) <= {writers_key_of(KEY).encode()}
    finally:
        admin.execute_command("ACL", "DELUSER", "chat")
        admin.close()


def thread_ttls(client: Any) -> list[int]:
    """The TTL of every key of thread t1 (list, data, index, archived segments)."""
    return [
        ttl for name, ttl in keys_of(client, KEY).items() if name != writers_key_of(KEY).encode()
    ]


def test_ttl_and_persist_apply_to_every_key_of_a_thread(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    agent, saver, messages = checkpointed(store)
    assert len(thread_ttls(client)) >= 4 and set(thread_ttls(client)) == {-1}
    expired = cli("--url", redis_url, "ttl", "t1", "300", "--json")
    assert expired.returncode == 0, expired.stderr
    assert 290 < json.loads(expired.stdout)["expires_in"] <= 300
    assert all(290 < ttl <= 300 for ttl in thread_ttls(client))  # they expire together
    assert store.history("t1").persist() is True
    assert set(thread_ttls(client)) == {-1}
    assert store.history("t1").persist() is False  # nothing left to change
    assert asyncio.run(store.history("t1").aexpire(120)) is True
    assert all(110 < ttl <= 120 for ttl in thread_ttls(client))
    assert agent.get_state(THREAD).values["messages"] == messages  # the thread is intact
    for name in keys_of(client, KEY):
        client.pexpire(name, 1)  # as if the TTL passed: all of them go at once
    wait_until(lambda: thread_ttls(client) == [], 10, "the thread's keys to expire")
    assert saver.get_tuple(THREAD) is None  # a new, empty thread, not a broken one


def test_cluster_ttl_applies_to_every_key_of_a_thread(cluster: Cluster, cluster_url: str) -> None:
    client = cluster.client()
    store = RedisChatStore(cluster_url)
    checkpointed(store)
    assert cli("--url", cluster_url, "ttl", "t1", "300").returncode == 0
    ttls = thread_ttls(client)
    assert len(ttls) >= 4 and all(290 < ttl <= 300 for ttl in ttls)
    assert cli("--url", cluster_url, "ttl", "t1", "--persist").returncode == 0
    assert set(thread_ttls(client)) == {-1}
