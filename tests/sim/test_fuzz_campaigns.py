"""Campaigns users can plan (issue 17): a time budget beside --iterations, seeding from their
own recordings and reproducers (--seed-corpus), and the lines of protocol/ and firmware/ a
campaign reached (--coverage), without atheris."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

from protocol.cgms import gatt, measurement
from protocol.cgms.codecs import CODECS
from sim.fuzz import engine, seeding
from sim.fuzz.command import command
from sim.fuzz.decoder import DecoderTarget
from sim.fuzz.targets import TARGETS, make_target
from sim.recording.fileformat import read

CGMSIM = pathlib.Path(sys.executable).parent / "cgmsim"


def run(*args: str):
    return CliRunner().invoke(command, list(args))


# --- a time budget --------------------------------------------------------------------------


def test_a_time_budget_alone_ends_the_campaign():
    report = engine.campaign(make_target("decoder"), None, seed=1, max_seconds=0.3)
    assert report.stopped_by == "max-duration" and report.iterations > 0
    assert report.failures == []


def test_iterations_end_a_campaign_before_its_budget():
    result = run("--target", "decoder", "--iterations", "500", "--max-duration", "1h", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["iterations"] == 500 and summary["stopped_by"] == "iterations"


def test_the_budget_through_the_command():
    result = run("--target", "decoder", "--max-duration", "0.3s", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["stopped_by"] == "max-duration" and summary["iterations"] > 0


@pytest.mark.parametrize("budget", ["0", "-5", "soon", "10x", "inf"])
def test_a_bad_budget_exits_2(budget):
    result = run("--target", "decoder", "--max-duration", budget)
    assert result.exit_code == 2 and "--max-duration" in result.stderr
    assert "is not a duration" in result.stderr


# --- seeding from recordings and reproducers ------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> pathlib.Path:
    """A day of a session recorded by `cgmsim simulate`, in its own process, as users do."""
    out = tmp_path_factory.mktemp("recorded")
    path = out / "session.jsonl"
    done = subprocess.run(
        [
            *(str(CGMSIM), "simulate", "--link", "memory", "--days", "1", "--seed", "4"),
            *("--record", str(path), "--out", str(out), "--no-plot"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return path


def notified_values(path: pathlib.Path) -> list[bytes]:
    _, records = read(path)
    return [
        bytes.fromhex(record["value"])
        for _, record in records
        if record["in"] == "notification" and record["uuid"] == gatt.MEASUREMENT.uuid
    ]


def test_a_recording_seeds_the_values_it_carried(recording):
    seeded = seeding.load([recording])
    notified = notified_values(recording)
    assert notified and set(notified) <= set(seeded.values["measurement"])
    assert seeded.values["racp"] and seeded.values["feature"]  # written and read, too
    pools = seeded.seeds(make_target("decoder").seeds)
    assert set(notified) <= set(pools["measurement"])


def rare_record(recording: pathlib.Path) -> measurement.MeasurementRecord:
    """One record of the recording: a defect that only it triggers is out of reach of the
    project's own seeds, and within reach of a campaign seeded from the recording."""
    records = [r for value in notified_values(recording) for r in measurement.decode(value, None)]
    return max(records, key=lambda r: (r.glucose, r.time_offset))


class RecordingOnlyDefect(DecoderTarget):
    name = "recording-only-decoder"

    def __init__(self, seeds=None, rare=None) -> None:
        codec = CODECS["measurement"]

        def decode(data, mode):
            for record in measurement.decode(data, mode):
                if (record.glucose, record.time_offset) == (rare.glucose, rare.time_offset):
                    raise IndexError("planted")
            return []

        super().__init__({"measurement": (decode, codec.fields)}, seeds)


def test_a_seeded_campaign_reaches_a_defect_the_unseeded_one_does_not(recording):
    rare = rare_record(recording)
    unseeded = engine.campaign(RecordingOnlyDefect(rare=rare), 3_000, seed=1)
    assert unseeded.failures == []
    pools = seeding.load([recording]).seeds(DecoderTarget().seeds)
    seeded = engine.campaign(RecordingOnlyDefect(seeds=pools, rare=rare), 3_000, seed=1)
    (found,) = seeded.failures
    assert found["failure"]["signature"].startswith("crash:IndexError")


def test_a_reproducer_of_the_target_is_played_first(tmp_path, monkeypatch, recording):
    rare = rare_record(recording)
    monkeypatch.setitem(
        TARGETS, "recording-only-decoder", lambda seeds=None: RecordingOnlyDefect(seeds, rare)
    )
    found = run(
        "--target", "recording-only-decoder", "--seed-corpus", str(recording),
        "--iterations", "3000", "--seed", "1", "--corpus", str(tmp_path),
    )  # fmt: skip
    assert found.exit_code == 1, found.output
    (saved,) = tmp_path.glob("*.json")
    again = run(
        "--target", "recording-only-decoder", "--seed-corpus", str(saved),
        "--iterations", "1", "--json",
    )  # fmt: skip
    assert again.exit_code == 1, again.output
    summary = json.loads(again.stdout)
    assert summary["seed_episodes"] == 1 and summary["unique_failures"] == 1
    assert summary["seed_corpus"] == {"files": 1, "values": 1, "reproducers": 1}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json at all\n", "neither a fuzz reproducer nor a cgmsim recording"),
        (
            '{"format":"cgmsim-recording","version":1}\n'
            '{"t":0,"core":"rx","in":"notification","uuid":10919,"value":"zz","out":[]}\n'
            '{"end":{"inputs":1}}\n',
            "line 2: value 'zz' is not hex",
        ),
        ('{"format":"cgmsim-recording","version":1}\n', "truncated"),
    ],
)
def test_a_bad_seed_file_exits_2_naming_it(tmp_path, content, says):
    path = tmp_path / "seed.jsonl"
    path.write_text(content)
    result = run("--target", "decoder", "--seed-corpus", str(path), "--iterations", "10")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert str(path) in line and says in line


def test_a_malformed_reproducer_seed_of_the_target_exits_2(tmp_path):
    entry = engine.reproducer(
        "decoder", 1, 1, engine.Failure("crash", "s", "m", 0), [["nope", None, "hex:00"]]
    )
    path = tmp_path / "r.json"
    path.write_text(json.dumps(entry))
    result = run("--target", "decoder", "--seed-corpus", str(path), "--iterations", "10")
    assert result.exit_code == 2 and "unknown codec 'nope'" in result.stderr


# --- coverage ---------------------------------------------------------------------------------


def test_coverage_counts_the_packages_the_target_runs():
    result = run("--target", "decoder", "--iterations", "300", "--coverage", "--json")
    assert result.exit_code == 0, result.output
    decoder = json.loads(result.stdout)["coverage"]
    assert 0 < decoder["protocol"]["reached"] < decoder["protocol"]["lines"]
    assert decoder["firmware"]["reached"] == 0  # the decoders are all protocol/
    result = run("--target", "transmitter", "--iterations", "300", "--coverage", "--json")
    transmitter = json.loads(result.stdout)["coverage"]
    assert transmitter["firmware"]["reached"] > 0
    assert transmitter["firmware"]["lines"] == decoder["firmware"]["lines"]
    longer = run("--target", "decoder", "--iterations", "3000", "--coverage", "--json")
    assert (
        json.loads(longer.stdout)["coverage"]["protocol"]["reached"]
        >= (decoder["protocol"]["reached"])
    )
