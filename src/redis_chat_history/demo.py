"""The demo: a LangChain v1 agent whose memory is a Redis chat history, no API key needed.

``create_agent`` with one tool, a deterministic chat model (:class:`ScriptedChatModel`)
and :class:`~redis_chat_history.checkpoint.RedisCheckpointSaver` on the store the
command line opened (the embedded Redis by default). Each run holds three more turns of
the same thread; the model sees the earlier ones, tool calls included, read back from
Redis, and says so. The thread's conversation is shown at the end as the chat history
it also is (``store.history(thread_id)``: one write, no second copy).

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
    "window": "The checkpointer gives me the thread's latest state: its messages are the "
    "chat history list itself, read in one round trip, tool calls included.",
    "once": "No. Each checkpoint is one atomic script; a re-sent one is recognised by its "
    "id and applied once, and a message is stored once however many checkpoints hold it.",
}


@tool
def lookup(topic: str) -> str:
    """Look up how redis-chat-history's agent memory handles a topic."""
    return FACTS.get(topic, f"Nothing is known about {topic!r}.")


def build_agent(store: RedisChatStore, model: BaseChatModel | None = None) -> Any:
    """The demo's agent: one tool, the scripted model, its checkpoints in ``store``."""
    from langchain.agents import create_agent

    from redis_chat_history.checkpoint import RedisCheckpointSaver

    return create_agent(
        model or ScriptedChatModel(answers=ANSWERS),
        tools=[lookup],
        system_prompt="You are a concise assistant that explains redis-chat-history.",
        checkpointer=RedisCheckpointSaver(store=store),
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
    config: Any = {"configurable": {"thread_id": session_id}}
    console.print(
        f"[bold]Conversation {session_id!r}: turns {first_turn + 1}-{first_turn + TURNS_PER_RUN}"
        f"[/bold] [dim](a create_agent agent; its checkpoints are in {store.display})[/dim]\n"
    )
    for turn in range(first_turn, first_turn + TURNS_PER_RUN):
        question = SCRIPT[turn % len(SCRIPT)]
        result = agent.invoke({"messages": [HumanMessage(question)]}, config=config)
        console.print(f"[cyan]user:[/cyan] {question}")
        new = result["messages"]
        asked = max(at for at, m in enumerate(new) if isinstance(m, HumanMessage))
        for message in new[asked + 1 :]:
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
        "[dim]The thread's conversation is this chat history (store.history, the old class, "
        "`redis-chat-history show`). Run the demo again: the agent continues the thread.[/dim]"
    )
    return stored
