"""The ``redis-chat-history`` command line: read, back up and move conversations.

Built on :class:`~redis_chat_history.store.RedisChatStore`. ``app.py`` holds the frame
(global options, where the data lives, exit codes, one-line errors), ``commands.py``
the commands, ``render.py`` what they print, ``usage.py`` how arguments are read and
the help is written.

Example::

    redis-chat-history sessions --match user-
    redis-chat-history show user-42 --last 10
    redis-chat-history export -o backup.jsonl
"""

from redis_chat_history.cli import commands as _commands  # registers the commands
from redis_chat_history.cli.app import app, main
from redis_chat_history.cli.render import render

__all__ = ["app", "main", "render"]

del _commands
