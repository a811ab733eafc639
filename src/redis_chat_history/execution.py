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
    provider: ClientProvider,
    plan: Plan[T],
    wait: ReplicaWait | None = None,
    *,
    node: Any = None,
) -> T:
    """Run ``plan`` with the shared sync client and return its parsed reply."""
    return drive_sync(provider, call(provider, plan, wait, node))


async def arun(
    provider: ClientProvider,
    plan: Plan[T],
    wait: ReplicaWait | None = None,
    *,
    node: Any = None,
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
# The drivers: perform each action, send back its outcome, decide nothing


def drive_sync(provider: ClientProvider, steps: Steps[T]) -> T:
    outcome: Any = None
    while True:
        try:
            action = steps.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if type(action) is Send:
            try:
                client = provider.sync()
            except _CLIENT_ERRORS as error:
                outcome = Failed(error, sent=False)
                continue
            outcome = transport.exchange_sync(
                client, provider.is_cluster, action.commands, action.slot, action.node, action.ask
            )
        elif type(action) is Sleep:
            outcome = time.sleep(action.seconds)  # type: ignore[func-returns-value]
        elif type(action) is Reconnect:
            outcome = None
            try:
                if action.to_cluster:
                    provider.switch_to_cluster()
                else:
                    transport.reconnect_sync(provider.sync_if_built())
            except _CLIENT_ERRORS as error:
                outcome = Failed(error, sent=False)
        else:
            assert type(action) is ListPrimaries
            try:
                outcome = transport.primaries(provider.sync())
            except _CLIENT_ERRORS as error:
                outcome = Failed(error, sent=False)


async def drive_async(provider: ClientProvider, steps: Steps[T]) -> T:
    outcome: Any = None
    while True:
        try:
            action = steps.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if type(action) is Send:
            try:
                client = await provider.async_()
            except _CLIENT_ERRORS as error:
                outcome = Failed(error, sent=False)
                continue
            outcome = await transport.exchange_async(
                client, provider.is_cluster, action.commands, action.slot, action.node, action.ask
            )
        elif type(action) is Sleep:
            outcome = await asyncio.sleep(action.seconds)  # type: ignore[func-returns-value]
        elif type(action) is Reconnect:
            outcome = None
            try:
                if action.to_cluster:
                    provider.switch_to_cluster()
                else:
                    await transport.reconnect_async(await provider.async_())
            except _CLIENT_ERRORS as error:
                outcome = Failed(error, sent=False)
        else:
            assert type(action) is ListPrimaries
            try:
                outcome = transport.primaries(await provider.async_())
            except _CLIENT_ERRORS as error:
                outcome = Failed(error, sent=False)
