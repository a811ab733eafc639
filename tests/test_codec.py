"""Exact round trips: every value the old class stores comes back unchanged.

Integers beyond 64 bits, lone surrogates, NaN and infinities (which the old class's
``json.dumps`` writes) survive write, read, export, import and copy, in both layouts
(plain and compressed), and the old class reads what we write and the reverse. The
fast path stays orjson's: compact elements are parsed by orjson alone.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_community.chat_message_histories import (
    RedisChatMessageHistory as CommunityHistory,
)
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)

from redis_chat_history import RedisChatStore
from redis_chat_history.codec import (
    decode_element,
    decode_payload,
    dumps_exact,
    encode_message,
    loads_exact,
)
from tests.servers import RedisProcess

BIG = 2**64 + 1
LONE = "\ud800 and \udfff"


def canonical(messages: list[BaseMessage]) -> str:
    """What the old class would store for ``messages``: equal text means equal values.

    NaN is written as ``NaN`` (so it compares equal), ``1`` and ``1.0`` differ, and key
    order counts.
    """
    return json.dumps([message_to_dict(message) for message in messages])


# -- unit checks ----------------------------------------------------------------------------
def test_the_fast_path_writes_compact_orjson() -> None:
    assert encode_message(HumanMessage("hi")) == b'{"type":"human","data":{"content":"hi"}}'
    assert encode_message(HumanMessage("é")) == '{"type":"human","data":{"content":"é"}}'.encode()


@pytest.mark.parametrize(
    "value",
    [BIG, -(2**63) - 1, 10**40, float("nan"), float("inf"), -math.inf, LONE, {"k": [BIG, 1.5]}],
)
def test_values_orjson_cannot_hold_are_written_and_read_exactly(value: Any) -> None:
    message = AIMessage("x", additional_kwargs={"v": value}, response_metadata={"w": [value]})
    raw = encode_message(message)
    assert raw.startswith(b'{"type": "ai"')  # the old class's form, read by the stdlib
    assert canonical([decode_element(raw)]) == canonical([message])
    assert canonical([decode_element(encode_message(message, compress=True))]) == canonical(
        [message]
    )


def test_nan_is_not_written_as_null() -> None:
    raw = encode_message(HumanMessage("x", additional_kwargs={"score": float("nan")}))
    assert b"NaN" in raw and b"null" not in raw
    raw = encode_message(HumanMessage("x", additional_kwargs={"score": None}))
    assert raw == b'{"type":"human","data":{"content":"x","additional_kwargs":{"score":null}}}'


def test_a_big_integer_in_any_form_is_read_exactly() -> None:
    # orjson reads this as 1.2345678901234568e+29; the stdlib keeps it
    text = b'{"type": "human", "data": {"content": "x", "additional_kwargs": {"n": %d}}}'
    raw = text % 123456789012345678901234567890
    assert decode_payload(raw)["data"]["additional_kwargs"]["n"] == 123456789012345678901234567890
    assert loads_exact(b"[-9223372036854775809, 18446744073709551616]") == [
        -(2**63) - 1,
        2**64,
    ]
    assert loads_exact('{"s": "\\ud800", "x": NaN}')["s"] == "\ud800"
    assert dumps_exact({"n": 2**70}) == b'{"n": 1180591620717411303424}'


# -- the property: write, read, export, import, copy ---------------------------------------
characters = st.one_of(
    st.characters(codec="utf-8"), st.sampled_from(["\ud800", "\udfff", "\udc80"])
)
text = st.text(characters, max_size=8)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([2**63, 2**64, 2**64 + 1, -(2**63) - 1, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_value = st.recursive(
    st.none() | st.booleans() | numbers | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)
kwargs = st.dictionaries(
    text.filter(lambda key: key not in ("tool_calls", "function_call")), json_value, max_size=3
)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {
            "name": text,
            "args": st.dictionaries(text, json_value, max_size=3),
            "id": text,
            "type": st.just("tool_call"),
        }
    ),
    max_size=2,
)
messages = st.lists(
    st.one_of(
        st.builds(HumanMessage, content=text, additional_kwargs=kwargs),
        st.builds(SystemMessage, content=text, additional_kwargs=kwargs),
        st.builds(
            AIMessage,
            content=text,
            additional_kwargs=kwargs,
            response_metadata=kwargs,
            tool_calls=tool_calls,
        ),
        st.builds(ToolMessage, content=text, tool_call_id=text, artifact=json_value),
    ),
    min_size=1,
    max_size=4,
)
_sessions = itertools.count()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=messages, compress=st.booleans())
def test_every_value_round_trips_through_write_read_export_import_copy(
    redis7: RedisProcess, batch: list[BaseMessage], compress: bool
) -> None:
    session_id = f"s{next(_sessions)}"
    expected = canonical(batch)
    source = RedisChatStore(url=redis7.url, key_prefix="src:", compress=compress)
    source.history(session_id).add_messages(batch)
    assert canonical(source.history(session_id).messages) == expected  # write, read

    out = io.BytesIO()
    assert source.export(out, [session_id]).messages == len(batch)  # never crashes
    imported = RedisChatStore(url=redis7.url, key_prefix="imp:")
    assert imported.import_(io.BytesIO(out.getvalue())).sessions_written == 1
    assert canonical(imported.history(session_id).messages) == expected

    copied = RedisChatStore(url=redis7.url, key_prefix="cpy:")
    assert source.copy_to(copied, [session_id]).sessions_written == 1
    assert canonical(copied.history(session_id).messages) == expected

    if not compress:  # the old class reads what we write, and we read what it writes
        old = CommunityHistory(session_id, url=redis7.url, key_prefix="src:")
        assert canonical(old.messages) == expected
        old_written = CommunityHistory(session_id, url=redis7.url, key_prefix="old:")
        old_written.add_messages(batch)
        mine = RedisChatStore(url=redis7.url, key_prefix="old:")
        assert canonical(mine.history(session_id).messages) == expected
        again = io.BytesIO()
        mine.export(again, [session_id])
        assert imported.import_(io.BytesIO(again.getvalue()), overwrite=True).messages == len(batch)
        assert canonical(imported.history(session_id).messages) == expected
