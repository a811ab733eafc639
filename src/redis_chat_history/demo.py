"""The demo: a LangChain chain with memory in Redis, no API key needed.

A prompt and langchain_core's ``GenericFakeChatModel`` wrapped in
``RunnableWithMessageHistory``, whose histories come from
:meth:`RedisChatStore.history`. Each run holds three more turns of the same
conversation, so a second run shows the history of the first one too.

Example::

    redis-chat-history demo              # embedded Redis in ./.redis-chat-history
    redis-chat-history --url redis://localhost:6379/0 demo
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from rich.console import Console

from redis_chat_history.store import RedisChatStore

TURNS_PER_RUN = 3

#: (question, answer) pairs; the conversation walks through them run after run.
SCRIPT: list[tuple[str, str]] = [
    (
        "Hi! Where do you keep our conversation?",
        "In Redis: every message is one element of a list under the key "
        "'message_store:<session>', newest first, exactly as langchain_community stored it.",
    ),
    (
        "What happens if I restart this program?",
        "Nothing is lost. The embedded Redis keeps an append-only file in "
        "./.redis-chat-history, so the next run continues this very conversation.",
    ),
    (
        "How many round trips does saving a turn cost?",
        "One. The question and my answer are pushed by a single Lua script that also "
        "refreshes the TTL and trims the history, atomically.",
    ),
    (
        "Can I move these conversations to a real server later?",
        "Yes: change the url (redis://, rediss://, redis+sentinel:// or redis+cluster://), "
        "or run 'redis-chat-history copy --to URL' to take the stored ones along.",
    ),
    (
        "And if the history gets long?",
        "Pass max_messages=N to keep only the newest N, or read a window with "
        "get_messages(limit=20): that costs O(20), not O(history).",
    ),
    (
        "Thanks! What should I try next?",
        "Run 'redis-chat-history show demo --json', export it with "
        "'redis-chat-history export -o demo.jsonl', or run this demo again.",
    ),
]


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def _answers(first_turn: int) -> Iterator[AIMessage]:
    turn = first_turn
    while True:
        _question, answer = SCRIPT[turn % len(SCRIPT)]
        yield AIMessage(answer, response_metadata={"created_at": _now(), "model_name": "fake"})
        turn += 1


def build_chain(store: RedisChatStore, first_turn: int) -> RunnableWithMessageHistory:
    """The chain of the demo: prompt | fake model, with its history in ``store``."""
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are a concise assistant that explains redis-chat-history."),
            MessagesPlaceholder("history"),
            MessagesPlaceholder("question"),
        ]
    )
    model = GenericFakeChatModel(messages=_answers(first_turn))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RunnableWithMessageHistory warns it is deprecated
        return RunnableWithMessageHistory(
            prompt | model,
            store.history,
            input_messages_key="question",
            history_messages_key="history",
        )


def run_demo(
    store: RedisChatStore,
    session_id: str,
    render: Callable[[list[BaseMessage], int], None],
    console: Console,
) -> list[BaseMessage]:
    """Hold three more turns of the demo conversation and show the stored history."""
    history = store.history(session_id)
    first_turn = history.count() // 2
    chain = build_chain(store, first_turn)
    config: Any = {"configurable": {"session_id": session_id}}
    console.print(
        f"[bold]Conversation {session_id!r}: turns {first_turn + 1}-{first_turn + TURNS_PER_RUN}"
        f"[/bold] [dim](stored in {store.display})[/dim]\n"
    )
    for turn in range(first_turn, first_turn + TURNS_PER_RUN):
        question, _answer = SCRIPT[turn % len(SCRIPT)]
        message = HumanMessage(question, additional_kwargs={"timestamp": _now()})
        reply = chain.invoke({"question": [message]}, config=config)
        console.print(f"[cyan]user:[/cyan] {question}")
        console.print(f"[green]assistant:[/green] {reply.content}\n")
    stored = history.messages
    console.rule(f"stored history of {session_id!r}: {len(stored)} messages")
    render(stored, 0)
    console.print(
        "[dim]Run the demo again: it continues this conversation, read back from Redis.[/dim]"
    )
    return stored
