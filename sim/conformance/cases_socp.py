"""Sensor cases on the CGM Specific Ops Control Point: CGMS.TS 4.15 (CGMCP) and its E2E-CRC
error case (CBE/BI-07-C), plus an unsupported SOCP op code and a SOCP write with indications
off or without its CRC (CGMSIM/SEN/CBE).

Values a case changes (communication interval, alert levels) are put back afterwards. What a
collector must never do to a sensor someone wears — set a calibration value, start or stop the
session — is destructive: run only with --allow-destructive.
"""

from __future__ import annotations

from sim.conformance import wire
from sim.conformance.registry import Run, case, feature
from sim.conformance.tester import SOCP, STATUS, Tester

SUCCESS, NOT_SUPPORTED, INVALID_OPERAND, NOT_COMPLETED, OUT_OF_RANGE = 1, 2, 3, 4, 5
SET_INTERVAL, GET_INTERVAL, INTERVAL_RESPONSE = 0x01, 0x02, 0x03
SET_CAL, GET_CAL, CAL_RESPONSE = 0x04, 0x05, 0x06
RESET_ALERT, START, STOP = 0x19, 0x1A, 0x1B


async def _get_interval(t: Tester) -> int:
    body = t.socp_body(await t.socp(bytes([GET_INTERVAL])), "Get CGM Communication Interval")
    t.check(
        len(body) == 2 and body[0] == INTERVAL_RESPONSE,
        f"Get CGM Communication Interval answered {body.hex(' ')}, expected 03 <minutes>",
    )
    return body[1]


async def _set_interval(t: Tester, minutes: int) -> None:
    exchange = await t.socp(bytes([SET_INTERVAL, minutes]))
    body = t.socp_body(exchange, f"Set CGM Communication Interval {minutes}")
    if body == wire.socp_response(SET_INTERVAL, NOT_SUPPORTED):
        raise t.not_applicable("Set CGM Communication Interval: Op Code Not Supported (optional)")
    t.expect_socp(exchange, SET_INTERVAL, SUCCESS, f"Set CGM Communication Interval {minutes}")


async def get_interval(t: Tester) -> str:
    await t.preamble_socp()
    return f"communication interval {await _get_interval(t)} min"


def _set_interval_case(value: int | None) -> Run:
    """``value``: 0xFF (fastest), 0 (off), None (another valid interval)."""

    async def run(t: Tester) -> str:
        await t.preamble_socp()
        original = await _get_interval(t)
        new = value if value is not None else (10 if original != 10 else 5)
        try:
            await _set_interval(t, new)
            got = await _get_interval(t)
        finally:
            if original != 0xFF:
                await t.socp(bytes([SET_INTERVAL, original]))
        if value == 0xFF:
            t.check(got not in (0, 0xFF), f"after setting 0xFF the interval reads {got}")
            return f"0xFF set the fastest interval the device supports: {got} min"
        t.check(got == new, f"set {new} min, read back {got}")
        return f"set {new} min and read it back"

    return run


for _with, _without, _what, _value in (
    ("01", "02", "Get CGM Communication Interval", "get"),
    ("03", "26", "Set CGM Communication Interval", None),
    ("04", "27", "Set smallest CGM Communication Interval supported by Device", 0xFF),
    ("05", "28", "Disable communication interval", 0),
):
    _run = get_interval if _value == "get" else _set_interval_case(_value)  # type: ignore[arg-type]
    for _id, _e2e in ((_with, True), (_without, False)):
        case(
            f"CGMS/SEN/CGMCP/BV-{_id}-C",
            f"CGM Specific Ops - '{_what}' - {'with' if _e2e else 'without'} E2E-CRC",
            "CGMS.TS 4.15; CGMS §3.7.2.1",
            applies=feature(12, _e2e),
        )(_run)


# --- calibration (CGMS §3.7.2.2) -----------------------------------------------------------------


async def _get_calibration(t: Tester, number: int) -> bytes:
    exchange = await t.socp(bytes([GET_CAL]) + number.to_bytes(2, "little"))
    return t.socp_body(exchange, f"Get Glucose Calibration Value {number:#06x}")


@case(
    "CGMS/SEN/CGMCP/BV-08-C",
    "CGM Specific Ops - 'Set Glucose Calibration value'",
    "CGMS.TS 4.15; CGMS §3.7.2.2",
    applies=feature(0),
    destructive=True,
    order=5,
)
async def set_calibration(t: Tester) -> str:
    await t.preamble_socp()
    status = await t.must_read(STATUS)
    offset = int.from_bytes(status[:2], "little")
    before = await _get_calibration(t, 0xFFFF)
    number_before = int.from_bytes(before[8:10], "little") if before[0] == CAL_RESPONSE else 0
    # 100 mg/dL, capillary plasma from a finger (type 2, location 1), record number and status 0
    record = wire.sfloat_bytes(100.0) + offset.to_bytes(2, "little") + b"\x12" + bytes(5)
    exchange = await t.socp(bytes([SET_CAL]) + record)
    t.expect_socp(exchange, SET_CAL, SUCCESS, "Set Glucose Calibration Value")
    after = await _get_calibration(t, 0xFFFF)
    t.check(after[0] == CAL_RESPONSE and len(after) == 11, f"Get last answered {after.hex(' ')}")
    number = int.from_bytes(after[8:10], "little")
    t.check(number > number_before, f"record number {number_before} -> {number}: not increased")
    t.check(after[1:3] == record[:2], f"stored glucose {after[1:3].hex()}, set {record[:2].hex()}")
    t.cache["calibration"] = number
    return f"calibration stored as record {number}"


@case(
    "CGMS/SEN/CGMCP/BV-07-C",
    "CGM Specific Ops - 'Get Glucose Calibration Value' Type 2",
    "CGMS.TS 4.15; CGMS §3.7.2.2 (record number 0xFFFF: the last)",
    applies=feature(0),
    order=6,  # after CGMCP/BV-08-C stored one
)
async def get_last_calibration(t: Tester) -> str:
    await t.preamble_socp()
    body = await _get_calibration(t, 0xFFFF)
    if body == wire.socp_response(GET_CAL, OUT_OF_RANGE):
        raise t.inconclusive("no calibration record stored (CGMCP/BV-08-C stores one)")
    t.check(body[0] == CAL_RESPONSE and len(body) == 11, f"answered {body.hex(' ')}")
    number = int.from_bytes(body[8:10], "little")
    t.check(number not in (0, 0xFFFF), f"the last record's number is {number:#06x}")
    t.cache["calibration"] = number
    return f"last calibration is record {number}"


@case(
    "CGMS/SEN/CGMCP/BV-06-C",
    "CGM Specific Ops - 'Get Glucose Calibration Value' Type 1",
    "CGMS.TS 4.15; CGMS §3.7.2.2",
    applies=feature(0),
    order=6,
)
async def get_calibration(t: Tester) -> str:
    await t.preamble_socp()
    last = await _get_calibration(t, 0xFFFF)
    if last == wire.socp_response(GET_CAL, OUT_OF_RANGE):
        raise t.inconclusive("no calibration record stored (CGMCP/BV-08-C stores one)")
    number = int.from_bytes(last[8:10], "little")
    body = await _get_calibration(t, number)
    t.check(body == last, f"record {number} answered {body.hex(' ')}, the last is {last.hex(' ')}")
    return f"record {number} read by its number"


@case(
    "CGMS/SEN/CGMCP/BI-01-C",
    "CGM Specific Ops - 'Get Glucose Calibration Value' Type 3",
    "CGMS.TS 4.15; CGMS §3.7.2.2 (record 0xFFFE: Parameter Out of Range)",
    applies=feature(0),
)
async def get_calibration_invalid(t: Tester) -> str:
    await t.preamble_socp()
    exchange = await t.socp(bytes([GET_CAL]) + (0xFFFE).to_bytes(2, "little"))
    t.expect_socp(exchange, GET_CAL, OUT_OF_RANGE, "Get calibration record 0xFFFE")
    return "1C 05 05"


# --- alert levels (CGMS §3.7.2.3-3.7.2.6) --------------------------------------------------------

LEVELS = [  # name, set opcode, feature bit, get id, set id, invalid id
    ("Patient High", 0x07, 1, "09", "10", "02"),
    ("Patient Low", 0x0A, 1, "11", "12", "03"),
    ("Hypo", 0x0D, 2, "13", "14", "04"),
    ("Hyper", 0x10, 3, "15", "16", "05"),
    ("Rate of Decrease", 0x13, 4, "17", "18", "06"),
    ("Rate of Increase", 0x16, 4, "19", "20", "07"),
]


async def _get_level(t: Tester, set_op: int, name: str) -> bytes:
    body = t.socp_body(await t.socp(bytes([set_op + 1])), f"Get {name} Alert Level")
    t.check(
        len(body) == 3 and body[0] == set_op + 2,
        f"Get {name} Alert Level answered {body.hex(' ')}, expected {set_op + 2:02X} <SFLOAT>",
    )
    return body[1:3]


async def _set_level(t: Tester, set_op: int, level: bytes) -> bytes:
    exchange = await t.socp(bytes([set_op]) + level)
    return t.socp_body(exchange, f"Set alert level {level.hex()}")


def _level_get(set_op: int, name: str) -> Run:
    async def run(t: Tester) -> str:
        await t.preamble_socp()
        level = await _get_level(t, set_op, name)
        return f"{name} Alert Level {wire.sfloat_value(level)}"

    return run


def _level_set(set_op: int, name: str) -> Run:
    async def run(t: Tester) -> str:
        await t.preamble_socp()
        original = await _get_level(t, set_op, name)
        value = wire.sfloat_value(original)
        t.check(isinstance(value, float), f"{name} Alert Level is {value}")
        assert isinstance(value, float)
        try:
            for new in (value + 1, value - 1):  # a new value, within the device's range
                level = wire.sfloat_bytes(new)
                answer = await _set_level(t, set_op, level)
                if answer != wire.socp_response(set_op, OUT_OF_RANGE):
                    break
            expected = wire.socp_response(set_op, SUCCESS)
            t.check(answer == expected, f"set {new}: answered {answer.hex(' ')}")
            got = wire.sfloat_value(await _get_level(t, set_op, name))
            t.check(got == new, f"set {new}, read back {got}")
        finally:
            await _set_level(t, set_op, original)
        return f"set {name} Alert Level {value} -> {new}, read back; restored"

    return run


def _level_invalid(set_op: int, name: str) -> Run:
    async def run(t: Tester) -> str:
        await t.preamble_socp()
        original = await _get_level(t, set_op, name)
        answer = await _set_level(t, set_op, wire.TOO_HIGH)
        expected = wire.socp_response(set_op, OUT_OF_RANGE)
        if answer == wire.socp_response(set_op, SUCCESS):
            await _set_level(t, set_op, original)
        t.check(
            answer == expected, f"2.045e10 answered {answer.hex(' ')}, expected {expected.hex(' ')}"
        )
        after = await _get_level(t, set_op, name)
        t.check(after == original, f"level changed {original.hex()} -> {after.hex()}")
        return "2.045e10 refused with Parameter Out of Range; level unchanged"

    return run


for _name, _op, _bit, _get, _set, _bad in LEVELS:
    _spec = "CGMS.TS 4.15; CGMS §3.7.2.3-§3.7.2.6"
    case(
        f"CGMS/SEN/CGMCP/BV-{_get}-C",
        f"CGM Specific Ops - 'Get {_name} Alert Level'",
        _spec,
        applies=feature(_bit),
    )(_level_get(_op, _name))
    case(
        f"CGMS/SEN/CGMCP/BV-{_set}-C",
        f"CGM Specific Ops - 'Set {_name} Alert Level'",
        _spec,
        applies=feature(_bit),
    )(_level_set(_op, _name))
    case(
        f"CGMS/SEN/CGMCP/BI-{_bad}-C",
        f"CGM Specific Ops - 'Set invalid {_name} Alert Level'",
        _spec + " (Parameter Out of Range 0x05)",
        applies=feature(_bit),
    )(_level_invalid(_op, _name))


@case(
    "CGMS/SEN/CGMCP/BV-21-C",
    "CGM Specific Ops - 'Reset Device Specific Alert'",
    "CGMS.TS 4.15; CGMS §3.7.2.7",
    applies=feature(5),
)
async def reset_device_alert(t: Tester) -> str:
    await t.preamble_socp()
    exchange = await t.socp(bytes([RESET_ALERT]))
    t.expect_socp(exchange, RESET_ALERT, SUCCESS, "Reset Device Specific Alert")
    status = await t.must_read(STATUS)
    t.check(not status[2] & 0x10, f"Device Specific Alert still set in CGM Status {status.hex()}")
    return "1C 19 01; CGM Status bit cleared"


# --- general errors on SOCP ----------------------------------------------------------------------


@case(
    "CGMSIM/SEN/CBE/BI-08-C",
    "SOCP 'Op Code Not Supported'",
    "CGMS §3.8.2 (as CGMS.TS CBE/BI-01-C for RACP)",
)
async def socp_opcode(t: Tester) -> str:
    await t.preamble_socp()
    exchange = await t.socp(bytes([0x1D]))  # first RFU op code
    t.expect_socp(exchange, 0x1D, NOT_SUPPORTED, "SOCP op code 0x1D")
    return "1C 1D 02"


@case(
    "CGMSIM/SEN/CBE/BI-09-C",
    "SOCP write with its CCCD not configured for indications",
    "CGMS §3.8.2 (ATT 0xFD), as CGMS.TS RAE/BI-03-C for RACP",
)
async def socp_cccd(t: Tester) -> str:
    await t.preamble_socp()
    try:
        await t.configure(SOCP, b"\x00\x00")
        body = bytes([GET_INTERVAL])
        error = await t.write(SOCP, wire.with_crc(body) if t.e2e else body)
        t.expect_att_error(error, (wire.CCCD_IMPROPERLY_CONFIGURED,), "SOCP, indications off")
    finally:
        await t.preamble_socp()
    return "refused with 0xFD"


@case(
    "CGMS/SEN/CBE/BI-07-C",
    "General Error Handling - 'Invalid CRC'",
    "CGMS.TS 4.16; CGMS §1.8, §3.7.2 (ATT 0x81)",
    applies=feature(12),
)
async def socp_invalid_crc(t: Tester) -> str:
    await t.preamble_socp()
    value = wire.with_crc(bytes([SET_INTERVAL, 5]))
    error = await t.write(SOCP, value[:-1] + bytes([value[-1] ^ 0xFF]))
    t.expect_att_error(error, (wire.INVALID_CRC,), "Set interval with a wrong E2E-CRC")
    return "refused with Invalid CRC (0x81)"


@case(
    "CGMSIM/SEN/CBE/BI-10-C",
    "SOCP write without its E2E-CRC",
    "CGMS §1.8, §3.7.2 (ATT 0x80), as CGMS.TS CBE/BI-06-C for Session Start Time",
    applies=feature(12),
)
async def socp_missing_crc(t: Tester) -> str:
    await t.preamble_socp()
    error = await t.write(SOCP, bytes([GET_INTERVAL]))
    t.expect_att_error(error, (wire.MISSING_CRC,), "Get interval without E2E-CRC")
    return "refused with Missing CRC (0x80)"


# --- sessions (CGMS §3.7.2.8, §3.7.2.9): destructive ---------------------------------------------


async def _session_stopped(t: Tester) -> bool:
    return bool((await t.must_read(STATUS))[2] & 0x01)


def _multiple_sessions(present: bool) -> Run:
    return feature(14, present)


@case(
    "CGMS/SEN/CGMCP/BI-08-C",
    "CGM Specific Ops - 'Start Session' Type 2",
    "CGMS.TS 4.15; CGMS §3.7.2.8 (a session runs: Procedure Not Completed)",
    destructive=True,
)
async def start_while_running(t: Tester) -> str:
    await t.preamble_socp()
    if await _session_stopped(t):
        raise t.inconclusive("no session runs (precondition: a running session)")
    exchange = await t.socp(bytes([START]))
    t.expect_socp(exchange, START, NOT_COMPLETED, "Start Session while one runs")
    t.check(not await _session_stopped(t), "the session stopped")
    return "1C 1A 04; the session runs on"


@case(
    "CGMS/SEN/CGMCP/BV-23-C",
    "CGM Specific Ops - 'Stop session'",
    "CGMS.TS 4.15; CGMS §3.7.2.9",
    destructive=True,
)
async def stop_session(t: Tester) -> str:
    await t.preamble_socp()
    if await _session_stopped(t):
        raise t.inconclusive("no session runs (precondition: a running session)")
    exchange = await t.socp(bytes([STOP]))
    t.expect_socp(exchange, STOP, SUCCESS, "Stop Session")
    t.check(await _session_stopped(t), "CGM Status 'session stopped' is 0 after Stop Session")
    t.cache["stopped_by_tester"] = True
    return "1C 1B 01; 'session stopped' set"


@case(
    "CGMS/SEN/CGMCP/BV-24-C",
    "CGM Specific Ops - 'Start Session' Type 3",
    "CGMS.TS 4.15; CGMS §3.2.1.1 (bit 14 Multiple Sessions 0), §3.7.2.8",
    applies=_multiple_sessions(False),
    destructive=True,
)
async def start_after_stop_single(t: Tester) -> str:
    await t.preamble_socp()
    if not t.cache.get("stopped_by_tester"):
        raise t.inconclusive("the session was not stopped by CGMCP/BV-23-C")
    exchange = await t.socp(bytes([START]))
    t.expect_socp(exchange, START, NOT_COMPLETED, "Start Session after Stop, no Multiple Sessions")
    return "1C 1A 04"


@case(
    "CGMS/SEN/CGMCP/BV-25-C",
    "CGM Specific Ops - 'Start Session' Type 4",
    "CGMS.TS 4.15; CGMS §3.2.1.1 (bit 14 Multiple Sessions 1), §3.7.2.8",
    applies=_multiple_sessions(True),
    destructive=True,
)
async def start_after_stop_multiple(t: Tester) -> str:
    await t.preamble_socp()
    if not t.cache.get("stopped_by_tester"):
        raise t.inconclusive("the session was not stopped by CGMCP/BV-23-C")
    exchange = await t.socp(bytes([START]))
    t.expect_socp(exchange, START, SUCCESS, "Start Session after Stop")
    t.check(not await _session_stopped(t), "'session stopped' still set after Start Session")
    return "1C 1A 01; 'session stopped' cleared"


@case(
    "CGMS/SEN/CGMCP/BV-22-C",
    "CGM Specific Ops - 'Start Session' Type 1",
    "CGMS.TS 4.15; CGMS §3.7.2.8 (no session runs: Success)",
    destructive=True,
)
async def start_session(t: Tester) -> str:
    await t.preamble_socp()
    if t.cache.get("stopped_by_tester") or not await _session_stopped(t):
        raise t.inconclusive(
            "precondition not met: a sensor that never ran a session (this one ran one)"
        )
    exchange = await t.socp(bytes([START]))
    t.expect_socp(exchange, START, SUCCESS, "Start Session")
    t.check(not await _session_stopped(t), "'session stopped' still set after Start Session")
    return "1C 1A 01; 'session stopped' cleared"
