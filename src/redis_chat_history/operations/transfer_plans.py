"""The plans of export, import and copy: staging lists, their commit, snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis_chat_history.checks import check_batch, check_int, check_key
from redis_chat_history.errors import CommandError
from redis_chat_history.operations.plans import PUSH_CHUNK, Command, Plan, Script, single_reply
from redis_chat_history.operations.sessions import (
    DROP_THREAD,
    FIND_THREAD,
    THREAD_HELPERS,
    thread_keys,
)
from redis_chat_history.slots import (
    SNAPSHOT,
    STAGING,
    companion_key,
)

# An import or copy run assembles each session in a staging list of its own (a companion
# key with the run's id, so concurrent runs never share one), then one script makes it the
# history. Every step may be re-sent after a lost reply and is recognised when it is:
# a batch is pushed only onto a staging list of the length it expects (a re-send finds
# it longer by exactly the batch), and the commit leaves its outcome in place of the
# staging list for as long as a re-send can arrive. The commit never deletes a history
# because its staging list is missing. An export reads a snapshot: small sessions in one
# LRANGE, larger ones from a server-side COPY in the history's slot, read in windows.

#: A staging list of an import or copy expires an hour after its last batch.
STAGING_TTL_MS = 3_600_000
#: An export's snapshot of a session expires this long after its last window was read.
SNAPSHOT_TTL_MS = 600_000
#: The largest expiry an import sets, in ms: Redis refuses ``now + ms`` beyond 2**63 - 1
#: ("invalid expire time"); 2**62 ms (146 million years) leaves room for any clock.
MAX_EXPIRE_MS = 2**62

STAGE = Script(
    "stage",
    f"""
-- KEYS[1] a staging list; ARGV[1] its length before this batch, ARGV[2] its expiry (ms),
-- ARGV[3..] encoded messages, oldest first. Replies {{1 pushed | 0 re-send, length}}.
local n = redis.call('LLEN', KEYS[1])
local before = tonumber(ARGV[1])
local count = #ARGV - 2
if n == before + count then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {{0, n}}
end
if n ~= before then
  return redis.error_reply('RCHSTAGE staging list holds ' .. n .. ' messages, ' .. before ..
    ' expected (it expired, or was changed): the session is not written')
end
for at = 3, #ARGV, {PUSH_CHUNK} do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, at, math.min(at + {PUSH_CHUNK - 1}, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {{1, n + count}}
""",
)

COMMIT = Script(
    "commit",
    """
-- KEYS[1] staging list, KEYS[2] history, KEYS[3] and KEYS[4] its thread's data and index
-- (sessions.thread_keys); ARGV[1] '1' to overwrite a non-empty history, ARGV[2] messages
-- staged, ARGV[3] expiry in ms ('0' = none), ARGV[4] how long (ms) the outcome stays
-- recognisable. Replies 1 when written, 0 when the history was kept. Writing the history
-- of a LangGraph thread deletes the thread's companion keys: a new thread starts from it.
local staged = redis.call('TYPE', KEYS[1])['ok']
if staged == 'string' then
  return tonumber(redis.call('GET', KEYS[1]))  -- a re-send: the first copy's outcome
end
local existing = redis.call('LLEN', KEYS[2])  -- WRONGTYPE stops here, nothing changed
if staged ~= 'list' then
  return redis.error_reply('RCHSTAGE the staging list is gone (expired?): nothing written')
end
local n = redis.call('LLEN', KEYS[1])
if n ~= tonumber(ARGV[2]) then
  return redis.error_reply('RCHSTAGE staging list holds ' .. n .. ' messages, ' .. ARGV[2] ..
    ' expected: nothing written')
end
local outcome = 0
if ARGV[1] == '1' or existing == 0 then
  local history, data, index = KEYS[2], KEYS[3], KEYS[4]
"""
    + THREAD_HELPERS
    + FIND_THREAD
    + """
  -- the expiry goes on the staging list first (RENAME keeps it): a refused value stops
  -- the script before anything changed
  if ARGV[3] == '0' then
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  end
"""
    + DROP_THREAD
    + """
  redis.call('RENAME', KEYS[1], KEYS[2])
  outcome = 1
else
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[1], outcome, 'PX', ARGV[4])
return outcome
""",
)

SNAPSHOT_READ = Script(
    "snapshot",
    """
-- KEYS[1] history, KEYS[2] snapshot key; ARGV[1] window, ARGV[2] snapshot expiry (ms).
-- Replies {length, PTTL, elements, copied}: every element (newest first) when the list
-- fits in a window or COPY is refused (Redis < 6.2, ACL); else copied = 1 and the oldest
-- window of the snapshot taken by COPY.
local n = redis.call('LLEN', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
local window = tonumber(ARGV[1])
if n <= window then return {n, pttl, redis.call('LRANGE', KEYS[1], 0, -1), 0} end
local copied = redis.pcall('COPY', KEYS[1], KEYS[2], 'REPLACE')
if type(copied) == 'table' and copied.err then
  return {n, pttl, redis.call('LRANGE', KEYS[1], 0, -1), 0}
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {n, pttl, redis.call('LRANGE', KEYS[2], n - window, n - 1), 1}
""",
)


def staging_key(key: str, run_id: str) -> str:
    """Where import or copy run ``run_id`` assembles history ``key`` (same slot)."""
    return companion_key(key, STAGING, run_id)


def snapshot_key(key: str, run_id: str) -> str:
    """Where export or copy run ``run_id`` keeps its snapshot of history ``key`` (same slot)."""
    return companion_key(key, SNAPSHOT, run_id)


def check_expire_ms(milliseconds: Any) -> int:
    """An expiry in ms that PEXPIRE accepts on every server: an int in ``[1, MAX_EXPIRE_MS]``."""
    return check_int("expiry (ms)", milliseconds, minimum=1, maximum=MAX_EXPIRE_MS)


def _parse_stage(replies: list[Any]) -> int:
    return int(replies[0][1])


def stage_plan(key: str, run_id: str, encoded: Sequence[bytes], *, before: int) -> Plan[int]:
    """Push a batch (oldest first) onto a staging list that holds ``before`` messages.

    Replies the staging list's new length. A re-send after a lost reply finds the list
    longer by exactly this batch and pushes nothing; a list of another length (expired,
    changed) is refused with an error, nothing pushed.
    """
    check_key(key)
    check_batch(encoded)
    check_int("before", before, minimum=0)
    command = Command.call(STAGE, [staging_key(key, run_id)], [before, STAGING_TTL_MS, *encoded])
    return Plan((command,), key, _parse_stage, writes=True, idempotent=True)


def _delete_companion_plan(key: str, companion: str) -> Plan[int]:
    """DEL a companion key of history ``key`` (routed with it; a second DEL finds nothing)."""
    return Plan(
        (Command(("DEL", companion)),), key, single_reply(int), writes=True, idempotent=True
    )


def discard_stage_plan(key: str, run_id: str) -> Plan[int]:
    """Drop run ``run_id``'s staging list of history ``key`` (after a failed import)."""
    return _delete_companion_plan(check_key(key), staging_key(key, run_id))


def commit_stage_plan(
    key: str,
    run_id: str,
    *,
    staged: int,
    overwrite: bool,
    expire_ms: int | None,
    remember_seconds: int,
) -> Plan[bool]:
    """Atomically make run ``run_id``'s staging list the history; False when one was kept.

    ``staged`` is the number of messages the staging list must hold, ``expire_ms`` the
    history's expiry (None: none). The outcome replaces the staging list for
    ``remember_seconds``, so a re-send replies the same and changes nothing; a staging
    list that is gone is an error, and the history is left as it is. Writing the history
    of a LangGraph thread deletes the thread's checkpoints (its companion keys) in the same
    script: the checkpointer then starts a new thread from the written conversation.
    """
    check_key(key)
    check_int("staged", staged, minimum=1)
    expiry = "0" if expire_ms is None else str(check_expire_ms(expire_ms))
    remember_ms = check_int("remember_seconds", remember_seconds, minimum=1) * 1000
    command = Command.call(
        COMMIT,
        [staging_key(key, run_id), *thread_keys(key)],
        ["1" if overwrite else "0", staged, expiry, remember_ms],
    )
    return Plan((command,), key, single_reply(bool), writes=True, idempotent=True)


@dataclass(frozen=True)
class Snapshot:
    """The state of a history at one moment, as :func:`snapshot_plan` found it.

    ``elements`` are raw, oldest first: all of them, or (``copied``) the oldest window
    of the snapshot key, whose next windows :func:`snapshot_window_plan` reads.
    """

    length: int
    #: Milliseconds before the history expires (PTTL): None when it never does, 0 when
    #: it was read in its last millisecond (it expires now: never "no expiry").
    expire_ms: int | None
    elements: list[bytes]
    copied: bool


def _expire_ms(pttl: Any) -> int | None:
    """A PTTL reply as an expiry: -1 (none) and -2 (no key) are None; 0 is "expires now"."""
    milliseconds = int(pttl)
    return None if milliseconds < 0 else milliseconds


def snapshot_plan(key: str, run_id: str, *, window: int) -> Plan[Snapshot]:
    """Take a consistent snapshot of history ``key``: one reply when it fits in ``window``.

    Larger histories are copied server-side (COPY, Redis >= 6.2) to run ``run_id``'s
    snapshot key, which expires :data:`SNAPSHOT_TTL_MS` after its last read; without
    COPY every element comes in the reply.
    """
    check_key(key)
    check_int("window", window, minimum=1)

    def parse(replies: list[Any]) -> Snapshot:
        length, pttl, elements, copied = replies[0]
        return Snapshot(int(length), _expire_ms(pttl), elements[::-1], bool(copied))

    def plain() -> Plan[Snapshot]:
        def parse_plain(replies: list[Any]) -> Snapshot:
            pttl, elements = replies
            return Snapshot(len(elements), _expire_ms(pttl), elements[::-1], False)

        commands = (Command(("PTTL", key)), Command(("LRANGE", key, 0, -1)))
        return Plan(commands, key, parse_plain)

    command = Command.call(
        SNAPSHOT_READ, [key, snapshot_key(key, run_id)], [window, SNAPSHOT_TTL_MS]
    )
    # COPY REPLACE again on a re-send takes a newer, equally consistent snapshot.
    return Plan((command,), key, parse, writes=True, plain=plain)


def snapshot_window_plan(
    key: str, run_id: str, *, length: int, start: int, count: int
) -> Plan[list[bytes]]:
    """Raw elements ``start .. start+count-1`` (0 = oldest) of a snapshot of ``length``.

    Refreshes the snapshot's expiry; raises :class:`CommandError` when it expired.
    """
    check_key(key)
    check_int("start", start, minimum=0, maximum=length - 1)
    check_int("count", count, minimum=1)
    snapshot = snapshot_key(key, run_id)
    last = min(length, start + count)

    def parse(replies: list[Any]) -> list[bytes]:
        alive, elements = replies
        if not alive or len(elements) != last - start:
            raise CommandError(
                f"the snapshot of {key!r} expired while it was read (more than "
                f"{SNAPSHOT_TTL_MS // 1000} s between two windows): nothing more is read"
            )
        return list(reversed(elements))

    commands = (
        Command(("PEXPIRE", snapshot, SNAPSHOT_TTL_MS)),
        Command(("LRANGE", snapshot, length - last, length - start - 1)),
    )
    return Plan(commands, key, parse, writes=True, idempotent=True)


def drop_snapshot_plan(key: str, run_id: str) -> Plan[int]:
    """Delete run ``run_id``'s snapshot of history ``key``."""
    return _delete_companion_plan(check_key(key), snapshot_key(key, run_id))
