"""Plans, checked without a server (no redis-server needed).

What each operation sends and how it reads the reply (the operations package) and how a writer
token is filled in (writers.py): all of it is plain data and functions. What a reply or a failure
makes a call do next is tests/test_call.py's.
"""

from __future__ import annotations

import threading
import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from redis_chat_history import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RetryPolicy,
)
from redis_chat_history.codec import encode_message
from redis_chat_history.operations import (
    APPEND,
    DELETE,
    EXPIRE,
    MAX_EXPIRE_SECONDS,
    REPLACE,
    WRITER,
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
    thread_keys,
    writers_key,
)
from redis_chat_history.settings import Settings
from redis_chat_history.writers import (
    EXPIRY_SPREAD,
    WriterToken,
    acquire,
    lifetime_of,
    reach,
    release,
)

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
        # every key named (Cluster, ACL): the history (delete, expire, replace: its thread's
        # keys too)
        named = thread_keys(KEY) if command.script in (DELETE, EXPIRE, REPLACE) else [KEY]
        count = len(named) + 1
        assert command.args[0] == "EVALSHA" and command.args[2] == count
        assert command.args[3 : 3 + count] == (*named, writers_key(KEY))
        assert command.args[3 + count] is WRITER
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
    # writer, entry (no proposed expiry: the script's own), lifetime (< 0: a re-send), expected
    assert filled[0] == "EVAL" and filled[5:9] == ("abc0", "1a,0,", 310, "")
    assert filled[9:] == (0, 0, HI)
    assert token.fill(args, 5)[5:9] == ("abc0", "1a,0,", -310, "")  # every later send
    sha_first = WriterToken("abc0", 27, 310)
    command = append_plan(KEY, [HI], ttl=None, max_messages=None).commands[0]
    assert sha_first.fill(command.args, 5)[7] == 310
    # the EVAL after a NOSCRIPT reply is not a re-send: that EVALSHA ran nothing
    assert sha_first.fill(command.as_eval(), 5)[7] == 310
    assert sha_first.fill(command.as_eval(), 5)[7] == -310


def test_a_writer_chains_its_next_writes_to_its_first_entry() -> None:
    """The first write proposes an expiry a lifetime ahead; the next ones expect that entry
    and keep its expiry, while within reach; a short policy chains too."""
    policy = RetryPolicy()
    key = KEY + "-chain"
    first = acquire(key, policy)
    lifetime = lifetime_of(policy.window_seconds, policy.send_seconds)
    assert first.lifetime == lifetime > policy.window_seconds and first.expected == ""
    sequence, expiry, rest = first.record.split(",")
    assert sequence == f"{first.sequence:x}" and rest == ""
    assert abs(int(expiry) - (time.time() + lifetime + 1 + EXPIRY_SPREAD // 2)) <= 1
    release(key, first)
    second = acquire(key, policy)
    assert second.expected == first.record and second.record.endswith(f",{expiry},")
    release(key, second)
    third = acquire(key, policy)
    assert third.expected == second.record and third.record == f"{third.sequence:x},{expiry},"
    other = acquire(key, policy)  # a concurrent call: another writer, its own first write
    assert other.writer != third.writer and other.expected == ""
    release(key, other)
    release(key, third)
    fast = RetryPolicy(attempts=0, socket_timeout=0.1, connect_timeout=0.1, backoff_cap=0)
    # a chain lasts half the spread, whatever the window: the lifetime covers that and a send
    assert reach(fast.window_seconds, lifetime_of(fast.window_seconds, fast.send_seconds),
                 fast.send_seconds) >= EXPIRY_SPREAD // 2  # fmt: skip
    short = acquire(key + "-short", fast)
    assert short.lifetime == lifetime_of(fast.window_seconds, fast.send_seconds)
    release(key + "-short", short)
    assert acquire(key + "-short", fast).expected == short.record


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
    assert third.window_seconds == policy.window_seconds
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


# -- batches ---------------------------------------------------------------------------
def test_batch_plan_sends_reads_together_and_splits_replies() -> None:
    plans = [size_plan("message_store:a", memory=True), size_plan("message_store:b", memory=False)]
    batch = batch_plan(plans)
    assert [c.args[0] for c in batch.commands] == ["LLEN", "MEMORY", "LLEN"]
    assert batch.parse([3, 900, 5]) == [(3, 900), (5, None)]
    with pytest.raises(InvalidArgumentError, match="only reads"):
        batch_plan([delete_plan(KEY)])
    with pytest.raises(InvalidArgumentError, match="at least one"):
        batch_plan([])


def test_a_chain_starts_again_once_a_lost_entry_would_refuse_its_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past half the spread, a server that lost the entry would replace the
    chain's expiry on the full path, and no later write would find what it expects: the
    writer proposes a new expiry instead."""
    policy, key = RetryPolicy(), KEY + "-renew"
    first = acquire(key, policy)
    release(key, first)
    chained = acquire(key, policy)
    assert chained.expected == first.record
    release(key, chained)
    real = time.monotonic
    monkeypatch.setattr(
        "redis_chat_history.writers.time.monotonic", lambda: real() + EXPIRY_SPREAD // 2
    )
    renewed = acquire(key, policy)
    assert renewed.expected == ""  # a new first write: the server checks its expiry again
    release(key, renewed)
