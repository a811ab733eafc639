"""The fast message constructor builds exactly what full validation builds, or declines."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, messages_from_dict

from redis_chat_history.codec import decode_payload, encode_message
from redis_chat_history.construct import construct_message

text = st.text(max_size=20)
optional_text = st.none() | text
json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | text
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
# Stored dicts as they may really occur, plus shapes that must make the fast path decline.
tool_call = st.fixed_dictionaries(
    {"name": text, "args": st.dictionaries(text, json_value, max_size=3), "id": optional_text},
    optional={"type": st.sampled_from(["tool_call", "other"]), "extras": json_value},
)
invalid_tool_call = st.fixed_dictionaries(
    {"name": optional_text, "args": optional_text, "id": optional_text, "error": optional_text},
    optional={"type": st.just("invalid_tool_call"), "index": st.integers(0, 3)},
)
usage = st.fixed_dictionaries(
    {"input_tokens": st.integers(0, 10**6), "output_tokens": st.integers(0, 10**6)},
    optional={
        "total_tokens": st.integers(0, 10**6) | text,
        "input_token_details": st.dictionaries(
            st.sampled_from(["audio", "cache_read", "cache_creation", "other"]),
            st.integers(0, 9),
            max_size=2,
        ),
        "output_token_details": st.none()
        | st.dictionaries(st.sampled_from(["audio", "reasoning"]), st.integers(0, 9), max_size=2),
        "surprise": st.integers(),
    },
)
content = text | st.lists(
    text | st.fixed_dictionaries({"type": st.just("text"), "text": text}) | st.integers(),
    max_size=3,
)
common = {
    "additional_kwargs": st.dictionaries(text, json_value, max_size=2)
    | st.just(
        {
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]
        }
    ),
    "response_metadata": st.dictionaries(text, json_value, max_size=2),
    "name": optional_text,
    "id": optional_text | st.integers(),
}
extra_by_type: dict[str, dict[str, Any]] = {
    "human": {},
    "system": {},
    "ai": {
        "tool_calls": st.lists(tool_call, max_size=2),
        "invalid_tool_calls": st.lists(invalid_tool_call, max_size=2),
        "usage_metadata": st.none() | usage,
    },
    "tool": {
        "tool_call_id": text | st.integers(),
        "artifact": json_value,
        "status": st.sampled_from(["success", "error", "weird"]),
    },
    "chat": {"role": text},
    "function": {"name": text},
}


@st.composite
def stored_payloads(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(extra_by_type)))
    fields = {**common, **extra_by_type[kind]}
    data = draw(st.fixed_dictionaries({"content": content}, optional=fields))
    if draw(st.booleans()):
        data["type"] = kind
    return {"type": kind, "data": data}


def _validated(payload: dict[str, Any]) -> Any:
    try:
        return messages_from_dict([copy.deepcopy(payload)])[0]
    except Exception:
        return None


@settings(max_examples=600, deadline=None)
@given(stored_payloads())
def test_fast_path_equals_full_validation_or_declines(payload: dict[str, Any]) -> None:
    expected = _validated(payload)
    built = construct_message(copy.deepcopy(payload))
    if built is None:
        return  # the caller validates in full
    assert expected is not None, f"fast path accepted what validation rejects: {payload}"
    assert built == expected
    assert type(built) is type(expected)
    assert built.model_dump() == expected.model_dump()
    assert repr(built) == repr(expected)


def test_fast_path_covers_the_common_shapes() -> None:
    messages = [
        HumanMessage("hi"),
        AIMessage(
            "calling",
            tool_calls=[{"name": "search", "args": {"q": "x"}, "id": "c1"}],
            usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            response_metadata={"model": "m"},
            id="run-1",
        ),
    ]
    for message in messages:
        built = construct_message(decode_payload(encode_message(message)))
        assert built is not None
        assert built == message


def test_built_messages_are_independent_objects() -> None:
    first = construct_message({"type": "human", "data": {"content": "a"}})
    second = construct_message({"type": "human", "data": {"content": "b"}})
    assert first is not None and second is not None
    first.additional_kwargs["x"] = 1
    assert second.additional_kwargs == {}
