"""Agent memory by message id: what other middleware and ``update_state`` do to the state.

A checkpointer (InMemorySaver, SqliteSaver) keeps the thread's state; the state is then
shrunk by ``RemoveMessage``, edited in place, summarized by LangChain's
SummarizationMiddleware. Every message a run added is stored once (the record is
append-only) and the model sees each run's new messages. Then the order of the
``after_agent`` hooks: a run that another middleware's ``after_agent`` makes raise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, SummarizationMiddleware
from langchain_core.messages import BaseMessage, HumanMessage, RemoveMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from redis_chat_history import InvalidArgumentError, RedisChatStore
from redis_chat_history.agents import RedisChatHistoryMiddleware
from redis_chat_history.demo import ScriptedChatModel, check_tool_order, lookup
from tests.test_agents import SYSTEM, ask, ids, make_agent


@pytest.fixture(params=["memory", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    if request.param == "memory":
        yield InMemorySaver()
        return
    connection = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    try:
        yield SqliteSaver(connection)
    finally:
        connection.close()


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def contents(messages: list[BaseMessage]) -> list[Any]:
    return [m.content for m in messages]


def two_turns(agent: Any, config: dict[str, Any]) -> list[BaseMessage]:
    agent.invoke(ask("my name is Bob"), config)
    agent.invoke(ask("please look up window"), config)
    messages: list[BaseMessage] = agent.get_state(config).values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "human", "ai", "tool", "ai"]
    return messages


# -- update_state ---------------------------------------------------------------------
def test_a_removed_message_stays_stored_and_the_next_question_is_stored_and_seen(
    redis_url: str, saver: BaseCheckpointSaver[Any]
) -> None:
    store = RedisChatStore(url=redis_url)
    agent, model = make_agent(store, checkpointer=saver)
    config = thread("removal")
    before = two_turns(agent, config)
    removed = before[1]  # the first answer
    agent.update_state(config, {"messages": [RemoveMessage(id=removed.id or "")]})
    result = agent.invoke(ask("what is new?"), config)
    new = result["messages"][-2:]
    assert contents(new)[0] == "what is new?"
    # The record is append-only: the removed answer stays, the new turn is stored once.
    stored = store.history("removal").messages
    assert ids(stored) == ids(before) + ids(new)
    # The model saw the new question, and not the removed answer.
    request = model.requests[-1]
    assert request[0].content == SYSTEM
    assert ids(request[1:]) == ids([m for m in before if m.id != removed.id]) + ids(new[:1])
    # Later runs keep both rules.
    agent.invoke(ask("and then?"), config)
    assert len(store.history("removal").messages) == 10
    assert removed.id not in ids(model.requests[-1])
    assert contents(model.requests[-1])[-1] == "and then?"


def test_an_edit_is_what_the_model_sees_and_the_record_keeps_what_was_said(
    redis_url: str, saver: BaseCheckpointSaver[Any]
) -> None:
    store = RedisChatStore(url=redis_url)
    agent, model = make_agent(store, checkpointer=saver)
    config = thread("edit")
    before = two_turns(agent, config)
    agent.update_state(config, {"messages": [HumanMessage("my name is ALICE", id=before[0].id)]})
    result = agent.invoke(ask("what is my name?"), config)
    new = result["messages"][-2:]
    stored = store.history("edit").messages
    assert ids(stored) == ids(before) + ids(new)
    assert stored[0].content == "my name is Bob"  # what was said
    request = model.requests[-1]
    assert ids(request[1:]) == ids(before) + ids(new[:1])
    assert request[1].content == "my name is ALICE"
    assert not any("Bob" in str(m.content) for m in request if m.type == "human")
    assert "'my name is ALICE'" in str(new[1].content)  # the answer used the edit


# -- other middleware ------------------------------------------------------------------
@pytest.mark.parametrize("memory_first", [True, False], ids=["memory-first", "summary-first"])
def test_a_summary_changes_what_the_model_sees_never_the_record(
    redis_url: str, saver: BaseCheckpointSaver[Any], memory_first: bool
) -> None:
    store = RedisChatStore(url=redis_url)
    model = ScriptedChatModel()
    memory = RedisChatHistoryMiddleware(store, window=4)
    summary = SummarizationMiddleware(
        ScriptedChatModel(), trigger=("messages", 5), keep=("messages", 2)
    )
    middleware: list[AgentMiddleware[Any, Any, Any]] = (
        [memory, summary] if memory_first else [summary, memory]
    )
    agent = create_agent(
        model, tools=[lookup], system_prompt=SYSTEM, middleware=middleware, checkpointer=saver
    )
    config = thread("summary")
    questions = [f"question {n}" if n % 2 else f"please look up topic{n}" for n in range(6)]
    added: list[BaseMessage] = []
    for n, question in enumerate(questions):
        before = len(model.requests)
        run: list[BaseMessage] = [HumanMessage(question, id=f"question-{n}")]
        for update in agent.stream({"messages": run[:1]}, config, stream_mode="updates"):
            for node in ("model", "tools"):
                run += (update.get(node) or {}).get("messages", [])
        added += run
        # every model call of the run saw its question
        for request in model.requests[before:]:
            assert question in contents(request)
    summarized = agent.get_state(config).values["messages"]
    assert any(m.additional_kwargs.get("lc_source") == "summarization" for m in summarized)
    assert len(summarized) < len(added)
    stored = store.history("summary").messages
    assert len(added) == 18 and ids(stored) == ids(added)  # every message, once, in order
    check_tool_order(stored)
    assert not any(m.additional_kwargs.get("lc_source") for m in stored)  # no summary


# -- the order of the after_agent hooks -------------------------------------------------
class Guard(AgentMiddleware[Any, Any, Any]):
    """Refuses, after the run, an answer that says 'forbidden'."""

    def after_agent(self, state: Any, runtime: Any) -> None:
        if "forbidden" in str(state["messages"][-1].content):
            raise RuntimeError("the guard refused the answer")


def test_memory_first_a_raising_guard_leaves_nothing_stored(redis_url: str) -> None:
    store = RedisChatStore(url=redis_url)
    memory = RedisChatHistoryMiddleware(store)
    agent = create_agent(ScriptedChatModel(), tools=[lookup], middleware=[memory, Guard()])
    memory.check_order(agent)  # memory's after_agent is the run's last step
    config = {"configurable": {"session_id": "guarded"}}
    agent.invoke(ask("hello"), config)
    with pytest.raises(RuntimeError, match="guard refused"):
        agent.invoke(ask("say forbidden"), config)
    assert contents(store.history("guarded").messages)[0] == "hello"
    assert len(store.history("guarded").messages) == 2


def test_the_unsafe_order_is_detected(redis_url: str) -> None:
    store = RedisChatStore(url=redis_url)
    memory = RedisChatHistoryMiddleware(store)
    agent = create_agent(ScriptedChatModel(), tools=[lookup], middleware=[Guard(), memory])
    with pytest.raises(InvalidArgumentError, match="Guard runs its after_agent after") as error:
        memory.check_order(agent)
    assert "first in middleware=[...]" in str(error.value)
    # Middleware without an after_agent hook may come anywhere.
    alone = create_agent(ScriptedChatModel(), middleware=[AgentMiddleware(), memory])
    memory.check_order(alone)
