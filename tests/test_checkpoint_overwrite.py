"""Overwriting a thread's conversation starts a new thread from it.

``history.replace_messages``, ``store.import_(..., overwrite=True)`` (the command line's
``import --overwrite``) and ``copy_to(..., overwrite=True)`` (``copy --overwrite``) onto a
session that is a RedisCheckpointSaver thread delete the thread's companion keys in the
script that replaces the list: the checkpointer adopts the new list as the thread's only
checkpoint, and no older checkpoint reads messages that were not its own. A plain history
is overwritten as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from langchain_core.messages import BaseMessage, HumanMessage, RemoveMessage

from redis_chat_history import PermissionDeniedError, RedisChatStore
from redis_chat_history.checkpoint import RedisCheckpointSaver
from redis_chat_history.slots import writers_key_of
from tests.servers import Cluster, RedisProcess
from tests.test_checkpoint_cli import KEY, THREAD, agent_of, checkpointed, keys_of
from tests.test_cli import cli

NEW = [HumanMessage("IMPORTED 1"), HumanMessage("IMPORTED 2"), HumanMessage("IMPORTED 3")]
NEW_TEXT = [str(message.content) for message in NEW]


def contents(messages: list[BaseMessage]) -> list[str]:
    return [str(message.content) for message in messages]


def companions(client: Any) -> set[bytes]:
    """The thread's companion keys now: every key of t1 but its list, its writers key and
    the outcome markers (strings) an import or copy leaves for its re-sends."""
    names = set(keys_of(client, KEY)) - {KEY.encode(), writers_key_of(KEY).encode()}
    return {name for name in names if client.type(name) != b"string"}


def foreign_store(url: str) -> RedisChatStore:
    """Another prefix on the same server, whose session t1 is a plain history of NEW."""
    source = RedisChatStore(url, key_prefix="foreign:")
    source.history("t1").clear()
    source.history("t1").add_messages(NEW)
    return source


def import_over(store: RedisChatStore, url: str, tmp_path: Path) -> None:
    file = tmp_path / "foreign.jsonl"
    foreign_store(url).export(file, ["t1"])
    assert store.import_(file, overwrite=True).sessions_written == 1


def copy_over(store: RedisChatStore, url: str, _tmp_path: Path) -> None:
    assert foreign_store(url).copy_to(store, ["t1"], overwrite=True).sessions_written == 1


def replace_over(store: RedisChatStore, _url: str, _tmp_path: Path) -> None:
    store.history("t1").replace_messages(NEW)


def areplace_over(store: RedisChatStore, _url: str, _tmp_path: Path) -> None:
    asyncio.run(store.history("t1").areplace_messages(NEW))


OVERWRITES: dict[str, Callable[[RedisChatStore, str, Path], None]] = {
    "replace_messages": replace_over,
    "areplace_messages": areplace_over,
    "import_overwrite": import_over,
    "copy_overwrite": copy_over,
}


def assert_a_new_thread(client: Any, store: RedisChatStore, saver: RedisCheckpointSaver) -> None:
    """Thread t1 now starts from NEW: one adopted checkpoint, and a turn continues it."""
    assert companions(client) == set()  # no data, index or archived segment is left
    agent = agent_of(saver)
    assert contents(agent.get_state(THREAD).values["messages"]) == NEW_TEXT
    states = list(agent.get_state_history(THREAD))
    assert [contents(state.values["messages"]) for state in states] == [NEW_TEXT]
    result = agent.invoke({"messages": [HumanMessage("what next?")]}, THREAD, durability="sync")
    texts = contents(result["messages"])
    assert texts[:4] == [*NEW_TEXT, "what next?"] and len(texts) > 4  # and the model's reply
    assert contents(store.history("t1").messages) == texts
    after = list(agent.get_state_history(THREAD))
    assert len(after) > 1
    assert contents(after[-1].values["messages"]) == NEW_TEXT  # the oldest is the adopted one
    assert all(contents(state.values["messages"])[:3] == NEW_TEXT for state in after)


@pytest.mark.parametrize("overwrite", sorted(OVERWRITES))
def test_overwriting_a_thread_starts_a_new_thread(
    redis_url: str, tmp_path: Path, overwrite: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    _agent, saver, messages = checkpointed(store)
    old = companions(client)
    assert len(old) >= 3 and len(messages) > 3  # data, index, an archived segment
    OVERWRITES[overwrite](store, redis_url, tmp_path)
    assert old & set(keys_of(client, KEY)) == set()
    assert_a_new_thread(client, store, saver)


@pytest.mark.parametrize("overwrite", ["replace_messages", "import_overwrite", "copy_overwrite"])
def test_cluster_overwriting_a_thread_starts_a_new_thread(
    cluster: Cluster, cluster_url: str, tmp_path: Path, overwrite: str
) -> None:
    client = cluster.client()
    store = RedisChatStore(cluster_url)
    store.delete("t1")
    _agent, saver, _messages = checkpointed(store)
    assert len(companions(client)) >= 3
    OVERWRITES[overwrite](store, cluster_url, tmp_path)
    assert_a_new_thread(client, store, saver)


def test_cli_import_and_copy_overwrite_start_a_new_thread(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    _agent, saver, _messages = checkpointed(store)
    file = tmp_path / "foreign.jsonl"
    foreign_store(redis_url).export(file, ["t1"])
    kept = cli("--url", redis_url, "import", str(file))
    assert kept.returncode == 0, kept.stderr
    assert len(companions(client)) >= 3  # without --overwrite the thread is kept, intact
    imported = cli("--url", redis_url, "import", str(file), "--overwrite")
    assert imported.returncode == 0, imported.stderr
    assert_a_new_thread(client, store, saver)

    store.delete("t1")
    checkpointed(store)
    copied = cli(
        "--url", redis_url, "--key-prefix", "foreign:", "copy", "t1",
        "--to", redis_url, "--to-key-prefix", "message_store:", "--overwrite",
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    assert_a_new_thread(client, store, saver)


def test_keeping_or_filling_an_empty_thread(redis_url: str, tmp_path: Path) -> None:
    """Without overwrite a thread with messages is kept; one whose list is empty (a
    removal of every message) is written, and starts a new thread from the import."""
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    agent, saver, messages = checkpointed(store)
    file = tmp_path / "foreign.jsonl"
    foreign_store(redis_url).export(file, ["t1"])
    assert store.import_(file).sessions_written == 0
    assert agent.get_state(THREAD).values["messages"] == messages
    agent.update_state(THREAD, {"messages": [RemoveMessage(id="__remove_all__")]})
    assert store.history("t1").count() == 0 and companions(client)
    assert store.import_(file).sessions_written == 1
    assert_a_new_thread(client, store, saver)


def test_a_plain_history_is_overwritten_as_before(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisChatStore(redis_url)
    history = store.history("t1")
    history.clear()
    history.add_user_message("old")
    history.expire(500)
    history.replace_messages(NEW)
    assert contents(history.messages) == NEW_TEXT
    assert 490 < (history.expires_in() or 0) <= 500  # the expiry is kept
    assert companions(client) == set()
    history.replace_messages([])
    assert client.exists(KEY) == 0
    import_over(store, redis_url, tmp_path)
    assert contents(history.messages) == NEW_TEXT
    copy_over(store, redis_url, tmp_path)
    assert contents(history.messages) == NEW_TEXT
    assert companions(client) == set()  # no thread was made


def test_a_user_without_the_index_commands_is_refused_and_nothing_is_replaced(
    redis7: RedisProcess,
) -> None:
    from tests.test_security import HISTORY_COMMANDS, PASSWORD, STORE_COMMANDS, set_user

    admin = redis7.client()
    admin.flushall()
    store = RedisChatStore(redis7.url)
    agent, _saver, messages = checkpointed(store)
    before = {name: admin.dump(name) for name in keys_of(admin, KEY)}
    set_user(admin, f"{HISTORY_COMMANDS} {STORE_COMMANDS}")
    try:
        restricted = RedisChatStore(f"redis://chat:{PASSWORD}@127.0.0.1:{redis7.port}/0")
        with pytest.raises(PermissionDeniedError, match="ZRANGEBYLEX"):
            restricted.history("t1").replace_messages(NEW)
        after = {name: admin.dump(name) for name in keys_of(admin, KEY)}
        writers = writers_key_of(KEY).encode()
        assert {k: v for k, v in after.items() if k != writers} == {
            k: v for k, v in before.items() if k != writers
        }
        assert agent.get_state(THREAD).values["messages"] == messages
        restricted.history("plain").replace_messages(NEW)  # a plain history: by script
        assert admin.hlen(writers_key_of("message_store:plain")) > 0
        set_user(admin, f"{HISTORY_COMMANDS} {STORE_COMMANDS} zrangebylex")
        restricted.history("t1").replace_messages(NEW)
        assert companions(admin) == set()
    finally:
        admin.execute_command("ACL", "DELUSER", "chat")
        admin.close()
