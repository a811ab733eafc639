"""Realistic chat messages for the benchmark, generated deterministically from a seed.

Text is real English: sentences and code taken from the docstrings and sources of
a fixed list of standard-library modules (technical prose, like most assistant
traffic). Conversations alternate human and ai messages of 100 to 2,000
characters. AI messages carry what chat models return: an id, response metadata,
often usage metadata (with token details), sometimes tool calls, and in some of
them typographic apostrophes and dashes, as model output has.

Example::

    >>> workload = Workload(seed=7)
    >>> human, ai = workload.turn(0)
    >>> human.type, ai.type
    ('human', 'ai')
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

#: Modules whose docstrings and sources are the text of the messages.
SOURCE_MODULES = (
    "argparse",
    "asyncio.queues",
    "asyncio.tasks",
    "collections",
    "contextlib",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "email.message",
    "enum",
    "functools",
    "heapq",
    "http.client",
    "json",
    "logging",
    "pathlib",
    "shutil",
    "sqlite3",
    "statistics",
    "subprocess",
    "tempfile",
    "textwrap",
    "threading",
    "unittest.case",
    "urllib.parse",
    "zipfile",
)

MIN_CHARS = 100
MAX_CHARS = 2000
_MODELS = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20241022")
_TOOLS = ("search_docs", "run_python", "get_weather", "lookup_order")
_OPENERS = (
    "Can you help me with this?",
    "Quick question.",
    "I'm stuck on something.",
    "Thanks, that helped.",
    "One more thing:",
    "Here is what I tried.",
)


@dataclass(frozen=True)
class Corpus:
    """Sentences and code snippets to build messages from."""

    sentences: tuple[str, ...]
    snippets: tuple[str, ...]


def _docstrings(module: Any) -> Iterator[str]:
    for _, member in inspect.getmembers(module):
        if getattr(member, "__module__", None) != module.__name__:
            continue
        if isinstance(member.__doc__, str):
            yield member.__doc__
        if inspect.isclass(member):
            for _, method in inspect.getmembers(member, inspect.isfunction):
                if isinstance(method.__doc__, str):
                    yield method.__doc__


def _sources(module: Any) -> Iterator[str]:
    for _, member in inspect.getmembers(module, inspect.isfunction):
        if getattr(member, "__module__", None) != module.__name__:
            continue
        try:
            source = inspect.getsource(member)
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        if 4 <= len(lines) <= 30:
            yield "\n".join(lines)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def load_corpus() -> Corpus:
    """Sentences (prose only, no doctests) and short function sources of SOURCE_MODULES."""
    sentences: list[str] = []
    snippets: list[str] = []
    for name in SOURCE_MODULES:
        module = importlib.import_module(name)
        for doc in _docstrings(module):
            for paragraph in inspect.cleandoc(doc).split("\n\n"):
                if ">>>" in paragraph or paragraph.lstrip().startswith(("-", "*", ":")):
                    continue
                text = " ".join(paragraph.split())
                sentences.extend(
                    sentence
                    for sentence in _SENTENCE_END.split(text)
                    if 30 <= len(sentence) <= 300 and sentence[-1] in ".?!"
                )
        snippets.extend(_sources(module))
    # Sorted and deduplicated, so the corpus does not depend on member order.
    return Corpus(tuple(sorted(set(sentences))), tuple(sorted(set(snippets))))


def _typographic(text: str) -> str:
    return text.replace("'", "\u2019").replace(" - ", " \u2014 ")


class Workload:
    """Deterministic realistic conversations: ``turn(i)`` is always the same pair."""

    def __init__(self, seed: int = 20240601, pool_size: int = 500) -> None:
        self.corpus = load_corpus()
        self._rng = random.Random(seed)
        self._turns = [self._make_turn() for _ in range(pool_size)]

    # -- text ----------------------------------------------------------------
    def _sentences_up_to(self, length: int) -> str:
        rng = self._rng
        parts: list[str] = []
        size = 0
        while size < length:
            sentence = rng.choice(self.corpus.sentences)
            parts.append(sentence)
            size += len(sentence) + 1
        return " ".join(parts)

    def _fit(self, text: str, low: int, high: int) -> str:
        if len(text) > high:
            cut = text.rfind(" ", low, high)
            text = text[: cut if cut > 0 else high]
        while len(text) < low:
            text += " " + self._rng.choice(self.corpus.sentences)
        return text[:high]

    def _human_text(self) -> str:
        rng = self._rng
        length = int(rng.triangular(MIN_CHARS, 900, 250))
        text = f"{rng.choice(_OPENERS)} {self._sentences_up_to(length)}"
        if rng.random() < 0.1:  # a pasted snippet
            text += "\n\n```python\n" + rng.choice(self.corpus.snippets) + "\n```"
        return self._fit(text, MIN_CHARS, MAX_CHARS)

    def _ai_text(self) -> str:
        rng = self._rng
        length = int(rng.triangular(200, MAX_CHARS, 900))
        blocks: list[str] = []
        size = 0
        while size < length:
            roll = rng.random()
            if roll < 0.2:
                items = [f"- {self._sentences_up_to(40)}" for _ in range(rng.randint(2, 5))]
                block = "\n".join(items)
            elif roll < 0.35:
                block = "```python\n" + rng.choice(self.corpus.snippets) + "\n```"
            else:
                block = self._sentences_up_to(rng.randint(120, 400))
            blocks.append(block)
            size += len(block) + 2
        text = "\n\n".join(blocks)
        if rng.random() < 0.3:
            text = _typographic(text)
        return self._fit(text, MIN_CHARS, MAX_CHARS)

    # -- messages --------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _tool_calls(self) -> list[dict[str, Any]]:
        rng = self._rng
        calls = []
        for _ in range(rng.choice((1, 1, 1, 2))):
            query = self._fit(rng.choice(self.corpus.sentences), 10, 120)
            call_id = "call_" + "".join(rng.choices(string.ascii_letters + string.digits, k=24))
            calls.append(
                {
                    "name": rng.choice(_TOOLS),
                    "args": {"query": query, "max_results": rng.randint(3, 10)},
                    "id": call_id,
                    "type": "tool_call",
                }
            )
        return calls

    def _usage(self, content: str) -> dict[str, Any]:
        rng = self._rng
        prompt = rng.randint(200, 12_000)
        completion = max(1, len(content) // 4)
        return {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_token_details": {"audio": 0, "cache_read": rng.choice((0, 0, 1024, 2048))},
            "output_token_details": {"audio": 0, "reasoning": 0},
        }

    def _ai_message(self) -> AIMessage:
        rng = self._rng
        content = self._ai_text()
        tool_calls = self._tool_calls() if rng.random() < 0.2 else []
        metadata = {
            "model_name": rng.choice(_MODELS),
            "finish_reason": "tool_calls" if tool_calls else "stop",
            "system_fingerprint": "fp_" + f"{rng.getrandbits(40):010x}",
        }
        extra: dict[str, Any] = {}
        if rng.random() < 0.5:
            extra["usage_metadata"] = self._usage(content)
        return AIMessage(
            content=content,
            id=f"run-{self._uuid()}-0",
            response_metadata=metadata,
            tool_calls=tool_calls,
            **extra,
        )

    def _make_turn(self) -> tuple[HumanMessage, AIMessage]:
        return HumanMessage(content=self._human_text()), self._ai_message()

    def turn(self, index: int) -> tuple[HumanMessage, AIMessage]:
        """The ``index``-th human/ai pair (the pool repeats after ``pool_size`` turns)."""
        return self._turns[index % len(self._turns)]

    def messages(self, count: int, start: int = 0) -> list[BaseMessage]:
        """``count`` messages, oldest first: human, ai, human, ai ..."""
        result: list[BaseMessage] = []
        index = start
        while len(result) < count:
            result.extend(self.turn(index))
            index += 1
        return result[:count]

    def describe(self) -> dict[str, Any]:
        """Sizes and shares of the message pool, for the report."""
        humans = [human for human, _ in self._turns]
        ais = [ai for _, ai in self._turns]

        def mean_chars(messages: list[Any]) -> float:
            return sum(len(message.content) for message in messages) / len(messages)

        texts = [str(message.content) for message in humans + ais]
        return {
            "turns_in_pool": len(self._turns),
            "human_chars_mean": round(mean_chars(humans)),
            "ai_chars_mean": round(mean_chars(ais)),
            "chars_min": min(len(text) for text in texts),
            "chars_max": max(len(text) for text in texts),
            "ai_with_tool_calls": round(sum(bool(ai.tool_calls) for ai in ais) / len(ais), 3),
            "ai_with_usage_metadata": round(
                sum(ai.usage_metadata is not None for ai in ais) / len(ais), 3
            ),
            "non_ascii_char_share": round(
                sum(sum(ord(c) > 127 for c in text) for text in texts)
                / sum(len(text) for text in texts),
                4,
            ),
        }
