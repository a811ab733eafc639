"""urls.py, url_options.py, connection_spec.py: every scheme and query option parses to what it
says, a bad value is an error naming the option, and no display or error shows a password.

No server: parsing connects to nothing (tests/test_connection.py checks that for real).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from redis_chat_history import InvalidURLError, parse_url
from redis_chat_history.connection_spec import ConnectionSpec
from redis_chat_history.url_options import QUERY_OPTIONS, SECRET_OPTIONS, WITHHELD
from redis_chat_history.urls import redact_url

SECRET = "s3cret-pw"


# -- schemes -------------------------------------------------------------------------------
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


# -- strict parsing ------------------------------------------------------------------
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
        ("redis://u:{pw}@h:0/0", "port '0' out of range (1-65535)"),
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
        # query options: a bad value names the option
        ("rediss://u:{pw}@h:1?db=-1", "option db='-1' is not a number"),
        ("rediss://u:{pw}@h:1?db=2147483648", "option db='2147483648' out of range (0-2147483647)"),
        (
            "rediss://u:{pw}@h:1?socket_timeout=0",
            "option socket_timeout='0' is not a number of seconds > 0",
        ),
        (
            "rediss://u:{pw}@h:1?socket_timeout=1e3",
            "option socket_timeout='1e3' is not a number of seconds > 0",
        ),
        (
            "rediss://u:{pw}@h:1?socket_connect_timeout=-1",
            "option socket_connect_timeout='-1' is not a number",
        ),
        (
            "rediss://u:{pw}@h:1?max_connections=0",
            "option max_connections='0' out of range (1-999999999)",
        ),
        (
            "rediss://u:{pw}@h:1?max_connections=1000000000",
            "option max_connections='1000000000' out of range",
        ),
        ("rediss://u:{pw}@h:1?max_connections=ten", "option max_connections='ten' is not a number"),
        (
            "rediss://u:{pw}@h:1?health_check_interval=1.5",
            "option health_check_interval='1.5' is not a number",
        ),
        ("rediss://u:{pw}@h:1?ssl_cert_reqs=maybe", "option ssl_cert_reqs='maybe' is not one of"),
        (
            "rediss://u:{pw}@h:1?ssl_check_hostname=perhaps",
            "option ssl_check_hostname='perhaps' is not true or false",
        ),
        ("rediss://u:{pw}@h:1?colour=blue", "unknown option 'colour'; known: client_name, db,"),
        (
            "rediss://u:{pw}@h:1?db%zz=1",
            "a '%' in the option name is not followed by two hex digits",
        ),
    ],
)
def test_urls_that_do_not_parse_strictly_are_refused(url: str, problem: str) -> None:
    with pytest.raises(InvalidURLError, match=re.escape(problem)) as raised:
        parse_url(url.format(pw=SECRET))
    assert SECRET not in str(raised.value) and isinstance(raised.value, ValueError)
    assert raised.value.__cause__ is None  # no parser's error chained (it could hold the text)


# -- query options --------------------------------------------------------------------------
#: Every query option with a value in its url text and the value parsed (TLS ones on rediss).
OPTION_VALUES: list[tuple[str, str, Any]] = [
    ("db", "7", 7),
    ("username", "bob", "bob"),
    ("password", "p%26w", "p&w"),
    ("ssl_ca_certs", "/etc/ca.pem", "/etc/ca.pem"),
    ("ssl_ca_path", "/etc/cas", "/etc/cas"),
    ("ssl_certfile", "/c.pem", "/c.pem"),
    ("ssl_keyfile", "/k.pem", "/k.pem"),
    ("ssl_cert_reqs", "optional", "optional"),
    ("ssl_check_hostname", "no", False),
    ("socket_timeout", "2.5", 2.5),
    ("socket_connect_timeout", "0.25", 0.25),
    ("max_connections", "64", 64),
    ("health_check_interval", "0", 0),
    ("client_name", "my+app", "my app"),
    ("sentinel_username", "watcher", "watcher"),
    ("sentinel_password", "sp", "sp"),
]


def test_the_list_covers_every_option() -> None:
    assert {name for name, _, _ in OPTION_VALUES} == set(QUERY_OPTIONS)


@pytest.mark.parametrize(("name", "text", "value"), OPTION_VALUES)
def test_every_query_option_parses(name: str, text: str, value: Any) -> None:
    spec = parse_url(f"rediss://h:1?{name}={text}")
    parsed = {
        "db": spec.db,
        "username": spec.username,
        "password": spec.password,
        **dict(spec.options),
    }
    assert parsed[name] == value and type(parsed[name]) is type(value)
    if name in SECRET_OPTIONS:
        assert f"{name}=" not in spec.display or f"{name}=***" in spec.display
        assert str(value) not in spec.display and "***" in spec.display


@pytest.mark.parametrize(
    ("word", "value"),
    [("1", True), ("true", True), ("YES", True), ("0", False), ("False", False), ("no", False)],
)
def test_boolean_words(word: str, value: bool) -> None:
    assert dict(parse_url(f"rediss://h?ssl_check_hostname={word}").options) == {
        "ssl_check_hostname": value
    }


def test_a_huge_number_is_out_of_range_at_once() -> None:
    for url in (
        f"redis://h:{'9' * 5000}/0",
        f"redis://h:1/{'9' * 5000}",
        "redis://h:1/1" + "0" * 5000,
    ):
        with pytest.raises(InvalidURLError, match="out of range"):
            parse_url(url)
    assert parse_url("redis://h:0006380/0012").hosts == (("h", 6380),)
    assert parse_url("redis://h:0006380/0012").db == 12


def test_values_after_a_secret_are_not_echoed() -> None:
    """A '&' inside an unencoded password continues it: what follows may be part of it."""
    for url, problem in [
        ("redis://h?password=ab&socket_timeout=0", "option socket_timeout=(not shown) is not"),
        ("redis://h?sentinel_password=ab&db=x1", "option db=(not shown) is not a number"),
        ("redis://h?password=ab&x1=2", "unknown option (not shown)"),
    ]:
        with pytest.raises(InvalidURLError, match=re.escape(problem)) as raised:
            parse_url(url)
        assert "x1" not in str(raised.value) and "ab" not in str(raised.value)


def test_tls_options_need_a_tls_url() -> None:
    for option in ("ssl_ca_certs=/ca.pem", "ssl_cert_reqs=none", "ssl_check_hostname=false"):
        with pytest.raises(InvalidURLError, match="TLS options need a rediss:// url"):
            parse_url(f"redis://h/0?{option}")
        assert parse_url(f"rediss://h/0?{option}").tls


def test_a_url_must_be_a_str() -> None:
    with pytest.raises(InvalidURLError, match="url must be a str, got bytes"):
        parse_url(b"redis://h")  # type: ignore[arg-type]


# -- what is shown --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "redis://alice:pw@h:6380/2?socket_timeout=2.5&client_name=a%20b%2Bc",
        "rediss://:pw@[::1]:7000/0?ssl_check_hostname=false&ssl_cert_reqs=none",
        "unix://u:pw@/run/r.sock?db=3&health_check_interval=30",
        "redis+sentinel://:pw@s1,s2:26380/my%2Fmaster/4?sentinel_password=sp&max_connections=9",
        "rediss+cluster://u:pw@n1:7000,n2:7001",
        "redis://h?password=pw",
    ],
)
def test_the_display_is_a_url_of_the_same_spec_without_secrets(url: str) -> None:
    spec = parse_url(url)
    assert "pw" not in spec.display and "sp" not in spec.display.replace("sentinel_", "")
    assert repr(spec) == f"ConnectionSpec({spec.display!r})" and redact_url(url) == spec.display
    again = parse_url(spec.display)  # the display parses, to the same spec but for secrets
    masked = {"password": "***" if spec.password else None, "sentinel_password": "***"}
    assert again.display == spec.display
    assert again.password == masked["password"]
    assert [(k, masked.get(k, v)) for k, v in spec.options] == list(again.options)
    for field in ("mode", "tls", "hosts", "unix_socket_path", "db", "service_name", "username"):
        assert getattr(again, field) == getattr(spec, field), field


def test_address_names_the_server_without_credentials() -> None:
    assert parse_url("redis://u:pw@h:1/0").address == "h:1"
    assert parse_url("redis+cluster://:pw@a:1,[::1]:2").address == "a:1,[::1]:2"
    assert parse_url("unix://:pw@/tmp/r.sock").address == "/tmp/r.sock"


def test_secrets_and_redact() -> None:
    spec = parse_url("redis+sentinel://:pw1@h:26379/m/0?sentinel_password=pw2")
    assert spec.secrets() == ["pw1", "pw2"]
    assert spec.redact("connecting to h:26379") == "connecting to h:26379"
    assert spec.redact("ERR invalid password 'pw2'") == WITHHELD
    assert ConnectionSpec("standalone", False, hosts=(("h", 1),)).redact("pw1") == "pw1"
    # a secret inside a public part (the host) is shown there only
    hostlike = parse_url("redis://:ach@cache:1/0")
    assert hostlike.redact("Error connecting to cache:1") == "Error connecting to cache:1"
    assert hostlike.redact("wrong password ach for cache") == WITHHELD


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@[::1/0", "(an invalid redis:// url, not shown)"),
        ("REDISS://:pw@h:x/0", "(an invalid rediss:// url, not shown)"),
        ("pw://h", "(an invalid pw:// url, not shown)"),
        ("no scheme pw", "(an invalid url, not shown)"),
        ("b@d!://pw", "(an invalid url, not shown)"),
    ],
)
def test_an_invalid_url_is_never_shown(url: str, shown: str) -> None:
    assert redact_url(url) == shown
