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

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

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

_LOOK_UP = re.compile(r"look up (\w+)", re.IGNORECASE)


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def check_tool_order(messages: Sequence[BaseMessage]) -> None:
    """Refuse a conversation a provider would refuse: tool results apart from their call.

    Every tool result must follow the AI message that called it (or another result of
    that message), and every call of an AI message must be answered before the next
    message that is not a tool result.
    """
    waiting: dict[str, int] = {}
    for position, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            if message.tool_call_id not in waiting:
                raise ValueError(
                    f"message {position} is a tool result for {message.tool_call_id!r}, "
                    "which the AI message before it did not call"
                )
            del waiting[message.tool_call_id]
            continue
        if waiting:
            raise ValueError(
                f"message {position} follows tool calls without results: {sorted(waiting)}"
            )
        if isinstance(message, AIMessage):
            waiting = {call["id"] or "": position for call in message.tool_calls}
    if waiting:
        raise ValueError(f"the conversation ends with unanswered tool calls: {sorted(waiting)}")


class ScriptedChatModel(BaseChatModel):
    """A deterministic chat model for demos, tests and benchmarks (no API key).

    It checks every request with :func:`check_tool_order` and records it in ``requests``.
    When the newest message is a question containing "look up <topic>" and a tool is
    bound, it calls the first tool with ``{"topic": ...}``; after a tool result it
    answers with it; otherwise it answers from what it sees of the conversation.

    Example::

        model = ScriptedChatModel()
        model.invoke([HumanMessage("hi")]).content   # 'You said: hi ...'
    """

    tool_names: list[str] = Field(default_factory=list)
    #: Every message list the model was called with, shared by its bound copies.
    requests: list[list[BaseMessage]] = Field(default_factory=list)
    #: Canned answers: the first whose key is in the question is given (else an echo).
    answers: dict[str, str] = Field(default_factory=dict)
    #: Words of filler added to each answer (benchmarks use it to set message sizes).
    padding: int = 0
    #: Say what it sees of the conversation (benchmarks turn it off: answers keep one size).
    remember: bool = True

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        names = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        # A shallow copy: the bound model records into the same list of requests.
        return self.model_copy(update={"tool_names": names})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        check_tool_order([m for m in messages if m.type != "system"])
        self.requests.append(list(messages))
        reply = self._reply(messages)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        metadata = {"model_name": "scripted", "created_at": _now()}
        last = messages[-1]
        pad = " ".join(["and so on"] * self.padding)
        if isinstance(last, ToolMessage):
            text = f"Here is what I found: {last.content} {pad}"
            return AIMessage(text.strip(), response_metadata=metadata)
        question = str(last.content)
        wanted = _LOOK_UP.search(question)
        if wanted and self.tool_names and isinstance(last, HumanMessage):
            digest = hashlib.sha1(f"{last.id}:{question}:{len(messages)}".encode()).hexdigest()
            call = {
                "name": self.tool_names[0],
                "args": {"topic": wanted.group(1).lower()},
                "id": f"call_{digest[:16]}",
                "type": "tool_call",
            }
            return AIMessage("", tool_calls=[call], response_metadata=metadata)
        answer = next((text for key, text in self.answers.items() if key in question), None)
        if not self.remember:
            text = f"{answer or 'You said: ' + question} {pad}"
            return AIMessage(text.strip(), response_metadata=metadata)
        earlier = [m for m in messages[:-1] if isinstance(m, HumanMessage)]
        looked_up = [
            str(call["args"].get("topic"))
            for m in messages
            if isinstance(m, AIMessage)
            for call in m.tool_calls
        ]
        memory = f"(I can see {len(earlier)} earlier questions of yours"
        if earlier:
            memory += f", the first one: {str(earlier[0].content)!r}"
        if looked_up:
            memory += f"; I looked up: {', '.join(looked_up)}"
        text = f"{answer or 'You said: ' + question} {memory}.) {pad}"
        return AIMessage(text.strip(), response_metadata=metadata)


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
