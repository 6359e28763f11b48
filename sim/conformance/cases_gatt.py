"""Sensor cases on the GATT database, the plain characteristics and security: CGMS.TS 4.3-4.8
(SD, DEC, DES, CR, CW, CON), the E2E-CRC error cases on Session Start Time (CBE/BI-06, -07),
and the security requirements of CGMP §6.1 and Core Vol 3 Part G 3.3.3.3 (CGMSIM/SEN/SEC)."""

from __future__ import annotations

import asyncio
import datetime

from bumble.core import UUID

from protocol.cgms import gatt
from sim.conformance import wire
from sim.conformance.registry import Features, Phase, Run, case, feature
from sim.conformance.tester import (
    FEATURE,
    INDICATE_ON,
    MEASUREMENT,
    NOTIFY_ON,
    OFF,
    RACP,
    SOCP,
    SRT,
    SST,
    STATUS,
    Tester,
)

SECURITY_REQUEST_WAIT_S = 2.0
REFUSED = (wire.INSUFFICIENT_AUTHENTICATION, wire.INSUFFICIENT_ENCRYPTION)
READABLE = (FEATURE, STATUS, SST, SRT)


def parse_features(value: bytes) -> Features:
    """CGM Feature (CGMS §3.2.1): features u24, type (low nibble) / location (high nibble),
    E2E-CRC u16."""
    if len(value) != 6:
        raise ValueError(f"CGM Feature has {len(value)} bytes, expected 6")
    return Features(
        int.from_bytes(value[:3], "little"),
        value[3] & 0x0F,
        value[3] >> 4,
        int.from_bytes(value[4:6], "little"),
        value,
    )


# --- before pairing -------------------------------------------------------------------------


@case(
    "CGMSIM/SEN/SEC/BV-01-C",
    "Sensor sends an SM Security Request after the collector connects",
    "CGMP §6.1 (the CGM Sensor shall use the SM Slave Security Request procedure)",
    phase=Phase.UNPAIRED,
)
async def security_request(t: Tester) -> str:
    loop = asyncio.get_running_loop()
    while not t.security_requests:
        left = t.connected_at + SECURITY_REQUEST_WAIT_S - loop.time()
        if left <= 0:
            raise t.fail(
                f"no SMP Security Request within {SECURITY_REQUEST_WAIT_S:g} s of connecting"
            )
        await asyncio.sleep(min(left, 0.05))
    auth = t.security_requests[0]
    t.log(f"SMP Security Request auth_req 0x{auth:02X}")
    t.check(auth & 0x01, f"Security Request auth_req 0x{auth:02X} does not ask for bonding")
    return f"Security Request received (auth_req 0x{auth:02X})"


@case(
    "CGMSIM/SEN/SEC/BI-01-C",
    "CGMS values cannot be read on an unencrypted link",
    "CGMP §6.1 (Security Mode 1 Level 2 or 3); Core Vol 3 Part F 3.4.1.1",
    phase=Phase.UNPAIRED,
)
async def unpaired_reads_refused(t: Tester) -> str:
    for uuid in READABLE:
        _, error = await t.read(uuid)
        t.expect_att_error(error, REFUSED, f"unencrypted read of 0x{uuid:04X}")
    return "every read refused with Insufficient Authentication/Encryption"


@case(
    "CGMSIM/SEN/SEC/BI-02-C",
    "The control points cannot be written on an unencrypted link",
    "CGMP §6.1 (Security Mode 1 Level 2 or 3); Core Vol 3 Part F 3.4.1.1",
    phase=Phase.UNPAIRED,
)
async def unpaired_writes_refused(t: Tester) -> str:
    # harmless requests, should the device take them: count records, get the interval
    for uuid, value in ((RACP, b"\x04\x01"), (SOCP, b"\x02")):
        error = await t.write(uuid, value)
        t.expect_att_error(error, REFUSED, f"unencrypted write to 0x{uuid:04X}")
    return "control-point writes refused with Insufficient Authentication/Encryption"


@case(
    "CGMSIM/SEN/SEC/BV-02-C",
    "A CCCD can be read without pairing",
    "Core Vol 3 Part G 3.3.3.3 (only writing the CCCD may require authentication)",
    phase=Phase.UNPAIRED,
)
async def unpaired_cccd_read(t: Tester) -> str:
    for uuid in (MEASUREMENT, RACP, SOCP):
        value, error = await t.read_cccd(uuid)
        if value is None:
            raise t.fail(
                f"reading the CCCD of 0x{uuid:04X} before pairing refused with ATT error"
                f" 0x{error:02X}"
            )
        t.check(len(value) == 2, f"CCCD of 0x{uuid:04X} is {value.hex()}, 2 octets expected")
    return "the three CCCDs read without pairing"


@case(
    "CGMSIM/SEN/SEC/BV-03-C",
    "Pairing and bonding",
    "CGMP §6.1, §5.1.1 (bond, LE Security Mode 1 Level 2 or 3)",
    phase=Phase.PAIRING,
    timeout_s=40.0,
)
async def pairing(t: Tester) -> str:
    keys: list[object] = []
    t.connection.once(t.connection.EVENT_PAIRING, keys.append)
    try:
        await t.connection.pair()
    except Exception as error:
        t.pairing_error = f"{type(error).__name__}: {error}"
        raise t.fail(f"pairing failed: {t.pairing_error}") from None
    t.paired = t.connection.is_encrypted
    t.check(t.paired, "pairing completed but the link is not encrypted")
    await asyncio.sleep(0.05)
    ltk = getattr(keys[0], "ltk", None) if keys else None
    t.log(f"paired, encrypted; LTK {'distributed' if ltk is not None else 'not seen'}")
    t.check(ltk is not None, "pairing distributed no LTK: no bond")
    return "paired (LE Secure Connections), link encrypted, bonded"


# --- service and declarations (CGMS.TS 4.3, 4.4) ----------------------------------------------


@case(
    "CGMS/SEN/SD/BV-01-C",
    "Service Definition - 'CGM Service'",
    "CGMS.TS 4.3; CGMS §2",
)
async def service_definition(t: Tester) -> str:
    services = [s for s in t.peer.services if s.uuid == UUID.from_16_bits(gatt.CGM_SERVICE)]
    for service in services:
        t.log(f"service 0x181F handles 0x{service.handle:04X}-0x{service.end_group_handle:04X}")
    t.check(len(services) == 1, f"{len(services)} CGM services found, expected one")
    return "one CGM service"


DECLARATIONS = [
    ("01", "CGM Measurement", MEASUREMENT, 0x10),
    ("02", "CGM Feature", FEATURE, 0x02),
    ("03", "CGM Status", STATUS, 0x02),
    ("04", "CGM Session Start Time", SST, 0x0A),
    ("05", "CGM Session Run Time", SRT, 0x02),
    ("06", "Record Access Control Point", RACP, 0x28),
    ("07", "CGM Specific Ops Control Point", SOCP, 0x28),
]


def _declaration(uuid: int, properties: int) -> Run:
    async def run(t: Tester) -> str:
        char = t.chars.get(uuid)
        if char is None:
            raise t.fail(f"characteristic 0x{uuid:04X} not found in the CGM service")
        got = int(char.properties)
        t.log(f"0x{uuid:04X} handle 0x{char.handle:04X} properties 0x{got:02X}")
        t.check(got == properties, f"properties 0x{got:02X}, expected 0x{properties:02X}")
        return f"properties 0x{got:02X}"

    return run


for _n, _title, _uuid, _props in DECLARATIONS:
    case(
        f"CGMS/SEN/DEC/BV-{_n}-C",
        f"Characteristic Declaration - '{_title}'",
        "CGMS.TS 4.4 Table 4.2; CGMS §3 Table 3.1",
    )(_declaration(_uuid, _props))


# --- descriptors and their configuration (CGMS.TS 4.5, 4.8) ------------------------------------

DESCRIPTORS = [
    ("01", "CGM Measurement", MEASUREMENT, (b"\x00\x00", NOTIFY_ON), "CGMS §3.1.2.1", NOTIFY_ON),
    ("02", "Record Access Control Point", RACP, (OFF, INDICATE_ON), "CGMS §3.8.4.1", INDICATE_ON),
    (
        "03",
        "CGM Specific Ops Control Point",
        SOCP,
        (OFF, INDICATE_ON),
        "CGMS §3.8.4.1",
        INDICATE_ON,
    ),
]


def _descriptor(uuid: int, allowed: tuple[bytes, ...]) -> Run:
    async def run(t: Tester) -> str:
        value, error = await t.read_cccd(uuid)
        if value is None:
            raise t.fail(f"CCCD read refused with ATT error 0x{error:02X}")
        t.check(
            value in allowed, f"CCCD is {value.hex()}, expected one of {[a.hex() for a in allowed]}"
        )
        return f"CCCD present, {value.hex()}"

    return run


def _configure(uuid: int, on: bytes) -> Run:
    async def run(t: Tester) -> str:
        for value in (OFF, on):
            error = await t.write_cccd(uuid, value)
            t.check(
                error is None, f"writing {value.hex()} refused with ATT error 0x{error or 0:02X}"
            )
            read, error = await t.read_cccd(uuid)
            t.check(
                read == value, f"wrote {value.hex()}, read back {read.hex() if read else error}"
            )
        return f"wrote and read back 0000 and {on.hex()}"

    return run


for _n, _title, _uuid, _allowed, _section, _on in DESCRIPTORS:
    case(
        f"CGMS/SEN/DES/BV-{_n}-C",
        f"{_title} - 'Client Characteristic Configuration Descriptor'",
        f"CGMS.TS 4.5 Table 4.3; {_section}",
    )(_descriptor(_uuid, _allowed))
for _n, _title, _uuid, _allowed, _section, _on in DESCRIPTORS:
    kind = "Notification" if _uuid == MEASUREMENT else "Indication"
    case(
        f"CGMS/SEN/CON/BV-{_n}-C",
        f"Configure {kind} - '{_title}'",
        "CGMS.TS 4.8 Table 4.5; CGMS §3.1.1, §3.6, §3.7",
    )(_configure(_uuid, _on))


# --- reads (CGMS.TS 4.6) -------------------------------------------------------------------------


@case(
    "CGMS/SEN/CR/BV-01-C",
    "Characteristic Read - 'CGM Feature'",
    "CGMS.TS 4.6 Table 4.4; CGMS §3.2.1.1, §3.2.1.3",
)
async def read_feature(t: Tester) -> str:
    value = await t.must_read(FEATURE)
    try:
        found = parse_features(value)
    except ValueError as error:
        raise t.fail(str(error)) from None
    t.check(found.bits >> 17 == 0, f"RFU feature bits 17-23 set: 0x{found.bits:06X}")
    if found.e2e_crc:
        t.check(wire.crc_ok(value), f"E2E-CRC 0x{found.crc:04X} does not match the value")
    else:
        t.check(
            found.crc == 0xFFFF, f"no E2E-CRC support, CRC field is 0x{found.crc:04X} not 0xFFFF"
        )
    return f"features 0x{found.bits:06X}, CRC field 0x{found.crc:04X}"


@case(
    "CGMS/SEN/CR/BV-02-C",
    "Characteristic Read - 'CGM Feature Type Sample Location'",
    "CGMS.TS 4.6 Table 4.4; CGMS §3.2.1.2 (type: low nibble, location: high nibble)",
)
async def read_type_location(t: Tester) -> str:
    found = parse_features(await t.must_read(FEATURE))
    t.check(1 <= found.type <= 0x0A, f"type nibble 0x{found.type:X} is reserved")
    t.check(
        1 <= found.location <= 5 or found.location == 0x0F,
        f"sample location nibble 0x{found.location:X} is reserved",
    )
    return f"type 0x{found.type:X}, sample location 0x{found.location:X}"


@case(
    "CGMS/SEN/CR/BV-03-C",
    "Characteristic Read - 'CGM Feature' - Multiple Bonds",
    "CGMS.TS 4.6; CGMS §3.2.1.1 (bit 13)",
    applies=feature(13),
)
async def read_multiple_bonds(t: Tester) -> str:
    found = parse_features(await t.must_read(FEATURE))
    t.check(found.has(13), "Multiple Bond supported (bit 13) is 0")
    return "bit 13 set"


def _check_sst(t: Tester, value: bytes, e2e: bool) -> str:
    size = 11 if e2e else 9
    t.check(len(value) == size, f"Session Start Time has {len(value)} bytes, expected {size}")
    if e2e:
        t.check(wire.crc_ok(value), "Session Start Time E2E-CRC does not match")
    year = int.from_bytes(value[:2], "little")
    month, day, hours, minutes, seconds = value[2:7]
    zone, dst = int.from_bytes(value[7:8], "little", signed=True), value[8]
    t.check(year == 0 or 1582 <= year <= 9999, f"year {year} out of range")
    t.check(month <= 12 and day <= 31, f"month {month} / day {day} out of range")
    t.check(hours <= 23 and minutes <= 59 and seconds <= 59, "time of day out of range")
    t.check(zone == -128 or -48 <= zone <= 56, f"time zone {zone} out of range")
    t.check(dst in (0, 2, 4, 8, 255), f"DST offset {dst} is reserved")
    return f"{year:04}-{month:02}-{day:02} {hours:02}:{minutes:02}:{seconds:02} tz {zone} dst {dst}"


def _read_sst(e2e: bool) -> Run:
    async def run(t: Tester) -> str:
        return _check_sst(t, await t.must_read(SST), e2e)

    return run


def _read_srt(e2e: bool) -> Run:
    async def run(t: Tester) -> str:
        value = await t.must_read(SRT)
        size = 4 if e2e else 2
        t.check(len(value) == size, f"Session Run Time has {len(value)} bytes, expected {size}")
        if e2e:
            t.check(wire.crc_ok(value), "Session Run Time E2E-CRC does not match")
        return f"{int.from_bytes(value[:2], 'little')} hours"

    return run


for _n, _what, _e2e, _section, _reader in (
    ("04", "Session Start Time with E2E-CRC", True, "§3.4", _read_sst),
    ("05", "Session Start Time without E2E-CRC", False, "§3.4", _read_sst),
    ("06", "Session Run Time with E2E-CRC", True, "§3.5", _read_srt),
    ("07", "Session Run Time without E2E-CRC", False, "§3.5", _read_srt),
):
    case(
        f"CGMS/SEN/CR/BV-{_n}-C",
        f"Characteristic Read - 'CGM {_what}'",
        f"CGMS.TS 4.6; CGMS {_section}",
        applies=feature(12, _e2e),
    )(_reader(_e2e))


@case("CGMS/SEN/CR/BV-08-C", "Characteristic Read - 'CGM Status'", "CGMS.TS 4.6; CGMS §3.3")
async def read_status(t: Tester) -> str:
    value = await t.must_read(STATUS)
    size = 7 if t.e2e else 5
    t.check(len(value) == size, f"CGM Status has {len(value)} bytes, expected {size}")
    if t.e2e:
        t.check(wire.crc_ok(value), "CGM Status E2E-CRC does not match")
    t.check(not value[2] & 0xC0 and not value[3] & 0xC0, f"reserved status bits set: {value.hex()}")
    return f"time offset {int.from_bytes(value[:2], 'little')} min, status {value[2:5].hex()}"


@case(
    "CGMS/SEN/CR/BV-09-C",
    "Characteristic Read - 'Verify E2E-CRC calculation'",
    "CGMS.TS 4.6; CGMS §3.2.1.3, §3.3.3, §3.4.4, §3.5.2 (CRC-16/MCRF4XX)",
    applies=feature(12),
)
async def read_crc(t: Tester) -> str:
    for uuid in READABLE:
        value = await t.must_read(uuid)
        t.check(wire.crc_ok(value), f"0x{uuid:04X} {value.hex()}: E2E-CRC does not match")
    return "Feature, Status, Session Start Time and Run Time carry valid E2E-CRCs"


# --- writes (CGMS.TS 4.7) ------------------------------------------------------------------------


def _sst_value(when: datetime.datetime, zone: int, dst: int) -> bytes:
    return (
        when.year.to_bytes(2, "little")
        + bytes([when.month, when.day, when.hour, when.minute, when.second])
        + zone.to_bytes(1, "little", signed=True)
        + bytes([dst])
    )


async def _time_offset(t: Tester) -> int:
    return int.from_bytes((await t.must_read(STATUS))[:2], "little")


@case(
    "CGMS/SEN/CW/BV-01-C",
    "Characteristic Write - 'CGM Session Start Time', Type 1",
    "CGMS.TS 4.7; CGMS §3.4.1 (SST = time written - time offset), §3.4.2, §3.4.3",
)
async def write_sst(t: Tester) -> str:
    zone, dst = 8, 4  # UTC+2:00, DST +1 h
    before = await _time_offset(t)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    value = _sst_value(now, zone, dst)
    error = await t.write(SST, wire.with_crc(value) if t.e2e else value)
    t.check(error is None, f"writing a valid Session Start Time refused (0x{error or 0:02X})")
    after = await _time_offset(t)
    read = await t.must_read(SST)
    _check_sst(t, read, t.e2e)
    await t.must_read(SRT)
    t.check(
        read[7:9] == value[7:9],
        f"time zone/DST read back {read[7:9].hex()}, wrote {value[7:9].hex()}",
    )
    year = int.from_bytes(read[:2], "little")
    t.check(year != 0, "Session Start Time still unknown after the write")
    start = datetime.datetime(year, *read[2:7])
    earliest = now - datetime.timedelta(minutes=after + 1)
    latest = now - datetime.timedelta(minutes=before - 1)
    t.check(
        earliest <= start <= latest,
        f"start {start} is not the written time {now} minus the time offset ({before}-{after} min)",
    )
    return f"wrote {now} tz {zone} dst {dst}; start {start} (time offset {before}-{after} min)"


INVALID_SST = [
    ("time zone 126", lambda v: v[:7] + bytes([126]) + v[8:]),
    ("DST offset 3", lambda v: v[:8] + bytes([3])),
    ("month 13", lambda v: v[:2] + bytes([13]) + v[3:]),
    ("hours 24", lambda v: v[:4] + bytes([24]) + v[5:]),
]


def _invalid_sst(cases: list[tuple[str, object]]) -> Run:
    async def run(t: Tester) -> str:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
        valid = _sst_value(now, 0, 0)
        for what, change in cases:
            value = change(valid)  # type: ignore[operator]
            error = await t.write(SST, wire.with_crc(value) if t.e2e else value)
            t.expect_att_error(error, (wire.OUT_OF_RANGE,), f"Session Start Time with {what}")
        return "refused with Out of Range (0xFF)"

    return run


case(
    "CGMS/SEN/CW/BI-01-C",
    "Characteristic Write - 'CGM Session Start Time', Type 2",
    "CGMS.TS 4.7 (time zone 126: ATT 0xFF Out of Range, CSS Part B 1.2); CGMS §3.4.2",
)(_invalid_sst(INVALID_SST[:1]))
case(
    "CGMSIM/SEN/CW/BI-02-C",
    "Session Start Time with an out-of-range DST, month or hour",
    "CGMS §3.4.1, §3.4.3 (DST 0, 2, 4, 8, 255); CSS Part B 1.2 (Out of Range 0xFF), as CW/BI-01-C",
)(_invalid_sst(INVALID_SST[1:]))


# --- E2E-CRC errors on Session Start Time (CGMS.TS 4.16) -----------------------------------------


@case(
    "CGMS/SEN/CBE/BI-06-C",
    "General Error Handling - 'Missing CRC'",
    "CGMS.TS 4.16; CGMS §1.8, §3.4.4 (ATT 0x80)",
    applies=feature(12),
)
async def sst_missing_crc(t: Tester) -> str:
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    error = await t.write(SST, _sst_value(now, 0, 0))
    t.expect_att_error(error, (wire.MISSING_CRC,), "Session Start Time without its E2E-CRC")
    return "refused with Missing CRC (0x80)"


@case(
    "CGMSIM/SEN/CBE/BI-11-C",
    "Session Start Time with an invalid E2E-CRC",
    "CGMS §1.8, §3.4.4 (ATT 0x81 Invalid CRC), as CGMS.TS CBE/BI-07-C for SOCP",
    applies=feature(12),
)
async def sst_invalid_crc(t: Tester) -> str:
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    value = wire.with_crc(_sst_value(now, 0, 0))
    error = await t.write(SST, value[:-2] + bytes([value[-2] ^ 0xFF, value[-1]]))
    t.expect_att_error(error, (wire.INVALID_CRC,), "Session Start Time with a wrong E2E-CRC")
    return "refused with Invalid CRC (0x81)"
