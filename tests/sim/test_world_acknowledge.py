"""The simulated user (``SimulationConfig.acknowledge_after_min``, ``--acknowledge-after``): it
acknowledges every alert raised or repeated that many minutes after it sounded, and the
receiver's acknowledgement rules then apply (firmware/receiver/alerts.py: Urgent Low repeats
every 5 min unacknowledged, 30 min after an acknowledgement; Low 15/15)."""

import itertools
import json
import pathlib
import subprocess
import sys

import pytest

from firmware.profiles import MINUTE_MS
from firmware.receiver.alerts import AlertSettings
from sim.durable import DurableReceiver
from sim.session.config import SimulationConfig
from sim.signal.traces import load_trace
from sim.world import run

CGMSIM = pathlib.Path(sys.executable).parent / "cgmsim"
DAYS = 0.5
END = int(DAYS * 1440)  # the run's last step (a repeat may sound then; nothing acts after)
LOW_FROM = 120  # the trace: 120 mg/dL, then 48 from minute 120 on


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("ack") / "hypo.csv"
    rows = "".join(f"{m},{120 if m < LOW_FROM else 48}\n" for m in range(0, 1445, 5))
    path.write_text("time_offset_min,glucose_mgdl\n" + rows)
    return path


def simulate(trace, ack, store=None, **alerts):
    config = SimulationConfig(
        days=DAYS,
        source=load_trace(trace),
        ideal_sensor=True,
        acknowledge_after_min=ack,
        alerts=AlertSettings(**alerts),
    )
    return run(config, store)


def times(result, kind, alert="urgent_low"):
    return [e["t_min"] for e in result.events if e["kind"] == kind and e["alert"] == alert]


def test_without_acknowledgement_urgent_low_repeats_every_5_min(trace):
    result = simulate(trace, None)
    assert times(result, "alert_raised") == [LOW_FROM]
    assert times(result, "alert_repeated") == list(range(LOW_FROM + 5, END + 1, 5))
    assert not [e for e in result.events if e["kind"] == "alert_acknowledged"]


def test_acknowledged_urgent_low_resounds_30_min_after_the_acknowledgement(trace):
    result = simulate(trace, 2)
    assert times(result, "alert_raised") == [LOW_FROM]
    assert times(result, "alert_cleared") == []
    sounded = [LOW_FROM, *times(result, "alert_repeated")]
    acked = times(result, "alert_acknowledged")
    # acknowledged 2 min after every sound; re-sounds 30 min after each acknowledgement
    assert acked == [t + 2 for t in sounded]
    assert sounded[1:] == [t + 30 for t in acked[:-1]]
    assert sounded[:3] == [120, 152, 184]
    assert len(sounded) == len(range(LOW_FROM, END - 2, 32))
    # low (15/15) is acknowledged too and re-sounds 15 min after its acknowledgement
    low_sounded = times(result, "alert_raised", "low") + times(result, "alert_repeated", "low")
    low_acked = times(result, "alert_acknowledged", "low")
    assert low_acked[:3] == [122, 139, 156] and sorted(low_sounded)[:3] == [120, 137, 154]
    record = next(e for e in result.events if e["kind"] == "alert_acknowledged")
    assert record == {"t_min": 122.0, "kind": "alert_acknowledged", "alert": "low"}


def test_acknowledging_at_once_and_at_the_repeat_moment(trace):
    # 0 min: acknowledged as it sounds; 5 min: as urgent low was about to repeat (silence
    # wins). Low is off: acknowledging it at that moment would first sound the due repeat.
    for ack, cadence in ((0, 30), (5, 35)):
        result = simulate(trace, ack, low_enabled=False)
        sounded = [LOW_FROM, *times(result, "alert_repeated")]
        assert {b - a for a, b in itertools.pairwise(sounded)} == {cadence}
        acked = [t + ack for t in sounded if t < END and t + ack <= END]
        assert times(result, "alert_acknowledged") == acked


def test_a_durable_run_acknowledges_the_same(trace, tmp_path):
    plain, durable = simulate(trace, 2), simulate(trace, 2, tmp_path / "receiver.sqlite")
    assert [e for e in durable.events if e["kind"].startswith("alert")] == [
        e for e in plain.events if e["kind"].startswith("alert")
    ]
    again = simulate(trace, 2, tmp_path / "receiver.sqlite")  # reloaded from the store
    assert again.events == durable.events


def test_bad_acknowledge_after_is_refused(trace, tmp_path):
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            SimulationConfig(acknowledge_after_min=bad)
    done = subprocess.run(
        [str(CGMSIM), "simulate", "--out", str(tmp_path), "--acknowledge-after", "-1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--acknowledge-after" in done.stderr


@pytest.mark.slow
def test_cli_acknowledge_after_writes_acknowledgements(trace, tmp_path):
    args = ["--days", str(DAYS), "--trace", str(trace), "--ideal-sensor", "--no-plot", "--json"]
    out = tmp_path / "out"
    done = subprocess.run(
        [str(CGMSIM), "simulate", "--out", str(out), *args, "--acknowledge-after", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    acked = [e["t_min"] for e in lines if e["kind"] == "alert_acknowledged"]
    assert acked and acked[0] == LOW_FROM + 2
    assert acked == [
        e["t_min"] for e in simulate(trace, 2).events if e["kind"] == "alert_acknowledged"
    ]


class Killed(Exception):
    pass


def test_a_pending_acknowledgement_survives_a_kill_between_sound_and_acknowledgement(
    trace, tmp_path, monkeypatch
):
    # The process dies right after committing the repeat at 152 min, before the user's
    # acknowledgement at 154: the rerun must still acknowledge at 154 (not repeat at 157).
    store = tmp_path / "receiver.sqlite"
    commit = DurableReceiver.commit

    def commit_then_die(self, receiver, now_ms, counters):
        done = commit(self, receiver, now_ms, counters)
        if done and now_ms >= 152 * MINUTE_MS:
            raise Killed
        return done

    monkeypatch.setattr(DurableReceiver, "commit", commit_then_die)
    with pytest.raises(Killed):
        simulate(trace, 2, store)
    monkeypatch.undo()
    resumed = simulate(trace, 2, store)
    alerts = [e for e in resumed.events if e["kind"].startswith("alert")]
    assert alerts == [e for e in simulate(trace, 2).events if e["kind"].startswith("alert")]
    assert {"t_min": 154.0, "kind": "alert_acknowledged", "alert": "urgent_low"} in alerts
