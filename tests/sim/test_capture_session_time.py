"""``cgmsim simulate --link ble --capture`` stamps every packet with session time (issue 18: a
0.3-day session spanned 0.078 s in Wireshark), read back by Wireshark's tshark: the capture
begins at the session's clock at time 0, spans the session, and each CGM Measurement
notification sits at the session minute its reading was sent."""

from __future__ import annotations

import csv
import datetime as dt
import json
import pathlib
import subprocess

import pytest
from click.testing import CliRunner

from sim.cli import cli
from tests.support import tshark

pytestmark = pytest.mark.tshark

OUTAGE_MIN = (200, 260)  # out of range: the readings of the outage come by backfill at 260


def _fields(capture: pathlib.Path, *fields: str, display_filter: str = "") -> list[list[str]]:
    tshark.require()
    args = ["tshark", "-n", "-r", str(capture), "-T", "fields"]
    args += [arg for field in fields for arg in ("-e", field)]
    if display_filter:
        args += ["-Y", display_filter]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("capture")
    capture = out / "session.btsnoop"
    args = ["simulate", "--link", "ble", "--days", "0.3", "--no-plot", "--out", str(out)]
    args += ["--faults", "outage={}:{}".format(*OUTAGE_MIN), "--capture", str(capture)]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    return out, capture


def test_the_capture_starts_at_the_session_clock_and_spans_the_session(run):
    out, capture = run
    summary = json.loads((out / "summary.json").read_text())
    zero = dt.datetime.fromisoformat(summary["session"]["clock_at_zero"]).replace(tzinfo=dt.UTC)
    frames = _fields(capture, "frame.time_epoch", "frame.time_relative")
    assert len(frames) > 100
    assert float(frames[0][0]) == zero.timestamp()  # the receiver powers on at session time 0
    relative = [float(seconds) for _, seconds in frames]
    assert relative == sorted(relative)
    span_min = relative[-1] / 60
    last_reading_min = summary["readings"]["last_displayed_min"]
    assert last_reading_min <= span_min <= summary["session"]["simulated_min"]
    assert last_reading_min > 0.29 * 1440


def test_each_notification_is_stamped_at_the_minute_it_was_sent(run):
    out, capture = run
    with (out / "readings.csv").open() as handle:
        delivery = {int(r["time_offset_min"]): r["delivery"] for r in csv.DictReader(handle)}
    notifications = _fields(
        capture,
        "frame.time_relative",
        "btatt.cgm_measurement.time_offset",
        display_filter="btatt.opcode == 0x1b",
    )
    sent_min = {}
    for seconds, offset in notifications:
        sent_min.setdefault(int(offset), float(seconds) / 60)
    live = [t for t, how in delivery.items() if how == "live"]
    backfilled = [t for t, how in delivery.items() if how == "backfill"]
    assert live and backfilled
    for t in live:  # a live reading goes out at the sample that made it
        assert sent_min[t] == t
    start, end = OUTAGE_MIN
    assert not [t for t in sent_min.values() if start < t < end]  # out of range: nothing
    # fetched when the link came back, at the end of the outage (tshark decodes the first
    # record of a notification; a backfill notification carries several)
    fetched = [t for t in backfilled if t in sent_min]
    assert fetched
    for t in fetched:
        assert start <= t < end <= sent_min[t]
