"""JSON for what crosses the cores' boundaries: events (either way) and the frozen configs.

Events are written ``{"type": ClassName, field: value, ...}``: bytes as hex, enums as their
values, nested dataclasses as objects. Configs (``TransmitterConfig``, ``ReceiverConfig`` and
what they hold) are written as plain objects and read back by their field types, so a recording
rebuilds the very cores it was made with.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import types
import typing
from typing import Any

from firmware import events as gatt_events
from firmware.events import SensorSample, SensorState


class CodecError(ValueError):
    """A JSON value that does not make the object it should."""


def to_json(value: Any) -> Any:
    """The JSON form of an event, a config or a field value."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


_PLAIN = frozenset({int, float, str, bool, type(None)})


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def event_json(event: object) -> dict[str, Any]:
    """An event as ``{"type": ..., fields...}`` (a replay makes one per output: kept quick)."""
    kind = type(event)
    record: dict[str, Any] = {"type": kind.__name__}
    for name in _field_names(kind):
        value = getattr(event, name)
        record[name] = value if type(value) in _PLAIN else to_json(value)
    return record


def from_json(kind: Any, value: Any) -> Any:
    """Rebuild a value of type ``kind`` (a dataclass, enum, datetime, bytes, tuple, union or
    primitive) from its JSON form; ``CodecError`` when it does not fit."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return from_json(option, value)
            except (CodecError, TypeError, ValueError):
                continue
        raise CodecError(f"{value!r} is none of {kind}")
    if origin is tuple:
        if not isinstance(value, list):
            raise CodecError(f"expected a list, got {value!r}")
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], item) for item in value)
        return tuple(from_json(arg, item) for arg, item in zip(args, value, strict=True))
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise CodecError(f"expected an object for {kind.__name__}, got {value!r}")
        hints = _hints(kind)
        unknown = set(value) - set(hints) - {"type"}
        if unknown:
            raise CodecError(f"{kind.__name__} has no field {sorted(unknown)[0]!r}")
        try:
            return kind(**{k: from_json(hints[k], v) for k, v in value.items() if k != "type"})
        except TypeError as error:
            raise CodecError(f"{kind.__name__}: {error}") from None
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            raise CodecError(f"{value!r} is not a {kind.__name__}") from None
    if kind is datetime.datetime:
        if not isinstance(value, str):
            raise CodecError(f"expected a date and time, got {value!r}")
        return datetime.datetime.fromisoformat(value)
    if kind is bytes:
        if not isinstance(value, str):
            raise CodecError(f"expected hex, got {value!r}")
        return bytes.fromhex(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise CodecError(f"expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError(f"expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CodecError(f"expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise CodecError(f"expected a string, got {value!r}")
        return value
    raise CodecError(f"cannot read a {kind!r}")


# The GATT events a server core takes (``Transmitter.receive``), by name.
GATT_INPUTS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        gatt_events.Connected,
        gatt_events.MtuChanged,
        gatt_events.Disconnected,
        gatt_events.Read,
        gatt_events.Write,
        gatt_events.Subscribe,
        gatt_events.Sent,
    )
}


def gatt_input(value: Any) -> object:
    """A ``Transmitter.receive`` event from its JSON form."""
    if not isinstance(value, dict) or value.get("type") not in GATT_INPUTS:
        raise CodecError(f"not a GATT input event: {value!r}")
    return from_json(GATT_INPUTS[value["type"]], value)


def sensor_sample(raw_counts: Any, state: Any) -> SensorSample:
    return SensorSample(from_json(int, raw_counts), from_json(SensorState, state))
