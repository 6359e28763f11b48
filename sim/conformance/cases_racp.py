"""Sensor cases on CGM Measurement notifications and the Record Access Control Point:
CGMS.TS 4.9-4.14 and the RACP half of 4.16 (CN, RAN, RAD, RAR, RAA, RAE, CBE/BI-01..05).

The sensor keeps making records while the cases run, so a report is judged against the
records the tester knew when it asked (a fresh 'all records' report): a record newer than all
of those may be reported or not, and is ignored; anything else must be exactly as the spec
says. Optional operators (CGMS §3.6.2: only 'all records' and '>=' are mandatory besides
abort) answered Operator Not Supported make their case NOT APPLICABLE.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.conformance import wire
from sim.conformance.registry import Run, case, feature
from sim.conformance.tester import MEASUREMENT, RACP, Exchange, Tester

REPORT, DELETE, ABORT, COUNT = 0x01, 0x02, 0x03, 0x04
SUCCESS, NO_RECORDS = 0x01, 0x06


def _offsets(records: list[wire.Record]) -> list[int]:
    return [r.time_offset for r in records]


def _filter(value: int) -> bytes:
    return b"\x01" + value.to_bytes(2, "little")  # Filter Type 0x01: Time Offset (CGMS §3.6.3.1)


def _optional(t: Tester, exchange: Exchange, request: int, what: str) -> None:
    if exchange.response == wire.racp_response(request, 0x04):
        raise t.not_applicable(f"{what}: the device answers Operator Not Supported (optional)")


def _reported(t: Tester, exchange: Exchange, known_max: int) -> list[int]:
    """Offsets a report sent, those made after the tester's snapshot left out."""
    return [o for o in _offsets(t.parse(exchange.notifications)) if o <= known_max]


# --- notifications (CGMS.TS 4.9) -----------------------------------------------------------------


async def _records_for_cn(t: Tester) -> list[wire.Record]:
    found = await t.need_records(1)
    features = t.features
    for record in found:
        t.check(
            not record.trend or (features is not None and features.has(15)),
            f"record {record.time_offset}: trend present, Feature bit 15 is 0",
        )
        t.check(
            not record.quality or (features is not None and features.has(16)),
            f"record {record.time_offset}: quality present, Feature bit 16 is 0",
        )
    return found


@case(
    "CGMS/SEN/CN/BV-01-C",
    "CGM Measurement Notifications - Type 1",
    "CGMS.TS 4.9; CGMS §3.1.1 (size, flags, glucose, time offset; size agrees with flags)",
)
async def cn_mandatory(t: Tester) -> str:
    found = await _records_for_cn(t)
    return f"{len(found)} records, sizes and flags consistent"


def _cn_with(name: str, has: Callable[[wire.Record], bool]) -> Run:
    async def run(t: Tester) -> str:
        found = await _records_for_cn(t)
        with_it = [r for r in found if has(r)]
        if not with_it:
            raise t.inconclusive(
                f"none of {len(found)} records carries the {name} field (the test suite asks"
                " for an action on the IUT that creates one)"
            )
        return f"{len(with_it)} of {len(found)} records carry the {name} field"

    return run


case(
    "CGMS/SEN/CN/BV-02-C",
    "CGM Measurement Notifications - Type 2",
    "CGMS.TS 4.9; CGMS §3.1.1.5 (Sensor Status Annunciation)",
)(_cn_with("Sensor Status Annunciation", lambda r: r.annunciation))
case(
    "CGMS/SEN/CN/BV-03-C",
    "CGM Measurement Notifications - Type 3",
    "CGMS.TS 4.9; CGMS §3.1.1.6 (CGM Trend Information)",
    applies=feature(15),
)(_cn_with("CGM Trend Information", lambda r: r.trend))
case(
    "CGMS/SEN/CN/BV-04-C",
    "CGM Measurement Notifications - Type 4",
    "CGMS.TS 4.9; CGMS §3.1.1.7 (CGM Quality)",
    applies=feature(16),
)(_cn_with("CGM Quality", lambda r: r.quality))


@case(
    "CGMS/SEN/CN/BV-05-C",
    "CGM Measurement Notifications - Type 5",
    "CGMS.TS 4.9; CGMS §3.1.1.8 (E2E-CRC over the record)",
    applies=feature(12),
)
async def cn_crc(t: Tester) -> str:
    found = await _records_for_cn(t)
    bad = [r.raw.hex() for r in found if not r.crc_ok]
    t.check(not bad, f"records with a wrong E2E-CRC: {bad[:3]}")
    return f"{len(found)} records with valid E2E-CRCs"


# --- report number (CGMS.TS 4.10) ----------------------------------------------------------------


@case(
    "CGMS/SEN/RAN/BV-01-C",
    "Report Number of Stored Records - 'All records'",
    "CGMS.TS 4.10; CGMS §3.6.3.2",
)
async def count_all(t: Tester) -> str:
    found = await t.need_records(1)
    counted = await t.count()
    later = await t.snapshot()
    t.check(
        len(found) <= counted <= len(later),
        f"counted {counted}; {len(found)} records were stored before, {len(later)} after",
    )
    return f"{counted} records counted ({len(found)} stored before, {len(later)} after)"


@case(
    "CGMS/SEN/RAN/BV-02-C",
    "Report Number of Stored Records -'Greater than or equal to Time Offset'",
    "CGMS.TS 4.10; CGMS §3.6.3.2",
)
async def count_at_least(t: Tester) -> str:
    found = await t.need_records(3)
    second = found[1].time_offset
    counted = await t.count(b"\x03" + _filter(second))
    later = await t.snapshot()
    t.check(
        len(found) - 1 <= counted <= len(later) - 1,
        f">= {second}: counted {counted}; {len(found) - 1} such records before, "
        f"{len(later) - 1} after",
    )
    return f">= {second}: {counted} records"


@case(
    "CGMSIM/SEN/RAN/BV-04-C",
    "Report Number of Stored Records - '<=', 'within range', 'first', 'last'",
    "CGMS §3.6.3.2, §3.6.2 (optional operators: Operator Not Supported when absent)",
)
async def count_other_operators(t: Tester) -> str:
    found = await t.need_records(3)
    second, third = found[1].time_offset, found[2].time_offset
    checks = [
        ("<=", b"\x02" + _filter(second), 2),
        ("within range", b"\x04" + _filter(second) + third.to_bytes(2, "little"), 2),
        ("first", b"\x05", 1),
        ("last", b"\x06", 1),
    ]
    done, absent = [], []
    for name, operator, expected in checks:
        exchange = await t.racp(bytes([COUNT]) + operator)
        if exchange.response == wire.racp_response(COUNT, 0x04):
            absent.append(name)
            continue
        t.expect_racp(exchange, wire.racp_count(expected), f"Report Number, {name}")
        done.append(f"{name}: {expected}")
    if not done:
        raise t.not_applicable("none of the optional operators is supported for counting")
    return "; ".join(done) + (f"; not supported: {', '.join(absent)}" if absent else "")


# --- report stored records (CGMS.TS 4.12) --------------------------------------------------------


@case(
    "CGMS/SEN/RAR/BV-01-C",
    "Report Stored Records - 'All records'",
    "CGMS.TS 4.12; CGMS §3.6.3.4",
)
async def report_all(t: Tester) -> str:
    found = await t.need_records(1)
    exchange = await t.racp(bytes([REPORT, 0x01]))
    t.expect_racp(exchange, wire.racp_response(REPORT, SUCCESS), "Report all")
    got = _reported(t, exchange, found[-1].time_offset)
    want = _offsets(found)
    t.check(sorted(got) == sorted(want), f"reported {got[:8]}..., expected {want[:8]}...")
    return f"{len(got)} records, then 06 00 01 01"


@case(
    "CGMS/SEN/RAR/BV-02-C",
    "Report Stored Records - 'Less than or equal to Time Offset'",
    "CGMS.TS 4.12; CGMS §3.6.3.4, §3.6.2 (optional operator)",
)
async def report_at_most(t: Tester) -> str:
    found = await t.need_records(3)
    limit = found[1].time_offset
    exchange = await t.racp(bytes([REPORT, 0x02]) + _filter(limit))
    _optional(t, exchange, REPORT, "'<='")
    t.expect_racp(exchange, wire.racp_response(REPORT, SUCCESS), "Report <=")
    got = _reported(t, exchange, found[-1].time_offset)
    want = [o for o in _offsets(found) if o <= limit]
    t.check(sorted(got) == sorted(want), f"<= {limit}: reported {got}, expected {want}")
    return f"<= {limit}: the oldest {len(want)} records"


@case(
    "CGMS/SEN/RAR/BV-03-C",
    "Report Stored Records - 'Greater than or equal to Time Offset'",
    "CGMS.TS 4.12; CGMS §3.6.3.4",
)
async def report_at_least(t: Tester) -> str:
    found = await t.need_records(3)
    limit = found[1].time_offset
    exchange = await t.racp(bytes([REPORT, 0x03]) + _filter(limit))
    t.expect_racp(exchange, wire.racp_response(REPORT, SUCCESS), "Report >=")
    got = _reported(t, exchange, found[-1].time_offset)
    want = [o for o in _offsets(found) if o >= limit]
    t.check(sorted(got) == sorted(want), f">= {limit}: reported {got}, expected {want}")
    beyond = min(found[-1].time_offset + 7 * 24 * 60, 0xFFFF)  # later than any record
    exchange = await t.racp(bytes([REPORT, 0x03]) + _filter(beyond))
    t.expect_racp(exchange, wire.racp_response(REPORT, NO_RECORDS), f"Report >= {beyond}")
    return f">= {limit}: {len(want)} records; >= {beyond}: No Records Found"


@case(
    "CGMS/SEN/RAR/BV-04-C",
    "Report Stored Records - 'Within range of (inclusive) Time Offset value pair'",
    "CGMS.TS 4.12; CGMS §3.6.3.4, §3.6.2 (optional operator)",
)
async def report_range(t: Tester) -> str:
    found = await t.need_records(4)
    low, high = found[1].time_offset, found[2].time_offset
    exchange = await t.racp(bytes([REPORT, 0x04]) + _filter(low) + high.to_bytes(2, "little"))
    _optional(t, exchange, REPORT, "'within range'")
    t.expect_racp(exchange, wire.racp_response(REPORT, SUCCESS), "Report within range")
    got = _reported(t, exchange, found[-1].time_offset)
    t.check(sorted(got) == [low, high], f"[{low}, {high}]: reported {got}")
    return f"[{low}, {high}]: the second and third records"


@case(
    "CGMS/SEN/RAR/BV-05-C",
    "Report Stored Records - 'First record'",
    "CGMS.TS 4.12; CGMS §3.6.3.4, §3.6.2 (optional operator)",
)
async def report_first(t: Tester) -> str:
    found = await t.need_records(2)
    exchange = await t.racp(bytes([REPORT, 0x05]))
    _optional(t, exchange, REPORT, "'first record'")
    t.expect_racp(exchange, wire.racp_response(REPORT, SUCCESS), "Report first")
    got = _reported(t, exchange, found[-1].time_offset)  # a live record may come first
    oldest = min(_offsets(found))
    t.check(got == [oldest], f"first record: reported {got}, the oldest is {oldest}")
    return f"the oldest record ({oldest})"


@case(
    "CGMS/SEN/RAR/BV-06-C",
    "Report Stored Records - 'Last record'",
    "CGMS.TS 4.12; CGMS §3.6.3.4, §3.6.2 (optional operator)",
)
async def report_last(t: Tester) -> str:
    found = await t.need_records(2)
    exchange = await t.racp(bytes([REPORT, 0x06]))
    _optional(t, exchange, REPORT, "'last record'")
    t.expect_racp(exchange, wire.racp_response(REPORT, SUCCESS), "Report last")
    got = _offsets(t.parse(exchange.notifications))
    newest = max(_offsets(found))
    # one record: the newest, or a newer one made meanwhile (which may also come live)
    t.check(
        got and min(got) >= newest and len(got) <= 2,
        f"last record: reported {got}, the newest known is {newest}",
    )
    return f"the newest record ({max(got)})"


# --- errors (CGMS.TS 4.14, 4.16) -----------------------------------------------------------------


@case(
    "CGMS/SEN/RAE/BI-01-C",
    "RACP specific Errors - 'Unsupported Filter Type'",
    "CGMS.TS 4.14; CGMS §3.6.3.6 (Operand Not Supported 0x09)",
)
async def unsupported_filter(t: Tester) -> str:
    await t.need_records(3)
    exchange = await t.racp(bytes([REPORT, 0x03, 0x10, 0x0F, 0x00]))  # filter type 0x10 (RFU)
    t.expect_racp(exchange, wire.racp_response(REPORT, 0x09), "filter type 0x10")
    return "06 00 01 09"


@case(
    "CGMS/SEN/RAE/BI-02-C",
    "RACP specific Errors - 'Procedure Already In Progress'",
    "CGMS.TS 4.14; CGMS §3.6.3.6 (ATT 0xFE)",
)
async def already_in_progress(t: Tester) -> str:
    found = await t.need_records(10)
    mark = t.mark()
    first = await t.write(RACP, bytes([REPORT, 0x01]))
    t.check(first is None, f"Report Stored Records refused (0x{first or 0:02X})")
    second = await t.write(RACP, bytes([REPORT, 0x01]))
    done = await t.wait_for(lambda r: r.kind == "I" and r.uuid == RACP, mark, 10.0)
    answers = [r.value.hex() for r in t.inbox[mark:] if r.kind == "I" and r.uuid == RACP]
    t.log(f"RACP answers {answers}")
    t.check(done is not None, "the first report was never answered")
    if second is None:
        await t.wait_for(
            lambda r: r.kind == "I" and r.uuid == RACP, (done or mark) + 1, 10.0
        )  # let the second one end
        raise t.inconclusive(
            f"the first report ({len(found)} records) was over before the second write arrived"
        )
    t.expect_att_error(second, (wire.PROCEDURE_ALREADY_IN_PROGRESS,), "second report")
    return "second report refused with Procedure Already In Progress (0xFE)"


@case(
    "CGMS/SEN/RAE/BI-03-C",
    "RACP specific Errors - 'Client Characteristic Configuration Descriptor Improperly Configured'",
    "CGMS.TS 4.14; CGMS §3.6.3.6, §3.8.2 (ATT 0xFD)",
)
async def racp_cccd(t: Tester) -> str:
    await t.need_records(3)
    try:
        await t.configure(MEASUREMENT, b"\x00\x00")
        error = await t.write(RACP, bytes([REPORT, 0x01]))
        t.expect_att_error(error, (wire.CCCD_IMPROPERLY_CONFIGURED,), "report, notifications off")
        await t.preamble_racp()
        await t.configure(RACP, b"\x00\x00")
        error = await t.write(RACP, bytes([REPORT, 0x01]))
        t.expect_att_error(error, (wire.CCCD_IMPROPERLY_CONFIGURED,), "report, indications off")
    finally:
        await t.preamble_racp()
    return "refused with 0xFD with Measurement notifications off and with RACP indications off"


@case(
    "CGMS/SEN/CBE/BI-01-C",
    "General Error Handling -'Op Code Not Supported'",
    "CGMS.TS 4.16; CGMS §3.8.2",
)
async def racp_opcode(t: Tester) -> str:
    await t.preamble_racp()
    for opcode in (0x00, 0x07):
        exchange = await t.racp(bytes([opcode, 0x01]))
        t.expect_racp(exchange, wire.racp_response(opcode, 0x02), f"RACP opcode 0x{opcode:02X}")
    return "opcodes 0x00 and 0x07 answered Op Code Not Supported"


def _racp_error(request: bytes, code: int, what: str, optional_range: bool = False) -> Run:
    async def run(t: Tester) -> str:
        await t.need_records(3)
        exchange = await t.racp(request)
        if optional_range:
            _optional(t, exchange, request[0], "'within range'")
        t.expect_racp(exchange, wire.racp_response(request[0], code), what)
        return f"{request.hex(' ')} answered {wire.racp_response(request[0], code).hex(' ')}"

    return run


case(
    "CGMS/SEN/CBE/BI-02-C",
    "General Error Handling - 'Invalid Operator'",
    "CGMS.TS 4.16; CGMS §3.6.3.6 (Invalid Operator 0x03)",
)(_racp_error(bytes([REPORT, 0x00]), 0x03, "Report with operator Null"))
case(
    "CGMS/SEN/CBE/BI-03-C",
    "General Error Handling - 'Unsupported Operator'",
    "CGMS.TS 4.16; CGMS §3.6.3.6 (Operator Not Supported 0x04)",
)(_racp_error(bytes([REPORT, 0x07]), 0x04, "Report with RFU operator 0x07"))
case(
    "CGMS/SEN/CBE/BI-04-C",
    "General Error Handling - 'Invalid Operand' - Type 1",
    "CGMS.TS 4.16; CGMS §3.8.2 (Invalid Operand 0x05)",
)(_racp_error(bytes([REPORT, 0x01]) + _filter(1), 0x05, "Report all with an operand"))
case(
    "CGMS/SEN/CBE/BI-05-C",
    "General Error Handling - 'Invalid Operand' - Type 2",
    "CGMS.TS 4.16; CGMS §3.8.2 (Invalid Operand 0x05)",
)(_racp_error(bytes([REPORT, 0x04]) + _filter(0xFFFF) + b"\x00\x00", 0x05, "range 0xFFFF..0", True))


# --- abort (CGMS.TS 4.13) ------------------------------------------------------------------------


@case(
    "CGMS/SEN/RAA/BV-01-C",
    "Abort Operation - 'Report Stored Records'",
    "CGMS.TS 4.13; CGMS §3.6.3.5",
)
async def abort(t: Tester) -> str:
    found = await t.need_records(20)
    newest = found[-1].time_offset
    mark = t.mark()
    error = await t.write(RACP, bytes([REPORT, 0x01]))
    t.check(error is None, f"Report Stored Records refused (0x{error or 0:02X})")
    error = await t.write(RACP, bytes([ABORT, 0x00]))
    t.check(error is None, f"Abort Operation refused with ATT error 0x{error or 0:02X}")
    at = await t.wait_for(
        lambda r: r.kind == "I" and r.uuid == RACP and r.value[2:3] == bytes([ABORT]), mark, 5.0
    )
    answers = [r.value for r in t.inbox[mark:] if r.kind == "I" and r.uuid == RACP]
    for answer in answers:
        t.log(f"I {RACP:04X} {answer.hex()}")
    t.check(at is not None, "no answer to Abort Operation")
    assert at is not None
    t.check(
        t.inbox[at].value == wire.racp_response(ABORT, SUCCESS),
        f"Abort Operation answered {t.inbox[at].value.hex(' ')}, expected 06 00 03 01",
    )
    sent = _offsets(t.parse(t.notifications(mark, at)))
    if any(a[:3] == bytes([0x06, 0x00, REPORT]) for a in answers[:-1]):
        raise t.inconclusive(
            f"the report of {len(found)} records ended before the abort arrived ({len(sent)}"
            " sent; needs a longer report)"
        )
    await t.settle(0.5)
    after = [o for o in _offsets(t.parse(t.notifications(at + 1))) if o <= newest]
    t.log(f"{len(sent)} records before the abort's answer, {len(after)} stored ones after")
    t.check(not after, f"notifications of stored records went on after the abort: {after[:5]}")
    late = [r.value.hex() for r in t.inbox[at + 1 :] if r.kind == "I" and r.uuid == RACP]
    t.check(not late, f"the aborted report was still answered: {late}")
    if len([o for o in sent if o <= newest]) >= len(found):
        raise t.inconclusive(
            f"all {len(found)} records were sent before the abort arrived (needs a longer report)"
        )
    return f"aborted after {len(sent)} of {len(found)} records; notifications stopped"


# --- delete (CGMS.TS 4.11) and no records (4.10): destructive ------------------------------------


@case(
    "CGMS/SEN/RAD/BV-02-C",
    "Delete Stored Records - 'Within range of (inclusive) Time Offset value pair'",
    "CGMS.TS 4.11; CGMS §3.6.3.3, §3.6.2 (optional operator)",
    destructive=True,
)
async def delete_range(t: Tester) -> str:
    found = await t.need_records(4)
    low, high = found[1].time_offset, found[2].time_offset
    exchange = await t.racp(bytes([DELETE, 0x04]) + _filter(low) + high.to_bytes(2, "little"))
    _optional(t, exchange, DELETE, "'within range'")
    t.expect_racp(exchange, wire.racp_response(DELETE, SUCCESS), "Delete within range")
    left = _offsets(await t.snapshot())
    t.check(low not in left and high not in left, f"{low} or {high} still stored: {left[:6]}")
    kept = [found[0].time_offset, found[3].time_offset]
    t.check(all(o in left for o in kept), f"{kept} should be kept: {left[:6]}")
    return f"[{low}, {high}] deleted, {kept} kept"


async def _delete_all(t: Tester) -> tuple[int, int, list[int]]:
    """Count, delete all, count again (CGMS.TS RAD/BV-01-C steps 1, 2, 6): (how many were
    counted before, after, and the offsets stored afterwards: new records only)."""
    before = await t.need_records(0)
    newest = max(_offsets(before), default=-1)
    first = await t.count()
    exchange = await t.racp(bytes([DELETE, 0x01]))
    if first == 0 and exchange.response == wire.racp_response(DELETE, NO_RECORDS):
        return 0, 0, []
    t.expect_racp(exchange, wire.racp_response(DELETE, SUCCESS), "Delete all")
    second = await t.count()
    left = _offsets(await t.snapshot())
    old = [o for o in left if o <= newest]
    t.check(not old, f"records still stored after Delete all: {old[:6]}")
    t.check(second <= len(left), f"{second} records counted after Delete all, {len(left)} stored")
    return first, second, left


@case(
    "CGMS/SEN/RAD/BV-01-C",
    "Delete Stored Records - 'All records'",
    "CGMS.TS 4.11; CGMS §3.6.3.3",
    destructive=True,
    order=20,  # after the session cases: a stopped session makes no new records
)
async def delete_all(t: Tester) -> str:
    first, second, left = await _delete_all(t)
    return f"{first} records deleted; {second} counted after" + (
        f" (made since: {left})" if left else ""
    )


@case(
    "CGMS/SEN/RAN/BV-03-C",
    "Report Number of Stored Records - 'No records found'",
    "CGMS.TS 4.10; CGMS §3.6.3.2",
    destructive=True,
    order=20,  # after the session cases: a stopped session makes no new records
)
async def count_none(t: Tester) -> str:
    value = b""
    for _ in range(3):  # a running session may make a record between delete and count
        await _delete_all(t)  # the precondition: no records (ends with a snapshot's pause)
        exchange = await t.racp(bytes([COUNT, 0x01]))
        t.answered(exchange, "Report Number, All")
        value = exchange.response or b""
        t.check(value[:2] == b"\x05\x00" and len(value) == 4, f"answered {value.hex(' ')}")
        if value == wire.racp_count(0):
            return "05 00 00 00"
    raise t.inconclusive(f"records keep arriving: counted {value.hex(' ')} right after deleting")
