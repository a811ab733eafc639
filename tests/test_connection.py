"""Urls: every scheme parses to what it says, bad ones are clear errors; unix sockets work."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import InvalidURLError, RedisChatMessageHistory, parse_url
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
    assert redact_url("not a url s3cret") == "not a url s3cret"  # nothing to find


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
