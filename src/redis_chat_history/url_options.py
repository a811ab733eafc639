"""The query options a connection url accepts (``?db=2&socket_timeout=5``), each with its parser.

A parser gets the option's decoded text and returns its value, or raises ValueError saying
what is wrong with it, worded to follow the value ("is not a number", see
:mod:`redis_chat_history.checks`): :mod:`redis_chat_history.urls` names the option first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from redis_chat_history.checks import int_from_text, seconds_from_text

_CERT_REQS = {"none", "optional", "required"}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
MAX_DB = 2**31 - 1
_MAX_OPTION_INT = 10**9 - 1  # pool sizes and intervals: nine digits are plenty


def _to_bool(value: str) -> bool:
    word = value.strip().lower()
    if word not in _BOOL_WORDS:
        raise ValueError("is not true or false")
    return _BOOL_WORDS[word]


def to_db(value: str) -> int:
    return int_from_text(value, minimum=0, maximum=MAX_DB)


def _to_cert_reqs(value: str) -> str:
    if value not in _CERT_REQS:
        raise ValueError(f"is not one of {sorted(_CERT_REQS)}")
    return value


#: Query options accepted in a url, with their parsers; anything else is an error.
QUERY_OPTIONS: dict[str, Callable[[str], Any]] = {
    "db": to_db,
    "username": str,  # redis-py's form, e.g. unix:///run/redis.sock?username=u&password=p
    "password": str,
    "ssl_ca_certs": str,
    "ssl_ca_path": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": _to_cert_reqs,
    "ssl_check_hostname": _to_bool,
    "socket_timeout": seconds_from_text,
    "socket_connect_timeout": seconds_from_text,
    "max_connections": functools.partial(int_from_text, minimum=1, maximum=_MAX_OPTION_INT),
    # whole seconds, 0 turns the check off
    "health_check_interval": functools.partial(int_from_text, minimum=0, maximum=_MAX_OPTION_INT),
    "client_name": str,
    "sentinel_username": str,
    "sentinel_password": str,
}
#: Options whose values are credentials: shown as ``***``, never echoed in an error.
SECRET_OPTIONS = frozenset({"password", "sentinel_password"})
TLS_OPTIONS = {
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
}
#: Shown instead of a server or client message in which a secret occurs.
WITHHELD = "(message not shown: it may contain a credential)"
