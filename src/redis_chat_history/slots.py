"""Redis Cluster hash slots: naming a companion key that lives in the same slot as a history.

A history's write tokens are kept in a second key, and a Lua script may only
touch keys of one slot. Session keys rarely carry a ``{hash tag}``, so the
companion key gets a tag chosen to hash to the history key's slot. Redis uses
CRC16-CCITT (XMODEM), which :func:`binascii.crc_hqx` computes in C.

Example::

    >>> key = "message_store:alice"
    >>> key_slot(key) == key_slot(key + "\\x00w" + same_slot_suffix(key))
    True
"""

from __future__ import annotations

import binascii
import threading
from functools import lru_cache

SLOTS = 16384

_table: list[str] | None = None
_table_lock = threading.Lock()


def key_slot(key: str | bytes) -> int:
    """The cluster slot of ``key``, honouring ``{hash tags}`` as Redis does."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start > -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return binascii.crc_hqx(data, 0) % SLOTS


def _tag_table() -> list[str]:
    """For every slot, a short tag that hashes to it (built once, ~20 ms)."""
    global _table
    if _table is None:
        with _table_lock:
            if _table is None:
                table: list[str | None] = [None] * SLOTS
                missing = SLOTS
                number = 0
                while missing:
                    tag = format(number, "x")
                    slot = binascii.crc_hqx(tag.encode(), 0) % SLOTS
                    if table[slot] is None:
                        table[slot] = tag
                        missing -= 1
                    number += 1
                _table = [tag for tag in table if tag is not None]
    return _table


@lru_cache(maxsize=65536)
def same_slot_suffix(key: str) -> str:
    """A suffix ``s`` such that ``key + "\\x00w" + s`` hashes to the slot of ``key``."""
    slot = key_slot(key)
    if "{" not in key:
        return "{" + _tag_table()[slot] + "}"
    if key_slot(key + "\x00w") == slot:  # the key's own hash tag still decides
        return ""
    # A '{' without a usable tag: search a tag that completes one (rare, bounded).
    for number in range(SLOTS * 64):
        suffix = "{" + format(number, "x") + "}"
        if key_slot(key + "\x00w" + suffix) == slot:
            return suffix
    raise RuntimeError(f"no same-slot companion key found for {key!r}")  # pragma: no cover
