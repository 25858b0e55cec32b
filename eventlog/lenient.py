"""Reading journal lines that other tools wrote: ``null`` means "absent".

SPEC §2 invites other tools to write journals, and many JSON writers emit ``null`` for
a field they have no value for (``"title": null``). The strict ``events.decoder`` stays
the fast path (and ``events.encoder`` writes exactly what it always did); only a line it
refuses for its *types* is decoded again here, where every optional field may be
``null`` or missing and then takes its default. A required field that is missing or
null (a message without ``content``) is still an error, reported for that line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import msgspec

from .events import (
    ErrorRecordedData,
    Event,
    MessageAppendedData,
    MessageCompletedData,
    MessageDeltaData,
    MessageEditedData,
    SessionStartedData,
    SessionUpdatedData,
    decoder,
)


def _loose(strict: type[msgspec.Struct], absent: tuple[str, ...] = ()) -> type[msgspec.Struct]:
    """A struct like ``strict`` whose optional fields (and those in ``absent``) may be
    null or missing (then None: the converters below put the default in)."""
    fields: list[tuple[str, Any, Any]] = [
        (f.name, f.type, msgspec.NODEFAULT)
        if f.required and f.name not in absent
        else (f.name, f.type | None, None)
        for f in msgspec.structs.fields(strict)
    ]
    return msgspec.defstruct(f"Loose{strict.__name__}", fields)


# The strict data from a loose one. The fields the engine always writes but a foreign
# writer may leave out get: user_name "User", metadata {} (fresh per event), a message's
# timestamp the event's ``ts``; the others their Struct default. (Spelled out inline:
# a cold start of a foreign store runs these millions of times.)
_CONVERT: dict[str, tuple[type[msgspec.Struct], Callable[[Any, str], Any]]] = {
    "session.started": (
        _loose(SessionStartedData, ("user_name", "metadata")),
        lambda d, ts: SessionStartedData(
            "User" if d.user_name is None else d.user_name,
            {} if d.metadata is None else d.metadata,
            "" if d.title is None else d.title,
        ),
    ),
    "message.appended": (
        _loose(MessageAppendedData, ("timestamp", "metadata")),
        lambda d, ts: MessageAppendedData(
            d.message_id,
            d.role,
            d.content,
            ts if d.timestamp is None else d.timestamp,
            {} if d.metadata is None else d.metadata,
            "complete" if d.status is None else d.status,
        ),
    ),
    "message.delta": (
        _loose(MessageDeltaData),
        lambda d, ts: MessageDeltaData(
            d.message_id, d.content, "append" if d.mode is None else d.mode
        ),
    ),
    # the rest already take null for their optional fields: no conversion
    "message.completed": (MessageCompletedData, lambda d, ts: d),
    "message.edited": (MessageEditedData, lambda d, ts: d),
    "session.updated": (SessionUpdatedData, lambda d, ts: d),
    "error.recorded": (ErrorRecordedData, lambda d, ts: d),
}
_EVENT: dict[str, Any] = {cls.__struct_config__.tag: cls for cls in Event.__args__}
# loose event type -> (strict event type, data converter)
_STRICT: dict[type[Any], tuple[Any, Callable[[Any, str], Any]]] = {
    msgspec.defstruct(
        "Loose" + tag.replace(".", "_"),
        [("seq", int), ("id", str), ("ts", str), ("data", data)],
        tag_field="type",
        tag=tag,
    ): (_EVENT[tag], convert)
    for tag, (data, convert) in _CONVERT.items()
}
_loose_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    Union[tuple(_STRICT)]  # noqa: UP007 (a union built at run time)
)


def _strict(loose: Any) -> Event:
    cls, convert = _STRICT[type(loose)]
    return cls(loose.seq, loose.id, loose.ts, convert(loose.data, loose.ts))  # type: ignore[no-any-return]


def decode_event(line: bytes) -> Event:
    """One journal line as an Event; ``null``/missing optional fields take their defaults.
    Raises ``msgspec.DecodeError`` (or its ``ValidationError``) if it still is not one."""
    try:
        return decoder.decode(line)
    except msgspec.ValidationError as strict_error:
        try:
            return _strict(_loose_decoder.decode(line))
        except msgspec.ValidationError:
            raise strict_error from None


def decode_events(body: bytes) -> list[Event]:
    """``decode_event`` for newline-separated lines, all decoded at once."""
    try:
        return decoder.decode_lines(body)
    except msgspec.ValidationError as strict_error:
        try:
            return [_strict(e) for e in _loose_decoder.decode_lines(body)]
        except msgspec.ValidationError:
            raise strict_error from None
