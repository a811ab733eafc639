"""A full connection pool: one failure after its timeout, naming its size (never retried)."""

from __future__ import annotations

import asyncio
import time

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import PoolExhaustedError, RedisChatMessageHistory, RetryPolicy
from tests.servers import RedisProcess


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_full_pool_fails_once_after_its_timeout_naming_its_size(
    redis7: RedisProcess, mode: str
) -> None:
    retry = RetryPolicy(attempts=3, connect_timeout=0.2, socket_timeout=0.3)
    url = f"{redis7.url}?max_connections=1"
    history = RedisChatMessageHistory("pool", url=url, retry=retry)

    def sync_scenario() -> tuple[PoolExhaustedError, float]:
        history.count()
        pool = history._provider.sync().connection_pool  # type: ignore[union-attr]
        held = pool.get_connection()
        began = time.monotonic()
        try:
            with pytest.raises(PoolExhaustedError) as caught:
                history.add_user_message("x")
        finally:
            pool.release(held)
        return caught.value, time.monotonic() - began

    async def async_scenario() -> tuple[PoolExhaustedError, float]:
        await history.acount()
        client = await history._provider.async_()
        pool = client.connection_pool  # type: ignore[union-attr]
        held = await pool.get_connection()
        began = time.monotonic()
        try:
            with pytest.raises(PoolExhaustedError) as caught:
                await history.aadd_messages([HumanMessage("x")])
        finally:
            await pool.release(held)
        return caught.value, time.monotonic() - began

    error, elapsed = sync_scenario() if mode == "sync" else asyncio.run(async_scenario())
    assert retry.pool_timeout <= elapsed < 2 * retry.pool_timeout  # once, not once per retry
    text = str(error)
    assert "pool of 1" in text and "max_connections" in text
    assert history.count() == 0
