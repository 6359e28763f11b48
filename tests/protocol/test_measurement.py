import pytest
from construct import Container
from hypothesis import given
from hypothesis import strategies as st

from protocol.cgms import framing, measurement
from protocol.cgms.measurement import MEASUREMENT_RECORD, MeasurementRecord
from protocol.cgms.strategies import sfloats
from protocol.errors import CrcError, FrameError, MissingCrcError
from protocol.sfloat import SFloatSpecial

R = MeasurementRecord

# Hand-derived from CGMS v1.0.1 §3.1: size | flags | glucose SFLOAT | time offset u16 |
# [status] [cal/temp] [warning] | [trend SFLOAT] | [quality SFLOAT] | [CRC]. 120 mg/dL = 78 00,
# 0.2 = 02 F0, 99.7 = E5 F3, -1.5 = F1 FF; CRCs from the bitwise reference in test_crc.py.
BOTH_WAYS = [
    ("06 00 78 00 05 00", False, [R(120.0, 5)]),
    ("08 01 78 00 05 00 02 F0", False, [R(120.0, 5, trend=0.2)]),
    ("08 02 78 00 05 00 E5 F3", False, [R(120.0, 5, quality=99.7)]),
    ("07 80 78 00 05 00 01", False, [R(120.0, 5, status=0x01)]),
    ("07 40 78 00 05 00 08", False, [R(120.0, 5, cal_temp=0x08)]),
    ("07 20 28 00 0A 00 40", False, [R(40.0, 10, warning=0x40)]),
    # Cal/Temp before Warning, whatever order the fields are named in.
    ("08 60 78 00 05 00 02 03", False, [R(120.0, 5, cal_temp=0x02, warning=0x03)]),
    ("0D E3 78 00 05 00 01 02 03 02 F0 E5 F3", False, [R(120.0, 5, 1, 2, 3, 0.2, 99.7)]),
    ("0F E3 78 00 05 00 01 02 03 02 F0 E5 F3 81 AD", True, [R(120.0, 5, 1, 2, 3, 0.2, 99.7)]),
    ("08 00 78 00 05 00 0D E8", True, [R(120.0, 5)]),
    ("0A 01 D2 E4 FF FF F1 FF 60 E7", True, [R(12.34, 0xFFFF, trend=-1.5)]),
    ("06 00 FF 07 00 00", False, [R(SFloatSpecial.NAN, 0)]),
    ("06 00 00 08 00 00", False, [R(SFloatSpecial.NRES, 0)]),
    (  # three records in one notification (the most a default 23-byte ATT MTU carries)
        "06 00 78 00 05 00 06 00 7D 00 0A 00 06 00 82 00 0F 00",
        False,
        [R(120.0, 5), R(125.0, 10), R(130.0, 15)],
    ),
    (
        "08 00 78 00 05 00 0D E8 0A 01 D2 E4 FF FF F1 FF 60 E7",
        True,
        [R(120.0, 5), R(12.34, 0xFFFF, trend=-1.5)],
    ),
]

# Valid frames the encoder writes differently (same values).
PARSE_ONLY = [
    ("06 00 0C 10 05 00", [R(120.0, 5)]),  # 12e1 instead of 120e0
    ("06 1C 78 00 05 00", [R(120.0, 5)]),  # reserved flag bits 2-4 are ignored
]

INVALID = [
    ("", None, FrameError, "notification is empty"),
    ("05 00 78 00 05", None, FrameError, "size byte says 5, a record has at least 6"),
    ("0A 03 78 00 05 00 02 F0", None, FrameError, "size byte says 10, record has 8 bytes"),
    ("07 00 78 00 05 00 00", None, FrameError, "size byte says 7, flags 0x00 give 6, or 8"),
    ("08 01 78 00 05 00", None, FrameError, "size byte says 8, record has 6 bytes"),
    (
        "0A 80 78 00 05 00 01 00 00 00",
        None,
        FrameError,
        "size byte says 10, flags 0x80 give 7, or 9",
    ),
    ("06 00 78 00 05 00 00", None, FrameError, "record 2: size byte says 0"),
    ("06 00 78 00 05 00 06 00", None, FrameError, "record 2: size byte says 6, record has 2"),
    ("08 00 78 00 05 00 0D E9", None, CrcError, "E2E-CRC is 0xE90D, computed 0xE80D"),
    ("06 00 78 00 05 00", True, MissingCrcError, "E2E-CRC required"),
    ("08 00 78 00 05 00 0D E8", False, FrameError, "flags 0x00 give 6"),
    ("06 00 78 00 05 00 08 00 78 00 05 00 0D E8", False, FrameError, "record 2: size byte says 8"),
]


@pytest.mark.parametrize(("wire", "crc", "records"), BOTH_WAYS)
def test_decode_table(wire, crc, records):
    data = bytes.fromhex(wire)
    assert list(measurement.decode(data)) == records
    assert list(measurement.decode(data, e2e_crc=crc)) == records


@pytest.mark.parametrize(("wire", "crc", "records"), BOTH_WAYS)
def test_encode_table(wire, crc, records):
    assert measurement.encode(records, e2e_crc=crc) == bytes.fromhex(wire)
    assert sum(measurement.record_size(r, crc) for r in records) == len(bytes.fromhex(wire))


@pytest.mark.parametrize(("wire", "records"), PARSE_ONLY)
def test_decode_only_table(wire, records):
    assert list(measurement.decode(bytes.fromhex(wire))) == records


@pytest.mark.parametrize(("wire", "crc", "error", "message"), INVALID)
def test_invalid_frames_name_the_problem(wire, crc, error, message):
    with pytest.raises(error, match=message) as raised:
        measurement.decode(bytes.fromhex(wire), e2e_crc=crc)
    assert str(raised.value).startswith("CGM Measurement")


def test_one_record_of_several_reports_its_number():
    good = measurement.encode([R(100.0, 1)])
    with pytest.raises(FrameError, match=r"^CGM Measurement record 3: size byte says 4"):
        measurement.decode(good + good + b"\x04\x00\x00\x00")


def test_fields_view_has_the_cli_keys():
    data = bytes.fromhex("0F E3 78 00 05 00 01 02 03 02 F0 E5 F3 81 AD")
    assert measurement.fields(data) == {
        "records": [
            {
                "size": 15,
                "flags": 0xE3,
                "glucose": 120.0,
                "time_offset": 5,
                "status": 1,
                "cal_temp": 2,
                "warning": 3,
                "trend": 0.2,
                "quality": 99.7,
                "crc": 0xAD81,
            }
        ]
    }
    minimal = measurement.fields(bytes.fromhex("06 00 FF 07 05 00"))["records"][0]
    assert minimal["glucose"] == "NaN"
    assert minimal["trend"] is minimal["crc"] is minimal["status"] is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (R(120.0, 70000), "time_offset is 70000"),
        (R(120.0, -1), "time_offset is -1"),
        (R(120.0, 5, status=256), "status is 256"),
        (R(3e12, 5), "beyond the SFLOAT range"),
        (R("high", 5), "expected a number"),  # type: ignore[arg-type]
    ],
)
def test_encoder_rejects_what_does_not_fit(record, message):
    with pytest.raises(FrameError, match=message):
        measurement.encode([record])


def test_encoder_needs_a_record():
    with pytest.raises(FrameError, match="at least one record"):
        measurement.encode([])


# --- properties ---


octets = st.none() | st.integers(0, 0xFF)
records = st.builds(
    MeasurementRecord,
    glucose=sfloats,
    time_offset=st.integers(0, 0xFFFF),
    status=octets,
    cal_temp=octets,
    warning=octets,
    trend=st.none() | sfloats,
    quality=st.none() | sfloats,
)


@given(st.lists(records, min_size=1, max_size=8), st.booleans())
def test_round_trip(batch, crc):
    data = measurement.encode(batch, e2e_crc=crc)
    assert list(measurement.decode(data)) == batch
    assert list(measurement.decode(data, e2e_crc=crc)) == batch
    fields = measurement.fields(data)
    assert measurement.from_fields(fields) == tuple(batch)


@given(st.integers(0, 0xFF), st.booleans(), st.data())
def test_fast_path_equals_the_construct_declaration(flags, crc, data):
    """framing.flat_layout parses and builds every valid record exactly as MEASUREMENT_RECORD."""
    size = measurement.record_size_for_flags(flags, crc)
    body = data.draw(st.binary(min_size=size - 2, max_size=size - 2))
    record = bytes([size, flags]) + body
    if crc:
        record = framing.with_crc(record)
    declared = MEASUREMENT_RECORD.parse(record, e2e_crc=crc)
    fast = measurement._layout(flags, crc).unpack(record)
    expected = {k: v for k, v in declared.items() if k != "_io" and v is not None}
    assert {k: v for k, v in fast.items() if v is not None} == expected
    assert isinstance(declared, Container)
    # Building: the same bytes (SFLOATs re-encoded canonically by both; the declaration's
    # Rebuild derives flags from the fields present, so reserved bits 2-4 are not rebuilt).
    rebuilt = {**fast, "flags": flags & ~0x1C}
    assert measurement._layout(flags, crc).pack(rebuilt) == MEASUREMENT_RECORD.build(
        declared, e2e_crc=crc
    )
