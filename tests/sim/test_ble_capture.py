"""The air, checked by an independent decoder: a session over the BLE stack (``sim.ble_world``)
written as a btsnoop capture of the receiver's HCI traffic, decoded by Wireshark's ``tshark``.

For every CGM Measurement notification in the capture, the glucose and time offset that tshark
decodes (it dissects only the first record of a notification, ../shared/spec/cgms.md) equal our
decoder's first record of the same bytes, and the records of all notifications (decoded with
``protocol.cgms.measurement``, since the ATT MTU of 185 lets one notification carry several) are
exactly what the receiver stored: ``sensor_mgdl`` at ``time_offset_min`` of every live or
backfilled row. tshark also sees that no CGMS value crosses a link before it is secured (SMP
pairing or re-encryption): in clear there is only GATT discovery and the receiver's probe read of
CGM Feature, which the sensor refuses (a sensor that answered it would be refused as open).
"""

from __future__ import annotations

import csv
import json
import pathlib
import subprocess
import sys
from dataclasses import dataclass

import pytest

from protocol.cgms import gatt, measurement
from sim.ble_world import run_ble
from sim.session.config import Faults, SimulationConfig
from sim.session.result import SimulationResult
from tests.support import tshark

pytestmark = pytest.mark.tshark

# g7 with sensor noise; 20 % of notifications lost on the air, and out of range for an hour
# (reconnect, re-encrypt, backfill over RACP)
FAULTY_DAY = SimulationConfig(days=1, faults=Faults(loss=0.2, outages_min=((600.5, 660.0),)))
NOTIFICATION = 0x1B
SMP_PAIRING_REQUEST, SMP_PAIRING_RESPONSE = 0x01, 0x02
HCI_ENCRYPTION_CHANGE = 0x08
# What may cross a link in clear (Core Vol 3 Part F 3.4): Error Response, Exchange MTU, Find
# Information, Find By Type Value, Read By Type, Read Request (the probe), Read By Group Type;
# nothing that carries a characteristic's value (Read Response, writes, notifications, indications).
ATT_IN_CLEAR = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x10, 0x11}


@dataclass(frozen=True)
class Notification:
    frame: int
    value: bytes  # the ATT value: one or more measurement records
    tshark_glucose: float
    tshark_time_offset: int


def _tshark(capture: pathlib.Path, display_filter: str, *args: str) -> str:
    tshark.require()
    result = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-Y", display_filter, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"tshark failed: {result.stderr}"
    return result.stdout


def _notifications(capture: pathlib.Path) -> list[Notification]:
    packets = json.loads(
        _tshark(
            capture,
            f"btatt.opcode == 0x{NOTIFICATION:02x}",
            "-x",
            "-T",
            "json",
            "--no-duplicate-keys",
        )
    )
    found = []
    for packet in packets:
        layers = packet["_source"]["layers"]
        btatt = layers["btatt"]
        # tshark knows the handle from the discovery in the capture.
        assert int(btatt["btatt.handle_tree"]["btatt.uuid16"], 16) == gatt.MEASUREMENT.uuid
        pdu = bytes.fromhex(layers["btatt_raw"][0])  # opcode u8 | handle u16 | value
        assert pdu[0] == NOTIFICATION
        found.append(
            Notification(
                frame=int(layers["frame"]["frame.number"]),
                value=pdu[3:],
                tshark_glucose=float(btatt["btatt.cgm_measurement.glucose_concentration"]),
                tshark_time_offset=int(btatt["btatt.cgm_measurement.time_offset"]),
            )
        )
    return found


def _on_the_air(notifications: list[Notification]) -> dict[int, float]:
    """time offset -> glucose of every record on the air; checks tshark against the first."""
    air: dict[int, float] = {}
    for notification in notifications:
        records = measurement.decode(notification.value)
        first = records[0]
        assert (notification.tshark_time_offset, notification.tshark_glucose) == (
            first.time_offset,
            first.glucose,
        ), f"frame {notification.frame}"
        for record in records:
            assert isinstance(record.glucose, float)
            assert air.setdefault(record.time_offset, record.glucose) == record.glucose
    return air


def _secured_before_att(capture: pathlib.Path) -> tuple[int, int]:
    """(pairings, encryption changes) seen; asserts no value crosses a link before encryption."""
    lines = _tshark(
        capture,
        f"btsmp.opcode in {{{SMP_PAIRING_REQUEST}, {SMP_PAIRING_RESPONSE}}}"
        f" || bthci_evt.code == {HCI_ENCRYPTION_CHANGE} || btatt",
        *("-T", "fields", "-e", "frame.number", "-e", "btsmp.opcode", "-e", "bthci_evt.code"),
        *("-e", "bthci_evt.status", "-e", "bthci_evt.encryption_enable", "-e", "btatt.opcode"),
    ).splitlines()
    pairings = encryptions = 0
    encrypted = False
    for line in lines:
        _frame, smp, event, status, enabled, att = line.split("\t")
        if smp:
            pairings += int(smp, 0) == SMP_PAIRING_RESPONSE
            encrypted = False  # a new link
        elif event:
            assert int(status, 0) == 0 and int(enabled, 0) == 1, line
            encryptions += 1
            encrypted = True
        else:
            assert att
            assert encrypted or int(att, 0) in ATT_IN_CLEAR, f"a value in clear: {line}"
    return pairings, encryptions


def _stored(result: SimulationResult) -> dict[int, float]:
    return {
        row.time_offset_min: row.sensor_mgdl
        for row in result.rows
        if row.delivery in ("live", "backfill") and row.sensor_mgdl is not None
    }


def test_capture_of_a_session_with_faults_matches_what_the_receiver_stored(tmp_path):
    capture = tmp_path / "session.btsnoop"
    stats: dict[str, int] = {}
    result = run_ble(FAULTY_DAY, capture, stats=stats)
    assert stats["connections"] == 2 and stats["pairings"] == 1
    assert result.notifications_lost > 20  # dropped before the receiver's controller

    notifications = _notifications(capture)
    air = _on_the_air(notifications)
    stored = _stored(result)
    assert len(stored) > 250
    assert {row.delivery for row in result.rows if row.time_offset_min in stored} == {
        "live",
        "backfill",
    }
    assert air == stored
    # Backfill after the drop packs several records into one notification.
    assert any(len(measurement.decode(n.value)) > 1 for n in notifications)

    # Paired once (passkey, LE Secure Connections); the bond re-encrypts the second link.
    assert _secured_before_att(capture) == (1, 2)


@pytest.mark.slow
def test_cli_capture_matches_readings_csv(tmp_path):
    cgmsim = pathlib.Path(sys.executable).parent / "cgmsim"
    capture = tmp_path / "cli.btsnoop"
    common = [str(cgmsim), "simulate", "--days", "1", "--no-plot", "--json"]
    done = subprocess.run(
        [*common, "--out", str(tmp_path / "out"), "--capture", str(capture)],  # ble: default
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with (tmp_path / "out" / "readings.csv").open(newline="") as handle:
        stored = {
            int(row["time_offset_min"]): float(row["sensor_mgdl"])
            for row in csv.DictReader(handle)
            if row["delivery"] in ("live", "backfill")
        }
    assert len(stored) > 250
    assert _on_the_air(_notifications(capture)) == stored
    assert _secured_before_att(capture) == (1, 1)

    elsewhere = ["--out", str(tmp_path / "memory"), "--capture", str(tmp_path / "x.btsnoop")]
    memory = subprocess.run(
        [*common, "--link", "memory", *elsewhere],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert memory.returncode == 2
    assert memory.stderr.strip().splitlines() == [
        "cgmsim: error: --capture needs --link ble (the memory link has no air to capture)"
    ]
    assert not (tmp_path / "x.btsnoop").exists()
