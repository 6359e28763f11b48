"""A real ``cgmsim simulate`` run (one day, an outage that forces backfill) read back by the
report, the session plot and ``cgmsim export``; the export round trip through ``--trace``."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from sim.cli import cli
from sim.rundir.commands import export_command, report_command
from sim.rundir.files import load_run
from sim.rundir.plots import session_figure
from tests.sim.test_rundir_report import parse

PNG = b"\x89PNG\r\n\x1a\n"
CLOCK = dt.datetime(
    2026, 1, 5, 8, 0, tzinfo=dt.UTC
)  # sim.session.config.SimulationConfig's default
NIGHTSCOUT_DIRECTIONS = {
    "DoubleUp",
    "SingleUp",
    "FortyFiveUp",
    "Flat",
    "FortyFiveDown",
    "SingleDown",
    "DoubleDown",
    "NOT COMPUTABLE",
}


def simulate(out, *extra):
    args = ["simulate", "--link", "memory", "--days", "1", "--out", str(out), *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def rows(run_dir):
    with (run_dir / "readings.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return simulate(
        tmp_path_factory.mktemp("sim") / "run", "--seed", "4", "--faults", "outage=300:480"
    )


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(report_command, [str(run_dir), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), (out / "report.html").read_text()


def test_summary_names_the_session_clock(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert dt.datetime.fromisoformat(summary["session"]["clock_at_zero"]) == CLOCK.replace(
        tzinfo=None
    )


def test_session_plot_shows_every_displayed_reading_by_delivery(run_dir):
    assert (run_dir / "session.png").read_bytes().startswith(PNG)
    table = rows(run_dir)
    backfilled = [float(r["time_offset_min"]) for r in table if r["delivery"] == "backfill"]
    live = [r for r in table if r["delivery"] == "live"]
    assert backfilled, "the outage should have been backfilled"
    ax, _ = session_figure(load_run(run_dir)).axes
    drawn = {c.get_gid(): c.get_offsets() for c in ax.collections if c.get_gid()}
    assert len(drawn["sensor:live"]) == len(live)
    assert sorted(drawn["sensor:backfill"][:, 0] * 60) == pytest.approx(backfilled)  # hours
    outage = [t for t in backfilled if 300 <= t < 480]
    assert len(outage) >= 30  # the 3-h outage, minus what the sensor itself withheld


def test_report_lists_the_alerts_of_events_jsonl(run_dir, report):
    numbers, text = report
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    raised = Counter(e["alert"] for e in events if e["kind"] == "alert_raised")
    assert raised["signal_loss"] >= 1  # the outage
    page = parse(text)
    listed = {name: int(row["raised"]) for name, row in page.rows.items() if "raised" in row}
    assert listed == dict(raised)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert listed == summary["alerts"]
    assert {row["alert"]: row["raised"] for row in numbers["alerts"]} == dict(raised)
    assert len(page.images) == 2  # report.png and the run's session.png


def test_report_and_summary_json_give_one_number_per_fact(run_dir, report):
    """Issue 18: the report recomputed MARD from readings.csv's reference rounded to 0.1 mg/dL
    (6.7356 against summary.json's 6.7353). Now both score the same values with one function,
    so every figure they both give is the same number, to the last bit."""
    numbers, _ = report
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("mard", "within_15_15", "within_20_20", "within_40_40", "pairs"):
        assert numbers["accuracy"][key] == summary["accuracy"][key], key
    shown = numbers["readings"]
    counted = summary["readings"]
    assert (shown["displayed"], shown["live"], shown["backfilled"], shown["lost"]) == (
        counted["displayed"],
        counted["delivered_live"],
        counted["backfilled"],
        counted["lost"],
    )
    raised = {row["alert"]: row["raised"] for row in numbers["alerts"] if row["raised"]}
    assert raised == summary["alerts"]


def export(run_dir, *args):
    result = CliRunner().invoke(export_command, [str(run_dir), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_nightscout_entries(run_dir):
    entries = json.loads(export(run_dir, "--nightscout"))
    shown = [r for r in rows(run_dir) if r["displayed"]]
    assert len(entries) == len(shown)
    assert [e["date"] for e in entries] == sorted((e["date"] for e in entries), reverse=True)
    by_date = {e["date"]: e for e in entries}
    for row in shown:
        when = CLOCK + dt.timedelta(minutes=float(row["time_offset_min"]))
        entry = by_date[int(when.timestamp() * 1000)]
        assert dt.datetime.fromisoformat(entry["dateString"]) == when
        edge = {"LOW": 40, "HIGH": 400}.get(row["displayed"])
        assert entry["sgv"] == (edge if edge is not None else int(row["displayed"]))
        assert entry["direction"] == (row["arrow"] or "NOT COMPUTABLE")
        assert (entry["type"], entry["device"]) == ("sgv", "cgmsim-g7")
    assert {e["direction"] for e in entries} <= NIGHTSCOUT_DIRECTIONS
    assert {"Flat", "NOT COMPUTABLE"} <= {e["direction"] for e in entries}


def test_nightscout_round_trip_through_trace(run_dir, tmp_path):
    exported = tmp_path / "entries.json"
    result = CliRunner().invoke(
        export_command, [str(run_dir), "--nightscout", "--out", str(exported)]
    )
    assert result.exit_code == 0 and result.stdout == ""
    entries = json.loads(exported.read_text())
    again = simulate(tmp_path / "again", "--trace", str(exported), "--ideal-sensor", "--no-plot")
    reference = {float(r["time_offset_min"]): float(r["reference_mgdl"]) for r in rows(again)}
    start = min(e["date"] for e in entries)  # a Nightscout trace starts at its first entry
    for entry in entries:
        assert reference[(entry["date"] - start) / 60_000] == entry["sgv"]
    # and those are the readings the first run displayed, shifted to start at the first one
    shown = [r for r in rows(run_dir) if r["displayed"]]
    first = float(shown[0]["time_offset_min"])
    assert len(shown) == len(entries)
    for row in shown:
        if row["displayed"] not in ("LOW", "HIGH"):
            offset = float(row["time_offset_min"]) - first
            assert reference[offset] == float(row["displayed"])


def test_csv_round_trip_through_trace(run_dir, tmp_path):
    exported = tmp_path / "readings.csv"
    exported.write_text(export(run_dir, "--csv"))
    table = list(csv.DictReader(exported.open()))
    assert len(table) == sum(1 for r in rows(run_dir) if r["displayed"])
    again = simulate(tmp_path / "again", "--trace", str(exported), "--ideal-sensor", "--no-plot")
    reference = {r["time_offset_min"]: float(r["reference_mgdl"]) for r in rows(again)}
    for row in table:
        assert reference[row["time_offset_min"]] == float(row["glucose_mgdl"])


@pytest.mark.parametrize("formats", [[], ["--csv", "--nightscout"]])
def test_export_takes_exactly_one_format(run_dir, formats):
    result = CliRunner().invoke(export_command, [str(run_dir), *formats])
    assert result.exit_code == 2
    assert "--nightscout or --csv" in result.stderr


def test_export_of_a_broken_run_dir_is_one_line_and_exit_2(run_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("summary.json", "events.jsonl"):
        (broken / name).write_bytes((run_dir / name).read_bytes())
    lines = (run_dir / "readings.csv").read_text().splitlines()
    (broken / "readings.csv").write_text("\n".join(lines[:50]) + "\n12,13\n")
    result = CliRunner().invoke(export_command, [str(broken), "--nightscout"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "readings.csv line 51" in line
