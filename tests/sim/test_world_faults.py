"""A whole session under faults on the memory link: 30 % of notifications lost, an outage of
24 h and one of 100 min, three receiver restarts. Every reading the transmitter produced is
delivered (live or backfilled) exactly once; signal loss is raised 20 min after the last
reading and cleared when data returns (issue 5 "Tests that must exist", "Done when";
shared/spec/behavior.md "Backfill", "Alerts"). Then the ``cgmsim simulate`` outputs and its
usage errors (shared/design/cli.md).
"""

import bisect
import csv
import json
import pathlib
import subprocess
import sys
from collections import Counter

import pytest

from firmware.profiles import PROFILES
from sim import outputs
from sim.session.config import Faults, SimulationConfig
from sim.signal.scenarios import SCENARIOS
from sim.world import run

CGMSIM = pathlib.Path(sys.executable).parent / "cgmsim"
OUTAGES = ((600, 2040), (5000, 5100))  # minutes: 24 h, then 100 min
FAULTS = Faults(loss=0.3, outages_min=OUTAGES, receiver_restarts=3)
FAULT_SPEC = "loss=0.3,outage=600:2040,outage=5000:5100,receiver_restart=3"
FIRST_SHOWN = {"g7": 30, "g6": 120}
END = {"g7": 15120, "g6": 14400}
# Seeds of the default sensor model and scenario (each a whole session, about 1 s).
CASES = [(profile, seed) for profile in ("g7", "g6") for seed in (1, 3, 4)]

ALERT_NAMES = {
    "urgent_low",
    "urgent_low_soon",
    "low",
    "high",
    "rising_fast",
    "falling_fast",
    "signal_loss",
    "sensor_issue",
    "sensor_failed",
    "session_ending",
    "grace_period",
    "replace_sensor",
}
EVENT_KINDS = {"phase", "reading", "alert_raised", "alert_cleared", "alert_repeated", "link"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_fault_spec_of_the_command_line():
    assert Faults.parse(FAULT_SPEC) == FAULTS
    assert Faults.parse("") == Faults()
    assert Faults.parse("outage=5000:5100, outage=600:2040").outages_min == OUTAGES


@pytest.mark.parametrize(
    "spec",
    ["loss=1", "loss=-0.1", "loss=x", "outage=10", "outage=20:10", "receiver_restart=-1", "x=1"],
)
def test_bad_fault_specs_are_refused(spec):
    with pytest.raises(ValueError, match="--faults"):
        Faults.parse(spec)


# --------------------------------------------------------------------------------------------
# whole sessions under faults


@pytest.fixture(scope="module")
def faulty():
    cache = {}

    def get(profile, seed):
        if (profile, seed) not in cache:
            config = SimulationConfig(profile=PROFILES[profile], seed=seed, faults=FAULTS)
            result = run(config)
            cache[profile, seed] = (result, outputs.summary(result, "memory", 0.0))
        return cache[profile, seed]

    return get


@pytest.fixture(params=CASES, ids=[f"{p}-seed{s}" for p, s in CASES])
def case(request, faulty):
    profile, seed = request.param
    result, summary = faulty(profile, seed)
    return profile, result, summary


def reading_times(result):
    return sorted({e["t_min"] for e in result.events if e["kind"] == "reading"})


def signal_loss(result, kind):
    return [e["t_min"] for e in result.events if e["kind"] == kind and e["alert"] == "signal_loss"]


def test_the_faults_happened(case):
    _, result, summary = case
    reasons = Counter(
        e["reason"] for e in result.events if e["kind"] == "link" and not e["connected"]
    )
    assert reasons["outage"] == len(OUTAGES)
    assert reasons["receiver restart"] == FAULTS.receiver_restarts
    assert result.notifications_lost > 0
    assert summary["readings"]["backfilled"] > 0
    assert summary["readings"]["delivered_live"] > 0


def test_every_reading_produced_is_delivered_exactly_once(case):
    _, result, summary = case
    assert summary["readings"]["lost"] == 0
    assert summary["readings"]["duplicates"] == 0
    produced = [r.time_offset_min for r in result.rows if r.sensor_mgdl is not None]
    assert produced
    undelivered = [
        r.time_offset_min
        for r in result.rows
        if r.sensor_mgdl is not None and r.delivery not in ("live", "backfill")
    ]
    assert undelivered == []
    # independently of the rows: one reading event per sample the transmitter made
    shown = Counter(e["time_offset_min"] for e in result.events if e["kind"] == "reading")
    assert [offset for offset, n in shown.items() if n > 1] == []
    assert sorted(shown) == produced
    assert summary["readings"]["generated"] == len(produced)
    assert summary["readings"]["delivered_live"] + summary["readings"]["backfilled"] == len(
        produced
    )


def test_the_first_reading_after_warmup_is_delivered(case):
    """A first live notification lost has no older record to reveal the gap."""
    profile, result, _ = case
    row = result.rows[FIRST_SHOWN[profile] // 5]
    assert row.sensor_mgdl is not None
    assert row.delivery in ("live", "backfill"), row


def test_the_last_reading_before_the_end_is_delivered(case):
    """A last live notification lost has no later record to reveal the gap."""
    profile, result, _ = case
    made = [r for r in result.rows if r.sensor_mgdl is not None]
    assert made[-1].time_offset_min == END[profile] - 5
    assert made[-1].delivery in ("live", "backfill"), made[-1]


def test_backfill_fills_the_outages(case):
    _, result, _ = case
    for start, end in OUTAGES:
        inside = [r for r in result.rows if start < r.time_offset_min < end and r.sensor_mgdl]
        assert inside
        assert {r.delivery for r in inside} == {"backfill"}
    # nothing reaches the receiver while the link is down
    for e in result.events:
        if e["kind"] == "reading":
            assert not any(start <= e["t_min"] < end for start, end in OUTAGES), e


def test_signal_loss_raised_20_min_after_the_last_reading_before_an_outage(case):
    _, result, _ = case
    times = reading_times(result)
    raised, cleared = signal_loss(result, "alert_raised"), signal_loss(result, "alert_cleared")
    for start, end in OUTAGES:
        last = times[bisect.bisect_left(times, start) - 1]
        assert last < start
        assert last + 20 in raised, (start, last)
        # still raised through the outage, cleared by the data when the link is back
        assert not [t for t in cleared if last + 20 <= t < end]
        assert not [t for t in raised if last + 20 < t < end]
        back = times[bisect.bisect_left(times, end)]
        assert back == end  # reconnected at once; the backfill arrives then
        assert end in cleared


def test_signal_loss_always_20_min_after_the_previous_reading(case):
    """Under 30 % loss signal loss also comes between outages, whenever 20 min pass without
    a reading; each time exactly 20 min after the last one, and it lasts until data (or the
    end of the session, or a sensor failure) comes."""
    _, result, _ = case
    times = reading_times(result)
    phase_changes = {e["t_min"] for e in result.events if e["kind"] == "phase"}
    for t in signal_loss(result, "alert_raised"):
        previous = times[bisect.bisect_left(times, t) - 1]
        assert t - previous == 20, t
    for t in signal_loss(result, "alert_cleared"):
        assert t in times or t in phase_changes, t


@pytest.mark.parametrize("profile", ["g7", "g6"])
def test_no_signal_loss_alarm_at_the_moment_a_reading_arrives(faulty, profile):
    """A reading received at the very moment the 20-min deadline falls due wins: the deadline
    is checked "after a reading's evaluation" (alerts.py ``_sound``). Raising signal loss and
    clearing it in the same instant is an alarm for nothing."""
    result, _ = faulty(profile, 1)
    times = set(reading_times(result))
    at_a_reading = [t for t in signal_loss(result, "alert_raised") if t in times]
    assert at_a_reading == []


@pytest.mark.parametrize("profile", ["g7", "g6"])
def test_random_loss_alone_loses_no_reading(profile):
    """Short runs on a flat trace with the ideal sensor, 30 % loss and nothing else, many
    seeds: every sample made before the last one delivered is shown exactly once. (Samples
    after it may be in flight when a short run stops: no later record reveals them.)"""
    problems = {}
    for seed in range(1, 13):
        config = SimulationConfig(
            profile=PROFILES[profile],
            days=0.25,
            seed=seed,
            source=SCENARIOS["flat"],
            ideal_sensor=True,
            faults=Faults(loss=0.3),
        )
        result = run(config)
        made = [r for r in result.rows if r.sensor_mgdl is not None]
        delivered = [r.time_offset_min for r in made if r.delivery in ("live", "backfill")]
        lost = [r.time_offset_min for r in made if r.time_offset_min < max(delivered)]
        lost = [t for t in lost if t not in delivered]
        if lost or result.duplicates:
            problems[seed] = (lost, result.duplicates)
    assert problems == {}


# --------------------------------------------------------------------------------------------
# the command line


# One of each (every malformed fault spec is refused in-process above; malformed traces in
# test_traces.py): each process costs about a second of imports.
BAD_INPUTS = {
    "faults": ["--faults", "loss=0.3,storm=3"],
    "trace": ["--trace", "{tmp}/bad.csv"],
    "scenario": ["--scenario", "no_such_scenario"],
}


@pytest.fixture(scope="module")
def cli_processes(tmp_path_factory):
    """The good run and every bad invocation, started at once (independent processes)."""
    tmp = tmp_path_factory.mktemp("faults-cli")
    (tmp / "bad.csv").write_text("minutes,mgdl\n0,100\n5,110\n")
    runs = {"simulate": ["--profile", "g7", "--seed", "1", "--faults", FAULT_SPEC]}
    runs |= {name: [*args, "--no-plot"] for name, args in BAD_INPUTS.items()}
    procs = {}
    for name, args in runs.items():
        command = [str(CGMSIM), "simulate", "--link", "memory"]
        command += [a.format(tmp=tmp) for a in args] + ["--out", str(tmp / name)]
        procs[name] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    done = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        done[name] = (proc.returncode, stdout, stderr, tmp / name)
    return done


@pytest.fixture(scope="module")
def cli_run(cli_processes):
    """``cgmsim simulate --faults ...``: a whole g7 session, seed 1, with the plot."""
    code, stdout, stderr, out = cli_processes["simulate"]
    return subprocess.CompletedProcess([], code, stdout, stderr), out


@pytest.mark.slow
def test_cli_exits_0_and_writes_the_four_files(cli_run):
    done, out = cli_run
    assert done.returncode == 0, done.stderr
    written = {p.name for p in out.iterdir()}
    assert {"summary.json", "readings.csv", "events.jsonl", "session.png"} <= written
    assert (out / "session.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.slow
def test_cli_summary_has_every_key_of_the_contract(cli_run):
    done, out = cli_run
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert {"profile", "seed", "link", "session", "readings", "alerts", "accuracy"} <= set(summary)
    assert "wall_seconds" in summary
    assert (summary["profile"], summary["seed"], summary["link"]) == ("g7", 1, "memory")
    assert summary["session"] == summary["session"] | {
        "warmup_end_min": 27,
        "expiry_min": 14400,
        "grace_end_min": 15120,
    }
    readings = summary["readings"]
    assert {
        "generated",
        "delivered_live",
        "backfilled",
        "displayed",
        "lost",
        "duplicates",
        "first_displayed_min",
        "last_displayed_min",
    } <= set(readings)
    assert readings["lost"] == 0
    assert readings["duplicates"] == 0
    assert readings["backfilled"] > 0
    assert {"mard", "within_15_15", "within_20_20", "within_40_40", "pairs"} <= set(
        summary["accuracy"]
    )
    assert summary["accuracy"]["pairs"] > 0
    assert 0 < summary["accuracy"]["mard"] < 50
    assert isinstance(summary["wall_seconds"], float) and summary["wall_seconds"] > 0
    assert set(summary["alerts"]) <= ALERT_NAMES
    assert summary["alerts"]["signal_loss"] >= len(OUTAGES)


@pytest.mark.slow
def test_cli_readings_csv(cli_run):
    done, out = cli_run
    assert done.returncode == 0, done.stderr
    with (out / "readings.csv").open(newline="") as handle:
        lines = list(csv.reader(handle))
    header, rows = lines[0], lines[1:]
    assert ",".join(header) == (
        "time_offset_min,reference_mgdl,sensor_mgdl,displayed,trend_mgdl_min,arrow,delivery"
    )
    assert all(len(row) == len(header) for row in rows)
    offsets = [int(row[0]) for row in rows]
    assert offsets == list(range(0, 5 * len(rows), 5))
    summary = json.loads((out / "summary.json").read_text())
    with_value = [row for row in rows if row[2]]
    delivery = Counter(row[6] for row in with_value)
    assert set(delivery) <= {"live", "backfill"}  # none lost
    assert delivery["live"] == summary["readings"]["delivered_live"]
    assert delivery["backfill"] == summary["readings"]["backfilled"]
    assert len(with_value) == summary["readings"]["generated"]
    assert {row[6] for row in rows if not row[2]} == {""}  # no sensor value: no delivery
    shown = [int(row[0]) for row in rows if row[3]]
    assert len(shown) == summary["readings"]["displayed"]
    assert shown[0] == summary["readings"]["first_displayed_min"]
    assert shown[-1] == summary["readings"]["last_displayed_min"]


@pytest.mark.slow
def test_cli_events_jsonl(cli_run):
    done, out = cli_run
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events
    for e in events:
        assert isinstance(e["t_min"], int | float)
        assert e["kind"] in EVENT_KINDS
        if e["kind"].startswith("alert"):
            assert e["alert"] in ALERT_NAMES
    assert [e["t_min"] for e in events] == sorted(e["t_min"] for e in events)
    summary = json.loads((out / "summary.json").read_text())
    raised = Counter(e["alert"] for e in events if e["kind"] == "alert_raised")
    assert dict(raised) == summary["alerts"]
    outages = [e["t_min"] for e in events if e["kind"] == "link" and e["reason"] == "outage"]
    assert outages == [start for start, _ in OUTAGES]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_cli_bad_input_exits_2_with_one_line(cli_processes, name):
    code, stdout, stderr, out = cli_processes[name]
    assert code == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stdout == ""
    assert not (out / "summary.json").exists()
