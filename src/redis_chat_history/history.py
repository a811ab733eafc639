"""The chat history class: a drop-in for langchain_community's RedisChatMessageHistory.

Each method builds a plan (:mod:`redis_chat_history.operations`) and runs it with
:func:`~redis_chat_history.execution.run` or :func:`~redis_chat_history.execution.arun`.

Example::

    from redis_chat_history import RedisChatMessageHistory

    history = RedisChatMessageHistory("user-42", url="redis://localhost:6379/0", ttl=3600)
    history.add_user_message("hi")
    history.add_ai_message("hello!")
    history.messages            # [HumanMessage('hi'), AIMessage('hello!')]
    history.get_messages(limit=1)  # [AIMessage('hello!')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, get_buffer_string
from pydantic import ValidationError

from redis_chat_history import operations
from redis_chat_history.checks import check_int
from redis_chat_history.codec import encode_messages
from redis_chat_history.errors import InvalidArgumentTypeError
from redis_chat_history.execution import arun, run
from redis_chat_history.provider import ClientProvider
from redis_chat_history.settings import (
    DEFAULT_KEY_PREFIX,
    DEFAULT_URL,
    Settings,
    SettingsAttributes,
    configure,
    make_provider,
    spell_out_options,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from redis_chat_history.settings import Options

__all__ = ["DEFAULT_KEY_PREFIX", "DEFAULT_URL", "RedisChatMessageHistory", "make_provider"]
_Message = TypeVar("_Message", HumanMessage, AIMessage)

# Deprecated in langchain-core 1.6.4, to be removed in 2.0: subclass it while it exists (so
# isinstance checks keep working), and rely on nothing it provides.
try:
    from langchain_core.chat_history import BaseChatMessageHistory as _HistoryBase
except ImportError:  # pragma: no cover - exercised by a subprocess test
    _HistoryBase = object  # type: ignore[assignment,misc]


def _as_message(kind: type[_Message], message: Any, method: str) -> _Message:
    """``message`` if it is a ``kind``, else a ``kind`` of that content (a str or blocks)."""
    if isinstance(message, kind):
        return message
    if isinstance(message, (str, list)):
        try:
            return kind(message)
        except ValidationError as error:  # content blocks of the wrong shape
            wrong = error.errors()[-1]["msg"]
            raise InvalidArgumentTypeError(
                f"{method}() takes a str, content blocks or a {kind.__name__}: {wrong}"
            ) from None
    raise InvalidArgumentTypeError(
        f"{method}() takes a str, content blocks or a {kind.__name__}, got {type(message).__name__}"
    )


class RedisChatMessageHistory(SettingsAttributes, _HistoryBase):
    """Chat message history stored in a Redis list, compatible with langchain_community's.

    Args:
        session_id: the conversation; the Redis key is ``key_prefix + session_id``.
        url: ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``,
            ``redis+cluster://`` or ``embedded://`` (see :mod:`redis_chat_history.urls`);
            None is the default, ``redis://localhost:6379/0``, as leaving it out.
        key_prefix: prefix of every key, ``"message_store:"`` as in the old class.
        ttl: seconds after the latest write at which the history expires; None or 0: never.
        **options: keyword-only, the same as :class:`~redis_chat_history.RedisChatStore`'s
            (:class:`~redis_chat_history.settings.Options`): ``client``, ``async_client``,
            ``max_messages``, ``compress``, ``wait_for_replicas``, ``wait_timeout``,
            ``retry``, ``skip_corrupt``.

    Example::

        >>> history = RedisChatMessageHistory("s1", url="redis://localhost:6379/0")
        >>> history.add_messages([HumanMessage("hi"), AIMessage("hello")])  # one round trip
        >>> len(history)
        2
    """

    @spell_out_options
    def __init__(
        self,
        session_id: str,
        url: str | None = DEFAULT_URL,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        ttl: int | None = None,
        *,
        _provider: ClientProvider | None = None,
        _settings: Settings | None = None,
        **options: Unpack[Options],
    ) -> None:
        if _settings is not None and _provider is not None:  # a store's history
            self.settings, self._provider = _settings, _provider
        else:
            self.settings, self._provider = configure(
                type(self).__name__, url, key_prefix, ttl, options
            )
        self.key = self.settings.key(session_id)
        self.session_id = session_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(session_id={self.session_id!r}, "
            f"url={self._provider.display!r}, key_prefix={self.key_prefix!r}, ttl={self.ttl!r})"
        )

    # -- plans --------------------------------------------------------------
    def _append_plan(self, messages: Sequence[BaseMessage]) -> operations.Plan[int] | None:
        encoded = encode_messages(messages, compress=self.settings.compress)
        if not encoded:
            return None
        return operations.append_plan(
            self.key, encoded, ttl=self.settings.ttl, max_messages=self.settings.max_messages
        )

    def _read_plan(self, limit: int | None) -> operations.Plan[list[BaseMessage]] | None:
        """None when nothing needs reading (``limit=0``)."""
        if limit is not None and check_int("limit", limit, minimum=0) == 0:
            return None
        return operations.read_plan(self.key, limit=limit, skip_corrupt=self.settings.skip_corrupt)

    def _turn_window_plan(self, limit: int | None) -> operations.Plan[operations.TurnWindow] | None:
        if limit is not None and check_int("limit", limit, minimum=0) == 0:
            return None
        return operations.turn_window_plan(
            self.key, limit=limit, skip_corrupt=self.settings.skip_corrupt
        )

    def _replace_plan(self, messages: Sequence[BaseMessage]) -> operations.Plan[int]:
        encoded = encode_messages(messages, compress=self.settings.compress)
        if self.settings.max_messages is not None:
            encoded = encoded[-self.settings.max_messages :]
        return operations.replace_plan(self.key, encoded, ttl=self.settings.ttl)

    def _delete_last_plan(self, n: int) -> operations.Plan[list[BaseMessage]] | None:
        if check_int("n", n, minimum=0) == 0:
            return None
        return operations.delete_last_plan(self.key, n, skip_corrupt=self.settings.skip_corrupt)

    def _expire_plan(self, seconds: int) -> operations.Plan[bool]:
        # 0 means never, as ttl=0 does (Redis's EXPIRE 0 would delete the history).
        maximum = operations.MAX_EXPIRE_SECONDS
        if check_int("seconds", seconds, minimum=0, maximum=maximum) == 0:
            return operations.persist_plan(self.key)
        return operations.expire_plan(self.key, seconds)

    # -- sync ---------------------------------------------------------------
    @property  # type: ignore[override]
    def messages(self) -> list[BaseMessage]:
        """All messages, oldest first."""
        return self.get_messages()

    @messages.setter
    def messages(self, messages: list[BaseMessage]) -> None:
        raise NotImplementedError(
            "Direct assignment to 'messages' is not allowed. Use the 'add_messages' instead."
        )

    def get_messages(
        self, limit: int | None = None, *, whole_turns: bool = False
    ) -> list[BaseMessage]:
        """The newest ``limit`` messages (all when None), oldest first, at O(limit) cost.

        ``whole_turns=True`` extends the window back to a human message, so that a tool
        result never comes without the AI message that called it (one round trip).
        """
        if whole_turns:
            first = self._turn_window_plan(limit)
            if first is None:
                return []
            window = run(self._provider, first)
            while window.more is not None:  # compressed elements: the client looks further
                window = run(self._provider, window.more)
            return window.messages
        plan = self._read_plan(limit)
        return [] if plan is None else run(self._provider, plan)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one atomic round trip (push, expire, trim); none on error."""
        plan = self._append_plan(messages)
        if plan is not None:
            run(self._provider, plan, self.settings.wait)

    def add_message(self, message: BaseMessage) -> None:
        """Append one message (one round trip)."""
        self.add_messages([message])

    def add_user_message(self, message: HumanMessage | str) -> None:
        """Append a human message (a str becomes one)."""
        self.add_messages([_as_message(HumanMessage, message, "add_user_message")])

    def add_ai_message(self, message: AIMessage | str) -> None:
        """Append an AI message (a str becomes one)."""
        self.add_messages([_as_message(AIMessage, message, "add_ai_message")])

    def __str__(self) -> str:
        return get_buffer_string(self.messages)

    def clear(self) -> None:
        """Delete the whole history."""
        run(self._provider, operations.delete_plan(self.key), self.settings.wait)

    def count(self) -> int:
        """Number of stored messages, O(1)."""
        return run(self._provider, operations.count_plan(self.key))

    def __len__(self) -> int:
        return self.count()

    def __bool__(self) -> bool:
        # A history object is always truthy, even when empty (no round trip in `if history:`).
        return True

    def delete_last(self, n: int = 1) -> list[BaseMessage]:
        """Remove the newest ``n`` messages atomically; returns them oldest first."""
        plan = self._delete_last_plan(n)
        return [] if plan is None else run(self._provider, plan, self.settings.wait)

    def replace_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Replace the whole history atomically (for example by its summary)."""
        run(self._provider, self._replace_plan(messages), self.settings.wait)

    def expire(self, seconds: int) -> bool:
        """Let the history expire ``seconds`` from now; False when it does not exist.

        ``expire(0)`` means never, as ``ttl=0`` does: it is :meth:`persist` (and returns
        what that returns), never a delete.
        """
        return run(self._provider, self._expire_plan(seconds), self.settings.wait)

    def persist(self) -> bool:
        """Remove the history's expiry; False when it had none."""
        return run(self._provider, operations.persist_plan(self.key), self.settings.wait)

    def expires_in(self) -> float | None:
        """Seconds until the history expires, None when it never does."""
        return run(self._provider, operations.expires_in_plan(self.key))

    # -- async (native redis.asyncio, no thread pool) ------------------------
    async def aget_messages(
        self, limit: int | None = None, *, whole_turns: bool = False
    ) -> list[BaseMessage]:
        """Async :meth:`get_messages`."""
        if whole_turns:
            first = self._turn_window_plan(limit)
            if first is None:
                return []
            window = await arun(self._provider, first)
            while window.more is not None:
                window = await arun(self._provider, window.more)
            return window.messages
        plan = self._read_plan(limit)
        return [] if plan is None else await arun(self._provider, plan)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async :meth:`add_messages`."""
        plan = self._append_plan(messages)
        if plan is not None:
            await arun(self._provider, plan, self.settings.wait)

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await arun(self._provider, operations.delete_plan(self.key), self.settings.wait)

    async def acount(self) -> int:
        """Async :meth:`count`."""
        return await arun(self._provider, operations.count_plan(self.key))

    async def adelete_last(self, n: int = 1) -> list[BaseMessage]:
        """Async :meth:`delete_last`."""
        plan = self._delete_last_plan(n)
        return [] if plan is None else await arun(self._provider, plan, self.settings.wait)

    async def areplace_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async :meth:`replace_messages`."""
        await arun(self._provider, self._replace_plan(messages), self.settings.wait)

    async def aexpire(self, seconds: int) -> bool:
        """Async :meth:`expire`."""
        return await arun(self._provider, self._expire_plan(seconds), self.settings.wait)

    async def apersist(self) -> bool:
        """Async :meth:`persist`."""
        return await arun(self._provider, operations.persist_plan(self.key), self.settings.wait)

    async def aexpires_in(self) -> float | None:
        """Async :meth:`expires_in`."""
        return await arun(self._provider, operations.expires_in_plan(self.key))
