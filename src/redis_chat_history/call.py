"""One call of a :class:`~redis_chat_history.operations.Plan`, decided without I/O.

:func:`call` is a generator, the way h11 is a protocol machine that never touches a
socket: it yields *actions* (:class:`Send` these commands to this node, :class:`Sleep`,
:class:`Reconnect`) and is sent their outcome (the replies, error replies as values, or
a :class:`~redis_chat_history.transport.Failed`). It holds every decision: send again as
EVAL after NOSCRIPT, follow MOVED and ASK, switch to Cluster, re-read a failed-over
master (READONLY), wait out busy replies and full pools, retry a broken connection under
the :class:`~redis_chat_history.retry.RetryPolicy`, fall back to plain writes when the
server refuses scripts to this user, check WAIT, look up a wrong type, raise this
package's errors. The drivers (:mod:`redis_chat_history.execution`) only perform actions.

A request is re-sent after it may have reached the server only when the plan is
idempotent (reads, and writes carrying a writer token: see writers.py), never more than
``policy.max_sends`` times and never after ``policy.longest_call_seconds``: the window
the server remembers a writer token for. Otherwise the call raises.

Errors are raised without the redis-py error attached (its text may hold what a server
echoed, a password included): messages carry only the redacted text.

Example (what a test does; a driver does the same with a socket)::

    steps = call(provider, count_plan("message_store:s1"))
    send = next(steps)              # Send(commands=[('LLEN', 'message_store:s1')], ...)
    try:
        steps.send([3])
    except StopIteration as done:
        assert done.value == 3
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.crc import key_slot

from redis_chat_history import transport, writers
from redis_chat_history.errors import (
    WriteOutcomeUnknownError,
    WrongTypeError,
)
from redis_chat_history.operations import Plan
from redis_chat_history.provider import ClientProvider
from redis_chat_history.refusals import (
    pool_exhausted,
    refuses_scripts,
    translate,
    unreachable,
    unwrap,
    warn_plain,
)
from redis_chat_history.replication import ReplicaWait
from redis_chat_history.retry import EXTRA_SENDS
from redis_chat_history.transport import Failed

T = TypeVar("T")


_clock = time.monotonic  # tests replace it to skip time
#: How often a call looks again for a free connection of a pool that refuses at once.
POOL_POLL_SECONDS = (0.001, 0.05)


class Send:
    """Send ``commands`` in one write on one connection; the outcome is one reply each.

    Routed to ``node`` when given, else to ``ask`` (host, port) after an ASK reply, else
    to the Cluster node serving ``slot`` (None: the one server).
    """

    __slots__ = ("ask", "commands", "node", "slot")

    def __init__(
        self, commands: list[tuple[Any, ...]], slot: int | None, node: Any, ask: Any
    ) -> None:
        self.commands = commands
        self.slot = slot
        self.node = node
        self.ask = ask

    def __repr__(self) -> str:
        return f"Send({self.commands!r}, slot={self.slot}, node={self.node}, ask={self.ask})"


class Sleep:
    """Wait ``seconds``; the outcome is None."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"Sleep({self.seconds:.3f})"


class Reconnect:
    """Drop the connections (Sentinel finds the master again) or re-read a Cluster's slots;
    with ``to_cluster``, rebuild the clients as Cluster clients. Outcome: None or Failed."""

    __slots__ = ("to_cluster",)

    def __init__(self, to_cluster: bool = False) -> None:
        self.to_cluster = to_cluster

    def __repr__(self) -> str:
        return f"Reconnect(to_cluster={self.to_cluster})"


class ListPrimaries:
    """The nodes a listing visits (every Cluster master, else [None]); or Failed."""

    __slots__ = ()


Action = Send | Sleep | Reconnect | ListPrimaries
Steps = Generator[Action, Any, T]


class _Budget:
    """What a call may still do: re-sends under the policy, extra sends, time."""

    __slots__ = ("extra", "failures", "pool_since", "provider", "started")

    pool_since: float | None

    def __init__(self, provider: ClientProvider, timed: bool) -> None:
        self.provider = provider
        self.failures = 0
        self.extra = 0
        self.pool_since = None
        # Made when the first send's outcome is not a success: that send began at most
        # send_seconds ago (kept off the hot path: no clock read for a call that succeeds).
        self.started = _clock() - provider.policy.send_seconds if timed else 0.0

    def retry(self, error: BaseException, key: str) -> float:
        """Seconds to wait before a re-send under the policy; raises when none is left."""
        policy = self.provider.policy
        if self.failures >= policy.attempts or self._too_late():
            raise unreachable(self.provider, key, error)
        self.failures += 1
        return policy.backoff(self.failures)

    def redirect(self, error: BaseException, key: str) -> float:
        """A redirect or fallback send (EXTRA_SENDS per call), then under the policy."""
        if self.extra < EXTRA_SENDS and not self._too_late():
            self.extra += 1
            return 0.0
        if isinstance(error, (redis_errors.MovedError, redis_errors.AskError)):
            # the Cluster's map is still settling (a failover, a reshard): wait, per the policy
            return self.retry(error, key)
        raise translate(error, self.provider, key)

    def _too_late(self) -> bool:
        """A re-send now could still be on its way when the server forgets the writer token."""
        policy = self.provider.policy
        return bool(self.started) and (
            _clock() - self.started + policy.send_seconds > policy.longest_call_seconds
        )

    def pool_wait(self, error: BaseException) -> float:
        """Seconds until looking again for a free connection; raises after the pool timeout."""
        timeout = self.provider.policy.pool_timeout
        if transport.pool_waited(error):  # a blocking pool waited its timeout already
            raise pool_exhausted(self.provider, timeout)
        now = _clock()
        if self.pool_since is None:
            self.pool_since = now
        waited = now - self.pool_since
        if waited >= timeout:
            raise pool_exhausted(self.provider, waited)
        low, high = POOL_POLL_SECONDS
        return max(low, min(high, waited / 4, timeout - waited))


# ---------------------------------------------------------------------------
# The machine


def _commands(
    plan: Plan[Any],
    token: writers.WriterToken | None,
    as_eval: bool,
    prefix: list[tuple[Any, ...]] | None,
    wait: ReplicaWait | None,
) -> list[tuple[Any, ...]]:
    commands: list[tuple[Any, ...]] = prefix or []
    for command in plan.commands:
        args = command.as_eval() if as_eval and command.script else command.args
        if token is not None and command.writer_at is not None:
            args = token.fill(args, command.writer_at)
        commands.append(args)
    if wait is not None:
        commands.append(("WAIT", wait.replicas, wait.timeout_ms))
    return commands


def call(
    provider: ClientProvider,
    plan: Plan[T],
    wait: ReplicaWait | None = None,
    node: Any = None,
    *,
    probe: bool = False,
) -> Steps[T]:
    """The actions of one call of ``plan``; returns its parsed result (see the module doc).

    ``probe`` sends INFO with the plan even when the provider has read it already (a
    listing must know whether the server is a Cluster).
    """
    policy = provider.policy
    key = plan.key
    token = writers.acquire(key, policy) if plan.has_writer else None
    active = plan
    if plan.plain is not None and provider.plain_until > 0 and provider.plain_now():
        active = plan.plain()
    wait = wait if plan.writes else None
    probing = probe or (provider.unprobed and provider.claim_probe())
    budget: _Budget | None = None  # made at the first thing that is not a plain success
    as_eval = False
    ask: tuple[str, int] | None = None
    slot: int | None = None
    sends = 0
    try:
        while True:
            if node is None and slot is None and provider.is_cluster:
                slot = key_slot(key.encode("utf-8", "surrogateescape"))
            prefix: list[tuple[Any, ...]] | None = None
            if probing or ask:
                prefix = [("INFO",)] if probing else []
                if ask:
                    prefix.append(("ASKING",))
            outcome = yield Send(_commands(active, token, as_eval, prefix, wait), slot, node, ask)
            if type(outcome) is Failed:
                failure = outcome.error
                if budget is None:
                    budget = _Budget(provider, token is not None)
                if not outcome.sent and transport.is_pool_exhausted(failure):
                    yield Sleep(budget.pool_wait(failure))
                    continue
                if not transport.is_connection_failure(failure, outcome.sent):
                    raise translate(failure, provider, key)
                if outcome.sent:
                    sends += 1
                if outcome.sent and not active.idempotent:
                    raise WriteOutcomeUnknownError(
                        f"the connection to Redis at {provider.address} failed after a write "
                        f"to {key!r} was sent: it may or may not have been applied "
                        f"({provider.redact(str(failure))})"
                    )
                if sends >= policy.max_sends:
                    raise unreachable(provider, key, failure)
                delay = budget.retry(failure, key)
                # The failed connection is closed already (a Sentinel pool asks for the master
                # again when it reconnects); a Cluster node may have failed over.
                if provider.is_cluster:
                    yield Reconnect()
                yield Sleep(delay)
                continue
            replies: list[Any] = outcome
            sends += 1
            if prefix is None and wait is None:  # the common case, kept short
                for reply in replies:
                    if isinstance(reply, Exception):
                        break
                else:
                    return active.parse(replies)
            if probing:
                probing = False
                if provider.learn(replies.pop(0)):
                    yield Reconnect(to_cluster=True)
            if ask:
                replies.pop(0)
                ask = None
            wait_reply = replies.pop() if wait is not None else None
            refused = next((reply for reply in replies if isinstance(reply, Exception)), None)
            if refused is None and isinstance(wait_reply, Exception):
                refused = wait_reply
            if refused is None:
                if wait is not None:
                    wait.check(wait_reply, key)
                return active.parse(replies)
            error: Exception = refused
            # The server refused the request (so applied nothing of it, for a script).
            if budget is None:
                budget = _Budget(provider, token is not None)
            if not active.idempotent and any(not isinstance(r, Exception) for r in replies):
                # part of a plain pipeline was applied: sending it again could apply it twice
                raise translate(error, provider, key)
            if sends >= policy.max_sends:
                raise translate(error, provider, key)
            if isinstance(error, redis_errors.NoScriptError):
                as_eval = True
                delay = budget.redirect(error, key)
                if delay:
                    yield Sleep(delay)
                continue
            if isinstance(error, redis_errors.MovedError):
                # a slot moved (failover, resharding): re-read the map; or a Cluster after all
                delay = budget.redirect(error, key)
                yield Reconnect(to_cluster=not provider.is_cluster)
                if delay:
                    yield Sleep(delay)
                continue
            if isinstance(error, redis_errors.AskError):
                delay = budget.redirect(error, key)
                ask = (error.host, int(error.port))
                if delay:
                    yield Sleep(delay)
                continue
            error = unwrap(error)
            if active is plan and plan.plain is not None and refuses_scripts(error):
                budget.redirect(error, key)
                provider.refuse_scripts()
                warn_plain(provider, provider.redact(str(error)))
                active = plan.plain()
                continue
            if "WRONGTYPE" in str(error):
                kind = yield Send([("TYPE", key)], slot, node, None)
                name = kind[0] if type(kind) is list else None
                name = name.decode() if isinstance(name, bytes) else name
                what = (
                    f"a Redis {name}"
                    if isinstance(name, str)
                    else "a Redis value that is not a list"
                )
                raise WrongTypeError(
                    f"{key!r} holds {what}, so it is not a chat history (nothing was changed)",
                    key=key,
                )
            if isinstance(error, transport.BUSY_ERRORS):
                yield Sleep(budget.retry(error, key))
                continue
            if transport.is_stale_master(error):
                delay = budget.retry(error, key)
                yield Reconnect()
                yield Sleep(delay)
                continue
            raise translate(error, provider, key)
    finally:
        if token is not None:
            writers.release(key, token)
        if probing:
            provider.probe_again()


def primaries(provider: ClientProvider, pattern: str) -> Steps[list[Any]]:
    """The nodes a listing must visit: every master of a Cluster, else the server (None).

    A url whose kind is not known yet is probed first (INFO, through :func:`call`);
    finding the masters may need the network (the slot map): the retry policy applies,
    and ``pattern`` is named in errors.
    """
    if provider.mode == "auto":
        yield from call(provider, Plan((), pattern, _no_result), probe=True)
    budget = _Budget(provider, False)
    while True:
        outcome = yield ListPrimaries()
        if type(outcome) is not Failed:
            return outcome  # type: ignore[no-any-return]
        if not transport.is_connection_failure(outcome.error, sent=False):
            raise translate(outcome.error, provider, pattern)
        yield Sleep(budget.retry(outcome.error, pattern))


def _no_result(replies: list[Any]) -> None:
    return None
