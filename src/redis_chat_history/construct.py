"""Building message objects from stored dicts faster than ``messages_from_dict``.

``messages_from_dict`` runs full pydantic validation for every message, which is
most of the cost of reading a history. Stored messages were valid when written,
so for the common shapes (plain fields, string or block-list content, well-formed
tool calls and usage metadata) this module fills the model's ``__dict__``
directly, the way pydantic's own ``model_construct`` does, and produces an object
equal to the validated one. Anything else -- chunk classes, unknown fields,
unusual types -- returns None and the caller validates it in full.

Example::

    >>> construct_message({"type": "human", "data": {"content": "hi"}}) == HumanMessage("hi")
    True
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

# Key orders as validation produces them: a stored dict in another order takes the slow path,
# so that even the repr of a fast-built message matches.
_TOOL_CALL_KEYS = ["name", "args", "id", "type"]
_INVALID_TOOL_CALL_KEYS = ["type", "id", "name", "args", "error"]
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")
_USAGE_ORDER = [*_USAGE_KEYS, "input_token_details", "output_token_details"]
_USAGE_DETAIL_KEYS = {
    "input_token_details": ["audio", "cache_creation", "cache_read"],
    "output_token_details": ["audio", "reasoning"],
}
_STATUSES = frozenset({"success", "error"})


def _is_optional_str(value: Any) -> bool:
    return value is None or type(value) is str


def _is_content(value: Any) -> bool:
    if type(value) is str:
        return True
    return type(value) is list and all(type(item) in (str, dict) for item in value)


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_tool_call(call: Any) -> bool:
    return (
        type(call) is dict
        and list(call) == _TOOL_CALL_KEYS
        and call["type"] == "tool_call"
        and type(call["name"]) is str
        and type(call["args"]) is dict
        and _is_optional_str(call["id"])
    )


def _is_invalid_tool_call(call: Any) -> bool:
    return (
        type(call) is dict
        and list(call) == _INVALID_TOOL_CALL_KEYS
        and call["type"] == "invalid_tool_call"
        and all(_is_optional_str(call[name]) for name in ("name", "args", "id", "error"))
    )


def _is_usage(usage: Any) -> bool:
    if usage is None:
        return True
    if type(usage) is not dict or not _in_order(usage, _USAGE_ORDER):
        return False
    if not all(name in usage and _is_int(usage[name]) for name in _USAGE_KEYS):
        return False
    for name, order in _USAGE_DETAIL_KEYS.items():
        if name not in usage:
            continue
        details = usage[name]
        if type(details) is not dict or not _in_order(details, order):
            return False
        if not all(_is_int(count) for count in details.values()):
            return False
    return True


def _in_order(mapping: dict[str, Any], order: list[str]) -> bool:
    """True when every key of ``mapping`` is in ``order``, in that order."""
    return list(mapping) == [name for name in order if name in mapping]


def _common_fields_ok(data: dict[str, Any]) -> bool:
    return (
        _is_content(data.get("content"))
        and type(data.get("additional_kwargs", {})) is dict
        and type(data.get("response_metadata", {})) is dict
        and _is_optional_str(data.get("name"))
        and _is_optional_str(data.get("id"))
    )


def _ai_fields_ok(data: dict[str, Any]) -> bool:
    tool_calls = data.get("tool_calls", [])
    invalid = data.get("invalid_tool_calls", [])
    if type(tool_calls) is not list or type(invalid) is not list:
        return False
    # With no tool calls, validation parses OpenAI-style ones out of additional_kwargs.
    if not tool_calls and not invalid and "tool_calls" in data.get("additional_kwargs", {}):
        return False
    return (
        all(_is_tool_call(call) for call in tool_calls)
        and all(_is_invalid_tool_call(call) for call in invalid)
        and _is_usage(data.get("usage_metadata"))
    )


def _tool_fields_ok(data: dict[str, Any]) -> bool:
    return type(data.get("tool_call_id")) is str and data.get("status", "success") in _STATUSES


def _chat_fields_ok(data: dict[str, Any]) -> bool:
    return type(data.get("role")) is str


def _function_fields_ok(data: dict[str, Any]) -> bool:
    return type(data.get("name")) is str


# type -> (class, the extra check of its own fields, or None)
_SHAPES: dict[str, tuple[type[BaseMessage], Any]] = {
    "human": (HumanMessage, None),
    "system": (SystemMessage, None),
    "ai": (AIMessage, _ai_fields_ok),
    "tool": (ToolMessage, _tool_fields_ok),
    "chat": (ChatMessage, _chat_fields_ok),
    "function": (FunctionMessage, _function_fields_ok),
}
#: Message classes the codec stores exactly (a subclass would come back as its base).
EXACT_CLASSES = frozenset(cls for cls, _ in _SHAPES.values())


class _Template:
    """Field defaults of one message class, in declaration order, ready to copy."""

    def __init__(self, cls: type[BaseMessage]) -> None:
        self.cls = cls
        self.names = frozenset(cls.model_fields)
        self.type_value = cls.model_fields["type"].default
        self.static: dict[str, Any] = {}
        self.factories: list[tuple[str, Any]] = []
        for name, field in cls.model_fields.items():
            self.static[name] = None if field.default_factory is not None else field.default
            if field.default_factory is not None:
                self.factories.append((name, field.default_factory))

    def build(self, data: dict[str, Any]) -> BaseMessage:
        values = self.static.copy()  # keeps declaration order, as validation does
        for name, factory in self.factories:
            if name not in data:
                values[name] = factory()
        values.update(data)
        message = object.__new__(self.cls)
        _set = object.__setattr__
        _set(message, "__dict__", values)
        _set(message, "__pydantic_fields_set__", set(data))
        _set(message, "__pydantic_extra__", {})
        _set(message, "__pydantic_private__", None)
        return message


_templates: dict[str, tuple[_Template, Any]] = {
    kind: (_Template(cls), check) for kind, (cls, check) in _SHAPES.items()
}


def construct_message(payload: dict[str, Any]) -> BaseMessage | None:
    """The message for a stored ``{"type", "data"}`` dict, or None to validate in full."""
    entry = _templates.get(payload["type"])
    if entry is None:
        return None
    template, check = entry
    data = payload["data"]
    if not data.keys() <= template.names or "content" not in data:
        return None
    if data.get("type", template.type_value) != template.type_value:
        return None
    if not _common_fields_ok(data) or (check is not None and not check(data)):
        return None
    return template.build(data)
