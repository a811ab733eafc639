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

The hooks:

- ``before_agent``: decides the session (see :meth:`RedisChatHistoryMiddleware.session_of`)
  before anything is read or written, and keeps it in the thread's private state;
- ``wrap_model_call``: the model sees the system prompt, the stored window
  (:meth:`~redis_chat_history.RedisChatMessageHistory.get_messages` with
  ``whole_turns=True``), then this run's messages. The window never enters the graph
  state, so results and streams carry only this run's messages;
- ``after_agent``: appends every message of the state not stored yet, and records how
  many of the state's messages are stored (a private per-thread count). With a
  checkpointer the state holds earlier turns: the count keeps them from being stored
  again, also when a run is interrupted and resumed. A run that raises never reaches
  ``after_agent``, so it stores nothing.

The async hooks (``ainvoke``, ``astream``) make only asyncio Redis calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
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

from redis_chat_history.errors import InvalidArgumentError, InvalidArgumentTypeError
from redis_chat_history.history import RedisChatMessageHistory
from redis_chat_history.operations import MAX_MESSAGES, check_int
from redis_chat_history.settings import validate_session_id
from redis_chat_history.store import RedisChatStore

__all__ = ["RedisChatHistoryMiddleware", "RedisChatHistoryState"]

#: The private state keys (never shown to the model, never in the agent's output schema).
SESSION_KEY = "redis_history_session"
STORED_KEY = "redis_history_stored"

SessionSource: TypeAlias = "str | Callable[[Runtime[Any]], Any] | None"
ModelResult: TypeAlias = "ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]"


class RedisChatHistoryState(AgentState[Any]):
    """The middleware's private per-thread bookkeeping (checkpointed with the thread)."""

    #: The session the thread's messages are stored in.
    redis_history_session: NotRequired[Annotated[str, PrivateStateAttr]]
    #: How many of the state's messages (from the first) are stored in that session.
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


class RedisChatHistoryMiddleware(AgentMiddleware[RedisChatHistoryState, Any, Any]):
    """Memory for ``create_agent``: a Redis chat history read as a window, appended per run.

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
    def _unstored(state: Mapping[str, Any]) -> list[AnyMessage]:
        messages: list[AnyMessage] = state["messages"]
        return messages[state.get(STORED_KEY, 0) :]

    def _model_request(
        self, request: ModelRequest[Any], window: list[BaseMessage]
    ) -> ModelRequest[Any]:
        """The stored window, then the run's messages (the stored ones of the state left out)."""
        state = request.state
        stored_ids = {message.id for message in state["messages"][: state.get(STORED_KEY, 0)]}
        current = [m for m in request.messages if m.id is None or m.id not in stored_ids]
        return request.override(messages=cast("list[AnyMessage]", [*window, *current]))

    def _stored_update(self, session: str, state: Mapping[str, Any]) -> dict[str, Any]:
        return {SESSION_KEY: session, STORED_KEY: len(state["messages"])}

    # -- sync hooks -------------------------------------------------------------------
    def before_agent(
        self,
        state: RedisChatHistoryState,
        runtime: Runtime[Any],
        config: Optional[RunnableConfig] = None,  # noqa: UP045 (langgraph injects this spelling)
    ) -> dict[str, Any] | None:
        """Decide the session before anything is read or written."""
        session = self.session_of(runtime, config if config is not None else _current_config())
        if state.get(SESSION_KEY) == session:
            return None
        return {SESSION_KEY: session}

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
        """Append the run's messages in one atomic write."""
        session = self._session(state, runtime, config)
        new = self._unstored(state)
        if new:
            self.store.history(session).add_messages(new)
        return self._stored_update(session, state)

    # -- async hooks (asyncio Redis calls only) ---------------------------------------
    async def abefore_agent(
        self,
        state: RedisChatHistoryState,
        runtime: Runtime[Any],
        config: Optional[RunnableConfig] = None,  # noqa: UP045
    ) -> dict[str, Any] | None:
        """Async :meth:`before_agent` (no I/O)."""
        return self.before_agent(state, runtime, config)

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
        new = self._unstored(state)
        if new:
            await self.store.history(session).aadd_messages(new)
        return self._stored_update(session, state)
