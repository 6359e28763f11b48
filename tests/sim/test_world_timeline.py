"""A whole sensor session end to end (sensor -> transmitter -> memory link -> receiver) with an
ideal sensor and a crafted trace, for both profiles: warm-up, the first reading, a reading every
5 minutes, session-ending reminders, grace (g7), the end, and nothing shown or glucose-alerted
outside active/grace (shared/spec/behavior.md "Session lifecycle", "Alerts"; issue 5).

Times below are the spec's numbers, written out rather than read from the profiles:
g7 warm-up 27 min (firmware constant) so the first 5-min sample shown is at 30, expiry at 10 d
(14400 min), grace to 10.5 d (15120 min); g6 warm-up 2 h (120 min), expiry = end = 10 d.
"""

import json
import pathlib
import subprocess
import sys
from dataclasses import dataclass

import pytest

from firmware.profiles import PROFILES
from sim.session.config import SimulationConfig
from sim.signal.traces import load_trace
from sim.world import run

CGMSIM = pathlib.Path(sys.executable).parent / "cgmsim"
DAY = 1440
GLUCOSE_ALERTS = {"urgent_low", "urgent_low_soon", "low", "high", "rising_fast", "falling_fast"}


@dataclass(frozen=True)
class Timeline:
    profile: str
    active_min: int  # the phase changes to active (warm-up end)
    first_min: int  # the first 5-min sample taken after warm-up: the first reading shown
    expiry_min: int
    end_min: int  # readings stop, "replace sensor"
    grace: bool


TIMELINES = {
    "g7": Timeline(
        "g7", active_min=27, first_min=30, expiry_min=10 * DAY, end_min=15120, grace=True
    ),
    "g6": Timeline(
        "g6", active_min=120, first_min=120, expiry_min=10 * DAY, end_min=10 * DAY, grace=False
    ),
}


def trace_glucose(t: int, tl: Timeline) -> int:
    """50 mg/dL through warm-up and the first readings, up at 1 mg/dL/min to 120, steady, then
    down at 1 mg/dL/min from 3 h before the end to 50, held past the end."""
    first, end = tl.first_min, tl.end_min
    if t <= first + 10:
        return 50
    if t <= first + 80:
        return 50 + (t - first - 10)
    if t <= end - 180:
        return 120
    if t <= end - 110:
        return 120 - (t - (end - 180))
    return 50


def write_trace(path: pathlib.Path, tl: Timeline) -> pathlib.Path:
    rows = "".join(f"{t},{trace_glucose(t, tl)}\n" for t in range(0, tl.end_min + 200, 5))
    path.write_text("time_offset_min,glucose_mgdl\n" + rows)
    return path


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timeline-traces")
    return {name: write_trace(folder / f"{name}.csv", tl) for name, tl in TIMELINES.items()}


@pytest.fixture(scope="module")
def sessions(traces):
    """One whole session per profile (default length: grace included), run once."""
    return {
        name: run(
            SimulationConfig(
                profile=PROFILES[name], source=load_trace(traces[name]), ideal_sensor=True
            )
        )
        for name in TIMELINES
    }


@pytest.fixture(params=sorted(TIMELINES))
def case(request, sessions):
    return TIMELINES[request.param], sessions[request.param]


def kinds(result, kind):
    return [e for e in result.events if e["kind"] == kind]


def raised(result, alert):
    return [e["t_min"] for e in kinds(result, "alert_raised") if e["alert"] == alert]


def cleared(result, alert):
    return [e["t_min"] for e in kinds(result, "alert_cleared") if e["alert"] == alert]


# --------------------------------------------------------------------------------------------
# the run itself


def test_the_ideal_sensor_reports_the_trace_exactly(case):
    tl, result = case
    made = [r for r in result.rows if r.sensor_mgdl is not None]
    assert made, "the transmitter made no reading"
    for row in made:
        assert row.reference_mgdl == trace_glucose(row.time_offset_min, tl)
        assert row.sensor_mgdl == row.reference_mgdl


def test_the_run_covers_the_whole_session_and_a_little_more(case):
    tl, result = case
    assert result.end_min > tl.end_min
    assert result.rows[-1].time_offset_min > tl.end_min


# --------------------------------------------------------------------------------------------
# phases


def test_phase_events_in_order_with_the_spec_times(case):
    tl, result = case
    phases = [(e["phase"], e["t_min"]) for e in kinds(result, "phase")]
    expected = [("warmup", 0), ("active", tl.active_min)]
    if tl.grace:
        expected.append(("grace", tl.expiry_min))
    expected.append(("ended", tl.end_min))
    assert phases == expected


def test_events_are_in_time_order(case):
    _, result = case
    times = [e["t_min"] for e in result.events]
    assert times == sorted(times)


# --------------------------------------------------------------------------------------------
# readings


def test_first_reading_at_warmup_end_then_one_every_5_min_until_the_end(case):
    tl, result = case
    readings = kinds(result, "reading")
    expected = list(range(tl.first_min, tl.end_min, 5))
    assert [e["time_offset_min"] for e in readings] == expected
    # live, shown when taken, as the trace says
    assert [e["t_min"] for e in readings] == expected
    assert not any(e["backfill"] for e in readings)
    assert all(e["text"] == str(trace_glucose(e["time_offset_min"], tl)) for e in readings)


def test_rows_displayed_exactly_in_active_and_grace(case):
    tl, result = case
    for row in result.rows:
        if tl.first_min <= row.time_offset_min < tl.end_min:
            assert row.delivery == "live", row
            assert row.displayed == str(trace_glucose(row.time_offset_min, tl)), row
        else:
            # no measurement in warm-up or after the end: nothing made, nothing shown
            assert row.sensor_mgdl is None, row
            assert row.displayed is None, row
            assert row.delivery is None, row


def test_no_sample_before_the_first_shown_one_is_measured(case):
    tl, result = case
    made = [r.time_offset_min for r in result.rows if r.sensor_mgdl is not None]
    assert made[0] == tl.first_min
    assert made[-1] == tl.end_min - 5


def test_trend_arrows_appear_once_15_min_of_readings_exist(case):
    tl, result = case
    readings = kinds(result, "reading")
    # the first three readings have no 15-minute window yet
    assert [e["arrow"] for e in readings[:3]] == ["NOT COMPUTABLE"] * 3
    assert all(e["trend_mgdl_min"] is None for e in readings[:3])
    # 50, 50, 50, 55 (the rise starts 10 min after the first reading): least squares 0.3
    assert readings[3]["trend_mgdl_min"] == pytest.approx(0.3, abs=0.01)
    assert readings[3]["arrow"] == "Flat"
    rising = next(e for e in readings if e["time_offset_min"] == tl.first_min + 40)
    assert rising["trend_mgdl_min"] == pytest.approx(1.0, abs=0.01)
    assert rising["arrow"] == "FortyFiveUp"


# --------------------------------------------------------------------------------------------
# reminders and the end


def test_session_ending_reminders_24h_6h_2h_30min_before_expiry(case):
    tl, result = case
    expected = [tl.expiry_min - m for m in (24 * 60, 6 * 60, 2 * 60, 30)]
    assert raised(result, "session_ending") == expected
    assert cleared(result, "session_ending") == [tl.expiry_min]


def test_grace_period_alerts_g7_only(case):
    tl, result = case
    if tl.grace:
        # "grace period started" at 10 d, then 2 h and 30 min before the grace ends
        assert raised(result, "grace_period") == [tl.expiry_min, tl.end_min - 120, tl.end_min - 30]
        assert cleared(result, "grace_period") == [tl.end_min]
        reasons = [
            e["reason"] for e in kinds(result, "alert_raised") if e["alert"] == "grace_period"
        ]
        assert "grace period started" in reasons[0]
    else:
        assert raised(result, "grace_period") == []
        assert "grace" not in [e["phase"] for e in kinds(result, "phase")]


def test_replace_sensor_once_at_the_end(case):
    tl, result = case
    assert raised(result, "replace_sensor") == [tl.end_min]


def test_nothing_displayed_or_glucose_alerted_after_the_end(case):
    tl, result = case
    after = [e for e in result.events if e["t_min"] >= tl.end_min]
    assert not [e for e in after if e["kind"] == "reading"]
    assert not [e for e in after if e["kind"] == "alert_repeated"]
    assert [e["alert"] for e in after if e["kind"] == "alert_raised"] == ["replace_sensor"]
    # the low at the end was alerted up to the end and is cleared there, not after
    for alert in ("urgent_low", "low"):
        assert cleared(result, alert)[-1] == tl.end_min


def test_glucose_alerts_only_from_readings_shown(case):
    """Glucose 50 from the start: nothing in warm-up, urgent low and low at the first reading;
    glucose alerts raised and repeated only between the first reading and the end."""
    tl, result = case
    glucose = [
        e
        for e in result.events
        if e["kind"] in ("alert_raised", "alert_repeated") and e["alert"] in GLUCOSE_ALERTS
    ]
    assert glucose
    assert all(tl.first_min <= e["t_min"] < tl.end_min for e in glucose)
    assert raised(result, "urgent_low")[0] == tl.first_min
    assert raised(result, "low")[0] == tl.first_min
    # nothing at all is alerted during warm-up
    assert not [
        e
        for e in result.events
        if e["kind"] in ("alert_raised", "alert_repeated") and e["t_min"] < tl.first_min
    ]


def test_glucose_alerts_continue_until_the_end(case):
    """The fall 3 h before the end (in grace for g7) alerts at its first qualifying reading:
    low at 70 mg/dL (end - 130 min), urgent low at 55 (end - 115 min)."""
    tl, result = case
    assert raised(result, "low")[-1] == tl.end_min - 130
    assert raised(result, "urgent_low")[-1] == tl.end_min - 115
    if tl.grace:
        assert tl.end_min - 130 > tl.expiry_min  # in grace


def test_no_signal_loss_without_faults(case):
    _, result = case
    assert raised(result, "signal_loss") == []
    assert result.duplicates == 0


# --------------------------------------------------------------------------------------------
# the same through the console script


@pytest.fixture(scope="module")
def cli_runs(traces, tmp_path_factory):
    """``cgmsim simulate --trace ... --ideal-sensor --no-plot --json`` for both profiles, in
    parallel (two cores)."""
    out = tmp_path_factory.mktemp("timeline-cli")
    procs = {}
    for name in TIMELINES:
        command = [str(CGMSIM), "simulate", "--profile", name, "--link", "memory"]
        command += ["--trace", str(traces[name]), "--ideal-sensor", "--no-plot", "--json"]
        command += ["--out", str(out / name)]
        procs[name] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    done = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        done[name] = (proc.returncode, stdout, stderr, out / name)
    return done


@pytest.fixture(params=sorted(TIMELINES))
def cli_case(request, cli_runs):
    return TIMELINES[request.param], cli_runs[request.param]


@pytest.mark.slow
def test_cli_summary_timeline(cli_case):
    tl, (code, stdout, stderr, out) = cli_case
    assert code == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert json.loads(stdout) == summary
    assert summary["profile"] == tl.profile
    assert summary["link"] == "memory"
    assert summary["session"]["warmup_end_min"] == tl.active_min
    assert summary["session"]["expiry_min"] == tl.expiry_min
    assert summary["session"]["grace_end_min"] == (tl.end_min if tl.grace else None)
    shown = len(range(tl.first_min, tl.end_min, 5))
    assert summary["readings"] == {
        "generated": shown,
        "delivered_live": shown,
        "backfilled": 0,
        "displayed": shown,
        "lost": 0,
        "duplicates": 0,
        "first_displayed_min": tl.first_min,
        "last_displayed_min": tl.end_min - 5,
    }
    assert summary["alerts"]["session_ending"] == 4
    assert summary["alerts"]["replace_sensor"] == 1
    assert summary["alerts"].get("grace_period", 0) == (3 if tl.grace else 0)
    assert "signal_loss" not in summary["alerts"]
    # the ideal sensor: every pair exact
    assert summary["accuracy"]["mard"] == pytest.approx(0.0)
    assert summary["accuracy"]["pairs"] == shown
    assert not (out / "session.png").exists()  # --no-plot


@pytest.mark.slow
def test_cli_readings_csv_and_events_timeline(cli_case):
    tl, (code, _, stderr, out) = cli_case
    assert code == 0, stderr
    lines = (out / "readings.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    column = {name: i for i, name in enumerate(header)}
    displayed = [int(r[column["time_offset_min"]]) for r in rows if r[column["displayed"]]]
    assert displayed == list(range(tl.first_min, tl.end_min, 5))
    assert {r[column["delivery"]] for r in rows if r[column["displayed"]]} == {"live"}
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    phases = [(e["phase"], e["t_min"]) for e in events if e["kind"] == "phase"]
    assert phases[0] == ("warmup", 0) and phases[-1] == ("ended", tl.end_min)
    assert not [e for e in events if e["kind"] == "reading" and e["t_min"] >= tl.end_min]
