"""The writers' bookkeeping on real servers: fork-safe ids, a window per writer, O(1) per
write, nothing written by a write that changes nothing, companion keys that go with the window.

Each test here failed on the code before the writers hash (string bookkeeping rebuilt per
write, one TTL for every writer, writer ids reset only by Python's fork hooks).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections import Counter
from typing import Any

import pytest

from redis_chat_history import RedisChatMessageHistory, RetryPolicy
from redis_chat_history.operations import WRITES, append_plan, writers_key
from redis_chat_history.writers import EXPIRY_SPREAD, WriterToken, lifetime_of
from tests.proxy import ReplyDroppingProxy
from tests.servers import RedisProcess, wait_until


def contents(history: RedisChatMessageHistory) -> list[str]:
    return [str(message.content) for message in history.messages]


def _raw_fork() -> int:
    """fork() through libc: Python's os.register_at_fork hooks do not run (as in uWSGI)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pid: int = libc.fork()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "fork failed")
    return pid


def test_processes_cloned_without_fork_hooks_never_share_a_writer(redis_url: str) -> None:
    """Parent and 3 raw-forked children append concurrently: 0 dropped, 0 doubled."""
    history = RedisChatMessageHistory("forked", url=redis_url)
    history.add_user_message("parent-before")  # the parent's writers exist before the fork
    children, per_process = 3, 60
    pids = []
    for index in range(children):
        pid = _raw_fork()
        if pid == 0:  # the child: write, then leave without running the parent's cleanup
            code = 1
            try:
                child = RedisChatMessageHistory("forked", url=redis_url)
                for i in range(per_process):
                    child.add_user_message(f"c{index}-{i}")
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for i in range(per_process):
        history.add_user_message(f"p-{i}")
    deadline = time.monotonic() + 60
    for pid in pids:
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            assert time.monotonic() < deadline, "a forked child did not finish"
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(done[1]) == 0
    stored = contents(history)
    expected = ["parent-before"] + [f"p-{i}" for i in range(per_process)]
    expected += [f"c{c}-{i}" for c in range(children) for i in range(per_process)]
    assert [text for text, n in Counter(stored).items() if n > 1] == []
    assert sorted(stored) == sorted(expected)


def test_a_long_window_survives_a_short_window_writer(redis7: RedisProcess) -> None:
    """Writer A (170 s window) loses a reply; B (2 s window) writes; A's late re-send: once."""
    client = redis7.client()
    proxy = ReplyDroppingProxy(redis7.port)
    try:
        for write in WRITES.values():
            client.script_load(write.script.source)
        slow = RetryPolicy(attempts=5, socket_timeout=5, backoff_base=0.01, connect_timeout=5)
        assert slow.window_seconds > 150
        a = RedisChatMessageHistory("windows", url=proxy.url, retry=slow)
        fast = RetryPolicy(attempts=0, socket_timeout=0.1, connect_timeout=0.1, backoff_cap=0)
        assert fast.window_seconds <= 2
        b = RedisChatMessageHistory("windows", url=redis7.url, retry=fast)
        a.count()
        proxy.drop_next_reply(hold=True)
        outcome: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: outcome.update(v=a.add_user_message("a")))
        thread.start()
        wait_until(lambda: proxy.held >= 1, 20, "A's re-send to be held")
        b.add_user_message("b")  # B writes after A: the companion key's expiry is B's turn
        key = writers_key(a.key)
        started = time.monotonic()
        wait_until(lambda: time.monotonic() - started > 3, 5, "B's window to pass")
        assert client.ttl(key) > 150  # B did not shorten it
        proxy.release()
        thread.join(60)
        assert not thread.is_alive() and outcome == {"v": None}
        assert sorted(contents(b)) == ["a", "b"]
    finally:
        proxy.close()
        client.close()


def test_bookkeeping_is_one_field_per_writer_and_stale_entries_are_dropped(
    redis_url: str,
) -> None:
    """1,000 writers: one hash field each, each write touches one; expired ones are sampled away."""
    history = RedisChatMessageHistory("burst", url=redis_url)
    client = history._provider.sync()
    plan = append_plan(history.key, [b'{"type":"human","data":{"content":"x"}}'], ttl=None,
                       max_messages=None)  # fmt: skip
    request = plan.commands[0].as_eval()
    for writer in range(1000):
        client.execute_command(*WriterToken(f"feed{writer:06x}", 1, 1).fill(request, 5))
    key = writers_key(history.key)
    assert client.type(key) == b"hash" and client.hlen(key) == 1001  # + the expiry field
    assert client.hget(key, "feed0003e7").startswith(b"1,")  # "<sequence>,<expiry>,<result>"
    # a long-window writer keeps the key alive past the 1 s windows of the others
    client.execute_command(*WriterToken("long", 1, 100).fill(request, 5))
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > 3.5, 5, "the short windows to pass")
    for writer in range(300):  # new writers each sample two entries and drop expired ones
        client.execute_command(*WriterToken(f"next{writer:06x}", 1, 1).fill(request, 5))
    assert client.hlen(key) < 1001 + 300 - 300  # more dropped than added
    assert client.hget(key, "long") is not None  # a live window is never dropped
    assert 95 < client.ttl(key) <= 101
    assert history.count() == 1301


@pytest.mark.parametrize("write", ["delete", "expire", "persist", "delete_last", "replace"])
def test_a_write_that_changes_nothing_writes_nothing(redis_url: str, write: str) -> None:
    history = RedisChatMessageHistory("nothing", url=redis_url)
    client = history._provider.sync()
    calls: dict[str, Any] = {
        "delete": history.clear,
        "expire": lambda: history.expire(60),
        "persist": history.persist,
        "delete_last": history.delete_last,
        "replace": lambda: history.replace_messages([]),
    }
    client.flushdb()
    calls[write]()
    assert client.keys("*") == []  # no companion key for nothing
    history.add_user_message("x")
    history.persist()
    if write != "persist":  # a history without expiry: persist changes nothing
        client.delete(writers_key(history.key))
        assert history.persist() is False and client.keys("*") == [history.key.encode()]


def test_a_resent_delete_that_deleted_is_recognised_and_a_noop_resend_is_recorded(
    redis_url: str,
) -> None:
    history = RedisChatMessageHistory("resent", url=redis_url)
    client = history._provider.sync()
    history.add_user_message("a")
    plan = WRITES["delete"].sample(history.key)
    request = plan.commands[0].as_eval()
    at = plan.commands[0].writer_at  # after the keys the script names
    assert at is not None
    token = WriterToken("feedbeef00", 9, 300)
    assert client.execute_command(*token.fill(request, at)) == [1, 1]  # deleted, recorded
    history.add_user_message("later")
    assert client.execute_command(*token.fill(request, at)) == [0, b"1"]  # recognised
    assert contents(history) == ["later"]
    # a delete of nothing sent a second time (an earlier copy may still arrive) is recorded
    noop = WriterToken("feedbeef01", 1, 300)
    empty = WRITES["delete"].sample(history.key + "x").commands[0].as_eval()
    assert client.execute_command(*noop.fill(empty, at)) == [2, b"0"]
    assert client.exists(writers_key(history.key + "x")) == 0
    assert client.execute_command(*noop.fill(empty, at)) == [2, b"0"]
    assert client.hget(writers_key(history.key + "x"), "feedbeef01") is not None
    client.rpush(history.key + "x", b"{}")  # written after: the late first copy is recognised
    first_copy = WriterToken("feedbeef01", 1, 300)
    assert client.execute_command(*first_copy.fill(empty, at)) == [0, b"0"]
    assert client.llen(history.key + "x") == 1


def test_companion_keys_expire_with_the_longest_window(redis_url: str) -> None:
    history = RedisChatMessageHistory("window", url=redis_url, retry=RetryPolicy(attempts=0))
    client = history._provider.sync()
    history.add_user_message("x")
    policy = RetryPolicy(attempts=0)
    # the window, and half a window more for the writer's next writes (writers.py)
    lifetime = lifetime_of(policy.window_seconds, policy.send_seconds)
    assert (
        policy.window_seconds < client.ttl(writers_key(history.key)) <= lifetime + EXPIRY_SPREAD + 1
    )


# -- chained writes (writers.py): a writer's next writes expect its previous entry ----------
def _entry(
    client: Any, history: RedisChatMessageHistory, writer: bytes | None = None
) -> tuple[str, ...]:
    """A writer's entry in ``history``'s writers hash (the only one when ``writer`` is
    None), split: sequence, expiry, result."""
    entries = {
        field: value
        for field, value in client.hgetall(writers_key(history.key)).items()
        if field != b"~" and writer in (None, field)
    }
    assert len(entries) == 1, entries
    return tuple(next(iter(entries.values())).decode().split(","))


def test_a_chained_write_whose_reply_is_lost_is_applied_once(redis7: RedisProcess) -> None:
    """The lost write is chained (it keeps its anchor's expiry); its re-send, sent after 1,000
    other writes, finds its own entry, not the one it expected: recognised, not applied."""
    client = redis7.client()
    proxy = ReplyDroppingProxy(redis7.port)
    try:
        for write in WRITES.values():
            client.script_load(write.script.source)
        retry = RetryPolicy(attempts=3, socket_timeout=20, backoff_base=0.01)
        via_proxy = RedisChatMessageHistory("chained", url=proxy.url, retry=retry)
        direct = RedisChatMessageHistory("chained", url=redis7.url)
        via_proxy.add_user_message("first")  # the anchor: proposes the chain's expiry
        _, anchored, _ = _entry(client, via_proxy)
        (writer,) = (field for field in client.hkeys(writers_key(via_proxy.key)) if field != b"~")
        proxy.drop_next_reply(hold=True)
        outcome: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: outcome.update(v=via_proxy.add_user_message("lost"))
        )
        thread.start()
        wait_until(lambda: proxy.dropped == 1 and proxy.held >= 1, 20, "the re-send to be held")
        sequence, expiry, _ = _entry(client, via_proxy, writer)
        assert expiry == anchored  # the first copy was applied as a chained write
        for i in range(1000):
            direct.add_user_message(f"other-{i}")
        proxy.release()
        thread.join(60)
        assert not thread.is_alive() and outcome == {"v": None}
        assert contents(direct) == ["first", "lost", *[f"other-{i}" for i in range(1000)]]
        assert _entry(client, via_proxy, writer)[:2] == (sequence, expiry)
        via_proxy.add_user_message("next")  # the chain broke (a re-send's entry): full path
        assert contents(direct)[-1] == "next" and direct.count() == 1003
    finally:
        proxy.close()
        client.close()


@pytest.mark.parametrize("skew", [-3600, -3, 4, 3600])
def test_a_skewed_client_clock_writes_once_with_the_server_s_expiry(
    redis_url: str, skew: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proposed expiry below the server's least, or too far above it, is replaced by the
    server's own; the chain then breaks (the next write takes the full path): every write
    lands once, and the writers key never outlives the lifetime by more than the spread."""
    real = time.time
    monkeypatch.setattr("redis_chat_history.writers.time.time", lambda: real() + skew)
    policy = RetryPolicy()
    history = RedisChatMessageHistory(f"skew{skew}", url=redis_url, retry=policy)
    client = history._provider.sync()
    lifetime = lifetime_of(policy.window_seconds, policy.send_seconds)
    server_now = int(client.time()[0])
    for i in range(5):
        history.add_user_message(f"m{i}")
    assert contents(history) == [f"m{i}" for i in range(5)]
    expiry = int(_entry(client, history)[1])
    assert server_now + lifetime <= expiry <= server_now + lifetime + EXPIRY_SPREAD + 2
    assert client.ttl(writers_key(history.key)) <= lifetime + EXPIRY_SPREAD + 2


def test_a_chain_broken_on_the_server_takes_the_full_path(redis_url: str) -> None:
    """The writers key deleted (eviction, FLUSHDB) or the entry rewritten under the chain:
    the next write reads the clock and records again; nothing is lost or doubled."""
    history = RedisChatMessageHistory("broken", url=redis_url)
    client = history._provider.sync()
    history.add_user_message("a")
    history.add_user_message("b")  # chained
    client.delete(writers_key(history.key))
    history.add_user_message("c")
    sequence, expiry, _ = _entry(client, history)
    field = next(f for f in client.hkeys(writers_key(history.key)) if f != b"~")
    client.hset(writers_key(history.key), field, f"{sequence},{expiry},x")  # not as sent
    history.add_user_message("d")
    assert contents(history) == ["a", "b", "c", "d"]
    assert int(_entry(client, history)[0], 16) > int(sequence, 16)
