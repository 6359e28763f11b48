"""Hypothesis strategies for every CGMS frame: valid values and bytes, and structure-aware
invalid bytes that a decoder must refuse with a :class:`~protocol.errors.FrameError`.

For property tests and fuzzing (``sim.fuzz`` seeds its corpus from these). Only this module of
``protocol`` imports hypothesis, so the wire formats stay light to import.

A drawn frame is a :class:`Frame`: the characteristic's CLI name (``protocol.cgms.codecs``),
the bytes, the ``e2e_crc`` mode to decode them with, and for an invalid frame its ``defect``:

- ``size-flags``: a measurement size byte that disagrees with its flags;
- ``truncated`` / ``oversized``: bytes cut off, or extra bytes (with a valid CRC over them
  where the frame carries one, so the length check is what refuses them);
- ``bad-crc`` / ``missing-crc``: a wrong E2E-CRC, or none where one is mandatory;
- ``reserved-opcode`` / ``reserved-operator`` / ``reserved-filter``: control-point codes the
  spec reserves (answered with a response code by a server);
- ``split``: a notification whose first part ends inside a record (CGMP §4.4: never split).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hypothesis import strategies as st

from protocol import sfloat
from protocol.cgms import attributes, measurement, racp, socp
from protocol.cgms.attributes import Feature, SessionRunTime, SessionStartTime, Status
from protocol.cgms.codecs import CODECS
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import RacpFrame, RacpOpcode, RacpOperator, RacpResponseCode
from protocol.cgms.socp import CalibrationRecord, SocpFrame, SocpOpcode, SocpResponseCode
from protocol.crc import crc16
from protocol.sfloat import SFloatSpecial

NAMES = tuple(sorted(CODECS))
DEFECTS = (
    "size-flags",
    "truncated",
    "oversized",
    "bad-crc",
    "missing-crc",
    "reserved-opcode",
    "reserved-operator",
    "reserved-filter",
    "split",
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One value on the wire. ``value`` is the typed value of a valid frame (None for an
    invalid one or a hand-built record); ``chunks`` are the notifications of a ``split``
    frame (``data`` is then the first one)."""

    name: str
    data: bytes
    e2e_crc: bool | None
    defect: str | None = None
    value: object = None
    chunks: tuple[bytes, ...] = ()


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)

# --- SFLOAT ---------------------------------------------------------------------------------

_SPECIAL_CODES = frozenset(special.value for special in SFloatSpecial)


def _mantissa(raw: int) -> int:
    mantissa = raw & 0xFFF
    return mantissa - 0x1000 if mantissa >= 0x800 else mantissa


def _canonical(raw: int) -> bool:
    """Raw SFLOATs an encoder can produce: the specials and |mantissa| <= 2045 (others decode
    to numbers that come back rounded)."""
    return raw in _SPECIAL_CODES or abs(_mantissa(raw)) <= sfloat.MANTISSA_MAX


def _raw(mantissa: int, exponent: int) -> int:
    return ((exponent & 0xF) << 12) | (mantissa & 0xFFF)


BOUNDARY_SFLOAT_RAWS: tuple[int, ...] = tuple(
    sorted(
        {
            *_SPECIAL_CODES,
            0x0000,
            *(
                _raw(mantissa, exponent)
                for mantissa in (1, -1, 2045, -2045, 2046, -2046, 2047, -2048)
                for exponent in (-8, -1, 0, 1, 7)
            ),
        }
    )
)
"""Raw SFLOATs at the edges: the five specials, zero, the largest and smallest mantissas
(including the non-canonical 2046, 2047 and -2048 next to the special codes) at the extreme
exponents."""

sfloat_raws = st.sampled_from(BOUNDARY_SFLOAT_RAWS) | st.integers(0, 0xFFFF)
"""Any raw 16-bit SFLOAT, boundaries and specials drawn often."""

sfloats = st.integers(0, 0xFFFF).filter(_canonical).map(sfloat.decode)
"""Decoded SFLOAT values that survive encode -> decode unchanged."""

special_sfloats = st.sampled_from(list(SFloatSpecial))


# --- valid typed values ---------------------------------------------------------------------

_octet = st.none() | u8


@st.composite
def measurement_records(draw: st.DrawFn, max_offset: int = 0xFFFF) -> MeasurementRecord:
    """A record an encoder can write: canonical or special SFLOATs, any optional fields."""
    return MeasurementRecord(
        glucose=draw(sfloats),
        time_offset=draw(st.integers(0, max_offset)),
        status=draw(_octet),
        cal_temp=draw(_octet),
        warning=draw(_octet),
        trend=draw(st.none() | sfloats),
        quality=draw(st.none() | sfloats),
    )


def measurement_notifications(
    e2e_crc: bool = False, mtu: int = 23
) -> st.SearchStrategy[tuple[MeasurementRecord, ...]]:
    """Records that fit one notification at this ATT MTU (3 bytes of ATT header)."""
    room = mtu - 3

    def fits(records: list[MeasurementRecord]) -> bool:
        return sum(measurement.record_size(r, e2e_crc) for r in records) <= room

    return st.lists(measurement_records(), min_size=1, max_size=4).filter(fits).map(tuple)


features = st.builds(Feature, st.integers(0, 0xFFFFFF), st.integers(0, 15), st.integers(0, 15))
statuses = st.builds(Status, u16, u8, u8, u8)
session_run_times = st.builds(SessionRunTime, u16)


@st.composite
def session_start_times(draw: st.DrawFn) -> SessionStartTime:
    """A start time the decoder accepts: a real date, or the "unknown" zeros."""
    if draw(st.booleans()):
        year, month, day = 0, 0, 0
    else:
        year = draw(st.integers(1582, 9999))
        month, day = draw(st.integers(1, 12)), draw(st.integers(1, 28))
    return SessionStartTime(
        year,
        month,
        day,
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
        draw(st.just(attributes.TIME_ZONE_UNKNOWN) | st.integers(-48, 56)),
        draw(st.sampled_from(sorted(attributes.DST_CODES))),
    )


_RECORD_OPCODES = (
    RacpOpcode.REPORT_STORED_RECORDS,
    RacpOpcode.DELETE_STORED_RECORDS,
    RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
)


@st.composite
def racp_requests(draw: st.DrawFn) -> RacpFrame:
    """A valid request: a record opcode with any operator and its operand, or abort."""
    opcode = draw(st.sampled_from((*_RECORD_OPCODES, RacpOpcode.ABORT_OPERATION)))
    if opcode == RacpOpcode.ABORT_OPERATION:
        return racp.request(opcode, RacpOperator.NULL)
    operator = draw(st.sampled_from([op for op in RacpOperator if op != RacpOperator.NULL]))
    if operator in (RacpOperator.LESS_THAN_OR_EQUAL_TO, RacpOperator.GREATER_THAN_OR_EQUAL_TO):
        return racp.request(opcode, operator, draw(u16))
    if operator == RacpOperator.WITHIN_RANGE_OF:
        low, high = sorted((draw(u16), draw(u16)))
        return racp.request(opcode, operator, (low, high))
    return racp.request(opcode, operator)


racp_responses = st.one_of(
    st.builds(racp.number_of_records, u16),
    st.builds(racp.response, st.integers(1, 4), st.sampled_from(list(RacpResponseCode))),
)
racp_frames = racp_requests() | racp_responses

calibration_records = st.builds(
    CalibrationRecord,
    sfloats,
    u16,
    st.integers(0, 15),
    st.integers(0, 15),
    u16,
    u16,
    u8,
)


@st.composite
def socp_frames(draw: st.DrawFn) -> SocpFrame:
    """Any valid SOCP request or response, with the operand its opcode carries."""
    opcode = draw(st.sampled_from(list(SocpOpcode)))
    operand = socp.SOCP_OPERANDS.get(opcode)
    if operand is None:
        return SocpFrame(opcode)
    field = operand.subcons[0].name
    value = {
        "interval_min": u8,
        "calibration": calibration_records,
        "record_number": u16,
        "level": sfloats,
    }.get(field)
    if value is not None:
        return SocpFrame(opcode, **{field: draw(value)})
    return socp.response(draw(u8), draw(st.sampled_from(list(SocpResponseCode))))


VALUES: dict[str, st.SearchStrategy[object]] = {
    "measurement": measurement_notifications(mtu=64),
    "feature": features,
    "status": statuses,
    "session-start-time": session_start_times(),
    "session-run-time": session_run_times,
    "racp": racp_frames,
    "socp": socp_frames(),
}
"""A valid typed value for each characteristic, by CLI name."""

_CRC_CAPABLE = {"measurement", "status", "session-start-time", "session-run-time", "socp"}


@st.composite
def valid_frames(draw: st.DrawFn, name: str | None = None) -> Frame:
    """A valid value and its bytes, encoded with or without E2E-CRC; decoded in a mode that
    accepts it (the frame's own length, or the mandatory mode that matches)."""
    name = name or draw(st.sampled_from(NAMES))
    value = draw(VALUES[name])
    e2e = name in _CRC_CAPABLE and draw(st.booleans())
    if name == "feature":
        e2e = value.e2e_crc  # type: ignore[attr-defined]
    data = CODECS[name].encode(value, e2e)
    if name == "socp" or name == "racp":
        mode: bool | None = e2e
    else:
        mode = draw(st.sampled_from((None, e2e)))
    return Frame(name, data, mode, value=value)


# --- hand-built measurement bytes (any raw SFLOAT, reserved flag bits) ------------------------


def record_bytes(
    flags: int,
    glucose: int,
    time_offset: int,
    octets: tuple[int, ...] = (),
    trend: int | None = None,
    quality: int | None = None,
    e2e_crc: bool = False,
    size: int | None = None,
) -> bytes:
    """One measurement record put together field by field from raw values (SPEC §3.1), so
    non-canonical SFLOATs and reserved flag bits can be sent. ``size`` overrides the size byte."""
    body = struct.pack("<HH", glucose, time_offset) + bytes(octets)
    body += b"".join(struct.pack("<H", raw) for raw in (trend, quality) if raw is not None)
    length = 2 + len(body) + (2 if e2e_crc else 0)
    record = bytes([length if size is None else size, flags]) + body
    return record + crc16(record).to_bytes(2, "little") if e2e_crc else record


@st.composite
def raw_measurement_records(draw: st.DrawFn, e2e_crc: bool = False) -> bytes:
    """A valid record with raw SFLOATs (boundaries, specials, non-canonical) and possibly the
    reserved flag bits 2-4 set (ignored on receipt)."""
    present = draw(st.integers(0, 0xFF)) & ~0x1C
    reserved = draw(st.sampled_from((0, 0x04, 0x1C)))
    octet_flags = [bit for bit in (0x80, 0x40, 0x20) if present & bit]
    return record_bytes(
        present | reserved,
        draw(sfloat_raws),
        draw(u16),
        tuple(draw(u8) for _ in octet_flags),
        draw(sfloat_raws) if present & measurement.FLAG_TREND else None,
        draw(sfloat_raws) if present & measurement.FLAG_QUALITY else None,
        e2e_crc,
    )


# --- invalid frames -------------------------------------------------------------------------


def _crc_frame(draw: st.DrawFn, name: str) -> Frame:
    """A valid frame that carries an E2E-CRC."""
    if name == "feature":
        value = Feature(draw(st.integers(0, 0xFFFFFF)) | attributes.FeatureFlags.E2E_CRC)
    else:
        value = draw(VALUES[name])
    return Frame(name, CODECS[name].encode(value, True), True, value=value)


_FIXED_PLAIN = {"status": 5, "session-start-time": 9, "session-run-time": 2}


@st.composite
def truncated_frames(draw: st.DrawFn, name: str) -> Frame:
    """Bytes cut off a valid frame, at a length no frame of this kind has."""
    frame = draw(valid_frames(name))
    data = frame.data
    if name == "measurement":
        records = _record_starts(data)
        cut = draw(st.integers(records[-1] + 1, len(data) - 1)) if len(records) > 1 else None
        if cut is None:
            cut = draw(st.integers(0, len(data) - 1))
        return Frame(name, data[:cut], frame.e2e_crc, "truncated")
    if name in _FIXED_PLAIN:
        plain = _FIXED_PLAIN[name]
        cut = draw(st.integers(0, plain + 1).filter(lambda n: n != plain))
        data = CODECS[name].encode(frame.value, True)
        return Frame(name, data[:cut], None, "truncated")
    if name == "racp" and len(data) <= 2:  # abort and "all" carry no operand: cut the operator
        return Frame(name, data[: draw(st.integers(0, 1))], None, "truncated")
    cut = draw(st.integers(0, len(data) - 1))
    if name == "socp" and frame.e2e_crc:
        cut = min(cut, 2)  # a shorter SOCP frame cannot hold a CRC
    return Frame(name, data[:cut], frame.e2e_crc, "truncated")


def _record_starts(data: bytes) -> list[int]:
    starts, position = [], 0
    while position < len(data):
        starts.append(position)
        position += data[position]
    return starts


@st.composite
def oversized_frames(draw: st.DrawFn, name: str) -> Frame:
    """Extra bytes after a valid frame; where a CRC is carried it is recomputed over them."""
    extra = draw(st.binary(min_size=1, max_size=8))
    if name == "measurement":  # a tail too short to be a record
        frame = draw(valid_frames(name))
        tail = draw(st.binary(min_size=1, max_size=measurement.MIN_RECORD_SIZE - 1))
        return Frame(name, frame.data + tail, frame.e2e_crc, "oversized")
    if name == "racp":
        frame = draw(valid_frames(name))
        return Frame(name, frame.data + extra, None, "oversized")
    frame = _crc_frame(draw, name)
    grown = frame.data[:-2] + extra
    return Frame(name, grown + crc16(grown).to_bytes(2, "little"), frame.e2e_crc, "oversized")


@st.composite
def bad_crc_frames(draw: st.DrawFn, name: str) -> Frame:
    """A frame whose E2E-CRC is wrong (for a Feature without E2E-CRC: not 0xFFFF)."""
    flip = draw(st.integers(1, 0xFFFF))
    if name == "feature" and draw(st.booleans()):
        data = attributes.encode_feature(
            Feature(draw(st.integers(0, 0xFFFFFF)) & ~attributes.FeatureFlags.E2E_CRC)
        )
        return Frame(
            name, data[:-2] + bytes([0xFF ^ (flip & 0xFF), 0xFF ^ (flip >> 8)]), None, "bad-crc"
        )
    frame = _crc_frame(draw, name)
    data = bytearray(frame.data)
    if name == "measurement":  # spoil one record's CRC
        starts = _record_starts(frame.data)
        start = draw(st.sampled_from(starts))
        end = start + data[start]
    else:
        end = len(data)
    crc = int.from_bytes(data[end - 2 : end], "little") ^ flip
    data[end - 2 : end] = crc.to_bytes(2, "little")
    return Frame(
        name,
        bytes(data),
        draw(st.sampled_from((None, True))) if name != "socp" else True,
        "bad-crc",
    )


@st.composite
def missing_crc_frames(draw: st.DrawFn, name: str) -> Frame:
    """A valid frame without CRC, decoded where E2E-CRC is mandatory."""
    value = draw(VALUES[name])
    return Frame(name, CODECS[name].encode(value, False), True, "missing-crc", value)


@st.composite
def size_flag_mismatches(draw: st.DrawFn) -> Frame:
    """A measurement record whose size byte disagrees with its flags: a wrong size byte, or
    flags that add fields the record does not have."""
    e2e = draw(st.booleans())
    record = draw(measurement_records())
    data = bytearray(measurement.encode([record], e2e))
    plain = measurement.record_size_for_flags(data[1], False)
    if draw(st.booleans()):
        data[0] = draw(u8.filter(lambda size: size not in (plain, plain + 2)))
    else:
        # Without CRC any field added makes the record too short for its flags; with one, a
        # two-byte field would take the CRC's place, so only one-octet fields are added then.
        missing = (0x20 | 0x40 | 0x80 if e2e else 0xE3) & ~data[1]
        if not missing:
            data[0] = plain + 1 if not e2e else plain + 3
        else:
            data[1] |= draw(
                st.sampled_from([bit for bit in (1, 2, 0x20, 0x40, 0x80) if missing & bit])
            )
    return Frame("measurement", bytes(data), draw(st.sampled_from((None, e2e))), "size-flags")


@st.composite
def reserved_opcode_frames(draw: st.DrawFn, name: str) -> Frame:
    """A RACP or SOCP frame whose opcode the spec reserves (with a valid CRC on SOCP)."""
    if name == "racp":
        opcode = draw(st.just(0) | st.integers(7, 0xFF))
        return Frame(name, bytes([opcode]) + draw(st.binary(max_size=5)), None, "reserved-opcode")
    opcode = draw(st.just(0) | st.integers(0x1D, 0xFF))
    e2e = draw(st.booleans())
    data = bytes([opcode]) + draw(st.binary(max_size=4))
    if e2e:
        data += crc16(data).to_bytes(2, "little")
    return Frame(name, data, e2e, "reserved-opcode")


@st.composite
def reserved_operator_frames(draw: st.DrawFn) -> Frame:
    """A RACP request with a reserved operator, or null where one is needed (or the other way
    round for abort)."""
    if draw(st.booleans()):
        operator = draw(st.integers(1, 0xFF))
        return Frame(
            "racp", bytes([RacpOpcode.ABORT_OPERATION, operator]), None, "reserved-operator"
        )
    opcode = draw(st.sampled_from(_RECORD_OPCODES))
    operator = draw(st.just(0) | st.integers(7, 0xFF))
    return Frame(
        "racp", bytes([opcode, operator]) + draw(st.binary(max_size=5)), None, "reserved-operator"
    )


@st.composite
def reserved_filter_frames(draw: st.DrawFn) -> Frame:
    """A RACP request filtering on a filter type CGMS does not define (only 0x01)."""
    opcode = draw(st.sampled_from(_RECORD_OPCODES))
    operator = draw(st.sampled_from((2, 3, 4)))
    filter_type = draw(u8.filter(lambda f: f != racp.FILTER_TIME_OFFSET))
    operand = draw(st.binary(min_size=2, max_size=4))
    return Frame("racp", bytes([opcode, operator, filter_type]) + operand, None, "reserved-filter")


@st.composite
def split_notifications(draw: st.DrawFn) -> Frame:
    """Records of one notification sent as two, cut inside a record: the first part must be
    refused (the second may happen to parse)."""
    e2e = draw(st.booleans())
    records = draw(measurement_notifications(e2e, mtu=80))
    data = measurement.encode(records, e2e)
    starts = set(_record_starts(data))
    cut = draw(st.integers(1, len(data) - 1).filter(lambda n: n not in starts))
    return Frame("measurement", data[:cut], e2e, "split", chunks=(data[:cut], data[cut:]))


def invalid_frames(name: str | None = None) -> st.SearchStrategy[Frame]:
    """Structure-aware invalid frames of one characteristic (or any): each must be refused
    with a FrameError by ``CODECS[frame.name].decode(frame.data, frame.e2e_crc)``."""
    names = (name,) if name else NAMES
    options: list[st.SearchStrategy[Frame]] = []
    for each in names:
        options += [truncated_frames(each), oversized_frames(each)]
        if each != "racp":
            options.append(bad_crc_frames(each))
        if each in _CRC_CAPABLE:
            options.append(missing_crc_frames(each))
        if each in ("racp", "socp"):
            options.append(reserved_opcode_frames(each))
        if each == "racp":
            options += [reserved_operator_frames(), reserved_filter_frames()]
        if each == "measurement":
            options += [size_flag_mismatches(), split_notifications()]
    return st.one_of(options)


def frames(name: str | None = None) -> st.SearchStrategy[Frame]:
    """Valid and invalid frames of one characteristic (or any), half and half."""
    return valid_frames(name) | invalid_frames(name)
