"""Real uWSGI in its default mode: the app is loaded in the master, then 4 workers are
forked without Python's fork hooks. Every request answered "ok" is stored exactly once.

Before writer ids were checked against the process id, about half of such writes were
taken for re-sends of the master's and dropped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from redis_chat_history import RedisChatMessageHistory
from tests.servers import free_port, wait_until

APP = """
from urllib.parse import parse_qs
from redis_chat_history import RedisChatMessageHistory

history = RedisChatMessageHistory("uwsgi", url={url!r})
history.add_user_message("loaded-in-master")  # the master's writers exist before the fork


def application(environ, start_response):
    text = parse_qs(environ["QUERY_STRING"])["m"][0]
    history.add_user_message(text)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def _uwsgi() -> str:
    found = shutil.which("uwsgi") or str(Path(sys.executable).with_name("uwsgi"))
    if not Path(found).exists():
        pytest.fail("uwsgi is not installed: pip install -e '.[test]' installs it")
    return found


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return str(reply.read().decode())
    except OSError as error:
        return f"error: {error}"


def test_uwsgi_default_mode_workers_store_every_acknowledged_write_once(
    redis_url: str, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP.format(url=redis_url)))
    port = free_port()
    server = subprocess.Popen(
        [_uwsgi(), "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", str(app), "--master",
         "--processes", "4", "--disable-logging", "--die-on-term", "--need-app"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/"
        wait_until(lambda: _get(base + "?m=probe") == "ok", 30, "uWSGI to answer")
        texts = [f"r{i}" for i in range(400)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda text: _get(f"{base}?m={text}"), texts))
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(20)
    acknowledged = [text for text, answer in zip(texts, answers, strict=True) if answer == "ok"]
    assert len(acknowledged) == len(texts), [a for a in answers if a != "ok"][:3]
    stored = [str(m.content) for m in RedisChatMessageHistory("uwsgi", url=redis_url).messages]
    assert [text for text, n in Counter(stored).items() if n > 1] == []
    assert sorted(text for text in stored if text.startswith("r")) == sorted(acknowledged)
