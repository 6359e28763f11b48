"""CGM Specific Ops Control Point (0x2AAC, CGMS v1.0.1 §3.7)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from construct import If, Int8ul, Int16ul, Pass, Struct, Switch, Terminated, this

from protocol import sfloat
from protocol.cgms import framing
from protocol.cgms.attributes import TYPE_LOCATION, SampleLocation, SampleType
from protocol.cgms.gatt import SOCP
from protocol.errors import ControlPointError, FrameError, MissingCrcError
from protocol.sfloat import SFLOAT, SFloat

TITLE = SOCP.title


class SocpOpcode(enum.IntEnum):
    SET_COMMUNICATION_INTERVAL = 0x01
    GET_COMMUNICATION_INTERVAL = 0x02
    COMMUNICATION_INTERVAL_RESPONSE = 0x03
    SET_CALIBRATION_VALUE = 0x04
    GET_CALIBRATION_VALUE = 0x05
    CALIBRATION_VALUE_RESPONSE = 0x06
    SET_PATIENT_HIGH_ALERT_LEVEL = 0x07
    GET_PATIENT_HIGH_ALERT_LEVEL = 0x08
    PATIENT_HIGH_ALERT_LEVEL_RESPONSE = 0x09
    SET_PATIENT_LOW_ALERT_LEVEL = 0x0A
    GET_PATIENT_LOW_ALERT_LEVEL = 0x0B
    PATIENT_LOW_ALERT_LEVEL_RESPONSE = 0x0C
    SET_HYPO_ALERT_LEVEL = 0x0D
    GET_HYPO_ALERT_LEVEL = 0x0E
    HYPO_ALERT_LEVEL_RESPONSE = 0x0F
    SET_HYPER_ALERT_LEVEL = 0x10
    GET_HYPER_ALERT_LEVEL = 0x11
    HYPER_ALERT_LEVEL_RESPONSE = 0x12
    SET_RATE_OF_DECREASE_ALERT_LEVEL = 0x13
    GET_RATE_OF_DECREASE_ALERT_LEVEL = 0x14
    RATE_OF_DECREASE_ALERT_LEVEL_RESPONSE = 0x15
    SET_RATE_OF_INCREASE_ALERT_LEVEL = 0x16
    GET_RATE_OF_INCREASE_ALERT_LEVEL = 0x17
    RATE_OF_INCREASE_ALERT_LEVEL_RESPONSE = 0x18
    RESET_DEVICE_SPECIFIC_ALERT = 0x19
    START_SESSION = 0x1A
    STOP_SESSION = 0x1B
    RESPONSE_CODE = 0x1C


class SocpResponseCode(enum.IntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERAND = 3
    PROCEDURE_NOT_COMPLETED = 4
    PARAMETER_OUT_OF_RANGE = 5


class CalibrationStatus(enum.IntFlag):
    REJECTED = 0x01
    OUT_OF_RANGE = 0x02
    PENDING = 0x04


# The six alert levels: (set, get, response) opcodes; levels are SFLOAT mg/dL (rates mg/dL/min).
ALERT_LEVELS: dict[str, tuple[SocpOpcode, SocpOpcode, SocpOpcode]] = {
    name: (SocpOpcode(first), SocpOpcode(first + 1), SocpOpcode(first + 2))
    for name, first in (
        ("patient_high", 0x07),
        ("patient_low", 0x0A),
        ("hypo", 0x0D),
        ("hyper", 0x10),
        ("rate_of_decrease", 0x13),
        ("rate_of_increase", 0x16),
    )
}
_LEVEL_OPCODES = {opcode for triple in ALERT_LEVELS.values() for opcode in (triple[0], triple[2])}

# Calibration record (SPEC §3.7.2.4, 10 bytes): glucose SFLOAT mg/dL | calibration_time u16 min
#   | type/location u8 | next_calibration_time u16 min (0 = now) | record_number u16 | status u8
CALIBRATION_RECORD = Struct(
    "glucose" / SFLOAT,
    "calibration_time" / Int16ul,
    "type_location" / TYPE_LOCATION,
    "next_calibration_time" / Int16ul,
    "record_number" / Int16ul,
    "status" / Int8ul,
)

# SOCP value (SPEC §3.7.1): opcode u8 | operand (by opcode) | [E2E-CRC u16]
#   0x01, 0x03: interval_min u8          0x04, 0x06: calibration record (10 bytes)
#   0x05: record_number u16 (0xFFFF = last)
#   0x07, 0x09, 0x0A, 0x0C, 0x0D, 0x0F, 0x10, 0x12, 0x13, 0x15, 0x16, 0x18: level SFLOAT
#   0x1C: request_opcode u8 | response_code u8          all other opcodes: no operand
SOCP_OPERANDS: dict[int, Struct] = {
    SocpOpcode.SET_COMMUNICATION_INTERVAL: Struct("interval_min" / Int8ul),
    SocpOpcode.COMMUNICATION_INTERVAL_RESPONSE: Struct("interval_min" / Int8ul),
    SocpOpcode.SET_CALIBRATION_VALUE: Struct("calibration" / CALIBRATION_RECORD),
    SocpOpcode.CALIBRATION_VALUE_RESPONSE: Struct("calibration" / CALIBRATION_RECORD),
    SocpOpcode.GET_CALIBRATION_VALUE: Struct("record_number" / Int16ul),
    **{opcode: Struct("level" / SFLOAT) for opcode in _LEVEL_OPCODES},
    SocpOpcode.RESPONSE_CODE: Struct("request_opcode" / Int8ul, "response_code" / Int8ul),
}
SOCP_FORMAT = Struct(
    "opcode" / Int8ul,
    "operand" / Switch(this.opcode, SOCP_OPERANDS, default=Pass),
    "crc" / If(this._params.e2e_crc, Int16ul),
    Terminated,
)
_OPERAND_SIZES = {opcode: fmt.sizeof() for opcode, fmt in SOCP_OPERANDS.items()}
LAST_CALIBRATION = 0xFFFF


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    glucose: SFloat
    calibration_time: int
    type: int = SampleType.CAPILLARY_PLASMA
    location: int = SampleLocation.FINGER
    next_calibration_time: int = 0
    record_number: int = 0
    status: int = 0


@dataclass(frozen=True, slots=True)
class SocpFrame:
    """One SOCP value; only the field the opcode carries is set (see SOCP_OPERANDS)."""

    opcode: int
    interval_min: int | None = None
    calibration: CalibrationRecord | None = None
    record_number: int | None = None
    level: SFloat | None = None
    request_opcode: int | None = None
    response_code: int | None = None


def response(request_opcode: int, response_code: SocpResponseCode) -> SocpFrame:
    return SocpFrame(
        SocpOpcode.RESPONSE_CODE, request_opcode=request_opcode, response_code=response_code
    )


def _refuse(opcode: int, message: str, code: SocpResponseCode) -> ControlPointError:
    return ControlPointError(TITLE, message, request_opcode=opcode, response_code=int(code))


def _parse(data: bytes, e2e_crc: bool | None) -> Any:
    if e2e_crc and len(data) < 3:
        raise MissingCrcError(TITLE, f"E2E-CRC required, frame has {len(data)} bytes and no CRC")
    if not data:
        raise _refuse(
            0, "frame is empty, expected an opcode", SocpResponseCode.OP_CODE_NOT_SUPPORTED
        )
    opcode = data[0]
    size = _OPERAND_SIZES.get(opcode, 0)
    if e2e_crc:
        if len(data) < 3 or (opcode in SocpOpcode.__members__.values() and len(data) == 1 + size):
            raise MissingCrcError(
                TITLE, f"E2E-CRC required, frame has {len(data)} bytes and no CRC"
            )
        framing.check_crc(TITLE, data)
    if opcode not in SocpOpcode.__members__.values():
        raise _refuse(
            opcode, f"opcode 0x{opcode:02X} is reserved", SocpResponseCode.OP_CODE_NOT_SUPPORTED
        )
    operand = len(data) - 1 - (2 if e2e_crc else 0)
    if operand != size:
        name = SocpOpcode(opcode).name.replace("_", " ").lower()
        crc = ", plus E2E-CRC" if e2e_crc else " (E2E-CRC off)"
        raise _refuse(
            opcode,
            f"{name}: operand has {operand} bytes, expected {size}{crc}",
            SocpResponseCode.INVALID_OPERAND,
        )
    parsed = framing.parse(TITLE, SOCP_FORMAT, data, e2e_crc=bool(e2e_crc))
    if (
        opcode == SocpOpcode.RESPONSE_CODE
        and parsed.operand.response_code not in SocpResponseCode.__members__.values()
    ):
        raise _refuse(
            opcode,
            f"response_code {parsed.operand.response_code} is reserved",
            SocpResponseCode.INVALID_OPERAND,
        )
    return parsed


def decode(data: bytes, e2e_crc: bool | None = None) -> SocpFrame:
    """A SOCP request or response. ``e2e_crc`` true: the frame must end with a valid CRC.

    A server answers a :class:`ControlPointError` with ``1C <request_opcode> <response_code>``,
    :class:`MissingCrcError` with ATT 0x80 and :class:`CrcError` with ATT 0x81.
    """
    parsed = _parse(data, e2e_crc)
    operand = dict(parsed.operand or {})
    operand.pop("_io", None)
    calibration = operand.get("calibration")
    if calibration is not None:
        operand["calibration"] = CalibrationRecord(
            glucose=calibration.glucose,
            calibration_time=calibration.calibration_time,
            type=calibration.type_location.type,
            location=calibration.type_location.location,
            next_calibration_time=calibration.next_calibration_time,
            record_number=calibration.record_number,
            status=calibration.status,
        )
    return SocpFrame(opcode=parsed.opcode, **operand)


def fields(data: bytes, e2e_crc: bool | None = None) -> dict[str, Any]:
    frame = decode(data, e2e_crc)
    result: dict[str, Any] = {"opcode": frame.opcode}
    for name in SocpFrame.__slots__[1:]:
        value = getattr(frame, name)
        if isinstance(value, CalibrationRecord):
            value = {n: getattr(value, n) for n in CalibrationRecord.__slots__}
            value["glucose"] = sfloat.to_json(value["glucose"])
        elif name == "level":
            value = sfloat.to_json(value)
        if value is not None:
            result[name] = value
    if e2e_crc:
        result["crc"] = int.from_bytes(data[-2:], "little")
    return result


def encode(frame: SocpFrame, e2e_crc: bool = False) -> bytes:
    """The wire bytes of ``frame``, with a CRC when ``e2e_crc``."""
    opcode = framing.require_int(TITLE, "opcode", frame.opcode, 0, 0xFF)
    if opcode not in SocpOpcode.__members__.values():
        raise FrameError(TITLE, f"opcode 0x{opcode:02X} is reserved")
    given = {name for name in SocpFrame.__slots__[1:] if getattr(frame, name) is not None}
    operand_format = SOCP_OPERANDS.get(opcode)
    wanted = {sub.name for sub in operand_format.subcons} if operand_format else set()
    if given != wanted:
        name = SocpOpcode(opcode).name.lower()
        expected = ", ".join(sorted(wanted)) or "no operand"
        raise FrameError(
            TITLE, f"{name} takes {expected}, got {', '.join(sorted(given)) or 'none'}"
        )
    operand: dict[str, Any] = {name: getattr(frame, name) for name in wanted}
    if frame.calibration is not None:
        record = frame.calibration
        operand["calibration"] = {
            "glucose": record.glucose,
            "calibration_time": record.calibration_time,
            "type_location": {"type": record.type, "location": record.location},
            "next_calibration_time": record.next_calibration_time,
            "record_number": record.record_number,
            "status": record.status,
        }
    data = framing.build(
        TITLE,
        SOCP_FORMAT,
        {"opcode": opcode, "operand": operand or None, "crc": 0},
        e2e_crc=e2e_crc,
    )
    data = framing.with_crc(data) if e2e_crc else data
    try:
        _parse(data, e2e_crc)
    except ControlPointError as error:
        raise FrameError(TITLE, error.detail) from None
    return data


def from_fields(value: dict[str, Any]) -> SocpFrame:
    if not isinstance(value, dict) or "opcode" not in value:
        raise FrameError(TITLE, 'expected a JSON object with at least "opcode"')
    items = {key: item for key, item in value.items() if key != "crc"}
    unknown = set(items) - set(SocpFrame.__slots__)
    if unknown:
        raise FrameError(TITLE, f"unknown field(s): {', '.join(sorted(unknown))}")
    if items.get("level") is not None:
        items["level"] = sfloat.from_json(items["level"], f"{TITLE} level")
    calibration = items.get("calibration")
    if calibration is not None:
        if not isinstance(calibration, dict) or "glucose" not in calibration:
            raise FrameError(
                TITLE, "calibration must be an object with at least glucose and calibration_time"
            )
        unknown = set(calibration) - set(CalibrationRecord.__slots__)
        if unknown:
            raise FrameError(TITLE, f"calibration: unknown field(s): {', '.join(sorted(unknown))}")
        glucose = sfloat.from_json(calibration["glucose"], f"{TITLE} calibration glucose")
        try:
            items["calibration"] = CalibrationRecord(**{**calibration, "glucose": glucose})
        except TypeError as error:
            raise FrameError(TITLE, f"calibration: {error}") from None
    return SocpFrame(**items)
