"""How the command line reads its arguments and describes itself (``-h``).

Typer's own help differs between its releases (``{session}``, ``<str>``, ``<int range>``
in the newest, escaped brackets in the oldest this package allows) and cuts command
summaries at a width. The help here is the same on every release, in the shape of the
tools users know::

    Usage: redis-chat-history ttl [OPTIONS] SESSION [SECONDS]

Negative numbers are values, not options (``ttl x -5`` reads -5 as SECONDS): no option
of this command line has a digit for a name.

Only public attributes of click's classes are used (``opts``, ``secondary_opts``,
``is_flag``, ``metavar``, ``nargs``, ...): checked with typer 0.16 (click 8.5) and typer
0.29 (which carries its own copy of click as ``typer._click``).
"""

from __future__ import annotations

import inspect
import re
from typing import Any, get_args, get_type_hints

import typer
from typer.core import TyperCommand, TyperGroup

#: A token that is a number, never an option.
_NUMBER = re.compile(r"-\d+(\.\d*)?([eE][-+]?\d+)?")

EXIT_CODES = (
    "Exit codes: 0 success, 1 the operation failed, 2 bad usage or bad input, 130 interrupted."
)


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _metavar(param: Any) -> str:
    return str(param.metavar or (param.name or "value").upper())


def _usage_pieces(command: Any) -> list[str]:
    pieces = ["[OPTIONS]"]
    for param in command.params:
        if _is_option(param) or getattr(param, "hidden", False):
            continue
        name = _metavar(param) + ("..." if param.nargs == -1 else "")
        pieces.append(name if param.required else f"[{name}]")
    return pieces


def _option_row(param: Any) -> tuple[str, str]:
    names = ", ".join(sorted([*param.opts, *param.secondary_opts], key=len))
    if not param.is_flag and not getattr(param, "count", False):
        names += f" {_metavar(param)}"
    text = param.help or ""
    default = param.default
    if (
        not param.is_flag
        and default not in (None, "", ())
        and not callable(default)
        and param.show_default is not False
    ):
        text += f" [default: {default}]"
    return names, text.strip()


def _argument_help(command: Any, param: Any) -> str:
    """An argument's help: click 8.2+ drops the one typer 0.16 gives, so read it back."""
    if getattr(param, "help", None):
        return str(param.help)
    try:
        hints = get_type_hints(inspect.unwrap(command.callback), include_extras=True)
    except (NameError, TypeError):
        return ""
    pending = [hints.get(param.name or "")]
    while pending:  # Annotated[T, info], or Optional[Annotated[...]] (Python 3.10)
        for info in get_args(pending.pop()):
            if getattr(info, "help", None):
                return str(info.help)
            pending.append(info)
    return ""


def _format_params(command: Any, ctx: Any, formatter: Any) -> None:
    arguments = [
        (_metavar(p), _argument_help(command, p))
        for p in command.params
        if not _is_option(p) and not getattr(p, "hidden", False)
    ]
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    options = [_option_row(p) for p in command.get_params(ctx) if _is_option(p) and not p.hidden]
    if options:
        with formatter.section("Options"):
            formatter.write_dl(options)


def summary(help_text: str | None) -> str:
    """The first line of a command's help: its one-line summary, never cut."""
    return (help_text or "").strip().splitlines()[0] if (help_text or "").strip() else ""


class ReadableCommand(TyperCommand):
    """A command whose help reads like git's and whose negative numbers are values."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(self)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        formatter.write_usage(ctx.command_path, " ".join(_usage_pieces(self)))
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text((self.help or "").strip())
        _format_params(self, ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or summary(self.help)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, numbers_as_values(self, args))
        for param in self.params:  # typer 0.16 on click >= 8.2 lets a missing one through
            if param.required and ctx.params.get(param.name) is None and not ctx.resilient_parsing:
                what = (
                    f"option '{param.opts[-1]}'"
                    if _is_option(param)
                    else (f"argument '{_metavar(param)}'")
                )
                raise usage_error()(f"Missing {what}.", ctx=ctx)
        return rest


def numbers_as_values(command: Any, args: list[str]) -> list[str]:
    """``args`` with every negative number that is no option's value moved after ``--``.

    Options (with their values) keep their order, then ``--``, then the positional
    values in theirs; what follows a ``--`` of the user's stays positional.
    """
    if not any(_NUMBER.fullmatch(arg) for arg in args):
        return args
    takes_value = {
        name
        for param in command.params
        if _is_option(param) and not param.is_flag and not getattr(param, "count", False)
        for name in param.opts
    }
    options: list[str] = []
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            positional += args[index + 1 :]
            break
        if arg == "-" or not arg.startswith("-") or _NUMBER.fullmatch(arg):
            positional.append(arg)
        else:
            options.append(arg)
            if arg in takes_value and index + 1 < len(args):
                options.append(args[index + 1])
                index += 1
        index += 1
    return [*options, "--", *positional]


class ReadableGroup(TyperGroup):
    """The top level: its options, every command's full one-line summary, the exit codes."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] COMMAND [ARGS]...")
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text((self.help or "").strip())
        _format_params(self, ctx, formatter)
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str()))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        formatter.write_paragraph()
        formatter.write_text(f"{EXIT_CODES} '{ctx.command_path} COMMAND -h' for a command's help.")


def usage_error() -> Any:
    """click's UsageError (typer's own copy of click in newer typer releases)."""
    return next(base for base in typer.BadParameter.__mro__ if base.__name__ == "UsageError")
