"""One codec per CGMS characteristic, looked up by CLI name or UUID."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.cgms import attributes, gatt, measurement, racp, socp
from protocol.errors import FrameError


@dataclass(frozen=True, slots=True)
class Codec:
    """How one characteristic's value goes to and from bytes and JSON.

    ``decode(data, e2e_crc)`` -> typed value; ``encode(value, e2e_crc)`` -> bytes;
    ``fields(data, e2e_crc)`` -> JSON-ready wire fields; ``from_fields(json)`` -> typed value.
    ``e2e_crc``: None = the frame tells where it can, True = CRC mandatory, False = no CRC.
    """

    characteristic: gatt.Characteristic
    decode: Callable[[bytes, bool | None], Any]
    encode: Callable[[Any, bool], bytes]
    fields: Callable[[bytes, bool | None], dict[str, Any]]
    from_fields: Callable[[Any], Any]


CODECS: dict[str, Codec] = {
    codec.characteristic.name: codec
    for codec in (
        Codec(
            gatt.MEASUREMENT,
            measurement.decode,
            measurement.encode,
            measurement.fields,
            measurement.from_fields,
        ),
        Codec(
            gatt.FEATURE,
            attributes.decode_feature,
            lambda value, e2e_crc=False: attributes.encode_feature(value),
            attributes.feature_fields,
            attributes.feature_from_fields,
        ),
        *(
            Codec(char, fixed.decode, fixed.encode, fixed.fields, fixed.from_fields)
            for char, fixed in (
                (gatt.STATUS, attributes.STATUS_CODEC),
                (gatt.SESSION_START_TIME, attributes.SESSION_START_TIME_CODEC),
                (gatt.SESSION_RUN_TIME, attributes.SESSION_RUN_TIME_CODEC),
            )
        ),
        Codec(gatt.RACP, racp.decode, racp.encode, racp.fields, racp.from_fields),
        Codec(gatt.SOCP, socp.decode, socp.encode, socp.fields, socp.from_fields),
    )
}


def codec_for(name: str) -> Codec:
    """The codec for a CLI name (``measurement``) or a UUID (``2aa7``, ``0x2AA7``)."""
    key = name.strip().lower()
    if key in CODECS:
        return CODECS[key]
    for codec in CODECS.values():
        if key.removeprefix("0x") == f"{codec.characteristic.uuid:04x}":
            return codec
    names = ", ".join(
        f"{c.characteristic.name} ({c.characteristic.uuid:04x})" for c in CODECS.values()
    )
    raise FrameError("characteristic", f"unknown {name!r}; one of {names}")
