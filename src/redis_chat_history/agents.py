"""Agent memory for LangChain v1: the stored conversations, given to a ``create_agent`` agent.

:class:`RedisChatHistoryMiddleware` reads a turn-aligned window of the session's history
before each model call and appends what the run added after it, in one atomic write.
The Redis layout is the history's: the old class (and langchainjs) read what it stores.
Needs the ``agents`` extra (``pip install 'redis-chat-history[agents]'``).

Example::

    from langchain.agents import create_agent
    from redis_chat_history import RedisChatStore
    from redis_chat_history.agents import RedisChatHistoryMiddleware

    store = RedisChatStore(url="redis://localhost:6379/0", ttl=86400)
    agent = create_agent(model, tools=[lookup], system_prompt="You are ...",
                         middleware=[RedisChatHistoryMiddleware(store, window=40)])
    agent.invoke({"messages": [{"role": "user", "content": "hi"}]},
                 {"configurable": {"thread_id": "user-42"}})

Messages are remembered by id, never by position (add_messages gives every message of
the state one), in the thread's private state (:class:`RedisChatHistoryState`):

- ``before_agent`` decides the session before anything is read or written, and records
  the state's messages that are not stored yet (the run's input) as *pending*;
- ``before_model`` records the messages added since (the tools' results), so another
  middleware's summary or trim cannot take one away before it is stored;
- ``wrap_model_call``: the model sees the system prompt, the stored window
  (:meth:`~redis_chat_history.RedisChatMessageHistory.get_messages` with
  ``whole_turns=True``), then the request's messages that the window does not hold
  and that are not stored. A window message the thread's state holds is shown as the
  state has it (an ``update_state`` edit), one removed from the state by
  ``update_state`` is left out. The window never enters the graph state;
- ``after_agent`` appends every pending message, as the state last had it, with a
  script that skips the ones already at the history's tail (a re-run after a crash or
  a cancellation between this write and the checkpoint), then records their ids as
  stored.

The stored conversation is an append-only record: a message is stored once, when the
run that added it ends; ``RemoveMessage``, edits and summaries change the state and what
the model sees, never what is stored. A run that raises never reaches ``after_agent``, so
it stores nothing, provided no other middleware's ``after_agent`` runs after this one's:
LangChain runs them last to first, so put this middleware first in ``middleware=[...]``
(:meth:`RedisChatHistoryMiddleware.check_order` tells).

The async hooks (``ainvoke``, ``astream``) make only asyncio Redis calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeAlias, cast

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from typing_extensions import NotRequired

try:
    from langchain.agents.middleware.types import (
        AgentMiddleware,
        AgentState,
        ModelRequest,
        ModelResponse,
        PrivateStateAttr,
    )
    from langgraph.config import get_config
    from langgraph.runtime import Runtime
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "redis_chat_history.agents needs LangChain v1: pip install 'redis-chat-history[agents]'"
    ) from error

if TYPE_CHECKING:  # not in every langchain 1.x release: needed for annotations only
    from langchain.agents.middleware.types import ExtendedModelResponse

from redis_chat_history.codec import encode_messages
from redis_chat_history.errors import InvalidArgumentError, InvalidArgumentTypeError
from redis_chat_history.execution import arun, run
from redis_chat_history.history import RedisChatMessageHistory
from redis_chat_history.operations import MAX_MESSAGES, Plan, check_int
from redis_chat_history.operations.turns import Appended, append_unstored_plan
from redis_chat_history.settings import validate_session_id
from redis_chat_history.store import RedisChatStore

__all__ = ["RedisChatHistoryMiddleware", "RedisChatHistoryState"]

#: The private state keys (never shown to the model, never in the agent's output schema).
SESSION_KEY = "redis_history_session"
STORED_IDS_KEY = "redis_history_stored_ids"
PENDING_KEY = "redis_history_pending"
HIDDEN_KEY = "redis_history_hidden"
#: Checkpoints written before ids were kept: how many of the first messages are stored.
STORED_KEY = "redis_history_stored"

SessionSource: TypeAlias = "str | Callable[[Runtime[Any]], Any] | None"
ModelResult: TypeAlias = "ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]"


class RedisChatHistoryState(AgentState[Any]):
    """The middleware's private per-thread bookkeeping (checkpointed with the thread)."""

    #: The session the thread's messages are stored in.
    redis_history_session: NotRequired[Annotated[str, PrivateStateAttr]]
    #: Ids of the state's messages that are stored (only those still in the state).
    redis_history_stored_ids: NotRequired[Annotated[list[str], PrivateStateAttr]]
    #: Messages recorded to be stored when the run ends, oldest first.
    redis_history_pending: NotRequired[Annotated[list[AnyMessage], PrivateStateAttr]]
    #: Ids of stored messages removed from the state between runs: the model no longer
    #: sees them in the window (the record keeps them).
    redis_history_hidden: NotRequired[Annotated[list[str], PrivateStateAttr]]
    #: Read from checkpoints written before ids were kept; no longer written.
    redis_history_stored: NotRequired[Annotated[int, PrivateStateAttr]]


def _as_session_id(value: Any, where: str) -> str:
    if isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(
            f"the session id from {where} must be a str, got {type(value).__name__}"
        )
    validate_session_id(value)
    return value


def _context_session(context: Any) -> Any:
    if context is None:
        return None
    if isinstance(context, Mapping):
        return context.get("session_id")
    return getattr(context, "session_id", None)


def _current_config() -> RunnableConfig | None:
    try:
        return get_config()
    except RuntimeError:  # outside a run, or an async node on Python 3.10
        return None


# -- the bookkeeping: plain functions of the state -------------------------------------
def _is_summary(message: BaseMessage) -> bool:
    """SummarizationMiddleware's summary: what the model sees, not what was said."""
    return message.additional_kwargs.get("lc_source") == "summarization"


def _stored_ids(state: Mapping[str, Any]) -> list[str]:
    ids = state.get(STORED_IDS_KEY)
    if ids is not None:
        return list(ids)
    legacy = state.get(STORED_KEY, 0)  # a thread checkpointed by an earlier release
    return [m.id for m in state["messages"][:legacy] if m.id is not None]


def _pending(state: Mapping[str, Any]) -> list[BaseMessage]:
    return list(state.get(PENDING_KEY) or [])


def _newly_pending(state: Mapping[str, Any]) -> list[BaseMessage]:
    """The state's messages neither stored nor pending yet (a summary is neither)."""
    known = {*_stored_ids(state), *(m.id for m in _pending(state))}
    return [m for m in state["messages"] if m.id not in known and not _is_summary(m)]


def _record_update(state: Mapping[str, Any]) -> dict[str, Any] | None:
    new = _newly_pending(state)
    return {PENDING_KEY: [*_pending(state), *new]} if new else None


def _hidden_update(state: Mapping[str, Any]) -> dict[str, Any]:
    """Stored messages that left the state since the last run: hidden from the window."""
    present = {m.id for m in state["messages"]}
    stored = _stored_ids(state)
    gone = [i for i in stored if i not in present]
    if not gone:
        return {}
    hidden = [*(state.get(HIDDEN_KEY) or []), *gone]
    return {HIDDEN_KEY: hidden, STORED_IDS_KEY: [i for i in stored if i in present]}


def _with_id(message: BaseMessage) -> BaseMessage:
    if message.id is not None:
        return message
    return message.model_copy(update={"id": str(uuid.uuid4())})


def _to_store(state: Mapping[str, Any]) -> list[BaseMessage]:
    """Every pending message, as the state last had it (an edit before it was stored)."""
    latest = {m.id: m for m in state["messages"]}
    batch = [*_pending(state), *_newly_pending(state)]
    return [_with_id(latest.get(m.id, m)) for m in batch]


def _stored_update(session: str, state: Mapping[str, Any], batch: list[BaseMessage]) -> Any:
    stored = {*_stored_ids(state), *(m.id for m in batch)}
    ids = [m.id for m in state["messages"] if m.id in stored]
    return {SESSION_KEY: session, STORED_IDS_KEY: ids, PENDING_KEY: []}


def _model_messages(
    state: Mapping[str, Any], requested: Sequence[BaseMessage], window: list[BaseMessage]
) -> list[BaseMessage]:
    """The window (as the state has its messages), then what it lacks of this run."""
    latest = {m.id: m for m in state["messages"]}
    hidden = set(state.get(HIDDEN_KEY) or [])
    shown = [latest.get(m.id, m) for m in window if m.id is None or m.id not in hidden]
    in_window = {m.id for m in window if m.id is not None}
    skip = in_window | set(_stored_ids(state))
    current = [m for m in requested if m.id is None or m.id not in skip]
    # this run's messages that other middleware took out of the request (a summary)
    asked = {m.id for m in requested}
    taken = [m for m in _pending(state) if m.id not in asked and m.id not in in_window]
    return [*shown, *taken, *current]


class RedisChatHistoryMiddleware(AgentMiddleware[RedisChatHistoryState, Any, Any]):
    """Memory for ``create_agent``: a Redis chat history read as a window, appended per run.

    Put it first in ``middleware=[...]``: its ``after_agent`` then runs last, so a run
    that another middleware's ``after_agent`` makes raise stores nothing.

    Args:
        store: the :class:`~redis_chat_history.RedisChatStore` holding the sessions (its
            ``ttl``, ``max_messages``, ``compress`` ... apply to every write).
        window: how many of the newest stored messages the model sees, extended back to
            a human message so no tool result loses its call; None: all of them.
        session_id: the session, or a callable taking the run's ``Runtime`` and returning
            it. Without it: the run context's ``session_id`` (attribute or key), else
            ``config["configurable"]["session_id"]``, else ``config["configurable"]["thread_id"]``.

    Example::

        agent = create_agent(model, tools, middleware=[RedisChatHistoryMiddleware(store)])
        agent.invoke({"messages": [("user", "hi")]}, {"configurable": {"session_id": "u1"}})
    """

    state_schema = RedisChatHistoryState

    def __init__(
        self,
        store: RedisChatStore,
        *,
        window: int | None = 40,
        session_id: SessionSource = None,
    ) -> None:
        super().__init__()
        if not isinstance(store, RedisChatStore):
            raise InvalidArgumentTypeError(
                f"store must be a RedisChatStore, got {type(store).__name__}"
            )
        if window is not None:
            check_int("window", window, minimum=1, maximum=MAX_MESSAGES)
        if session_id is not None and not (isinstance(session_id, str) or callable(session_id)):
            raise InvalidArgumentTypeError(
                "session_id must be a str or a callable taking the runtime, got "
                f"{type(session_id).__name__}"
            )
        if isinstance(session_id, str):
            validate_session_id(session_id)
        self.store = store
        self.window = window
        self.session_id = session_id

    # -- which conversation ---------------------------------------------------------
    def session_of(self, runtime: Runtime[Any], config: RunnableConfig | None) -> str:
        """The session of this run (raises ``ValueError`` naming where it is looked for)."""
        if isinstance(self.session_id, str):
            return self.session_id
        if self.session_id is not None:
            return _as_session_id(self.session_id(runtime), "the session_id callable")
        from_context = _context_session(getattr(runtime, "context", None))
        if from_context is not None:
            return _as_session_id(from_context, "the run context's session_id")
        configurable = (config or {}).get("configurable") or {}
        for name in ("session_id", "thread_id"):
            if configurable.get(name) is not None:
                return _as_session_id(configurable[name], f"config['configurable'][{name!r}]")
        raise InvalidArgumentError(
            "RedisChatHistoryMiddleware cannot tell which conversation this run belongs to: "
            "give the middleware session_id= (a str or a callable taking the runtime), run "
            "the agent with a context that has a 'session_id' attribute or key, or put "
            "'session_id' or 'thread_id' in config['configurable']"
        )

    def check_order(self, agent: Any) -> None:
        """Raise ``ValueError`` when another middleware's ``after_agent`` runs after this one's.

        LangChain runs ``after_agent`` hooks from the last middleware of the list to the
        first; one that runs after this middleware's write and raises leaves a raising
        run whose messages are stored. Call it on the compiled agent.

        Example::

            agent = create_agent(model, tools, middleware=[memory, guard])
            memory.check_order(agent)  # fine: memory's after_agent is the last step
        """
        node = f"{self.name}.after_agent"
        after = sorted(
            {edge.target for edge in agent.get_graph().edges if edge.source == node} - {"__end__"}
        )
        if after:
            names = ", ".join(target.split(".")[0] for target in after)
            raise InvalidArgumentError(
                f"{names} runs its after_agent after {self.name} stored the run: a run it "
                f"makes raise is stored anyway; put {self.name} first in middleware=[...]"
            )

    def _session(
        self, state: Mapping[str, Any], runtime: Runtime[Any], config: RunnableConfig | None
    ) -> str:
        """The session kept by ``before_agent`` (a resumed run did not pass there)."""
        kept = state.get(SESSION_KEY)
        if isinstance(kept, str):
            return kept
        return self.session_of(runtime, config if config is not None else _current_config())

    def _history(self, state: Mapping[str, Any], runtime: Runtime[Any]) -> RedisChatMessageHistory:
        return self.store.history(self._session(state, runtime, None))

    @staticmethod
    def _model_request(request: ModelRequest[Any], window: list[BaseMessage]) -> ModelRequest[Any]:
        messages = _model_messages(request.state, request.messages, window)
        return request.override(messages=cast("list[AnyMessage]", messages))

    @staticmethod
    def _append_plan(history: RedisChatMessageHistory, batch: list[BaseMessage]) -> Plan[Appended]:
        settings = history.settings
        encoded = encode_messages(batch, compress=settings.compress)
        ids = [cast("str", m.id) for m in batch]
        return append_unstored_plan(
            history.key, ids, encoded, ttl=settings.ttl, max_messages=settings.max_messages
        )

    # -- sync hooks -------------------------------------------------------------------
    def before_agent(
        self,
        state: RedisChatHistoryState,
        runtime: Runtime[Any],
        config: Optional[RunnableConfig] = None,  # noqa: UP045 (langgraph injects this spelling)
    ) -> dict[str, Any] | None:
        """Decide the session before anything is read or written; record the input."""
        session = self.session_of(runtime, config if config is not None else _current_config())
        update = _hidden_update(state)
        if state.get(SESSION_KEY) != session:
            update[SESSION_KEY] = session
        recorded = _record_update({**state, **update})
        return {**update, **(recorded or {})} or None

    def before_model(self, state: RedisChatHistoryState, runtime: Runtime[Any]) -> Any:
        """Record what the tools added, before other middleware may summarize it away."""
        return _record_update(state)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResult:
        """Give the model the stored window before this run's messages."""
        history = self._history(request.state, request.runtime)
        window = history.get_messages(self.window, whole_turns=True)
        return handler(self._model_request(request, window))

    def after_agent(
        self,
        state: RedisChatHistoryState,
        runtime: Runtime[Any],
        config: Optional[RunnableConfig] = None,  # noqa: UP045
    ) -> dict[str, Any] | None:
        """Append the run's messages in one atomic write (skipping any already at the tail)."""
        session = self._session(state, runtime, config)
        batch = _to_store(state)
        if batch:
            history = self.store.history(session)
            run(history._provider, self._append_plan(history, batch), history.settings.wait)
        return cast("dict[str, Any]", _stored_update(session, state, batch))

    # -- async hooks (asyncio Redis calls only) ---------------------------------------
    async def abefore_agent(
        self,
        state: RedisChatHistoryState,
        runtime: Runtime[Any],
        config: Optional[RunnableConfig] = None,  # noqa: UP045
    ) -> dict[str, Any] | None:
        """Async :meth:`before_agent` (no I/O)."""
        return self.before_agent(state, runtime, config)

    async def abefore_model(self, state: RedisChatHistoryState, runtime: Runtime[Any]) -> Any:
        """Async :meth:`before_model` (no I/O)."""
        return _record_update(state)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResult:
        """Async :meth:`wrap_model_call`."""
        history = self._history(request.state, request.runtime)
        window = await history.aget_messages(self.window, whole_turns=True)
        return await handler(self._model_request(request, window))

    async def aafter_agent(
        self,
        state: RedisChatHistoryState,
        runtime: Runtime[Any],
        config: Optional[RunnableConfig] = None,  # noqa: UP045
    ) -> dict[str, Any] | None:
        """Async :meth:`after_agent`."""
        session = self._session(state, runtime, config)
        batch = _to_store(state)
        if batch:
            history = self.store.history(session)
            plan = self._append_plan(history, batch)
            await arun(history._provider, plan, history.settings.wait)
        return cast("dict[str, Any]", _stored_update(session, state, batch))
