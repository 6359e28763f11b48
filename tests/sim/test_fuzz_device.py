"""Fuzzing a device under test (issue 17): ``cgmsim fuzz --target sensor`` against
``cgmsim transmitter`` and ``--target collector`` against ``cgmsim receiver``, each in its own
process over virtual controllers. A device with a planted defect (a faulty core built here and
served by the same command, through the same adapter) is found, the failing sequence is shrunk
against it, and the reproducer fails against the faulty device and passes against the
project's."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from protocol.cgms import gatt
from protocol.cgms.racp import RacpOpcode
from sim.fuzz.command import command
from tests.support.hil import CGMSIM, ROOT, _receiver_args, _transmitter, wait_for

RACP = gatt.RACP.uuid

# A transmitter whose count of records with a filter (<=, >=, within range) is answered as if
# the request had been a report: `06 00 01 06` (no records found, Report Stored Records). The
# rest is the project's core, served by `cgmsim transmitter` as users run it.
FAULTY_TRANSMITTER = """
import sys
from firmware.events import Respond
from firmware.transmitter.server import Transmitter
from protocol.cgms import gatt
from protocol.cgms.racp import RacpOpcode, RacpResponseCode
from sim.cli import main
from sim.session import bookkeeping

class MisattributedCount(Transmitter):
    def _write_racp(self, value, now_ms):
        uuid = gatt.RACP.uuid
        if value[:1] == b"\\x04" and value[1:2] in (b"\\x02", b"\\x03", b"\\x04") and (
            self._indicating(uuid) and self.transfer is None
        ):
            self.outbound.respond(Respond(uuid))
            self._indicate_racp(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND)
            return
        super()._write_racp(value, now_ms)

bookkeeping.Transmitter = MisattributedCount
sys.argv[0] = "cgmsim"
main()
"""


# A receiver that raises on a RACP response code it does not expect (anything but success and
# no records found): the exception escapes its indication handler, so the indication is never
# confirmed. The rest is the project's receiver, run by `cgmsim receiver` as users run it.
FAULTY_RECEIVER = """
import sys
from firmware.receiver.receiver import Receiver
from protocol.cgms import gatt
from sim import hil
from sim.cli import main

class UnexpectedCodeCrash(Receiver):
    def indication(self, uuid, value, now_ms):
        if uuid == gatt.RACP.uuid and len(value) == 4 and value[:2] == b"\\x06\\x00":
            if value[3] not in (0x01, 0x06):
                raise ValueError("planted: unexpected RACP response code")
        super().indication(uuid, value, now_ms)

hil.Receiver = UnexpectedCodeCrash
sys.argv[0] = "cgmsim"
main()
"""


def _collector(transport: str, out: Path, faulty: bool) -> subprocess.Popen[str]:
    args = _receiver_args(transport, out, "--speed", "1500")
    if faulty:
        args = [sys.executable, "-c", FAULTY_RECEIVER, *args[1:]]
    return subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )


def _faulty_transmitter(transport: str, tmp_path: Path) -> subprocess.Popen[str]:
    err = (tmp_path / "tx.err").open("w")
    tx = subprocess.Popen(
        [
            *(sys.executable, "-c", FAULTY_TRANSMITTER, "transmitter"),
            *("--transport", transport, "--speed", "1500", "--ideal-sensor"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=err,
        text=True,
    )
    wait_for(lambda: "advertising" in (tmp_path / "tx.err").read_text(), "the faulty transmitter")
    return tx


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)


def _fuzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CGMSIM), "fuzz", *args], capture_output=True, text=True, timeout=240)


def _fuzz_with(
    collector: Path, faulty: bool, port: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """A fuzz process (the rogue sensor, advertising) and a collector process beside it, which
    scans for it, pairs and runs; the collector is stopped when the fuzz process ends."""
    fuzz = subprocess.Popen(
        [str(CGMSIM), "fuzz", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    rx = _collector(port, collector, faulty)
    try:
        stdout, stderr = fuzz.communicate(timeout=240)
    finally:
        _stop(rx)
    return subprocess.CompletedProcess(fuzz.args, fuzz.returncode, stdout, stderr)


@pytest.mark.slow  # separate processes over virtual controllers
def test_a_sensor_campaign_finds_shrinks_and_replays_a_planted_defect(ptys, tmp_path):
    tx_port, fuzz_port = ptys
    corpus = tmp_path / "corpus"
    device = ("--transport", fuzz_port, "--passkey", "123456", "--patience", "5")
    tx = _faulty_transmitter(tx_port, tmp_path)
    try:
        found = _fuzz(
            "--target", "sensor", *device, "--rate", "200", "--iterations", "16",
            "--seed", "1", "--corpus", str(corpus), "--json",
        )  # fmt: skip
        assert found.returncode == 1, found.stderr[-3000:]
        summary = json.loads(found.stdout)
        assert summary["link"] == "device" and summary["device"]["links"] >= 1
        (failure,) = summary["failures"]
        assert failure["failure"]["signature"] == "invariant:answer-names-request", failure
        # shrunk against the device: RACP indications on, then the one count with a filter
        *setup, (kind, uuid, value) = failure["actions"]
        assert (kind, uuid) == ("write", RACP) and setup == [["cccd", RACP, "hex:0200"]]
        request = bytes.fromhex(value[4:])  # the shrinker drops the operand, too
        assert request[0] == RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS and request[1] in (2, 3, 4)
        saved = Path(failure["path"])
        still = _fuzz("--replay", str(saved), *device, "--json")
        assert still.returncode == 1, still.stderr[-3000:]
        assert json.loads(still.stdout)["failure"]["signature"] == "invariant:answer-names-request"
    finally:
        _stop(tx)
    capture = corpus / "sensor-session.btsnoop"
    assert capture.read_bytes()[:8] == b"btsnoop\0" and capture.stat().st_size > 1000
    fixed = _transmitter(tx_port, tmp_path)  # the project's transmitter, as users run it
    try:
        passes = _fuzz("--replay", str(saved), *device, "--json")
        assert passes.returncode == 0, passes.stderr[-3000:]
        assert json.loads(passes.stdout)["fails"] is False
    finally:
        _stop(fixed)


@pytest.mark.slow  # separate processes over virtual controllers
def test_a_collector_campaign_finds_shrinks_and_replays_a_planted_defect(ptys, tmp_path):
    rx_port, fuzz_port = ptys
    corpus = tmp_path / "corpus"
    rogue = ("--transport", fuzz_port, "--speed", "1500", "--patience", "10")
    found = _fuzz_with(
        tmp_path / "rx-1", True, rx_port, "--target", "collector", *rogue,
        "--iterations", "30", "--seed", "7", "--corpus", str(corpus), "--json",
    )  # fmt: skip
    assert found.returncode == 1, found.stderr[-3000:]
    summary = json.loads(found.stdout)
    (failure,) = summary["failures"]
    assert failure["failure"]["signature"] == "invariant:confirms-indications", failure
    # shrunk against the collector: one RACP response indication with an unexpected code
    (action,) = failure["actions"]
    assert action[:3] == ["inject", "indicate", RACP], action
    value = bytes.fromhex(action[3][4:])
    assert value[:2] == b"\x06\x00" and value[3] not in (0x01, 0x06)
    assert (corpus / "collector-session.btsnoop").read_bytes()[:8] == b"btsnoop\0"
    saved = failure["path"]
    still = _fuzz_with(tmp_path / "rx-2", True, rx_port, "--replay", saved, *rogue, "--json")
    assert still.returncode == 1, still.stderr[-3000:]
    fixed = _fuzz_with(tmp_path / "rx-3", False, rx_port, "--replay", saved, *rogue, "--json")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert json.loads(fixed.stdout)["fails"] is False


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--target", "sensor"], "give its --transport"),
        (["--target", "sensor", "--transport", "usb:0", "--atheris"], "no --atheris"),
        (["--target", "decoder", "--transport", "usb:0"], "--transport is for --target sensor"),
        (["--target", "sensor", "--transport", "usb:0", "--passkey", "12"], "6 digits"),
        (["--target", "sensor", "--transport", "usb:0", "--address", "xyz"], "not a Bluetooth"),
        (["--target", "sensor", "--transport", "nonsense:1"], "cannot reach the sensor"),
    ],
)
def test_device_options_refused_with_one_line(args, says):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert says in line


def test_a_device_reproducer_needs_the_transport(tmp_path):
    entry = {
        "format": "cgmsim-fuzz-reproducer",
        "version": 1,
        "target": "sensor",
        "link": "device",
        "failure": {"kind": "invariant", "signature": "invariant:answer", "message": ""},
        "actions": [["cccd", RACP, "hex:0200"]],
    }
    path = tmp_path / "sensor.json"
    path.write_text(json.dumps(entry))
    result = CliRunner().invoke(command, ["--replay", str(path)])
    assert result.exit_code == 2 and "give its --transport" in result.stderr
