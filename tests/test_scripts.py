"""The write-script builder and the registry of writes, checked without a server.

What a declared script's Lua names (keys, arguments, the token's four arguments), how a
plan's kind decides whether it may be re-sent, and that every registered write has a
writer token and a plain twin that is never re-sent.
"""

from __future__ import annotations

import pytest

from redis_chat_history.operations import (
    WRITER,
    WRITES,
    Command,
    Plan,
    Write,
    count_plan,
    plain_write,
    register,
    stage_plan,
    write_script,
    writers_key,
)
from redis_chat_history.writers import TOKEN_ARGUMENTS

KEY = "message_store:s1"

RENAME = write_script(
    "rename_to_test",
    keys=("history", "target"),
    args=("ttl", "keep"),
    rest="values",
    decide="""
local length = redis.pcall('LLEN', history)
if failed(length) then return refused(length) end
result, unchanged = tostring(length), length == 0
""",
    apply="""
redis.call('RENAME', history, target)
return {1, length}
""",
)


def test_named_keys_and_arguments_are_numbered_after_the_token() -> None:
    source = RENAME.source
    assert TOKEN_ARGUMENTS == 4
    assert "local history = KEYS[1]\nlocal target = KEYS[2]\nlocal writers = KEYS[3]" in source
    assert "local ttl = ARGV[5]\nlocal keep = ARGV[6]\nlocal values = 7" in source
    # the record comes before the script's own changes, after its reads
    assert (
        source.index("LLEN")
        < source.index("HSET', writers, writer, record")
        < source.index("RENAME")
    )


def test_a_script_call_names_the_writers_key_and_carries_the_token_first() -> None:
    command = RENAME.command([KEY, KEY + "2"], [60, 0, b"a", b"b"])
    assert command.args[:6] == ("EVALSHA", RENAME.sha, 3, KEY, KEY + "2", writers_key(KEY))
    assert command.args[6] is WRITER and command.writer_at == 6
    assert command.args[7:] == (60, 0, b"a", b"b")
    with pytest.raises(ValueError, match="1 keys, 2 args"):
        RENAME.command([KEY], [60, 0])


@pytest.mark.parametrize("name", ["writers", "result", "now", "Bad", "1x", "a-b"])
def test_names_the_shared_code_uses_or_lua_cannot_hold_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a usable name"):
        write_script("x", keys=("history",), args=(name,), decide="", apply="return {1, 0}")


def test_idempotent_follows_from_the_kind() -> None:
    assert count_plan(KEY).idempotent  # a read
    written = RENAME.plan(KEY, [KEY, KEY + "2"], [0, 0], lambda r: r, plain=None)
    assert written.idempotent and written.has_writer and written.writes
    plain = plain_write(KEY, [Command(("LPUSH", KEY, b"x"))], lambda r: r)
    assert plain.writes and not plain.idempotent  # never re-sent once it may have arrived
    forgot = Plan((Command(("LPUSH", KEY, b"x")),), KEY, lambda r: r, writes=True)
    assert not forgot.idempotent  # no default makes a plain write re-sendable
    # a write that recognises its own re-send says so (transfer's length-checked staging)
    assert stage_plan(KEY, "0" * 16, [b"x"], before=0).idempotent


def test_every_registered_write_has_a_token_and_a_plain_twin_never_resent() -> None:
    assert {"append", "delete_last", "replace", "delete", "expire", "persist"} <= set(WRITES)
    for write in WRITES.values():
        plan = write.sample(KEY)
        assert plan.writes and plan.idempotent and plan.has_writer, write.name
        (command,) = plan.commands
        assert command.script is write.script
        assert writers_key(KEY) in command.args[3 : 3 + command.args[2]]
        assert plan.plain is not None, write.name
        twin = plan.plain()
        assert twin.writes and not twin.idempotent and not twin.has_writer, write.name


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="registered already"):
        register(Write("append", RENAME, lambda key: count_plan(key)))
