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

import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from redis_chat_history import operations
from redis_chat_history.clients import AsyncClient, SyncClient
from redis_chat_history.codec import encode_messages
from redis_chat_history.errors import InvalidArgumentError, InvalidArgumentTypeError
from redis_chat_history.execution import ReplicaWait, arun, run
from redis_chat_history.provider import ClientProvider, shared_provider
from redis_chat_history.retry import DEFAULT_RETRY, RetryPolicy
from redis_chat_history.urls import redact_url

logger = logging.getLogger("redis_chat_history")

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_KEY_PREFIX = "message_store:"


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")


def validate_settings(
    *,
    key_prefix: Any,
    ttl: Any,
    max_messages: Any,
    wait_for_replicas: Any = None,
    wait_timeout: Any = 1.0,
) -> ReplicaWait | None:
    """Check the settings a history and a store share; returns the replica wait (if any)."""
    if not isinstance(key_prefix, str):
        raise InvalidArgumentTypeError(f"key_prefix must be a str, got {type(key_prefix).__name__}")
    if ttl is not None:
        # The old class silently deleted the history on a negative ttl; refuse it instead.
        _check_int("ttl", ttl, minimum=0)
    if max_messages is not None:
        _check_int("max_messages", max_messages, minimum=1)
    if wait_for_replicas is None:
        return None
    _check_int("wait_for_replicas", wait_for_replicas, minimum=1)
    if (
        isinstance(wait_timeout, bool)
        or not isinstance(wait_timeout, (int, float))
        or wait_timeout <= 0
    ):
        raise InvalidArgumentError(
            f"wait_timeout must be a number of seconds > 0, got {wait_timeout!r}"
        )
    return ReplicaWait(wait_for_replicas, max(1, round(wait_timeout * 1000)))


def validate_session_id(session_id: Any) -> str:
    """A session id must be a non-empty str (any characters, glob ones included)."""
    if not isinstance(session_id, str):
        raise InvalidArgumentTypeError(f"session_id must be a str, got {type(session_id).__name__}")
    if not session_id:
        raise InvalidArgumentError("session_id must not be empty")
    return session_id


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


class RedisChatMessageHistory(BaseChatMessageHistory):
    """Chat message history stored in a Redis list, compatible with langchain_community's.

    Args:
        session_id: the conversation; the Redis key is ``key_prefix + session_id``.
        url: ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``,
            ``redis+cluster://`` or ``embedded://`` (see :mod:`redis_chat_history.connection`).
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
    ) -> None:
        self.session_id = validate_session_id(session_id)
        self._wait = validate_settings(
            key_prefix=key_prefix,
            ttl=ttl,
            max_messages=max_messages,
            wait_for_replicas=wait_for_replicas,
            wait_timeout=wait_timeout,
        )
        self.key_prefix = key_prefix
        self.ttl = ttl
        self.max_messages = max_messages
        self.compress = bool(compress)
        self.skip_corrupt = bool(skip_corrupt)
        self._provider = _provider or make_provider(url, client, async_client, retry)
        self.url = redact_url(url) if isinstance(url, str) else DEFAULT_URL

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(session_id={self.session_id!r}, "
            f"url={self._provider.display!r}, key_prefix={self.key_prefix!r}, ttl={self.ttl!r})"
        )

    @property
    def key(self) -> str:
        """The Redis key of this history: ``key_prefix + session_id``."""
        return self.key_prefix + self.session_id

    # -- plans --------------------------------------------------------------
    def _append_plan(self, messages: Sequence[BaseMessage]) -> operations.Plan[int] | None:
        encoded = encode_messages(messages, compress=self.compress)
        if not encoded:
            return None
        return operations.append_plan(
            self.key,
            encoded,
            ttl=self.ttl,
            max_messages=self.max_messages,
            token=operations.new_write_token(),
        )

    def _read_plan(self, limit: int | None) -> operations.Plan[list[BaseMessage]]:
        if limit is not None:
            _check_int("limit", limit, minimum=0)
        return operations.read_plan(self.key, limit=limit, skip_corrupt=self.skip_corrupt)

    def _replace_plan(self, messages: Sequence[BaseMessage]) -> operations.Plan[int]:
        encoded = encode_messages(messages, compress=self.compress)
        if self.max_messages is not None:
            encoded = encoded[-self.max_messages :]
        return operations.replace_plan(self.key, encoded, ttl=self.ttl)

    def _delete_last_plan(self, n: int) -> operations.Plan[list[BaseMessage]]:
        _check_int("n", n, minimum=0)
        return operations.delete_last_plan(self.key, n, skip_corrupt=self.skip_corrupt)

    def _expire_plan(self, seconds: int) -> operations.Plan[bool]:
        _check_int("seconds", seconds, minimum=1)
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

    def get_messages(self, limit: int | None = None) -> list[BaseMessage]:
        """The newest ``limit`` messages (all when None), oldest first, at O(limit) cost."""
        plan = self._read_plan(limit)
        if limit == 0:
            return []
        return run(self._provider, plan)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one atomic round trip (push, expire, trim); none on error."""
        plan = self._append_plan(messages)
        if plan is not None:
            run(self._provider, plan, self._wait)

    def add_message(self, message: BaseMessage) -> None:
        """Append one message (one round trip)."""
        self.add_messages([message])

    def clear(self) -> None:
        """Delete the whole history."""
        run(self._provider, operations.clear_plan(self.key), self._wait)

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
        if n == 0:
            self._delete_last_plan(n)
            return []
        return run(self._provider, self._delete_last_plan(n), self._wait)

    def replace_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Replace the whole history atomically (for example by its summary)."""
        run(self._provider, self._replace_plan(messages), self._wait)

    def expire(self, seconds: int) -> bool:
        """Let the history expire ``seconds`` from now; False when it does not exist."""
        return run(self._provider, self._expire_plan(seconds), self._wait)

    def persist(self) -> bool:
        """Remove the history's expiry; False when it had none."""
        return run(self._provider, operations.persist_plan(self.key), self._wait)

    def expires_in(self) -> float | None:
        """Seconds until the history expires, None when it never does."""
        return run(self._provider, operations.expires_in_plan(self.key))

    # -- async (native redis.asyncio, no thread pool) ------------------------
    async def aget_messages(self, limit: int | None = None) -> list[BaseMessage]:
        """Async :meth:`get_messages`."""
        plan = self._read_plan(limit)
        if limit == 0:
            return []
        return await arun(self._provider, plan)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async :meth:`add_messages`."""
        plan = self._append_plan(messages)
        if plan is not None:
            await arun(self._provider, plan, self._wait)

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await arun(self._provider, operations.clear_plan(self.key), self._wait)

    async def acount(self) -> int:
        """Async :meth:`count`."""
        return await arun(self._provider, operations.count_plan(self.key))

    async def adelete_last(self, n: int = 1) -> list[BaseMessage]:
        """Async :meth:`delete_last`."""
        if n == 0:
            self._delete_last_plan(n)
            return []
        return await arun(self._provider, self._delete_last_plan(n), self._wait)

    async def areplace_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async :meth:`replace_messages`."""
        await arun(self._provider, self._replace_plan(messages), self._wait)

    async def aexpire(self, seconds: int) -> bool:
        """Async :meth:`expire`."""
        return await arun(self._provider, self._expire_plan(seconds), self._wait)

    async def apersist(self) -> bool:
        """Async :meth:`persist`."""
        return await arun(self._provider, operations.persist_plan(self.key), self._wait)

    async def aexpires_in(self) -> float | None:
        """Async :meth:`expires_in`."""
        return await arun(self._provider, operations.expires_in_plan(self.key))
