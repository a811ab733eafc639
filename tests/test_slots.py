"""Companion keys share their history's Cluster slot for every session id, and are exact.

The first tests need no server; the last ones run every operation, export, import and
copy on the 6-node cluster with session ids whose braces or NULs used to send a
companion key to another slot (CROSSSLOT) or let one session name another's companion.
"""

from __future__ import annotations

import binascii
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from redis.crc import key_slot as redis_key_slot

from redis_chat_history import ImportFormatError, InvalidArgumentError, RedisChatStore, slots
from redis_chat_history.operations import writers_key
from redis_chat_history.slots import (
    SLOTS,
    SNAPSHOT,
    STAGING,
    WRITERS,
    companion_key,
    is_companion_key,
    key_slot,
    new_run_id,
)

PREFIX = "message_store:"
#: Ids of every hash-tag shape: none, usable, open, empty, closing only, NULs, markers.
AWKWARD_IDS = [
    "alice",
    "a{b",
    "{}x",
    "x}{",
    "{",
    "}",
    "{}",
    "{{}}",
    "a{}b{c}",
    "{user-1}:chat",
    "\x00",
    "a\x00w",
    "a\x00h",
    "a\x00i{",
    "é{ü",
]


def slot(key: str) -> int:
    return redis_key_slot(key.encode("utf-8", "surrogateescape"))


# Session ids of any text (NULs, braces, surrogates excluded by the utf-8 codec).
session_ids = st.text(
    alphabet=st.one_of(st.sampled_from("{}\x00hwis"), st.characters(codec="utf-8")),
    min_size=1,
    max_size=24,
)


@settings(max_examples=1500, deadline=None)
@given(session_ids, st.sampled_from([WRITERS, STAGING, SNAPSHOT]))
def test_companion_keys_share_the_slot_and_are_recognised(session_id: str, kind: str) -> None:
    key = PREFIX + session_id
    run_id = "" if kind == WRITERS else new_run_id()
    companion = companion_key(key, kind, run_id)
    assert companion.startswith(key + "\x00" + kind + run_id)
    assert slot(companion) == slot(key) == key_slot(key)
    assert is_companion_key(companion)
    if "\x00" not in session_id:
        assert not is_companion_key(key)


@pytest.mark.parametrize("session_id", AWKWARD_IDS)
def test_awkward_ids_every_kind(session_id: str) -> None:
    key = PREFIX + session_id
    for kind, run_id in ((WRITERS, ""), (STAGING, "0" * 16), (SNAPSHOT, "f" * 16)):
        assert slot(companion_key(key, kind, run_id)) == slot(key), (session_id, kind)
    # the old hand-written suffix put this one's staging key in slot 13877, not 4040
    assert slot(companion_key("message_store:a{b", STAGING, "0" * 16)) == slot("message_store:a{b")


def test_is_companion_key_is_exact() -> None:
    key = PREFIX + "alice"
    writers = writers_key(key)
    assert is_companion_key(writers)
    assert not is_companion_key(writers + "x")
    assert not is_companion_key(writers[:-1])
    assert not is_companion_key(key + "\x00w{zz}")  # a tag of the wrong slot
    staging = companion_key(key, STAGING, "0123456789abcdef")
    assert is_companion_key(staging)
    assert is_companion_key(staging.replace("0123", "0124"))  # any run id
    assert not is_companion_key(staging.replace("0123", "012g"))  # run ids are hex
    assert not is_companion_key(staging.replace("0123", "123"))  # of 16 digits
    assert writers == key + "\x00h{4048}"
    # the string writers key of earlier versions is still recognised (it may linger a window)
    assert is_companion_key(key + "\x00w{4048}")
    with pytest.raises(ValueError):
        companion_key(key, STAGING)  # a staging key needs a run id
    with pytest.raises(ValueError):
        companion_key(key, "q")


def test_a_session_id_naming_a_companion_key_is_refused() -> None:
    store = RedisChatStore(url="redis://127.0.0.1:1/0")  # no I/O: refused before any call
    alice = PREFIX + "alice"
    for companion in (
        writers_key(alice),
        companion_key(alice, STAGING, new_run_id()),
        companion_key(alice, SNAPSHOT, new_run_id()),
        companion_key(PREFIX + "a{b", WRITERS),
        companion_key(PREFIX + "{}x", STAGING, new_run_id()),
    ):
        with pytest.raises(InvalidArgumentError, match="names a key"):
            store.history(companion[len(PREFIX) :])
    store.history("alice\x00h")  # not a companion: allowed
    store.history("alice\x00h{4048}x")


def test_import_refuses_a_line_whose_session_id_is_a_companion_key() -> None:
    store = RedisChatStore(url="redis://127.0.0.1:1/0")
    bad = writers_key(PREFIX + "alice")[len(PREFIX) :]
    line = {"session_id": bad, "position": 0, "type": "human", "data": {"content": "x"}}
    with pytest.raises(ImportFormatError, match="line 1: session") as raised:
        store.import_(io.StringIO(json.dumps(line)))
    assert raised.value.line == 1


def test_every_operation_on_the_cluster_with_awkward_ids(cluster_url: str) -> None:
    store = RedisChatStore(url=cluster_url, ttl=600, max_messages=5)
    other = RedisChatStore(url=cluster_url, key_prefix="copy:")
    restored = RedisChatStore(url=cluster_url, key_prefix="restored:")
    for session_id in AWKWARD_IDS:
        history = store.history(session_id)
        history.add_messages([HumanMessage(f"q {session_id}"), AIMessage("a")])
        history.add_messages([HumanMessage(str(i)) for i in range(1200)])  # trimmed to 5
        assert [m.content for m in history.messages] == ["1195", "1196", "1197", "1198", "1199"]
        history.delete_last()
        history.replace_messages([HumanMessage("q"), AIMessage("a"), HumanMessage("b")])
        history.expire(900)
    big = store.history("a{b")
    big_store = RedisChatStore(url=cluster_url)
    big_store.history("a{b").add_messages([HumanMessage(str(i)) for i in range(2500)])
    expected = {sid: ["q", "a", "b"] for sid in AWKWARD_IDS}
    expected["a{b"] = [m.content for m in big.messages]
    assert len(expected["a{b"]) == 2503

    out = io.BytesIO()
    result = big_store.export(out, AWKWARD_IDS)
    assert (result.sessions, result.messages) == (
        len(AWKWARD_IDS),
        3 * (len(AWKWARD_IDS) - 1) + 2503,
    )
    imported = restored.import_(io.BytesIO(out.getvalue()))
    assert imported.sessions_written == len(AWKWARD_IDS)
    copied = big_store.copy_to(other, AWKWARD_IDS)
    assert copied.sessions_written == len(AWKWARD_IDS)
    again = big_store.copy_to(other, AWKWARD_IDS, overwrite=True)
    assert again.sessions_written == len(AWKWARD_IDS)
    for target in (restored, other):
        for session_id, contents in expected.items():
            history = target.history(session_id)
            assert [m.content for m in history.messages] == contents, session_id
            assert 800 < (history.expires_in() or 0) <= 900
    assert sorted(other.sessions()) == sorted(AWKWARD_IDS)


def test_the_tag_table_is_the_first_hex_number_counting_up_for_every_slot() -> None:
    """The fast build (CRC linearity) gives exactly what counting 0, 1, 2, ... gives: the
    tags name stored keys, so they must never change."""
    counted: list[str | None] = [None] * SLOTS
    missing, number = SLOTS, 0
    while missing:
        tag = format(number, "x")
        slot = binascii.crc_hqx(tag.encode(), 0) % SLOTS
        if counted[slot] is None:
            counted[slot] = tag
            missing -= 1
        number += 1
    assert slots._shortest_tags() == counted
    assert all(redis_key_slot(tag.encode()) == slot for slot, tag in enumerate(counted) if tag)
