"""Refusals that are not outages, on real servers: OOM, READONLY, NOREPLICAS, and the eviction
warning.

A refused write raises its own error (or is retried, READONLY) and never switches the url to
plain (non-exactly-once) writes: once the server accepts writes again, the next write goes
through the write script. That is proved three ways, each observable on the server or the
provider: the provider's plain flag is off, the server counted an EVALSHA/EVAL for the
write, and the writers key (the script's bookkeeping, which the plain commands never touch)
was written again after the test deleted it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langchain_core.messages import HumanMessage

from redis_chat_history import (
    NotEnoughReplicasError,
    OutOfMemoryError,
    RedisChatMessageHistory,
    RedisUnavailableError,
    RetryPolicy,
)
from redis_chat_history.operations import writers_key
from redis_chat_history.refusals import refuses_scripts, unwrap
from redis_chat_history.transport import typed_error
from tests.proxy import ReplyDroppingProxy
from tests.servers import Binary, RedisProcess, wait_until

FILLER = b"x" * 50_000
SMALL = b"x" * 10


@pytest.fixture
def server(server_binary: Binary) -> Iterator[RedisProcess]:
    """A server of its own per test (its config is changed), on each binary of the matrix."""
    process = RedisProcess(server_binary).start()
    yield process
    process.stop()


def contents(history: RedisChatMessageHistory) -> list[str]:
    return [str(message.content) for message in history.messages]


def script_calls(admin: redis.Redis) -> int:
    """EVALSHA and EVAL requests the server received (run, failed or rejected)."""
    stats: dict[str, Any] = admin.info("commandstats")
    total = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        entry = stats.get(name, {})
        total += int(entry.get("calls", 0)) + int(entry.get("rejected_calls", 0))
    return total


def write(history: RedisChatMessageHistory, text: str, mode: str) -> None:
    if mode == "sync":
        history.add_user_message(text)
    else:
        asyncio.run(history.aadd_messages([HumanMessage(text)]))


def assert_next_write_is_scripted(
    history: RedisChatMessageHistory, admin: redis.Redis, text: str, mode: str
) -> None:
    """The write of ``text`` ran as the write script: counted EVALSHA/EVAL, bookkeeping."""
    provider = history._provider
    assert not provider.plain_now() and provider.plain_until == 0
    companion = writers_key(history.key)
    admin.delete(companion)
    before = script_calls(admin)
    write(history, text, mode)
    assert script_calls(admin) - before >= 1  # the plain twin sends LPUSH, LTRIM, EXPIRE
    assert admin.exists(companion) == 1  # only the script writes it
    assert not provider.plain_now()


def fill_until_refused(admin: redis.Redis) -> int:
    """SET keys (no expiry) until the server refuses even a small one with OOM (a refused
    large value frees its query buffer, leaving room for small writes); returns how many fit.
    """
    value = FILLER
    for index in range(20_000):
        try:
            admin.set(f"filler:{index}", value)
        except redis.exceptions.OutOfMemoryError:
            if value is SMALL:
                return index
            value = SMALL
    raise AssertionError("the server never refused a write: maxmemory not reached")


# -- 1. transient OOM ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_oom_raises_its_error_and_the_next_write_after_memory_is_freed_is_scripted(
    server: RedisProcess, mode: str
) -> None:
    admin = server.client()
    history = RedisChatMessageHistory("oom", url=server.url)
    write(history, "before", mode)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", used + 2_000_000)
    try:
        assert fill_until_refused(admin) > 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            admin.set("probe", SMALL)  # still refused: the server is at its limit
        before = script_calls(admin)
        with pytest.raises(OutOfMemoryError, match=r"out of memory.*'message_store:oom'"):
            write(history, "refused", mode)
        assert script_calls(admin) - before == 1  # sent once, as the script, not retried
        assert not history._provider.plain_now()  # still exactly-once writes
        assert contents(history) == ["before"]
        admin.config_set("maxmemory", 0)  # memory is free again
        assert_next_write_is_scripted(history, admin, "after", mode)
        assert contents(history) == ["before", "after"]
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()


# -- 3. NOREPLICAS -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_noreplicas_raises_its_error_and_the_next_write_is_scripted(
    server: RedisProcess, mode: str
) -> None:
    admin = server.client()
    history = RedisChatMessageHistory("quorum", url=server.url)
    write(history, "before", mode)
    admin.config_set("min-replicas-max-lag", 10)
    admin.config_set("min-replicas-to-write", 1)  # and no replica at all
    try:
        before = script_calls(admin)
        with pytest.raises(NotEnoughReplicasError, match=r"min-replicas-to-write.*'message_store"):
            write(history, "refused", mode)
        assert script_calls(admin) - before == 1
        assert not history._provider.plain_now()
        assert contents(history) == ["before"]
        admin.config_set("min-replicas-to-write", 0)
        assert_next_write_is_scripted(history, admin, "after", mode)
        assert contents(history) == ["before", "after"]
    finally:
        admin.config_set("min-replicas-to-write", 0)
        admin.close()


# -- 2. READONLY: a failover behind one endpoint -----------------------------------------
class Failover:
    """Two servers behind one proxy: ``old`` is master, ``new`` its replica; :meth:`swap`
    makes ``new`` the master and ``old`` its replica while the proxy still points at ``old``."""

    def __init__(self, binary: Binary) -> None:
        quick = {"repl-diskless-sync-delay": "0"}  # Redis 7 waits 5 s for more replicas
        self.old = RedisProcess(binary, options=quick, name="old").start()
        self.new = RedisProcess(binary, options=quick, name="new").start()
        self.old_admin = self.old.client()
        self.new_admin = self.new.client()
        self.new_admin.replicaof("127.0.0.1", self.old.port)
        self.wait_linked(self.new_admin)
        self.proxy = ReplyDroppingProxy(self.old.port)

    @staticmethod
    def wait_linked(replica: redis.Redis) -> None:
        wait_until(
            lambda: replica.info("replication").get("master_link_status") == "up",
            20,
            "the replica's link to its master",
        )

    def swap(self) -> None:
        # WAIT would count only this admin connection's writes: compare replication offsets,
        # so that every write the master acknowledged (any connection's) is on the replica
        target = self.old_admin.info("replication")["master_repl_offset"]
        wait_until(
            lambda: self.new_admin.info("replication").get("slave_repl_offset", -1) >= target,
            20,
            "the replica to catch up",
        )
        self.new_admin.replicaof("NO", "ONE")
        self.old_admin.replicaof("127.0.0.1", self.new.port)
        self.wait_linked(self.old_admin)
        self.swapped_at = script_calls(self.old_admin)

    def stale_sends(self) -> int:
        """Script requests ``old`` received since :meth:`swap` (each answered READONLY)."""
        return script_calls(self.old_admin) - self.swapped_at

    def close(self) -> None:
        self.proxy.close()
        self.old_admin.close()
        self.new_admin.close()
        self.old.stop()
        self.new.stop()


@pytest.fixture
def failover(server_binary: Binary) -> Iterator[Failover]:
    pair = Failover(server_binary)
    yield pair
    pair.close()


def test_readonly_is_retried_with_scripts_and_raised_while_the_endpoint_stays_a_replica(
    failover: Failover,
) -> None:
    history = RedisChatMessageHistory(
        "failover", url=failover.proxy.url, retry=RetryPolicy(attempts=3, backoff_cap=0.05)
    )
    history.add_user_message("before")
    failover.swap()
    with pytest.raises(RedisUnavailableError, match="read only replica") as raised:
        history.add_user_message("refused")
    assert type(raised.value) is RedisUnavailableError
    assert "'message_store:failover'" in str(raised.value)
    # every try (the first and 3 re-sends) went to the endpoint as the script
    assert failover.stale_sends() == 4
    assert not history._provider.plain_now()
    failover.proxy.upstream_port = failover.new.port  # the endpoint follows the failover
    assert_next_write_is_scripted(history, failover.new_admin, "after", "sync")
    assert contents(history) == ["before", "after"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_readonly_write_is_stored_once_when_the_endpoint_moves_to_the_new_master(
    failover: Failover, mode: str
) -> None:
    history = RedisChatMessageHistory(
        "failover",
        url=failover.proxy.url,
        retry=RetryPolicy(attempts=40, backoff_base=0.02, backoff_cap=0.1),
    )
    write(history, "before", mode)
    failover.swap()
    moved = threading.Event()

    def move_endpoint_after_a_refusal() -> None:
        wait_until(lambda: failover.stale_sends() >= 1, 20, "a send to the stale master")
        failover.proxy.upstream_port = failover.new.port
        moved.set()

    mover = threading.Thread(target=move_endpoint_after_a_refusal, daemon=True)
    mover.start()
    write(history, "during", mode)  # refused by the stale master, then re-sent to the new one
    mover.join(10)
    assert moved.is_set() and failover.stale_sends() >= 1
    assert not history._provider.plain_now()
    assert contents(history) == ["before", "during"]
    assert failover.new_admin.hlen(writers_key(history.key)) >= 1  # the script recorded it
    assert_next_write_is_scripted(history, failover.new_admin, "after", mode)
    assert contents(history) == ["before", "during", "after"]
    # the demoted master follows: nothing was applied on it twice either
    wait_until(
        lambda: (
            failover.old_admin.lrange(history.key, 0, -1)
            == failover.new_admin.lrange(history.key, 0, -1)
        ),
        20,
        "the demoted master to replicate the history",
    )


# -- 6. the eviction warning ---------------------------------------------------------------
def eviction_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]


@pytest.mark.parametrize(
    ("policy", "maxmemory", "gives_up"),
    [
        ("allkeys-lru", "100mb", "stored messages and whole histories"),
        ("allkeys-random", "100mb", "stored messages and whole histories"),
        ("volatile-ttl", "100mb", "is stored twice"),
        ("volatile-lru", "100mb", "is stored twice"),
        ("noeviction", "100mb", None),
        ("allkeys-lru", "0", None),  # no maxmemory: nothing is ever evicted
        ("volatile-lfu", "0", None),
    ],
)
def test_one_eviction_warning_per_url_at_first_use(
    server_binary: Binary,
    caplog: pytest.LogCaptureFixture,
    policy: str,
    maxmemory: str,
    gives_up: str | None,
) -> None:
    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    options = {"maxmemory": maxmemory, "maxmemory-policy": policy}
    process = RedisProcess(server_binary, options=options).start()
    try:
        base = f"redis://127.0.0.1:{process.port}"
        first = RedisChatMessageHistory("a", url=f"{base}/0")
        again = RedisChatMessageHistory("b", url=f"{base}/0")
        assert eviction_warnings(caplog) == []  # building a history does no I/O
        first.add_user_message("one")
        shown = eviction_warnings(caplog)
        assert len(shown) == (1 if gives_up else 0)  # at first use
        again.add_user_message("two")
        first.count()
        asyncio.run(again.aadd_messages([HumanMessage("three")]))
        assert eviction_warnings(caplog) == shown  # never again for that url
        RedisChatMessageHistory("c", url=f"{base}/1").count()  # another url: its own warning
        shown = eviction_warnings(caplog)
        assert len(shown) == (2 if gives_up else 0)
        for text in shown:
            assert f"127.0.0.1:{process.port} has maxmemory-policy {policy}" in text
            assert gives_up is not None and gives_up in text and "noeviction" in text
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("reply", "typed"),
    [  # what Redis 6.2 replies when the script passes on a redis.pcall error (seen above)
        ("@user_script: 42: -OOM command not allowed when used memory > 'maxmemory'.", "OOM"),
        ("@user_script: 42: -READONLY You can't write against a read only replica.", "READONLY"),
        ("@user_script: 42: -NOREPLICAS Not enough good replicas to write.", "NOREPLICAS"),
    ],
)
def test_a_redis_6_script_error_is_typed_as_its_bare_reply(reply: str, typed: str) -> None:
    bare = reply.partition("-")[2]
    assert type(unwrap(redis.exceptions.ResponseError(reply))) is type(typed_error(bare))
    assert str(unwrap(redis.exceptions.ResponseError(reply))) == str(typed_error(bare))
    assert not refuses_scripts(unwrap(redis.exceptions.ResponseError(reply)))
    assert typed in bare
