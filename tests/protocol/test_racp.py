import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.cgms import racp
from protocol.cgms.racp import RacpFrame, RacpOpcode, RacpOperator, RacpResponseCode
from protocol.errors import ControlPointError, FrameError

Op, Operator, Code = RacpOpcode, RacpOperator, RacpResponseCode

# CGMS v1.0.1 §3.6: opcode | operator | operand. Time offsets little-endian u16.
BOTH_WAYS = [
    ("01 01", racp.request(Op.REPORT_STORED_RECORDS, Operator.ALL_RECORDS)),
    ("01 02 01 0A 00", racp.request(Op.REPORT_STORED_RECORDS, Operator.LESS_THAN_OR_EQUAL_TO, 10)),
    (
        "01 03 01 2C 01",
        racp.request(Op.REPORT_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL_TO, 300),
    ),
    (
        "01 04 01 05 00 0A 00",
        racp.request(Op.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE_OF, (5, 10)),
    ),
    ("01 05", racp.request(Op.REPORT_STORED_RECORDS, Operator.FIRST_RECORD)),
    ("01 06", racp.request(Op.REPORT_STORED_RECORDS, Operator.LAST_RECORD)),
    ("02 01", racp.request(Op.DELETE_STORED_RECORDS, Operator.ALL_RECORDS)),
    (
        "02 02 01 FF FF",
        racp.request(Op.DELETE_STORED_RECORDS, Operator.LESS_THAN_OR_EQUAL_TO, 0xFFFF),
    ),
    ("03 00", racp.request(Op.ABORT_OPERATION, Operator.NULL)),
    ("04 01", racp.request(Op.REPORT_NUMBER_OF_STORED_RECORDS, Operator.ALL_RECORDS)),
    (
        "04 03 01 00 00",
        racp.request(Op.REPORT_NUMBER_OF_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL_TO, 0),
    ),
    ("05 00 20 01", racp.number_of_records(288)),
    ("05 00 00 00", racp.number_of_records(0)),
    ("06 00 01 01", racp.response(Op.REPORT_STORED_RECORDS, Code.SUCCESS)),
    ("06 00 01 06", racp.response(Op.REPORT_STORED_RECORDS, Code.NO_RECORDS_FOUND)),
    ("06 00 03 01", racp.response(Op.ABORT_OPERATION, Code.SUCCESS)),
    ("06 00 04 09", racp.response(Op.REPORT_NUMBER_OF_STORED_RECORDS, Code.OPERAND_NOT_SUPPORTED)),
    ("06 00 20 02", racp.response(0x20, Code.OP_CODE_NOT_SUPPORTED)),  # echoes an unknown opcode
]


@pytest.mark.parametrize(("wire", "frame"), BOTH_WAYS)
def test_both_ways(wire, frame):
    assert racp.decode(bytes.fromhex(wire)) == frame
    assert racp.encode(frame) == bytes.fromhex(wire)


def test_fields_view():
    assert racp.fields(bytes.fromhex("01 04 01 05 00 0A 00")) == {
        "opcode": 1,
        "operator": 4,
        "filter_type": 1,
        "operand": [5, 10],
    }
    assert racp.fields(bytes.fromhex("05 00 20 01")) == {
        "opcode": 5,
        "operator": 0,
        "number_of_records": 288,
    }
    assert racp.fields(bytes.fromhex("06 00 01 06")) == {
        "opcode": 6,
        "operator": 0,
        "request_opcode": 1,
        "response_code": 6,
    }


# Invalid requests carry the response code a server sends back (CGMS §3.6.3).
INVALID = [
    ("", 0, Code.OP_CODE_NOT_SUPPORTED, "frame is empty"),
    ("00 01", 0x00, Code.OP_CODE_NOT_SUPPORTED, "opcode 0x00 is reserved"),
    ("07 01", 0x07, Code.OP_CODE_NOT_SUPPORTED, "opcode 0x07 is reserved"),
    ("01", 0x01, Code.INVALID_OPERATOR, "operator missing"),
    ("01 00", 0x01, Code.INVALID_OPERATOR, "operator 0 is not valid"),
    ("01 07", 0x01, Code.OPERATOR_NOT_SUPPORTED, "operator 7 is reserved"),
    ("04 FF", 0x04, Code.OPERATOR_NOT_SUPPORTED, "operator 255 is reserved"),
    ("03 01", 0x03, Code.INVALID_OPERATOR, "must be 0 \\(null\\)"),
    ("03 00 00", 0x03, Code.INVALID_OPERAND, "operand has 1 bytes, expected 0"),
    ("01 01 00", 0x01, Code.INVALID_OPERAND, "operand has 1 bytes, operator 1 needs 0"),
    ("01 03 01 05", 0x01, Code.INVALID_OPERAND, "operand has 2 bytes, operator 3 needs 3"),
    ("01 03 01 05 00 00", 0x01, Code.INVALID_OPERAND, "operand has 4 bytes"),
    ("01 03", 0x01, Code.INVALID_OPERAND, "operand has 0 bytes"),
    ("01 03 02 05 00", 0x01, Code.OPERAND_NOT_SUPPORTED, "filter_type 0x02 is not supported"),
    ("04 04 01 0A 00 05 00", 0x04, Code.INVALID_OPERAND, "range minimum is above its maximum"),
    ("05 01 20 01", 0x05, Code.INVALID_OPERATOR, "must be 0"),
    ("05 00 20", 0x05, Code.INVALID_OPERAND, "operand has 1 bytes, expected 2"),
    ("06 00 01 0A", 0x06, Code.INVALID_OPERAND, "response_code 10 is reserved"),
]


@pytest.mark.parametrize(("wire", "opcode", "code", "message"), INVALID)
def test_invalid_frames_carry_the_response_code(wire, opcode, code, message):
    with pytest.raises(
        ControlPointError, match="^Record Access Control Point: .*" + message
    ) as raised:
        racp.decode(bytes.fromhex(wire))
    assert raised.value.request_opcode == opcode
    assert raised.value.response_code == code


@pytest.mark.parametrize(
    "frame",
    [
        RacpFrame(Op.REPORT_STORED_RECORDS, Operator.NULL),
        RacpFrame(0x30, Operator.ALL_RECORDS),
        racp.request(Op.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE_OF, (10, 5)),
        racp.request(Op.REPORT_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL_TO, 70000),
        RacpFrame(Op.REPORT_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL_TO, 2, 10),
    ],
)
def test_encoder_refuses_invalid_frames(frame):
    with pytest.raises(FrameError):
        racp.encode(frame)


time_offsets = st.integers(0, 0xFFFF)
requests = st.one_of(
    st.builds(
        racp.request,
        st.sampled_from(
            [Op.REPORT_STORED_RECORDS, Op.DELETE_STORED_RECORDS, Op.REPORT_NUMBER_OF_STORED_RECORDS]
        ),
        st.sampled_from([Operator.ALL_RECORDS, Operator.FIRST_RECORD, Operator.LAST_RECORD]),
    ),
    st.builds(
        racp.request,
        st.sampled_from(
            [Op.REPORT_STORED_RECORDS, Op.DELETE_STORED_RECORDS, Op.REPORT_NUMBER_OF_STORED_RECORDS]
        ),
        st.sampled_from([Operator.LESS_THAN_OR_EQUAL_TO, Operator.GREATER_THAN_OR_EQUAL_TO]),
        time_offsets,
    ),
    st.builds(
        lambda low, span: racp.request(
            Op.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE_OF, (low, min(low + span, 0xFFFF))
        ),
        time_offsets,
        time_offsets,
    ),
    st.just(racp.request(Op.ABORT_OPERATION, Operator.NULL)),
    st.builds(racp.number_of_records, time_offsets),
    st.builds(racp.response, st.integers(0, 0xFF), st.sampled_from(list(Code))),
)


@given(requests)
def test_round_trip(frame):
    data = racp.encode(frame)
    assert racp.decode(data) == frame
    assert racp.from_fields(racp.fields(data)) == frame
