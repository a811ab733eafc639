"""Agent memory across a crash between the Redis write and the checkpoint that records it.

The run's messages reach Redis; the checkpoint saying so is never committed: an asyncio
cancellation while the write's reply is held in a proxy, or SIGKILL of the process that
runs the agent (SqliteSaver). Re-running the thread must store nothing twice, and the
model must see the turn once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from redis_chat_history import RedisChatStore
from redis_chat_history.demo import ScriptedChatModel
from redis_chat_history.retry import RetryPolicy
from tests.proxy import ReplyDroppingProxy
from tests.servers import RedisProcess
from tests.test_agents import ask, ids, make_agent

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


async def await_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class HoldingModel(ScriptedChatModel):
    """Calls ``on_hold`` answering a tool result that says 'hold': the write after it is held."""

    on_hold: Any = None

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        last = messages[-1]
        if last.type == "tool" and "hold" in str(last.content) and self.on_hold is not None:
            self.on_hold()
        return super()._generate(messages, *args, **kwargs)


def assert_seen_once(request: list[BaseMessage], turn: list[BaseMessage]) -> None:
    seen = ids(request[1:])
    assert len(seen) == len(set(seen)), "the model saw a message twice"
    for message in turn:
        assert seen.count(message.id) == 1


def test_cancelled_while_the_reply_is_in_flight(redis7: RedisProcess) -> None:
    proxy = ReplyDroppingProxy(redis7.port)
    direct = redis7.client()
    key = "message_store:cancelled"
    try:
        # No socket timeout: the held reply waits as long as the test needs. And with one,
        # redis-py sends each command inside asyncio.wait_for, which on Python < 3.12
        # swallows a cancellation landing as the send completes (the write applied, its
        # task not yet resumed): the task then waits for the held reply, the cancel lost.
        store = RedisChatStore(url=proxy.url, retry=RetryPolicy(socket_timeout=None))
        model = HoldingModel(on_hold=proxy.hold_replies)
        agent, _ = make_agent(store, model, checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "cancelled"}}

        async def scenario() -> dict[str, Any]:
            await agent.ainvoke(ask("hello"), config)
            task = asyncio.create_task(agent.ainvoke(ask("please look up hold"), config))
            # the turn is in Redis; its reply waits in the proxy
            await await_for(lambda: direct.llen(key) == 6, "the held write to be applied")
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            proxy.release_replies()
            return await agent.ainvoke(ask("what did you look up?"), config)

        result = asyncio.run(scenario())
    finally:
        proxy.close()
        direct.close()
    state = result["messages"]
    assert [m.type for m in state] == ["human", "ai", "human", "ai", "tool", "ai", "human", "ai"]
    stored = store.history("cancelled").messages
    assert ids(stored) == ids(state)  # the held turn once, then the next one
    assert_seen_once(model.requests[-1], state[2:6])
    assert "I looked up: window" not in str(state[-1].content)
    assert "I looked up: hold" in str(state[-1].content)


CHILD = textwrap.dedent(
    """
    import sqlite3, sys, time
    from langgraph.checkpoint.sqlite import SqliteSaver
    from redis_chat_history import RedisChatStore
    from redis_chat_history.agents import RedisChatHistoryMiddleware
    from tests.test_agents import ask, make_agent

    url, database = sys.argv[1], sys.argv[2]
    store_once = RedisChatHistoryMiddleware.after_agent

    def after_agent(self, state, runtime, config=None):
        update = store_once(self, state, runtime, config)
        print("stored", flush=True)
        time.sleep(600)  # the test kills this process here: no checkpoint records the write
        return update

    RedisChatHistoryMiddleware.after_agent = after_agent
    saver = SqliteSaver(sqlite3.connect(database, check_same_thread=False))
    agent, _ = make_agent(RedisChatStore(url=url), checkpointer=saver)
    # durability="sync": each step's checkpoint is on disk before the next step runs, so the
    # kill lands after the checkpoint that precedes the write (not before a background flush)
    agent.invoke(
        ask("please look up window"), {"configurable": {"thread_id": "killed"}}, durability="sync"
    )
    """
)


def test_killed_after_the_write_with_sqlite(redis7: RedisProcess, tmp_path: Path) -> None:
    database = tmp_path / "checkpoints.db"
    direct = redis7.client()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, redis7.url, str(database)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: direct.llen("message_store:killed") == 4 or child.poll() is not None,
            "the child's write",
            timeout=60,
        )
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        direct.close()
    connection = sqlite3.connect(database, check_same_thread=False)
    try:
        store = RedisChatStore(url=redis7.url)
        agent, model = make_agent(store, checkpointer=SqliteSaver(connection))
        config = {"configurable": {"thread_id": "killed"}}
        assert agent.get_state(config).next == ("RedisChatHistoryMiddleware.after_agent",)
        agent.invoke(None, config)  # the run resumes at the write
        assert store.history("killed").count() == 4
        result = agent.invoke(ask("what did you look up?"), config)
    finally:
        connection.close()
    state = result["messages"]
    stored = store.history("killed").messages
    assert [m.type for m in stored] == ["human", "ai", "tool", "ai", "human", "ai"]
    assert ids(stored) == ids(state)
    assert_seen_once(model.requests[-1], state[:4])
