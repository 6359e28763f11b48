"""``cgmsim import``: HCI captures of a sensor and its collector, read as the CGM traffic they
carry and replayed against our receiver core (``--side sensor``), in separate processes as users
run them.

The captures are real ones: ``cgmsim simulate --link ble --capture`` (bumble's btsnoop of the
receiver's HCI), the same file as tshark converts it to pcapng (link type 201, H4 with its
direction) and editcap to pcap (link type 187, plain H4), and a capture with its first frames
(connection, discovery, pairing) cut off by editcap, which needs ``--handles``. The reader is
checked against tshark: the ATT PDUs it finds are those tshark dissects, frame by frame. The
HIL processes' captures are in tests/sim/test_capture_import_hil.py.
"""

from __future__ import annotations

import functools
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from sim.capture.att_stream import AttPdu, conversation
from sim.capture.hci_files import CaptureError, read_packets
from sim.capture.importer import write_recording
from sim.cli import cli
from tests.support import tshark

pytestmark = pytest.mark.tshark

CGMSIM = pathlib.Path(sys.executable).parent / "cgmsim"
# handles of the CGM service as our transmitter's GATT server lays it out (read off the
# capture's discovery with tshark: -Y 'btatt.opcode == 0x09')
HANDLES = (
    "measurement=0x0010/0x0011,feature=0x0013,status=0x0015,session-start-time=0x0017,"
    "session-run-time=0x0019,racp=0x001b/0x001c,socp=0x001e/0x001f"
)


def _process(*args: str | pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``cgmsim`` in its own process, as users run it."""
    return subprocess.run(
        [str(CGMSIM), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def _run(*args: str | pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``cgmsim`` in this process (its start-up costs seconds on a loaded machine): the same
    command group, exit codes and output streams."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def _tool(*args: str | pathlib.Path) -> str:
    """Wireshark's tshark or editcap; what it printed."""
    tshark.require()
    return _tool_output(tuple(map(str, args)))


@functools.cache  # the same question about the same (module-scoped) file: asked once
def _tool_output(args: tuple[str, ...]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Two hours of a g7 session with E2E-CRC over the in-process BLE stack, as btsnoop."""
    where = tmp_path_factory.mktemp("capture")
    capture = where / "session.btsnoop"
    done = _process(
        "simulate", "--days", "0.1", "--link", "ble", "--e2e-crc", "--no-plot",
        "--capture", capture, "--out", where / "run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return capture


def _import_and_replay(
    capture: pathlib.Path, tmp_path: pathlib.Path, *extra: str, side: str = "sensor", run=_run
) -> subprocess.CompletedProcess[str]:
    recording = tmp_path / f"{capture.name}.{side}.jsonl"
    done = run("import", capture, "--out", recording, "--side", side, *extra)
    assert done.returncode == 0, done.stderr
    assert recording.is_file()
    return run("replay", recording, "--check", "--json")


def _att_by_tshark(capture: pathlib.Path) -> list[tuple[int, ...]]:
    return [
        tuple(int(field, 0) for field in line.split("\t"))
        for line in _tool(
            "tshark", "-n", "-r", capture, "-Y", "btatt",
            "-T", "fields", "-e", "frame.number", "-e", "btatt.opcode",
        ).splitlines()
    ]  # fmt: skip


def _att_by_us(capture: pathlib.Path) -> list[tuple[int, ...]]:
    return [
        (item.frame, item.opcode)
        for item in conversation(read_packets(capture))
        if isinstance(item, AttPdu)
    ]


def test_the_reader_finds_the_att_pdus_tshark_dissects(captured: pathlib.Path) -> None:
    theirs = _att_by_tshark(captured)
    assert len(theirs) > 60
    assert _att_by_us(captured) == theirs


# H4 packet type -> Linux monitor opcode (BlueZ src/shared/btsnoop.h): command, event, ACL
# sent, ACL received
_MONITOR = {(1, True): 2, (4, False): 3, (2, True): 4, (2, False): 5}


def _h4_records(capture: pathlib.Path) -> list[tuple[bytes, bool, int]]:
    """The records of bumble's btsnoop (datalink 1002): (H4 packet, sent, timestamp)."""
    data, offset, records = capture.read_bytes(), 16, []
    assert data[:8] == b"btsnoop\x00" and struct.unpack_from(">I", data, 12)[0] == 1002
    while offset < len(data):
        _orig, length, flags, _drops, stamp = struct.unpack_from(">IIIIq", data, offset)
        records.append((data[offset + 24 : offset + 24 + length], not flags & 1, stamp))
        offset += 24 + length
    return records


def _rewrite(records: list[tuple[bytes, bool, int]], form: str) -> bytes:
    """The same packets as btsnoop 2001 (btmon's monitor format), btsnoop 1001 (no type byte)
    or pcap link type 254 (Linux monitor)."""
    if form == "pcap-monitor":
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 254)]
        for packet, sent, stamp in records:
            body = struct.pack(">HH", 0, _MONITOR[(packet[0], sent)]) + packet[1:]
            seconds, micros = divmod(stamp - 0x00DCDDB30F2F8000, 1_000_000)
            out.append(struct.pack("<IIII", seconds, micros, len(body), len(body)) + body)
        return b"".join(out)
    datalink = 2001 if form == "btsnoop-monitor" else 1001
    out = [b"btsnoop\x00" + struct.pack(">II", 1, datalink)]
    for packet, sent, stamp in records:
        if form == "btsnoop-monitor":
            flags = _MONITOR[(packet[0], sent)]
        else:
            flags = (0 if sent else 1) | (2 if packet[0] in (1, 4) else 0)
        body = packet[1:]
        out.append(struct.pack(">IIIIq", len(body), len(body), flags, 0, stamp) + body)
    return b"".join(out)


@pytest.mark.parametrize("form", ["btsnoop-monitor", "btsnoop-hci", "pcap-monitor"])
def test_the_other_hci_formats_read_as_tshark_reads_them(
    captured: pathlib.Path, tmp_path: pathlib.Path, form: str
) -> None:
    converted = tmp_path / f"session.{form}"
    converted.write_bytes(_rewrite(_h4_records(captured), form))
    theirs = _att_by_tshark(converted)
    assert theirs == _att_by_tshark(captured)  # tshark sees the same conversation in it
    assert _att_by_us(converted) == theirs
    done = _import_and_replay(converted, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("side", ["sensor", "collector"])
@pytest.mark.parametrize("form", ["btsnoop", "pcapng", "pcap"])
def test_a_simulated_capture_imported_from_either_side_replays_green(
    captured: pathlib.Path, tmp_path: pathlib.Path, form: str, side: str
) -> None:
    capture = captured
    if form == "pcapng":  # tshark writes pcapng, link type 201 (H4 with its direction)
        capture = tmp_path / "session.pcapng"
        _tool("tshark", "-r", captured, "-w", capture)
    elif form == "pcap":  # editcap: classic pcap, link type 187 (H4 alone)
        capture = tmp_path / "session.pcap"
        _tool("editcap", "-F", "pcap", "-T", "bluetooth-h4", captured, capture)
    done = _import_and_replay(capture, tmp_path, side=side)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["identical"] is True
    sent = _tool(
        "tshark", "-n", "-r", captured, "-Y", "btatt.opcode == 0x1b || btatt.opcode == 0x1d"
    ).splitlines()
    if side == "sensor":
        # the receiver was fed every notification and indication the sensor sent, and asked
        # what the captured collector asked: reads, subscriptions, the start time, RACP
        assert result["inputs"]["rx"] > len(sent) and result["outputs"] >= 8
    else:
        # the transmitter sent every notification and indication the sensor sent, and gave
        # every answer it gave
        assert result["inputs"]["tx"] > len(sent) and result["outputs"] > len(sent)


@pytest.mark.slow  # two more cgmsim processes: seconds each on a loaded machine
def test_import_and_replay_as_separate_processes(
    captured: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    done = _import_and_replay(captured, tmp_path, run=_process)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["identical"] is True


def test_a_capture_that_starts_after_discovery_needs_handles(
    captured: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    first_read = _tool(
        "tshark", "-n", "-r", captured, "-Y", "btatt.opcode == 0x0b",
        "-T", "fields", "-e", "btatt.request_in_frame",
    ).split()[0]  # fmt: skip
    late = tmp_path / "late.btsnoop"
    # keep from the request of the first Read Response: connection, discovery, pairing gone
    _tool("editcap", "-r", captured, late, f"{first_read}-1000000")
    recording = tmp_path / "late.jsonl"
    without = _run("import", late, "--out", recording, "--side", "sensor")
    assert without.returncode == 2
    [line] = without.stderr.strip().splitlines()
    assert "no CGM service (0x181F) found" in line and "--handles" in line
    assert not recording.exists()
    done = _import_and_replay(late, tmp_path, "--handles", HANDLES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["identical"] is True


def _live_notification(capture: pathlib.Path) -> tuple[int, bytes, int]:
    """A notification carrying one measurement record: its frame, ATT bytes and glucose."""
    rows = _tool(
        "tshark", "-n", "-r", capture, "-Y", "btatt.opcode == 0x1b && btl2cap.length < 20",
        "-T", "fields", "-e", "frame.number",
        "-e", "btatt.cgm_measurement.glucose_concentration",
    ).splitlines()  # fmt: skip
    frame, glucose = rows[len(rows) // 2].split("\t")
    raw = json.loads(
        _tool("tshark", "-n", "-r", capture, "-Y", f"frame.number == {frame}", "-T", "json", "-x")
    )[0]["_source"]["layers"]["btatt_raw"][0]
    return int(frame), bytes.fromhex(raw), int(float(glucose))


@pytest.mark.parametrize("side", ["sensor", "collector"])
def test_a_sensor_that_sent_one_different_glucose_replays_red_at_that_frame(
    captured: pathlib.Path, tmp_path: pathlib.Path, side: str
) -> None:
    frame, pdu, glucose = _live_notification(captured)
    # ATT: opcode, handle (2), then the record: size, flags, glucose SFLOAT (2, low byte first)
    assert pdu[0] == 0x1B and pdu[5] == glucose & 0xFF
    changed = bytearray(pdu)
    changed[5] = (glucose + 7) & 0xFF  # 7 mg/dL more; the E2E-CRC left as it was (not fixed:
    # a device whose value changed after it computed the CRC, as a corrupted store would)
    data = captured.read_bytes()
    assert data.count(pdu) == 1
    edited = tmp_path / "edited.btsnoop"
    edited.write_bytes(data.replace(pdu, bytes(changed)))
    seen = _tool(
        "tshark", "-n", "-r", edited, "-Y", f"frame.number == {frame}",
        "-T", "fields", "-e", "btatt.cgm_measurement.glucose_concentration",
    )  # fmt: skip
    assert int(float(seen)) == glucose + 7  # tshark reads the changed value at that frame

    done = _import_and_replay(edited, tmp_path, side=side)
    assert done.returncode == 1, done.stdout + done.stderr
    divergence = json.loads(done.stdout)["divergence"]
    assert divergence["frame"] == frame
    assert f"capture frame {frame} " in divergence["message"]
    if side == "sensor":  # our receiver refuses the frame the sensor sent
        assert divergence["actual"]["type"] == "FrameRejected"
        assert "CRC" in divergence["actual"]["reason"]
    else:  # our transmitter, given that glucose, sends it with its right CRC
        assert divergence["expected"] == {
            "type": "Notify",
            "uuid": 0x2AA7,
            "value": changed.hex()[6:],
        }
        ours = bytes.fromhex(divergence["actual"]["value"])
        assert ours[:6] == bytes(changed[3:9]) and ours[-2:] != bytes(changed[-2:])
    # and the unchanged capture is green (the check above is the edit's, not the import's)
    assert _import_and_replay(captured, tmp_path, side=side).returncode == 0


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a capture at all", "not a btsnoop, pcap or pcapng file"),
        (b"btsnoop\x00\x00\x00\x00\x01\x00\x00\x03\xe9", "record header cut short"),
        (b"btsnoop\x00\x00\x00\x00\x01\x00\x00\x00\x01", "btsnoop datalink 1 is not HCI"),
        (
            bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"),
            "link type 1 is not Bluetooth HCI",
        ),
    ],
    ids=["not-a-capture", "truncated", "btsnoop-not-hci", "pcap-ethernet"],
)
def test_a_malformed_capture_is_one_line_and_exit_2(
    tmp_path: pathlib.Path, content: bytes, says: str
) -> None:
    capture = tmp_path / "bad.btsnoop"
    capture.write_bytes(content + (b"\x00" * 30 if says == "record header cut short" else b""))
    recording = tmp_path / "out.jsonl"
    done = _run("import", capture, "--out", recording, "--side", "sensor")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("cgmsim: error: ") and says in line, line
    assert not recording.exists() and not list(tmp_path.glob("*.partial"))


def test_a_capture_cut_mid_record_is_one_line_and_exit_2(
    captured: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    cut = tmp_path / "cut.btsnoop"
    cut.write_bytes(captured.read_bytes()[:-5])
    done = _run("import", cut, "--out", tmp_path / "out.jsonl", "--side", "sensor")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "record says" in line and "file has" in line


@pytest.mark.parametrize(
    ("handles", "says"),
    [
        ("measurement", "expected NAME=HANDLE[/CCCD]"),
        ("glucose=0x10", "'glucose' is none of measurement"),
        ("measurement=0x10/zz", "'zz' is not a handle"),
        ("racp=0x10000", "is not in 1..0xFFFF"),
    ],
)
def test_bad_handles_are_one_line_and_exit_2(
    captured: pathlib.Path, tmp_path: pathlib.Path, handles: str, says: str
) -> None:
    done = _run(
        "import", captured, "--out", tmp_path / "o.jsonl", "--side", "sensor", "--handles", handles
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert says in line, line


@pytest.mark.parametrize("damage", ["cut", "flip"])
def test_a_damaged_capture_is_refused_or_read_never_a_crash(
    captured: pathlib.Path, tmp_path: pathlib.Path, damage: str
) -> None:
    """Cut at many places, or with bytes overwritten: the import either reads what is there or
    refuses with a CaptureError, whatever the damage hits (headers, lengths, ATT PDUs)."""
    data = captured.read_bytes()
    rng = np.random.default_rng(17)
    damaged = tmp_path / "damaged.btsnoop"
    refused = 0
    for _ in range(40):
        at = int(rng.integers(1, len(data)))
        if damage == "cut":
            damaged.write_bytes(data[:at])
        else:
            damaged.write_bytes(data[:at] + bytes([int(rng.integers(256))]) + data[at + 1 :])
        for side in ("sensor", "collector"):
            try:
                write_recording(damaged, tmp_path / "out.jsonl", side, "g7", None)
            except CaptureError:
                refused += 1
    assert refused > 0  # the damage was seen somewhere
