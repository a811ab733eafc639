"""The history class: the seed's API exactly, windowed reads, one atomic round trip per write."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import redis.connection
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from redis_chat_history import (
    ChatHistoryError,
    InvalidArgumentTypeError,
    MessageEncodeError,
    RedisChatMessageHistory,
    RedisChatStore,
)
from redis_chat_history.settings import DEFAULT_URL, OPTION_DEFAULTS, SettingsAttributes
from tests.servers import RedisProcess


@contextlib.contextmanager
def logged_commands(server: RedisProcess) -> Iterator[list[list[str]]]:
    """Every command the server runs meanwhile (SLOWLOG with a zero threshold)."""
    client = server.client()
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 10000)
    client.slowlog_reset()
    commands: list[list[str]] = []
    try:
        yield commands
        for entry in reversed(client.slowlog_get(10000)):
            words = (
                [
                    w.decode(errors="replace") if isinstance(w, bytes) else str(w)
                    for w in entry["command"].split()
                ]
                if isinstance(entry["command"], bytes)
                else str(entry["command"]).split()
            )
            if words and words[0].upper() not in {"SLOWLOG", "CONFIG"}:
                commands.append(words)
    finally:
        client.config_set("slowlog-log-slower-than", 10000)
        client.close()


def test_signature_is_the_seeds() -> None:
    assert issubclass(RedisChatMessageHistory, BaseChatMessageHistory)
    parameters = inspect.signature(RedisChatMessageHistory).parameters
    assert list(parameters)[:4] == ["session_id", "url", "key_prefix", "ttl"]
    assert parameters["url"].default == "redis://localhost:6379/0"
    assert parameters["key_prefix"].default == "message_store:"
    assert parameters["ttl"].default is None
    for name in ("client", "async_client", "max_messages"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default is None
    for name in (
        "messages",
        "add_message",
        "add_messages",
        "add_user_message",
        "add_ai_message",
        "clear",
        "aget_messages",
        "aadd_messages",
        "aclear",
        "get_messages",
        "count",
        "acount",
    ):
        assert hasattr(RedisChatMessageHistory, name), name


def test_messages_oldest_first_and_key(redis_url: str) -> None:
    history = RedisChatMessageHistory("s1", url=redis_url, key_prefix="chat:")
    assert history.key == "chat:s1"
    history.add_user_message("hi")
    history.add_ai_message("hello")
    history.add_message(SystemMessage("note"))
    assert [m.content for m in history.messages] == ["hi", "hello", "note"]
    assert [type(m) for m in history.messages] == [HumanMessage, AIMessage, SystemMessage]
    with pytest.raises(NotImplementedError):
        history.messages = []  # type: ignore[misc]
    history.clear()
    assert history.messages == [] and len(history) == 0


def test_windowed_read_costs_o_limit(redis_url: str, redis_server: RedisProcess) -> None:
    history = RedisChatMessageHistory("long", url=redis_url)
    history.add_messages([HumanMessage(str(i)) for i in range(2000)])
    with logged_commands(redis_server) as commands:
        newest = history.get_messages(limit=5)
        assert history.count() == 2000 and len(history) == 2000
    assert [m.content for m in newest] == ["1995", "1996", "1997", "1998", "1999"]
    assert ["LRANGE", "message_store:long", "0", "4"] in commands
    assert sum(1 for c in commands if c[0] == "LLEN") == 2
    assert history.get_messages(limit=0) == []
    assert len(history.get_messages(limit=5000)) == 2000
    with pytest.raises(ValueError, match="limit"):
        history.get_messages(limit=-1)


@contextlib.contextmanager
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every request the client writes to a socket (one per round trip)."""
    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def spy(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(b"".join(command) if isinstance(command, list) else command)
        original(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", spy)
        yield sent


def test_one_round_trip_per_write(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    history = RedisChatMessageHistory("w", url=redis_url, ttl=60, max_messages=100)
    history.add_user_message("warm up")  # connects and loads the script once
    with sends(monkeypatch) as sent:
        history.add_messages([HumanMessage(str(i)) for i in range(50)])
    assert len(sent) == 1 and b"EVALSHA" in sent[0]
    with sends(monkeypatch) as sent:
        history.add_messages([])
    assert sent == []  # an empty batch makes no round trip


def test_ttl_refreshes_on_each_write(redis_url: str, redis_server: RedisProcess) -> None:
    client = redis_server.client()
    try:
        history = RedisChatMessageHistory("t", url=redis_url, ttl=100)
        history.add_user_message("a")
        client.expire(history.key, 5)
        history.add_ai_message("b")
        assert 95 < client.ttl(history.key) <= 100
        for ttl in (None, 0):
            forever = RedisChatMessageHistory(f"f{ttl}", url=redis_url, ttl=ttl)
            forever.add_user_message("x")
            assert client.ttl(forever.key) == -1
    finally:
        client.close()


def test_max_messages_trims_in_the_same_write(redis_url: str, redis_server: RedisProcess) -> None:
    history = RedisChatMessageHistory("m", url=redis_url, max_messages=3)
    history.add_messages([HumanMessage(str(i)) for i in range(10)])
    assert [m.content for m in history.messages] == ["7", "8", "9"]
    with logged_commands(redis_server) as commands:
        history.add_user_message("10")
    assert ["LTRIM", "message_store:m", "0", "2"] in commands  # inside the one script
    assert [m.content for m in history.messages] == ["8", "9", "10"]


def test_unserialisable_message_names_position_and_writes_nothing(redis_url: str) -> None:
    history = RedisChatMessageHistory("bad", url=redis_url)
    batch: list[Any] = [
        HumanMessage("fine"),
        AIMessage("broken", additional_kwargs={"handle": object()}),
        HumanMessage("never"),
    ]
    with pytest.raises(MessageEncodeError) as raised:
        history.add_messages(batch)
    assert raised.value.position == 1 and "position 1" in str(raised.value)
    assert isinstance(raised.value, TypeError)
    assert history.count() == 0


def test_non_message_is_a_type_error(redis_url: str) -> None:
    history = RedisChatMessageHistory("bad", url=redis_url)
    with pytest.raises(TypeError, match="position 1 is a dict"):
        history.add_messages([HumanMessage("ok"), {"role": "user"}])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        history.add_message("plain text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence"):
        history.add_messages(HumanMessage("not in a list"))  # type: ignore[arg-type]
    assert history.count() == 0


def test_big_batch_is_atomic_and_ordered(redis_url: str) -> None:
    history = RedisChatMessageHistory("batch", url=redis_url)
    history.add_messages([HumanMessage(str(i)) for i in range(2500)])  # > one LPUSH chunk
    assert [m.content for m in history.messages] == [str(i) for i in range(2500)]


def test_user_and_ai_messages_of_the_wrong_type_are_package_type_errors(redis_url: str) -> None:
    """Not pydantic's ValidationError: a ChatHistoryError and a TypeError naming the method."""
    history = RedisChatMessageHistory("wrong", url=redis_url)
    cases: list[tuple[Any, Any, str]] = [
        (history.add_user_message, 123, r"add_user_message\(\) takes a str, .* got int"),
        (history.add_ai_message, None, r"add_ai_message\(\) takes a str, .* got NoneType"),
        (history.add_user_message, AIMessage("x"), "HumanMessage, got AIMessage"),
        (history.add_ai_message, [1], r"add_ai_message\(\) takes .*: Input should be"),
    ]
    for method, value, text in cases:
        with pytest.raises(InvalidArgumentTypeError, match=text) as raised:
            method(value)
        assert isinstance(raised.value, ChatHistoryError) and isinstance(raised.value, TypeError)
        assert raised.value.__cause__ is None  # no pydantic chain in the traceback
    history.add_user_message([{"type": "text", "text": "blocks"}])  # content blocks still work
    assert history.messages == [HumanMessage([{"type": "text", "text": "blocks"}])]


def test_url_none_is_the_default_url() -> None:
    """``url=os.environ.get("REDIS_URL")`` with the variable unset means the default."""
    for history in (
        RedisChatMessageHistory("s", url=None),
        RedisChatMessageHistory("s", None, "p:", 5),
        RedisChatMessageHistory("s"),
    ):
        assert history.url == "redis://localhost:6379/0" == DEFAULT_URL
    assert RedisChatStore(url=None).url == RedisChatStore().url == DEFAULT_URL  # no I/O is done


def test_history_and_store_share_one_signature_and_one_set_of_attributes() -> None:
    history = inspect.signature(RedisChatMessageHistory).parameters
    store = inspect.signature(RedisChatStore).parameters
    public = [name for name in history if not name.startswith("_")]
    assert public == ["session_id", *store]
    assert list(store)[3:] == list(OPTION_DEFAULTS)  # spelled out for help(), from Options
    for name, default in OPTION_DEFAULTS.items():
        assert history[name].default == store[name].default == default
        assert history[name].kind is store[name].kind is inspect.Parameter.KEYWORD_ONLY
    # Properties are declared once, in settings.py, not per class.
    shared = {n for n, v in vars(SettingsAttributes).items() if isinstance(v, property)}
    assert {"key_prefix", "ttl", "max_messages", "compress", "skip_corrupt", "url"} <= shared
    for cls in (RedisChatMessageHistory, RedisChatStore):
        assert issubclass(cls, SettingsAttributes)
        assert not shared & set(vars(cls)), shared & set(vars(cls))
        with pytest.raises(InvalidArgumentTypeError, match=f"{cls.__name__}.*'colour'"):
            cls(url="redis://127.0.0.1:1/0", colour="blue", **({"session_id": "s"} if cls is RedisChatMessageHistory else {}))  # type: ignore[call-arg]  # fmt: skip
    store_object = RedisChatStore(None, "p:", 7, max_messages=3, compress=True, skip_corrupt=True)
    history_object = store_object.history("s")
    for name in ("key_prefix", "ttl", "max_messages", "compress", "skip_corrupt", "url"):
        assert getattr(history_object, name) == getattr(store_object, name), name
    assert (store_object.ttl, store_object.max_messages, store_object.display) == (
        7,
        3,
        DEFAULT_URL,
    )
