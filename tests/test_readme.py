"""Every ```python block of README.md runs as written, on a private server.

The snippets talk to ``localhost:6379``; here each one runs with that address replaced by a
server the suite started (never the Redis on port 6379: a snippet naming any other address
fails before it runs). A snippet that needs a real model or an outside service is marked
with ``<!-- not run: reason -->`` on the line before it, and is reported as skipped with
that reason. Each snippet runs in a fresh namespace and working directory, on an empty
server, and must leave at least one readable history there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from redis_chat_history import RedisChatStore
from tests.servers import RedisProcess

README = Path(__file__).resolve().parent.parent / "README.md"
#: The address the README's snippets use, replaced by the private server's.
PLACEHOLDER = "localhost:6379"
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->\Z")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"')]*")


@dataclass(frozen=True)
class Snippet:
    line: int  # README line of the first line of code
    code: str
    not_run: str | None  # the reason, for a snippet marked not to be run

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"

    def for_server(self, address: str) -> str:
        """The code with the placeholder address replaced, padded to keep README line numbers."""
        code = self.code.replace(PLACEHOLDER, address)
        for url in _URL.findall(code):
            if f"//{address}/" not in url:
                raise AssertionError(f"{self.name} names {url!r}: use {PLACEHOLDER} in snippets")
        return "\n" * (self.line - 1) + code


def readme_snippets(text: str | None = None) -> list[Snippet]:
    """The ```python blocks of the README, in order."""
    lines = (README.read_text() if text is None else text).splitlines()
    snippets: list[Snippet] = []
    at = 0
    while at < len(lines):
        if lines[at].strip() != "```python":
            at += 1
            continue
        before = next((lines[i].strip() for i in range(at - 1, -1, -1) if lines[i].strip()), "")
        marked = _NOT_RUN.match(before)
        if before.startswith("<!--") and "not run" in before and not marked:
            raise AssertionError(f"README.md:{at}: write <!-- not run: reason -->")
        end = next((i for i in range(at + 1, len(lines)) if lines[i].strip() == "```"), None)
        if end is None:
            raise AssertionError(f"README.md:{at + 1}: a ```python block is never closed")
        code = "\n".join(lines[at + 1 : end]) + "\n"
        snippets.append(Snippet(at + 2, code, marked.group("reason") if marked else None))
        at = end + 1
    return snippets


SNIPPETS = readme_snippets()


def test_the_readme_has_snippets_and_runs_nearly_all() -> None:
    not_run = [snippet for snippet in SNIPPETS if snippet.not_run]
    assert len(SNIPPETS) >= 5
    assert len(not_run) <= 1, [f"{s.name}: {s.not_run}" for s in not_run]


def test_snippets_are_found_and_marks_read() -> None:
    text = (
        "x\n```python\na = 1\n```\n\n<!-- not run: needs an OpenAI key -->\n\n```python\nb\n```\n"
    )
    first, second = readme_snippets(text)
    assert (first.line, first.code, first.not_run) == (3, "a = 1\n", None)
    assert (second.line, second.not_run) == (9, "needs an OpenAI key")
    with pytest.raises(AssertionError, match="not run: reason"):
        readme_snippets("<!-- not run -->\n```python\nb\n```\n")


def test_a_snippet_naming_another_server_is_refused() -> None:
    (snippet,) = readme_snippets('```python\nurl = "redis://10.0.0.1:6379/0"\n```\n')
    with pytest.raises(AssertionError, match="use localhost:6379"):
        snippet.for_server("127.0.0.1:5555")


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")  # it says so
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[snippet.name for snippet in SNIPPETS])
def test_readme_snippet_runs(
    snippet: Snippet, redis7: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if snippet.not_run:
        pytest.skip(f"{snippet.name}: not run: {snippet.not_run}")
    monkeypatch.chdir(tmp_path)
    code = compile(snippet.for_server(redis7.address), str(README), "exec")
    exec(code, {"__name__": "__readme__"})
    store = RedisChatStore(url=redis7.url)
    stored = {session_id: store.history(session_id).messages for session_id in store.sessions()}
    assert stored, f"{snippet.name} stored no history on the private server"
    assert all(messages for messages in stored.values()), stored
