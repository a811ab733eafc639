"""The three things measured side by side, behind one small interface.

* ``package``: this package's RedisChatMessageHistory (shared clients, one EVALSHA per write).
* ``community``: langchain_community's RedisChatMessageHistory, used as its users do
  (a new object, hence a new client, per request; async through LangChain's thread pool).
* ``floor``: the least any Python library must do with redis-py: one pipelined
  LPUSH + EXPIRE to write (orjson of ``message_to_dict``), LRANGE + orjson +
  ``messages_from_dict`` to read, on shared clients.

Example::

    contender = Package(url, ttl=3600)
    history = contender.open("session-1")      # what one request builds
    contender.write(history, [HumanMessage("hi"), AIMessage("hello")])
    contender.read_all(history)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import orjson
import redis
import redis.asyncio
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from redis_chat_history import RedisChatMessageHistory
from redis_chat_history.provider import shared_provider

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # "langchain-community is being sunset"
    from langchain_community.chat_message_histories import (
        RedisChatMessageHistory as CommunityHistory,
    )

KEY_PREFIX = "message_store:"


class Contender:
    """One way of storing chat histories in Redis; a handle is what a request builds."""

    name = ""
    label = ""

    def __init__(self, url: str, ttl: int | None) -> None:
        self.url = url
        self.ttl = ttl

    def open(self, session_id: str) -> Any:
        raise NotImplementedError

    def write(self, handle: Any, messages: Sequence[BaseMessage]) -> None:
        raise NotImplementedError

    def read_all(self, handle: Any) -> list[BaseMessage]:
        raise NotImplementedError

    def read_newest(self, handle: Any, count: int) -> list[BaseMessage]:
        raise NotImplementedError

    async def aread_all(self, handle: Any) -> list[BaseMessage]:
        raise NotImplementedError

    async def awrite(self, handle: Any, messages: Sequence[BaseMessage]) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release clients bound to the running event loop."""

    def close(self) -> None:
        """Release sync clients."""


class Package(Contender):
    """This package, default settings (or ``compress=True``)."""

    name = "package"
    label = "redis-chat-history"

    def __init__(self, url: str, ttl: int | None, *, compress: bool = False) -> None:
        super().__init__(url, ttl)
        self.compress = compress
        if compress:
            self.name, self.label = "package_compress", "redis-chat-history compress=True"

    def open(self, session_id: str) -> RedisChatMessageHistory:
        return RedisChatMessageHistory(
            session_id, url=self.url, ttl=self.ttl, compress=self.compress
        )

    def write(self, handle: RedisChatMessageHistory, messages: Sequence[BaseMessage]) -> None:
        handle.add_messages(messages)

    def read_all(self, handle: RedisChatMessageHistory) -> list[BaseMessage]:
        return handle.messages

    def read_newest(self, handle: RedisChatMessageHistory, count: int) -> list[BaseMessage]:
        return handle.get_messages(limit=count)

    async def aread_all(self, handle: RedisChatMessageHistory) -> list[BaseMessage]:
        return await handle.aget_messages()

    async def awrite(
        self, handle: RedisChatMessageHistory, messages: Sequence[BaseMessage]
    ) -> None:
        await handle.aadd_messages(messages)

    async def aclose(self) -> None:
        client = await shared_provider(self.url).async_()
        await client.aclose()

    def close(self) -> None:
        shared_provider(self.url).close()  # only this url's clients: others may be in use


class Community(Contender):
    """langchain_community's class: a new client per object, 2 commands per message."""

    name = "community"
    label = "langchain_community"

    def open(self, session_id: str) -> Any:
        return CommunityHistory(session_id, url=self.url, ttl=self.ttl)

    def write(self, handle: Any, messages: Sequence[BaseMessage]) -> None:
        handle.add_messages(messages)

    def read_all(self, handle: Any) -> list[BaseMessage]:
        messages: list[BaseMessage] = handle.messages
        return messages

    def read_newest(self, handle: Any, count: int) -> list[BaseMessage]:
        # The old class has no limit: it reads everything and the caller slices.
        messages: list[BaseMessage] = handle.messages
        return messages[-count:]

    async def aread_all(self, handle: Any) -> list[BaseMessage]:
        messages: list[BaseMessage] = await handle.aget_messages()
        return messages

    async def awrite(self, handle: Any, messages: Sequence[BaseMessage]) -> None:
        await handle.aadd_messages(messages)


def floor_encode(message: BaseMessage) -> bytes:
    """The floor's stored form: the old class's dict, as compact orjson."""
    return orjson.dumps(message_to_dict(message))


def floor_decode(raw: Sequence[bytes | str]) -> list[BaseMessage]:
    """An LRANGE reply (newest first) into messages, oldest first, fully validated."""
    return messages_from_dict([orjson.loads(element) for element in reversed(raw)])


class Floor(Contender):
    """Raw redis-py: the least work any library must do for the same results."""

    name = "floor"
    label = "redis-py floor"

    def __init__(self, url: str, ttl: int | None) -> None:
        super().__init__(url, ttl)
        self.client = redis.Redis.from_url(url)
        self._async: redis.asyncio.Redis | None = None

    def open(self, session_id: str) -> str:
        return KEY_PREFIX + session_id

    def write(self, handle: str, messages: Sequence[BaseMessage]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(handle, *[floor_encode(message) for message in messages])
        if self.ttl:
            pipe.expire(handle, self.ttl)
        pipe.execute()

    def read_all(self, handle: str) -> list[BaseMessage]:
        return floor_decode(self.client.lrange(handle, 0, -1))

    def read_newest(self, handle: str, count: int) -> list[BaseMessage]:
        return floor_decode(self.client.lrange(handle, 0, count - 1))

    def _aclient(self) -> redis.asyncio.Redis:
        if self._async is None:
            # redis-py's default pool raises past 100 connections; a blocking one waits.
            pool = redis.asyncio.BlockingConnectionPool.from_url(self.url, max_connections=100)
            self._async = redis.asyncio.Redis(connection_pool=pool)
        return self._async

    async def aread_all(self, handle: str) -> list[BaseMessage]:
        return floor_decode(await self._aclient().lrange(handle, 0, -1))

    async def awrite(self, handle: str, messages: Sequence[BaseMessage]) -> None:
        pipe = self._aclient().pipeline(transaction=False)
        pipe.lpush(handle, *[floor_encode(message) for message in messages])
        if self.ttl:
            pipe.expire(handle, self.ttl)
        await pipe.execute()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            await self._async.connection_pool.disconnect()
            self._async = None

    def close(self) -> None:
        self.client.close()
