"""Redis Cluster hash slots: companion keys that live in the same slot as their history.

A history has short-lived companion keys: its writers key (write tokens, see
writers.py), the staging list of an import or copy, the snapshot an export reads.
A Lua script or a pipeline may only touch keys of one slot, so each companion key
must hash to its history's slot, whatever the session id holds (``{``, ``}``, an
empty ``{}``, ``\\x00`` ...). A companion key is::

    <history key> \\x00 <kind> <run id> <tail>

``kind`` is one letter (:data:`WRITERS`, :data:`STAGING`, :data:`SNAPSHOT`), the run id
16 hex digits for the kinds that need one per run (an import, an export), and ``tail``
is chosen so that the whole key lands in the history's slot. Redis hashes the text
between the first ``{`` and the next ``}`` when that is not empty, else the whole key;
so, for a history key:

* with a usable ``{tag}``: the tag still decides, the tail is empty;
* without any ``{``: the tail is ``{t}``, a hex tag ``t`` hashing to the key's slot;
* with a ``{`` and no ``}`` after it: the tail is ``x}``, five hex digits closing a tag
  (everything after the ``{``) whose CRC is the key's slot;
* whose first ``{`` is followed by ``}``: the whole key is hashed, the tail is five hex
  digits bringing the whole companion key's CRC back to the key's slot.

CRC16 (XMODEM) is linear with a zero start: ``crc(P + X) == crc(P + zeros) ^ crc(X)``
for ``X`` of a fixed length, so a tail is found by a table lookup, not a search. Every
companion key is checked with redis-py's :func:`redis.crc.key_slot` before use.

Nothing but this module names companion keys, and :func:`is_companion_key` recognises
them exactly, so a session id can be refused when its key is another history's
companion (settings.py).

Example::

    >>> key = "message_store:a{b"
    >>> key_slot(companion_key(key, STAGING, "0123456789abcdef")) == key_slot(key)
    True
    >>> is_companion_key(companion_key(key, WRITERS))
    True
"""

from __future__ import annotations

import binascii
import secrets
import threading
from functools import lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS
from redis.crc import key_slot as _redis_key_slot

SLOTS = REDIS_CLUSTER_HASH_SLOTS

#: Companion kinds: the writers key (writer tokens: a hash, one field per writer), an
#: import's staging list, an export's snapshot.
WRITERS = "h"
STAGING = "i"
SNAPSHOT = "s"
#: The writers key of versions before the hash (a string; it expires within its window):
#: still recognised as a companion key, never written.
LEGACY_WRITERS = "w"
#: A LangGraph thread's checkpoint data (hash), its index (sorted set), and its archived
#: message segments (lists, one per segment id): see redis_chat_history.checkpoint.
CHECKPOINTS, CHECKPOINT_INDEX, SEGMENT = "c", "x", "g"
#: Kinds that carry a run id (several runs may work on one history at once).
_WITH_RUN_ID = frozenset({STAGING, SNAPSHOT, SEGMENT})
_KINDS = frozenset({WRITERS, LEGACY_WRITERS, CHECKPOINTS, CHECKPOINT_INDEX, *_WITH_RUN_ID})
RUN_ID_LENGTH = 16
_HEX = frozenset("0123456789abcdef")
#: Length of the hex digits that fix the CRC of a key whose ``{`` opens no usable tag.
_FIX_LENGTH = 5
_FIX_ZEROS = b"\x00" * _FIX_LENGTH
_MASK = SLOTS - 1

_table: list[str] | None = None
_fixes: dict[int, str] = {}
_lock = threading.Lock()


def encode_key(key: str | bytes) -> bytes:
    """The bytes redis-py sends for ``key`` (and execution.py routes with)."""
    return key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key


def key_slot(key: str | bytes) -> int:
    """The Cluster slot of ``key``, honouring ``{hash tags}`` (redis-py's own function)."""
    return _redis_key_slot(encode_key(key))


def new_run_id() -> str:
    """A run id for the companion keys of one import, copy or export (64 random bits)."""
    return secrets.token_hex(RUN_ID_LENGTH // 2)


def _crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0)


def _tag_table() -> list[str]:
    """For every slot, the shortest hex tag hashing to it: the first number, counting up,
    whose hex digits land there (built once, tens of ms; tests check it against counting)."""
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                _table = _shortest_tags()
    return _table


def _shortest_tags() -> list[str]:
    # CRC16 with a zero start is linear: crc(d + tail) = crc(d + NULs) ^ crc(tail) for a
    # tail of as many bytes. With the CRCs of all k-digit tails (in counting order) and,
    # for each masked CRC, the first tail having it, each (k+1)-digit number's slot is a
    # lookup: for each first digit in turn, the tails (or the slots still missing, when
    # fewer) are gone through once.
    digits = [format(d, "x").encode() for d in range(16)]
    table: list[str] = [""] * SLOTS
    missing = set(range(SLOTS))
    tails = [0]  # CRCs of every k-digit tail, in counting order (k = 0: the empty one)
    k = 0
    while True:
        count = len(tails)
        first_tail = dict(
            zip([tail & _MASK for tail in reversed(tails)], range(count - 1, -1, -1), strict=True)
        )
        for first in range(16) if k == 0 else range(1, 16):
            head = _crc(digits[first] + b"\x00" * k) & _MASK
            if count < len(missing):  # fewer tails than missing slots: go through the tails
                found = [slot ^ head for slot in first_tail if slot ^ head in missing]
            else:
                found = [slot for slot in missing if slot ^ head in first_tail]
            for slot in found:
                table[slot] = format((first << (4 * k)) + first_tail[slot ^ head], "x")
            missing.difference_update(found)
            if not missing:
                return table
        tails = [_crc(digits[d] + b"\x00" * k) ^ tail for d in range(16) for tail in tails]
        k += 1


def _fix(low_bits: int) -> str:
    """Five hex digits whose CRC has these low 14 bits (found once per value, ~5 ms)."""
    found = _fixes.get(low_bits)
    if found is None:
        for number in range(16**_FIX_LENGTH):  # each value is hit ~64 times in this range
            candidate = format(number, f"0{_FIX_LENGTH}x")
            if _crc(candidate.encode()) & _MASK == low_bits:
                found = candidate
                break
        assert found is not None, low_bits
        _fixes[low_bits] = found
    return found


def _closing(hashed: bytes, slot: int) -> str:
    """Hex digits ``x`` such that the CRC of ``hashed + x`` is ``slot`` (mod SLOTS)."""
    return _fix((_crc(hashed + _FIX_ZEROS) ^ slot) & _MASK)


@lru_cache(maxsize=4096)
def _layout(key: str) -> tuple[int, int, int]:
    """(slot, first '{' or -1, its '}' or -1) of a history key."""
    data = encode_key(key)
    start = data.find(b"{")
    end = data.find(b"}", start + 1) if start > -1 else -1
    return key_slot(data), start, end


def companion_key(key: str, kind: str, run_id: str = "") -> str:
    """The companion key of history ``key`` of this ``kind``, in the history's slot.

    ``run_id`` (from :func:`new_run_id`) is required for staging and snapshot keys and
    refused for the writers key.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown companion kind {kind!r}")
    if (kind in _WITH_RUN_ID) != (len(run_id) == RUN_ID_LENGTH) or not _HEX.issuperset(run_id):
        raise ValueError(f"companion kind {kind!r} with run id {run_id!r}")
    if not key:
        raise ValueError("a history key must not be empty")
    slot, start, end = _layout(key)
    head = f"{key}\x00{kind}{run_id}"
    if start == -1:  # no '{': our own tag decides
        companion = head + "{" + _tag_table()[slot] + "}"
    elif end > start + 1:  # the key's own tag decides
        companion = head
    elif end == -1:  # an open '{': close it with a tag whose CRC is the slot
        companion = head + _closing(encode_key(head)[start + 1 :], slot) + "}"
    else:  # '{}': the whole key is hashed
        companion = head + _closing(encode_key(head), slot)
    if key_slot(companion) != slot:  # pragma: no cover - a bug here would be a CROSSSLOT
        raise AssertionError(f"companion key of {key!r} is not in slot {slot}")
    return companion


@lru_cache(maxsize=65536)
def writers_key_of(key: str) -> str:
    """The writers key of history ``key`` (cached: it is on every write's path)."""
    return companion_key(key, WRITERS)


def is_companion_key(key: str) -> bool:
    """True when ``key`` is exactly a companion key of some history (never a history).

    Example::

        >>> is_companion_key("message_store:alice")
        False
    """
    if "\x00" not in key:
        return False
    at = key.find("\x00")
    while at > 0:
        kind = key[at + 1 : at + 2]
        if kind in _KINDS:
            base = key[:at]
            run_id = key[at + 2 : at + 2 + RUN_ID_LENGTH] if kind in _WITH_RUN_ID else ""
            try:
                if key == companion_key(base, kind, run_id):
                    return True
            except ValueError:
                pass
        at = key.find("\x00", at + 1)
    return False
