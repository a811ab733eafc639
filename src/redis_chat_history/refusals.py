"""What a failed call means: this package's error for a redis-py one, and the plain switch.

:mod:`redis_chat_history.call` decides when; this module says what: the error raised (naming
the key or server, never a password: only redacted text is kept), whether a refusal means
this user may not run scripts, and the one warning a url gets when its writes go plain.
"""

from __future__ import annotations

import logging
import re

from redis import exceptions as redis_errors

from redis_chat_history import transport
from redis_chat_history.errors import (
    ChatHistoryError,
    CommandError,
    NotEnoughReplicasError,
    OutOfMemoryError,
    PermissionDeniedError,
    PoolExhaustedError,
    RedisUnavailableError,
)
from redis_chat_history.provider import ClientProvider

logger = logging.getLogger("redis_chat_history")

#: The write scripts prefix a refusal of their prelude with this (operations/scripts.py).
PLAIN_MARKER = "RCHPLAIN "
#: Where in the script Redis < 7 says a ``redis.pcall`` error arose (Redis 6.2, no type).
_SCRIPT_POSITION = re.compile(r"@user_script: ?\d+: -?")


def translate(error: BaseException, provider: ClientProvider, key: str) -> ChatHistoryError:
    """This package's error for a redis-py error, naming the key or server, never a password."""
    text = provider.redact(str(error))
    where = provider.address
    if transport.is_credentials_refused(error):
        return PermissionDeniedError(f"Redis at {where} refused the credentials: {text}")
    if transport.is_no_permission(error):
        return PermissionDeniedError(f"Redis at {where} refused an operation on {key!r}: {text}")
    if isinstance(error, transport.MASTER_NOT_FOUND):
        service = provider.spec.service_name if provider.spec else "?"
        return RedisUnavailableError(
            f"cannot reach Redis through the sentinels at {where}: none named a master "
            f"for service {service!r}"
        )
    if isinstance(error, redis_errors.OutOfMemoryError):
        return OutOfMemoryError(
            f"Redis at {where} is out of memory (maxmemory reached, policy noeviction): "
            f"nothing of the write to {key!r} was applied: {text}"
        )
    if str(error).startswith("NOREPLICAS"):  # no type in redis-py
        return NotEnoughReplicasError(
            f"Redis at {where} has fewer replicas than min-replicas-to-write: nothing of the "
            f"write to {key!r} was applied: {text}"
        )
    if isinstance(
        error, (*transport.BUSY_ERRORS, redis_errors.MovedError, redis_errors.AskError)
    ) or transport.is_stale_master(error):
        return RedisUnavailableError(f"Redis at {where} cannot serve {key!r} now: {text}")
    if isinstance(error, redis_errors.ResponseError):
        return CommandError(f"Redis at {where} failed an operation on {key!r}: {text}")
    return RedisUnavailableError(f"cannot reach Redis at {where}: {text}")


def unwrap(error: Exception) -> Exception:
    """The error a write script's prelude met, typed as redis-py would type it bare.

    The prelude prefixes a permission refusal with ``RCHPLAIN``; Redis < 7 prefixes the
    error of a ``redis.pcall`` with its place in the script (``@user_script: 42: -OOM ...``),
    which would hide OOM, READONLY and NOREPLICAS behind a generic error.
    """
    text = str(error)
    marked = text.startswith(PLAIN_MARKER)
    if marked:
        text = text[len(PLAIN_MARKER) :]
    position = _SCRIPT_POSITION.match(text)
    if position:
        return transport.typed_error(text[position.end() :])
    return transport.typed_error(text) if marked else error


def refuses_scripts(error: Exception) -> bool:
    """The server refuses the scripts (or a command they run) to this user, for good.

    A permission refusal of a command (NOPERM, "can't run this command"), or a command
    the server does not have (renamed away); not a refusal of a key (a permission error
    of its own), nor OOM, READONLY, NOREPLICAS or timeouts (errors of one call).
    """
    text = str(error)
    if transport.is_no_permission(error):
        # "to run the 'x' command", "can't run this command" (a key is refused "to access")
        return "run" in text
    return "unknown command" in text


def warn_plain(provider: ClientProvider, reason: str) -> None:
    if provider.plain_warned:
        return
    provider.plain_warned = True
    logger.warning(
        "Redis at %s refused the scripts this package writes with (%s): writes now use "
        "the old class's plain commands (LPUSH, LTRIM, EXPIRE, pipelined), and scripts are "
        "tried again every %d s. Given up meanwhile: exactly-once on re-send (a write "
        "whose reply is lost raises WriteOutcomeUnknownError instead of being re-sent) and "
        "the atomic push+trim+expire. Grant the commands listed in the README ('A minimal "
        "ACL user') to get them back.",
        provider.address,
        reason,
        int(provider.plain_recheck_seconds),
    )


def pool_exhausted(provider: ClientProvider, waited: float) -> PoolExhaustedError:
    size = provider.pool_size
    return PoolExhaustedError(
        f"every pooled connection to Redis at {provider.address} stayed busy for "
        f"{waited:.3g} s" + (f" (pool of {size})" if size else "") + "; raise max_connections "
        "in the url (e.g. ?max_connections=256) or lower the concurrency"
    )


def unreachable(provider: ClientProvider, key: str, error: BaseException) -> ChatHistoryError:
    raised = translate(error, provider, key)
    if isinstance(raised, CommandError):  # e.g. redis-py's AttributeError on connect
        raised = RedisUnavailableError(
            f"cannot reach Redis at {provider.address}: {provider.redact(str(error))}"
        )
    return raised
