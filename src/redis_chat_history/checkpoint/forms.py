"""The stored forms of the checkpointer's values, records and rows (server-free).

A value is its serializer's ``type\\0bytes``, deflated against :mod:`.zdict`'s dictionary
when that is smaller. Names LangGraph repeats in every checkpoint are stored short: its
own channels (``messages`` is ``!m``, ``branch:to:<node>`` is ``!b<node>``) and the
saver's channel versions (``000000000297.24ca609dbe`` is ``^297.24ca609dbe``); every other
name is stored as is (one starting with the marker escaped), so each comes back exactly.

Example::

    >>> channel_name(channel_code("branch:to:model"))
    'branch:to:model'
    >>> version_of(version_text("000000000297.24ca609dbe"))
    '000000000297.24ca609dbe'
"""

from __future__ import annotations

import re
import uuid
import zlib
from typing import Any

from redis_chat_history.checkpoint.zdict import deflate, inflate

SEP = "\x00"
#: A value that is the oldest n messages of a segment: ``\\1r\\0<seg>:<n>``.
REF = b"\x01r\x00"
EMPTY = ("empty", b"")
_EMPTY = b"empty\x00"
#: LangGraph's channels, stored short (the scripts know ``!m``: the history's channel).
_CHANNELS = {"messages": "!m", "__start__": "!s", "__pregel_tasks": "!t", "__root__": "!r"}
_NAMES = {code: name for name, code in _CHANNELS.items()}
_BRANCH = "branch:to:"
#: The saver's versions (RedisCheckpointSaver.get_next_version), stored without zeros.
_SAVER_VERSION = re.compile(r"(\d{12})\.([0-9a-f]{10})")


def channel_code(channel: str) -> str:
    """A channel's name as stored (read back by :func:`channel_name`)."""
    code = _CHANNELS.get(channel)
    if code is not None:
        return code
    if channel.startswith(_BRANCH):
        return "!b" + channel[len(_BRANCH) :]
    return "!" + channel if channel[:1] == "!" else channel


def channel_name(code: str) -> str:
    if code[:1] != "!":
        return code
    if code[:2] == "!!":
        return code[1:]
    if code[:2] == "!b":
        return _BRANCH + code[2:]
    return _NAMES[code]


#: Values at least this long are stored deflated (against :mod:`.zdict`'s dictionary)
#: when that makes them smaller: checkpoints, metadata and messages repeat its shapes.
COMPRESS_FROM = 24
_DEFLATED = b"d1+\x00"
_ZLIB = "z+"


def pack(typed: tuple[str, bytes]) -> bytes:
    """A serializer's ``(type, bytes)`` as stored: ``type\\0bytes``, or ``d1+\\0`` and
    that deflated."""
    kind, data = typed
    plain = kind.encode() + b"\x00" + data
    if len(data) >= COMPRESS_FROM:
        packed = deflate(plain)
        if len(packed) + len(_DEFLATED) < len(plain):
            return _DEFLATED + packed
    return plain


def unpack(raw: bytes) -> tuple[str, bytes]:
    if raw.startswith(_DEFLATED):
        raw = inflate(raw[len(_DEFLATED) :])
    kind, _, data = raw.partition(b"\x00")
    text = kind.decode()
    if text.startswith(_ZLIB):  # (the first layout's)
        return text[len(_ZLIB) :], zlib.decompress(data)
    return text, data


def version_text(version: Any) -> str:
    """A channel version as stored (names value fields; read back by :func:`version_of`)."""
    if isinstance(version, int) and not isinstance(version, bool):
        return f"#{version}"
    if isinstance(version, float):
        return f"~{version!r}"
    text = str(version)
    saver = _SAVER_VERSION.fullmatch(text)
    if saver is not None:
        return f"^{int(saver.group(1))}.{saver.group(2)}"
    return "'" + text if text[:1] in ("#", "~", "'", "=", "^") else text


def version_of(text: str) -> Any:
    if text[:1] == "#":
        return int(text[1:])
    if text[:1] == "~":
        return float(text[1:])
    if text[:1] == "^":
        number, _, random = text[1:].partition(".")
        return f"{int(number):012}.{random}"
    return text[1:] if text[:1] == "'" else text


def blob_field(ns: str, channel: str, version: Any) -> str:
    """Names a channel value a put gives (read by ``put_plan``: ``version\\0channel``)."""
    return f"{version_text(version)}{SEP}{channel_code(channel)}"


def writes_field(ns: str, checkpoint_id: str) -> str:
    return f"w{SEP}{ns}{SEP}{checkpoint_id}"


def versions_list(versions: dict[str, Any]) -> str:
    """The channel versions of a checkpoint as ``channel\\0version\\0`` pairs (read by
    Lua; both stored short), a version already listed given as ``=k`` (that of pair k,
    from 1)."""
    parts: list[str] = []
    first: dict[str, int] = {}
    for at, (channel, version) in enumerate(versions.items(), 1):
        text, code = version_text(version), channel_code(channel)
        if text in first:
            parts.append(f"{code}{SEP}={first[text]}{SEP}")
        else:
            first[text] = at
            parts.append(f"{code}{SEP}{text}{SEP}")
    return "".join(parts)


def task_code(task_id: str, idx: int) -> bytes:
    """A write's row name ``task\\0idx``, a task id that is a uuid as its 16 bytes
    (after ``\\1``; read back by :func:`task_of`)."""
    try:
        if str(uuid.UUID(task_id)) == task_id:
            return b"\x01" + uuid.UUID(task_id).bytes + f"\x00{idx}".encode()
    except ValueError:
        pass
    text = "\x02" + task_id if task_id[:1] in ("\x01", "\x02") else task_id
    return f"{text}\x00{idx}".encode("utf-8", "surrogateescape")


def task_of(suffix: str) -> tuple[str, int]:
    """(task id, idx) of a row name as read (decoded with ``surrogateescape``)."""
    raw = suffix.encode("utf-8", "surrogateescape")
    if raw[:1] == b"\x01" and len(raw) > 18 and raw[17:18] == b"\x00":
        return str(uuid.UUID(bytes=raw[1:17])), int(raw[18:])
    text, _, idx = suffix.rpartition("\x00")
    return (text[1:] if text[:1] == "\x02" else text), int(idx)


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _record_head(parent_id: str, versions: dict[str, Any]) -> bytes:
    listed = versions_list(versions).encode("utf-8", "surrogateescape")
    return f"{parent_id}\x00{len(listed)}\x00".encode() + listed


def pack_record(
    parent_id: str, versions: dict[str, Any], metadata: bytes, checkpoint: bytes
) -> bytes:
    """A checkpoint as stored: ``parent\\0<n>\\0<blob list><m>\\0<metadata><checkpoint>``
    (metadata and checkpoint each as :func:`pack` stores them)."""
    return (
        _record_head(parent_id, versions) + f"{len(metadata)}\x00".encode() + metadata + checkpoint
    )


def pack_record_typed(
    parent_id: str,
    versions: dict[str, Any],
    metadata: tuple[str, bytes],
    checkpoint: tuple[str, bytes],
) -> bytes:
    """:func:`pack_record` of the serializer's ``(type, bytes)`` of both, deflated together
    when that is smaller: ``...+<m>\\0d1+\\0<deflated>``, whose first ``m`` inflated bytes
    are the metadata (one deflate instead of two: each hands the GIL to the graph's thread)."""
    plain_metadata = metadata[0].encode() + b"\x00" + metadata[1]
    plain_checkpoint = checkpoint[0].encode() + b"\x00" + checkpoint[1]
    joined = plain_metadata + plain_checkpoint
    deflated = deflate(joined)
    if len(deflated) + len(_DEFLATED) + 1 < len(joined):
        head = _record_head(parent_id, versions) + f"+{len(plain_metadata)}\x00".encode()
        return head + _DEFLATED + deflated
    return pack_record(parent_id, versions, plain_metadata, plain_checkpoint)


def unpack_record(raw: bytes) -> tuple[str, bytes, bytes, dict[str, Any]]:
    """(parent id, packed metadata, packed checkpoint, channel versions) of a record.

    The checkpoint is stored without its id and versions (the field name and the blob
    list hold them).
    """
    parent, _, rest = raw.partition(b"\x00")
    size, _, rest = rest.partition(b"\x00")
    listed = _text(rest[: int(size)]).split(SEP)
    rest = rest[int(size) :]
    size, _, rest = rest.partition(b"\x00")
    texts: list[str] = []
    for at in range(1, len(listed), 2):
        text = listed[at]
        texts.append(texts[int(text[1:]) - 1] if text[:1] == "=" else text)
    versions = {channel_name(listed[2 * at]): version_of(text) for at, text in enumerate(texts)}
    if size[:1] == b"+":  # metadata and checkpoint deflated together
        if not rest.startswith(_DEFLATED):
            raise ValueError("a joint record without its deflate marker")
        rest, size = inflate(rest[len(_DEFLATED) :]), size[1:]
    return _text(parent), rest[: int(size)], rest[int(size) :], versions


def parse_rows(raw: bytes) -> list[tuple[str, bytes]]:
    """The rows ``(task\\0idx, value)`` of a stored writes field."""
    rows = []
    at = 0
    while at < len(raw):
        cut = raw.index(b"\x00", at)
        size = int(raw[at:cut])
        suffix = raw[cut + 1 : cut + 1 + size]
        at = cut + 1 + size
        cut = raw.index(b"\x00", at)
        size = int(raw[at:cut])
        rows.append((_text(suffix), raw[cut + 1 : cut + 1 + size]))
        at = cut + 1 + size
    return rows
