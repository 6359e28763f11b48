import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.cgms import attributes
from protocol.cgms.attributes import (
    SESSION_RUN_TIME_CODEC,
    SESSION_START_TIME_CODEC,
    STATUS_CODEC,
    Feature,
    FeatureFlags,
    SessionRunTime,
    SessionStartTime,
    Status,
)
from protocol.errors import CrcError, FrameError, MissingCrcError

# --- CGM Feature: features u24 | type (low nibble) location (high nibble) | CRC (always) ---
# CRC bytes in these tables come from the bitwise reference in test_crc.py.

FEATURE_BOTH_WAYS = [
    # trend only, ISF (9) / subcutaneous (5) -> 0x59; no E2E-CRC -> CRC field FF FF
    ("00 80 00 59 FF FF", Feature(FeatureFlags.TREND_INFORMATION)),
    # E2E-CRC bit 12 set -> the CRC is computed over the first four bytes
    ("00 10 00 59 F0 49", Feature(FeatureFlags.E2E_CRC)),
    ("FF FF 01 F1 DE FF", Feature(0x1FFFF, type=1, location=15)),
]


@pytest.mark.parametrize(("wire", "value"), FEATURE_BOTH_WAYS)
def test_feature_both_ways(wire, value):
    assert attributes.decode_feature(bytes.fromhex(wire)) == value
    assert attributes.encode_feature(value) == bytes.fromhex(wire)


def test_feature_fields_name_the_bits():
    fields = attributes.feature_fields(bytes.fromhex("40 91 01 59 AF 10"))
    assert fields == {
        "features": 0x019140,
        "feature_names": [
            "sensor_malfunction_detection",
            "sensor_result_high_low_detection",
            "e2e_crc",
            "trend_information",
            "quality",
        ],
        "type": 9,
        "location": 5,
        "crc": 0x10AF,
    }


@pytest.mark.parametrize(
    ("wire", "error", "message"),
    [
        ("00 80 00 59 00 00", CrcError, "must be 0xFFFF, is 0x0000"),
        ("00 10 00 59 F0 4A", CrcError, "E2E-CRC is 0x4AF0, computed 0x49F0"),
        ("00 80 00 59 FF", FrameError, "CGM Feature"),
        ("00 80 00 59 FF FF 00", FrameError, "CGM Feature"),
        ("", FrameError, "CGM Feature"),
    ],
)
def test_feature_invalid(wire, error, message):
    with pytest.raises(error, match=message):
        attributes.decode_feature(bytes.fromhex(wire))


# --- CGM Status: time offset u16 | status | cal/temp | warning | [CRC] ---

STATUS_BOTH_WAYS = [
    ("05 00 00 00 00", False, Status(5)),
    ("37 00 01 02 40", False, Status(55, status=0x01, cal_temp=0x02, warning=0x40)),
    ("05 00 01 02 03 2B 4D", True, Status(5, 1, 2, 3)),
]


@pytest.mark.parametrize(("wire", "crc", "value"), STATUS_BOTH_WAYS)
def test_status_both_ways(wire, crc, value):
    assert STATUS_CODEC.decode(bytes.fromhex(wire)) == value
    assert STATUS_CODEC.decode(bytes.fromhex(wire), crc) == value
    assert STATUS_CODEC.encode(value, crc) == bytes.fromhex(wire)


@pytest.mark.parametrize(
    ("wire", "crc", "error", "message"),
    [
        ("05 00 00 00", None, FrameError, "frame has 4 bytes, expected 5 bytes, or 7 with E2E-CRC"),
        ("05 00 00 00 00 00", None, FrameError, "frame has 6 bytes"),
        ("05 00 01 02 03 2B 4E", None, CrcError, "E2E-CRC is 0x4E2B"),
        ("05 00 00 00 00", True, MissingCrcError, "E2E-CRC required"),
        (
            "05 00 01 02 03 2B 4D",
            False,
            FrameError,
            "frame has 7 bytes, expected 5 bytes \\(E2E-CRC off\\)",
        ),
    ],
)
def test_status_invalid(wire, crc, error, message):
    with pytest.raises(error, match="^CGM Status: " + message):
        STATUS_CODEC.decode(bytes.fromhex(wire), crc)


# --- Session Start Time: year u16 | month | day | h | m | s | time zone s8 | DST | [CRC] ---

SST_BOTH_WAYS = [
    # 2026-11-28 13:00:00, UTC+1 (4 x 15 min), standard time
    ("EA 07 0B 1C 0D 00 00 04 00", False, SessionStartTime(2026, 11, 28, 13, 0, 0, 4, 0)),
    # UTC-5, DST +1 h
    ("E8 07 02 1D 17 3B 3B EC 04", False, SessionStartTime(2024, 2, 29, 23, 59, 59, -20, 4)),
    # everything unknown
    ("00 00 00 00 00 00 00 80 FF", False, SessionStartTime(0, 0, 0, 0, 0, 0, -128, 255)),
]


@pytest.mark.parametrize(("wire", "crc", "value"), SST_BOTH_WAYS)
def test_session_start_time_both_ways(wire, crc, value):
    assert SESSION_START_TIME_CODEC.decode(bytes.fromhex(wire)) == value
    assert SESSION_START_TIME_CODEC.encode(value, crc) == bytes.fromhex(wire)
    with_crc = SESSION_START_TIME_CODEC.encode(value, True)
    assert len(with_crc) == 11
    assert SESSION_START_TIME_CODEC.decode(with_crc, True) == value


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("EA 07 0D 1C 0D 00 00 04 00", "month is 13, allowed 0..12"),
        ("EA 07 0B 20 0D 00 00 04 00", "day is 32"),
        ("EA 07 0B 1C 18 00 00 04 00", "hours is 24"),
        ("EA 07 0B 1C 0D 3C 00 04 00", "minutes is 60"),
        ("EA 07 0B 1C 0D 00 3C 04 00", "seconds is 60"),
        ("EA 07 0B 1C 0D 00 00 39 00", "time_zone is 57, allowed -48..56"),
        ("EA 07 0B 1C 0D 00 00 04 01", "dst is 1, allowed 0, 2, 4, 8, 255"),
        ("E8 03 0B 1C 0D 00 00 04 00", "year is 1000, allowed 1582..9999"),
        ("EA 07 0B 1C 0D 00 00 04", "frame has 8 bytes, expected 9 bytes, or 11 with E2E-CRC"),
    ],
)
def test_session_start_time_invalid(wire, message):
    with pytest.raises(FrameError, match="^CGM Session Start Time: " + message):
        SESSION_START_TIME_CODEC.decode(bytes.fromhex(wire))
    value = SessionStartTime(2026, 11, 28, 13, 0, 0)
    field = message.split(" is ")[0]
    if field in SessionStartTime.__slots__:  # the encoder refuses the same value
        bad = dict(zip(SessionStartTime.__slots__, (2026, 13, 32, 24, 60, 60, 57, 1), strict=True))
        bad["year"] = 1000
        with pytest.raises(FrameError, match=field):
            SESSION_START_TIME_CODEC.encode(
                SessionStartTime(**{**_as_dict(value), field: bad[field]})
            )


def _as_dict(value):
    return {name: getattr(value, name) for name in value.__slots__}


# --- Session Run Time: hours u16 | [CRC] ---


def test_session_run_time_both_ways():
    assert SESSION_RUN_TIME_CODEC.decode(bytes.fromhex("F0 00")) == SessionRunTime(240)
    assert SESSION_RUN_TIME_CODEC.encode(SessionRunTime(240)) == bytes.fromhex("F0 00")
    with_crc = SESSION_RUN_TIME_CODEC.encode(SessionRunTime(252), True)
    assert with_crc[:2] == bytes.fromhex("FC 00") and len(with_crc) == 4
    assert SESSION_RUN_TIME_CODEC.decode(with_crc) == SessionRunTime(252)
    with pytest.raises(FrameError, match="frame has 3 bytes"):
        SESSION_RUN_TIME_CODEC.decode(bytes.fromhex("F0 00 00"))
    with pytest.raises(FrameError, match="hours is 70000"):
        SESSION_RUN_TIME_CODEC.encode(SessionRunTime(70000))


# --- properties ---


@given(
    st.integers(0, 0xFFFFFF),
    st.integers(0, 15),
    st.integers(0, 15),
)
def test_feature_round_trip(features, sample_type, location):
    value = Feature(features, sample_type, location)
    data = attributes.encode_feature(value)
    assert attributes.decode_feature(data) == value
    assert attributes.feature_from_fields(attributes.feature_fields(data)) == value


u8 = st.integers(0, 0xFF)


@given(st.integers(0, 0xFFFF), u8, u8, u8, st.booleans())
def test_status_round_trip(offset, status, cal_temp, warning, crc):
    value = Status(offset, status, cal_temp, warning)
    data = STATUS_CODEC.encode(value, crc)
    assert STATUS_CODEC.decode(data) == value
    assert STATUS_CODEC.from_fields(STATUS_CODEC.fields(data)) == value


@given(
    st.integers(1582, 9999) | st.just(0),
    st.integers(0, 12),
    st.integers(0, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.integers(-48, 56) | st.just(-128),
    st.sampled_from([0, 2, 4, 8, 255]),
    st.booleans(),
)
def test_session_start_time_round_trip(year, month, day, hours, minutes, seconds, tz, dst, crc):
    value = SessionStartTime(year, month, day, hours, minutes, seconds, tz, dst)
    data = SESSION_START_TIME_CODEC.encode(value, crc)
    assert SESSION_START_TIME_CODEC.decode(data) == value
    assert SESSION_START_TIME_CODEC.from_fields(SESSION_START_TIME_CODEC.fields(data)) == value
