from hypothesis import given
from hypothesis import strategies as st

from protocol.crc import append_crc, crc16


def reference_mcrf4xx(data: bytes) -> int:
    """Bit by bit, straight from the definition: reflected polynomial 0x8408, seed 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        for bit in range(8):
            mix = (crc ^ (byte >> bit)) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8408
    return crc


def test_spec_example():
    # CGMS v1.0.1 §3.11: 3E 01 02 03 04 05 06 07 08 09 -> 0x2F01, sent as 01 2F.
    data = bytes.fromhex("3E 01 02 03 04 05 06 07 08 09")
    assert crc16(data) == 0x2F01
    assert append_crc(data)[-2:] == bytes.fromhex("01 2F")


def test_check_value_is_mcrf4xx_not_ccitt_false():
    assert crc16(b"123456789") == 0x6F91
    assert crc16(b"123456789") != 0x29B1


@given(st.binary(max_size=64))
def test_matches_bitwise_reference(data):
    assert crc16(data) == reference_mcrf4xx(data)


@given(st.binary(max_size=64))
def test_crc_over_data_and_its_crc_is_zero(data):
    assert crc16(append_crc(data)) == 0


@given(st.binary(max_size=32), st.binary(max_size=32))
def test_can_be_continued(first, second):
    assert crc16(second, crc16(first)) == crc16(first + second)
