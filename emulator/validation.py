"""Request validation, compiled once from botocore's service models plus AWS's documented rules.

`compile_shape(shape)` turns a botocore Shape into a checker: a function (value, path) -> None that
raises Invalid(path, problem) for the first member that breaks a type, required, min/max or enum
constraint of the model. botocore checks only required members, types and minimums on the client,
so maximum lengths, enums and the documented rules (connect-facts.md) are enforced here.

`Validators` holds one checker per operation; `check_start_chat_rules(body)` adds the documented
StartChatContact rules on top, `check_message` SendMessage's content limits and `check_event` SendEvent's
content types. Each failure names the field: "ParticipantDetails.DisplayName".
Pure: no I/O, no state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatload.contracts import (
    CREATE_CONNECTION,
    DESCRIBE_CONTACT,
    DISCONNECT,
    GET_TRANSCRIPT,
    SEND_EVENT,
    SEND_MESSAGE,
    START_CHAT,
    STOP_CONTACT,
)

Checker = Callable[[Any, str], None]


class Invalid(Exception):
    """A request member breaks a constraint; `str()` is the message, naming the field."""

    def __init__(self, path: str, problem: str, *, request_level: bool = False) -> None:
        super().__init__(f"Value at '{path}' failed to satisfy constraint: {problem}" if path else problem)
        self.path = path
        self.request_level = request_level  # a rule between members, not one member's constraint


PLAIN = "text/plain"
INTERACTIVE = "application/vnd.amazonaws.connect.message.interactive"
INTERACTIVE_RESPONSE = "application/vnd.amazonaws.connect.message.interactive.response"
SUPPORTED_CONTENT_TYPES = frozenset({PLAIN, "text/markdown", "application/json", INTERACTIVE, INTERACTIVE_RESPONSE})
# Content length limits by content type (InitialMessage, SendMessage), in characters.
MESSAGE_LIMITS = {PLAIN: 1024, "text/markdown": 1024, "application/json": 12000, INTERACTIVE_RESPONSE: 12288}
# SendEvent's content types (the API reference's list); the receipts need a JSON Content naming the message.
EVENT_PREFIX = "application/vnd.amazonaws.connect.event."
TYPING = EVENT_PREFIX + "typing"
RECEIPTS = frozenset({EVENT_PREFIX + "message.delivered", EVENT_PREFIX + "message.read"})
EVENT_CONTENT_TYPES = frozenset({TYPING, EVENT_PREFIX + "connection.acknowledged", *RECEIPTS})
ATTRIBUTES_MAX_BYTES = 32768
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _type_error(path: str, expected: str, value: Any) -> Invalid:
    return Invalid(path, f"Member must be {expected}, got {_json_type(value)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _length_checker(meta: dict[str, Any]) -> Callable[[int, str], None]:
    lo, hi = meta.get("min"), meta.get("max")

    def check(n: int, path: str) -> None:
        if lo is not None and n < lo:
            raise Invalid(path, f"Member must have length greater than or equal to {lo}")
        if hi is not None and n > hi:
            raise Invalid(path, f"Member must have length less than or equal to {hi}")

    return check


def compile_shape(shape: Any, _cache: dict[str, Checker] | None = None) -> Checker:
    """A checker for one botocore Shape (recursive shapes resolve through `_cache`)."""
    cache = {} if _cache is None else _cache
    if shape.type_name == "structure" and shape.name in cache:
        return cache[shape.name]
    meta = shape.metadata
    kind = shape.type_name

    if kind == "string":
        enum = frozenset(shape.enum) if shape.enum else None
        length = _length_checker(meta)
        has_length = "min" in meta or "max" in meta

        def check_string(value: Any, path: str) -> None:
            if value.__class__ is not str:
                raise _type_error(path, "a string", value)
            if enum is not None and value not in enum:
                raise Invalid(path, f"Member must satisfy enum value set: [{', '.join(sorted(enum))}]")
            if has_length:
                length(len(value), path)

        return check_string

    if kind in ("integer", "long"):
        lo, hi = meta.get("min"), meta.get("max")

        def check_integer(value: Any, path: str) -> None:
            if value.__class__ is not int and not (value.__class__ is float and value.is_integer()):
                raise _type_error(path, "an integer", value)
            if lo is not None and value < lo:
                raise Invalid(path, f"Member must have value greater than or equal to {lo}")
            if hi is not None and value > hi:
                raise Invalid(path, f"Member must have value less than or equal to {hi}")

        return check_integer

    if kind in ("double", "float"):

        def check_number(value: Any, path: str) -> None:
            if value.__class__ not in (int, float):
                raise _type_error(path, "a number", value)

        return check_number

    if kind == "boolean":

        def check_boolean(value: Any, path: str) -> None:
            if value.__class__ is not bool:
                raise _type_error(path, "a boolean", value)

        return check_boolean

    if kind == "timestamp":

        def check_timestamp(value: Any, path: str) -> None:
            if value.__class__ not in (int, float, str):
                raise _type_error(path, "a timestamp", value)

        return check_timestamp

    if kind == "blob":

        def check_blob(value: Any, path: str) -> None:
            if value.__class__ is not str:
                raise _type_error(path, "a base64 string", value)

        return check_blob

    if kind == "list":
        member = compile_shape(shape.member, cache)
        length = _length_checker(meta)

        def check_list(value: Any, path: str) -> None:
            if value.__class__ is not list:
                raise _type_error(path, "a list", value)
            length(len(value), path)
            for i, item in enumerate(value):
                member(item, f"{path}[{i}]")

        return check_list

    if kind == "map":
        key_check = compile_shape(shape.key, cache)
        value_check = compile_shape(shape.value, cache)
        length = _length_checker(meta)

        def check_map(value: Any, path: str) -> None:
            if value.__class__ is not dict:
                raise _type_error(path, "a map", value)
            length(len(value), path)
            for k, v in value.items():
                key_check(k, f"{path}.key")
                value_check(v, f"{path}.{k}")

        return check_map

    if kind == "structure":
        members: dict[str, Checker] = {}
        required = tuple(n for n in shape.required_members if not shape.members[n].serialization.get("location"))

        def check_structure(value: Any, path: str) -> None:
            if value.__class__ is not dict:
                raise _type_error(path or "body", "an object", value)
            for name in required:
                if value.get(name) is None:
                    raise Invalid(_path(path, name), "Member must not be null")
            for name, item in value.items():
                checker = members.get(name)
                if checker is not None and item is not None:
                    checker(item, _path(path, name))

        cache[shape.name] = check_structure
        for name, member_shape in shape.members.items():
            if member_shape.serialization.get("location"):
                continue  # URI / header members are checked by the wire layer
            members[name] = compile_shape(member_shape, cache)
        return check_structure

    def check_any(value: Any, path: str) -> None:
        return None

    return check_any


CONNECT_OPERATIONS = (START_CHAT, STOP_CONTACT, DESCRIBE_CONTACT)
PARTICIPANT_OPERATIONS = (CREATE_CONNECTION, SEND_MESSAGE, SEND_EVENT, DISCONNECT, GET_TRANSCRIPT)


@dataclass(frozen=True)
class Validators:
    """One compiled checker per operation (body members only)."""

    checkers: dict[str, Checker]

    @classmethod
    def from_botocore(cls) -> Validators:
        import botocore.session

        session = botocore.session.get_session()
        checkers: dict[str, Checker] = {}
        for service, operations in (("connect", CONNECT_OPERATIONS), ("connectparticipant", PARTICIPANT_OPERATIONS)):
            model = session.get_service_model(service)
            for op in operations:
                checkers[op] = compile_shape(model.operation_model(op).input_shape)
        return cls(checkers)

    def check(self, operation: str, body: Any) -> None:
        self.checkers[operation](body, "")
        if operation == START_CHAT:
            check_start_chat_rules(body)
        elif operation == SEND_MESSAGE:
            check_message(body["ContentType"], body["Content"], "")
        elif operation == SEND_EVENT:
            check_event(body["ContentType"], body.get("Content"))


def check_message(content_type: str, content: str, path: str) -> None:
    """Documented limits of a chat message: a known content type and its length limit."""
    limit = MESSAGE_LIMITS.get(content_type)
    if limit is None:
        raise Invalid(_path(path, "ContentType"), f"Member must be one of [{', '.join(sorted(MESSAGE_LIMITS))}]")
    if len(content) > limit:
        raise Invalid(
            _path(path, "Content"), f"Member must have length less than or equal to {limit} for {content_type}"
        )


def check_event(content_type: str, content: str | None) -> None:
    """SendEvent's documented content types; a delivered / read receipt must name its message as
    Content `{"messageId": "..."}` (botocore's model only bounds the lengths)."""
    if content_type not in EVENT_CONTENT_TYPES:
        raise Invalid("ContentType", f"Member must be one of [{', '.join(sorted(EVENT_CONTENT_TYPES))}]")
    if content_type in RECEIPTS and not _names_a_message(content):
        raise Invalid("Content", f'Member must be a JSON object with a "messageId" string for {content_type}')


def _names_a_message(content: str | None) -> bool:
    try:
        receipt = json.loads(content) if content is not None else None
    except (ValueError, RecursionError):
        return False
    return isinstance(receipt, dict) and isinstance(receipt.get("messageId"), str) and bool(receipt["messageId"])


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def check_start_chat_rules(body: dict[str, Any]) -> None:
    """The documented StartChatContact rules that the model does not express (connect-facts.md)."""
    attributes = body.get("Attributes")
    if attributes:
        total = 0
        for key, value in attributes.items():
            if not _ATTRIBUTE_KEY.fullmatch(key):
                raise Invalid("Attributes.key", "Member must contain only alphanumeric characters, '-' and '_'")
            total += _utf8_len(key) + _utf8_len(value)
        if total > ATTRIBUTES_MAX_BYTES:
            raise Invalid(
                "Attributes",
                f"Member must total at most {ATTRIBUTES_MAX_BYTES} UTF-8 bytes over all pairs, got {total}",
            )

    message = body.get("InitialMessage")
    if message is not None:
        check_message(message["ContentType"], message["Content"], "InitialMessage")

    types = body.get("SupportedMessagingContentTypes")
    if types is not None:
        for i, item in enumerate(types):
            if item not in SUPPORTED_CONTENT_TYPES:
                raise Invalid(
                    f"SupportedMessagingContentTypes[{i}]",
                    f"Member must be one of [{', '.join(sorted(SUPPORTED_CONTENT_TYPES))}]",
                )
        if PLAIN not in types:
            raise Invalid("SupportedMessagingContentTypes", "Member must contain text/plain")

    persistent = body.get("PersistentChat")
    if persistent is not None:
        if body.get("RelatedContactId") is not None:
            raise Invalid(
                "PersistentChat", "PersistentChat and RelatedContactId cannot be used together", request_level=True
            )
        for name in ("RehydrationType", "SourceContactId"):
            if persistent.get(name) is None:
                raise Invalid(f"PersistentChat.{name}", "Member must not be null")

    segment = body.get("SegmentAttributes")
    if segment:
        subtype = segment.get("connect:Subtype")
        if subtype is not None and subtype.get("ValueString") == "connect:Guide":
            declared = set(types or ())
            if not {INTERACTIVE, INTERACTIVE_RESPONSE} <= declared:
                raise Invalid(
                    "SupportedMessagingContentTypes",
                    f"connect:Guide needs both {INTERACTIVE} and {INTERACTIVE_RESPONSE}",
                    request_level=True,
                )
