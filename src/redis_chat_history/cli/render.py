"""What the command line prints: conversations for people, JSON for machines, progress, summaries.

Data goes to stdout, everything else (which Redis, progress, summaries, warnings, errors)
to stderr, so ``redis-chat-history show s --json > s.jsonl`` holds only the data. The
progress bar is cleared when it ends, so a summary or an error is the last line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from redis_chat_history.transfer import TransferResult

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_ROLES = {
    "human": ("user", "bold cyan"),
    "ai": ("assistant", "bold green"),
    "system": ("system", "bold magenta"),
    "tool": ("tool", "bold yellow"),
    "function": ("function", "bold yellow"),
}


def print_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout."""
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def note(text: str) -> None:
    """A line for the person at the terminal (stderr, dim)."""
    err.print(f"[dim]{escape(text)}[/dim]")


def _timestamp(message: BaseMessage) -> str | None:
    for source in (message.response_metadata, message.additional_kwargs):
        for name in ("timestamp", "created_at", "created"):
            value = source.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return datetime.fromtimestamp(value).isoformat(sep=" ", timespec="seconds")
            if isinstance(value, str) and value:
                return value.replace("T", " ")[:19]
    return None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            parts.append(f"[{block.get('type', 'block')}]")
    return "\n".join(parts)


def render(messages: list[BaseMessage], first_position: int = 0) -> None:
    """Print a conversation for people: roles in colour, tool calls and results, times."""
    for offset, message in enumerate(messages):
        role, style = _ROLES.get(message.type, (message.type, "bold white"))
        if message.type == "chat":
            role = str(getattr(message, "role", "chat"))
        header = f"[{style}]{escape(role)}[/{style}]"
        if message.name:
            header += f" [dim]({escape(message.name)})[/dim]"
        when = _timestamp(message)
        meta = f"#{first_position + offset}" + (f" · {when}" if when else "")
        out.print(f"{header} [dim]{escape(meta)}[/dim]")
        text = _content_text(message.content)
        if text:
            out.print(f"  {escape(text)}".replace("\n", "\n  "))
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                arguments = ", ".join(f"{k}={v!r}" for k, v in call["args"].items())
                out.print(
                    f"  [yellow]→ calls {escape(call['name'])}({escape(arguments)})[/yellow]"
                    f" [dim]{escape(str(call.get('id') or ''))}[/dim]"
                )
        if isinstance(message, ToolMessage):
            status = "" if message.status == "success" else f" [red]{message.status}[/red]"
            out.print(f"  [dim]← result of {escape(message.tool_call_id)}[/dim]{status}")
        out.print()


class Timer:
    """Seconds since it started and the message rate, for a summary line."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def rate(self, messages: int) -> str:
        """`` in 1.2 s (5,000 msg/s)``: the end of a summary line."""
        elapsed = time.monotonic() - self.started
        per_second = f" ({messages / elapsed:,.0f} msg/s)" if elapsed > 0 and messages else ""
        return f" in {elapsed:.1f} s{per_second}"


@contextmanager
def progress(label: str, total: int | None) -> Iterator[Any]:
    """A progress bar (sessions done, messages done, the rate), cleared when it ends.

    Only on a terminal: elsewhere (a pipe, a log) it would leave a blank line.
    """
    if not err.is_terminal:
        yield lambda sessions, messages: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sessions · {task.fields[messages]:,} messages · {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total, messages=0, rate="-")

        def update(sessions: int, messages: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0
            rate = f"{messages / elapsed:,.0f} msg/s" if elapsed > 0 else "-"
            bar.update(task, completed=sessions, messages=messages, rate=rate)

        yield update


def corrupt_note(skipped: int) -> str:
    return f"; skipped {skipped:,} corrupt element(s) (--skip-corrupt)" if skipped else ""


def expired_note(expired: int) -> str:
    return f"; {expired} session(s) expired as they were read, left out" if expired else ""


def transfer_summary(verb: str, result: TransferResult, timer: Timer) -> str:
    """One wording for import and copy: messages written, and read where that differs.

    Example: ``imported 7 of 9 message(s) read: 3 session(s) written, 1 kept as they
    were (--overwrite replaces them) in 0.1 s (90 msg/s)``.
    """
    read = f" of {result.messages:,} read" if result.messages != result.messages_written else ""
    text = (
        f"{verb} {result.messages_written:,}{read} message(s): "
        f"{result.sessions_written} session(s) written"
    )
    if result.sessions_skipped:
        text += f", {result.sessions_skipped} kept as they were (--overwrite replaces them)"
    return (
        text
        + expired_note(result.sessions_expired)
        + corrupt_note(result.corrupt_skipped)
        + timer.rate(result.messages)
    )


def transfer_json(result: TransferResult) -> dict[str, Any]:
    """The result of an import or copy for ``--json``."""
    return {
        "sessions_written": result.sessions_written,
        "sessions_kept": result.sessions_skipped,
        "sessions_expired": result.sessions_expired,
        "messages_read": result.messages,
        "messages_written": result.messages_written,
        "corrupt_skipped": result.corrupt_skipped,
        "warnings": list(result.warnings),
    }
