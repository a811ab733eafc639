"""Users of the old class (an ACL without scripts): writes fall back to its plain commands,
never re-sent once they may have reached the server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from langchain_core.messages import HumanMessage

from redis_chat_history import RedisChatMessageHistory, RetryPolicy, WriteOutcomeUnknownError
from tests.proxy import ReplyDroppingProxy
from tests.servers import RedisProcess


def contents(history: RedisChatMessageHistory) -> list[str]:
    return [str(message.content) for message in history.messages]


OLD_CLASS_COMMANDS = "lpush lrange expire del info"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_user_of_the_old_class_keeps_working_with_plain_commands(
    redis7: RedisProcess,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ACL that let langchain_community's class work: writes fall back, one warning."""
    from langchain_community.chat_message_histories import (
        RedisChatMessageHistory as CommunityHistory,
    )

    caplog.set_level(logging.WARNING, logger="redis_chat_history")
    admin = redis7.client()
    admin.execute_command(
        "ACL", "SETUSER", "old", "on", ">pw", "resetkeys", "~message_store:*", "resetchannels",
        "-@all", *(f"+{command}" for command in OLD_CLASS_COMMANDS.split()),
    )  # fmt: skip
    url = f"redis://old:pw@127.0.0.1:{redis7.port}/0"
    try:
        history = RedisChatMessageHistory("legacy", url=url, ttl=600)
        other = RedisChatMessageHistory("legacy-2", url=url, ttl=600)
        if mode == "sync":
            history.add_messages([HumanMessage("one"), HumanMessage("two")])
            other.add_user_message("three")
            assert contents(history) == ["one", "two"]
            assert [str(m.content) for m in history.get_messages(limit=1)] == ["two"]
        else:

            async def scenario() -> list[str]:
                await history.aadd_messages([HumanMessage("one"), HumanMessage("two")])
                await other.aadd_messages([HumanMessage("three")])
                return [str(m.content) for m in await history.aget_messages()]

            assert asyncio.run(scenario()) == ["one", "two"]
        assert 590 < admin.ttl("message_store:legacy") <= 600
        old = CommunityHistory("legacy", url=url)
        assert [str(m.content) for m in old.messages] == ["one", "two"]
        warnings = [r.getMessage() for r in caplog.records if "plain commands" in r.getMessage()]
        assert len(warnings) == 1  # once per process
        assert "exactly-once" in warnings[0] and "atomic" in warnings[0]
        assert "pw" not in warnings[0].replace("pw@", "")  # no secret in it
    finally:
        admin.execute_command("ACL", "DELUSER", "old")
        admin.close()


def test_plain_write_with_a_lost_reply_is_not_resent(
    redis7: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = redis7.client()
    admin.execute_command(
        "ACL", "SETUSER", "old", "on", ">pw", "resetkeys", "~message_store:*", "resetchannels",
        "-@all", *(f"+{command}" for command in OLD_CLASS_COMMANDS.split()),
    )  # fmt: skip
    proxy = ReplyDroppingProxy(redis7.port)
    try:
        url = f"redis://old:pw@127.0.0.1:{proxy.port}/0"
        history = RedisChatMessageHistory("plain", url=url, retry=RetryPolicy(attempts=3))
        history.add_user_message("first")  # switches to plain writes
        proxy.drop_next_reply()
        with pytest.raises(WriteOutcomeUnknownError, match="may or may not have been applied"):
            history.add_user_message("second")
        assert [str(m.content) for m in history.messages] == ["first", "second"]  # applied once
    finally:
        proxy.close()
        admin.execute_command("ACL", "DELUSER", "old")
        admin.close()
