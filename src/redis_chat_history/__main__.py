"""``python -m redis_chat_history``: the command line."""

from redis_chat_history.cli import main

raise SystemExit(main())
