"""Write scripts declared once: the exactly-once prelude, named arguments, recorded results.

Every write that may be re-sent after its reply was lost is a Lua script carrying a
*writer token* (:data:`~redis_chat_history.operations.plans.WRITER`, four arguments
filled in by execution: writer id, the entry to record, its lifetime (negative for a
possible re-send), the entry expected; see :mod:`redis_chat_history.writers`).
:func:`write_script` wraps a script's own Lua in the code every such script shares, so a
script says only what it decides and what it changes:

- **named keys and arguments**: ``keys=("history",)`` and ``args=("ttl", "keep")`` become
  Lua locals (``history``, ``ttl``, ``keep``); ``rest="messages"`` names the index of the
  first variadic argument (``messages``); no ``ARGV[5]`` by hand;
- **the bookkeeping**: one hash per written key (its *writers key*, the last of ``KEYS``,
  see :mod:`redis_chat_history.slots`) with one field per writer of the last window,
  ``"<sequence>,<expiry>,<result>"`` (expiry in server seconds; the result is any string,
  last, so it may hold ``,`` or ``;``). A sequence number not above the writer's recorded
  one is a re-send: the script changes nothing and replies ``{0, <on_resend>}``. A
  *chained* write (its token names the entry it expects, and finds it) reads one field
  and writes one (HMGET, HSET) and nothing else; any other write reads its field and the
  ``~`` field (HMGET), the clock (TIME), and records an expiry of at least now + the
  lifetime: O(1) whatever the number of writers. The hash's own expiry is only ever
  extended, to the end of the longest-lived entry (the ``~`` field says when that is, so
  EXPIRE is sent at most once a second); a new writer's first write samples two fields
  (HRANDFIELD) and drops those whose own expiry has passed, so the hash stays within
  about twice its live writers;
- **the order that keeps a refusal harmless**: ``decide`` (reads only) sets ``result`` (what a
  re-send replies, a string) and may set ``unchanged = true``; then the write is recorded;
  then ``apply`` changes data and returns ``{1, <reply>}`` (or, cheaper for Redis to
  reply, a bare number: the parsers take it as applied). A write that changes nothing
  records nothing and replies ``{2, result}`` (no companion key for a delete of nothing),
  unless it is a possible re-send (a negative lifetime): an earlier copy may still
  arrive, and must find it recorded (it is, and ``apply`` is skipped all the same).
  Reads use ``redis.pcall`` and ``if failed(x) then return refused(x) end``: a command this
  user may not run (NOPERM) stops the script with an ``RCHPLAIN`` error before anything
  changed (execution then switches to the write's plain twin); any other error (WRONGTYPE,
  OOM, READONLY) is passed on as it is, an error of that call. ``undo()``
  removes this write's record (for an ``apply`` refused by the server, e.g. WRONGTYPE).

Example, declaring a new write (the plan goes next to its plain twin; its line in
:data:`WRITES` is what ``tests/test_exactly_once.py`` replays)::

    RENAME_TO = write_script(
        "rename_to",
        keys=("history", "target"),
        args=("ttl",),
        decide=\"\"\"
    local length = redis.pcall('LLEN', history)
    if failed(length) then return refused(length) end
    local result = tostring(length)
    local unchanged = length == 0
    \"\"\",
        apply=\"\"\"
    redis.call('RENAME', history, target)
    return {1, length}
    \"\"\",
    )

    def rename_plan(key: str, target: str) -> Plan[int]:
        def plain() -> Plan[int]:
            return plain_write(key, [Command(("RENAME", key, target))], lambda r: 1)

        return RENAME_TO.plan(key, [key, target], [0], parse_result_int, plain=plain)

    register(Write("rename_to", RENAME_TO, sample=lambda key: rename_plan(key, key + "2")))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis_chat_history.operations.plans import WRITER, Command, Plan, Script
from redis_chat_history.slots import writers_key_of
from redis_chat_history.writers import EXPIRY_SPREAD, TOKEN_ARGUMENTS

T = TypeVar("T")

_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
#: Names the shared code uses: a script may not declare them as keys or arguments.
_RESERVED = frozenset(
    [
        "writers",
        "writer",
        "expected",
        "now",
        "least",
        "book",
        "entry",
        "until_",
        "last",
        "recorded",
        "clock",
        "result",
        "unchanged",
        "expiry",
        "record",
        "ok",
        "sample",
        "other",
        "failed",
        "refused",
        "undo",
    ]
)

# The code every write script shares, straight-line: ``failed(x)`` and ``refused(x)`` are
# inlined (a closure costs Redis time on every call). A chained write (ARGV[4], the entry
# it expects, is there: see writers.py) reads one field and writes one: HMGET, HSET. Any
# other write reads its entry and the hash's expiry (HMGET replies false for a missing
# field), the clock, and checks the proposed expiry. ARGV[3] is the entry's lifetime,
# negative when an earlier send of the call may still arrive.
_FAILED = "(type(X) == 'table' and X.err ~= nil)"
_REFUSED = (
    "redis.error_reply(((string.find(X.err, 'NOPERM', 1, true) "
    "or string.find(X.err, \"can't run\", 1, true)) and 'RCHPLAIN ' or '') .. X.err)"
)
_CALLS = re.compile(r"\b(failed|refused)\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _inlined(lua: str) -> str:
    """``lua`` with ``failed(x)`` and ``refused(x)`` written out."""
    return _CALLS.sub(
        lambda m: (_FAILED if m.group(1) == "failed" else _REFUSED).replace("X", m.group(2)), lua
    )


_PRELUDE = """
local writer, record, expected = ARGV[1], ARGV[2], ARGV[4]
local entry, until_ = false, false
if expected ~= '' then
  -- HMGET, not HGET: the minimal ACL user (README) may run HMGET only
  local got = redis.pcall('HMGET', writers, writer)
  if got.err then return refused(got) end
  entry = got[1]
  if entry ~= expected then
    got = redis.pcall('HMGET', writers, '~')
    if got.err then return refused(got) end
    until_, expected = got[1], false
  end
else
  local book = redis.pcall('HMGET', writers, writer, '~')
  if book.err then return refused(book) end
  entry, until_, expected = book[1], book[2], false
end
if entry and not expected then
  local last, recorded = string.match(entry, '^(%x+),%d+,(.*)$')
  if tonumber(last, 16) >= tonumber(string.match(record, '^%x+'), 16) then
    -- a re-send: rewrite the record so that WAIT on this connection covers the first copy
    redis.pcall('HSET', writers, writer, entry)
    return {0, __ON_RESEND__}
  end
end
"""

#: What ``undo()`` in a script's ``apply`` stands for (inlined). HSET ran, so it is
#: permitted: a tombstone never matches a re-send.
_UNDO = (
    "(function() if entry then redis.pcall('HSET', writers, writer, entry) "
    "elseif until_ then redis.pcall('HSET', writers, writer, '0,0,') "
    "else redis.pcall('DEL', writers) end end)()"
)

_RECORD = """
if unchanged and tonumber(ARGV[3]) > 0 then return {2, result} end
local ok
if expected then
  -- chained: the expiry sent (the previous write's) still covers this write's window
  ok = redis.pcall('HSET', writers, writer, record .. result)
  if type(ok) == 'table' then return refused(ok) end
else
  local clock = redis.pcall('TIME')
  if clock.err then return refused(clock) end
  local now = tonumber(clock[1])
  local least = now + math.abs(tonumber(ARGV[3])) + 1
  local expiry = tonumber(string.match(record, ',(%d+),$'))
  if not expiry or expiry < least or expiry > least + __SPREAD__ then
    expiry = least
    record = string.match(record, '^%x+,') .. expiry .. ','
  end
  if not until_ or tonumber(until_) < expiry then
    ok = redis.pcall('HSET', writers, writer, record .. result, '~', expiry)
    if type(ok) == 'table' then return refused(ok) end
    ok = redis.pcall('EXPIRE', writers, expiry - now)
    if type(ok) == 'table' then __UNDO__ return refused(ok) end
  else
    ok = redis.pcall('HSET', writers, writer, record .. result)
    if type(ok) == 'table' then return refused(ok) end
  end
  if not entry and until_ then
    -- a new writer of a recent key: drop up to two entries whose own window has passed
    local sample = redis.pcall('HRANDFIELD', writers, 2, 'WITHVALUES')
    if not failed(sample) then
      for at = 1, #sample, 2 do
        local other = string.match(sample[at + 1], '^%x+,(%d+),')
        if other and tonumber(other) < now then redis.pcall('HDEL', writers, sample[at]) end
      end
    end
  end
end
if unchanged then return {2, result} end
""".replace("__SPREAD__", str(EXPIRY_SPREAD))


@dataclass(frozen=True, eq=False)
class WriteScript(Script):
    """A write script built by :func:`write_script`; :meth:`plan` makes its :class:`Plan`."""

    keys: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    rest: str | None = None

    def command(self, keys: Sequence[str], args: Sequence[Any]) -> Command:
        """The script call: ``keys`` as declared (the writers key of the first is added),
        ``args`` the declared arguments then the variadic rest."""
        if len(keys) != len(self.keys) or len(args) < len(self.args):
            raise ValueError(f"{self.name}: {len(keys)} keys, {len(args)} args given")
        if self.rest is None and len(args) != len(self.args):
            raise ValueError(f"{self.name} takes {len(self.args)} arguments")
        return Command.call(self, [*keys, writers_key_of(keys[0])], [WRITER, *args])

    def plan(
        self,
        route: str,
        keys: Sequence[str],
        args: Sequence[Any],
        parse: Callable[[list[Any]], T],
        *,
        plain: Callable[[], Plan[T]] | None,
    ) -> Plan[T]:
        """A re-sendable write: this script's call, routed by ``route``, with its plain twin
        (``None`` only for writes that have none: they then need scripts)."""
        return Plan((self.command(keys, args),), route, parse, True, True, plain)

    def plan_for(
        self,
        key: str,
        args: tuple[Any, ...],
        rest: Sequence[Any],
        parse: Callable[[list[Any]], T],
        *,
        plain: Callable[[], Plan[T]] | None,
    ) -> Plan[T]:
        """:meth:`plan` of a script whose one key is the history ``key`` (and its route),
        built in one step: the declared ``args``, then the variadic ``rest``."""
        if len(self.keys) != 1 or len(args) != len(self.args) or (rest and self.rest is None):
            raise ValueError(f"{self.name}: 1 key, {len(args)} + {len(rest)} args given")
        full = ("EVALSHA", self.sha, 2, key, writers_key_of(key), WRITER, *args, *rest)
        return Plan((Command(full, self, 5),), key, parse, True, True, plain)


def write_script(
    name: str,
    *,
    keys: Sequence[str],
    args: Sequence[str] = (),
    rest: str | None = None,
    decide: str,
    apply: str,
    on_resend: str = "recorded",
) -> WriteScript:
    """Build a write script from what it decides and what it changes (see the module doc).

    ``on_resend`` is the Lua expression a recognised re-send replies after ``0`` (default:
    the ``result`` the first copy recorded; ``recorded`` is that string).
    """
    for given in (*keys, *args, *([rest] if rest else [])):
        if not _NAME.match(given) or given in _RESERVED:
            raise ValueError(f"{name}: {given!r} is not a usable name")
    if not keys:
        raise ValueError(f"{name}: a write names at least the key it writes")
    lines = [f"-- {name}: built by redis_chat_history.operations.scripts"]
    lines += [f"local {key} = KEYS[{at}]" for at, key in enumerate(keys, 1)]
    lines.append(f"local writers = KEYS[{len(keys) + 1}]")
    first = TOKEN_ARGUMENTS + 1
    lines += [f"local {arg} = ARGV[{at}]" for at, arg in enumerate(args, first)]
    if rest:
        lines.append(f"local {rest} = {first + len(args)}")
    source = _inlined(
        "\n".join(
            [
                *lines,
                _PRELUDE.replace("__ON_RESEND__", on_resend).strip("\n"),
                "local result, unchanged = '', false",
                decide.strip("\n"),
                _RECORD.replace("__UNDO__", _UNDO).strip("\n"),
                apply.replace("undo()", _UNDO).strip("\n"),
                "",
            ]
        )
    )
    if re.search(r"\b(failed|refused)\(", source):
        raise ValueError(f"{name}: failed() and refused() take a plain name (they are inlined)")
    return WriteScript(name, source, tuple(keys), tuple(args), rest)


def plain_write(key: str, commands: Sequence[Command], parse: Callable[[list[Any]], T]) -> Plan[T]:
    """A write of plain commands (a script's twin for users who may not run scripts):
    never re-sent once it may have reached the server."""
    return Plan(tuple(commands), key, parse, True, False)


# ---------------------------------------------------------------------------
# Replies of a write script: {1, reply} (or a bare reply) applied, {0, on_resend} a
# recognised re-send, {2, result} nothing to change (not recorded).


def parse_result_int(replies: list[Any]) -> int:
    reply = replies[0]
    return reply if type(reply) is int else int(reply[1])


def parse_result_bool(replies: list[Any]) -> bool:
    reply = replies[0]
    return bool(reply if type(reply) is int else int(reply[1]))


# ---------------------------------------------------------------------------
# The registry of write operations


@dataclass(frozen=True)
class Write:
    """One write operation: its script and a sample plan on a given key.

    ``tests/test_exactly_once.py`` replays every sample's exact request after 1,000 other
    writes and checks the re-send is recognised and changes nothing; ``prepare`` (plain
    commands) gives the key a state where the sample changes something.
    """

    name: str
    script: WriteScript
    sample: Callable[[str], Plan[Any]]
    prepare: Callable[[str], list[tuple[Any, ...]]] = lambda key: []


#: Every write operation of the package, by name (the history's in messages.py).
WRITES: dict[str, Write] = {}


def register(write: Write) -> Write:
    """Add ``write`` to :data:`WRITES` (once per name)."""
    if WRITES.get(write.name, write) is not write:
        raise ValueError(f"a write named {write.name!r} is registered already")
    WRITES[write.name] = write
    return write
