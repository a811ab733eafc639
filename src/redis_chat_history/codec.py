"""How messages are encoded into list elements and decoded back.

The stored form is langchain_community's: a UTF-8 JSON object
``{"type": ..., "data": {...}}`` that ``langchain_core.messages.messages_from_dict``
reads. Two differences keep it smaller while staying readable by the old class:

* fields equal to their default (``additional_kwargs={}``, ``name=None``, the
  redundant ``data.type`` ...) are left out: pydantic fills them back in, and the
  message validators treat a missing field exactly like an empty one;
* JSON is compact and UTF-8 (orjson), not ASCII-escaped with spaces.

Values round-trip exactly, as with the old class's ``json`` module: a message holding
what orjson cannot write exactly (integers beyond 64 bits, lone surrogates, NaN and
infinities, which orjson would write as ``null``) is written by the stdlib in the old
class's own form (``{"type": "human", ...``, ASCII, with spaces). Readers parse the
compact form, which only orjson writes, with orjson; any other form (the old class's,
or the fallback's) with orjson too unless it holds a run of 19 digits, which may be an
integer orjson would turn into a float: then with the stdlib.

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
import math
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

_COMPRESS_MIN_BYTES = 96  # below this zlib's 6-byte frame rarely pays off
_COMPRESS_LEVEL = 6
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS
_UNSET = object()
#: How every stored element this package writes with orjson starts (see _load_json).
_COMPACT_PREFIX = b'{"type":"'
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_NINETEEN_ZEROS = b"0" * 19

logger = logging.getLogger("redis_chat_history")

_field_defaults_cache: dict[type[BaseModel], dict[str, Any]] = {}
#: Classes found to be BaseMessage subclasses (by encode_message).
_message_classes: set[type] = set()


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


def _has_non_finite(value: Any) -> bool:
    """True when a float NaN or infinity is somewhere in ``value`` (orjson writes them as null)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return True
        elif kind is dict:
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
        elif isinstance(item, BaseModel):
            pending.append(item.model_dump())
        elif isinstance(item, float) and not math.isfinite(item):
            return True
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return False


def _floats_from(kind: str, data: dict[str, Any]) -> int | None:
    """Where a float may start in the JSON of a payload: None when it holds only strings.

    orjson writes NaN as ``null``; searching the output for it costs ~0.7 us per KB, so
    the search skips what cannot hold a float: a string ``content`` written first starts
    after ``{"type":"<kind>","data":{"content":"`` and takes at least a byte per character.
    """
    content_length = 0
    only_strings = True
    for name, value in data.items():
        if type(value) is not str:
            only_strings = False
        elif not content_length and name == "content":
            content_length = len(value)
    if only_strings:
        return None
    if next(iter(data)) != "content":
        return 0
    return len('{"type":"","data":{"content":""') + len(kind) + content_length


def dumps_exact(value: Any, *, floats_from: int | None = 0) -> bytes:
    """JSON for ``value`` that reads back equal (see the module docstring).

    orjson's compact UTF-8 when it writes the value exactly; else the stdlib's ASCII
    form with spaces (the old class's), which keeps big integers, lone surrogates, NaN
    and infinities. Raises ``TypeError`` or ``ValueError`` for what JSON cannot hold.
    ``floats_from``: the offset in orjson's output before which no float can be (None:
    the value holds none), from :func:`_floats_from`.

    Example::

        >>> dumps_exact({"n": 2**70})
        b'{"n": 1180591620717411303424}'
    """
    try:
        raw = orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        pass  # a big integer or a lone surrogate: the stdlib writes them
    else:
        # a 'null' in the output may be a NaN or an infinity that orjson wrote so
        if floats_from is None or raw.find(b"null", floats_from) < 0:
            return raw
        if not _has_non_finite(value):
            return raw
    return json.dumps(value, default=_json_default, ensure_ascii=True).encode("ascii")


def compress_element(raw: bytes) -> bytes:
    """``raw`` zlib-compressed when that makes it smaller (see the module docstring)."""
    if len(raw) >= _COMPRESS_MIN_BYTES:
        packed = zlib.compress(raw, _COMPRESS_LEVEL)
        if len(packed) < len(raw):
            return packed
    return raw


def encode_message(message: BaseMessage, *, compress: bool = False, position: int = 0) -> bytes:
    """Serialise one message into the bytes stored as a list element.

    ``position`` is the message's index in its batch, used in error messages.
    Raises :class:`InvalidArgumentTypeError` for a non-message and
    :class:`MessageEncodeError` for content that JSON cannot hold.
    """
    kind = type(message)
    if kind not in _message_classes:  # isinstance on pydantic's ABC metaclass: ~0.3 µs
        if not isinstance(message, BaseMessage):
            raise InvalidArgumentTypeError(
                f"message at position {position} is a {kind.__name__}, "
                "not a langchain_core BaseMessage"
            )
        _message_classes.add(kind)
    payload = message_payload(message)
    try:
        raw = dumps_exact(payload, floats_from=_floats_from(message.type, payload["data"]))
    except (TypeError, ValueError) as error:
        raise MessageEncodeError(
            f"message at position {position} ({message.type}) cannot be serialised "
            f"to JSON: {error}",
            position=position,
        ) from error
    return compress_element(raw) if compress else raw


def encode_messages(messages: Sequence[BaseMessage], *, compress: bool = False) -> list[bytes]:
    """Encode a batch, oldest first; raises before anything is sent if one message fails."""
    # a list (what callers pass) is a sequence of no other kind: two ABC checks less
    if type(messages) is not list and (
        isinstance(messages, (str, bytes, BaseMessage)) or not isinstance(messages, Sequence)
    ):
        raise InvalidArgumentTypeError(
            f"messages must be a sequence of BaseMessage, got {type(messages).__name__}"
        )
    return [
        encode_message(message, compress=compress, position=position)
        for position, message in enumerate(messages)
    ]


def _may_hold_big_int(raw: bytes | str) -> bool:
    """True when ``raw`` has a run of 19 digits: maybe an integer orjson reads as a float.

    orjson reads integers within [-2**63, 2**64) exactly; anything outside has 19 digits
    or more. Digits inside strings also match (then the stdlib reads it, equally exact).
    """
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    return data.translate(_DIGITS_AS_ZERO).find(_NINETEEN_ZEROS) > -1


def loads_exact(raw: bytes | str) -> Any:
    """Parse JSON exactly as the stdlib does, with orjson's speed where that is the same.

    The stdlib reads what orjson refuses (NaN, Infinity, escaped lone surrogates: the old
    class's ``json.dumps`` writes them) and integers beyond 64 bits (orjson reads them as
    floats). Raises ``ValueError`` for text that is not JSON.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
    if _may_hold_big_int(raw):
        return json.loads(raw)
    return value


def _load_json(raw: bytes | str) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
    # the compact form is orjson's own output: it holds nothing orjson reads inexactly
    if raw[:9] == _COMPACT_PREFIX:  # (a str never equals it)
        return value
    return json.loads(raw) if _may_hold_big_int(raw) else value


def element_json(raw: bytes | str) -> bytes | str:
    """The JSON text of a stored element (decompressed when it is compressed)."""
    if isinstance(raw, bytes) and raw[:1] == b"x":
        try:
            return zlib.decompress(raw)
        except zlib.error as error:
            raise ValueError(f"not valid compressed data ({error})") from error
    return raw


def decode_payload(raw: bytes | str) -> dict[str, Any]:
    """Parse a stored element (JSON or compressed JSON) into its ``{"type", "data"}`` dict.

    Raises ``ValueError`` (or a subclass) when the element is not a stored message.
    """
    if isinstance(raw, bytes) and raw[:1] == b"x":  # (element_json, inlined: the read path)
        raw = element_json(raw)
    try:
        payload = _load_json(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"not valid JSON ({error})") from error
    return check_payload(payload)


def check_payload(payload: Any) -> dict[str, Any]:
    """``payload`` when it has the shape of a stored message, else ``ValueError``.

    A dict with a known ``type`` and an object ``data`` (stored elements, export lines);
    :func:`message_from_payload` then checks the fields.
    """
    if not isinstance(payload, dict):
        raise ValueError(f"JSON {type(payload).__name__}, not an object")
    kind = payload.get("type")
    if type(kind) is not str or kind not in KNOWN_TYPES:
        raise ValueError(f"unknown message type {kind!r}")
    if not isinstance(payload.get("data"), dict):
        raise ValueError("field 'data' is missing or not an object")
    return payload


def message_from_payload(payload: dict[str, Any]) -> BaseMessage:
    """The message of a ``{"type", "data"}`` dict (``ValueError`` when it is not one)."""
    message = construct_message(payload)
    if message is not None:
        return message
    try:
        return messages_from_dict([payload])[0]
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"invalid {payload['type']} message ({_first_line(error)})") from error


def decode_element(raw: bytes | str) -> BaseMessage:
    """Decode one stored element into a message (``ValueError`` when it is not one)."""
    payload = decode_payload(raw)
    message = construct_message(payload)  # (message_from_payload, inlined: the read path)
    return message if message is not None else message_from_payload(payload)


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
