"""The ``redis-chat-history`` command line: read, back up and move conversations.

Built on :class:`~redis_chat_history.store.RedisChatStore`. Where the data lives:
``--url``, else ``$REDIS_URL``, else an embedded Redis in ``--data-dir`` (see
:mod:`redis_chat_history.embedded`); the command says which on stderr.

Exit codes: 0 success, 1 the operation failed (Redis unreachable, a session that does
not exist), 2 bad usage or bad input (an unknown option, a malformed import file).
Errors are one line on stderr; ``--debug`` shows the traceback.

Example::

    redis-chat-history sessions --match user-
    redis-chat-history show user-42 --last 10
    redis-chat-history export -o backup.jsonl
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
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
from rich.table import Table

from redis_chat_history.codec import encode_message
from redis_chat_history.embedded import DEFAULT_DATA_DIR, start_embedded
from redis_chat_history.errors import (
    ChatHistoryError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from redis_chat_history.history import DEFAULT_KEY_PREFIX
from redis_chat_history.store import RedisChatStore

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="redis-chat-history",
    help="Read, back up and move LangChain chat histories stored in Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class OperationFailed(Exception):
    """The command could not do what was asked (exit code 1)."""


@dataclass
class Context:
    url: str | None
    key_prefix: str
    data_dir: Path
    debug: bool
    _store: RedisChatStore | None = field(default=None, repr=False)
    _url: str = field(default="", repr=False)

    def store(self, *, skip_corrupt: bool = False) -> RedisChatStore:
        """The store of the chosen data source, announced once on stderr."""
        if self._store is None:
            # The banner is the parsed url's display (rebuilt from its parts, no secret).
            if self.url:
                url = self.url
                store = RedisChatStore(url=url, key_prefix=self.key_prefix)
                where = f"using {store.display}"
            elif os.environ.get("REDIS_URL"):
                url = os.environ["REDIS_URL"]
                store = RedisChatStore(url=url, key_prefix=self.key_prefix)
                where = f"using {store.display} (from REDIS_URL)"
            else:
                server = start_embedded(self.data_dir)
                url = server.url
                store = RedisChatStore(url=url, key_prefix=self.key_prefix)
                state = "started" if server.owned else "already running"
                where = f"using the embedded Redis in {server.data_dir} ({state}; {server.socket})"
            err.print(f"[dim]{escape(where)}[/dim]")
            self._url = url
            self._store = store
        if skip_corrupt:
            return RedisChatStore(url=self._url, key_prefix=self.key_prefix, skip_corrupt=True)
        return self._store


def _context(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="Redis url (default: $REDIS_URL, else the embedded Redis)."),
    ] = None,
    key_prefix: Annotated[
        str, typer.Option(help="Prefix of the history keys.")
    ] = DEFAULT_KEY_PREFIX,
    data_dir: Annotated[
        Path, typer.Option(help="Folder of the embedded Redis (when no url is given).")
    ] = Path(DEFAULT_DATA_DIR),
    debug: Annotated[bool, typer.Option(help="Show tracebacks of errors.")] = False,
) -> None:
    ctx.obj = Context(url=url, key_prefix=key_prefix, data_dir=data_dir, debug=debug)


# -- rendering ---------------------------------------------------------------------
_ROLES = {
    "human": ("user", "bold cyan"),
    "ai": ("assistant", "bold green"),
    "system": ("system", "bold magenta"),
    "tool": ("tool", "bold yellow"),
    "function": ("function", "bold yellow"),
}


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


def _json_line(session_id: str, position: int, message: BaseMessage) -> bytes:
    """The export format's line for ``message`` (so ``show --json`` output can be imported)."""
    head = orjson.dumps({"session_id": session_id, "position": position})
    stored = encode_message(message)  # '{"type":...,"data":...}', defaults left out
    return head[:-1] + b"," + stored[1:]


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Any]:
    """A progress bar with sessions done, messages done and the message rate."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sessions · {task.fields[messages]:,} messages · {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total, messages=0, rate="-")

        def update(sessions: int, messages: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0
            rate = f"{messages / elapsed:,.0f} msg/s" if elapsed > 0 else "-"
            bar.update(task, completed=sessions, messages=messages, rate=rate)

        yield update


def _missing(store: RedisChatStore, session_id: str) -> OperationFailed:
    return OperationFailed(
        f"session {session_id!r} not found (no messages under key {store.key(session_id)!r})"
    )


# -- commands ----------------------------------------------------------------------
@app.command()
def demo(
    ctx: typer.Context,
    session: Annotated[str, typer.Option(help="Session id of the demo conversation.")] = "demo",
) -> None:
    """Hold a short LangChain conversation stored in Redis, then show the stored history."""
    from redis_chat_history.demo import run_demo

    run_demo(_context(ctx).store(), session, render, out)


@app.command()
def sessions(
    ctx: typer.Context,
    match: Annotated[
        str | None, typer.Option(help="Only session ids starting with this text.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array.")] = False,
) -> None:
    """List session ids (SCAN, never KEYS)."""
    found = sorted(_context(ctx).store().sessions(match))
    if as_json:
        out.print_json(orjson.dumps(found).decode())
        return
    for session_id in found:
        out.print(escape(session_id))
    err.print(f"[dim]{len(found)} session(s)[/dim]")


@app.command()
def show(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    last: Annotated[int | None, typer.Option(min=1, help="Only the newest N messages.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines, the export format.")] = False,
) -> None:
    """Show one conversation."""
    store = _context(ctx).store()
    history = store.history(session)
    total = history.count()
    if total == 0:
        raise _missing(store, session)
    messages = history.get_messages(limit=last)
    first = total - len(messages)
    if as_json:
        for offset, message in enumerate(messages):
            sys.stdout.write(_json_line(session, first + offset, message).decode() + "\n")
        return
    render(messages, first)
    err.print(f"[dim]{len(messages)} of {total} message(s) of {session!r}[/dim]")


def _corrupt_note(skipped: int) -> str:
    return f"; skipped {skipped:,} corrupt element(s) (--skip-corrupt)" if skipped else ""


@app.command()
def export(
    ctx: typer.Context,
    sessions: Annotated[
        list[str] | None, typer.Argument(help="Session ids (default: all).")
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help="File to write ('-' for stdout); replaced only when complete."
        ),
    ] = "-",
    skip_corrupt: Annotated[
        bool, typer.Option(help="Skip stored elements that are not messages (counted).")
    ] = False,
) -> None:
    """Export sessions as JSON Lines, each session closed by a record with its count."""
    store = _context(ctx).store(skip_corrupt=skip_corrupt)
    chosen = list(sessions) if sessions else sorted(store.sessions())
    target: Any = sys.stdout.buffer if output == "-" else Path(output)
    with _progress("export", len(chosen)) as update:
        result = store.export(target, chosen, progress=update)
    if output == "-":
        sys.stdout.flush()
    err.print(
        f"exported {result.messages:,} message(s) of {result.sessions} session(s)"
        + _corrupt_note(result.corrupt_skipped)
    )


@app.command(name="import")
def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="JSON Lines file of an export ('-' for stdin).")],
    overwrite: Annotated[bool, typer.Option(help="Replace sessions that have messages.")] = False,
) -> None:
    """Import an export; sessions that have messages are kept unless --overwrite."""
    store = _context(ctx).store()
    source: Any = sys.stdin.buffer if file == "-" else Path(file)
    if isinstance(source, Path) and not source.is_file():
        raise InvalidArgumentError(f"no such file: {file}")
    with _progress("import", None) as update:
        result = store.import_(source, overwrite=overwrite, progress=update)
    for warning in result.warnings:
        err.print(f"warning: {escape(warning)}", style="yellow")
    err.print(
        f"imported {result.messages:,} message(s): {result.sessions_written} session(s) written,"
        f" {result.sessions_skipped} kept as they were (use --overwrite to replace)"
    )


@app.command()
def copy(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Url of the target Redis.")],
    sessions: Annotated[
        list[str] | None, typer.Argument(help="Session ids (default: all).")
    ] = None,
    to_key_prefix: Annotated[
        str | None, typer.Option(help="Key prefix on the target (default: the same).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace sessions that have messages.")] = False,
    skip_corrupt: Annotated[
        bool, typer.Option(help="Skip stored elements that are not messages (counted).")
    ] = False,
) -> None:
    """Copy sessions to another Redis (TTLs kept)."""
    context = _context(ctx)
    store = context.store(skip_corrupt=skip_corrupt)
    target = RedisChatStore(url=to, key_prefix=to_key_prefix or context.key_prefix)
    chosen = list(sessions) if sessions else sorted(store.sessions())
    err.print(f"[dim]copying to {escape(target.display)}[/dim]")
    with _progress("copy", len(chosen)) as update:
        result = store.copy_to(target, chosen, overwrite=overwrite, progress=update)
    err.print(
        f"copied {result.messages:,} message(s): {result.sessions_written} session(s) written,"
        f" {result.sessions_skipped} kept on the target (use --overwrite to replace)"
        + _corrupt_note(result.corrupt_skipped)
    )


@app.command()
def rm(
    ctx: typer.Context,
    sessions: Annotated[list[str], typer.Argument(help="Session ids to delete.")],
) -> None:
    """Delete sessions."""
    store = _context(ctx).store()
    missing = [session for session in sessions if not store.delete(session)]
    deleted = len(sessions) - len(missing)
    err.print(f"deleted {deleted} session(s)")
    if missing:
        raise OperationFailed(f"not found: {', '.join(map(repr, missing))}")


@app.command()
def ttl(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    seconds: Annotated[
        int | None, typer.Argument(min=1, help="Expire this many seconds from now.")
    ] = None,
    persist: Annotated[bool, typer.Option(help="Never expire.")] = False,
) -> None:
    """Show or change when a session expires."""
    if persist and seconds is not None:
        raise typer.BadParameter("give SECONDS or --persist, not both")
    store = _context(ctx).store()
    history = store.history(session)
    if history.count() == 0:
        raise _missing(store, session)
    if seconds is not None:
        history.expire(seconds)
    elif persist:
        history.persist()
    remaining = history.expires_in()
    out.print("never expires" if remaining is None else f"expires in {remaining:.0f} s")


@app.command()
def stats(
    ctx: typer.Context,
    match: Annotated[
        str | None, typer.Option(help="Only session ids starting with this text.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON object.")] = False,
) -> None:
    """Sessions, messages and the Redis memory they use."""
    result = _context(ctx).store().stats(match)
    if as_json:
        out.print_json(orjson.dumps(result.__dict__).decode())
        return
    table = Table(show_header=False, box=None)
    table.add_row("sessions", f"{result.sessions:,}")
    table.add_row("messages", f"{result.messages:,}")
    memory = result.memory_bytes
    table.add_row(
        "memory", "not permitted (MEMORY USAGE)" if memory is None else f"{memory:,} bytes"
    )
    if memory is not None and result.messages:
        table.add_row("per message", f"{memory / result.messages:,.0f} bytes")
    out.print(table)


# -- entry point ---------------------------------------------------------------------
def _exit_code(error: BaseException) -> int:
    if isinstance(error, (InvalidArgumentError, InvalidArgumentTypeError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = sys.argv[1:] if argv is None else argv
    debug = "--debug" in arguments
    try:
        # Typer reports usage errors itself (exit code 2) and exits with SystemExit.
        app(args=arguments, prog_name="redis-chat-history", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except (ChatHistoryError, OperationFailed, OSError) as error:
        if debug:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        err.print(f"error: {escape(message)}", style="red")
        return _exit_code(error)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
