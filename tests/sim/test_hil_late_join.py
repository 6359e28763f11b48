"""Issue 18, as it was seen: ``cgmsim receiver`` started against a ``cgmsim transmitter`` whose
sensor has been in session for over an hour raised ``signal_loss`` 0.6 min after it started and
cleared it 0.09 min later, when the backfill arrived. Both commands as separate processes on
bumble's virtual controllers over pseudo-terminals, in compressed time: the receiver joins
late, backfills what the sensor made, goes on live, and raises no signal loss
(shared/spec/behavior.md: signal loss after 20 min without a reading)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.support.hil import _receiver_until, _sampled_min, _stored, _transmitter, wait_for

pytestmark = pytest.mark.slow  # separate processes over virtual controllers

JOIN_AFTER_MIN = 90  # past warm-up (27 min) and a signal-loss interval (20 min) after it


def test_a_receiver_joining_a_sensor_in_session_raises_no_signal_loss(ptys, tmp_path: Path):
    tx_port, rx_port = ptys
    tx_record = tmp_path / "tx.jsonl"
    tx = _transmitter(tx_port, tmp_path, "--record", str(tx_record))
    try:
        wait_for(
            lambda: any(t >= JOIN_AFTER_MIN for t in _sampled_min(tx_record)),
            f"the sensor {JOIN_AFTER_MIN} min into its session",
        )
        out = tmp_path / "rx"
        store = out / "receiver.sqlite"

        def backfilled_then_live() -> bool:
            stored = _stored(store)
            backfill = [t for t, (_, how) in stored.items() if how == "backfill"]
            live = [t for t, (_, how) in stored.items() if how == "live"]
            return bool(backfill) and len(live) >= 2

        done = _receiver_until(rx_port, out, backfilled_then_live, "backfill, then live")
    finally:
        tx.send_signal(signal.SIGTERM)
        tx.communicate(timeout=60)
    assert done.returncode == 0, done.stderr
    stored = _stored(store)
    assert min(stored) <= 35  # it fetched the session from its first readings on
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    raised = [e for e in events if e["kind"] == "alert_raised"]
    assert [e for e in raised if e["alert"] == "signal_loss"] == [], raised
