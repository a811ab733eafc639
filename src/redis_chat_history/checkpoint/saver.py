"""``RedisCheckpointSaver``: a LangGraph checkpointer whose conversation is a chat history.

Example::

    from langchain.agents import create_agent
    from redis_chat_history.checkpoint import RedisCheckpointSaver

    saver = RedisCheckpointSaver("redis://localhost:6379/0")
    agent = create_agent(model, tools, checkpointer=saver)
    agent.invoke({"messages": [("user", "hi")]}, {"configurable": {"thread_id": "t1"}})
    RedisChatStore("redis://localhost:6379/0").history("t1").messages  # the conversation

Sync and async methods drive the same operations (:mod:`.flows`) through this
package's execution layer, so retries, Cluster routing, TLS, Sentinel and ACL users
work as for histories.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from redis_chat_history.checkpoint import flows
from redis_chat_history.checkpoint.messages import Tips
from redis_chat_history.clients import AsyncClient, SyncClient
from redis_chat_history.errors import InvalidArgumentError
from redis_chat_history.execution import amasters, arun, masters, run
from redis_chat_history.operations.plans import MAX_EXPIRE_SECONDS, check_optional
from redis_chat_history.retry import RetryPolicy
from redis_chat_history.settings import DEFAULT_KEY_PREFIX, DEFAULT_URL
from redis_chat_history.store import RedisChatStore


class RedisCheckpointSaver(BaseCheckpointSaver[str]):
    """Checkpoints of LangGraph threads in plain Redis (standalone, Sentinel, Cluster).

    Args:
        url: where Redis is (as for histories), unless ``store`` is given.
        store: a :class:`~redis_chat_history.RedisChatStore` whose clients, key prefix,
            ``wait_for_replicas`` and TTL the saver shares.
        ttl: seconds after a thread's latest write at which all its keys expire
            (default: the store's ``ttl``; None: never).
        refresh_on_read: reading a checkpoint also refreshes the thread's TTL.
        serde: the serializer (LangGraph's ``JsonPlusSerializer`` by default).
        history: keep the root namespace's ``messages`` as the thread's chat history
            (default True with a ``JsonPlusSerializer``; with any other serializer,
            for example ``EncryptedSerializer``, messages are stored by it instead).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        store: RedisChatStore | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        ttl: int | None = None,
        refresh_on_read: bool = False,
        serde: SerializerProtocol | None = None,
        history: bool | None = None,
        client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        wait_for_replicas: int | None = None,
        wait_timeout: float = 1.0,
    ) -> None:
        super().__init__(serde=serde)
        if store is None:
            store = RedisChatStore(
                url,
                key_prefix,
                client=client,
                async_client=async_client,
                retry=retry,
                wait_for_replicas=wait_for_replicas,
                wait_timeout=wait_timeout,
            )
        elif not isinstance(store, RedisChatStore):
            raise InvalidArgumentError(
                f"store must be a RedisChatStore, got {type(store).__name__}"
            )
        self.store = store
        chosen_ttl = store.ttl if ttl is None else ttl
        seconds = check_optional("ttl", chosen_ttl or None, maximum=MAX_EXPIRE_SECONDS)
        if history is None:
            history = serde is None or type(serde) is JsonPlusSerializer
        self._ctx = flows.Context(
            serde=self.serde,
            key_prefix=store.key_prefix,
            tips=Tips(),
            ttl=seconds,
            read_ttl=seconds if refresh_on_read else 0,
            history=bool(history),
        )

    @property
    def ttl(self) -> int | None:
        return self._ctx.ttl or None

    @classmethod
    def from_conn_string(cls, url: str, **options: Any) -> _Opened:
        """``with`` (or ``async with``) ``RedisCheckpointSaver.from_conn_string(url) as saver``."""
        return _Opened(cls(url, **options))

    def setup(self) -> None:
        """Nothing to create: Redis needs no schema (LangGraph users call it anyway)."""

    async def asetup(self) -> None:
        """Async :meth:`setup`."""

    def __enter__(self) -> RedisCheckpointSaver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> RedisCheckpointSaver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    # -- drivers: one generator per operation, run sync or async ----------------------
    def _step(self, request: Any) -> Any:
        provider = self.store._provider
        if isinstance(request, flows.Masters):
            return masters(provider, request.pattern)
        wait = self.store.settings.wait if request.plan.writes else None
        return run(provider, request.plan, wait, node=request.node)

    async def _astep(self, request: Any) -> Any:
        provider = self.store._provider
        if isinstance(request, flows.Masters):
            return await amasters(provider, request.pattern)
        wait = self.store.settings.wait if request.plan.writes else None
        return await arun(provider, request.plan, wait, node=request.node)

    def _drive(self, flow: flows.Flow) -> Any:
        try:
            request = next(flow)
            while True:
                request = flow.send(self._step(request))
        except StopIteration as stop:
            return stop.value

    async def _adrive(self, flow: flows.Flow) -> Any:
        try:
            request = next(flow)
            while True:
                request = flow.send(await self._astep(request))
        except StopIteration as stop:
            return stop.value

    def _iterate(self, flow: flows.Flow) -> Iterator[CheckpointTuple]:
        try:
            request = next(flow)
            while True:
                if isinstance(request, flows.Emit):
                    yield request.item
                    request = flow.send(None)
                else:
                    request = flow.send(self._step(request))
        except StopIteration:
            return

    async def _aiterate(self, flow: flows.Flow) -> AsyncIterator[CheckpointTuple]:
        try:
            request = next(flow)
            while True:
                if isinstance(request, flows.Emit):
                    yield request.item
                    request = flow.send(None)
                else:
                    request = flow.send(await self._astep(request))
        except StopIteration:
            return

    # -- the interface ----------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._drive(flows.get_tuple(self._ctx, config))  # type: ignore[no-any-return]

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._adrive(flows.get_tuple(self._ctx, config))  # type: ignore[no-any-return]

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self._iterate(flows.list_checkpoints(self._ctx, config, filter, before, limit))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        flow = flows.list_checkpoints(self._ctx, config, filter, before, limit)
        async for item in self._aiterate(flow):
            yield item

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        flow = flows.put(self._ctx, config, checkpoint, metadata, new_versions)
        return self._drive(flow)  # type: ignore[no-any-return]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        flow = flows.put(self._ctx, config, checkpoint, metadata, new_versions)
        return await self._adrive(flow)  # type: ignore[no-any-return]

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._drive(flows.put_writes(self._ctx, config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._adrive(flows.put_writes(self._ctx, config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._drive(flows.delete_thread(self._ctx, thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._adrive(flows.delete_thread(self._ctx, thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._drive(flows.delete_for_runs(self._ctx, run_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._adrive(flows.delete_for_runs(self._ctx, run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._drive(flows.copy_thread(self._ctx, source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._adrive(flows.copy_thread(self._ctx, source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._drive(flows.prune(self._ctx, thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._adrive(flows.prune(self._ctx, thread_ids, strategy))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._drive(flows.delta_history(self._ctx, config, channels))  # type: ignore[no-any-return]

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self._adrive(flows.delta_history(self._ctx, config, channels))  # type: ignore[no-any-return]

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions as ``InMemorySaver`` and ``PostgresSaver`` make them (sortable strings)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"


class _Opened:
    """What :meth:`RedisCheckpointSaver.from_conn_string` returns: a sync and async
    context manager giving the saver (the clients are shared, nothing to close)."""

    def __init__(self, saver: RedisCheckpointSaver) -> None:
        self.saver = saver

    def __enter__(self) -> RedisCheckpointSaver:
        return self.saver

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> RedisCheckpointSaver:
        return self.saver

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
