"""CGM Measurement (0x2AA7, CGMS v1.0.1 §3.1): one or more records per notification."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from construct import Container, If, Int8ul, Int16ul, Rebuild, Struct, Terminated, this

from protocol import sfloat
from protocol.cgms import framing
from protocol.cgms.gatt import MEASUREMENT
from protocol.errors import FrameError, MissingCrcError
from protocol.sfloat import SFLOAT, SFloat

TITLE = MEASUREMENT.title

# Flags octet (SPEC §3.1.1.2). Bits 2-4 are reserved and ignored on receipt.
FLAG_TREND = 0x01
FLAG_QUALITY = 0x02
FLAG_WARNING = 0x20
FLAG_CAL_TEMP = 0x40
FLAG_STATUS = 0x80
MIN_RECORD_SIZE = 6


def _size(ctx: Any) -> int:
    return record_size_for_flags(_flags(ctx), ctx._params.e2e_crc)


def _flags(ctx: Any) -> int:
    return (
        (FLAG_TREND if ctx.trend is not None else 0)
        | (FLAG_QUALITY if ctx.quality is not None else 0)
        | (FLAG_WARNING if ctx.warning is not None else 0)
        | (FLAG_CAL_TEMP if ctx.cal_temp is not None else 0)
        | (FLAG_STATUS if ctx.status is not None else 0)
    )


# One record (SPEC §3.1, Figure 3.1); optional fields appear in this order when their flag is set:
#   size u8 | flags u8 | glucose SFLOAT mg/dL | time_offset u16 min
#   | [status u8] | [cal_temp u8] | [warning u8]       (annunciation, least significant octet first)
#   | [trend SFLOAT mg/dL/min] | [quality SFLOAT %] | [E2E-CRC u16]
# `size` counts the whole record, itself and the CRC included.
MEASUREMENT_RECORD = Struct(
    "size" / Rebuild(Int8ul, _size),
    "flags" / Rebuild(Int8ul, _flags),
    "glucose" / SFLOAT,
    "time_offset" / Int16ul,
    "status" / If(lambda ctx: ctx.flags & FLAG_STATUS, Int8ul),
    "cal_temp" / If(lambda ctx: ctx.flags & FLAG_CAL_TEMP, Int8ul),
    "warning" / If(lambda ctx: ctx.flags & FLAG_WARNING, Int8ul),
    "trend" / If(lambda ctx: ctx.flags & FLAG_TREND, SFLOAT),
    "quality" / If(lambda ctx: ctx.flags & FLAG_QUALITY, SFLOAT),
    "crc" / If(this._params.e2e_crc, Int16ul),
    Terminated,
)


@dataclass(frozen=True, slots=True)
class MeasurementRecord:
    """One CGM measurement. Optional fields are None when absent from the record.

    ``status``, ``cal_temp`` and ``warning`` are the annunciation octets
    (see :mod:`protocol.cgms.annunciation`); ``trend`` is mg/dL/min, ``quality`` percent.
    """

    glucose: SFloat
    time_offset: int
    status: int | None = None
    cal_temp: int | None = None
    warning: int | None = None
    trend: SFloat | None = None
    quality: SFloat | None = None

    @property
    def flags(self) -> int:
        return _flags(self)


def record_size_for_flags(flags: int, e2e_crc: bool) -> int:
    """The size byte a record with these flags must carry."""
    return (
        MIN_RECORD_SIZE
        + bin(flags & (FLAG_STATUS | FLAG_CAL_TEMP | FLAG_WARNING)).count("1")
        + (2 if flags & FLAG_TREND else 0)
        + (2 if flags & FLAG_QUALITY else 0)
        + (2 if e2e_crc else 0)
    )


def record_size(record: MeasurementRecord, e2e_crc: bool = False) -> int:
    """Bytes ``record`` takes on the wire (to pack records into one notification)."""
    return record_size_for_flags(record.flags, e2e_crc)


def encode(records: Sequence[MeasurementRecord], e2e_crc: bool = False) -> bytes:
    """One notification holding ``records`` back to back, each with a CRC when ``e2e_crc``."""
    if not records:
        raise FrameError(TITLE, "a notification holds at least one record")
    return b"".join(_encode_record(record, e2e_crc) for record in records)


def _encode_record(record: MeasurementRecord, e2e_crc: bool) -> bytes:
    flags = record.flags
    values = {
        "size": record_size_for_flags(flags, e2e_crc),
        "flags": flags,
        "glucose": record.glucose,
        "time_offset": framing.require_int(TITLE, "time_offset", record.time_offset, 0, 0xFFFF),
        "status": _octet("status", record.status),
        "cal_temp": _octet("cal_temp", record.cal_temp),
        "warning": _octet("warning", record.warning),
        "trend": record.trend,
        "quality": record.quality,
        "crc": 0,
    }
    try:
        data = _layout(flags, e2e_crc).pack(values)
    except FrameError as error:  # an SFLOAT that does not fit, named by its field
        raise FrameError(TITLE, str(error)) from None
    return framing.with_crc(data) if e2e_crc else data


def _octet(field: str, value: int | None) -> int | None:
    return None if value is None else framing.require_int(TITLE, field, value, 0, 0xFF)


def decode(data: bytes, e2e_crc: bool | None = None) -> tuple[MeasurementRecord, ...]:
    """Every record of one notification.

    ``e2e_crc``: None = each record's size byte tells whether it carries a CRC (checked when
    present); True = every record must carry a valid CRC; False = none may.
    """
    return tuple(
        MeasurementRecord(
            glucose=parsed["glucose"],
            time_offset=parsed["time_offset"],
            status=parsed.get("status"),
            cal_temp=parsed.get("cal_temp"),
            warning=parsed.get("warning"),
            trend=parsed.get("trend"),
            quality=parsed.get("quality"),
        )
        for parsed in _parse(data, e2e_crc)
    )


def fields(data: bytes, e2e_crc: bool | None = None) -> dict[str, Any]:
    """The notification as JSON-ready wire fields (``cgmsim decode measurement``)."""
    return {
        "records": [
            {
                "size": parsed["size"],
                "flags": parsed["flags"],
                "glucose": sfloat.to_json(parsed["glucose"]),
                "time_offset": parsed["time_offset"],
                "status": parsed.get("status"),
                "cal_temp": parsed.get("cal_temp"),
                "warning": parsed.get("warning"),
                "trend": sfloat.to_json(parsed.get("trend")),
                "quality": sfloat.to_json(parsed.get("quality")),
                "crc": parsed.get("crc"),
            }
            for parsed in _parse(data, e2e_crc)
        ]
    }


def from_fields(value: dict[str, Any]) -> tuple[MeasurementRecord, ...]:
    """Records from the JSON that :func:`fields` produces (size, flags and crc are derived)."""
    records = value.get("records") if isinstance(value, dict) else None
    if not isinstance(records, list) or not records:
        raise FrameError(TITLE, 'expected {"records": [ {...}, ... ]} with at least one record')
    result = []
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise FrameError(TITLE, f"record {number}: expected an object")
        missing = {"glucose", "time_offset"} - record.keys()
        if missing:
            raise FrameError(TITLE, f"record {number}: missing {', '.join(sorted(missing))}")

        def optional_sfloat(key: str, record: dict[str, Any] = record) -> SFloat | None:
            raw = record.get(key)
            return None if raw is None else sfloat.from_json(raw, f"{TITLE} {key}")

        result.append(
            MeasurementRecord(
                glucose=sfloat.from_json(record["glucose"], f"{TITLE} glucose"),
                time_offset=record["time_offset"],
                status=record.get("status"),
                cal_temp=record.get("cal_temp"),
                warning=record.get("warning"),
                trend=optional_sfloat("trend"),
                quality=optional_sfloat("quality"),
            )
        )
    return tuple(result)


@functools.cache
def _layout(flags: int, e2e_crc: bool) -> framing.FlatLayout:
    context = Container(flags=flags, _params=Container(e2e_crc=e2e_crc))
    return framing.flat_layout(MEASUREMENT_RECORD, context)


def _parse(data: bytes, e2e_crc: bool | None) -> list[dict[str, Any]]:
    """Validated records as dicts of MEASUREMENT_RECORD's fields (absent fields None)."""
    if not data:
        raise FrameError(TITLE, "notification is empty")
    parsed = []
    position, number = 0, 1
    while position < len(data):
        title = TITLE if position == 0 and len(data) == data[0] else f"{TITLE} record {number}"
        left = len(data) - position
        size = data[position]
        if size < MIN_RECORD_SIZE:
            raise FrameError(
                title, f"size byte says {size}, a record has at least {MIN_RECORD_SIZE}"
            )
        if size > left:
            raise FrameError(title, f"size byte says {size}, record has {left} bytes")
        flags = data[position + 1]
        plain = record_size_for_flags(flags, False)
        if size == plain + 2 and e2e_crc is not False:
            has_crc = True
        elif size == plain and not e2e_crc:
            has_crc = False
        else:
            if size == plain:
                raise MissingCrcError(title, "E2E-CRC required, record carries none")
            expected = {False: f"{plain}", True: f"{plain + 2}"}.get(
                e2e_crc,
                f"{plain}, or {plain + 2} with E2E-CRC",  # type: ignore[arg-type]
            )
            raise FrameError(title, f"size byte says {size}, flags 0x{flags:02X} give {expected}")
        record = data[position : position + size]
        if has_crc:
            framing.check_crc(title, record)
        parsed.append(_layout(flags, has_crc).unpack(record))
        position += size
        number += 1
    return parsed
