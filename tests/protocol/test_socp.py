import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.cgms import socp
from protocol.cgms.socp import (
    ALERT_LEVELS,
    SOCP_OPERANDS,
    CalibrationRecord,
    SocpFrame,
    SocpOpcode,
    SocpResponseCode,
)
from protocol.cgms.strategies import sfloats
from protocol.errors import ControlPointError, CrcError, FrameError, MissingCrcError

Op, Code = SocpOpcode, SocpResponseCode
CAL = CalibrationRecord(
    glucose=120.0,
    calibration_time=10,
    type=2,  # capillary plasma (low nibble)
    location=1,  # finger (high nibble)
    next_calibration_time=720,
    record_number=3,
    status=0x04,  # pending
)

# CGMS v1.0.1 §3.7: opcode | operand. Calibration record: glucose SFLOAT | time u16 |
# type/location | next time u16 | record number u16 | status. CRCs from test_crc's reference.
BOTH_WAYS = [
    ("01 05", False, SocpFrame(Op.SET_COMMUNICATION_INTERVAL, interval_min=5)),
    ("01 FF", False, SocpFrame(Op.SET_COMMUNICATION_INTERVAL, interval_min=0xFF)),
    ("02", False, SocpFrame(Op.GET_COMMUNICATION_INTERVAL)),
    ("03 05", False, SocpFrame(Op.COMMUNICATION_INTERVAL_RESPONSE, interval_min=5)),
    (
        "04 78 00 0A 00 12 D0 02 03 00 04",
        False,
        SocpFrame(Op.SET_CALIBRATION_VALUE, calibration=CAL),
    ),
    ("05 FF FF", False, SocpFrame(Op.GET_CALIBRATION_VALUE, record_number=socp.LAST_CALIBRATION)),
    (
        "06 78 00 0A 00 12 D0 02 03 00 04",
        False,
        SocpFrame(Op.CALIBRATION_VALUE_RESPONSE, calibration=CAL),
    ),
    ("07 FA 00", False, SocpFrame(Op.SET_PATIENT_HIGH_ALERT_LEVEL, level=250.0)),
    ("08", False, SocpFrame(Op.GET_PATIENT_HIGH_ALERT_LEVEL)),
    ("09 FA 00", False, SocpFrame(Op.PATIENT_HIGH_ALERT_LEVEL_RESPONSE, level=250.0)),
    ("0A 46 00", False, SocpFrame(Op.SET_PATIENT_LOW_ALERT_LEVEL, level=70.0)),
    ("0D 37 00", False, SocpFrame(Op.SET_HYPO_ALERT_LEVEL, level=55.0)),
    ("10 90 01", False, SocpFrame(Op.SET_HYPER_ALERT_LEVEL, level=400.0)),
    ("13 02 00", False, SocpFrame(Op.SET_RATE_OF_DECREASE_ALERT_LEVEL, level=2.0)),
    ("16 03 00", False, SocpFrame(Op.SET_RATE_OF_INCREASE_ALERT_LEVEL, level=3.0)),
    ("18 E5 F0", False, SocpFrame(Op.RATE_OF_INCREASE_ALERT_LEVEL_RESPONSE, level=22.9)),
    ("19", False, SocpFrame(Op.RESET_DEVICE_SPECIFIC_ALERT)),
    ("1A", False, SocpFrame(Op.START_SESSION)),
    ("1B", False, SocpFrame(Op.STOP_SESSION)),
    ("1C 1A 01", False, socp.response(Op.START_SESSION, Code.SUCCESS)),
    ("1C 1B 02", False, socp.response(Op.STOP_SESSION, Code.OP_CODE_NOT_SUPPORTED)),
    (
        "1C 07 05",
        False,
        socp.response(Op.SET_PATIENT_HIGH_ALERT_LEVEL, Code.PARAMETER_OUT_OF_RANGE),
    ),
    ("1A 5C B0", True, SocpFrame(Op.START_SESSION)),
    ("1C 1A 01 6D 60", True, socp.response(Op.START_SESSION, Code.SUCCESS)),
    ("0A 46 00 FF 58", True, SocpFrame(Op.SET_PATIENT_LOW_ALERT_LEVEL, level=70.0)),
    ("01 05 CD BE", True, SocpFrame(Op.SET_COMMUNICATION_INTERVAL, interval_min=5)),
]


@pytest.mark.parametrize(("wire", "crc", "frame"), BOTH_WAYS)
def test_both_ways(wire, crc, frame):
    assert socp.decode(bytes.fromhex(wire), crc) == frame
    assert socp.encode(frame, crc) == bytes.fromhex(wire)


def test_levels_decode_whatever_exponent_the_peer_chose():
    assert socp.decode(bytes.fromhex("16 1E F0")).level == 3.0  # 30e-1


def test_table_covers_every_operand_layout():
    tabled = {socp.decode(bytes.fromhex(w), c).opcode for w, c, _ in BOTH_WAYS}
    missing = {op for op in Op if op not in tabled}
    # What is not in the table are alert-level opcodes whose layout rows above already cover.
    assert missing <= {opcode for triple in ALERT_LEVELS.values() for opcode in triple}


def test_fields_view():
    assert socp.fields(bytes.fromhex("04 78 00 0A 00 12 D0 02 03 00 04")) == {
        "opcode": 4,
        "calibration": {
            "glucose": 120.0,
            "calibration_time": 10,
            "type": 2,
            "location": 1,
            "next_calibration_time": 720,
            "record_number": 3,
            "status": 4,
        },
    }
    assert socp.fields(bytes.fromhex("1C 1A 01 6D 60"), e2e_crc=True) == {
        "opcode": 0x1C,
        "request_opcode": 0x1A,
        "response_code": 1,
        "crc": 0x606D,
    }
    assert socp.fields(bytes.fromhex("0A FF 07")) == {"opcode": 0x0A, "level": "NaN"}


INVALID = [
    ("", None, ControlPointError, "frame is empty"),
    ("00", None, ControlPointError, "opcode 0x00 is reserved"),
    ("1D", None, ControlPointError, "opcode 0x1D is reserved"),
    ("01", None, ControlPointError, "operand has 0 bytes, expected 1 \\(E2E-CRC off\\)"),
    ("1A 00", None, ControlPointError, "start session: operand has 1 bytes, expected 0"),
    ("04 78 00 0A 00 12 D0 02 03 00", None, ControlPointError, "operand has 9 bytes, expected 10"),
    ("1C 1A 06", None, ControlPointError, "response_code 6 is reserved"),
    ("1A 5C B0", None, ControlPointError, "operand has 2 bytes"),  # a CRC without --e2e-crc
    ("1A", True, MissingCrcError, "E2E-CRC required"),
    ("0A 46 00", True, MissingCrcError, "E2E-CRC required"),
    ("1A 5C B1", True, CrcError, "E2E-CRC is 0xB15C, computed 0xB05C"),
]


@pytest.mark.parametrize(("wire", "crc", "error", "message"), INVALID)
def test_invalid_frames(wire, crc, error, message):
    with pytest.raises(error, match="^CGM Specific Ops Control Point: .*" + message):
        socp.decode(bytes.fromhex(wire), crc)


@pytest.mark.parametrize(
    ("wire", "opcode", "code"),
    [
        ("00", 0x00, Code.OP_CODE_NOT_SUPPORTED),
        ("30 01", 0x30, Code.OP_CODE_NOT_SUPPORTED),
        ("01", 0x01, Code.INVALID_OPERAND),
        ("07 FA", 0x07, Code.INVALID_OPERAND),
    ],
)
def test_invalid_requests_carry_the_response_code(wire, opcode, code):
    with pytest.raises(ControlPointError) as raised:
        socp.decode(bytes.fromhex(wire))
    assert (raised.value.request_opcode, raised.value.response_code) == (opcode, code)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            SocpFrame(Op.START_SESSION, interval_min=5),
            "start_session takes no operand, got interval_min",
        ),
        (SocpFrame(Op.SET_PATIENT_HIGH_ALERT_LEVEL), "takes level, got none"),
        (SocpFrame(0x40), "opcode 0x40 is reserved"),
        (SocpFrame(Op.SET_COMMUNICATION_INTERVAL, interval_min=256), "interval_min"),
        (SocpFrame(Op.SET_HYPO_ALERT_LEVEL, level=1e30), "beyond the SFLOAT range"),
    ],
)
def test_encoder_refuses_invalid_frames(frame, message):
    with pytest.raises(FrameError, match=message):
        socp.encode(frame)


u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)
calibrations = st.builds(
    CalibrationRecord, sfloats, u16, st.integers(0, 15), st.integers(0, 15), u16, u16, u8
)


def frame_for(opcode: int, data: st.DataObject) -> SocpFrame:
    operand = SOCP_OPERANDS.get(opcode)
    names = [sub.name for sub in operand.subcons] if operand else []
    values = {
        "interval_min": u8,
        "calibration": calibrations,
        "record_number": u16,
        "level": sfloats,
        "request_opcode": u8,
        "response_code": st.sampled_from(list(Code)),
    }
    return SocpFrame(opcode, **{name: data.draw(values[name]) for name in names})


@given(st.sampled_from(list(Op)), st.booleans(), st.data())
def test_round_trip(opcode, crc, data):
    frame = frame_for(opcode, data)
    wire = socp.encode(frame, crc)
    assert socp.decode(wire, crc) == frame
    assert socp.from_fields(socp.fields(wire, crc)) == frame
