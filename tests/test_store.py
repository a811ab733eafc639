"""The store: glob-safe session listing over SCAN, deletion, stats, and editing one history.

Every test runs on a standalone server and on the 6-node cluster.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables.history import RunnableWithMessageHistory

from redis_chat_history import RedisChatMessageHistory, RedisChatStore
from redis_chat_history.operations import is_companion_key
from redis_chat_history.store import glob_escape
from redis_chat_history.writers import EXPIRY_SPREAD, lifetime_of

GLOB_IDS = ["a*", "a?", "[x]", "a\\b", "a[bc]d", "*", "?"]
SIBLINGS = ["ab", "abc", "x", "a\\\\b", "abd", "acd", "a", "b"]


@pytest.fixture(params=["standalone", "valkey", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "standalone":
        return str(request.getfixturevalue("redis7").url)
    if request.param == "valkey":
        return str(request.getfixturevalue("valkey").url)
    return str(request.getfixturevalue("cluster_url"))


def fill(store: RedisChatStore, *session_ids: str) -> None:
    for session_id in session_ids:
        store.history(session_id).add_messages([HumanMessage(f"hi {session_id}")])


def test_history_shares_the_store_and_its_settings(url: str) -> None:
    store = RedisChatStore(url=url, ttl=120, max_messages=3)
    history = store.history("s1")
    assert history._provider is store._provider and store.history("s2")._provider is store._provider
    history.add_messages([HumanMessage(str(i)) for i in range(5)])
    assert [m.content for m in history.messages] == ["2", "3", "4"]
    assert 0 < (history.expires_in() or 0) <= 120
    assert history.key == "message_store:s1" and history.ttl == 120
    assert "s1" in repr(history) and url.split("@")[-1].split("/")[2] in store.display


def test_sessions_match_glob_characters_literally(url: str) -> None:
    store = RedisChatStore(url=url)
    fill(store, *GLOB_IDS, *SIBLINGS)
    assert sorted(store.sessions()) == sorted(GLOB_IDS + SIBLINGS)
    assert store.count_sessions() == len(GLOB_IDS + SIBLINGS)
    for session_id in GLOB_IDS:
        expected = sorted(s for s in GLOB_IDS + SIBLINGS if s.startswith(session_id))
        assert sorted(store.sessions(match=session_id)) == expected, session_id
    assert sorted(store.sessions(match="a")) == sorted(
        s for s in GLOB_IDS + SIBLINGS if s.startswith("a")
    )
    assert list(store.sessions(match="nothing")) == []


def test_key_prefix_with_glob_characters_does_not_widen(url: str) -> None:
    starred = RedisChatStore(url=url, key_prefix="chat*:")
    plain = RedisChatStore(url=url, key_prefix="chatX:")
    fill(starred, "one")
    fill(plain, "two")
    assert list(starred.sessions()) == ["one"]
    assert list(plain.sessions()) == ["two"]


def test_companion_keys_and_other_types_are_not_sessions(
    url: str, request: pytest.FixtureRequest
) -> None:
    store = RedisChatStore(url=url)
    fill(store, "real")  # writes also leave a write-token key under the prefix
    store.history("real").add_user_message("again")
    raw = store._provider.sync()
    raw.set("message_store:a-string", "not a list")
    assert list(store.sessions()) == ["real"]
    assert store.stats().sessions == 1


def test_sessions_over_many_scan_pages(url: str) -> None:
    store = RedisChatStore(url=url, key_prefix="many:")
    client = store._provider.sync()
    pipe = client.pipeline(transaction=False)
    for i in range(2500):
        pipe.lpush(f"many:s{i}", b'{"type":"human","data":{"content":"x"}}')
    pipe.execute()
    ids = list(store.sessions())
    assert len(ids) == len(set(ids)) == 2500
    assert store.count_sessions(match="s1") == 1 + 10 + 100 + 1000


def test_delete_sessions(url: str) -> None:
    store = RedisChatStore(url=url)
    fill(store, "a*", "ab", "keep")
    assert store.delete("a*", "missing") == 1
    assert sorted(store.sessions()) == ["ab", "keep"]
    assert store.delete("ab", "keep") == 2
    assert list(store.sessions()) == []
    client = store._provider.sync()
    # What stays is each history's writers key, so that a re-sent delete is recognised;
    # it expires once no re-send can arrive any more.
    policy = store._provider.policy
    lifetime = lifetime_of(policy.window_seconds, policy.send_seconds)
    for raw in client.scan_iter("message_store:*"):
        assert is_companion_key(raw.decode()), raw
        assert 0 < client.ttl(raw) <= lifetime + EXPIRY_SPREAD + 1


def test_stats(url: str) -> None:
    store = RedisChatStore(url=url)
    fill(store, "a", "b")
    store.history("a").add_messages([AIMessage("x" * 1000)])
    stats = store.stats()
    assert (stats.sessions, stats.messages) == (2, 3)
    assert stats.memory_bytes is not None and stats.memory_bytes > 1000
    assert store.stats(match="a").messages == 2
    assert asyncio.run(store.astats()) == stats  # memory too, read the same way
    many = RedisChatStore(url=url, key_prefix="many:")
    for i in range(1500):  # several SCAN steps, each step's sizes in one round trip
        many.history(f"s{i}").add_messages([HumanMessage("hi")] * (i % 3 + 1))
    counted = many.stats()
    assert (counted.sessions, counted.messages) == (1500, 3000)
    assert asyncio.run(many.astats()).messages == 3000


def test_async_twins(url: str) -> None:
    store = RedisChatStore(url=url)

    async def scenario() -> tuple[list[str], int, int, list[str]]:
        for session_id in ("x*", "xy", "z"):
            await store.history(session_id).aadd_messages([HumanMessage("hi")])
        listed = sorted([s async for s in store.asessions(match="x")])
        count = await store.acount_sessions()
        deleted = await store.adelete("x*", "nope")
        left = sorted([s async for s in store.asessions()])
        return listed, count, deleted, left

    assert asyncio.run(scenario()) == (["x*", "xy"], 3, 1, ["xy", "z"])


def test_runnable_with_message_history_uses_store_history(url: str) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    store = RedisChatStore(url=url)
    model = GenericFakeChatModel(messages=iter([AIMessage("hello"), AIMessage("again")]))
    chain = RunnableWithMessageHistory(model, store.history)
    config = {"configurable": {"session_id": "rw"}}
    chain.invoke("hi", config=config)
    chain.invoke("hi again", config=config)
    assert [m.content for m in store.history("rw").messages] == ["hi", "hello", "hi again", "again"]


# -- editing one history ----------------------------------------------------------
def test_delete_last_returns_removed_oldest_first(url: str) -> None:
    history = RedisChatStore(url=url).history("edit")
    history.add_messages([HumanMessage("q1"), AIMessage("a1"), HumanMessage("q2"), AIMessage("a2")])
    assert [m.content for m in history.delete_last()] == ["a2"]
    assert [m.content for m in history.delete_last(2)] == ["a1", "q2"]
    assert [m.content for m in history.delete_last(5)] == ["q1"]
    assert history.delete_last() == [] and history.messages == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        history.delete_last(-1)

    async def undo() -> list[BaseMessage]:
        await history.aadd_messages([HumanMessage("x"), AIMessage("y")])
        return await history.adelete_last()

    assert [m.content for m in asyncio.run(undo())] == ["y"]
    assert [m.content for m in history.messages] == ["x"]


def test_replace_is_atomic_for_readers(url: str) -> None:
    history = RedisChatStore(url=url).history("summary")
    old = [HumanMessage(f"old {i}") for i in range(30)]
    new = [AIMessage("summary of 30 messages"), HumanMessage("next")]
    history.add_messages(old)
    seen: set[tuple[str, ...]] = set()
    stop = threading.Event()

    def read() -> None:
        reader = RedisChatStore(url=url).history("summary")
        while not stop.is_set():
            seen.add(tuple(str(m.content) for m in reader.messages))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(150):
            history.replace_messages(new)
            history.replace_messages(old)
    finally:
        stop.set()
        thread.join()
    allowed = {tuple(str(m.content) for m in old), tuple(str(m.content) for m in new)}
    assert seen <= allowed and len(seen) >= 1


def test_replace_keeps_ttl_and_async_twin(url: str) -> None:
    store = RedisChatStore(url=url)
    history = store.history("r")
    history.add_user_message("a")
    history.expire(500)
    history.replace_messages([HumanMessage("b")])
    assert 490 < (history.expires_in() or 0) <= 500
    asyncio.run(history.areplace_messages([HumanMessage("c"), HumanMessage("d")]))
    assert [m.content for m in history.messages] == ["c", "d"]
    history.replace_messages([])
    assert history.messages == [] and history.count() == 0


def test_expire_persist_expires_in(url: str) -> None:
    store = RedisChatStore(url=url, ttl=50)
    history = store.history("t")
    assert history.expires_in() is None and history.expire(10) is False  # no history yet
    history.add_user_message("a")
    assert history.ttl == 50 and 45 < (history.expires_in() or 0) <= 50
    assert history.expire(1000) is True and 990 < (history.expires_in() or 0) <= 1000
    assert history.persist() is True and history.expires_in() is None
    assert history.persist() is False

    async def twins() -> tuple[bool, float | None, bool]:
        expired = await history.aexpire(30)
        remaining = await history.aexpires_in()
        persisted = await history.apersist()
        return expired, remaining, persisted

    expired, remaining, persisted = asyncio.run(twins())
    assert expired and remaining is not None and 25 < remaining <= 30 and persisted
    # 0 means never, as ttl=0 does: expire(0) is persist(), never a delete.
    assert history.expire(100) is True and history.expire(0) is True
    assert history.expires_in() is None and history.count() == 1
    assert history.expire(0) is False and history.count() == 1  # had no expiry: kept as it is
    assert asyncio.run(history.aexpire(0)) is False and history.count() == 1
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        history.expire(-1)
    with pytest.raises(TypeError, match="seconds must be an int"):
        history.expire(1.5)  # type: ignore[arg-type]


def test_glob_escape() -> None:
    assert glob_escape("a*b?[c]\\d") == "a\\*b\\?\\[c\\]\\\\d"


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="key_prefix"):
        RedisChatStore(url="redis://127.0.0.1:1/0", key_prefix=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        RedisChatStore(url="redis://127.0.0.1:1/0", ttl=-1)
    store = RedisChatStore(url="redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="session_id"):
        store.history("")
    with pytest.raises(TypeError, match="session_id"):
        store.delete(5)  # type: ignore[arg-type]
    assert isinstance(RedisChatMessageHistory, type)
