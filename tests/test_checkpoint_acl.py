"""The checkpointer's least-privilege user, as the README documents it, running an agent.

The README's ``ACL SETUSER saver ...`` line is run as written (its password replaced) and
must name exactly the commands the conformance suite is run with
(tests/test_checkpoint_conformance.py). Then an agent does what the conformance suite does
not: tool calls with a TTL refreshed on reads, a thread adopted from an existing history,
a removal (an archived segment), a fork, time travel, the delta-channel history, copy,
prune, runs deleted, every thread listed, a thread deleted, sync and async; the ACL log
must show no refusal but ``INFO`` (tried once: Cluster detection, the eviction warning;
not needed). On a
Cluster the same user with the Cluster commands of the history's ACL does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import redis
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage

from redis_chat_history import RedisChatStore
from redis_chat_history.checkpoint import RedisCheckpointSaver
from redis_chat_history.demo import ScriptedChatModel, lookup
from tests.servers import Cluster, RedisProcess
from tests.test_checkpoint_conformance import CHECKPOINT_COMMANDS
from tests.test_security import CLUSTER_COMMANDS

README = Path(__file__).resolve().parent.parent / "README.md"
PASSWORD = "saver-pw-0123"


def documented_setuser() -> list[str]:
    """The README's ``ACL SETUSER saver`` line, split, with the password filled in."""
    lines = [line for line in README.read_text().splitlines() if "ACL SETUSER saver " in line]
    assert len(lines) == 1, lines
    return lines[0].replace(">PASSWORD", f">{PASSWORD}").split()


def test_the_documented_commands_are_the_tested_ones() -> None:
    commands = {word[1:] for word in documented_setuser() if re.fullmatch(r"\+[a-z|]+", word)}
    assert commands == set(CHECKPOINT_COMMANDS.split())
    assert not commands & {"info", "config", "module", "keys", "flushall"}


def workload(url: str, admin_store: RedisChatStore) -> None:
    """Everything an application does with the saver, values checked."""
    admin_store.history("legacy").add_messages([HumanMessage("my name is Ann"), AIMessage("Hi")])
    saver = RedisCheckpointSaver(url, ttl=600, refresh_on_read=True)
    model = ScriptedChatModel(remember=False)
    agent = create_agent(model, tools=[lookup], checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "legacy"}}
    for number in range(2):
        question = HumanMessage(f"Please look up window, turn {number}", id=f"q{number}")
        result = agent.invoke({"messages": [question]}, config)
    messages = result["messages"]
    assert [m.content for m in messages[:2]] == ["my name is Ann", "Hi"]  # adopted
    assert len(messages) == 10
    before = agent.get_state(config)
    agent.update_state(config, {"messages": [RemoveMessage(id="q0")]})  # archives the list
    assert agent.get_state(before.config).values["messages"] == messages  # time travel
    forked = agent.invoke({"messages": [HumanMessage("a fork", id="f1")]}, before.config)
    assert forked["messages"][:10] == messages
    history = list(agent.get_state_history(config))
    assert len(history) > 10
    delta = saver.get_delta_channel_history(config=history[0].config, channels=["messages"])
    assert "messages" in delta
    saver.copy_thread("legacy", "copy")
    copied = saver.get_tuple({"configurable": {"thread_id": "copy"}})
    assert copied is not None
    listed = {item.config["configurable"]["thread_id"] for item in saver.list(None)}
    assert listed == {"legacy", "copy"}
    saver.prune(["copy"], strategy="keep_latest")
    assert len(list(saver.list({"configurable": {"thread_id": "copy"}}))) == 1
    run_id = history[0].metadata.get("run_id")
    saver.delete_for_runs([run_id] if run_id else ["no-such-run"])
    saver.delete_thread("copy")
    assert saver.get_tuple({"configurable": {"thread_id": "copy"}}) is None

    async def in_async() -> list[Any]:
        asaver = RedisCheckpointSaver(url, ttl=600)
        aagent = create_agent(model, tools=[lookup], checkpointer=asaver)
        athread = {"configurable": {"thread_id": "async"}}
        await aagent.ainvoke({"messages": [HumanMessage("Please look up once")]}, athread)
        done = await aagent.ainvoke({"messages": [HumanMessage("again")]}, athread)
        assert [s async for s in asaver.alist(athread)]
        await asaver.adelete_thread("async")
        return done["messages"]  # type: ignore[no-any-return]

    assert len(asyncio.run(in_async())) == 6
    assert admin_store.history("legacy").messages == agent.get_state(config).values["messages"]


def denied_to_saver(client: redis.Redis) -> set[str]:
    return {entry["object"] for entry in client.acl_log() if entry["username"] == "saver"}


def test_the_documented_user_runs_an_agent(redis7: RedisProcess) -> None:
    admin = redis7.client()
    admin.execute_command(*documented_setuser())
    admin.execute_command("ACL", "LOG", "RESET")
    try:
        workload(f"redis://saver:{PASSWORD}@127.0.0.1:{redis7.port}/0", RedisChatStore(redis7.url))
        assert denied_to_saver(admin) <= {"info"}
        ttls = [admin.ttl(key) for key in admin.keys("message_store:legacy*")]
        assert len(ttls) >= 4 and all(0 < ttl <= 600 for ttl in ttls)  # every key of the thread
    finally:
        admin.execute_command("ACL", "DELUSER", "saver")
        admin.close()


def test_the_documented_user_runs_an_agent_on_a_cluster(cluster: Cluster, cluster_url: str) -> None:
    extra = [f"+{name}" for name in CLUSTER_COMMANDS.split()]
    for node in cluster.nodes:
        with contextlib.closing(node.client()) as client:
            client.execute_command(*documented_setuser(), *extra)
            client.execute_command("ACL", "LOG", "RESET")
    try:
        seeds = cluster_url.split("://", 1)[1]
        workload(f"redis+cluster://saver:{PASSWORD}@{seeds}", RedisChatStore(cluster_url))
        for node in cluster.nodes:
            with contextlib.closing(node.client()) as client:
                # INFO is tried (the eviction warning) and not needed
                assert denied_to_saver(client) <= {"info"}, node.port
    finally:
        for node in cluster.nodes:
            with contextlib.closing(node.client()) as client:
                client.execute_command("ACL", "DELUSER", "saver")
