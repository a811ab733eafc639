"""What each ``maxmemory-policy`` family does to a history and its bookkeeping (README,
"What a write guarantees"), observed on a real server filled past its ``maxmemory``.

- ``noeviction``: nothing is evicted; a write past the limit is refused (an error, nothing
  stored), so every acknowledged write stays and the guarantee holds.
- ``volatile-*``: only keys with an expiry are evicted. The writers hash always has one, so
  it goes first (before a history without ttl): a re-send arriving after that is applied
  again (stored twice).
- ``allkeys-*``: any key, the history itself included: acknowledged messages disappear.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import ChatHistoryError, RedisChatMessageHistory
from redis_chat_history.operations import writers_key
from tests.servers import RedisProcess, find_binaries

FILLER = b"x" * 100_000
SMALL = b"x" * 100


@pytest.fixture
def small_server() -> Iterator[RedisProcess]:
    server = RedisProcess(find_binaries()[0]).start()
    yield server
    server.stop()


def _fill_until(client: object, condition: object, limit: int = 3000) -> bool:
    """SET keys without expiry until ``condition()`` holds (at most ``limit``): large ones,
    then (once one is refused: noeviction) small ones, until a small one is refused too."""
    filler = FILLER
    for index in range(limit):
        if condition():  # type: ignore[operator]
            return True
        try:
            client.set(f"filler:{index}", filler)  # type: ignore[attr-defined]
        except Exception:
            if filler is SMALL:
                break
            filler = SMALL
    return bool(condition())  # type: ignore[operator]


@pytest.mark.parametrize("policy", ["noeviction", "volatile-ttl", "volatile-lru", "allkeys-lru"])
def test_what_each_eviction_policy_does_to_a_history(
    small_server: RedisProcess, policy: str
) -> None:
    admin = small_server.client()
    try:
        history = RedisChatMessageHistory("evicted", url=small_server.url)  # no ttl
        history.add_messages([HumanMessage(f"m{i}") for i in range(20)])
        companion = writers_key(history.key)
        assert admin.exists(companion) and admin.ttl(companion) > 0
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", used + 3_000_000)
        admin.config_set("maxmemory-policy", policy)
        if policy == "noeviction":
            assert not _fill_until(admin, lambda: not admin.exists(companion))
            with pytest.raises(ChatHistoryError, match="maxmemory"):
                history.add_user_message("refused")
            assert history.count() == 20 and admin.exists(companion)
        elif policy.startswith("volatile"):
            assert _fill_until(admin, lambda: not admin.exists(companion))
            assert history.count() == 20  # the history (no expiry) is never a candidate
        else:
            assert _fill_until(admin, lambda: not admin.exists(history.key), limit=2000)
            assert history.count() == 0  # acknowledged messages are gone
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
