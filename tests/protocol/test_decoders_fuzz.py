"""Arbitrary bytes at every decoder: a typed value or a FrameError, never anything else."""

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.cgms.codecs import CODECS
from protocol.errors import FrameError

CRC_MODES = [None, True, False]


# Raw bytes plus mutations of valid frames (so fuzzing gets past the first length check).
SEEDS = {
    "measurement": "0F E3 78 00 05 00 01 02 03 02 F0 E5 F3 81 AD",
    "feature": "00 10 00 59 F0 49",
    "status": "05 00 01 02 03 2B 4D",
    "session-start-time": "EA 07 0B 1C 0D 00 00 04 00",
    "session-run-time": "F0 00",
    "racp": "01 04 01 05 00 0A 00",
    "socp": "04 78 00 0A 00 12 D0 02 03 00 04",
}


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    def apply(edits: list[tuple[int, int]], cut: int) -> bytes:
        data = bytearray(seed)
        for position, value in edits:
            data[position % len(data)] = value
        return bytes(data[:cut])

    return st.builds(
        apply,
        st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=3),
        st.integers(0, len(seed) + 1),
    )


@pytest.mark.slow  # a campaign of generated frames against every codec
@pytest.mark.parametrize("name", sorted(CODECS))
@pytest.mark.parametrize("e2e_crc", CRC_MODES)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decoders_raise_only_frame_errors(name, e2e_crc, data):
    codec = CODECS[name]
    frame = data.draw(st.binary(max_size=40) | mutated(bytes.fromhex(SEEDS[name])))
    for decode in (codec.decode, codec.fields):
        try:
            decode(frame, e2e_crc)
        except FrameError as error:
            assert str(error).startswith(codec.characteristic.title), str(error)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_seeds_are_valid(name):
    codec = CODECS[name]
    codec.decode(bytes.fromhex(SEEDS[name]), None)


@pytest.mark.slow  # a campaign of generated frames against every codec
@pytest.mark.parametrize("name", sorted(CODECS))
@settings(max_examples=200)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**40), 2**40)
        | st.floats()
        | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "records",
                        "glucose",
                        "time_offset",
                        "opcode",
                        "operator",
                        "operand",
                        "level",
                        "features",
                        "hours",
                        "year",
                        "status",
                        "trend",
                        "calibration",
                        "interval_min",
                        "response_code",
                    ]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=8,
    )
)
def test_encoders_from_json_raise_only_frame_errors(name, value):
    codec = CODECS[name]
    with contextlib.suppress(FrameError):
        codec.encode(codec.from_fields(value), False)
