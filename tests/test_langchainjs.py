"""langchainjs's ``@langchain/redis`` reads what this package stores, and the other way round.

``tests/js/`` pins ``@langchain/redis`` (its ``RedisChatMessageHistory``), ``@langchain/core``
and node-redis in its package-lock.json; ``make test`` installs them (``npm ci --prefix
tests/js``). ``read.mjs <url> <key>`` prints what the JS class's ``getMessages()`` decoded
(``mapStoredMessagesToChatMessages`` on each element, oldest first); ``write.mjs`` appends
with its ``addMessages()``. The JS class takes the whole key as its ``sessionId``: no prefix.

These tests need Node >= 20 and npm. Without them they fail and say so, rather than skip:
CI has them, and a skipped test would hide that the compatibility went unchecked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
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
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig

from redis_chat_history import RedisChatMessageHistory, RedisChatStore
from redis_chat_history.agents import RedisChatHistoryMiddleware
from redis_chat_history.demo import ScriptedChatModel, lookup
from tests.servers import RedisProcess

JS_DIR = Path(__file__).parent / "js"
JS_TIMEOUT_SECONDS = 60

#: Every kind of message an agent stores, with unicode and nested tool arguments.
CONVERSATION: list[BaseMessage] = [
    SystemMessage("Réponds brièvement."),
    HumanMessage('héllo 🌍, 日本語で? \u0000 "quoted" \\ back', id="js-1"),
    AIMessage(
        "",
        id="js-2",
        tool_calls=[
            {"name": "lookup", "args": {"topic": "fenêtre"}, "id": "call_1", "type": "tool_call"},
            {
                "name": "lookup",
                "args": {"topic": "window", "limits": [1, 2.5, None], "deep": {"ok": True}},
                "id": "call_2",
                "type": "tool_call",
            },
        ],
    ),
    ToolMessage("résultat ✓", tool_call_id="call_1", name="lookup", id="js-3"),
    ToolMessage("boom", tool_call_id="call_2", status="error", artifact={"trace": ["x"]}),
    AIMessage(
        "Voilà 🎉",
        id="js-5",
        response_metadata={"model_name": "scripted", "finish_reason": "stop"},
        usage_metadata={
            "input_tokens": 120,
            "output_tokens": 7,
            "total_tokens": 127,
            "input_token_details": {"cache_read": 100},
        },
    ),
    HumanMessage([{"type": "text", "text": "blocs de contenu"}], id="js-6"),
]

#: What langchainjs calls each stored ``type``.
JS_CLASSES = {
    "human": "HumanMessage",
    "ai": "AIMessage",
    "system": "SystemMessage",
    "tool": "ToolMessage",
}


def run_js(
    script: str, url: str, key: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not on PATH: tests/test_langchainjs.py needs Node >= 20 and npm "
            "(then `npm ci --prefix tests/js`, which `make test` runs)"
        )
    if not (JS_DIR / "node_modules" / "@langchain" / "redis").is_dir():
        pytest.fail(
            "tests/js/node_modules is missing: run `npm ci --prefix tests/js` (`make test` does)"
        )
    return subprocess.run(
        [node, str(JS_DIR / script), url, key],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=JS_TIMEOUT_SECONDS,
        check=False,
    )


def js_read(url: str, key: str) -> list[dict[str, Any]]:
    """The history at ``key`` as ``@langchain/redis`` decodes it (read.mjs's JSON)."""
    done = run_js("read.mjs", url, key)
    assert done.returncode == 0, f"read.mjs failed:\n{done.stderr}"
    seen: list[dict[str, Any]] = json.loads(done.stdout)
    return seen


def js_write(url: str, key: str, messages: list[dict[str, Any]]) -> None:
    """Append ``messages`` (constructor fields plus ``type``) with ``@langchain/redis``."""
    done = run_js("write.mjs", url, key, stdin=json.dumps(messages))
    assert done.returncode == 0, f"write.mjs failed:\n{done.stderr}"


def seen_by_js(message: BaseMessage) -> dict[str, Any]:
    """What read.mjs prints for ``message`` when langchainjs keeps every field it knows."""
    view: dict[str, Any] = {
        "class": JS_CLASSES[message.type],
        "type": message.type,
        "content": message.content,
        "id": message.id,
        "name": message.name,
        "additional_kwargs": message.additional_kwargs,
        "response_metadata": message.response_metadata,
        "tool_calls": None,
        "invalid_tool_calls": None,
        "usage_metadata": None,
        "tool_call_id": None,
        "status": None,
        "artifact": None,
    }
    if isinstance(message, AIMessage):
        view["tool_calls"] = message.tool_calls
        view["invalid_tool_calls"] = message.invalid_tool_calls
        view["usage_metadata"] = message.usage_metadata
    if isinstance(message, ToolMessage):
        view["tool_call_id"] = message.tool_call_id
        # "success" is the default, which is not stored; JS's default is undefined.
        view["status"] = None if message.status == "success" else message.status
        view["artifact"] = message.artifact
    # Compared as JSON, the form read.mjs printed it in (tuples become lists).
    decoded: dict[str, Any] = json.loads(json.dumps(view))
    return decoded


class MeteredModel(ScriptedChatModel):
    """The scripted model, reporting token usage on every reply like a provider does."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        result = super()._generate(messages, *args, **kwargs)
        reply = result.generations[0].message
        assert isinstance(reply, AIMessage)
        used = sum(len(str(m.content)) for m in messages)
        reply.usage_metadata = UsageMetadata(
            input_tokens=used,
            output_tokens=len(str(reply.content)),
            total_tokens=used + len(str(reply.content)),
        )
        return result


@pytest.fixture(params=["standalone", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    """A clean standalone server (the newest), then a clean cluster."""
    if request.param == "standalone":
        server: RedisProcess = request.getfixturevalue("redis7")
        return server.url
    return str(request.getfixturevalue("cluster_url"))


def test_js_reads_what_add_messages_wrote(redis7: RedisProcess) -> None:
    history = RedisChatMessageHistory("js-compat", url=redis7.url)
    history.add_messages(CONVERSATION)
    assert history.key == "message_store:js-compat"

    seen = js_read(redis7.url, history.key)

    assert seen == [seen_by_js(m) for m in CONVERSATION]
    assert [m["class"] for m in seen] == [
        "SystemMessage",
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
        "AIMessage",
        "HumanMessage",
    ]
    assert seen[1]["content"] == 'héllo 🌍, 日本語で? \u0000 "quoted" \\ back'
    calls = seen[2]["tool_calls"]
    assert [(c["id"], c["args"]) for c in calls] == [
        ("call_1", {"topic": "fenêtre"}),
        ("call_2", {"topic": "window", "limits": [1, 2.5, None], "deep": {"ok": True}}),
    ]
    assert (seen[3]["tool_call_id"], seen[3]["name"]) == ("call_1", "lookup")
    assert (seen[4]["tool_call_id"], seen[4]["status"]) == ("call_2", "error")
    assert seen[4]["artifact"] == {"trace": ["x"]}
    assert seen[5]["usage_metadata"]["input_token_details"] == {"cache_read": 100}
    assert seen[5]["response_metadata"]["finish_reason"] == "stop"
    assert seen[6]["content"] == [{"type": "text", "text": "blocs de contenu"}]


def test_js_reads_an_empty_or_missing_history(redis7: RedisProcess) -> None:
    assert js_read(redis7.url, "message_store:nobody") == []


def test_js_reads_what_the_middleware_stored(url: str) -> None:
    store = RedisChatStore(url=url)
    middleware = RedisChatHistoryMiddleware(store, window=40)
    agent = create_agent(
        MeteredModel(), tools=[lookup], system_prompt="Sois bref.", middleware=[middleware]
    )
    config: RunnableConfig = {"configurable": {"session_id": "agent-js"}}
    for question in ["héllo 🌍", "please look up window", "qu'as-tu cherché ?"]:
        agent.invoke({"messages": [HumanMessage(question)]}, config)
    stored = store.history("agent-js").messages

    seen = js_read(url, store.history("agent-js").key)

    assert seen == [seen_by_js(m) for m in stored]
    assert [m["type"] for m in seen] == ["human", "ai", "human", "ai", "tool", "ai", "human", "ai"]
    assert seen[0]["content"] == "héllo 🌍"
    (call,) = seen[3]["tool_calls"]
    assert (call["name"], call["args"]) == ("lookup", {"topic": "window"})
    assert seen[4]["tool_call_id"] == call["id"] and seen[4]["name"] == "lookup"
    assert seen[5]["content"].startswith("Here is what I found:")
    for answer in (seen[1], seen[3], seen[5], seen[7]):
        usage = answer["usage_metadata"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert all(m["id"] for m in seen)


#: A conversation written by a JS app: constructor fields of each message class.
FROM_JS: list[dict[str, Any]] = [
    {"type": "system", "content": "Be brief."},
    {"type": "human", "content": "Grüße aus 東京 🗼", "id": "from-js-1"},
    {
        "type": "ai",
        "content": "",
        "id": "from-js-2",
        "tool_calls": [
            {"name": "lookup", "args": {"topic": "window"}, "id": "call_js", "type": "tool_call"}
        ],
    },
    {"type": "tool", "content": "stored once", "tool_call_id": "call_js", "name": "lookup"},
    {
        "type": "ai",
        "content": "It is stored once.",
        "id": "from-js-4",
        "usage_metadata": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13},
    },
]


def test_we_read_what_js_wrote_and_continue_it(url: str) -> None:
    store = RedisChatStore(url=url)
    history = store.history("from-js")
    js_write(url, history.key, FROM_JS)

    ours = history.messages

    assert [type(m) for m in ours] == [
        SystemMessage,
        HumanMessage,
        AIMessage,
        ToolMessage,
        AIMessage,
    ]
    assert ours[1].content == "Grüße aus 東京 🗼" and ours[1].id == "from-js-1"
    call = ours[2].tool_calls[0]  # type: ignore[attr-defined]
    assert (call["name"], call["args"], call["id"]) == ("lookup", {"topic": "window"}, "call_js")
    assert isinstance(ours[3], ToolMessage) and ours[3].tool_call_id == "call_js"
    assert ours[4].usage_metadata == FROM_JS[4]["usage_metadata"]  # type: ignore[attr-defined]
    if not url.startswith("redis+cluster://"):
        assert CommunityHistory("from-js", url=url).messages == ours

    # The agent continues the JS conversation, and JS reads the whole of it.
    model = MeteredModel()
    agent = create_agent(model, tools=[lookup], middleware=[RedisChatHistoryMiddleware(store)])
    agent.invoke(
        {"messages": [HumanMessage("and now?")]}, {"configurable": {"session_id": "from-js"}}
    )
    # The window starts at a human message (the middleware's turn alignment): no system.
    assert [m.id for m in model.requests[0][:4]] == [m.id for m in ours[1:]]
    assert model.requests[0][4].content == "and now?"

    seen = js_read(url, history.key)

    assert seen == [seen_by_js(m) for m in history.messages]
    assert [m["type"] for m in seen] == ["system", "human", "ai", "tool", "ai", "human", "ai"]
    assert seen[5]["content"] == "and now?"


def test_js_cannot_read_a_chat_message(redis7: RedisProcess) -> None:
    """A known gap, pinned: Python stores ChatMessage as type "chat", langchainjs says "generic".

    The old class stores the same, so one role message makes the whole history unreadable
    to ``getMessages()``.
    """
    history = RedisChatMessageHistory("role", url=redis7.url)
    history.add_messages([HumanMessage("hi"), ChatMessage(content="reviewed", role="critic")])

    done = run_js("read.mjs", redis7.url, history.key)

    assert done.returncode != 0
    assert "Got unexpected type: chat" in done.stderr
