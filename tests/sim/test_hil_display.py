"""``cgmsim receiver --display`` as a user runs it: the receiver on a pseudo-terminal facing
``cgmsim transmitter`` in another process, both over virtual controllers. The screen shows the
readings the receiver got; when the sensor goes away, signal loss sounds after 20 minutes, the
user types the acknowledge key and the receiver records the acknowledgement (issue 18).

The pseudo-terminal driver and the VT100 interpreter are the ones of ``cgmsim simulate
--display``'s test (tests/sim/test_screen_pty.py, tests/support/vt100.py)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.sim.test_screen_pty import run_on_a_terminal
from tests.support.hil import CGMSIM, wait_for

pytestmark = pytest.mark.slow  # separate processes over virtual controllers, in real time

SPEED = "1200"
VALUE = re.compile(r"^  (\d+) mg/dL")


def test_the_receivers_screen_shows_its_readings_and_acknowledges_signal_loss(
    ptys, tmp_path: Path
) -> None:
    tx_port, rx_port = ptys
    err = tmp_path / "tx.err"
    command = [str(CGMSIM), "transmitter", "--transport", tx_port, "--speed", SPEED]
    tx = subprocess.Popen(  # 0.12 days (173 min), then the sensor is gone
        [*command, "--days", "0.12", "--ideal-sensor", "--json"],
        stdout=subprocess.PIPE,
        stderr=err.open("w"),
        text=True,
    )
    try:
        wait_for(lambda: "advertising" in err.read_text(), "the transmitter")
        out = tmp_path / "rx"
        args = ["receiver", "--transport", rx_port, "--speed", SPEED, "--days", "0.2"]
        code, terminal, typed_at = run_on_a_terminal([*args, "--out", str(out), "--display"])
        made, _ = tx.communicate(timeout=60)
    finally:
        if tx.poll() is None:
            tx.send_signal(signal.SIGTERM)
            tx.communicate(timeout=60)
    assert code == 0, terminal.frames[-1] if terminal.frames else "no frame"
    readings = {r["time_offset_min"]: r["glucose_mgdl"] for r in json.loads(made)["readings"]}
    shown = {
        int(m.group(1)) for frame in terminal.frames for line in frame if (m := VALUE.match(line))
    }
    assert shown, "no glucose value was ever on the screen"
    assert shown <= {round(g) for g in readings.values()}  # only values the sensor sent
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    raised = [e["alert"] for e in events if e["kind"] == "alert_raised"]
    acknowledged = [e["alert"] for e in events if e["kind"] == "alert_acknowledged"]
    assert "signal_loss" in raised, raised
    assert acknowledged == ["signal_loss"], events[-10:]
    assert typed_at is not None
