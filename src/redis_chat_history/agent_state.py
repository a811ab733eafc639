"""The agent middleware's bookkeeping: plain functions of a thread's state, no I/O.

Which of the state's messages are stored (by id), which are *pending* (recorded, to be
stored when the run ends), which were removed from the state between runs (hidden from
the model's window), and what the model is shown. :mod:`redis_chat_history.agents`
calls them from its hooks; the keys name private state attributes
(:class:`~redis_chat_history.agents.RedisChatHistoryState`).

Example::

    >>> from langchain_core.messages import HumanMessage
    >>> state = {"messages": [HumanMessage("hi", id="q1")], STORED_IDS_KEY: []}
    >>> [m.id for m in record_update(state)[PENDING_KEY]]
    ['q1']
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

#: The private state keys (never shown to the model, never in the agent's output schema).
SESSION_KEY = "redis_history_session"
STORED_IDS_KEY = "redis_history_stored_ids"
PENDING_KEY = "redis_history_pending"
HIDDEN_KEY = "redis_history_hidden"
#: Checkpoints written before ids were kept: how many of the first messages are stored.
STORED_KEY = "redis_history_stored"


def is_summary(message: BaseMessage) -> bool:
    """SummarizationMiddleware's summary: what the model sees, not what was said."""
    return message.additional_kwargs.get("lc_source") == "summarization"


def stored_ids(state: Mapping[str, Any]) -> list[str]:
    ids = state.get(STORED_IDS_KEY)
    if ids is not None:
        return list(ids)
    legacy = state.get(STORED_KEY, 0)  # a thread checkpointed by an earlier release
    return [m.id for m in state["messages"][:legacy] if m.id is not None]


def pending(state: Mapping[str, Any]) -> list[BaseMessage]:
    return list(state.get(PENDING_KEY) or [])


def newly_pending(state: Mapping[str, Any]) -> list[BaseMessage]:
    """The state's messages neither stored nor pending yet (a summary is neither)."""
    known = {*stored_ids(state), *(m.id for m in pending(state))}
    return [m for m in state["messages"] if m.id not in known and not is_summary(m)]


def record_update(state: Mapping[str, Any]) -> dict[str, Any] | None:
    new = newly_pending(state)
    return {PENDING_KEY: [*pending(state), *new]} if new else None


def hidden_update(state: Mapping[str, Any]) -> dict[str, Any]:
    """Stored messages that left the state since the last run: hidden from the window."""
    present = {m.id for m in state["messages"]}
    stored = stored_ids(state)
    gone = [i for i in stored if i not in present]
    if not gone:
        return {}
    hidden = [*(state.get(HIDDEN_KEY) or []), *gone]
    return {HIDDEN_KEY: hidden, STORED_IDS_KEY: [i for i in stored if i in present]}


def _with_id(message: BaseMessage) -> BaseMessage:
    if message.id is not None:
        return message
    return message.model_copy(update={"id": str(uuid.uuid4())})


def to_store(state: Mapping[str, Any]) -> list[BaseMessage]:
    """Every pending message, as the state last had it (an edit before it was stored)."""
    latest = {m.id: m for m in state["messages"]}
    batch = [*pending(state), *newly_pending(state)]
    return [_with_id(latest.get(m.id, m)) for m in batch]


def stored_update(
    session: str, state: Mapping[str, Any], batch: list[BaseMessage]
) -> dict[str, Any]:
    stored = {*stored_ids(state), *(m.id for m in batch)}
    ids = [m.id for m in state["messages"] if m.id in stored]
    return {SESSION_KEY: session, STORED_IDS_KEY: ids, PENDING_KEY: []}


def model_messages(
    state: Mapping[str, Any], requested: Sequence[BaseMessage], window: list[BaseMessage]
) -> list[BaseMessage]:
    """The window (as the state has its messages), then what it lacks of this run."""
    latest = {m.id: m for m in state["messages"]}
    hidden = set(state.get(HIDDEN_KEY) or [])
    shown = [latest.get(m.id, m) for m in window if m.id is None or m.id not in hidden]
    in_window = {m.id for m in window if m.id is not None}
    skip = in_window | set(stored_ids(state))
    current = [m for m in requested if m.id is None or m.id not in skip]
    # this run's messages that other middleware took out of the request (a summary)
    asked = {m.id for m in requested}
    taken = [m for m in pending(state) if m.id not in asked and m.id not in in_window]
    return [*shown, *taken, *current]
