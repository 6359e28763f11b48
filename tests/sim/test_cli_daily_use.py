"""What a new user met in daily use (issue 18): every bad input is one line on stderr naming
the input, the field and the allowed values, exit 2, no traceback; too-short inputs are refused
or reported as such; nothing the run cannot support is reported as a result."""

import json
import pathlib

import pytest
from click.testing import CliRunner

from sim.cli import cli

HEADER = "time_offset_min,glucose_mgdl\n"


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def refused(*args: str) -> str:
    """Run ``cgmsim ARGS``: it must exit 2 with one ``cgmsim: error:`` line; return that line."""
    result = invoke(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cgmsim: error: "), result.stderr
    return lines[0]


def trace(tmp_path: pathlib.Path, name: str, minutes: range, glucose: int = 120) -> pathlib.Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{t},{glucose + t % 60}\n" for t in minutes))
    return path


# --------------------------------------------------------------------------------------------
# too-short traces


def test_accuracy_refuses_a_two_reading_trace(tmp_path):
    short = trace(tmp_path, "two.csv", range(0, 10, 5))
    line = refused("accuracy", "--trace", short, "--sensors", "3")
    assert "--trace" in line and str(short) in line
    assert "0-5 min" in line and "15120 min" in line  # the trace's span, the session's length


def test_accuracy_refuses_a_trace_that_gives_no_pair(tmp_path):
    # midnight to 06:00: past warm-up, but references are drawn 07:00-23:00 only
    night = trace(tmp_path, "night.csv", range(0, 365, 5))
    line = refused("accuracy", "--trace", night, "--sensors", "3")
    assert str(night) in line and "no (reference, sensor) pair" in line and "07:00" in line


def test_simulate_refuses_a_trace_that_ends_before_the_first_reading(tmp_path):
    short = trace(tmp_path, "two.csv", range(0, 10, 5))
    line = refused("simulate", "--link", "memory", "--out", tmp_path / "out", "--trace", short)
    assert "--trace" in line and str(short) in line
    assert "0-5 min" in line and "15120 min" in line and "warm-up" in line
    assert not (tmp_path / "out" / "summary.json").exists()


def test_simulate_runs_a_short_trace_to_its_end_and_says_so(tmp_path):
    half = trace(tmp_path, "half.csv", range(0, 720, 5))
    out = tmp_path / "out"
    result = invoke("simulate", "--link", "memory", "--out", out, "--trace", half, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["session"]["simulated_min"] == 715
    assert summary["readings"]["generated"] > 100
    assert result.stderr.strip().splitlines() == [
        f"cgmsim simulate: note: {half} spans 0-715 min and the g7 session runs 15120 min: "
        "ran to the trace's end, 715 min (0.50 days)"
    ]


# --------------------------------------------------------------------------------------------
# accuracy: no verdict without pairs, no figure the study cannot support


@pytest.fixture(scope="module")
def half_day_study(tmp_path_factory):
    half = trace(tmp_path_factory.mktemp("half"), "half.csv", range(0, 720, 5))
    result = invoke("accuracy", "--trace", half, "--sensors", "10", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result


def test_icgm_controls_with_no_pairs_are_na_not_pass(half_day_study):
    value, _ = half_day_study
    empty = {letter: c for letter, c in value["icgm"].items() if c["n"] == 0}
    assert "H" in empty  # a half-day trace of 120-179 mg/dL: no CGM value < 70
    for letter, control in empty.items():
        assert control["pass"] is None and control["value"] is None, letter


def test_half_day_study_has_no_10_day_survival(half_day_study):
    value, result = half_day_study
    assert value["days"] == pytest.approx(715 / 1440)
    assert value["survival_10_days"] is None
    assert "note:" in result.stderr and "715 min" in result.stderr


def test_half_day_study_table_says_na(tmp_path):
    half = trace(tmp_path, "half.csv", range(0, 720, 5))
    result = invoke("accuracy", "--trace", half, "--sensors", "10")
    assert result.exit_code == 0, result.output
    alive = [line for line in result.stdout.splitlines() if "sensors alive at 10 days" in line]
    assert len(alive) == 1 and "n/a" in alive[0]
    h_row = [line for line in result.stdout.splitlines() if line.strip("│ ").startswith("H ")]
    assert len(h_row) == 1 and "n/a" in h_row[0] and "pass" not in h_row[0]


# --------------------------------------------------------------------------------------------
# messages that say which option and what it allows


@pytest.mark.parametrize(
    "command",
    [
        ["simulate", "--link", "memory", "--no-plot"],
        ["accuracy", "--sensors", "2"],
        ["transmitter", "--transport", "usb:0"],
    ],
    ids=lambda c: c[0],
)
def test_a_negative_seed_names_the_option(command, tmp_path):
    line = refused(*command, "--seed", "-5")
    assert "'--seed'" in line and "-5" in line and "x>=0" in line


@pytest.mark.parametrize(
    ("spec", "form"),
    [
        ("loss=2", "loss=R with 0 <= R < 1"),
        ("loss=x", "loss=R with 0 <= R < 1"),
        ("outage=600", "outage=START:END in minutes with 0 <= START < END"),
        ("outage=900:600", "outage=START:END in minutes with 0 <= START < END"),
        ("receiver_restart=-1", "receiver_restart=N with N a whole number >= 0"),
    ],
)
def test_a_bad_fault_says_the_allowed_form(spec, form, tmp_path):
    out = tmp_path / "out"
    line = refused("simulate", "--link", "memory", "--out", out, "--faults", f"loss=0.1,{spec}")
    assert "--faults" in line and repr(spec) in line and form in line
    assert not out.exists()


def test_an_unknown_fault_lists_the_known_ones(tmp_path):
    line = refused("simulate", "--out", tmp_path / "out", "--faults", "storm=3")
    assert "'storm'" in line and "loss, outage, receiver_restart" in line


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"opcode": 1, "operator": 3, "filter_type": 1, "operand": 70000}, "operand"),
        ({"opcode": 1, "operator": 4, "filter_type": 1, "operand": [1, 70000]}, "maximum"),
        ({"opcode": 1, "operator": 3, "filter_type": 1, "operand": -1}, "operand"),
    ],
)
def test_encode_says_the_field_and_its_range(frame, field):
    line = refused("encode", "racp", json.dumps(frame))
    assert f"{field} is " in line and "allowed 0..65535" in line, line
    assert "struct" not in line and "operand -> operand" not in line


# --------------------------------------------------------------------------------------------
# corrupt key stores: one line naming the file, before any radio work

NO_RADIO = "tcp-client:127.0.0.1:1"  # never reached: the key store is checked first
CORRUPT_KEYS = {
    "bad-json": "{bad",
    "not-a-store": "[]",
    "bad-bond": json.dumps({"C0:CA:FE:00:00:01": {"AA:BB:CC:DD:EE:FF": {"ltk": "zz"}}}),
}


@pytest.mark.parametrize("content", sorted(CORRUPT_KEYS))
@pytest.mark.parametrize(
    "command",
    [
        ["transmitter", "--transport", NO_RADIO, "--keys", "{keys}"],
        ["receiver", "--transport", NO_RADIO, "--keys", "{keys}", "--out", "{tmp}/rx"],
        ["receiver", "--transport", NO_RADIO, "--out", "{tmp}"],  # OUT/keys.json
        ["bonds", "list", "--keys", "{keys}"],
        ["bonds", "list", "--out", "{tmp}"],
        ["bonds", "delete", "--all", "--keys", "{keys}"],
    ],
    ids=["transmitter", "receiver-keys", "receiver-out", "list-keys", "list-out", "delete-keys"],
)
def test_a_corrupt_key_store_is_one_line(command, content, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(CORRUPT_KEYS[content])
    line = refused(*(a.format(keys=keys, tmp=tmp_path) for a in command))
    assert str(keys) in line and ("not a key store" in line or "not readable" in line), line


# --------------------------------------------------------------------------------------------
# small untruths


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("short") / "out"
    args = ["simulate", "--link", "memory", "--days", "0.2", "--out", out, "--no-plot"]
    args += ["--faults", "loss=0.1,outage=60:90,receiver_restart=1", "--e2e-crc"]
    result = invoke(*args, "--acknowledge-after", "3")
    assert result.exit_code == 0, result.output
    return out, result


def test_no_plot_does_not_claim_session_png(short_run):
    out, result = short_run
    assert not (out / "session.png").exists()
    assert "session.png" not in result.stdout
    said = " ".join(result.stdout.split())  # rich wraps long lines
    assert f"wrote summary.json, readings.csv, events.jsonl to {out}" in said


def test_summary_records_the_run_settings(short_run):
    out, _ = short_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"] == {
        "days": 0.2,
        "faults": {"loss": 0.1, "outages_min": [[60.0, 90.0]], "receiver_restarts": 1},
        "e2e_crc": True,
        "acknowledge_after_min": 3.0,
    }
    # the keys that were there stay
    assert {"profile", "seed", "link", "reference", "ideal_sensor", "session"} <= set(summary)
    report = invoke("report", out, "--out", out / "report", "--json")  # a reader of run dirs
    assert report.exit_code == 0, report.output


def test_a_hardware_receiver_replay_does_not_say_seed_none(tmp_path):
    from sim.recording.fileformat import header
    from sim.recording.replay import ReplayResult

    settings = {"role": "receiver", "transport": "usb:0"}
    result = ReplayResult(header=header("hil", "g7", None, settings))
    text = result.summary()
    assert "None" not in text and "receiver" in text and "usb:0" in text, text
    assert "seed 7" in ReplayResult(header=header("memory", "g7", 7, {})).summary()


@pytest.mark.tshark
def test_the_tshark_filters_in_docs_hil_show_packets(tmp_path):
    """docs/hil.md's tshark display filters match the ATT traffic of a capture (issue 18:
    ``-Y btgatt`` showed nothing with tshark 4.0)."""
    import re
    import subprocess

    from tests.support import tshark

    docs = pathlib.Path(__file__).parents[2] / "docs" / "hil.md"
    filters = [
        m.group(1) or m.group(2)
        for m in re.finditer(r"tshark -r \S+ -Y (?:'([^']+)'|(\S+))", docs.read_text())
    ]
    assert "btatt" in filters and "btgatt" not in filters
    tshark.require()
    capture = tmp_path / "receiver.btsnoop"
    args = ["simulate", "--link", "ble", "--days", "0.1", "--no-plot", "--out", tmp_path / "o"]
    result = invoke(*args, "--capture", capture)
    assert result.exit_code == 0, result.output
    for display_filter in filters:
        shown = subprocess.run(
            ["tshark", "-n", "-r", str(capture), "-Y", display_filter],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert shown.stdout.strip(), display_filter
