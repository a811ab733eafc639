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

Messages are remembered by id, never by position, in the thread's private state
(:class:`RedisChatHistoryState`): ``before_agent`` (which also decides the session) and
``before_model`` record the state's messages not stored yet as *pending*, so another
middleware's summary or trim cannot take one away; ``wrap_model_call`` gives the model
the system prompt, the stored window (``get_messages(window, whole_turns=True)``, shown
as the state has its messages: an ``update_state`` edit is seen, a removal is not), then
the request's messages the window does not hold; ``after_agent`` appends the pending
messages with a script that skips those already at the history's tail (a re-run after a
crash or a cancellation between that write and the checkpoint).

The stored conversation is append-only: ``RemoveMessage``, edits and summaries change the
state and what the model sees, never what is stored. A run that raises stores nothing,
provided no other middleware's ``after_agent`` runs after this one's: LangChain runs them
last to first, so put this middleware first (:meth:`RedisChatHistoryMiddleware.check_order`).
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

from redis_chat_history.agent_state import (
    SESSION_KEY,
    hidden_update,
    model_messages,
    record_update,
    stored_update,
    to_store,
)
from redis_chat_history.codec import encode_messages
from redis_chat_history.errors import InvalidArgumentError, InvalidArgumentTypeError
from redis_chat_history.execution import arun, run
from redis_chat_history.history import RedisChatMessageHistory
from redis_chat_history.operations import MAX_MESSAGES, Plan, check_int
from redis_chat_history.operations.turns import Appended, append_unstored_plan
from redis_chat_history.settings import validate_session_id
from redis_chat_history.store import RedisChatStore

__all__ = ["RedisChatHistoryMiddleware", "RedisChatHistoryState"]

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
        messages = model_messages(request.state, request.messages, window)
        return request.override(messages=cast("list[AnyMessage]", messages))

    def _write(
        self, state: Mapping[str, Any], runtime: Runtime[Any], config: RunnableConfig | None
    ) -> tuple[RedisChatMessageHistory, Plan[Appended] | None, dict[str, Any]]:
        """The history, the append of the run's pending messages (None: nothing), the update."""
        session = self._session(state, runtime, config)
        history = self.store.history(session)
        batch = to_store(state)
        plan = None
        if batch:
            # the history's settings; executed with its provider (as its own writes are)
            settings = history.settings
            encoded = encode_messages(batch, compress=settings.compress)
            ids = [cast("str", m.id) for m in batch]
            plan = append_unstored_plan(
                history.key, ids, encoded, ttl=settings.ttl, max_messages=settings.max_messages
            )
        return history, plan, stored_update(session, state, batch)

    # -- sync hooks -------------------------------------------------------------------
    def before_agent(
        self,
        state: RedisChatHistoryState,
        runtime: Runtime[Any],
        config: Optional[RunnableConfig] = None,  # noqa: UP045 (langgraph injects this spelling)
    ) -> dict[str, Any] | None:
        """Decide the session before anything is read or written; record the input."""
        session = self.session_of(runtime, config if config is not None else _current_config())
        update = hidden_update(state)
        if state.get(SESSION_KEY) != session:
            update[SESSION_KEY] = session
        recorded = record_update({**state, **update})
        return {**update, **(recorded or {})} or None

    def before_model(self, state: RedisChatHistoryState, runtime: Runtime[Any]) -> Any:
        """Record what the tools added, before other middleware may summarize it away."""
        return record_update(state)

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
        history, plan, update = self._write(state, runtime, config)
        if plan is not None:
            run(history._provider, plan, history.settings.wait)
        return update

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
        return record_update(state)

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
        history, plan, update = self._write(state, runtime, config)
        if plan is not None:
            await arun(history._provider, plan, history.settings.wait)
        return update
