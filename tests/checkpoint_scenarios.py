"""Scripted LangGraph scenarios for differential checkpointer tests.

Each scenario drives graphs compiled with the saver it is given through the public
LangGraph API (``invoke``, ``get_state``, ``get_state_history``, ``update_state``; their
``a``-prefixed twins when ``aio``) and records every output, state and history in a
:class:`Transcript`. Two savers behave alike when their transcripts are equal once
ids and timestamps are normalised (:meth:`Transcript.normalized`): ids are numbered by
first appearance, so the same ids in the same places compare equal and a checkpoint id
returned out of order does not.

Each scenario also asserts what it is about (an interrupt happened, the edit reached the
tool, the fork is a second branch ...), so a saver that loses everything cannot pass by
losing it the same way twice.

Example::

    reference = run_scenario("hitl_edit", InMemorySaver(), aio=False).normalized()
    assert run_scenario("hitl_edit", saver, aio=False).normalized() == reference
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from langchain.agents import AgentState, create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware, SummarizationMiddleware
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command
from pydantic import BaseModel

from redis_chat_history.demo import ScriptedChatModel

#: Ids LangGraph and LangChain make up at run time: uuids (checkpoints, tasks, messages,
#: runs), 32-hex digests (interrupts), the scripted model's tool call ids, addresses.
_IDS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\bcall_[0-9a-f]{16}\b|\b[0-9a-f]{32}\b|\b0x[0-9a-f]{6,}\b"
)
_TIMES = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)?")


def plain(value: Any) -> Any:
    """``value`` as JSON data: snapshots, tasks, interrupts and messages field by field."""
    if isinstance(value, BaseMessage):
        return {"__message__": type(value).__name__, **plain(value.model_dump())}
    if isinstance(value, BaseModel):
        return {"__model__": type(value).__name__, **plain(value.model_dump())}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # StateSnapshot, PregelTask
        fields = {name: plain(getattr(value, name)) for name in value._fields}
        return {"__tuple__": type(value).__name__, **fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # Interrupt
        fields = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dataclass__": type(value).__name__, **fields}
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain(item) for item in value), key=repr)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


@dataclasses.dataclass
class Transcript:
    """What a scenario saw, in order: (label, JSON data) entries."""

    entries: list[tuple[str, Any]] = dataclasses.field(default_factory=list)

    def add(self, label: str, value: Any) -> Any:
        self.entries.append((label, plain(value)))
        return value

    def normalized(self) -> list[tuple[str, Any]]:
        """The entries with run-time ids numbered by first appearance, times blanked.

        Channel versions keep their number only: the part after it is the saver's own
        (``InMemorySaver`` adds a random fraction), and savers may use plain integers.
        A snapshot's ``config`` and ``parent_config`` keep their ``configurable`` only:
        ``InMemorySaver`` and ``SqliteSaver`` echo the caller's whole config back for a
        checkpoint asked for by id, ``PostgresSaver`` (and ours) answer with the
        checkpoint's own ids; no saver contract says which.
        """
        text = json.dumps(_canonical(self.entries), sort_keys=True)
        numbers: dict[str, str] = {}

        def number(match: re.Match[str]) -> str:
            return numbers.setdefault(match.group(0), f"<id{len(numbers)}>")

        text = _TIMES.sub("<time>", _IDS.sub(number, text))
        return [(label, value) for label, value in json.loads(text)]


_VERSION_KEYS = ("channel_versions", "new_versions")


def _version(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\d+(?:\.[0-9a-f.]+)?", value):
        return int(value.split(".")[0])
    return value


def _canonical(value: Any, key: str = "") -> Any:
    """``value`` with channel versions as ints and configs as their ``configurable`` (see above)."""
    if isinstance(value, dict):
        if key in ("config", "parent_config") and "configurable" in value:
            return {"configurable": _canonical(value["configurable"])}
        if key in _VERSION_KEYS:
            return {name: _version(item) for name, item in value.items()}
        if key == "versions_seen":
            return {node: _canonical(seen, "channel_versions") for node, seen in value.items()}
        return {name: _canonical(item, name) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item, key) for item in value]
    return value


class Driver:
    """One compiled graph, called through its sync or async API."""

    def __init__(self, graph: Any, aio: bool) -> None:
        self.graph = graph
        self.aio = aio

    async def invoke(self, payload: Any, config: Any) -> Any:
        if self.aio:
            return await self.graph.ainvoke(payload, config)
        return self.graph.invoke(payload, config)

    async def state(self, config: Any, *, subgraphs: bool = False) -> Any:
        if self.aio:
            return await self.graph.aget_state(config, subgraphs=subgraphs)
        return self.graph.get_state(config, subgraphs=subgraphs)

    async def history(self, config: Any, **kwargs: Any) -> list[Any]:
        if self.aio:
            return [item async for item in self.graph.aget_state_history(config, **kwargs)]
        return list(self.graph.get_state_history(config, **kwargs))

    async def update(self, config: Any, values: Any, as_node: str | None = None) -> Any:
        if self.aio:
            return await self.graph.aupdate_state(config, values, as_node=as_node)
        return self.graph.update_state(config, values, as_node=as_node)


@tool
def lookup(topic: str, call_id: Annotated[str, InjectedToolCallId]) -> ToolMessage:
    """Look up a topic in the documentation."""
    text = f"Documentation for {topic}: a paragraph of reference text."
    return ToolMessage(text, tool_call_id=call_id, id=f"result-{call_id}")  # id: see ask()


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def ask(text: str) -> dict[str, Any]:
    """A question with its id: ``add_messages`` gives a message without one its id in
    place, and a sync run saves the input write in a background thread, so whether the
    stored write holds that id would be a race in LangGraph itself, not the saver's."""
    return {"messages": [HumanMessage(text, id=str(uuid.uuid4()))]}


def texts(state: Any) -> list[str]:
    """The content of each message of a state's ``messages`` (or of a result dict)."""
    values = state.values if hasattr(state, "values") and not isinstance(state, dict) else state
    return [str(message.content) for message in values["messages"]]


def agent(saver: BaseCheckpointSaver[Any], **kwargs: Any) -> Any:
    return create_agent(
        ScriptedChatModel(), tools=[lookup], system_prompt="Answer from the docs.", checkpointer=saver, **kwargs
    )  # fmt: skip


# -- scenarios ----------------------------------------------------------------------
async def agent_tools(saver: BaseCheckpointSaver[Any], aio: bool, out: Transcript) -> None:
    """Three turns of create_agent, the second with a tool call; state and whole history."""
    graph = Driver(agent(saver), aio)
    config = thread("tools")
    for question in ("hello there", "please look up window", "what did you find?"):
        out.add(f"invoke {question}", await graph.invoke(ask(question), config))
    state = out.add("state", await graph.state(config))
    assert len(state.values["messages"]) == 8  # 3 questions, 3 answers, a call and its result
    assert "I can see 2 earlier questions" in texts(state)[-1]
    history = out.add("history", await graph.history(config))
    assert len(history) == 11 and history[0].config == state.config
    out.add("history limit 3", await graph.history(config, limit=3))
    out.add("history of updates", await graph.history(config, filter={"source": "input"}))
    before = history[4].config
    out.add("history before", await graph.history(config, before=before, limit=2))


async def hitl_edit(saver: BaseCheckpointSaver[Any], aio: bool, out: Transcript) -> None:
    """HumanInTheLoopMiddleware interrupts a tool call; the call is edited, then resumed."""
    graph = Driver(agent(saver, middleware=[HumanInTheLoopMiddleware({"lookup": True})]), aio)
    config = thread("hitl")
    paused = out.add("interrupted", await graph.invoke(ask("please look up window"), config))
    assert paused["__interrupt__"], "the tool call must interrupt the run"
    state = out.add("state while interrupted", await graph.state(config))
    assert state.next and state.interrupts
    edit = {"type": "edit", "edited_action": {"name": "lookup", "args": {"topic": "once"}}}
    resumed = out.add("resumed", await graph.invoke(Command(resume={"decisions": [edit]}), config))
    assert any("Documentation for once" in text for text in texts(resumed))
    out.add("state", await graph.state(config))
    out.add("history", await graph.history(config))


async def fork(saver: BaseCheckpointSaver[Any], aio: bool, out: Transcript) -> None:
    """Time travel: an old checkpoint read back, a new question from it, a replay."""
    graph = Driver(agent(saver), aio)
    config = thread("fork")
    for question in ("first question", "second question", "third question"):
        await graph.invoke(ask(question), config)
    history = await graph.history(config)
    # The checkpoint that ended the first turn: two messages, nothing left to run.
    first = next(s for s in history if not s.next and len(s.values.get("messages", [])) == 2)
    out.add("old checkpoint", await graph.state(first.config))
    forked = out.add("forked", await graph.invoke(ask("another second question"), first.config))
    assert texts(forked)[:2] == texts(first)[:2] and "another second" in texts(forked)[2]
    assert "I can see 1 earlier questions" in texts(forked)[-1]
    # Replay from a checkpoint before the model's call of the second turn.
    before_model = next(
        s for s in history if s.next == ("model",) and len(s.values["messages"]) == 3
    )
    replayed = out.add("replayed", await graph.invoke(None, before_model.config))
    assert texts(replayed)[-1].startswith("You said: second question")
    state = out.add("state", await graph.state(config))
    assert state.config != history[0].config  # the replay is the newest checkpoint
    out.add("history", await graph.history(config))


async def update_state(saver: BaseCheckpointSaver[Any], aio: bool, out: Transcript) -> None:
    """update_state with a RemoveMessage and with an edit (same id, new content)."""
    graph = Driver(agent(saver), aio)
    config = thread("update")
    await graph.invoke(ask("first question"), config)
    await graph.invoke(ask("second question"), config)
    messages = (await graph.state(config)).values["messages"]
    out.add("removed", await graph.update(config, {"messages": [RemoveMessage(messages[1].id)]}))
    edited = HumanMessage("an edited second question", id=messages[2].id)
    out.add("edited", await graph.update(config, {"messages": [edited]}))
    state = out.add("state after updates", await graph.state(config))
    assert texts(state) == ["first question", "an edited second question", texts(state)[2]]
    assert state.metadata["source"] == "update"
    out.add("next turn", await graph.invoke(ask("third question"), config))
    out.add("updates", await graph.history(config, filter={"source": "update"}))
    out.add("history", await graph.history(config))


class Summarization(SummarizationMiddleware):
    """SummarizationMiddleware whose summary message has its id (see :func:`ask`)."""

    @staticmethod
    def _build_new_messages(summary: str) -> list[HumanMessage]:
        messages = SummarizationMiddleware._build_new_messages(summary)
        for message in messages:
            message.id = str(uuid.uuid4())
        return messages


async def summarization(saver: BaseCheckpointSaver[Any], aio: bool, out: Transcript) -> None:
    """SummarizationMiddleware replaces the older messages by a summary."""
    summarizer = ScriptedChatModel(answers={"": "A summary of the conversation."}, remember=False)
    middleware = Summarization(summarizer, trigger=("messages", 6), keep=("messages", 2))
    graph = Driver(agent(saver, middleware=[middleware]), aio)
    config = thread("summary")
    for turn in range(5):
        out.add(f"turn {turn}", await graph.invoke(ask(f"question {turn}"), config))
    state = out.add("state", await graph.state(config))
    assert any("A summary of the conversation." in text for text in texts(state))
    assert len(state.values["messages"]) < 10
    out.add("history", await graph.history(config))


async def subgraph(saver: BaseCheckpointSaver[Any], aio: bool, out: Transcript) -> None:
    """An agent as a subgraph node that interrupts: its checkpoints live in a namespace."""
    inner = create_agent(
        ScriptedChatModel(), tools=[lookup], middleware=[HumanInTheLoopMiddleware({"lookup": True})]
    )  # fmt: skip

    def wrap_up(state: MessagesState) -> dict[str, Any]:
        return {
            "messages": [AIMessage(f"done after {len(state['messages'])} messages", id="wrap-up")]
        }

    builder = StateGraph(MessagesState)
    builder.add_node("agent", inner)
    builder.add_node("wrap_up", wrap_up)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "wrap_up")
    builder.add_edge("wrap_up", END)
    graph = Driver(builder.compile(checkpointer=saver), aio)
    config = thread("parent")
    out.add("interrupted", await graph.invoke(ask("please look up window"), config))
    state = out.add("state with subgraphs", await graph.state(config, subgraphs=True))
    inner_state = state.tasks[0].state
    namespace = inner_state.config["configurable"]["checkpoint_ns"]
    assert namespace.startswith("agent:") and inner_state.next
    inner_config = {"configurable": {"thread_id": "parent", "checkpoint_ns": namespace}}
    out.add("subgraph history", await graph.history(inner_config))
    approve = Command(resume={"decisions": [{"type": "approve"}]})
    done = out.add("resumed", await graph.invoke(approve, config))
    assert texts(done)[-1] == "done after 4 messages"
    out.add("state", await graph.state(config, subgraphs=True))
    out.add("history", await graph.history(config))
    listed = out.add("root namespace only", await _listed(saver, aio, thread("parent")))
    assert listed and all(item.config["configurable"]["checkpoint_ns"] == "" for item in listed)
    out.add("subgraph namespace", await _listed(saver, aio, inner_config))


async def _listed(saver: BaseCheckpointSaver[Any], aio: bool, config: Any) -> list[Any]:
    if "checkpoint_ns" not in config["configurable"]:
        config = {"configurable": {**config["configurable"], "checkpoint_ns": ""}}
    if aio:
        return [item async for item in saver.alist(config)]
    return list(saver.list(config))


try:  # LangGraph's DeltaChannel (beta) came after langgraph 1.1 (the lowest set has 1.1)
    from langgraph.channels.delta import DeltaChannel
    from langgraph.graph.message import _messages_delta_reducer

    class DeltaState(AgentState[Any]):
        """create_agent's state with the messages in a DeltaChannel."""

        messages: Annotated[list[Any], DeltaChannel(_messages_delta_reducer, snapshot_frequency=4)]  # type: ignore[misc]

    HAS_DELTA_CHANNEL = True
except ImportError:
    HAS_DELTA_CHANNEL = False


async def delta_channel(saver: BaseCheckpointSaver[Any], aio: bool, out: Transcript) -> None:
    """Messages in a DeltaChannel: rebuilt from ancestors' writes and periodic snapshots."""
    graph = Driver(agent(saver, state_schema=DeltaState), aio)
    config = thread("delta")
    for turn in range(4):
        ask_tool = "please look up delta" if turn == 1 else f"question {turn}"
        out.add(f"turn {turn}", await graph.invoke(ask(ask_tool), config))
    state = out.add("state", await graph.state(config))
    assert len(state.values["messages"]) == 10
    history = out.add("history", await graph.history(config))
    first = next(s for s in history if not s.next and len(s.values.get("messages", [])) == 2)
    out.add("forked", await graph.invoke(ask("a new second question"), first.config))
    # The fork is the thread's newest checkpoint now: the removal applies to it.
    forked = (await graph.state(config)).values["messages"]
    out.add("removed", await graph.update(config, {"messages": [RemoveMessage(forked[0].id)]}))
    state = out.add("state after removal", await graph.state(config))
    assert texts(state) == [str(message.content) for message in forked[1:]]
    # DeltaChannel is at work: most checkpoints hold no messages value (where savers
    # store one differs, e.g. InMemorySaver and SqliteSaver after a fork: not compared).
    listed = await _listed(saver, aio, thread("delta"))
    stored = ["messages" in item.checkpoint["channel_values"] for item in listed]
    assert 0 < sum(stored) < len(stored) / 2


Scenario = Callable[[BaseCheckpointSaver[Any], bool, Transcript], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    scenario.__name__: scenario
    for scenario in (agent_tools, hitl_edit, fork, update_state, summarization, subgraph)
}  # fmt: skip
if HAS_DELTA_CHANNEL:
    SCENARIOS["delta_channel"] = delta_channel
#: Scenarios whose middleware calls ``interrupt()``: LangGraph supports that in async code
#: on Python >= 3.11 only (it reads the run's config from a context variable).
INTERRUPTING = frozenset({"hitl_edit", "subgraph"})


def unsupported(name: str, aio: bool) -> str:
    """Why LangGraph cannot run this scenario here ('' when it can)."""
    if aio and name in INTERRUPTING and sys.version_info < (3, 11):
        return "LangGraph's interrupt() in async code needs Python >= 3.11"
    return ""


#: ``factory(aio)`` opens a fresh saver for one scenario (inside the scenario's event loop).
SaverFactory = Callable[[bool], AbstractAsyncContextManager[BaseCheckpointSaver[Any]]]


@asynccontextmanager
async def in_memory(aio: bool) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """LangGraph's InMemorySaver: the reference."""
    yield InMemorySaver()


def run_scenario(name: str, factory: SaverFactory, *, aio: bool) -> Transcript:
    """Run one scenario on a saver from ``factory`` (in a fresh event loop)."""
    out = Transcript()

    async def main() -> None:
        async with factory(aio) as saver:
            await SCENARIOS[name](saver, aio, out)

    asyncio.run(main())
    return out
