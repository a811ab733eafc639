"""Running a :class:`~redis_chat_history.operations.Plan`: the sync and the async driver.

Every decision of a call is made by the machine in :mod:`redis_chat_history.call`, which
never touches a socket; a driver only performs the actions it yields (send, sleep,
reconnect, list a Cluster's masters) with :mod:`redis_chat_history.transport` and sends
back their outcome. The two drivers are twins of a few lines each.

Example::

    from redis_chat_history.operations import count_plan
    n = run(provider, count_plan("message_store:s1"))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis_chat_history import transport
from redis_chat_history.call import ListPrimaries, Reconnect, Send, Sleep, Steps, call, primaries
from redis_chat_history.operations import Plan
from redis_chat_history.provider import ClientProvider
from redis_chat_history.replication import ReplicaWait
from redis_chat_history.transport import REDIS_ERRORS, Failed

__all__ = ["REDIS_ERRORS", "amasters", "arun", "drive_async", "drive_sync", "masters", "run"]

T = TypeVar("T")
#: What building a client or reconnecting may raise (a Cluster client reads its slots).
_CLIENT_ERRORS = (*REDIS_ERRORS, OSError)


def run(
    provider: ClientProvider, plan: Plan[T], wait: ReplicaWait | None = None, *, node: Any = None
) -> T:
    """Run ``plan`` with the shared sync client and return its parsed reply."""
    return drive_sync(provider, call(provider, plan, wait, node))


async def arun(
    provider: ClientProvider, plan: Plan[T], wait: ReplicaWait | None = None, *, node: Any = None
) -> T:
    """Run ``plan`` with the event loop's asyncio client and return its parsed reply."""
    return await drive_async(provider, call(provider, plan, wait, node))


def masters(provider: ClientProvider, pattern: str) -> list[Any]:
    """The nodes a listing must visit: every master of a Cluster, else the server (None)."""
    return drive_sync(provider, primaries(provider, pattern))


async def amasters(provider: ClientProvider, pattern: str) -> list[Any]:
    """Async :func:`masters`."""
    return await drive_async(provider, primaries(provider, pattern))


# ---------------------------------------------------------------------------
# The drivers: perform each action, send back its outcome, decide nothing.
# One handler per action and I/O kind, in a table made once; a driver's loop is the same
# for both kinds but for the ``await``. What a handler raises from the provider or
# redis-py (building a client, reconnecting) is sent back as a Failed that sent nothing:
# an exchange itself never raises an Exception (it returns a Failed, with ``sent``).


def drive_sync(provider: ClientProvider, steps: Steps[T]) -> T:
    """Perform the actions of ``steps`` with blocking I/O; return the call's result."""
    outcome: Any = None
    try:
        while True:
            action = steps.send(outcome)
            try:
                outcome = _SYNC[type(action)](provider, action)
            except _CLIENT_ERRORS as error:
                outcome = Failed(error, sent=False)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def drive_async(provider: ClientProvider, steps: Steps[T]) -> T:
    """Perform the actions of ``steps`` on the running event loop; return the result."""
    outcome: Any = None
    try:
        while True:
            action = steps.send(outcome)
            try:
                outcome = await _ASYNC[type(action)](provider, action)
            except _CLIENT_ERRORS as error:
                outcome = Failed(error, sent=False)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _send(provider: ClientProvider, send: Send) -> list[Any] | Failed:
    client = provider.sync()
    return transport.exchange_sync(
        client, provider.is_cluster, send.commands, send.slot, send.node, send.ask
    )


async def _asend(provider: ClientProvider, send: Send) -> list[Any] | Failed:
    client = await provider.async_()
    return await transport.exchange_async(
        client, provider.is_cluster, send.commands, send.slot, send.node, send.ask
    )


def _sleep(provider: ClientProvider, sleep: Sleep) -> None:
    time.sleep(sleep.seconds)


async def _asleep(provider: ClientProvider, sleep: Sleep) -> None:
    await asyncio.sleep(sleep.seconds)


def _reconnect(provider: ClientProvider, reconnect: Reconnect) -> None:
    if reconnect.to_cluster:
        provider.switch_to_cluster()
    else:
        transport.reconnect_sync(provider.sync_if_built())


async def _areconnect(provider: ClientProvider, reconnect: Reconnect) -> None:
    if reconnect.to_cluster:
        provider.switch_to_cluster()
    else:
        await transport.reconnect_async(await provider.async_())


def _primaries(provider: ClientProvider, action: ListPrimaries) -> list[Any]:
    return transport.primaries(provider.sync())


async def _aprimaries(provider: ClientProvider, action: ListPrimaries) -> list[Any]:
    return transport.primaries(await provider.async_())


_SYNC: dict[type, Callable[[ClientProvider, Any], Any]] = {
    Send: _send,
    Sleep: _sleep,
    Reconnect: _reconnect,
    ListPrimaries: _primaries,
}
_ASYNC: dict[type, Callable[[ClientProvider, Any], Awaitable[Any]]] = {
    Send: _asend,
    Sleep: _asleep,
    Reconnect: _areconnect,
    ListPrimaries: _aprimaries,
}
