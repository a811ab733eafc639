"""The call machine (call.py), driven through every path with scripted replies: no server.

Each test plays the server: it answers each :class:`Send` with a list of replies (error
replies as redis-py exception values, as transport.py reads them) or a ``Failed``, and
records every action the machine yields.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from redis import exceptions as redis_errors

from redis_chat_history import (
    PermissionDeniedError,
    PoolExhaustedError,
    RedisUnavailableError,
    RetryPolicy,
    WriteOutcomeUnknownError,
    WrongTypeError,
)
from redis_chat_history import call as call_module
from redis_chat_history.call import ListPrimaries, Reconnect, Send, Sleep, call, primaries
from redis_chat_history.codec import encode_message
from redis_chat_history.errors import (
    CommandError,
    NotEnoughReplicasError,
    OutOfMemoryError,
    ReplicationError,
)
from redis_chat_history.operations import APPEND, append_plan, read_plan, writers_key
from redis_chat_history.provider import ClientProvider
from redis_chat_history.retry import EXTRA_SENDS
from redis_chat_history.settings import ReplicaWait
from redis_chat_history.transport import Failed
from redis_chat_history.urls import parse_url

KEY = "message_store:s1"
SLOT = 10825  # key_slot(KEY)
HI = encode_message(HumanMessage("hi"))
Reply = list[Any] | Failed | Callable[[Send], list[Any] | Failed]


def provider(attempts: int = 2, *, probe: bool = False, **policy: Any) -> ClientProvider:
    spec = parse_url("redis://:s3cret-pw@127.0.0.1:1/0")
    return ClientProvider(spec, RetryPolicy(attempts=attempts, **policy), probe_server=probe)


class Server:
    """Answers each Send with the next scripted reply; records every action."""

    def __init__(self, provider: ClientProvider, *replies: Reply) -> None:
        self.provider = provider
        self.replies: Iterator[Reply] = iter(replies)
        self.actions: list[Any] = []

    @property
    def sends(self) -> list[Send]:
        return [action for action in self.actions if type(action) is Send]

    def drive(self, steps: Any) -> Any:
        outcome: Any = None
        while True:
            try:
                action = steps.send(outcome)
            except StopIteration as done:
                return done.value
            self.actions.append(action)
            outcome = None
            if type(action) is Send or type(action) is ListPrimaries:
                reply = next(self.replies)
                outcome = reply(action) if callable(reply) else reply
            elif type(action) is Reconnect and action.to_cluster:
                self.provider.switch_to_cluster()  # no client built: a change of mode only

    def run(self, plan: Any, wait: ReplicaWait | None = None) -> Any:
        return self.drive(call(self.provider, plan, wait))


def append() -> Any:
    return append_plan(KEY, [HI], ttl=60, max_messages=None)


def error_of(text: str) -> Exception:
    from redis_chat_history.transport import typed_error

    return typed_error(text)


# -- the common paths -------------------------------------------------------------------
def test_a_read_is_one_send_of_its_commands() -> None:
    server = Server(provider(), [[]])
    assert server.run(read_plan(KEY)) == []
    assert [send.commands for send in server.sends] == [[("LRANGE", KEY, 0, -1)]]
    assert server.sends[0].slot is None and server.actions == server.sends


def test_a_write_carries_its_token_and_wait_and_checks_the_replicas() -> None:
    server = Server(provider(), [[1, 1], 1])
    assert server.run(append(), ReplicaWait(1, 500)) == 1
    commands = server.sends[0].commands
    assert commands[0][:6] == ("EVALSHA", APPEND.sha, 2, KEY, writers_key(KEY), commands[0][5])
    assert commands[-1] == ("WAIT", 1, 500)
    with pytest.raises(ReplicationError, match="only 0 of 1 replicas"):
        Server(provider(), [[1, 2], 0]).run(append(), ReplicaWait(1, 500))


def test_noscript_is_sent_again_as_eval() -> None:
    server = Server(provider(), [redis_errors.NoScriptError("No matching script")], [[1, 3]])
    assert server.run(append()) == 3
    assert [send.commands[0][0] for send in server.sends] == ["EVALSHA", "EVAL"]
    assert server.sends[1].commands[0][1] == APPEND.source


def test_moved_switches_a_plain_url_to_cluster_and_routes_by_slot() -> None:
    p = provider()
    server = Server(p, [error_of("MOVED 1234 127.0.0.1:7001")], [[1, 1]])
    assert server.run(append()) == 1
    assert [type(a).__name__ for a in server.actions] == ["Send", "Reconnect", "Send"]
    assert server.actions[1].to_cluster and p.is_cluster  # sent again at once
    assert server.sends[0].slot is None and server.sends[1].slot == SLOT
    # on a Cluster, MOVED re-reads the slot map instead
    server = Server(p, [error_of("MOVED 1 127.0.0.1:7002")], [[1, 1]])
    server.run(append())
    assert not server.actions[1].to_cluster


def test_ask_sends_asking_to_the_named_node_and_drops_its_reply() -> None:
    server = Server(provider(), [error_of("ASK 12539 127.0.0.1:7003")], ["OK", [1, 2]])
    assert server.run(append()) == 2
    second = server.sends[1]
    assert second.ask == ("127.0.0.1", 7003) and second.commands[0] == ("ASKING",)


def test_a_map_still_settling_is_waited_for_under_the_policy_then_reported() -> None:
    moved = error_of("MOVED 1 127.0.0.1:7001")
    server = Server(provider(attempts=2), *[[moved]] * 10)
    with pytest.raises(RedisUnavailableError, match="cannot serve"):
        server.run(read_plan(KEY))
    # EXTRA_SENDS redirects at once, then the policy's 2 attempts, each after a backoff
    assert len(server.sends) == 1 + EXTRA_SENDS + 2
    assert sum(type(a) is Sleep for a in server.actions) == 2


def test_stale_master_reconnects_and_busy_waits_then_both_are_reported() -> None:
    readonly = error_of("READONLY You can't write against a read only replica.")
    server = Server(provider(attempts=1), [readonly], [[1, 1]])
    assert server.run(append()) == 1
    assert [type(a).__name__ for a in server.actions] == ["Send", "Reconnect", "Sleep", "Send"]
    with pytest.raises(RedisUnavailableError, match="cannot serve"):
        Server(provider(attempts=1), [error_of("TRYAGAIN x")], [error_of("LOADING y")]).run(
            read_plan(KEY)
        )


# -- connection failures and pools -------------------------------------------------------
def test_connection_failures_follow_the_policy() -> None:
    reset = Failed(redis_errors.ConnectionError("connection reset"), sent=True)
    server = Server(provider(attempts=2), reset, reset, reset)
    with pytest.raises(RedisUnavailableError, match=r"cannot reach Redis at 127\.0\.0\.1:1"):
        server.run(read_plan(KEY))
    assert len(server.sends) == 3  # the first and two re-sends


def test_an_unsafe_write_is_never_resent_once_sent() -> None:
    plain = append().plain()
    refused = Failed(redis_errors.ConnectionError("refused"), sent=False)
    lost = Failed(redis_errors.TimeoutError("timed out"), sent=True)
    server = Server(provider(), refused, lost)
    with pytest.raises(WriteOutcomeUnknownError, match="may or may not have been applied"):
        server.run(plain)
    assert len(server.sends) == 2  # not sent, so sent again; then sent: never again
    # part of a plain pipeline applied: not sent again, even for a reply that is retried
    with pytest.raises(RedisUnavailableError):
        Server(provider(), [1, redis_errors.TryAgainError("TRYAGAIN")]).run(plain)


def test_a_client_race_before_sending_is_a_connection_failure() -> None:
    race = Failed(AttributeError("'NoneType' object has no attribute 'writelines'"), sent=False)
    server = Server(provider(attempts=2), race, race, race)
    with pytest.raises(RedisUnavailableError, match=r"cannot reach Redis at .*writelines"):
        server.run(read_plan(KEY))


def test_a_blocking_pool_that_waited_fails_at_once_naming_its_size() -> None:
    full = Failed(redis_errors.ConnectionError("No connection available."), sent=False)
    server = Server(provider(attempts=5), full)
    with pytest.raises(PoolExhaustedError, match=r"busy for 15 s \(pool of 64\).*max_connections"):
        server.run(read_plan(KEY))


def test_a_pool_that_refuses_at_once_is_waited_for_then_reported_truly() -> None:
    """Cluster and Sentinel pools refuse at once: the call waits as long as a blocking pool."""
    full = Failed(redis_errors.MaxConnectionsError("Too many connections"), sent=False)
    p = provider(connect_timeout=0.04, socket_timeout=0.04)  # pool_timeout 0.08 s
    server = Server(p, *[full] * 10_000)
    clock = [100.0]

    def drive_with_time(steps: Any) -> Any:
        outcome: Any = None
        while True:
            try:
                action = steps.send(outcome)
            except StopIteration as done:
                return done.value
            server.actions.append(action)
            if type(action) is Sleep:
                clock[0] += action.seconds
                outcome = None
            else:
                outcome = full

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(call_module, "_clock", lambda: clock[0])
        with pytest.raises(PoolExhaustedError, match=r"busy for 0\.08\d* s") as raised:
            drive_with_time(call(p, read_plan(KEY)))
    sleeps = [a.seconds for a in server.actions if type(a) is Sleep]
    assert all(0 < s <= 0.05 for s in sleeps) and 0.08 <= sum(sleeps) < 0.0811
    assert raised.value.__cause__ is None


# -- refusals: only a permission refusal switches to plain writes ------------------------
def test_a_permission_refusal_switches_to_plain_writes_and_is_rechecked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    p = provider()
    refused = redis_errors.ResponseError(
        "RCHPLAIN NOPERM User old has no permissions to run the 'time' command"
    )
    server = Server(p, [refused], [1, 1])
    assert server.run(append()) == 1
    assert [c[0] for c in server.sends[1].commands] == ["LPUSH", "EXPIRE"]
    assert p.plain_now()
    assert Server(p, [1, 1]).run(append()) == 1  # plain at once meanwhile, no script tried
    warnings = [r.getMessage() for r in caplog.records if "plain commands" in r.getMessage()]
    assert len(warnings) == 1 and "tried again every 300 s" in warnings[0]
    p.plain_until = 0.0  # the re-check time came: a script again
    server = Server(p, [[1, 2]])
    assert server.run(append()) == 2 and server.sends[0].commands[0][0] == "EVALSHA"


@pytest.mark.parametrize(
    "reply",
    [
        "NOPERM this user has no permissions to run the 'evalsha' command",  # the script itself
        "RCHPLAIN ERR The user executing the script can't run this command or subcommand",
        "RCHPLAIN ERR unknown command 'TIME'",  # renamed away
    ],
)
def test_what_counts_as_scripts_refused(reply: str) -> None:
    p = provider()
    Server(p, [error_of(reply)], [1, 1]).run(append())
    assert p.plain_now()


@pytest.mark.parametrize(
    ("reply", "raised"),
    [
        ("RCHPLAIN OOM command not allowed when used memory > 'maxmemory'.", OutOfMemoryError),
        ("RCHPLAIN NOREPLICAS Not enough good replicas to write.", NotEnoughReplicasError),
        ("RCHPLAIN NOPERM No permissions to access a key", PermissionDeniedError),
        ("RCHPLAIN ERR something else", CommandError),
    ],
)
def test_other_refusals_are_errors_of_that_call(reply: str, raised: type) -> None:
    p = provider()
    server = Server(p, [error_of(reply)])
    with pytest.raises(raised):
        server.run(append())
    assert not p.plain_now() and len(server.sends) == 1


def test_a_stale_master_inside_a_script_is_retried_with_scripts() -> None:
    p = provider()
    readonly = error_of("RCHPLAIN READONLY You can't write against a read only replica.")
    server = Server(p, [readonly], [[1, 4]])
    assert server.run(append()) == 4
    assert type(server.actions[1]) is Reconnect and not p.plain_now()
    assert server.sends[1].commands[0][0] == "EVALSHA"


def test_a_wrong_type_is_named_after_a_type_lookup() -> None:
    wrong = error_of("WRONGTYPE Operation against a key holding the wrong kind of value")
    server = Server(provider(), [wrong], [b"string"])
    with pytest.raises(WrongTypeError, match=r"holds a Redis string"):
        server.run(append())
    assert server.sends[1].commands == [("TYPE", KEY)]
    with pytest.raises(WrongTypeError, match=r"a Redis value that is not a list"):
        Server(provider(), [wrong], Failed(OSError("gone"), sent=True)).run(read_plan(KEY))


# -- the first call of a url sends INFO --------------------------------------------------
def info(policy: str, maxmemory: int = 1 << 20, cluster: int = 0) -> bytes:
    return (
        f"# Memory\r\nmaxmemory:{maxmemory}\r\nmaxmemory_policy:{policy}\r\n"
        f"# Cluster\r\ncluster_enabled:{cluster}\r\n"
    ).encode()


def test_the_first_call_reads_info_and_a_cluster_is_switched_to() -> None:
    p = provider(probe=True)
    server = Server(p, [info("noeviction", cluster=1), [1, 1]])
    assert server.run(append()) == 1
    assert server.sends[0].commands[0] == ("INFO",)
    assert any(type(a) is Reconnect and a.to_cluster for a in server.actions) and p.is_cluster
    later = Server(p, [[1, 1]])
    later.run(append())
    assert later.sends[0].commands[0][0] == "EVALSHA"  # once per url


@pytest.mark.parametrize(
    ("policy", "maxmemory", "says"),
    [
        ("volatile-lru", 1 << 20, "stored twice"),
        ("volatile-ttl", 1 << 20, "stored twice"),
        ("allkeys-lru", 1 << 20, "stored messages and whole histories"),
        ("noeviction", 1 << 20, None),
        ("allkeys-lru", 0, None),  # no maxmemory: nothing is evicted
    ],
)
def test_an_eviction_policy_is_named_once(
    caplog: pytest.LogCaptureFixture, policy: str, maxmemory: int, says: str | None
) -> None:
    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    p = provider(probe=True)
    Server(p, [info(policy, maxmemory), 1]).run(_count())
    Server(p, [1]).run(_count())
    warnings = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert len(warnings) == (1 if says else 0)
    if says:
        assert says in warnings[0] and policy in warnings[0] and "s3cret" not in warnings[0]


def test_info_refused_warns_of_nothing_and_a_failed_probe_is_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    p = provider(attempts=0, probe=True)
    with pytest.raises(RedisUnavailableError):
        Server(p, Failed(OSError("refused"), sent=False)).run(_count())
    server = Server(p, [error_of("NOPERM no permissions to run the 'info' command"), 5])
    assert server.run(_count()) == 5 and server.sends[0].commands[0] == ("INFO",)
    assert p.mode == "standalone" and not caplog.records


def test_a_listing_probes_an_unknown_url_then_lists_masters() -> None:
    p = provider(attempts=1, probe=True)
    nodes = ["m1", "m2"]
    reset = Failed(redis_errors.ConnectionError("reset"), sent=False)
    server = Server(p, [info("noeviction", cluster=1)], reset, nodes)
    assert server.drive(primaries(p, "message_store:*")) == nodes
    assert p.is_cluster and sum(type(a) is ListPrimaries for a in server.actions) == 2


# -- bounds: sends and the exactly-once window ------------------------------------------
_TROUBLE: list[Exception | Failed] = [
    redis_errors.NoScriptError("No matching script"),
    error_of("MOVED 1 127.0.0.1:7001"),
    error_of("ASK 1 127.0.0.1:7001"),
    error_of("TRYAGAIN multi-key"),
    error_of("READONLY replica"),
    error_of("RCHPLAIN READONLY replica"),
    Failed(redis_errors.ConnectionError("reset"), sent=True),
    Failed(redis_errors.TimeoutError("timed out"), sent=True),
    Failed(redis_errors.ConnectionError("refused"), sent=False),
]


def _answer(trouble: Exception | Failed) -> Callable[[Send], list[Any] | Failed]:
    """The reply of every command of the send: OK to ASKING, ``trouble`` to the plan's."""

    def answer(send: Send) -> list[Any] | Failed:
        if isinstance(trouble, Failed):
            return trouble
        return ["OK"] * (len(send.commands) - 1) + [trouble]

    return answer


@pytest.mark.parametrize("attempts", [0, 1, 3])
def test_a_call_never_sends_more_than_its_window_allows(attempts: int) -> None:
    rng = random.Random(attempts)
    most = 0
    for _ in range(300):
        p = provider(attempts=attempts)
        server = Server(p, *[_answer(rng.choice(_TROUBLE)) for _ in range(50)])
        with pytest.raises((RedisUnavailableError, CommandError)):
            server.run(append())
        sent = [s for s in server.sends if s.commands != [("TYPE", KEY)]]
        assert len(sent) <= p.policy.max_sends == 1 + attempts + EXTRA_SENDS
        assert len(sent) * p.policy.send_seconds <= p.policy.longest_call_seconds
        most = max(most, len(sent))
    assert most == 1 + attempts + EXTRA_SENDS  # the bound is reached, not just respected


def test_no_resend_once_it_could_outlive_the_window() -> None:
    """Sends that take longer than budgeted (slow reconnects): the clock stops re-sends."""
    p = provider(attempts=50)
    clock = [100.0]
    starts: list[float] = []
    lost = Failed(redis_errors.TimeoutError("timed out"), sent=True)

    def slow(send: Send) -> Failed:
        starts.append(clock[0])  # the first send within its budget, the others 4 times it
        clock[0] += p.policy.send_seconds * (4 if len(starts) > 1 else 1)
        return lost

    server = Server(p, *[slow] * 60)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(call_module, "_clock", lambda: clock[0])
        with pytest.raises(RedisUnavailableError):
            server.run(append())
    longest, each = p.policy.longest_call_seconds, p.policy.send_seconds
    assert all(start - starts[0] + each <= longest for start in starts)
    assert len(starts) == 15 < p.policy.max_sends  # 55 sends allowed, the time ran out first


# -- no secret in any exception chain ----------------------------------------------------
def test_a_raised_error_carries_no_redis_py_error() -> None:
    echoed = redis_errors.AuthenticationError("invalid password 's3cret-pw'")
    with pytest.raises(PermissionDeniedError) as raised:
        Server(provider(), Failed(echoed, sent=False)).run(read_plan(KEY))
    error = raised.value
    assert error.__cause__ is None and error.__context__ is None
    text = "".join(traceback.format_exception(error)) + repr(error)
    assert "s3cret" not in text and "refused the credentials" in text


def _count() -> Any:
    from redis_chat_history.operations import count_plan

    return count_plan(KEY)
