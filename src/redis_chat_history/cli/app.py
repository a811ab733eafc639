"""The command line's frame: global options, where the data lives, exit codes, one-line errors.

Where the data lives: ``--url``, else ``$REDIS_URL``, else an embedded Redis in
``--data-dir`` (see :mod:`redis_chat_history.embedded`); the command says which on stderr.

Exit codes: 0 success; 1 the operation failed (Redis unreachable or refusing, a session
that does not exist, a corrupt stored element); 2 bad usage or bad input (an unknown
option, a bad value, a malformed or empty import file, a path that cannot be written or
read, a missing extra); 130 interrupted (Ctrl-C). Errors are one line on stderr,
``error: ...``, printed after any progress bar is cleared; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from redis_chat_history.cli.render import err, note
from redis_chat_history.cli.usage import ReadableCommand, ReadableGroup, usage_error
from redis_chat_history.embedded import DEFAULT_DATA_DIR, start_embedded
from redis_chat_history.errors import (
    ChatHistoryError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidURLError,
)
from redis_chat_history.history import DEFAULT_KEY_PREFIX
from redis_chat_history.store import RedisChatStore

PROG = "redis-chat-history"
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name=PROG,
    cls=ReadableGroup,
    help="Read, back up and move LangChain chat histories stored in Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@command()``: a subcommand with the readable help and negative numbers as values."""
    return app.command(name, cls=ReadableCommand)


class OperationFailed(Exception):
    """The command could not do what was asked (exit code 1)."""


class BadInput(Exception):
    """The user's input cannot be used (exit code 2)."""


@dataclass
class Context:
    url: str | None
    key_prefix: str
    data_dir: Path
    debug: bool
    _store: RedisChatStore | None = field(default=None, repr=False)
    _url: str = field(default="", repr=False)

    def _open(self, url: str, source: str) -> RedisChatStore:
        try:
            return RedisChatStore(url=url, key_prefix=self.key_prefix)
        except InvalidURLError as error:  # its text never holds the url (it may hold a password)
            raise InvalidURLError(f"{source}: {error}") from None

    def store(self, *, skip_corrupt: bool = False) -> RedisChatStore:
        """The store of the chosen data source, announced once on stderr."""
        if self._store is None:
            # The banner is the parsed url's display (rebuilt from its parts, no secret).
            if self.url:
                url = self.url
                store = self._open(url, "--url")
                where = f"using {store.display}"
            elif os.environ.get("REDIS_URL"):
                url = os.environ["REDIS_URL"]
                store = self._open(url, "$REDIS_URL")
                where = f"using {store.display} (from $REDIS_URL)"
            else:
                server = start_embedded(self.data_dir)
                url = server.url
                store = RedisChatStore(url=url, key_prefix=self.key_prefix)
                state = "started" if server.owned else "already running"
                where = f"using the embedded Redis in {server.data_dir} ({state}; {server.socket})"
            note(where)
            self._url = url
            self._store = store
        if skip_corrupt:
            return RedisChatStore(url=self._url, key_prefix=self.key_prefix, skip_corrupt=True)
        return self._store


def context(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj


def version() -> str:
    try:
        return metadata.version(PROG)
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"{PROG} {version()}\n")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="Redis url (default: $REDIS_URL, else the embedded Redis)."
        ),
    ] = None,
    key_prefix: Annotated[
        str, typer.Option(metavar="PREFIX", help="Prefix of the history keys.")
    ] = DEFAULT_KEY_PREFIX,
    data_dir: Annotated[
        Path,
        typer.Option(metavar="DIR", help="Folder of the embedded Redis (when no url is given)."),
    ] = Path(DEFAULT_DATA_DIR),
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = Context(url=url, key_prefix=key_prefix, data_dir=data_dir, debug=debug)


# -- entry point ---------------------------------------------------------------------
#: Errors about a path the user gave (not Redis's: those are ChatHistoryError).
_PATH_ERRORS = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    FileExistsError,
)


def _exit_code(error: BaseException) -> int:
    if isinstance(error, (InvalidArgumentError, InvalidArgumentTypeError, BadInput)):
        return EXIT_BAD_INPUT
    if isinstance(error, _PATH_ERRORS) and not isinstance(error, ChatHistoryError):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def _message(error: BaseException) -> str:
    if (
        isinstance(error, OSError)
        and not isinstance(error, ChatHistoryError)
        and error.filename is not None
        and error.strerror
    ):
        return f"{error.filename}: {error.strerror}"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def fail(message: str) -> None:
    """Print one error line on stderr."""
    err.print(f"error: {escape(message)}", style="red")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = sys.argv[1:] if argv is None else argv
    debug = "--debug" in arguments
    usage_errors: type[Exception] = usage_error()
    try:
        code = app(args=arguments, prog_name=PROG, standalone_mode=False)
    except usage_errors as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # no arguments at all: the help
            err.print(error.format_message(), markup=False)  # type: ignore[attr-defined]
            return EXIT_BAD_INPUT
        where = getattr(getattr(error, "ctx", None), "command_path", PROG)
        fail(f"{error.format_message().rstrip('.')} (see '{where} -h')")  # type: ignore[attr-defined]
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, typer.Abort):
        fail("interrupted")
        return EXIT_INTERRUPTED
    except (ChatHistoryError, OperationFailed, BadInput, OSError) as error:
        if debug:
            raise
        fail(_message(error))
        return _exit_code(error)
    if code == EXIT_INTERRUPTED:  # typer releases that turn Ctrl-C into Exit(130)
        fail("interrupted")
    return code if isinstance(code, int) else 0
