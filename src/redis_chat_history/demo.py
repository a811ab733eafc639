"""The demo: a LangChain v1 agent whose memory is a Redis chat history, no API key needed.

``create_agent`` with one tool, a deterministic chat model (:class:`ScriptedChatModel`)
and :class:`~redis_chat_history.agents.RedisChatHistoryMiddleware` on the store the
command line opened (the embedded Redis by default). Each run holds three more turns of
the same conversation; the model sees the earlier ones, tool calls included, read back
from Redis, and says so. The stored history is shown at the end.

Example::

    redis-chat-history demo              # embedded Redis in ./.redis-chat-history
    redis-chat-history --url redis://localhost:6379/0 demo
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

# The model lives in scripted_model.py; both names stay importable from here.
from redis_chat_history.scripted_model import ScriptedChatModel as ScriptedChatModel
from redis_chat_history.scripted_model import check_tool_order as check_tool_order
from redis_chat_history.store import RedisChatStore

if TYPE_CHECKING:
    from rich.console import Console

TURNS_PER_RUN = 3
#: Stored messages the model sees (extended back to a whole turn).
WINDOW = 20

#: The questions of the conversation; "look up <topic>" makes the model call the tool.
SCRIPT: list[str] = [
    "Hi! Where do you keep our conversation?",
    "Please look up window: what do you read before answering me?",
    "And what happens when this program restarts?",
    "Please look up once: can a message be stored twice?",
    "Which topics did you check for me so far?",
    "Thanks! What should I try next?",
]

#: The model's answers to the questions without a tool call (keyed by a part of each).
ANSWERS: dict[str, str] = {
    "Where do you keep": "In Redis: one list per conversation, under 'message_store:<session>', "
    "in the layout langchain_community's RedisChatMessageHistory uses.",
    "restarts": "Nothing is lost: the embedded Redis keeps an append-only file, and the next "
    "run reads this conversation back, tool calls included.",
    "so far": "The earlier turns I was given, read back from Redis, hold my tool calls.",
    "try next": "Run 'redis-chat-history show demo', or this demo again: it continues here.",
}

FACTS: dict[str, str] = {
    "window": "Before each model call the middleware reads the newest stored messages, "
    "extended back to a human message, in one round trip: a tool result never loses "
    "the call that asked for it.",
    "once": "No. After the run, everything it added is appended in one atomic write, and "
    "a private count in the agent state keeps a checkpointer's earlier turns from being "
    "stored again. A run that raises stores nothing.",
}


@tool
def lookup(topic: str) -> str:
    """Look up how redis-chat-history's agent memory handles a topic."""
    return FACTS.get(topic, f"Nothing is known about {topic!r}.")


def build_agent(store: RedisChatStore, model: BaseChatModel | None = None) -> Any:
    """The demo's agent: one tool, the scripted model, memory in ``store``."""
    from langchain.agents import create_agent

    from redis_chat_history.agents import RedisChatHistoryMiddleware

    return create_agent(
        model or ScriptedChatModel(answers=ANSWERS),
        tools=[lookup],
        system_prompt="You are a concise assistant that explains redis-chat-history.",
        middleware=[RedisChatHistoryMiddleware(store, window=WINDOW)],
    )


def run_demo(
    store: RedisChatStore,
    session_id: str,
    render: Callable[[list[BaseMessage], int], None],
    console: Console,
) -> list[BaseMessage]:
    """Hold three more turns of the demo conversation and show the stored history."""
    history = store.history(session_id)
    first_turn = sum(isinstance(m, HumanMessage) for m in history.get_messages())
    agent = build_agent(store)
    config: Any = {"configurable": {"session_id": session_id}}
    console.print(
        f"[bold]Conversation {session_id!r}: turns {first_turn + 1}-{first_turn + TURNS_PER_RUN}"
        f"[/bold] [dim](a create_agent agent; its memory is in {store.display})[/dim]\n"
    )
    for turn in range(first_turn, first_turn + TURNS_PER_RUN):
        question = SCRIPT[turn % len(SCRIPT)]
        result = agent.invoke({"messages": [HumanMessage(question)]}, config=config)
        console.print(f"[cyan]user:[/cyan] {question}")
        for message in result["messages"][1:]:
            if isinstance(message, AIMessage) and message.tool_calls:
                for call in message.tool_calls:
                    console.print(f"  [yellow]→ calls {call['name']}({call['args']})[/yellow]")
            elif isinstance(message, ToolMessage):
                console.print(f"  [dim]← {message.content}[/dim]")
            else:
                console.print(f"[green]assistant:[/green] {message.content}\n")
    stored = history.messages
    console.rule(f"stored history of {session_id!r}: {len(stored)} messages")
    render(stored, 0)
    console.print(
        "[dim]Run the demo again: the agent continues this conversation, read back from "
        "Redis.[/dim]"
    )
    return stored
