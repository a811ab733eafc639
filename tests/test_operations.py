"""Plans and the decisions of a call, checked without a server (no redis-server needed).

What each operation sends and how it reads the reply (the operations package), how a writer token
is filled in (writers.py), and what a reply or a failure makes a call do next
(execution._Call): all of it is plain data and functions.
"""

from __future__ import annotations

import threading

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from redis import exceptions as redis_errors

from redis_chat_history import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PermissionDeniedError,
    PoolExhaustedError,
    RedisUnavailableError,
    RetryPolicy,
    WriteOutcomeUnknownError,
)
from redis_chat_history import execution as execution_module
from redis_chat_history.codec import encode_message
from redis_chat_history.execution import _Call
from redis_chat_history.operations import (
    APPEND,
    MAX_EXPIRE_SECONDS,
    WRITER,
    Plan,
    append_plan,
    batch_plan,
    count_plan,
    delete_last_plan,
    delete_plan,
    expire_plan,
    expires_in_plan,
    is_companion_key,
    persist_plan,
    read_plan,
    replace_plan,
    scan_plan,
    size_plan,
    writers_key,
)
from redis_chat_history.provider import ClientProvider
from redis_chat_history.settings import ReplicaWait, Settings
from redis_chat_history.urls import parse_url
from redis_chat_history.writers import WriterToken, acquire, release

KEY = "message_store:s1"
HI = encode_message(HumanMessage("hi"))
HELLO = encode_message(AIMessage("hello"))


# -- plans validate their own arguments ---------------------------------------------
@pytest.mark.parametrize(
    ("build", "error", "text"),
    [
        (lambda: read_plan(KEY, limit=0), InvalidArgumentError, "limit must be >= 1"),
        (lambda: read_plan(KEY, limit=-3), InvalidArgumentError, "limit must be >= 1"),
        (lambda: read_plan(KEY, limit=True), InvalidArgumentTypeError, "limit must be an int"),
        (lambda: delete_last_plan(KEY, 0), InvalidArgumentError, "n must be >= 1"),
        (lambda: delete_last_plan(KEY, 1.0), InvalidArgumentTypeError, "n must be an int"),  # type: ignore[arg-type]
        (lambda: append_plan(KEY, [], ttl=None, max_messages=None), InvalidArgumentError,
         "at least one message"),
        (lambda: append_plan(KEY, [HI], ttl=-1, max_messages=None), InvalidArgumentError,
         "ttl must be >= 0"),
        (lambda: append_plan(KEY, [HI], ttl=2**63, max_messages=None), InvalidArgumentError,
         "ttl must be <="),
        (lambda: append_plan(KEY, [HI], ttl=None, max_messages=0), InvalidArgumentError,
         "max_messages must be >= 1"),
        (lambda: append_plan(KEY, HI, ttl=None, max_messages=None), InvalidArgumentTypeError,
         "sequence of bytes"),  # type: ignore[arg-type]
        (lambda: expire_plan(KEY, 0), InvalidArgumentError, "seconds must be >= 1"),
        (lambda: expire_plan(KEY, MAX_EXPIRE_SECONDS + 1), InvalidArgumentError,
         "seconds must be <="),
        (lambda: count_plan(""), InvalidArgumentError, "non-empty str"),
        (lambda: scan_plan(-1, "x*"), InvalidArgumentError, "cursor must be >= 0"),
    ],
)  # fmt: skip
def test_plans_refuse_arguments_that_would_send_something_else(
    build: object, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        build()  # type: ignore[operator]


def test_reads_send_what_they_say() -> None:
    assert read_plan(KEY, limit=20).commands[0].args == ("LRANGE", KEY, 0, 19)
    assert read_plan(KEY).commands[0].args == ("LRANGE", KEY, 0, -1)
    assert count_plan(KEY).commands[0].args == ("LLEN", KEY)
    # LLEN before PTTL: a key of another type is refused instead of answered for
    assert [c.args for c in expires_in_plan(KEY).commands] == [("LLEN", KEY), ("PTTL", KEY)]
    assert scan_plan(0, "message_store:*").commands[0].args[-2:] == ("TYPE", "list")
    assert [c.args[0] for c in size_plan(KEY, memory=True).commands] == ["LLEN", "MEMORY"]
    assert [c.args[0] for c in size_plan(KEY, memory=False).commands] == ["LLEN"]
    for plan in (read_plan(KEY), count_plan(KEY), expires_in_plan(KEY)):
        assert not plan.writes and plan.idempotent


def test_reads_parse_replies() -> None:
    newest_first = [HELLO, HI]
    assert read_plan(KEY).parse([newest_first]) == [HumanMessage("hi"), AIMessage("hello")]
    assert expires_in_plan(KEY).parse([2, 1500]) == 1.5
    assert expires_in_plan(KEY).parse([0, -2]) is None
    assert scan_plan(0, "x*").parse([[b"17", [b"a", b"b"]]]) == (17, [b"a", b"b"])
    assert size_plan(KEY, memory=True).parse([3, 700]) == (3, 700)


def test_every_write_is_a_script_with_a_writer_token_and_a_plain_twin() -> None:
    writes = [
        append_plan(KEY, [HI, HELLO], ttl=60, max_messages=10),
        delete_last_plan(KEY, 2),
        replace_plan(KEY, [HI], ttl=None),
        delete_plan(KEY),
        expire_plan(KEY, 30),
        persist_plan(KEY),
    ]
    for plan in writes:
        assert plan.writes and plan.idempotent and plan.has_writer
        (command,) = plan.commands
        assert command.args[0] == "EVALSHA" and command.args[2] == 2
        assert command.args[3:5] == (KEY, writers_key(KEY))  # both keys named: Cluster, ACL
        assert command.args[5] is WRITER
        assert plan.plain is not None
        plain = plan.plain()
        assert plain.writes and not plain.idempotent  # plain writes are never re-sent
        assert not plain.has_writer


def test_append_plan_and_its_plain_twin() -> None:
    plan = append_plan(KEY, [HI, HELLO], ttl=60, max_messages=10)
    assert plan.commands[0].args[6:] == (60, 10, HI, HELLO)  # oldest first: LPUSH order
    assert plan.commands[0].script is APPEND
    assert plan.parse([[1, 5]]) == 5 and plan.parse([[0, 5]]) == 5  # a re-send: same result
    assert plan.plain is not None
    assert [c.args for c in plan.plain().commands] == [
        ("LPUSH", KEY, HI, HELLO),
        ("LTRIM", KEY, 0, 9),
        ("EXPIRE", KEY, 60),
    ]
    bare = append_plan(KEY, [HI], ttl=None, max_messages=None)
    assert bare.plain is not None and [c.args[0] for c in bare.plain().commands] == ["LPUSH"]


def test_a_resent_delete_last_returns_nothing_and_removes_nothing_more() -> None:
    plan = delete_last_plan(KEY, 2)
    assert plan.parse([[1, [HELLO, HI]]]) == [HumanMessage("hi"), AIMessage("hello")]
    assert plan.parse([[0, 2]]) == []


def test_companion_keys() -> None:
    assert writers_key(KEY).startswith(KEY + "\x00h{")
    assert is_companion_key(writers_key(KEY)) and not is_companion_key(KEY)
    settings = Settings.build()
    with pytest.raises(InvalidArgumentError, match="names a key this package keeps"):
        settings.key(writers_key("message_store:alice")[len("message_store:") :])


# -- writer tokens ---------------------------------------------------------------------
def test_writer_token_fills_four_arguments_in_place_and_marks_re_sends() -> None:
    token = WriterToken("abc0", 26, 310)
    args = append_plan(KEY, [HI], ttl=None, max_messages=None).commands[0].as_eval()
    filled = token.fill(args, 5)
    assert filled[0] == "EVAL" and filled[5:9] == ("abc0", "1a", 310, "0")
    assert filled[9:] == (0, 0, HI)
    assert token.fill(args, 5)[5:9] == ("abc0", "1a", 310, "1")  # every later send: a re-send
    sha_first = WriterToken("abc0", 27, 310)
    command = append_plan(KEY, [HI], ttl=None, max_messages=None).commands[0]
    assert sha_first.fill(command.args, 5)[8] == "0"
    # the EVAL after a NOSCRIPT reply is not a re-send: that EVALSHA ran nothing
    assert sha_first.fill(command.as_eval(), 5)[8] == "0"
    assert sha_first.fill(command.as_eval(), 5)[8] == "1"


def test_concurrent_calls_never_share_a_writer_and_sequences_increase() -> None:
    policy = RetryPolicy()
    seen: list[tuple[str, int]] = []
    first, second = acquire(KEY, policy), acquire(KEY, policy)
    assert first.writer != second.writer  # two calls in flight on one key
    seen += [(first.writer, first.sequence), (second.writer, second.sequence)]
    release(KEY, first)
    release(KEY, second)
    third = acquire(KEY, policy)
    assert third.writer == first.writer and third.sequence > second.sequence  # reused, later
    assert third.window_seconds == 310
    release(KEY, third)

    def worker() -> None:
        for _ in range(200):
            token = acquire(KEY, policy)
            seen.append((token.writer, token.sequence))
            release(KEY, token)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in {w for w, _ in seen}:
        sequences = [s for w, s in seen if w == writer]
        assert len(set(sequences)) == len(sequences)  # never one number twice per writer


# -- retry policy ----------------------------------------------------------------------
def test_retry_policy_backoff_and_longest_call() -> None:
    policy = RetryPolicy(attempts=3, backoff_base=0.1, backoff_cap=0.5)
    for failures in range(1, 10):
        assert 0 <= policy.backoff(failures) <= min(0.5, 0.1 * 2 ** (failures - 1))
    assert RetryPolicy().longest_call_seconds == 310  # 10 sends of at most 31 s
    assert RetryPolicy(socket_timeout=None).longest_call_seconds == 600
    for bad in ({"attempts": -1}, {"backoff_cap": float("nan")}, {"socket_timeout": 0}):
        with pytest.raises(InvalidArgumentError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


# -- what a call does next (execution._Call) --------------------------------------------
def provider(attempts: int = 2) -> ClientProvider:
    return ClientProvider(parse_url("redis://127.0.0.1:1/0"), RetryPolicy(attempts=attempts))


def call_of(
    plan: Plan[object], attempts: int = 2, wait: ReplicaWait | None = None
) -> _Call[object]:
    return _Call(provider(attempts), plan, wait, WriterToken("w0", 1, 60), None)


def test_a_call_sends_the_plan_with_its_token_and_wait() -> None:
    plan = append_plan(KEY, [HI], ttl=None, max_messages=None)
    call = call_of(plan, wait=ReplicaWait(1, 500))  # type: ignore[arg-type]
    commands = call.commands()
    assert commands[0][:9] == ("EVALSHA", APPEND.sha, 2, KEY, writers_key(KEY), "w0", "1", 60, "0")
    assert commands[-1] == ("WAIT", 1, 500)
    step = call.replied([[1, 1], 1])
    assert step.done and step.value == 1


def test_noscript_moved_and_ask_are_followed() -> None:
    call = call_of(append_plan(KEY, [HI], ttl=None, max_messages=None))  # type: ignore[arg-type]
    step = call.replied([redis_errors.NoScriptError("NOSCRIPT No matching script")])
    assert not step.done and step.delay == 0 and call.commands()[0][0] == "EVAL"
    step = call.replied([redis_errors.AskError("1 127.0.0.1:7001")])
    assert call.ask == ("127.0.0.1", 7001) and call.commands()[0] == ("ASKING",)
    assert call.replied(["OK", [1, 2]]).value == 2  # ASKING's reply is not the plan's


def test_connection_failures_follow_the_policy() -> None:
    call = call_of(read_plan(KEY), attempts=2)  # type: ignore[arg-type]
    failure = redis_errors.ConnectionError("connection reset")
    assert not call.failed(failure, sent=True).done  # a read may be re-sent
    assert not call.failed(failure, sent=True).done
    with pytest.raises(RedisUnavailableError, match=r"127\.0\.0\.1:1"):
        call.failed(failure, sent=True)  # attempts used up


def test_an_unsafe_write_is_never_resent_once_sent() -> None:
    plain = append_plan(KEY, [HI], ttl=None, max_messages=None).plain
    assert plain is not None
    call = call_of(plain())  # type: ignore[arg-type]
    assert not call.failed(redis_errors.ConnectionError("refused"), sent=False).done
    with pytest.raises(WriteOutcomeUnknownError, match="may or may not have been applied"):
        call.failed(redis_errors.TimeoutError("timed out"), sent=True)


def test_a_client_race_before_sending_is_a_connection_failure() -> None:
    call = call_of(read_plan(KEY))  # type: ignore[arg-type]
    race = AttributeError("'NoneType' object has no attribute 'writelines'")
    assert not call.failed(race, sent=False).done
    assert not call.failed(race, sent=False).done
    with pytest.raises(RedisUnavailableError, match=r"cannot reach Redis at .*writelines"):
        call.failed(race, sent=False)  # the policy's 2 attempts are spent


def test_a_full_pool_fails_at_once_naming_its_size() -> None:
    call = call_of(read_plan(KEY), attempts=5)  # type: ignore[arg-type]
    with pytest.raises(PoolExhaustedError, match=r"pool of 64\).*max_connections"):
        call.failed(redis_errors.ConnectionError("No connection available."), sent=False)


def test_refused_scripts_switch_to_plain_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution_module, "_plain_warned", True)  # no log noise here
    plan = append_plan(KEY, [HI], ttl=60, max_messages=None)
    call = call_of(plan)  # type: ignore[arg-type]
    error = redis_errors.ResponseError("RCHPLAIN ERR The user executing the script can't run")
    assert not call.replied([error]).done
    assert call.provider.scripts_refused and call.active.commands[0].args[0] == "LPUSH"
    assert [c[0] for c in call.commands()] == ["LPUSH", "EXPIRE"]
    assert call.replied([1, 1]).value == 1
    # a missing list command is not a reason to fall back: it is a permission error
    assert plan.plain is not None
    plain_call = call_of(plan.plain())  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedError):
        plain_call.replied([redis_errors.NoPermissionError("NOPERM lpush"), 1])
    # part of a plain pipeline applied: never sent again, even for a reply that is retried
    with pytest.raises(RedisUnavailableError):
        call_of(plan.plain()).replied([1, redis_errors.TryAgainError("TRYAGAIN")])  # type: ignore[arg-type]


def test_stale_master_and_busy_replies_are_retried_then_reported() -> None:
    call = call_of(read_plan(KEY), attempts=1)  # type: ignore[arg-type]
    step = call.replied([redis_errors.ReadOnlyError("READONLY You can't write against a replica")])
    assert not step.done and call.reconnect
    with pytest.raises(RedisUnavailableError):
        call.replied([redis_errors.TryAgainError("TRYAGAIN")])


def test_batch_plan_sends_reads_together_and_splits_replies() -> None:
    plans = [size_plan("message_store:a", memory=True), size_plan("message_store:b", memory=False)]
    batch = batch_plan(plans)
    assert [c.args[0] for c in batch.commands] == ["LLEN", "MEMORY", "LLEN"]
    assert batch.parse([3, 900, 5]) == [(3, 900), (5, None)]
    with pytest.raises(InvalidArgumentError, match="only reads"):
        batch_plan([delete_plan(KEY)])
    with pytest.raises(InvalidArgumentError, match="at least one"):
        batch_plan([])


def test_a_cluster_map_still_settling_is_waited_for_under_the_policy() -> None:
    call = call_of(read_plan(KEY), attempts=2)  # type: ignore[arg-type]
    moved = redis_errors.MovedError("1 127.0.0.1:7001")
    steps = [call.replied([moved]) for _ in range(4)]  # redirects: sent again at once
    assert all(not step.done and step.delay == 0 for step in steps)
    assert not call.replied([moved]).done  # then per the policy, with backoff
    assert not call.replied([moved]).done
    with pytest.raises(RedisUnavailableError, match="cannot serve"):
        call.replied([moved])
