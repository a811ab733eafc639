"""Urls: every scheme parses to what it says, bad ones are clear errors; unix sockets work."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import (
    InvalidURLError,
    RedisChatMessageHistory,
    RedisChatStore,
    RetryPolicy,
    parse_url,
)
from redis_chat_history.urls import redact_url
from tests.servers import RedisProcess


def test_standalone_url() -> None:
    spec = parse_url("redis://alice:pw@cache.local:6380/2?socket_timeout=3&client_name=app")
    assert (spec.mode, spec.tls, spec.hosts, spec.db) == (
        "auto",
        False,
        (("cache.local", 6380),),
        2,
    )
    assert (spec.username, spec.password) == ("alice", "pw")
    assert dict(spec.options) == {"socket_timeout": 3.0, "client_name": "app"}
    assert spec.display == "redis://alice:***@cache.local:6380/2?socket_timeout=3&client_name=app"
    assert "pw" not in repr(spec)
    assert parse_url("redis://h").hosts == (("h", 6379),) and parse_url("redis://h").db == 0


def test_tls_url_verifies_by_default() -> None:
    spec = parse_url(
        "rediss://h:6380/0?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
    )
    assert spec.tls and dict(spec.options)["ssl_ca_certs"] == "/ca.pem"
    assert "ssl_cert_reqs" not in dict(spec.options)  # required unless the url says otherwise
    relaxed = parse_url("rediss://h:6380/0?ssl_cert_reqs=none")
    assert dict(relaxed.options)["ssl_cert_reqs"] == "none"
    with pytest.raises(InvalidURLError, match="ssl_cert_reqs"):
        parse_url("rediss://h/0?ssl_cert_reqs=maybe")


def test_unix_url() -> None:
    spec = parse_url("unix:///run/redis/redis.sock?db=4")
    assert (spec.mode, spec.unix_socket_path, spec.db) == ("standalone", "/run/redis/redis.sock", 4)
    with_password = parse_url("unix://:pw@/run/redis.sock")
    assert with_password.password == "pw" and with_password.unix_socket_path == "/run/redis.sock"


def test_sentinel_urls() -> None:
    single = parse_url("redis+sentinel://:pw@sentinel-1:26379/mymaster/3")  # langchain_community's
    assert (single.mode, single.hosts, single.service_name, single.db) == (
        "sentinel",
        (("sentinel-1", 26379),),
        "mymaster",
        3,
    )
    several = parse_url("rediss+sentinel://s1:26379,s2,s3:26380/primary")
    assert several.hosts == (("s1", 26379), ("s2", 26379), ("s3", 26380))
    assert several.tls and several.service_name == "primary" and several.db == 0
    assert "ssl_cert_reqs" not in dict(several.options)  # certificate checks stay on
    with pytest.raises(InvalidURLError, match="/service_name/db"):
        parse_url("redis+sentinel://s1/a/0/extra")


def test_cluster_urls() -> None:
    spec = parse_url("rediss+cluster://u:pw@n1:7000,n2:7001,[::1]:7002")
    assert spec.mode == "cluster" and spec.tls
    assert spec.hosts == (("n1", 7000), ("n2", 7001), ("::1", 7002))
    with pytest.raises(InvalidURLError, match="several hosts"):
        parse_url("redis://n1:7000,n2:7001/0")


def test_redact_url() -> None:
    assert redact_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert (
        redact_url("redis+sentinel://u:s3cret@a:1,b:2/m/0") == "redis+sentinel://u:***@a:1,b:2/m/0"
    )
    assert redact_url("not a url s3cret") == "(an invalid url, not shown)"


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


# -- strict parsing ------------------------------------------------------------------
SECRET = "s3cret-pw"
FAST = RetryPolicy(attempts=0, connect_timeout=1, socket_timeout=1)


def test_display_is_rebuilt_from_the_parts() -> None:
    spec = parse_url(
        "rediss://alice:pw@[::1]:7000/3?sentinel_password=x&socket_timeout=2.5&ssl_cert_reqs=none"
    )
    assert spec.hosts == (("::1", 7000),) and spec.address == "[::1]:7000"
    assert spec.display == (
        "rediss://alice:***@[::1]:7000/3?sentinel_password=***&socket_timeout=2.5"
        "&ssl_cert_reqs=none"
    )
    assert repr(spec) == f"ConnectionSpec({spec.display!r})"
    assert parse_url("redis://").display == "redis://localhost:6379/0"  # as redis-py reads it
    assert parse_url("redis://h/").display == "redis://h:6379/0"
    unix = parse_url("unix:///run/r.sock?username=u&password=p%40ss&db=2")
    assert (unix.username, unix.password, unix.db) == ("u", "p@ss", 2)  # redis-py's unix form
    assert unix.display == "unix://u:***@/run/r.sock?db=2"


@pytest.mark.parametrize(
    "password", ["p/w", "p?w", "p#w", "p@w", "p:w", "p%w", "p w", "p&w=x+y", "пароль", ":@/?#%"]
)
def test_any_password_parses_when_percent_encoded(password: str) -> None:
    encoded = quote(password, safe="")
    for url in (
        f"redis://u:{encoded}@h:1/0",
        f"redis+sentinel://h:1/m/0?sentinel_password={encoded}",
        f"unix:///s.sock?password={encoded}",
    ):
        spec = parse_url(url)
        assert password in [spec.password, dict(spec.options).get("sentinel_password")]
        assert password not in spec.display and encoded not in spec.display
        assert "***" in spec.display


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("u:{pw}@h:1", "no scheme"),
        ("//u:{pw}@h:1/0", "no scheme"),
        ("redis://u:{pw}@[::1/0", "not closed with ']'"),  # the issue's: connected to [::1]:6379
        ("redis://u:{pw}@[127.0.0.1]:1/0", "not an IPv6 address"),
        ("redis://u:{pw}@[::1]1/0", "only ':port' may follow ']'"),
        ("redis://u:{pw}@::1/0", "must be in brackets"),
        ("redis://u:{pw}@h:1_0/0", "port '1_0' is not a number"),
        ("redis://u:{pw}@h:+1/0", "port '+1' is not a number"),
        ("redis://u:{pw}@h:/0", "port '' is not a number"),
        ("redis://u:{pw}@h:0/0", "port 0 out of range"),
        ("redis://u:{pw}@h:1//0", "empty segment"),
        ("redis://u:{pw}@h:1/0/1", "url path must be /db"),
        ("redis://u:{pw}@h:1/-1", "database '-1' is not a number"),
        ("redis://u:{pw}@h:1/0#top", "'#'"),
        ("redis://u:{pw}@h:1/0 ", "space or control character"),
        ("redis://u:{pw}@/0", "host is empty"),
        ("redis://:6380/0", "host is empty"),
        ("redis+cluster://", "host is empty"),
        ("redis+sentinel://a:1,,b:2/m", "empty entry"),
        ("redis://u:{pw}@h:1/0?db=0&db=1", "given twice"),
        ("redis://u:{pw}@h:1/0?db=1", "database is given twice"),
        ("redis://u:{pw}@h:1/0?password=x", "password is given twice"),
        ("redis://u:{pw}@h:1/0?socket_timeout=1_0", "option socket_timeout='1_0'"),
        ("redis://u:{pw}@h:1/0?socket_timeout=nan", "option socket_timeout='nan'"),
        ("redis://u:{pw}@h:1/0?client_name", "without '=value'"),
        ("redis://u:{pw}@h:1/0?&", "without '=value'"),
        ("redis://u:{pw}@bad_host!:1/0", "is not a host name"),
        ("redis://u:{pw}%zz@h:1/0", "'%' in the password is not followed by two hex digits"),
        ("unix://u:{pw}@relative.sock", "absolute socket path"),
    ],
)
def test_urls_that_do_not_parse_strictly_are_refused(url: str, problem: str) -> None:
    with pytest.raises(InvalidURLError, match=re.escape(problem)) as raised:
        parse_url(url.format(pw=SECRET))
    assert SECRET not in str(raised.value) and isinstance(raised.value, ValueError)


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
