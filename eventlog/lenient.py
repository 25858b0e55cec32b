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

_DATA: dict[str, type[msgspec.Struct]] = {
    "session.started": SessionStartedData,
    "message.appended": MessageAppendedData,
    "message.delta": MessageDeltaData,
    "message.completed": MessageCompletedData,
    "message.edited": MessageEditedData,
    "session.updated": SessionUpdatedData,
    "error.recorded": ErrorRecordedData,
}

# Fields the engine always writes but a foreign writer may leave out: their value when
# absent (a callable gets the event's ``ts``; dicts are made fresh per event).
_FILL: dict[str, dict[str, Callable[[str], Any]]] = {
    "session.started": {"user_name": lambda ts: "User", "metadata": lambda ts: {}},
    "message.appended": {"metadata": lambda ts: {}, "timestamp": lambda ts: ts},
}


def _loose(
    tag: str, strict: type[msgspec.Struct]
) -> tuple[type[msgspec.Struct], Callable[..., Any]]:
    """A struct like ``strict`` whose optional fields accept null, and the builder of the
    strict data from it."""
    fill = _FILL.get(tag, {})
    fields: list[tuple[str, Any, Any]] = []
    defaults: dict[str, Any] = {}
    for f in msgspec.structs.fields(strict):
        if f.required and f.name not in fill:
            fields.append((f.name, f.type, msgspec.NODEFAULT))
        else:
            fields.append((f.name, f.type | None, None))
            if not f.required:
                defaults[f.name] = f.default
    data = msgspec.defstruct(f"Loose{strict.__name__}", fields)
    names = [f[0] for f in fields]

    def build(d: Any, ts: str) -> Any:
        kwargs = {}
        for name in names:
            v = getattr(d, name)
            if v is None:
                if name in fill:
                    v = fill[name](ts)
                elif name in defaults:
                    v = defaults[name]
            kwargs[name] = v
        return strict(**kwargs)

    return data, build


_BUILD: dict[str, Callable[..., Any]] = {}
_LOOSE_EVENTS: list[type[msgspec.Struct]] = []
for _tag, _cls in _DATA.items():
    _data, _BUILD[_tag] = _loose(_tag, _cls)
    _LOOSE_EVENTS.append(
        msgspec.defstruct(
            "Loose" + _tag.replace(".", "_"),
            [("seq", int), ("id", str), ("ts", str), ("data", _data)],
            tag_field="type",
            tag=_tag,
        )
    )
_loose_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[tuple(_LOOSE_EVENTS)])  # noqa: UP007
_EVENT: dict[str, Any] = {cls.__struct_config__.tag: cls for cls in Event.__args__}


def _strict(loose: Any) -> Event:
    tag = loose.__struct_config__.tag
    return _EVENT[tag](  # type: ignore[no-any-return]
        seq=loose.seq, id=loose.id, ts=loose.ts, data=_BUILD[tag](loose.data, loose.ts)
    )


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
    """``decode_event`` for newline-separated lines, all decoded at once when they can be."""
    try:
        return decoder.decode_lines(body)
    except msgspec.ValidationError:
        return [decode_event(line) for line in body.split(b"\n") if line.strip()]
