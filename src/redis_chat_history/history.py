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
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, get_buffer_string

from redis_chat_history import operations
from redis_chat_history.clients import AsyncClient, SyncClient
from redis_chat_history.codec import encode_messages
from redis_chat_history.errors import InvalidArgumentTypeError
from redis_chat_history.execution import arun, run
from redis_chat_history.provider import ClientProvider, shared_provider
from redis_chat_history.retry import DEFAULT_RETRY, RetryPolicy
from redis_chat_history.settings import DEFAULT_KEY_PREFIX, DEFAULT_URL, Settings

__all__ = ["DEFAULT_KEY_PREFIX", "DEFAULT_URL", "RedisChatMessageHistory", "make_provider"]

# Deprecated in langchain-core 1.6.4, to be removed in 2.0: subclass it while it exists (so
# isinstance checks keep working), and rely on nothing it provides.
try:
    from langchain_core.chat_history import BaseChatMessageHistory as _HistoryBase
except ImportError:  # pragma: no cover - exercised by a subprocess test
    _HistoryBase = object  # type: ignore[assignment,misc]


def make_provider(
    url: Any,
    client: SyncClient | None,
    async_client: AsyncClient | None,
    retry: RetryPolicy | None,
) -> ClientProvider:
    """The clients a history uses: the caller's own, or the shared ones for ``url``."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise InvalidArgumentTypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
    if client is not None or async_client is not None:
        return ClientProvider(
            None, retry or DEFAULT_RETRY, sync_client=client, async_client=async_client
        )
    return shared_provider(url, retry or DEFAULT_RETRY)


class RedisChatMessageHistory(_HistoryBase):
    """Chat message history stored in a Redis list, compatible with langchain_community's.

    Args:
        session_id: the conversation; the Redis key is ``key_prefix + session_id``.
        url: ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``,
            ``redis+cluster://`` or ``embedded://`` (see :mod:`redis_chat_history.urls`).
        key_prefix: prefix of every key, ``"message_store:"`` as in the old class.
        ttl: seconds after the latest write at which the history expires; None or 0: never.
        client / async_client: use these redis-py clients instead of ``url``.
        max_messages: keep only the newest N messages (trimmed in the same atomic write).
        compress: store messages zlib-compressed when smaller (the old class cannot read those).
        wait_for_replicas / wait_timeout: a write returns only once that many replicas
            acknowledged it within ``wait_timeout`` seconds, else raises ReplicationError.
        retry: how calls are retried when the server cannot be reached.
        skip_corrupt: log and skip stored elements that are not messages instead of raising.

    Example::

        >>> history = RedisChatMessageHistory("s1", url="redis://localhost:6379/0")
        >>> history.add_messages([HumanMessage("hi"), AIMessage("hello")])  # one round trip
        >>> len(history)
        2
    """

    def __init__(
        self,
        session_id: str,
        url: str = DEFAULT_URL,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        ttl: int | None = None,
        *,
        client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
        max_messages: int | None = None,
        compress: bool = False,
        wait_for_replicas: int | None = None,
        wait_timeout: float = 1.0,
        retry: RetryPolicy | None = None,
        skip_corrupt: bool = False,
        _provider: ClientProvider | None = None,
        _settings: Settings | None = None,
    ) -> None:
        self.settings = _settings or Settings.build(
            key_prefix=key_prefix,
            ttl=ttl,
            max_messages=max_messages,
            compress=compress,
            wait_for_replicas=wait_for_replicas,
            wait_timeout=wait_timeout,
            skip_corrupt=skip_corrupt,
        )
        self.key = self.settings.key(session_id)
        self.session_id = session_id
        self._provider = _provider or make_provider(url, client, async_client, retry)

    # The old class's attributes, read from the settings.
    @property
    def key_prefix(self) -> str:
        return self.settings.key_prefix

    @property
    def ttl(self) -> int | None:
        return self.settings.ttl

    @property
    def max_messages(self) -> int | None:
        return self.settings.max_messages

    @property
    def url(self) -> str:
        """Where the history lives, without credentials."""
        return self._provider.display

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
        if limit is not None and operations.check_int("limit", limit, minimum=0) == 0:
            return None
        return operations.read_plan(self.key, limit=limit, skip_corrupt=self.settings.skip_corrupt)

    def _turn_window_plan(self, limit: int | None) -> operations.Plan[operations.TurnWindow] | None:
        if limit is not None and operations.check_int("limit", limit, minimum=0) == 0:
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
        if operations.check_int("n", n, minimum=0) == 0:
            return None
        return operations.delete_last_plan(self.key, n, skip_corrupt=self.settings.skip_corrupt)

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
        self.add_messages([message if isinstance(message, HumanMessage) else HumanMessage(message)])

    def add_ai_message(self, message: AIMessage | str) -> None:
        """Append an AI message (a str becomes one)."""
        self.add_messages([message if isinstance(message, AIMessage) else AIMessage(message)])

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
        """Let the history expire ``seconds`` from now; False when it does not exist."""
        return run(self._provider, operations.expire_plan(self.key, seconds), self.settings.wait)

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
        return await arun(
            self._provider, operations.expire_plan(self.key, seconds), self.settings.wait
        )

    async def apersist(self) -> bool:
        """Async :meth:`persist`."""
        return await arun(self._provider, operations.persist_plan(self.key), self.settings.wait)

    async def aexpires_in(self) -> float | None:
        """Async :meth:`expires_in`."""
        return await arun(self._provider, operations.expires_in_plan(self.key))
