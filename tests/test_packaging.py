"""What a PyPI user gets: the wheel and sdist built, checked, and the wheel installed fresh.

The files are built offline from this tree (``python -m build --no-isolation``: hatchling
comes from the test extra), checked with ``twine check --strict``, and the wheel is
installed with ``--no-deps --no-index`` into a new virtualenv whose pip is the one
``ensurepip`` bundles (older than 24.1, the pips that show an empty License for core
metadata 2.4). The new venv sees this venv's site-packages through a ``.pth`` path line
(no ``.pth`` file of it runs, so not this tree's editable install): the dependencies are
reused, the package itself comes from the wheel.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import redis_chat_history
from tests.servers import RedisProcess
from tests.test_readme import SNIPPETS

ROOT = Path(__file__).resolve().parent.parent
VERSION = redis_chat_history.__version__
NAME = f"redis_chat_history-{VERSION}"

pytestmark = pytest.mark.timeout(300)


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``command`` without this process's PYTHONPATH; fail with its output if it fails."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel (built from the sdist, as pip builds from one)."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    built = {path.suffix: path for path in out.iterdir()}
    assert sorted(built) == [".gz", ".whl"], sorted(out.iterdir())
    assert built[".whl"].name == f"{NAME}-py3-none-any.whl"
    assert built[".gz"].name == f"{NAME}.tar.gz"
    return {"wheel": built[".whl"], "sdist": built[".gz"]}


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"{NAME}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def test_wheel_holds_the_package_and_its_license(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as archive:
        names = set(archive.namelist())
        license_text = archive.read(f"{NAME}.dist-info/licenses/LICENSE").decode()
    source = ROOT / "src"
    modules = {
        path.relative_to(source).as_posix()
        for path in source.rglob("*")
        if path.is_file() and path.suffix in {".py", ".typed"}
    }
    assert modules <= names, sorted(modules - names)
    assert "redis_chat_history/py.typed" in names
    outside = {name for name in names - modules if not name.startswith(f"{NAME}.dist-info/")}
    assert outside == set(), sorted(outside)  # no tests, benchmarks or data files
    assert license_text == (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n")


def test_metadata_a_pypi_user_reads(dist: dict[str, Path]) -> None:
    metadata = wheel_metadata(dist["wheel"])
    assert metadata["Name"] == "redis-chat-history"
    assert metadata["Version"] == VERSION  # the one __version__, read by hatchling
    assert metadata["License"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Description-Content-Type"] == "text/markdown"
    classifiers = metadata.get_all("Classifier") or []
    assert "License :: OSI Approved :: MIT License" in classifiers
    assert "Typing :: Typed" in classifiers
    # No invented urls: each one given must be absolute (none is, until the project has a home).
    for entry in metadata.get_all("Project-URL") or []:
        assert re.fullmatch(r"[^,]+, https://\S+", entry), entry
    assert metadata["Home-page"] is None
    entry_points = zipfile.ZipFile(dist["wheel"]).read(f"{NAME}.dist-info/entry_points.txt")
    assert b"redis-chat-history = redis_chat_history.__main__:main" in entry_points


def test_sdist_holds_the_package_and_tests_but_not_outputs(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO", "constraints/lowest.txt"}
    for tree in ("src", "tests", "benchmarks"):
        expected |= {
            path.relative_to(ROOT).as_posix()
            for path in (ROOT / tree).rglob("*.py")
            if "__pycache__" not in path.parts
        }
    assert expected <= names, sorted(expected - names)
    assert "tests/js/package-lock.json" in names  # the langchainjs test's pinned install
    refused = [
        name
        for name in names
        if name.startswith(("benchmarks/results", ".ci", "Makefile", "dist/", ".venv"))
        or "node_modules" in name
        or "__pycache__" in name
        or name.endswith((".png", ".pyc"))
    ]
    assert refused == []


def test_twine_check_is_clean(dist: dict[str, Path]) -> None:
    done = run(sys.executable, "-m", "twine", "check", "--strict", dist["wheel"], dist["sdist"])
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_readme_renders_on_pypi() -> None:
    """PyPI shows the README without the repository: no relative image or link."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)", text) + re.findall(r"<img[^>]+src=\"([^\"]+)", text)
    relative = [target for target in targets if not target.startswith(("https://", "#"))]
    assert relative == []


@pytest.fixture(scope="module")
def fresh_venv(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed, this venv's dependencies visible to it."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", dist["wheel"])
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib.stdout.strip(), "_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return venv


def test_fresh_install_runs_the_command(fresh_venv: Path) -> None:
    python, command = fresh_venv / "bin" / "python", fresh_venv / "bin" / "redis-chat-history"
    where = run(
        python,
        "-c",
        "import redis_chat_history as p; print(p.__file__, p.__version__)",
        cwd=fresh_venv,
    )
    path, version = where.stdout.split()
    assert Path(path).is_relative_to(fresh_venv) and version == VERSION  # the wheel's copy
    shown = run(python, "-m", "pip", "show", "redis-chat-history").stdout
    assert "\nLicense: MIT\n" in shown, shown
    usage = run(command, "--help").stdout
    for word in ("Usage", "sessions", "show", "export", "import", "copy", "rm", "ttl", "stats"):
        assert word in usage, usage


def test_fresh_install_tells_its_version(fresh_venv: Path) -> None:
    assert VERSION in run(fresh_venv / "bin" / "redis-chat-history", "--version").stdout


# Runs each snippet given on stdin in a fresh namespace, on an emptied server; prints what
# each stored (session ids and message counts), read back with the installed package.
_SNIPPET_RUNNER = """
import json, sys, warnings
import redis
from redis_chat_history import RedisChatStore
warnings.simplefilter("ignore", DeprecationWarning)
url, snippets = json.load(sys.stdin)
for name, code in snippets:
    redis.Redis.from_url(url).flushdb()
    exec(compile(code, name, "exec"), {"__name__": "__readme__"})
    store = RedisChatStore(url=url)
    print("stored:", name, json.dumps({s: len(store.history(s).messages) for s in sorted(store.sessions())}))
"""


def test_fresh_install_runs_the_readme_snippets(
    fresh_venv: Path, redis7: RedisProcess, tmp_path: Path
) -> None:
    """The installed wheel (not this tree) runs every README snippet on a private server."""
    snippets = [(s.name, s.for_server(redis7.address)) for s in SNIPPETS if not s.not_run]
    done = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c", _SNIPPET_RUNNER],
        input=json.dumps([redis7.url, snippets]),
        cwd=tmp_path,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split(" ", 2) for line in done.stdout.splitlines() if line.startswith("stored: ")]
    stored = {name: sessions for _, name, sessions in lines}  # the snippets print too
    assert list(stored) == [name for name, _ in snippets]
    assert all(json.loads(sessions) for sessions in stored.values()), stored
    migrate = next(s.name for s in SNIPPETS if "RedisChatMessageHistory(" in s.code)
    assert json.loads(stored[migrate]) == {"user-42": 2}
