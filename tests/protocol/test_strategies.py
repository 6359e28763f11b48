"""The public frame strategies draw what they promise: valid frames decode to their value,
invalid ones are refused with the error their defect calls for."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import sfloat
from protocol.cgms import measurement, strategies
from protocol.cgms.codecs import CODECS
from protocol.errors import ControlPointError, CrcError, FrameError, MissingCrcError
from protocol.sfloat import SFloatSpecial


@pytest.mark.parametrize("name", strategies.NAMES)
@settings(max_examples=60)
@given(data=st.data())
def test_valid_frames_decode_to_their_value(name, data):
    frame = data.draw(strategies.valid_frames(name))
    decoded = CODECS[name].decode(frame.data, frame.e2e_crc)
    assert decoded == frame.value
    assert CODECS[name].encode(decoded, bool(frame.e2e_crc)) == frame.data or frame.e2e_crc is None


# What each defect must be refused with; None: any FrameError.
EXPECTED = {
    "bad-crc": CrcError,
    "missing-crc": MissingCrcError,
    "reserved-opcode": ControlPointError,
    "reserved-operator": ControlPointError,
    "reserved-filter": ControlPointError,
}


@pytest.mark.parametrize("name", strategies.NAMES)
@settings(max_examples=120)
@given(data=st.data())
def test_invalid_frames_are_refused(name, data):
    frame = data.draw(strategies.invalid_frames(name))
    assert frame.defect in strategies.DEFECTS
    with pytest.raises(EXPECTED.get(frame.defect, FrameError)) as refused:
        CODECS[name].decode(frame.data, frame.e2e_crc)
    assert str(refused.value).startswith(CODECS[name].characteristic.title)
    if frame.defect == "split":
        assert b"".join(frame.chunks) and len(frame.chunks) == 2
        measurement.decode(b"".join(frame.chunks), frame.e2e_crc)  # whole, it is valid


def test_every_defect_is_drawn():
    seen: set[str] = set()

    @settings(max_examples=400, database=None, derandomize=True)  # the same draw everywhere
    @given(strategies.invalid_frames())
    def collect(frame):
        seen.add(frame.defect)

    collect()
    assert seen == set(strategies.DEFECTS)


@settings(max_examples=200)
@given(strategies.raw_measurement_records(), st.booleans())
def test_hand_built_records_decode(data, e2e):
    (record,) = measurement.decode(data, None)
    assert data[0] == measurement.record_size_for_flags(data[1], False)
    assert record.time_offset == int.from_bytes(data[4:6], "little")
    assert record.glucose == sfloat.decode(int.from_bytes(data[2:4], "little")) or (
        isinstance(record.glucose, float) and math.isnan(record.glucose)
    )


def test_boundary_sfloats_cover_the_specials_and_the_mantissa_edges():
    raws = set(strategies.BOUNDARY_SFLOAT_RAWS)
    assert {special.value for special in SFloatSpecial} <= raws
    decoded = {sfloat.decode(raw) for raw in raws}
    assert 2045e7 in decoded and -2045e7 in decoded  # the largest magnitudes an encoder writes
    # non-canonical mantissas (at exponent 0, 2046, 2047 and -2048 are special codes)
    assert 20470.0 in decoded and -20480.0 in decoded and 20460.0 in decoded


def test_record_bytes_matches_the_encoder():
    record = measurement.MeasurementRecord(120.0, 5, status=1, trend=0.2)
    wire = strategies.record_bytes(0x81, 0x0078, 5, (1,), trend=0xF002, e2e_crc=True)
    assert wire == measurement.encode([record], e2e_crc=True)
