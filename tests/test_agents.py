"""Agent memory: create_agent with RedisChatHistoryMiddleware on real Redis servers.

The model is :class:`ScriptedChatModel` (deterministic, binds tools): it refuses any
request where a tool result does not follow the AI message that called it, and records
every request, so each test can assert on exactly what the model saw.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_community.chat_message_histories import (
    RedisChatMessageHistory as CommunityHistory,
)
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from redis_chat_history import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RedisChatMessageHistory,
    RedisChatStore,
    RetryPolicy,
    close_shared_clients,
)
from redis_chat_history import history as history_module
from redis_chat_history.agents import RedisChatHistoryMiddleware
from redis_chat_history.demo import ScriptedChatModel, check_tool_order, lookup
from tests.servers import RedisProcess, SentinelGroup
from tests.test_security import HISTORY_COMMANDS, PASSWORD, set_user

SYSTEM = "You are a test assistant."
#: Three turns: plain, with a tool call, plain (8 messages stored).
SCRIPT = ["hello there", "please look up window", "what did you look up?"]


class ExplodingModel(ScriptedChatModel):
    """Raises while ``explode`` is set, after recording the request."""

    explode: bool = True

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        if self.explode and "explode" in str(messages[-1].content):
            raise RuntimeError("the model provider is down")
        return super()._generate(messages, *args, **kwargs)


def make_agent(
    store: RedisChatStore,
    model: ScriptedChatModel | None = None,
    *,
    window: int | None = 40,
    tools: list[Any] | None = None,
    **kwargs: Any,
) -> tuple[Any, ScriptedChatModel]:
    model = model if model is not None else ScriptedChatModel()
    middleware = RedisChatHistoryMiddleware(store, window=window, **kwargs.pop("memory", {}))
    agent = create_agent(
        model,
        tools=tools if tools is not None else [lookup],
        system_prompt=SYSTEM,
        middleware=[middleware],
        **kwargs,
    )
    return agent, model


def ask(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def session(name: str) -> dict[str, Any]:
    return {"configurable": {"session_id": name}}


def shape(messages: list[BaseMessage]) -> list[tuple[Any, ...]]:
    """What a message says, without ids and times (equal across runs of the same script)."""
    shaped: list[tuple[Any, ...]] = []
    for m in messages:
        calls = [(c["name"], c["args"]) for c in m.tool_calls] if isinstance(m, AIMessage) else []
        shaped.append((m.type, m.content, calls))
    return shaped


def ids(messages: list[BaseMessage]) -> list[str | None]:
    return [m.id for m in messages]


#: A conversation the old class stored before the agent existed, with a tool call.
EARLIER: list[BaseMessage] = [
    HumanMessage("earlier question", id="stored-1"),
    AIMessage(
        "",
        id="stored-2",
        tool_calls=[{"name": "lookup", "args": {"topic": "x"}, "id": "c-old", "type": "tool_call"}],
    ),
    ToolMessage("earlier result", tool_call_id="c-old", id="stored-3"),
    AIMessage("earlier answer", id="stored-4"),
]


@pytest.fixture(params=["standalone", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    """A clean standalone server (the newest), then a clean cluster."""
    if request.param == "standalone":
        server: RedisProcess = request.getfixturevalue("redis7")
        return server.url
    return str(request.getfixturevalue("cluster_url"))


# -- the scripted model --------------------------------------------------------------
def test_scripted_model_refuses_a_tool_result_apart_from_its_call() -> None:
    call = EARLIER[1]
    check_tool_order(EARLIER)
    with pytest.raises(ValueError, match="did not call"):
        check_tool_order([EARLIER[0], EARLIER[2], EARLIER[3]])
    with pytest.raises(ValueError, match="without results"):
        check_tool_order([call, HumanMessage("next")])
    model = ScriptedChatModel().bind_tools([lookup])
    with pytest.raises(ValueError, match="did not call"):
        model.invoke(EARLIER[2:])
    reply = model.invoke([HumanMessage("look up window")])
    assert isinstance(reply, AIMessage) and reply.tool_calls[0]["args"] == {"topic": "window"}


# -- which conversation --------------------------------------------------------------
def runtime(context: Any = None) -> Runtime[Any]:
    return Runtime(context=context)


def test_session_is_looked_up_in_order() -> None:
    store = RedisChatStore(url="redis://127.0.0.1:1/0")
    by_config = RedisChatHistoryMiddleware(store)
    both = {"configurable": {"session_id": "s", "thread_id": "t"}}
    assert by_config.session_of(runtime(), both) == "s"
    assert by_config.session_of(runtime(), {"configurable": {"thread_id": "t"}}) == "t"
    assert by_config.session_of(runtime({"session_id": "ctx"}), both) == "ctx"

    class Context:
        session_id = "attr"

    assert by_config.session_of(runtime(Context()), both) == "attr"
    by_callable = RedisChatHistoryMiddleware(store, session_id=lambda rt: f"user-{rt.context}")
    assert by_callable.session_of(runtime(42), both) == "user-42"
    assert RedisChatHistoryMiddleware(store, session_id="fixed").session_of(runtime(), both) == (
        "fixed"
    )
    with pytest.raises(InvalidArgumentTypeError, match="callable"):
        RedisChatHistoryMiddleware(store, session_id=lambda rt: ["x"]).session_of(runtime(), None)


def test_bad_arguments_are_refused_when_built() -> None:
    store = RedisChatStore(url="redis://127.0.0.1:1/0")
    with pytest.raises(InvalidArgumentError, match="window must be >= 1"):
        RedisChatHistoryMiddleware(store, window=0)
    with pytest.raises(InvalidArgumentTypeError, match="window must be an int"):
        RedisChatHistoryMiddleware(store, window="40")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError, match="RedisChatStore"):
        RedisChatHistoryMiddleware("redis://localhost")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError, match="session_id"):
        RedisChatHistoryMiddleware(store, session_id=7)  # type: ignore[arg-type]


def test_no_session_is_a_value_error_before_any_io() -> None:
    # Nothing listens on port 1: any Redis call would fail with a connection error.
    store = RedisChatStore(url="redis://127.0.0.1:1/0", retry=RetryPolicy(attempts=0))
    agent, model = make_agent(store)
    for call in (
        lambda: agent.invoke(ask("hi")),
        lambda: asyncio.run(agent.ainvoke(ask("hi"))),
        lambda: list(agent.stream(ask("hi"), {"configurable": {"other": 1}})),
    ):
        with pytest.raises(ValueError, match="session_id") as raised:
            call()
        text = str(raised.value)
        assert "callable" in text and "context" in text and "thread_id" in text
    assert model.requests == []


# -- what the model sees, what is stored ---------------------------------------------
def test_model_sees_system_then_window_then_the_run(url: str) -> None:
    store = RedisChatStore(url=url, ttl=600)
    store.history("s").add_messages(EARLIER)
    agent, model = make_agent(store, window=2)  # 2 messages: extended back to the question
    result = agent.invoke(ask("new question"), session("s"))
    (request,) = model.requests
    assert isinstance(request[0], SystemMessage) and request[0].content == SYSTEM
    assert request[1:5] == EARLIER and ids(request[1:5]) == ids(EARLIER)
    assert shape(request[5:]) == shape([HumanMessage("new question")])
    # The result holds this run's messages only, and exactly those were appended.
    assert [m.type for m in result["messages"]] == ["human", "ai"]
    assert set(result) == {"messages"}
    stored = store.history("s").messages
    assert stored == EARLIER + result["messages"]
    assert "earlier question" in str(result["messages"][1].content)  # it remembered


def test_tool_calls_are_stored_in_order_and_seen_next_time(url: str) -> None:
    store = RedisChatStore(url=url)
    agent, model = make_agent(store)
    results = [agent.invoke(ask(text), session("t"))["messages"] for text in SCRIPT]
    assert [len(r) for r in results] == [2, 4, 2]
    stored = store.history("t").messages
    assert stored == [m for run in results for m in run]
    assert isinstance(stored[3], AIMessage) and stored[3].tool_calls[0]["name"] == "lookup"
    assert (
        isinstance(stored[4], ToolMessage)
        and stored[4].tool_call_id == stored[3].tool_calls[0]["id"]
    )
    # The third run's model call saw the earlier turns, tool call included.
    assert ids(model.requests[-1][1:-1]) == ids(stored[:6])
    assert "I looked up: window" in str(results[2][1].content)


def test_old_class_reads_what_the_middleware_stored(redis_url: str) -> None:
    store = RedisChatStore(url=redis_url)
    agent, _ = make_agent(store)
    for text in SCRIPT:
        agent.invoke(ask(text), session("compat"))
    ours = store.history("compat").messages
    theirs = CommunityHistory("compat", url=redis_url).messages
    assert theirs == ours and len(theirs) == 8
    assert isinstance(theirs[3], AIMessage) and theirs[3].tool_calls == ours[3].tool_calls  # type: ignore[attr-defined]


def collect_messages(value: Any) -> Iterator[BaseMessage]:
    if isinstance(value, BaseMessage):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from collect_messages(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from collect_messages(item)


MODES = ["values", "updates", "messages"]


def test_streams_carry_only_the_runs_messages(url: str) -> None:
    store = RedisChatStore(url=url)
    store.history("st").add_messages(EARLIER)
    agent, _ = make_agent(store)
    events = list(agent.stream(ask("please look up once"), session("st"), stream_mode=MODES))
    assert {mode for mode, _ in events} == set(MODES)
    stored = store.history("st").messages
    run_ids = set(ids(stored[len(EARLIER) :]))
    assert len(run_ids) == 4
    streamed = list(collect_messages([chunk for _, chunk in events]))
    assert streamed and {m.id for m in streamed} <= run_ids
    assert not {m.id for m in streamed} & set(ids(EARLIER))


def test_invoke_stream_ainvoke_astream_store_the_same(url: str) -> None:
    store = RedisChatStore(url=url)
    agent, _ = make_agent(store)
    for text in SCRIPT:
        agent.invoke(ask(text), session("invoke"))
        for _ in agent.stream(ask(text), session("stream"), stream_mode=MODES):
            pass

    async def run_async() -> None:
        for text in SCRIPT:
            await agent.ainvoke(ask(text), session("ainvoke"))
            async for _ in agent.astream(ask(text), session("astream"), stream_mode=MODES):
                pass

    asyncio.run(run_async())
    for name in ("invoke", "stream", "ainvoke", "astream"):
        check_tool_order(store.history(name).messages)  # ids differ, their pairing does not
    shapes = {
        name: shape(store.history(name).messages)
        for name in ("invoke", "stream", "ainvoke", "astream")
    }
    assert len(shapes["invoke"]) == 8
    for name, value in shapes.items():
        assert value == shapes["invoke"], name


def test_async_hooks_make_only_async_redis_calls(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_blocking_call(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a blocking Redis call on the event loop")

    store = RedisChatStore(url=redis_url)
    agent, _ = make_agent(store)
    monkeypatch.setattr(history_module, "run", no_blocking_call)

    async def scenario() -> None:
        for text in SCRIPT:
            await agent.ainvoke(ask(text), session("a"))

    asyncio.run(scenario())
    monkeypatch.undo()
    assert len(store.history("a").messages) == 8


def test_history_written_by_the_old_class_is_the_agents_memory(redis_url: str) -> None:
    old = CommunityHistory("legacy", url=redis_url, ttl=600)
    for message in EARLIER:
        old.add_message(message)
    store = RedisChatStore(url=redis_url)
    agent, model = make_agent(store, window=3)
    agent.invoke(ask("do you remember?"), session("legacy"))
    assert model.requests[0][1:5] == EARLIER
    assert len(CommunityHistory("legacy", url=redis_url).messages) == 6


# -- exactly once, with a checkpointer -----------------------------------------------
def test_checkpointer_state_is_not_stored_or_shown_twice(url: str) -> None:
    store = RedisChatStore(url=url)
    agent, model = make_agent(store, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "thread-1"}}
    for text in SCRIPT * 2:
        agent.invoke(ask(text), config)
    state = agent.get_state(config).values["messages"]
    stored = store.history("thread-1").messages
    assert len(stored) == 16 and ids(stored) == ids(state)
    for request in model.requests:
        seen = [i for i in ids(request[1:])]
        assert len(seen) == len(set(seen))  # never the checkpointer's copy beside Redis's
    # The last call saw the stored window and this run's question, nothing else.
    assert ids(model.requests[-1][1:-1]) == ids(stored[:-2][-40:])


@tool
def approve(topic: str) -> str:
    """Ask a person to approve looking something up."""
    answer = interrupt({"topic": topic})
    return f"approved by {answer}"


def test_interrupted_run_is_stored_once_when_resumed(url: str) -> None:
    store = RedisChatStore(url=url)
    agent, _ = make_agent(store, tools=[approve], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "hitl"}}
    agent.invoke(ask("hello"), config)
    paused = agent.invoke(ask("please look up secrets"), config)
    assert paused.get("__interrupt__")
    history = store.history("hitl")
    assert len(history.messages) == 2  # nothing of the paused run yet
    resumed = agent.invoke(Command(resume="alice"), config)
    stored = history.messages
    assert [m.type for m in stored] == ["human", "ai", "human", "ai", "tool", "ai"]
    assert stored[4].content == "approved by alice"
    assert ids(stored) == ids(resumed["messages"])
    agent.invoke(ask("thanks"), config)
    assert len(history.messages) == 8 and len(set(ids(history.messages))) == 8


def test_async_interrupt_and_resume(redis_url: str) -> None:
    store = RedisChatStore(url=redis_url)
    agent, _ = make_agent(store, tools=[approve], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "ahitl"}}

    async def scenario() -> None:
        await agent.ainvoke(ask("please look up x"), config)
        assert await store.history("ahitl").acount() == 0
        await agent.ainvoke(Command(resume="bob"), config)

    asyncio.run(scenario())
    assert [m.type for m in store.history("ahitl").messages] == ["human", "ai", "tool", "ai"]


# -- a run that raises stores nothing ------------------------------------------------
def test_a_raising_run_stores_nothing(url: str) -> None:
    store = RedisChatStore(url=url)
    agent, model = make_agent(store, ExplodingModel())
    agent.invoke(ask("hello"), session("boom"))
    with pytest.raises(RuntimeError, match="provider is down"):
        agent.invoke(ask("please explode"), session("boom"))
    with pytest.raises(RuntimeError):
        asyncio.run(agent.ainvoke(ask("explode again"), session("boom")))
    stored = store.history("boom").messages
    assert [(m.type, m.content) for m in stored][:1] == [("human", "hello")]
    assert [m.type for m in stored] == ["human", "ai"]
    assert len(model.requests) == 1  # the raising runs never reached the model's reply


def test_with_a_checkpointer_the_retried_run_is_stored_once(redis_url: str) -> None:
    store = RedisChatStore(url=redis_url)
    model = ExplodingModel()
    agent, _ = make_agent(store, model, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "retry"}}
    with pytest.raises(RuntimeError):
        agent.invoke(ask("explode now"), config)
    assert store.history("retry").count() == 0
    model.explode = False
    agent.invoke(None, config)  # retry the failed step from the checkpoint
    stored = store.history("retry").messages
    assert [m.type for m in stored] == ["human", "ai"] and stored[0].content == "explode now"


# -- everywhere ----------------------------------------------------------------------
def two_turns(store: RedisChatStore, name: str) -> list[BaseMessage]:
    agent, _ = make_agent(store, window=3)
    agent.invoke(ask("please look up window"), session(name))
    asyncio.run(agent.ainvoke(ask("and then?"), session(name)))
    return store.history(name).messages


def test_through_sentinel(sentinel_group: SentinelGroup) -> None:
    store = RedisChatStore(url=sentinel_group.url(db=3), ttl=60)
    store.delete("sentinel-agent")
    assert [m.type for m in two_turns(store, "sentinel-agent")] == [
        "human",
        "ai",
        "tool",
        "ai",
        "human",
        "ai",
    ]


def test_with_a_minimal_acl_user(redis7: RedisProcess) -> None:
    admin = redis7.client()
    try:
        set_user(admin, HISTORY_COMMANDS)
        store = RedisChatStore(url=f"redis://chat:{PASSWORD}@127.0.0.1:{redis7.port}/0", ttl=60)
        assert len(two_turns(store, "acl-agent")) == 6
        close_shared_clients()
    finally:
        admin.execute_command("ACL", "DELUSER", "chat")
        admin.close()


def test_on_the_embedded_server(tmp_path: Path) -> None:
    from redis_chat_history.embedded import stop_all

    try:
        store = RedisChatStore(url=f"embedded://{tmp_path}")
        assert len(two_turns(store, "laptop")) == 6
    finally:
        close_shared_clients()
        stop_all()


# -- the history class without BaseChatMessageHistory ---------------------------------
def test_history_works_when_langchain_core_drops_the_base_class(redis_url: str) -> None:
    script = textwrap.dedent(
        f"""
        import langchain_core.chat_history as chat_history
        del chat_history.BaseChatMessageHistory  # as a future langchain-core may
        from langchain_core.messages import AIMessage, HumanMessage
        from redis_chat_history import RedisChatMessageHistory, RedisChatStore
        history = RedisChatMessageHistory("future", url={redis_url!r})
        history.add_messages([HumanMessage("q"), AIMessage("a")])
        history.add_user_message("q2")
        assert [m.content for m in history.messages] == ["q", "a", "q2"], history.messages
        assert [m.content for m in history.get_messages(1, whole_turns=True)] == ["q2"]
        assert len(RedisChatStore(url={redis_url!r}).history("future")) == 3
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert [m.content for m in RedisChatMessageHistory("future", url=redis_url).messages] == [
        "q",
        "a",
        "q2",
    ]


# -- the README's custom LangGraph node ------------------------------------------------
def test_a_custom_langgraph_node_with_whole_turns(redis_url: str) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    store = RedisChatStore(url=redis_url)
    store.history("user-7").add_messages(EARLIER)
    model = ScriptedChatModel()
    system_message = SystemMessage(SYSTEM)

    def respond(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        history = store.history(config["configurable"]["thread_id"])
        window = history.get_messages(2, whole_turns=True)  # starts at a human message
        reply = model.invoke([system_message, *window, *state["messages"]])
        history.add_messages([*state["messages"], reply])  # one atomic write
        return {"messages": [reply]}

    graph = StateGraph(MessagesState).add_node(respond).add_edge(START, "respond")
    app = graph.add_edge("respond", END).compile()
    result = app.invoke(ask("next"), {"configurable": {"thread_id": "user-7"}})
    assert model.requests[0][1:5] == EARLIER  # 2 messages, extended back to the question
    assert store.history("user-7").messages == EARLIER + result["messages"]
