"""A deterministic chat model for demos, tests and examples: :class:`ScriptedChatModel`.

No API key, no network: it answers from what it sees of the conversation, and calls a
bound tool when a question says "look up <topic>", so an agent's tool loop runs for real.
Unlike langchain-core's ``GenericFakeChatModel`` it supports ``bind_tools`` (what
``create_agent`` needs), and it refuses a request whose tool results are apart from the AI
message that called them, as a provider would (:func:`check_tool_order`).

Example::

    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from redis_chat_history.scripted_model import ScriptedChatModel

    @tool
    def lookup(topic: str) -> str:
        '''Look up a topic.'''
        return f"{topic}: found"

    model = ScriptedChatModel(answers={"hello": "Hi there."}).bind_tools([lookup])
    model.invoke([HumanMessage("hello")]).content
    # 'Hi there. (I can see 0 earlier questions of yours.)'
    model.invoke([HumanMessage("look up redis")]).tool_calls[0]["args"]  # {'topic': 'redis'}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

__all__ = ["ScriptedChatModel", "check_tool_order"]

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
