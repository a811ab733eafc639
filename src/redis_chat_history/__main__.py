"""``python -m redis_chat_history`` and the installed ``redis-chat-history`` command.

The command line needs the ``cli`` extra (typer, rich). Installed without it, the command
says in one line how to get it and exits 2, instead of ending in a traceback.
"""

from __future__ import annotations

import sys

#: Top-level modules of the cli extra and of what they need.
_CLI_MODULES = frozenset(
    {"typer", "rich", "click", "shellingham", "markdown_it", "mdurl", "pygments"}
)
INSTALL_HINT = "pip install 'redis-chat-history[cli]'"


def main(argv: list[str] | None = None) -> int:
    """Run the command line, or say how to install it; returns the exit code."""
    try:
        from redis_chat_history.cli import main as run
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in _CLI_MODULES:
            raise
        sys.stderr.write(
            f"redis-chat-history: the command line needs the cli extra ({error.name} is "
            f"missing): {INSTALL_HINT}\n"
        )
        return 2
    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
