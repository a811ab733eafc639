"""Export, import and copy under concurrency and lost replies: exactly one whole copy, never doubled."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from langchain_core.messages import HumanMessage

from redis_chat_history import CommandError, RedisChatStore, operations
from redis_chat_history.execution import run
from redis_chat_history.operations import COMMIT, SNAPSHOT_READ, STAGE
from tests.proxy import ReplyDroppingProxy
from tests.servers import RedisProcess, wait_until
from tests.test_transfer import contents_of, staging_lists


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads released at once; re-raise the first error."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def work(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = calls[index]()
        except BaseException as error:  # reported below
            outcomes[index] = error

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


@pytest.mark.parametrize("overwrite", [False, True])
def test_concurrent_imports_and_copies_leave_exactly_one_whole_copy(
    redis7: RedisProcess, tmp_path: Path, overwrite: bool
) -> None:
    source = RedisChatStore(url=redis7.url, key_prefix="src:")
    expected = [f"m{i}" for i in range(5000)]
    source.history("s").add_messages([HumanMessage(text) for text in expected])
    path = tmp_path / "s.jsonl"
    source.export(path)
    target = RedisChatStore(url=redis7.url)
    client = redis7.client()
    try:
        for _round in range(4):
            target.delete("s")
            results = run_together(
                [
                    lambda: target.import_(path, overwrite=overwrite),
                    lambda: target.import_(path, overwrite=overwrite),
                    lambda: target.import_(path, overwrite=overwrite),
                    lambda: source.copy_to(target, ["s"], overwrite=overwrite),
                ]
            )
            assert contents_of(target, "s") == expected  # never doubled, mixed or empty
            written = sum(result.sessions_written for result in results)
            skipped = sum(result.sessions_skipped for result in results)
            assert (written, skipped) == ((4, 0) if overwrite else (1, 3))
            assert staging_lists(client) == []
        # a session that has messages is kept whole (or replaced whole) by concurrent runs
        target.delete("s")
        target.history("s").add_messages([HumanMessage("mine")])
        run_together([lambda: target.import_(path, overwrite=overwrite) for _ in range(3)])
        assert contents_of(target, "s") == (expected if overwrite else ["mine"])
    finally:
        client.close()


# -- every step may be re-sent after a lost reply ---------------------------------------------
@pytest.fixture
def lossy(redis7: RedisProcess) -> Iterator[ReplyDroppingProxy]:
    """A proxy that can lose replies, in front of ``redis7`` with the transfer scripts loaded."""
    client = redis7.client()
    try:
        for script in (STAGE, COMMIT, SNAPSHOT_READ):
            client.script_load(script.source)
    finally:
        client.close()
    proxy = ReplyDroppingProxy(redis7.port)
    yield proxy
    proxy.close()


def numbered_file(path: Path, count: int, session_id: str = "s") -> list[str]:
    store_lines = [
        {"format": "redis-chat-history-export", "version": 2},
        *(
            {"session_id": session_id, "position": i, "type": "human", "data": {"content": f"m{i}"}}
            for i in range(count)
        ),
        {"session_end": session_id, "messages": count},
        {"export_end": True, "sessions": 1, "messages": count},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in store_lines) + b"\n")
    return [f"m{i}" for i in range(count)]


@pytest.mark.parametrize(
    ("lost", "count", "at"),
    [("stage", 2500, 1000), ("commit", 2000, 2000), ("kept commit", 2000, 2000)],
)
def test_a_lost_reply_of_any_step_is_recognised_when_re_sent(
    redis7: RedisProcess,
    lossy: ReplyDroppingProxy,
    tmp_path: Path,
    lost: str,
    count: int,
    at: int,
) -> None:
    expected = numbered_file(tmp_path / "s.jsonl", count)
    store = RedisChatStore(url=lossy.url)
    direct = redis7.client()

    def progress(sessions: int, messages: int) -> None:
        if messages == at and lossy.dropped == 0 and not lossy._drop.is_set():
            if lost == "kept commit":  # another writer got there first
                direct.lpush(
                    "message_store:s", orjson.dumps({"type": "ai", "data": {"content": "x"}})
                )
            lossy.drop_next_reply()

    try:
        result = store.import_(tmp_path / "s.jsonl", progress=progress)
        assert lossy.dropped == 1
        if lost == "kept commit":
            assert (result.sessions_written, result.sessions_skipped) == (0, 1)
            assert contents_of(store, "s") == ["x"]
        else:
            assert (result.sessions_written, result.sessions_skipped) == (1, 0)
            assert contents_of(store, "s") == expected  # the batch was pushed once
        assert staging_lists(direct) == []
    finally:
        direct.close()


def test_the_commit_never_deletes_a_history_whose_staging_list_is_gone(
    redis7: RedisProcess,
) -> None:
    store = RedisChatStore(url=redis7.url)
    store.history("s").add_messages([HumanMessage("keep me")])
    key = store.key("s")
    plan = operations.commit_stage_plan(
        key, "0" * 16, staged=3, overwrite=True, expire_ms=None, remember_seconds=60
    )
    with pytest.raises(CommandError, match="staging list is gone"):
        run(store._provider, plan)
    assert contents_of(store, "s") == ["keep me"]
    # a stage that does not find the length it expects pushes nothing
    stage = operations.stage_plan(key, "0" * 16, [b"{}"], before=5)
    with pytest.raises(CommandError, match="holds 0 messages, 5 expected"):
        run(store._provider, stage)
    client = redis7.client()
    try:
        assert staging_lists(client) == []
    finally:
        client.close()


# -- a session being written is exported and copied as one consistent snapshot -----------------
class Appender:
    """Appends numbered batches of 50 to a history (max_messages=3000) until stopped."""

    def __init__(self, store: RedisChatStore, session_id: str) -> None:
        self.history = store.history(session_id)
        self.next = 0
        self.batches = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def append(self) -> None:
        self.history.add_messages([HumanMessage(str(self.next + i)) for i in range(50)])
        self.next += 50
        self.batches += 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.append()

    def __enter__(self) -> Appender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def assert_a_state_it_was_in(numbers: list[int]) -> None:
    """Every state of the list is 3,000 consecutive numbers ending at a batch boundary."""
    assert len(numbers) == 3000
    assert numbers == list(range(numbers[0], numbers[0] + 3000)), "gap or duplicate"
    assert (numbers[-1] + 1) % 50 == 0


@pytest.mark.parametrize("how", ["export", "copy"])
def test_a_session_being_written_is_read_as_one_snapshot(
    redis_url: str, tmp_path: Path, how: str
) -> None:
    store = RedisChatStore(url=redis_url, max_messages=3000)
    appender = Appender(store, "busy")
    for _ in range(60):
        appender.append()
    target = RedisChatStore(url=redis_url, key_prefix="copy:")
    written_during: list[int] = []  # batches the writer appended while a read was under way

    def progress(sessions: int, messages: int) -> None:
        # the first of the session's 3 windows is read: the writer appends (and trims) before
        # the other two are, however the threads are scheduled on a loaded machine
        if messages == 1000:
            before = appender.batches
            wait_until(lambda: appender.batches > before, 60, "a write during the read")
            written_during.append(appender.batches - before)

    with appender:
        for _attempt in range(4):
            seen = appender.batches
            wait_until(lambda seen=seen: appender.batches > seen, 60, "the writer appends")
            written_during.clear()
            if how == "export":
                out = io.BytesIO()
                store.export(out, ["busy"], progress=progress)
                lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
                numbers = [int(line["data"]["content"]) for line in lines if "position" in line]
            else:
                store.copy_to(target, ["busy"], overwrite=True, progress=progress)
                numbers = [int(text) for text in contents_of(target, "busy")]
            assert written_during, "the session was not written during the read"
            assert_a_state_it_was_in(numbers)
    client = redis.Redis.from_url(redis_url)
    try:
        assert staging_lists(client) == []  # no snapshot is left behind
    finally:
        client.close()
