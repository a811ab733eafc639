"""The package's deterministic chat model (scripted_model.py): binds tools, refuses bad orders."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from redis_chat_history.scripted_model import ScriptedChatModel, check_tool_order


@tool
def lookup(topic: str) -> str:
    """Look up a topic."""
    return f"{topic}: found"


def test_bind_tools_makes_it_call_the_tool_and_answer_with_the_result() -> None:
    model = ScriptedChatModel()
    bound = model.bind_tools([lookup])
    call = bound.invoke([HumanMessage("please look up Redis", id="h1")])
    (tool_call,) = call.tool_calls
    assert (tool_call["name"], tool_call["args"]) == ("lookup", {"topic": "redis"})
    result = ToolMessage(lookup.invoke(tool_call["args"]), tool_call_id=tool_call["id"])
    answer = bound.invoke([HumanMessage("please look up Redis", id="h1"), call, result])
    assert answer.content == "Here is what I found: redis: found"
    assert len(model.requests) == 2  # the bound copy records into the same list


def test_without_tools_it_answers_from_what_it_sees() -> None:
    model = ScriptedChatModel(answers={"hello": "Hi."})
    assert model.invoke("hello").content == "Hi. (I can see 0 earlier questions of yours.)"
    reply = model.invoke([HumanMessage("first"), AIMessage("ok"), HumanMessage("look up x")])
    assert reply.tool_calls == []
    assert reply.content == (
        "You said: look up x (I can see 1 earlier questions of yours, the first one: 'first'.)"
    )


def test_it_refuses_tool_results_apart_from_their_call() -> None:
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {}, "id": "c1"}])
    check_tool_order([HumanMessage("q"), call, ToolMessage("r", tool_call_id="c1")])
    with pytest.raises(ValueError, match="tool result for 'c1'"):
        ScriptedChatModel().invoke([HumanMessage("q"), ToolMessage("r", tool_call_id="c1")])
    with pytest.raises(ValueError, match="unanswered tool calls"):
        check_tool_order([HumanMessage("q"), call])
