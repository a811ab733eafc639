"""The query options a connection url accepts (``?db=2&socket_timeout=5``), each with its parser.

A parser gets the option's decoded text and returns its value, or raises ValueError saying
what was expected (:mod:`redis_chat_history.urls` names the option in the error).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_CERT_REQS = {"none", "optional", "required"}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
_MAX_DB = 2**31 - 1

DIGITS = re.compile(r"[0-9]+\Z")
_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?\Z")


def _to_bool(value: str) -> bool:
    word = value.strip().lower()
    if word not in _BOOL_WORDS:
        raise ValueError("expected true or false")
    return _BOOL_WORDS[word]


def _to_positive_float(value: str) -> float:
    if not _DECIMAL.match(value) or float(value) <= 0:
        raise ValueError("must be a number of seconds > 0 (e.g. 2.5)")
    return float(value)


def _to_positive_int(value: str) -> int:
    if not DIGITS.match(value) or len(value) > 9 or int(value) <= 0:
        raise ValueError("must be a whole number > 0")
    return int(value)


def _to_seconds(value: str) -> int:
    if not DIGITS.match(value) or len(value) > 9:
        raise ValueError("must be a whole number of seconds (0 turns it off)")
    return int(value)


def to_db(value: str) -> int:
    if not DIGITS.match(value) or int(value) > _MAX_DB:
        raise ValueError("must be a database number (0, 1, ...)")
    return int(value)


def _to_cert_reqs(value: str) -> str:
    if value not in _CERT_REQS:
        raise ValueError(f"expected one of {sorted(_CERT_REQS)}")
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
    "socket_timeout": _to_positive_float,
    "socket_connect_timeout": _to_positive_float,
    "max_connections": _to_positive_int,
    "health_check_interval": _to_seconds,
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
