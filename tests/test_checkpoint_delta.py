"""A graph whose ``messages`` channel is LangGraph's DeltaChannel (beta), with our saver.

A ``StateGraph`` with deterministic nodes runs the same turns, a fork and a removal with
``InMemorySaver`` and with ``RedisCheckpointSaver`` (sync and async, standalone and
Cluster): outputs, ``get_state``, ``get_state_history`` and ``get_delta_channel_history``
(at the newest checkpoint and at older ones) must be equal. ``create_agent`` with a
DeltaChannel state is compared the same way in tests/test_checkpoint_differential.py.
DeltaChannel came with langgraph 1.2: on the lowest set (1.1) this module is skipped,
saying so.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from redis_chat_history import RedisChatStore
from redis_chat_history.checkpoint import RedisCheckpointSaver

try:
    from langgraph.channels.delta import DeltaChannel
    from langgraph.graph.message import _messages_delta_reducer
except ImportError:  # langgraph < 1.2
    pytest.skip(
        f"langgraph {version('langgraph')} has no DeltaChannel (beta, langgraph >= 1.2)",
        allow_module_level=True,
    )


class State(TypedDict):
    # a snapshot every third update: replays cross snapshots within a few turns
    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer, snapshot_frequency=3)]  # type: ignore[misc]  # fmt: skip
    turns: int


def reply(state: State) -> dict[str, Any]:
    last = state["messages"][-1]
    answer = AIMessage(
        f"{len(state['messages'])} messages, last: {last.content}", id=f"a-{last.id}"
    )
    return {"messages": [answer], "turns": state.get("turns", 0) + 1}


def graph_of(saver: BaseCheckpointSaver[Any]) -> Any:
    builder = StateGraph(State)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


THREAD = {"configurable": {"thread_id": "delta"}}


def ask(number: int) -> dict[str, Any]:
    return {"messages": [HumanMessage(f"question {number}", id=f"q{number}")]}


def delta_view(history: Any) -> dict[str, Any]:
    """A get_delta_channel_history reply without the task ids (uuids of checkpoint ids)."""
    entry = history["messages"]
    return {"writes": [(w[1], w[2]) for w in entry["writes"]], "seed": entry.get("seed")}


def snapshot_view(snapshot: Any) -> tuple[Any, ...]:
    meta = snapshot.metadata
    return (snapshot.values, snapshot.next, meta["step"], meta["source"])


def transcript(saver: BaseCheckpointSaver[Any]) -> list[Any]:
    """Turns, a fork from the second turn, a removal; every read along the way."""
    graph = graph_of(saver)
    out: list[Any] = [graph.invoke(ask(number), THREAD) for number in range(7)]
    history = list(graph.get_state_history(THREAD))
    out.append([snapshot_view(s) for s in history])
    for snapshot in history[::3]:  # the newest, and older ones across snapshots
        out.append(
            delta_view(
                saver.get_delta_channel_history(config=snapshot.config, channels=["messages"])
            )
        )
    second = next(s for s in history if s.values.get("turns") == 2 and not s.next)
    out.append(graph.invoke(ask(100), second.config))  # a fork
    out.append(graph.update_state(THREAD, {"messages": [RemoveMessage(id="q0")]}) and None)
    out.append(snapshot_view(graph.get_state(THREAD)))
    out.append([snapshot_view(s) for s in graph.get_state_history(THREAD)])
    latest = graph.get_state(THREAD).config
    out.append(delta_view(saver.get_delta_channel_history(config=latest, channels=["messages"])))
    return out


async def atranscript(saver: BaseCheckpointSaver[Any]) -> list[Any]:
    """:func:`transcript` through the async methods."""
    graph = graph_of(saver)
    out: list[Any] = [await graph.ainvoke(ask(number), THREAD) for number in range(7)]
    history = [s async for s in graph.aget_state_history(THREAD)]
    out.append([snapshot_view(s) for s in history])
    for snapshot in history[::3]:
        found = await saver.aget_delta_channel_history(
            config=snapshot.config, channels=["messages"]
        )
        out.append(delta_view(found))
    second = next(s for s in history if s.values.get("turns") == 2 and not s.next)
    out.append(await graph.ainvoke(ask(100), second.config))
    out.append(await graph.aupdate_state(THREAD, {"messages": [RemoveMessage(id="q0")]}) and None)
    out.append(snapshot_view(await graph.aget_state(THREAD)))
    out.append([snapshot_view(s) async for s in graph.aget_state_history(THREAD)])
    latest = (await graph.aget_state(THREAD)).config
    out.append(
        delta_view(await saver.aget_delta_channel_history(config=latest, channels=["messages"]))
    )
    return out


@pytest.fixture(scope="module")
def reference() -> list[Any]:
    return transcript(InMemorySaver())


def test_the_reference_is_what_a_delta_channel_gives(reference: list[Any]) -> None:
    assert [m.content for m in reference[6]["messages"]][-2:] == [
        "question 6",
        "13 messages, last: question 6",
    ]
    latest_state = reference[-3][0]
    assert "q0" not in [m.id for m in latest_state["messages"]]  # the removal
    assert "q100" in [m.id for m in latest_state["messages"]]  # on the fork
    assert any(view["seed"] is not None for view in reference[8:11])  # a snapshot was read
    assert any(len(view["writes"]) >= 2 for view in reference[8:11])  # and writes replayed


def check_sync_reads(url: str, reference: list[Any]) -> None:
    saver = RedisCheckpointSaver(url)
    assert transcript(saver) == reference
    # the whole thread is deleted with the session (no list: its messages are deltas)
    assert RedisChatStore(url).delete("delta") == 1
    assert saver.get_tuple(THREAD) is None


def test_sync_reads_equal_in_memory_saver(reference: list[Any], redis_url: str) -> None:
    check_sync_reads(redis_url, reference)


def test_sync_reads_equal_in_memory_saver_on_a_cluster(
    reference: list[Any], cluster_url: str
) -> None:
    check_sync_reads(cluster_url, reference)


def test_async_reads_equal_in_memory_saver(reference: list[Any], redis_url: str) -> None:
    assert asyncio.run(atranscript(RedisCheckpointSaver(redis_url))) == reference
