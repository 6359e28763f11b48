"""`cgmsim decode` / `cgmsim encode` through the installed console script (shared/design/cli.md)."""

import json
import pathlib
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import cli

CGMSIM = pathlib.Path(sys.executable).parent / "cgmsim"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CGMSIM), *args], capture_output=True, text=True, timeout=60)


# One frame per characteristic, by name and by UUID, with the JSON keys the contract names.
FRAMES = [
    ("measurement", "2aa7", "0F E3 78 00 05 00 01 02 03 02 F0 E5 F3 81 AD", []),
    ("feature", "2aa8", "40 91 01 59 AF 10", []),
    ("status", "2aa9", "05 00 01 02 03 2B 4D", []),
    ("session-start-time", "2aaa", "EA 07 0B 1C 0D 00 00 04 00", []),
    ("session-run-time", "2aab", "F0 00", []),
    ("racp", "2a52", "01 04 01 05 00 0A 00", []),
    ("socp", "2aac", "0A 46 00 FF 58", ["--e2e-crc"]),
]
KEYS = {
    "feature": {"features", "feature_names", "type", "location", "crc"},
    "status": {"time_offset", "status", "cal_temp", "warning", "crc"},
    "session-start-time": {
        "year",
        "month",
        "day",
        "hours",
        "minutes",
        "seconds",
        "time_zone",
        "dst",
        "crc",
    },
    "session-run-time": {"hours", "crc"},
    "racp": {"opcode", "operator", "filter_type", "operand"},
    "socp": {"opcode", "level", "crc"},
}
RECORD_KEYS = {
    "size",
    "flags",
    "glucose",
    "time_offset",
    "status",
    "cal_temp",
    "warning",
    "trend",
    "quality",
    "crc",
}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "uuid", "wire", "flags"), FRAMES)
def test_decode_then_encode_round_trips(name, uuid, wire, flags):
    decoded = run("decode", name, wire, *flags)
    assert decoded.returncode == 0, decoded.stderr
    value = json.loads(decoded.stdout)
    if name == "measurement":
        assert set(value) == {"records"} and set(value["records"][0]) == RECORD_KEYS
        assert value["records"][0]["glucose"] == 120 and value["records"][0]["trend"] == 0.2
    else:
        assert set(value) == KEYS[name]
    by_uuid = run("decode", uuid, *wire.split(), *flags)  # HEX as several arguments, by UUID
    assert json.loads(by_uuid.stdout) == value
    encoded = run("encode", name, decoded.stdout, *flags)
    assert encoded.returncode == 0, encoded.stderr
    assert encoded.stdout.strip() == wire.lower()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["decode", "measurement", "0F E3 78 00 05 00 01 02 03 02 F0 E5 F3 81 AE"],
            "E2E-CRC is 0xAE81",
        ),
        (["decode", "measurement", "07 00 78 00 05 00 00"], "size byte says 7, flags 0x00"),
        (["decode", "measurement", "06 00 78 00 05 00", "--e2e-crc"], "E2E-CRC required"),
        (["decode", "status", "05 00 00 00 00 00"], "CGM Status: frame has 6 bytes"),
        (["decode", "racp", "07 01"], "opcode 0x07 is reserved"),
        (["decode", "socp", "1A 5C B0"], "operand has 2 bytes"),
        (["decode", "session-start-time", "EA 07 0D 1C 0D 00 00 04 00"], "month is 13"),
        (["decode", "measurement", "zz"], "not hexadecimal"),
        (["decode", "glucose", "00"], "unknown 'glucose'"),
        (["decode", "measurement"], "Missing argument"),
        (["encode", "socp", "{not json"], "not JSON"),
        (["encode", "socp", '{"opcode": 26, "level": 70}'], "start_session takes no operand"),
        (["encode", "measurement", '{"records": [{"glucose": 120}]}'], "missing time_offset"),
        (["encode", "racp", "[1, 2]"], "expected a JSON object"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_help_exits_0():
    result = run("decode", "--help")
    assert result.returncode == 0
    assert "session-start-time" in result.stdout


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    command=st.sampled_from(["decode", "encode"]),
    characteristic=st.sampled_from(
        [
            "measurement",
            "feature",
            "status",
            "session-start-time",
            "session-run-time",
            "racp",
            "socp",
            "2aa7",
            "x",
        ]
    ),
    text=st.text(max_size=30) | st.binary(max_size=20).map(bytes.hex),
    crc=st.booleans(),
)
def test_no_input_gives_a_traceback(capsys, command, characteristic, text, crc):
    """The CLI in-process on arbitrary arguments: exit 0 or 2, never an exception."""
    args = [command, characteristic, text] + (["--e2e-crc"] if crc else [])
    with pytest.raises(SystemExit) as done:
        cli.main(args, prog_name="cgmsim")
    assert done.value.code in (0, 2)
    captured = capsys.readouterr()
    if done.value.code == 2:
        assert len(captured.err.strip().splitlines()) == 1
