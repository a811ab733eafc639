"""Connecting by url: a unix socket and its db, a bad url refused before any connection, pool
sizes kept by every kind of client (the parsing itself: tests/test_urls.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import (
    InvalidURLError,
    RedisChatMessageHistory,
    RedisChatStore,
    RetryPolicy,
)
from tests.servers import RedisProcess


def test_history_over_a_unix_socket_uses_the_db(redis7: RedisProcess) -> None:
    assert redis7.unix_socket is not None
    url = f"unix://{redis7.unix_socket}?db=3"
    history = RedisChatMessageHistory("sock", url=url, ttl=30)
    history.add_messages([HumanMessage("a"), HumanMessage("b")])
    assert [m.content for m in history.get_messages(limit=1)] == ["b"]
    assert asyncio.run(history.acount()) == 2
    assert history.delete_last()[0].content == "b"
    client = redis7.client(db=3)
    try:
        assert client.llen("message_store:sock") == 1
    finally:
        client.close()
    history.clear()
    assert history.count() == 0


# -- a bad url is refused before anything connects ------------------------------------
SECRET = "s3cret-pw"
FAST = RetryPolicy(attempts=0, connect_timeout=1, socket_timeout=1)


@pytest.fixture
def listeners() -> Iterator[dict[str, socket.socket]]:
    """A listening socket on 127.0.0.1 and one on ::1, never accepted from by themselves."""
    opened = {}
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((host, 0))
        listener.listen(64)
        listener.setblocking(False)
        opened[host] = listener
    yield opened
    for listener in opened.values():
        listener.close()


def connections_seen(listener: socket.socket) -> int:
    """Connections waiting in the backlog: a client's connect() returned only once one was."""
    seen = 0
    while True:
        try:
            accepted, _ = listener.accept()
        except BlockingIOError:
            return seen
        accepted.close()
        seen += 1


@pytest.mark.parametrize(
    "template",
    [
        "redis://u:{pw}@[127.0.0.1]:{port}/0",  # brackets hold IPv6 addresses only
        "redis://u:{pw}@[::1]{port}/0",  # no ':' before the port
        "redis://u:{pw}@127.0.0.1:{port_}/0",  # int() reads '4_1234'
        "redis://u:{pw}@127.0.0.1:+{port}/0",
        "redis://u:{pw}@127.0.0.1:{port}/0#fragment",  # an unencoded '#' in a password
        "redis://u:x@{pw}@127.0.0.1:{port}/0",  # an unencoded '@' in a password
        "redis://u:{pw}@127.0.0.1:{port}//0",
        "redis://u:{pw}@127.0.0.1:{port}/0?db=0&db=0",
        "redis://u:{pw}@127.0.0.1:{port}/0?socket_timeout=3_0",
        "redis://u:{pw}@127.0.0.1:{port}/0 ",
        "redis://u:{pw}@127.0.0.1:{port}/ 0",
    ],
)
def test_lenient_urls_raise_without_connecting(
    template: str, listeners: dict[str, socket.socket]
) -> None:
    listener = listeners["::1" if "::1" in template else "127.0.0.1"]
    port = str(listener.getsockname()[1])
    url = template.format(pw=SECRET, port=port, port_=f"{port[0]}_{port[1:]}")
    with pytest.raises(InvalidURLError) as raised:
        RedisChatMessageHistory("s", url=url, retry=FAST).count()
    assert SECRET not in str(raised.value)
    assert connections_seen(listener) == 0
    with pytest.raises(InvalidURLError):
        asyncio.run(RedisChatStore(url=url, retry=FAST).history("s").acount())
    assert connections_seen(listener) == 0


@pytest.mark.parametrize("scheme", ["redis+sentinel", "redis+cluster"])
def test_sentinel_and_cluster_clients_keep_the_urls_max_connections(scheme: str) -> None:
    from redis_chat_history.clients import build_async_client, build_sync_client
    from redis_chat_history.retry import RetryPolicy
    from redis_chat_history.urls import parse_url

    spec = parse_url(
        f"{scheme}://127.0.0.1:1/mymaster?max_connections=7".replace(
            "/mymaster", "/mymaster" if scheme == "redis+sentinel" else ""
        )
    )
    policy = RetryPolicy()
    async_client = build_async_client(spec, policy, spec.mode)
    if scheme == "redis+sentinel":
        sync_client = build_sync_client(spec, policy, spec.mode)
        assert sync_client.connection_pool.max_connections == 7  # type: ignore[union-attr]
        assert async_client.connection_pool.max_connections == 7  # type: ignore[union-attr]
    else:
        nodes = async_client.nodes_manager.startup_nodes.values()  # type: ignore[union-attr]
        assert {node.max_connections for node in nodes} == {7}
