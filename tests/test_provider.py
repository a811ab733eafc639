"""provider.py: one provider per url and policy, its clients shared, what the first call's INFO
teaches it, and plain writes re-checked after their time. Real servers (tests/servers.py).

The call machine's side of INFO (sent with the first plan, re-sent after a failed probe) is
driven without a server in tests/test_call.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_chat_history import (
    InvalidArgumentError,
    InvalidURLError,
    RedisChatMessageHistory,
    RedisChatStore,
    RetryPolicy,
    close_shared_clients,
)
from redis_chat_history import provider as provider_module
from redis_chat_history.operations import writers_key
from redis_chat_history.provider import PLAIN_RECHECK_SECONDS, ClientProvider, shared_provider
from tests.servers import Cluster, RedisProcess, wait_until

PASSWORD = "pw-Provider-s3cret"
#: What a history's scripts run (as tests/test_security.py's restricted user), INFO left out.
SCRIPT_COMMANDS = (
    "evalsha eval lrange llen lpush ltrim del expire pexpire persist pttl get set time "
    "hmget hset hdel hrandfield"
)
OLD_CLASS_COMMANDS = "lpush lrange expire del"


def named_url(server: RedisProcess, user: str = "", **query: str) -> tuple[str, str]:
    """A url of ``server`` whose connections carry a name of their own; (url, name)."""
    name = f"rch-{uuid.uuid4().hex[:8]}"
    auth = f"{user}:{PASSWORD}@" if user else ""
    options = "".join(f"&{k}={v}" for k, v in query.items())
    return f"redis://{auth}127.0.0.1:{server.port}/0?client_name={name}{options}", name


def connections_named(admin: redis.Redis, name: str) -> int:
    return sum(1 for client in admin.client_list() if client.get("name") == name)


@pytest.fixture
def admin(redis7: RedisProcess) -> Iterator[redis.Redis]:
    client = redis7.client()
    try:
        yield client
    finally:
        client.close()


def set_user(admin: redis.Redis, user: str, commands: str) -> None:
    admin.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{PASSWORD}", "~message_store:*",
        "resetchannels", "-@all", "+client|setname", *(f"+{c}" for c in commands.split()),
    )  # fmt: skip


@contextlib.contextmanager
def acl_user(server: RedisProcess, admin: redis.Redis, commands: str) -> Iterator[tuple[str, str]]:
    """A user allowed ``commands`` only, deleted at the end; (its name, a url of it)."""
    user = f"u{uuid.uuid4().hex[:8]}"
    set_user(admin, user, commands)
    try:
        yield user, named_url(server, user)[0]
    finally:
        admin.execute_command("ACL", "DELUSER", user)


# -- the registry ---------------------------------------------------------------------------
def test_histories_of_one_url_share_one_provider_and_its_connection(
    redis7: RedisProcess, admin: redis.Redis
) -> None:
    url, name = named_url(redis7)
    histories = [RedisChatMessageHistory(f"s{i}", url=url) for i in range(20)]
    histories += [RedisChatStore(url=url).history(f"t{i}") for i in range(5)]
    for history in histories:
        history.add_user_message("hi")
        assert history.count() == 1
    providers = {id(history._provider) for history in histories}
    assert providers == {id(shared_provider(url))}
    assert connections_named(admin, name) == 1  # one pool: calls one after another, one socket


def test_the_registry_is_keyed_by_url_and_policy_never_holding_a_password(
    redis7: RedisProcess,
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis7.port}/0"
    first = shared_provider(url)
    assert shared_provider(url) is first
    assert shared_provider(url, RetryPolicy()) is first  # an equal policy is the same key
    fast = shared_provider(url, RetryPolicy(attempts=0))
    assert fast is not first and fast is shared_provider(url, RetryPolicy(attempts=0))
    assert fast.policy == RetryPolicy(attempts=0)
    assert shared_provider(url.replace("/0", "/1")) is not first  # another url, another pool
    assert all(PASSWORD not in repr(key) for key in provider_module._registry)
    assert PASSWORD not in first.display and first.address == f"127.0.0.1:{redis7.port}"


def test_resolve_turns_the_url_into_the_one_to_connect_to_on_first_use_only(
    redis7: RedisProcess,
) -> None:
    seen: list[str] = []

    def resolve(url: str) -> str:
        seen.append(url)
        return redis7.url

    alias = f"redis://alias-{uuid.uuid4().hex[:6]}:1/0"
    first = shared_provider(alias, resolve=resolve)
    assert shared_provider(alias, resolve=resolve) is first and seen == [alias]
    assert first.address == redis7.address
    history = RedisChatMessageHistory("resolved", url=redis7.url)
    history._provider = first
    history.add_user_message("x")
    assert history.count() == 1


@pytest.mark.parametrize("url", [None, b"redis://h", 6379])
def test_a_url_must_be_a_str(url: Any) -> None:
    with pytest.raises(InvalidURLError, match=f"url must be a str, got {type(url).__name__}"):
        shared_provider(url)


def test_close_shared_clients_closes_the_connections_and_forgets_the_providers(
    redis7: RedisProcess, admin: redis.Redis
) -> None:
    url, name = named_url(redis7)
    before = shared_provider(url)
    RedisChatMessageHistory("closing", url=url).count()
    assert connections_named(admin, name) == 1
    close_shared_clients()
    wait_until(lambda: connections_named(admin, name) == 0, 60, "the pool to be closed")
    assert shared_provider(url) is not before


# -- the clients ----------------------------------------------------------------------------
def test_one_sync_client_and_one_async_client_per_event_loop(redis7: RedisProcess) -> None:
    provider = shared_provider(redis7.url)
    assert provider.sync_if_built() is None
    assert provider.sync() is provider.sync() is provider.sync_if_built()

    async def clients() -> set[int]:
        built = await asyncio.gather(*(provider.async_() for _ in range(50)))
        assert await built[0].ping() is True
        return {id(client) for client in built}

    first, second = asyncio.run(clients()), asyncio.run(clients())
    assert len(first) == 1 and len(second) == 1 and first != second


def test_a_provider_of_given_clients_uses_them_and_names_the_missing_one(
    redis7: RedisProcess,
) -> None:
    client = redis7.client()
    try:
        provider = ClientProvider(None, sync_client=client)
        assert provider.sync() is client and provider.mode == "standalone"
        assert provider.address == provider.display == redis7.address
        assert not provider.unprobed and provider.pool_size is None  # the caller's clients
        history = RedisChatMessageHistory("given", client=client)
        history.add_user_message("mine")
        assert history.count() == 1
        with pytest.raises(InvalidArgumentError, match="built with a sync client only"):
            asyncio.run(history.acount())
    finally:
        client.close()
    with pytest.raises(InvalidArgumentError, match="needs a url, a client or an async_client"):
        ClientProvider(None)


# -- what the first call's INFO teaches -----------------------------------------------------
def _info_refusals(admin: redis.Redis, user: str) -> int:
    return sum(
        int(entry["count"])
        for entry in admin.acl_log()
        if entry["username"] == user and entry["object"] == "info"
    )


def test_info_goes_with_the_first_call_only_and_a_refusal_is_harmless(
    redis7: RedisProcess, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    with acl_user(redis7, admin, SCRIPT_COMMANDS) as (user, url):
        history = RedisChatMessageHistory("probed", url=url, ttl=60)
        provider = history._provider
        assert provider.mode == "auto" and provider.unprobed
        history.add_user_message("one")
        assert provider.mode == "standalone" and not provider.unprobed
        for _ in range(5):
            history.add_user_message("more")
            assert asyncio.run(history.acount()) > 1
        assert _info_refusals(admin, user) == 1  # sent once, with the first call's plan
        assert history.count() == 6 and not caplog.records


def test_an_eviction_policy_that_gives_up_a_guarantee_is_named_once(
    redis7: RedisProcess, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    saved = admin.config_get("maxmemory*")
    admin.config_set("maxmemory", str(1 << 30))
    admin.config_set("maxmemory-policy", "volatile-lru")
    try:
        url, _ = named_url(redis7)
        history = RedisChatMessageHistory("evicted", url=url, ttl=60)
        for _ in range(3):
            history.add_user_message("x")
        asyncio.run(RedisChatMessageHistory("evicted", url=url).acount())
    finally:
        admin.config_set("maxmemory-policy", saved["maxmemory-policy"])
        admin.config_set("maxmemory", saved["maxmemory"])
    warnings = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert len(warnings) == 1
    assert "volatile-lru" in warnings[0] and "stored twice" in warnings[0]
    assert f"127.0.0.1:{redis7.port}" in warnings[0]


def test_a_plain_url_to_a_cluster_node_becomes_a_cluster_client(cluster: Cluster) -> None:
    provider = shared_provider(cluster.plain_url)
    assert provider.mode == "auto"
    histories = [RedisChatMessageHistory(f"node-{i}", url=cluster.plain_url) for i in range(12)]
    for history in histories:  # keys in slots of every master
        history.add_user_message("routed")
    assert provider.is_cluster
    assert [h.count() for h in histories] == [1] * 12
    assert asyncio.run(histories[-1].acount()) == 1
    listed = RedisChatStore(url=cluster.plain_url).sessions()
    assert {f"node-{i}" for i in range(12)} <= set(listed)


# -- plain writes, re-checked ---------------------------------------------------------------
def test_plain_writes_are_rechecked_after_their_time(
    redis7: RedisProcess, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A user without scripts writes plainly; once scripts are allowed, the re-check finds it."""
    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    assert PLAIN_RECHECK_SECONDS == 300.0
    with acl_user(redis7, admin, OLD_CLASS_COMMANDS) as (user, url):
        history = RedisChatMessageHistory("rechecked", url=url, ttl=600)
        provider = history._provider
        provider.plain_recheck_seconds = 1.0  # the 300 s of production, shortened
        history.add_user_message("plain 1")
        assert provider.plain_now()
        set_user(admin, user, SCRIPT_COMMANDS)  # the ACL is fixed
        history.add_user_message("plain 2")  # within the re-check time: plain still
        assert admin.exists(writers_key(history.key)) == 0
        wait_until(lambda: not provider.plain_now(), 60, "the plain time to end")
        history.add_user_message("scripted")
        assert admin.exists(writers_key(history.key)) == 1  # a script wrote its token
        assert [str(m.content) for m in history.messages] == ["plain 1", "plain 2", "scripted"]
        warnings = [r.getMessage() for r in caplog.records if "plain commands" in r.getMessage()]
        assert len(warnings) == 1 and PASSWORD not in warnings[0]
