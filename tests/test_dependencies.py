"""The declared dependency ranges are the tested ones.

``make test`` runs the suite twice: with the newest versions, and with the lowest ones
pyproject.toml allows, pinned by constraints/lowest.txt (``RCH_DEPENDENCIES=lowest``).
These tests keep the three in step: every floor of a runtime dependency (and of the
extras users install: cli, embedded, agents) is pinned in the constraints file, and each
run has what it claims installed.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself needs tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
USER_EXTRAS = ("cli", "embedded", "agents")


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in USER_EXTRAS:
        declared += project["optional-dependencies"][extra]
    return [Requirement(text) for text in declared]


def floor(requirement: Requirement) -> Version:
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(floors) == 1, f"{requirement} needs one '>=' floor"
    return floors[0]


def lowest_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            (pin,) = requirement.specifier
            assert pin.operator == "==", f"constraints/lowest.txt pins exactly: {text}"
            pins[requirement.name] = Version(pin.version)
    return pins


def test_every_floor_is_pinned_in_the_lowest_set() -> None:
    pins = lowest_pins()
    floors = {r.name: floor(r) for r in runtime_requirements()}
    assert floors == {name: pins[name] for name in floors if name in pins}, (
        "constraints/lowest.txt must pin each floor of pyproject.toml"
    )
    assert set(floors) <= set(pins), f"not pinned: {sorted(set(floors) - set(pins))}"


def test_redis_py_major_is_capped() -> None:
    """The code uses redis-py's connection internals: a new major must be tried first."""
    (redis_py,) = [r for r in runtime_requirements() if r.name == "redis"]
    assert any(s.operator == "<" for s in redis_py.specifier), str(redis_py)


@pytest.mark.parametrize("requirement", runtime_requirements(), ids=str)
def test_installed_version_is_in_the_declared_range(requirement: Requirement) -> None:
    installed = Version(metadata.version(requirement.name))
    assert requirement.specifier.contains(installed, prereleases=True), installed
    if os.environ.get("RCH_DEPENDENCIES") == "lowest":
        assert installed == floor(requirement), f"the lowest set runs {installed}"


def test_redis_py_parses_with_hiredis() -> None:
    """redis-py ignores a hiredis older than it supports (6.2 wants 3.2): the floor is that."""
    import redis.utils

    assert redis.utils.HIREDIS_AVAILABLE, metadata.version("hiredis")
