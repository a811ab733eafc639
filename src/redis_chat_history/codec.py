"""How messages are encoded into list elements and decoded back.

The stored form is langchain_community's: a UTF-8 JSON object
``{"type": ..., "data": {...}}`` that ``langchain_core.messages.messages_from_dict``
reads. Two differences keep it smaller while staying readable by the old class:

* fields equal to their default (``additional_kwargs={}``, ``name=None``, the
  redundant ``data.type`` ...) are left out: pydantic fills them back in, and the
  message validators treat a missing field exactly like an empty one;
* JSON is compact and UTF-8 (orjson), not ASCII-escaped with spaces.

With ``compress=True`` an element is zlib-compressed when that makes it smaller.
A compressed element starts with the zlib header byte ``0x78`` (``'x'``), which no
JSON object starts with, so readers recognise both forms by themselves. The old
class cannot read compressed elements.

Example::

    >>> from langchain_core.messages import HumanMessage
    >>> raw = encode_message(HumanMessage("hi"))
    >>> raw
    b'{"type":"human","data":{"content":"hi"}}'
    >>> decode_element(raw) == HumanMessage("hi")
    True
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from typing import Any

import orjson
from langchain_core.messages import BaseMessage, messages_from_dict
from pydantic import BaseModel

from redis_chat_history.construct import construct_message
from redis_chat_history.errors import (
    CorruptHistoryError,
    InvalidArgumentTypeError,
    MessageEncodeError,
)

#: Message types ``messages_from_dict`` knows; anything else is not a stored message.
KNOWN_TYPES = frozenset(
    {
        "human",
        "ai",
        "system",
        "chat",
        "function",
        "tool",
        "remove",
        "AIMessageChunk",
        "HumanMessageChunk",
        "FunctionMessageChunk",
        "ToolMessageChunk",
        "SystemMessageChunk",
        "ChatMessageChunk",
    }
)

_ZLIB_HEADER = 0x78  # first byte of every zlib stream with a 32 KiB window ('x')
_COMPRESS_MIN_BYTES = 96  # below this zlib's 6-byte frame rarely pays off
_COMPRESS_LEVEL = 6
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS
_UNSET = object()

logger = logging.getLogger("redis_chat_history")

_field_defaults_cache: dict[type[BaseModel], dict[str, Any]] = {}


def _field_defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """Default value of every field of ``cls`` that has one (computed once per class)."""
    cached = _field_defaults_cache.get(cls)
    if cached is None:
        cached = {}
        for name, field in cls.model_fields.items():
            if not field.is_required():
                cached[name] = field.get_default(call_default_factory=True, validated_data={})
        _field_defaults_cache[cls] = cached
    return cached


def _json_default(value: Any) -> Any:
    # message_to_dict runs model_dump, which turns nested pydantic models into dicts.
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def message_payload(message: BaseMessage) -> dict[str, Any]:
    """The ``{"type", "data"}`` dict stored for ``message``, without default-valued fields.

    Example::

        >>> message_payload(HumanMessage("hi", id="m1"))
        {'type': 'human', 'data': {'content': 'hi', 'id': 'm1'}}
    """
    defaults = _field_defaults(type(message))
    data: dict[str, Any] = {}
    for name, value in message.__dict__.items():
        default = defaults.get(name, _UNSET)
        if default is not _UNSET and type(value) is type(default) and value == default:
            continue
        data[name] = value
    extra = message.__pydantic_extra__
    if extra:
        data.update(extra)
    return {"type": message.type, "data": data}


def encode_message(message: BaseMessage, *, compress: bool = False, position: int = 0) -> bytes:
    """Serialise one message into the bytes stored as a list element.

    ``position`` is the message's index in its batch, used in error messages.
    Raises :class:`InvalidArgumentTypeError` for a non-message and
    :class:`MessageEncodeError` for content that JSON cannot hold.
    """
    if not isinstance(message, BaseMessage):
        raise InvalidArgumentTypeError(
            f"message at position {position} is a {type(message).__name__}, "
            "not a langchain_core BaseMessage"
        )
    payload = message_payload(message)
    try:
        raw = orjson.dumps(payload, default=_json_default, option=_ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        # orjson refuses lone surrogates and integers beyond 64 bits; the stdlib
        # json module (what the old class used) escapes or writes them.
        try:
            raw = json.dumps(
                payload, default=_json_default, ensure_ascii=True, separators=(",", ":")
            ).encode("ascii")
        except (TypeError, ValueError) as error:
            raise MessageEncodeError(
                f"message at position {position} ({message.type}) cannot be serialised "
                f"to JSON: {error}",
                position=position,
            ) from error
    if compress and len(raw) >= _COMPRESS_MIN_BYTES:
        packed = zlib.compress(raw, _COMPRESS_LEVEL)
        if len(packed) < len(raw):
            return packed
    return raw


def encode_messages(messages: Sequence[BaseMessage], *, compress: bool = False) -> list[bytes]:
    """Encode a batch, oldest first; raises before anything is sent if one message fails."""
    if isinstance(messages, (str, bytes, BaseMessage)) or not isinstance(messages, Sequence):
        raise InvalidArgumentTypeError(
            f"messages must be a sequence of BaseMessage, got {type(messages).__name__}"
        )
    return [
        encode_message(message, compress=compress, position=position)
        for position, message in enumerate(messages)
    ]


def _load_json(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # The old class wrote with json.dumps, which may escape lone surrogates;
        # orjson rejects those, the stdlib accepts them.
        return json.loads(raw)


def decode_payload(raw: bytes | str) -> dict[str, Any]:
    """Parse a stored element (JSON or compressed JSON) into its ``{"type", "data"}`` dict.

    Raises ``ValueError`` (or a subclass) when the element is not a stored message.
    """
    if isinstance(raw, bytes) and raw[:1] == b"x":
        try:
            raw = zlib.decompress(raw)
        except zlib.error as error:
            raise ValueError(f"not valid compressed data ({error})") from error
    try:
        payload = _load_json(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"not valid JSON ({error})") from error
    if not isinstance(payload, dict):
        raise ValueError(f"JSON {type(payload).__name__}, not an object")
    kind = payload.get("type")
    if kind not in KNOWN_TYPES:
        raise ValueError(f"unknown message type {kind!r}")
    if not isinstance(payload.get("data"), dict):
        raise ValueError("field 'data' is missing or not an object")
    return payload


def decode_element(raw: bytes | str) -> BaseMessage:
    """Decode one stored element into a message (``ValueError`` when it is not one)."""
    payload = decode_payload(raw)
    message = construct_message(payload)
    if message is not None:
        return message
    try:
        return messages_from_dict([payload])[0]
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"invalid {payload['type']} message ({_first_line(error)})") from error


def decode_newest_first(
    elements: Sequence[bytes | str], *, key: str, skip_corrupt: bool = False
) -> list[BaseMessage]:
    """Decode an LRANGE reply (newest first) into messages, oldest first.

    A bad element raises :class:`CorruptHistoryError` naming ``key`` and its LRANGE
    index; with ``skip_corrupt`` it is left out and a warning is logged instead.
    """
    messages: list[BaseMessage] = []
    for index in range(len(elements) - 1, -1, -1):
        try:
            messages.append(decode_element(elements[index]))
        except ValueError as error:
            description = (
                f"{key!r}: list element {index} (LRANGE index, 0 = newest) is not a "
                f"stored message: {error}"
            )
            if not skip_corrupt:
                raise CorruptHistoryError(description, key=key, index=index) from error
            logger.warning("skipping corrupt element: %s", description)
    return messages


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
