"""Record Access Control Point (0x2A52, CGMS v1.0.1 §3.6). Never carries an E2E-CRC."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from construct import Int8ul, Int16ul, Pass, Struct, Switch, Terminated, this

from protocol.cgms import framing
from protocol.cgms.gatt import RACP
from protocol.errors import ControlPointError, FrameError

TITLE = RACP.title


class RacpOpcode(enum.IntEnum):
    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT_OPERATION = 3
    REPORT_NUMBER_OF_STORED_RECORDS = 4
    NUMBER_OF_STORED_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6


class RacpOperator(enum.IntEnum):
    NULL = 0
    ALL_RECORDS = 1
    LESS_THAN_OR_EQUAL_TO = 2
    GREATER_THAN_OR_EQUAL_TO = 3
    WITHIN_RANGE_OF = 4
    FIRST_RECORD = 5
    LAST_RECORD = 6


class RacpResponseCode(enum.IntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


FILTER_TIME_OFFSET = 0x01  # the only filter type CGMS defines (SPEC §3.6.2)
# A procedure that makes no progress for 30 s has failed, on either side (SPEC §3.6, CGMP §4.9;
# shared/spec/cgms.md). A timer of the link: on a link whose clock is not the session's, the
# cores take it in session time from their configs.
PROCEDURE_TIMEOUT_MS = 30_000

_RECORD_OPCODES = {
    RacpOpcode.REPORT_STORED_RECORDS,
    RacpOpcode.DELETE_STORED_RECORDS,
    RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
}
_FILTERED = {RacpOperator.LESS_THAN_OR_EQUAL_TO, RacpOperator.GREATER_THAN_OR_EQUAL_TO}

# RACP value (SPEC §3.6.1): opcode u8 | operator u8 | operand, by opcode and operator:
#   opcodes 1, 2, 4 with operator 2 (<=) or 3 (>=):  filter_type u8 (0x01) | time_offset u16
#   opcodes 1, 2, 4 with operator 4 (within range):  filter_type u8 (0x01) | min u16 | max u16
#   opcodes 1, 2, 4 with operators 1, 5, 6; opcode 3 (abort, operator 0): no operand
#   opcode 5 (number of records response, operator 0): number_of_records u16
#   opcode 6 (response code, operator 0): request_opcode u8 | response_code u8
RACP_FORMAT = Struct(
    "opcode" / Int8ul,
    "operator" / Int8ul,
    "operand"
    / Switch(
        this.opcode,
        {
            RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE: Struct("number_of_records" / Int16ul),
            RacpOpcode.RESPONSE_CODE: Struct("request_opcode" / Int8ul, "response_code" / Int8ul),
        },
        default=Switch(
            this.operator,
            {
                RacpOperator.LESS_THAN_OR_EQUAL_TO: Struct(
                    "filter_type" / Int8ul, "operand" / Int16ul
                ),
                RacpOperator.GREATER_THAN_OR_EQUAL_TO: Struct(
                    "filter_type" / Int8ul, "operand" / Int16ul
                ),
                RacpOperator.WITHIN_RANGE_OF: Struct(
                    "filter_type" / Int8ul, "minimum" / Int16ul, "maximum" / Int16ul
                ),
            },
            default=Pass,
        ),
    ),
    Terminated,
)


@dataclass(frozen=True, slots=True)
class RacpFrame:
    """One RACP value. Fields not used by ``opcode`` are None.

    Requests (opcodes 1-4): ``operator`` and, for <=, >= and within range, ``operand`` (a time
    offset, or ``(minimum, maximum)``) with ``filter_type`` 1. Responses: opcode 5 with
    ``number_of_records``; opcode 6 with ``request_opcode`` and ``response_code``.
    """

    opcode: int
    operator: int = RacpOperator.NULL
    filter_type: int | None = None
    operand: int | tuple[int, int] | None = None
    number_of_records: int | None = None
    request_opcode: int | None = None
    response_code: int | None = None

    @property
    def is_request(self) -> bool:
        return self.opcode not in (
            RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE,
            RacpOpcode.RESPONSE_CODE,
        )


def request(
    opcode: RacpOpcode, operator: RacpOperator, operand: int | tuple[int, int] | None = None
) -> RacpFrame:
    """A request; ``operand`` implies the time-offset filter."""
    return RacpFrame(opcode, operator, None if operand is None else FILTER_TIME_OFFSET, operand)


def response(request_opcode: int, response_code: RacpResponseCode) -> RacpFrame:
    return RacpFrame(
        RacpOpcode.RESPONSE_CODE, request_opcode=request_opcode, response_code=response_code
    )


def number_of_records(count: int) -> RacpFrame:
    return RacpFrame(RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE, number_of_records=count)


def _refuse(data: bytes, message: str, code: RacpResponseCode) -> ControlPointError:
    return ControlPointError(
        TITLE, message, request_opcode=data[0] if data else 0, response_code=int(code)
    )


def _validate(data: bytes) -> None:
    """Reject what a server answers with a response code, naming the field (SPEC §3.6.3)."""
    if not data:
        raise _refuse(
            data,
            "frame is empty, expected opcode and operator",
            RacpResponseCode.OP_CODE_NOT_SUPPORTED,
        )
    opcode = data[0]
    if opcode not in RacpOpcode.__members__.values():
        raise _refuse(
            data, f"opcode 0x{opcode:02X} is reserved", RacpResponseCode.OP_CODE_NOT_SUPPORTED
        )
    name = RacpOpcode(opcode).name.replace("_", " ").lower()
    if len(data) < 2:
        raise _refuse(data, f"{name}: operator missing", RacpResponseCode.INVALID_OPERATOR)
    operator, operand = data[1], data[2:]
    if opcode not in _RECORD_OPCODES:
        if operator != RacpOperator.NULL:
            raise _refuse(
                data,
                f"{name}: operator is {operator}, must be 0 (null)",
                RacpResponseCode.INVALID_OPERATOR,
            )
        size = {RacpOpcode.ABORT_OPERATION: 0}.get(opcode, 2)
        if len(operand) != size:
            raise _refuse(
                data,
                f"{name}: operand has {len(operand)} bytes, expected {size}",
                RacpResponseCode.INVALID_OPERAND,
            )
        if (
            opcode == RacpOpcode.RESPONSE_CODE
            and operand[1] not in RacpResponseCode.__members__.values()
        ):
            raise _refuse(
                data, f"response_code {operand[1]} is reserved", RacpResponseCode.INVALID_OPERAND
            )
        return
    if operator == RacpOperator.NULL:  # a record procedure needs an operator (SPEC §3.6.3.6)
        raise _refuse(
            data, f"{name}: operator {operator} is not valid", RacpResponseCode.INVALID_OPERATOR
        )
    if operator not in RacpOperator.__members__.values():  # RFU: CGMS.TS CGMS/SEN/CBE/BI-03-C
        raise _refuse(
            data,
            f"{name}: operator {operator} is reserved (not supported)",
            RacpResponseCode.OPERATOR_NOT_SUPPORTED,
        )
    if operator in _FILTERED or operator == RacpOperator.WITHIN_RANGE_OF:
        if operand and operand[0] != FILTER_TIME_OFFSET:
            raise _refuse(
                data,
                f"{name}: filter_type 0x{operand[0]:02X} is not supported (0x01 = time offset)",
                RacpResponseCode.OPERAND_NOT_SUPPORTED,
            )
        size = 3 if operator in _FILTERED else 5
    else:
        size = 0
    if len(operand) != size:
        raise _refuse(
            data,
            f"{name}: operand has {len(operand)} bytes, operator {operator} needs {size}",
            RacpResponseCode.INVALID_OPERAND,
        )
    if size == 5 and int.from_bytes(operand[1:3], "little") > int.from_bytes(
        operand[3:5], "little"
    ):
        raise _refuse(
            data, f"{name}: range minimum is above its maximum", RacpResponseCode.INVALID_OPERAND
        )


def _parse(data: bytes) -> Any:
    _validate(data)
    return framing.parse(TITLE, RACP_FORMAT, data)


def decode(data: bytes, e2e_crc: bool | None = None) -> RacpFrame:
    """A RACP request or response. Invalid frames raise :class:`ControlPointError` carrying the
    response code a server answers with. ``e2e_crc`` is ignored: RACP never carries a CRC."""
    parsed = _parse(data)
    operand = parsed.operand or {}
    if "minimum" in operand:
        value: int | tuple[int, int] | None = (operand.minimum, operand.maximum)
    else:
        value = operand.get("operand")
    return RacpFrame(
        opcode=parsed.opcode,
        operator=parsed.operator,
        filter_type=operand.get("filter_type"),
        operand=value,
        number_of_records=operand.get("number_of_records"),
        request_opcode=operand.get("request_opcode"),
        response_code=operand.get("response_code"),
    )


def fields(data: bytes, e2e_crc: bool | None = None) -> dict[str, Any]:
    frame = decode(data)
    result = {name: getattr(frame, name) for name in RacpFrame.__slots__}
    if isinstance(frame.operand, tuple):
        result["operand"] = list(frame.operand)
    return {key: value for key, value in result.items() if value is not None}


def encode(frame: RacpFrame, e2e_crc: bool = False) -> bytes:
    """The wire bytes of ``frame``; anything a decoder would reject raises :class:`FrameError`."""
    opcode = framing.require_int(TITLE, "opcode", frame.opcode, 0, 0xFF)
    operator = framing.require_int(TITLE, "operator", frame.operator, 0, 0xFF)
    if opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        operand: dict[str, Any] | None = {"number_of_records": frame.number_of_records}
    elif opcode == RacpOpcode.RESPONSE_CODE:
        operand = {"request_opcode": frame.request_opcode, "response_code": frame.response_code}
    elif isinstance(frame.operand, tuple | list) and len(frame.operand) == 2:
        operand = {
            "filter_type": frame.filter_type,
            "minimum": frame.operand[0],
            "maximum": frame.operand[1],
        }
    elif frame.operand is not None:
        operand = {"filter_type": frame.filter_type, "operand": frame.operand}
    else:
        operand = None
    data = framing.build(
        TITLE, RACP_FORMAT, {"opcode": opcode, "operator": operator, "operand": operand}
    )
    try:
        _validate(data)
    except ControlPointError as error:
        raise FrameError(TITLE, error.detail) from None
    return data


def from_fields(value: dict[str, Any]) -> RacpFrame:
    if not isinstance(value, dict) or "opcode" not in value:
        raise FrameError(TITLE, 'expected a JSON object with at least "opcode"')
    unknown = set(value) - set(RacpFrame.__slots__)
    if unknown:
        raise FrameError(TITLE, f"unknown field(s): {', '.join(sorted(unknown))}")
    operand = value.get("operand")
    if isinstance(operand, list):
        operand = tuple(operand)
    return RacpFrame(**{**value, "operand": operand})
