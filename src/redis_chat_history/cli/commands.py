"""The commands: demo, sessions, show, export, import, copy, rm, ttl, stats.

Each prints its data on stdout (``--json`` for machines, where a command prints data)
and everything else on stderr; exit codes as in :mod:`redis_chat_history.cli.app`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from redis_chat_history.cli.app import (
    BadInput,
    OperationFailed,
    command,
    context,
)
from redis_chat_history.cli.render import (
    Timer,
    corrupt_note,
    err,
    expired_note,
    note,
    out,
    print_json,
    progress,
    render,
    transfer_json,
    transfer_summary,
)
from redis_chat_history.codec import message_payload
from redis_chat_history.errors import InvalidURLError
from redis_chat_history.export_format import ExportWriter
from redis_chat_history.store import RedisChatStore
from redis_chat_history.transfer import TransferResult

#: Top-level modules the demo needs beyond the cli extra, and the extra that brings them.
_DEMO_EXTRAS = {"langchain": "agents", "langgraph": "agents"}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Sessions = Annotated[
    list[str] | None, typer.Argument(metavar="SESSION", help="Session ids (default: all).")
]
SkipCorrupt = Annotated[
    bool,
    typer.Option("--skip-corrupt", help="Skip stored elements that are not messages (counted)."),
]
Match = Annotated[
    str | None, typer.Option(metavar="PREFIX", help="Only session ids starting with PREFIX.")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace sessions that already hold messages.")
]


def _not_found(store: RedisChatStore, session_ids: list[str]) -> OperationFailed:
    if len(session_ids) == 1:
        return OperationFailed(
            f"session {session_ids[0]!r} not found "
            f"(no messages under key {store.key(session_ids[0])!r})"
        )
    return OperationFailed(f"sessions not found: {', '.join(map(repr, session_ids))}")


def _chosen(store: RedisChatStore, session_ids: list[str] | None) -> list[str]:
    """The named sessions (each must hold messages), else every session."""
    if not session_ids:
        return sorted(store.sessions())
    named = list(dict.fromkeys(session_ids))
    missing = [session_id for session_id in named if store.history(session_id).count() == 0]
    if missing:
        raise _not_found(store, missing)
    return named


@command()
def demo(
    ctx: typer.Context,
    session: Annotated[
        str, typer.Option(metavar="ID", help="Session id of the demo conversation.")
    ] = "demo",
) -> None:
    """Hold a short agent conversation stored in Redis, then show it."""
    try:
        for module in _DEMO_EXTRAS:  # before the store is opened: say it first
            importlib.import_module(module)
        from redis_chat_history.demo import run_demo

        run_demo(context(ctx).store(), session, render, out)
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        extra = _DEMO_EXTRAS.get(missing)
        if extra is None:
            raise
        raise BadInput(
            f"the demo needs the {extra} extra ({missing} is missing): "
            f"pip install 'redis-chat-history[{extra}]'"
        ) from None


@command()
def sessions(
    ctx: typer.Context,
    match: Match = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array.")] = False,
) -> None:
    """List session ids, sorted (SCAN, never KEYS)."""
    found = sorted(context(ctx).store().sessions(match))
    if as_json:
        print_json(found)
        return
    for session_id in found:
        out.print(escape(session_id))
    note(f"{len(found)} session(s)")


@command()
def show(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(metavar="SESSION", help="Session id.")],
    last: Annotated[
        int | None, typer.Option(metavar="N", help="Only the newest N messages (N >= 1).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The export format (JSON Lines): import reads it.")
    ] = False,
) -> None:
    """Show one conversation, oldest message first."""
    if last is not None and last < 1:
        raise BadInput(f"--last must be at least 1, got {last}")
    store = context(ctx).store()
    history = store.history(session)
    total = history.count()
    if total == 0:
        raise _not_found(store, [session])
    messages = history.get_messages(limit=last)
    if as_json:
        writer = ExportWriter(sys.stdout.buffer.write)
        writer.start_session(session, expires_in=history.expires_in())
        writer.add(message_payload(message) for message in messages)
        writer.close()
        sys.stdout.buffer.flush()
        return
    render(messages, total - len(messages))
    note(f"{len(messages)} of {total} message(s) of {session!r}")


@command()
def export(
    ctx: typer.Context,
    sessions: Sessions = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help="File to write ('-', the default: stdout); replaced only once complete.",
            show_default=False,
        ),
    ] = "-",
    skip_corrupt: SkipCorrupt = False,
    as_json: JsonFlag = False,
) -> None:
    """Write sessions to a file in the export format (JSON Lines)."""
    if as_json and output == "-":
        raise BadInput("--json prints the summary on stdout: give -o FILE for the export")
    store = context(ctx).store(skip_corrupt=skip_corrupt)
    chosen = _chosen(store, sessions)
    target: Any = sys.stdout.buffer if output == "-" else Path(output)
    timer = Timer()
    with progress("export", len(chosen)) as update:
        result = store.export(target, chosen, progress=update)
    if output == "-":
        sys.stdout.flush()
    if as_json:
        print_json(result.__dict__)
    err.print(
        f"exported {result.messages:,} message(s) of {result.sessions} session(s)"
        + expired_note(result.sessions_expired)
        + corrupt_note(result.corrupt_skipped)
        + timer.rate(result.messages)
    )


@command(name="import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="An export (JSON Lines); '-' for stdin.")
    ],
    overwrite: Overwrite = False,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Accept an empty file (else refused: a failed dump?)."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Read an export into Redis; sessions with messages are kept."""
    source: Any = sys.stdin.buffer if file == "-" else Path(file)
    if isinstance(source, Path):
        if source.is_dir():
            raise BadInput(f"{file}: is a directory, not an export file")
        if not source.exists():
            raise BadInput(f"{file}: no such file")
    store = context(ctx).store()
    timer = Timer()
    with progress("import", None) as update:
        result = store.import_(
            source, overwrite=overwrite, allow_empty=allow_empty, progress=update
        )
    for warning in result.warnings:
        err.print(f"warning: {escape(warning)}", style="yellow")
    _report("imported", result, timer, as_json)


def _report(verb: str, result: TransferResult, timer: Timer, as_json: bool) -> None:
    """The data on stdout with --json, the one-line summary on stderr."""
    if as_json:
        print_json(transfer_json(result))
    err.print(transfer_summary(verb, result, timer))


@command()
def copy(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="URL", help="Url of the target Redis.")],
    sessions: Sessions = None,
    to_key_prefix: Annotated[
        str | None,
        typer.Option(metavar="PREFIX", help="Key prefix on the target (default: the same)."),
    ] = None,
    overwrite: Overwrite = False,
    skip_corrupt: SkipCorrupt = False,
    as_json: JsonFlag = False,
) -> None:
    """Copy sessions to another Redis or key prefix, TTLs kept."""
    state = context(ctx)
    store = state.store(skip_corrupt=skip_corrupt)
    try:
        target = RedisChatStore(url=to, key_prefix=to_key_prefix or state.key_prefix)
    except InvalidURLError as error:
        raise InvalidURLError(f"--to: {error}") from None
    chosen = _chosen(store, sessions)
    note(f"copying to {target.display}")
    timer = Timer()
    with progress("copy", len(chosen)) as update:
        result = store.copy_to(target, chosen, overwrite=overwrite, progress=update)
    _report("copied", result, timer, as_json)


@command()
def rm(
    ctx: typer.Context,
    sessions: Annotated[
        list[str], typer.Argument(metavar="SESSION", help="Session ids to delete.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Delete sessions (exit code 1 if one was not found)."""
    store = context(ctx).store()
    missing = [session for session in sessions if not store.delete(session)]
    deleted = [session for session in sessions if session not in missing]
    if as_json:
        print_json({"deleted": deleted, "not_found": missing})
    err.print(f"deleted {len(deleted)} session(s)")
    if missing:
        raise OperationFailed(f"not found: {', '.join(map(repr, missing))}")


@command()
def ttl(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(metavar="SESSION", help="Session id.")],
    seconds: Annotated[
        int | None,
        typer.Argument(metavar="SECONDS", help="Expire this many seconds from now (>= 1)."),
    ] = None,
    persist: Annotated[bool, typer.Option("--persist", help="Never expire.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show when a session expires, or change it (SECONDS, --persist)."""
    if persist and seconds is not None:
        raise BadInput("give SECONDS or --persist, not both")
    if seconds is not None and seconds < 1:
        raise BadInput(
            f"SECONDS must be at least 1, got {seconds}: --persist removes the expiry, "
            "rm deletes the session now"
        )
    store = context(ctx).store()
    history = store.history(session)
    if history.count() == 0:
        raise _not_found(store, [session])
    if seconds is not None:
        history.expire(seconds)
    elif persist:
        history.persist()
    remaining = history.expires_in()
    if as_json:
        print_json({"session": session, "expires_in": remaining})
        return
    out.print("never expires" if remaining is None else f"expires in {remaining:.0f} s")


@command()
def stats(
    ctx: typer.Context,
    match: Match = None,
    as_json: JsonFlag = False,
) -> None:
    """Count sessions, messages and the Redis memory they use."""
    result = context(ctx).store().stats(match)
    if as_json:
        print_json(result.__dict__)
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
