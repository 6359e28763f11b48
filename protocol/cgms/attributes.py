"""The readable CGM attributes: Feature, Status, Session Start Time, Session Run Time
(CGMS v1.0.1 §3.2-§3.5)."""

from __future__ import annotations

import datetime
import enum
from dataclasses import asdict, dataclass
from typing import Any

from construct import (
    BitStruct,
    Container,
    If,
    Int8sl,
    Int8ul,
    Int16ul,
    Int24ul,
    Nibble,
    Struct,
    Terminated,
    this,
)

from protocol.cgms import framing
from protocol.cgms.gatt import FEATURE, SESSION_RUN_TIME, SESSION_START_TIME, STATUS
from protocol.errors import CrcError, FrameError


class FeatureFlags(enum.IntFlag):
    """CGM Feature bits (SPEC §3.2.1, Table 3.5); bits 17-23 are reserved."""

    CALIBRATION = 1 << 0
    PATIENT_HIGH_LOW_ALERTS = 1 << 1
    HYPO_ALERTS = 1 << 2
    HYPER_ALERTS = 1 << 3
    RATE_OF_INCREASE_DECREASE_ALERTS = 1 << 4
    DEVICE_SPECIFIC_ALERT = 1 << 5
    SENSOR_MALFUNCTION_DETECTION = 1 << 6
    SENSOR_TEMPERATURE_HIGH_LOW_DETECTION = 1 << 7
    SENSOR_RESULT_HIGH_LOW_DETECTION = 1 << 8
    LOW_BATTERY_DETECTION = 1 << 9
    SENSOR_TYPE_ERROR_DETECTION = 1 << 10
    GENERAL_DEVICE_FAULT = 1 << 11
    E2E_CRC = 1 << 12
    MULTIPLE_BOND = 1 << 13
    MULTIPLE_SESSIONS = 1 << 14
    TREND_INFORMATION = 1 << 15
    QUALITY = 1 << 16


class SampleType(enum.IntEnum):
    """Type nibble of the Feature's type/location octet (SPEC §3.2.2)."""

    CAPILLARY_WHOLE_BLOOD = 1
    CAPILLARY_PLASMA = 2
    VENOUS_WHOLE_BLOOD = 3
    VENOUS_PLASMA = 4
    ARTERIAL_WHOLE_BLOOD = 5
    ARTERIAL_PLASMA = 6
    UNDETERMINED_WHOLE_BLOOD = 7
    UNDETERMINED_PLASMA = 8
    INTERSTITIAL_FLUID = 9
    CONTROL_SOLUTION = 10


class SampleLocation(enum.IntEnum):
    """Location nibble of the Feature's type/location octet (SPEC §3.2.3)."""

    FINGER = 1
    ALTERNATE_SITE_TEST = 2
    EARLOBE = 3
    CONTROL_SOLUTION = 4
    SUBCUTANEOUS_TISSUE = 5
    NOT_AVAILABLE = 15


NO_CRC = 0xFFFF  # the Feature's CRC field when E2E-CRC is not supported

# Type/location octet: location in the high nibble, type in the low nibble (SPEC §3.2).
TYPE_LOCATION = BitStruct("location" / Nibble, "type" / Nibble)

# CGM Feature (SPEC §3.2): features u24 | type/location u8 | E2E-CRC u16 (always present;
# 0xFFFF unless the E2E-CRC feature bit is set)
FEATURE_FORMAT = Struct(
    "features" / Int24ul,
    "type_location" / TYPE_LOCATION,
    "crc" / Int16ul,
    Terminated,
)

# CGM Status (SPEC §3.3): time_offset u16 min | status u8 | cal_temp u8 | warning u8 | [E2E-CRC u16]
STATUS_FORMAT = Struct(
    "time_offset" / Int16ul,
    "status" / Int8ul,
    "cal_temp" / Int8ul,
    "warning" / Int8ul,
    "crc" / If(this._params.e2e_crc, Int16ul),
    Terminated,
)

# CGM Session Start Time (SPEC §3.4): year u16 (0 unknown) | month u8 | day u8 | hours u8
#   | minutes u8 | seconds u8 | time_zone s8 (15-min units) | dst u8 | [E2E-CRC u16]
SESSION_START_TIME_FORMAT = Struct(
    "year" / Int16ul,
    "month" / Int8ul,
    "day" / Int8ul,
    "hours" / Int8ul,
    "minutes" / Int8ul,
    "seconds" / Int8ul,
    "time_zone" / Int8sl,
    "dst" / Int8ul,
    "crc" / If(this._params.e2e_crc, Int16ul),
    Terminated,
)

# CGM Session Run Time (SPEC §3.5): hours u16 | [E2E-CRC u16]
SESSION_RUN_TIME_FORMAT = Struct(
    "hours" / Int16ul,
    "crc" / If(this._params.e2e_crc, Int16ul),
    Terminated,
)


@dataclass(frozen=True, slots=True)
class Feature:
    features: int  # FeatureFlags
    type: int = SampleType.INTERSTITIAL_FLUID
    location: int = SampleLocation.SUBCUTANEOUS_TISSUE

    @property
    def e2e_crc(self) -> bool:
        return bool(self.features & FeatureFlags.E2E_CRC)


@dataclass(frozen=True, slots=True)
class Status:
    time_offset: int
    status: int = 0
    cal_temp: int = 0
    warning: int = 0


TIME_ZONE_UNKNOWN = -128
DST_CODES = {0: "standard time", 2: "+0.5 h", 4: "+1 h", 8: "+2 h", 255: "unknown"}


@dataclass(frozen=True, slots=True)
class SessionStartTime:
    """Date and time of session start; ``time_zone`` in 15-minute units, ``dst`` a wire code."""

    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int
    time_zone: int = TIME_ZONE_UNKNOWN
    dst: int = 255

    @classmethod
    def from_datetime(
        cls, moment: datetime.datetime, time_zone: int = TIME_ZONE_UNKNOWN, dst: int = 255
    ) -> SessionStartTime:
        return cls(
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            time_zone,
            dst,
        )

    def to_datetime(self) -> datetime.datetime:
        """The date and time (naive, as written); ValueError for an unknown or impossible date."""
        return datetime.datetime(
            self.year, self.month, self.day, self.hours, self.minutes, self.seconds
        )


@dataclass(frozen=True, slots=True)
class SessionRunTime:
    hours: int


# --- CGM Feature ---


def encode_feature(value: Feature) -> bytes:
    title = FEATURE.title
    features = framing.require_int(title, "features", value.features, 0, 0xFFFFFF)
    data = framing.build(
        title,
        FEATURE_FORMAT,
        {
            "features": features,
            "type_location": {
                "type": framing.require_int(title, "type", value.type, 0, 15),
                "location": framing.require_int(title, "location", value.location, 0, 15),
            },
            "crc": NO_CRC,
        },
    )
    return framing.with_crc(data) if value.e2e_crc else data


FEATURE_SIZE = 6


def _parse_feature(data: bytes) -> Any:
    title = FEATURE.title
    if len(data) != FEATURE_SIZE:
        raise FrameError(
            title, f"frame has {len(data)} bytes, expected {FEATURE_SIZE} (CRC always present)"
        )
    parsed = framing.parse(title, FEATURE_FORMAT, data)
    if parsed.features & FeatureFlags.E2E_CRC:
        framing.check_crc(title, data)
    elif parsed.crc != NO_CRC:
        raise CrcError(
            title, f"E2E-CRC not supported, so the CRC field must be 0xFFFF, is 0x{parsed.crc:04X}"
        )
    return parsed


def decode_feature(data: bytes, e2e_crc: bool | None = None) -> Feature:
    """The Feature value. Its CRC field is always present and checked when the E2E-CRC bit
    is set (``e2e_crc`` is accepted for a uniform signature; the frame's own bit decides)."""
    parsed = _parse_feature(data)
    return Feature(parsed.features, parsed.type_location.type, parsed.type_location.location)


def feature_fields(data: bytes, e2e_crc: bool | None = None) -> dict[str, Any]:
    parsed = _parse_feature(data)
    return {
        "features": parsed.features,
        "feature_names": [flag.name.lower() for flag in FeatureFlags if parsed.features & flag],
        "type": parsed.type_location.type,
        "location": parsed.type_location.location,
        "crc": parsed.crc,
    }


def feature_from_fields(value: dict[str, Any]) -> Feature:
    return Feature(**_pick(FEATURE.title, value, ("features",), ("type", "location")))


# --- CGM Status, Session Start Time, Session Run Time: fixed layout, optional CRC ---


def _check_session_start_time(parsed: Any) -> None:
    title = SESSION_START_TIME.title
    if parsed.year != 0:
        framing.require_int(title, "year", parsed.year, 1582, 9999)
    framing.require_int(title, "month", parsed.month, 0, 12)
    framing.require_int(title, "day", parsed.day, 0, 31)
    framing.require_int(title, "hours", parsed.hours, 0, 23)
    framing.require_int(title, "minutes", parsed.minutes, 0, 59)
    framing.require_int(title, "seconds", parsed.seconds, 0, 59)
    if parsed.time_zone != TIME_ZONE_UNKNOWN:
        framing.require_int(title, "time_zone", parsed.time_zone, -48, 56)
    if parsed.dst not in DST_CODES:
        codes = ", ".join(str(code) for code in DST_CODES)
        raise FrameError(title, f"dst is {parsed.dst}, allowed {codes}")


@dataclass(frozen=True, slots=True)
class _Fixed:
    """A fixed-size value with an optional trailing E2E-CRC."""

    title: str
    fmt: Struct
    plain_size: int
    cls: type
    limits: dict[str, tuple[int, int]]
    check: Any = None

    def parse(self, data: bytes, e2e_crc: bool | None) -> Any:
        has_crc = framing.crc_present(self.title, data, self.plain_size, e2e_crc)
        parsed = framing.parse(self.title, self.fmt, data, e2e_crc=has_crc)
        if self.check:
            self.check(parsed)
        return parsed

    def decode(self, data: bytes, e2e_crc: bool | None = None) -> Any:
        parsed = self.parse(data, e2e_crc)
        return self.cls(**{name: parsed[name] for name in self.limits})

    def fields(self, data: bytes, e2e_crc: bool | None = None) -> dict[str, Any]:
        parsed = self.parse(data, e2e_crc)
        return {name: parsed[name] for name in (*self.limits, "crc")}

    def encode(self, value: Any, e2e_crc: bool = False) -> bytes:
        items = asdict(value)
        for name, (low, high) in self.limits.items():
            framing.require_int(self.title, name, items[name], low, high)
        if self.check:
            self.check(Container(items))
        data = framing.build(self.title, self.fmt, {**items, "crc": 0}, e2e_crc=e2e_crc)
        return framing.with_crc(data) if e2e_crc else data

    def from_fields(self, value: dict[str, Any]) -> Any:
        names = tuple(self.limits)
        required = tuple(name for name in names if name not in _DEFAULTED)
        optional = tuple(name for name in names if name in _DEFAULTED)
        return self.cls(**_pick(self.title, value, required, optional))


_DEFAULTED = {"status", "cal_temp", "warning", "time_zone", "dst"}
_U8 = (0, 0xFF)

STATUS_CODEC = _Fixed(
    STATUS.title,
    STATUS_FORMAT,
    5,
    Status,
    {"time_offset": (0, 0xFFFF), "status": _U8, "cal_temp": _U8, "warning": _U8},
)
SESSION_START_TIME_CODEC = _Fixed(
    SESSION_START_TIME.title,
    SESSION_START_TIME_FORMAT,
    9,
    SessionStartTime,
    {
        "year": (0, 0xFFFF),
        "month": _U8,
        "day": _U8,
        "hours": _U8,
        "minutes": _U8,
        "seconds": _U8,
        "time_zone": (-128, 127),
        "dst": _U8,
    },
    _check_session_start_time,
)
SESSION_RUN_TIME_CODEC = _Fixed(
    SESSION_RUN_TIME.title, SESSION_RUN_TIME_FORMAT, 2, SessionRunTime, {"hours": (0, 0xFFFF)}
)


def _pick(
    title: str, value: Any, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameError(title, "expected a JSON object")
    missing = [name for name in required if name not in value]
    if missing:
        raise FrameError(title, f"missing {', '.join(missing)}")
    return {name: value[name] for name in (*required, *optional) if name in value}
