"""transport.py: every use of redis-py's internals, on real standalone and Cluster servers.

CI runs this module at both dependency floors (redis-py 6.2 and the newest), so each
``redis-py:`` claim in transport.py is checked where it is made: pooled connections taken
and given back, one packed write per exchange, error replies read as values, reconnects,
a Cluster's nodes and slots, and which redis-py error means what.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis import exceptions as redis_errors
from redis.crc import key_slot

from redis_chat_history import RetryPolicy
from redis_chat_history.clients import build_async_client, build_sync_client
from redis_chat_history.transport import (
    Failed,
    blocking_pool_kwargs,
    client_address,
    exchange_async,
    exchange_sync,
    is_connection_failure,
    is_credentials_refused,
    is_no_permission,
    is_pool_exhausted,
    is_stale_master,
    open_async_cluster,
    pool_waited,
    primaries,
    reconnect_async,
    reconnect_sync,
    typed_error,
)
from redis_chat_history.urls import parse_url
from tests.proxy import ReplyDroppingProxy
from tests.servers import Cluster, RedisProcess, free_port, wait_until

POLICY = RetryPolicy(attempts=0, connect_timeout=2, socket_timeout=5)


def named(admin: redis.Redis, name: str) -> int:
    return sum(1 for client in admin.client_list() if client.get("name") == name)


@pytest.fixture
def standalone(redis7: RedisProcess) -> Iterator[tuple[str, str, redis.Redis]]:
    """(url, client name, admin client) of the newest Redis, its keys deleted first."""
    admin = redis7.client()
    admin.flushall()
    name = f"rch-transport-{uuid.uuid4().hex[:6]}"
    try:
        yield f"{redis7.url.split('?')[0]}?client_name={name}", name, admin
    finally:
        admin.close()


# -- exchanges on one server ----------------------------------------------------------------
def test_an_exchange_sends_its_commands_at_once_and_reads_errors_as_values(
    standalone: tuple[str, str, redis.Redis],
) -> None:
    url, name, admin = standalone
    client = build_sync_client(parse_url(url), POLICY, "standalone")
    try:
        replies = exchange_sync(
            client,
            False,
            [("RPUSH", "k", "a", "b"), ("INCR", "k"), ("LRANGE", "k", 0, -1)],
            None,
            None,
            None,
        )
        assert not isinstance(replies, Failed)
        assert replies[0] == 2 and replies[2] == [b"a", b"b"]
        assert isinstance(replies[1], redis_errors.ResponseError) and "WRONGTYPE" in str(replies[1])
        assert exchange_sync(client, False, [("PING",)], None, None, None) == [b"PONG"]
        assert named(admin, name) == 1  # the connection went back to the pool and was reused
    finally:
        client.close()


def test_a_lost_reply_is_a_sent_failure_then_a_new_connection_is_made(
    redis7: RedisProcess,
) -> None:
    proxy = ReplyDroppingProxy(redis7.port)
    admin = redis7.client()
    client = build_sync_client(parse_url(proxy.url), POLICY, "standalone")
    try:
        admin.delete("lost")
        assert exchange_sync(client, False, [("PING",)], None, None, None) == [b"PONG"]
        proxy.drop_next_reply()  # the command runs, its reply never comes back
        failed = exchange_sync(client, False, [("SET", "lost", "v")], None, None, None)
        assert isinstance(failed, Failed) and failed.sent
        assert is_connection_failure(failed.error, failed.sent)
        assert admin.get("lost") == b"v"  # sent indeed: it may have reached the server
        assert exchange_sync(client, False, [("GET", "lost")], None, None, None) == [b"v"]
    finally:
        client.close()
        admin.close()
        proxy.close()


def test_no_server_is_a_failure_before_sending() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = build_sync_client(parse_url(url), POLICY, "standalone")
    failed = exchange_sync(client, False, [("PING",)], None, None, None)
    assert isinstance(failed, Failed) and not failed.sent
    assert is_connection_failure(failed.error, failed.sent)

    async def scenario() -> Any:
        async_client = build_async_client(parse_url(url), POLICY, "standalone")
        try:
            return await exchange_async(async_client, False, [("PING",)], None, None, None)
        finally:
            await async_client.aclose()

    failed_async = asyncio.run(scenario())
    assert isinstance(failed_async, Failed) and not failed_async.sent
    assert type(failed_async.error) is type(failed.error)


def test_the_async_exchange_and_reconnect(standalone: tuple[str, str, redis.Redis]) -> None:
    url, name, admin = standalone

    async def scenario() -> None:
        client = build_async_client(parse_url(url), POLICY, "standalone")
        try:
            commands = [("SET", "k", "v"), ("HGET", "k", "f"), ("GET", "k")]
            replies = await exchange_async(client, False, commands, None, None, None)
            assert not isinstance(replies, Failed)
            assert replies[0] == b"OK" and replies[2] == b"v"
            assert isinstance(replies[1], redis_errors.ResponseError)
            assert named(admin, name) == 1
            await reconnect_async(client)  # drops the pool's connections
            wait_until(lambda: named(admin, name) == 0, 10, "the async pool to disconnect")
            again = await exchange_async(client, False, [("GET", "k")], None, None, None)
            assert again == [b"v"] and named(admin, name) == 1
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_reconnect_drops_a_pools_connections(standalone: tuple[str, str, redis.Redis]) -> None:
    url, name, admin = standalone
    client = build_sync_client(parse_url(url), POLICY, "standalone")
    try:
        exchange_sync(client, False, [("PING",)], None, None, None)
        assert named(admin, name) == 1
        reconnect_sync(client)
        wait_until(lambda: named(admin, name) == 0, 10, "the pool to disconnect")
        reconnect_sync(None)  # no client built yet: nothing to do
        assert exchange_sync(client, False, [("PING",)], None, None, None) == [b"PONG"]
        assert primaries(client) == [None]  # a listing visits the one server
    finally:
        client.close()


# -- the pools: what a full one raises ------------------------------------------------------
def test_a_full_pool_is_recognised_whatever_the_redis_py_version(redis7: RedisProcess) -> None:
    spec = parse_url(f"{redis7.url.split('?')[0]}?max_connections=1")
    client = build_sync_client(spec, RetryPolicy(connect_timeout=0.05, socket_timeout=0.05), "auto")
    pool = client.connection_pool
    held = pool.get_connection()
    try:
        failed = exchange_sync(client, False, [("PING",)], None, None, None)
        assert isinstance(failed, Failed) and not failed.sent
        assert is_pool_exhausted(failed.error) and pool_waited(failed.error)  # blocking: waited
        plain = redis.ConnectionPool(**{**pool.connection_kwargs, "max_connections": 1})
        first = plain.get_connection()
        with pytest.raises(redis_errors.ConnectionError) as raised:
            plain.get_connection()
        assert is_pool_exhausted(raised.value) and not pool_waited(raised.value)
        plain.release(first)
        plain.disconnect()
    finally:
        pool.release(held)
        client.close()


def test_blocking_pool_kwargs_keep_the_connections_settings(redis7: RedisProcess) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis7.port, db=3, client_name="x")
    kwargs = blocking_pool_kwargs(client.connection_pool, 5, 1.5)
    assert kwargs["max_connections"] == 5 and kwargs["timeout"] == 1.5
    assert kwargs["connection_class"] is redis.Connection
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["client_name"]) == (
        "127.0.0.1",
        redis7.port,
        3,
        "x",
    )
    blocking = redis.Redis.from_pool(redis.BlockingConnectionPool(**kwargs))
    try:
        assert blocking.client_getname() == "x" and blocking.connection_pool.max_connections == 5
    finally:
        blocking.close()
        client.close()


def test_client_address_names_a_given_client_without_credentials(
    redis7: RedisProcess, cluster: Cluster
) -> None:
    given = redis.Redis(host="127.0.0.1", port=redis7.port, password="s3cret")
    assert client_address(given) == f"127.0.0.1:{redis7.port}"
    assert redis7.unix_socket is not None
    assert client_address(redis.Redis(unix_socket_path=redis7.unix_socket)) == (
        f"unix://{redis7.unix_socket}"
    )
    nodes = cluster.client()
    try:
        shown = client_address(nodes).split(",")
        assert 1 <= len(shown) <= 3 and all(item.startswith("127.0.0.1:") for item in shown)
    finally:
        nodes.close()
    assert client_address(object()) == "object"


# -- a Cluster ------------------------------------------------------------------------------
def cluster_spec(cluster: Cluster) -> Any:
    return parse_url(cluster.url)


def test_cluster_exchanges_go_to_the_slots_master_or_the_named_node(cluster: Cluster) -> None:
    cluster.flush()
    client = build_sync_client(cluster_spec(cluster), POLICY, "cluster")
    try:
        masters = primaries(client)
        assert len(masters) == 3
        keys = [f"k{i}" for i in range(30)]
        for key in keys:
            reply = exchange_sync(
                client, True, [("SET", key, key)], key_slot(key.encode()), None, None
            )
            assert reply == [b"OK"], key
        for node in masters:  # each master holds exactly the keys of its slots
            owned = sorted(
                k.decode()
                for k in exchange_sync(client, True, [("KEYS", "*")], None, node, None)[0]
            )
            expected = [k for k in keys if client.get_node_from_key(k).name == node.name]
            assert owned == sorted(expected) and owned
        key = keys[0]
        owner = client.get_node_from_key(key)
        other = next(node for node in masters if node.name != owner.name)
        moved = exchange_sync(client, True, [("GET", key)], None, other, None)[0]
        assert isinstance(moved, redis_errors.MovedError)  # an error reply, as a value
        ask = (owner.host, owner.port)
        assert exchange_sync(client, True, [("GET", key)], None, None, ask) == [key.encode()]
        reconnect_sync(client)  # re-reads the slots
        assert exchange_sync(client, True, [("GET", key)], key_slot(key.encode()), None, None) == [
            key.encode()
        ]
    finally:
        client.close()


def test_async_cluster_exchanges_and_reconnect(cluster: Cluster) -> None:
    cluster.flush()

    async def scenario() -> None:
        client = build_async_client(cluster_spec(cluster), POLICY, "cluster")
        try:
            await open_async_cluster(client)  # the slots read once, before tasks share it
            slot = key_slot(b"a-key")
            node = client.nodes_manager.get_node_from_slot(slot)  # type: ignore[union-attr]
            assert node is not None
            many = await asyncio.gather(
                *(
                    exchange_async(client, True, [("INCR", "a-key")], slot, None, None)
                    for _ in range(40)
                )
            )
            assert sorted(reply[0] for reply in many) == list(range(1, 41))  # type: ignore[index]
            assert len(primaries(client)) == 3
            await reconnect_async(client)
            after = await exchange_async(client, True, [("GET", "a-key")], slot, None, None)
            assert after == [b"40"]
            named = await exchange_async(client, True, [("GET", "a-key")], None, node, None)
            assert named == [b"40"]
        finally:
            await client.aclose()

    asyncio.run(scenario())


# -- which error means what -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("MOVED 1 127.0.0.1:7000", redis_errors.MovedError),
        ("ASK 1 127.0.0.1:7000", redis_errors.AskError),
        ("TRYAGAIN Multiple keys request during rehashing of slot", redis_errors.TryAgainError),
        ("CLUSTERDOWN The cluster is down", redis_errors.ClusterDownError),
        ("LOADING Redis is loading the dataset in memory", redis_errors.BusyLoadingError),
        ("READONLY You can't write against a read only replica.", redis_errors.ReadOnlyError),
        ("NOSCRIPT No matching script.", redis_errors.NoScriptError),
        (
            "NOPERM User u has no permissions to run the 'time' command",
            redis_errors.NoPermissionError,
        ),
        ("WRONGTYPE Operation against a key holding the wrong kind", redis_errors.ResponseError),
    ],
)
def test_typed_error_is_redis_pys_own_type(reply: str, kind: type) -> None:
    assert type(typed_error(reply)) is kind


def test_what_each_error_means() -> None:
    readonly = typed_error("READONLY You can't write against a read only replica.")
    wait_on_replica = typed_error("ERR WAIT cannot be used with replica instances.")
    assert is_stale_master(readonly) and is_stale_master(wait_on_replica)
    assert not is_stale_master(typed_error("ERR other"))
    assert is_no_permission(typed_error("NOPERM no permissions"))
    assert is_no_permission(
        redis_errors.ResponseError("Error running script: can't run this command")
    )
    assert is_credentials_refused(redis_errors.AuthenticationError("invalid password"))
    assert not is_connection_failure(redis_errors.AuthenticationError("invalid"), sent=False)
    assert not is_connection_failure(typed_error("ERR x"), sent=False)
    assert is_connection_failure(redis_errors.TimeoutError("timed out"), sent=True)
    assert is_connection_failure(AttributeError("client race"), sent=False)
    assert not is_connection_failure(AttributeError("a bug"), sent=True)


def test_a_refused_password_is_credentials_refused(redis7: RedisProcess) -> None:
    admin = redis7.client()
    user = f"t{uuid.uuid4().hex[:6]}"
    admin.execute_command("ACL", "SETUSER", user, "on", ">right", "~*", "+@all")
    try:
        url = f"redis://{user}:wrong@127.0.0.1:{redis7.port}/0"
        client = build_sync_client(parse_url(url), POLICY, "standalone")
        failed = exchange_sync(client, False, [("PING",)], None, None, None)
        assert isinstance(failed, Failed) and is_credentials_refused(failed.error)
        assert not is_connection_failure(failed.error, failed.sent)
        client.close()
    finally:
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()
