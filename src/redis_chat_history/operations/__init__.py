"""What each operation sends to Redis and how its reply is read, without any I/O.

Every operation is a :class:`Plan`: the commands to send together (one round trip,
on one connection), the key that routes them (its Cluster slot), and a function that
turns the replies into the result. :mod:`redis_chat_history.execution` runs a plan
with a sync or an asyncio client; the plans themselves are tested without a server.

- :mod:`.plans`: the shape (Plan, Command, Script, WRITER) and argument checks;
- :mod:`.scripts`: the builder of write scripts (exactly-once prelude, named arguments,
  recorded results) and the registry of every write operation;
- :mod:`.messages`: one history's reads and writes, and the store's listing;
- :mod:`.sessions`: deleting and expiring a history, and the whole LangGraph thread it may be;
- :mod:`.transfer_plans`: export, import and copy (staging lists, commits, snapshots);
- :mod:`.turns`: turn-aligned windows (``get_messages(whole_turns=True)``, agent memory).

Example::

    >>> plan = read_plan("message_store:s1", limit=20)
    >>> plan.commands[0].args
    ('LRANGE', 'message_store:s1', 0, 19)
"""

from redis_chat_history.operations.messages import (
    APPEND,
    DELETE_LAST,
    REPLACE,
    append_plan,
    count_plan,
    delete_last_plan,
    expires_in_plan,
    read_plan,
    replace_plan,
    scan_plan,
    size_plan,
    type_plan,
    writers_key,
)
from redis_chat_history.operations.plans import (
    MAX_EXPIRE_SECONDS,
    MAX_MESSAGES,
    PUSH_CHUNK,
    WRITER,
    Command,
    Plan,
    Script,
    batch_plan,
    check_batch,
    check_int,
    check_key,
    check_optional,
    single_reply,
)
from redis_chat_history.operations.scripts import (
    WRITES,
    Write,
    WriteScript,
    plain_write,
    register,
    write_script,
)
from redis_chat_history.operations.sessions import (
    DELETE,
    EXPIRE,
    delete_plan,
    expire_plan,
    persist_plan,
    thread_keys,
)
from redis_chat_history.operations.transfer_plans import (
    COMMIT,
    MAX_EXPIRE_MS,
    SNAPSHOT_READ,
    SNAPSHOT_TTL_MS,
    STAGE,
    STAGING_TTL_MS,
    Snapshot,
    check_expire_ms,
    commit_stage_plan,
    discard_stage_plan,
    drop_snapshot_plan,
    snapshot_key,
    snapshot_plan,
    snapshot_window_plan,
    stage_plan,
    staging_key,
)
from redis_chat_history.operations.turns import (
    APPEND_UNSTORED,
    ID_REACH_MARGIN,
    TAIL_SLACK,
    TURN_CHUNK,
    TURN_WINDOW,
    Appended,
    TurnWindow,
    append_unstored_plan,
    from_first_turn,
    id_needle,
    turn_window_plan,
)
from redis_chat_history.slots import is_companion_key

__all__ = [
    "APPEND",
    "APPEND_UNSTORED",
    "COMMIT",
    "DELETE",
    "DELETE_LAST",
    "EXPIRE",
    "ID_REACH_MARGIN",
    "MAX_EXPIRE_MS",
    "MAX_EXPIRE_SECONDS",
    "MAX_MESSAGES",
    "PUSH_CHUNK",
    "REPLACE",
    "SNAPSHOT_READ",
    "SNAPSHOT_TTL_MS",
    "STAGE",
    "STAGING_TTL_MS",
    "TAIL_SLACK",
    "TURN_CHUNK",
    "TURN_WINDOW",
    "WRITER",
    "WRITES",
    "Appended",
    "Command",
    "Plan",
    "Script",
    "Snapshot",
    "TurnWindow",
    "Write",
    "WriteScript",
    "append_plan",
    "append_unstored_plan",
    "batch_plan",
    "check_batch",
    "check_expire_ms",
    "check_int",
    "check_key",
    "check_optional",
    "commit_stage_plan",
    "count_plan",
    "delete_last_plan",
    "delete_plan",
    "discard_stage_plan",
    "drop_snapshot_plan",
    "expire_plan",
    "expires_in_plan",
    "from_first_turn",
    "id_needle",
    "is_companion_key",
    "persist_plan",
    "plain_write",
    "read_plan",
    "register",
    "replace_plan",
    "scan_plan",
    "single_reply",
    "size_plan",
    "snapshot_key",
    "snapshot_plan",
    "snapshot_window_plan",
    "stage_plan",
    "staging_key",
    "thread_keys",
    "turn_window_plan",
    "type_plan",
    "write_script",
    "writers_key",
]
