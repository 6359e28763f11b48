"""Reproducer files are input like any other: a malformed one exits 2 with one line naming the
field (issue 17), and a harness's own mistake is never reported as a finding in the target."""

from __future__ import annotations

import json
import pathlib

import pytest
from click.testing import CliRunner

from protocol.cgms import gatt
from sim.fuzz import engine
from sim.fuzz.command import command
from sim.fuzz.decoder import DecoderTarget
from sim.fuzz.receiver import ReceiverTarget, _Run
from sim.fuzz.targets import TARGETS
from sim.fuzz.transmitter import TransmitterTarget

CORPUS = pathlib.Path(__file__).resolve().parent.parent / "fuzz_corpus"
RECEIVER_FINDING = CORPUS / "receiver-future-time-offset.json"
TRANSMITTER_FINDING = CORPUS / "transmitter-start-time-before-1582.json"


def edited(tmp_path: pathlib.Path, source: pathlib.Path, change) -> pathlib.Path:
    entry = json.loads(source.read_text())
    change(entry)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(entry))
    return path


def decoder_reproducer(tmp_path: pathlib.Path, action: list) -> pathlib.Path:
    entry = engine.reproducer(
        "decoder", 1, 1, engine.Failure("crash", "crash:X@y.py:1", "X", 0), [action]
    )
    path = tmp_path / "decoder.json"
    path.write_text(json.dumps(entry))
    return path


def refused(path: pathlib.Path) -> str:
    result = CliRunner().invoke(command, ["--replay", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    (line,) = result.stderr.splitlines()
    return line


def test_an_unknown_action_is_refused_not_skipped(tmp_path):
    path = edited(tmp_path, TRANSMITTER_FINDING, lambda e: e["actions"].insert(2, ["jump", 3]))
    line = refused(path)
    assert "actions[2][0]: unknown action 'jump'" in line and "connect" in line


def test_a_payload_without_its_hex_prefix_is_refused(tmp_path):
    def strip(entry):
        for action in entry["actions"]:
            if action[0] == "write":
                action[2] = action[2][4:]
                return

    line = refused(edited(tmp_path, TRANSMITTER_FINDING, strip))
    assert "][2]:" in line and "is not a hex:<bytes> payload" in line


def test_bad_hex_in_a_receiver_reproducer_is_refused_not_a_receiver_crash(tmp_path):
    def spoil(entry):
        for action in entry["actions"]:
            if action[0] == "replace":
                action[2] = "hex:0720zz"
                return

    line = refused(edited(tmp_path, RECEIVER_FINDING, spoil))
    assert "'hex:0720zz' is not valid hex" in line and "actions[" in line
    assert "crash" not in line


def test_an_unknown_codec_is_refused(tmp_path):
    line = refused(decoder_reproducer(tmp_path, ["glucometer", None, "hex:00"]))
    assert "actions[0][0]: unknown codec 'glucometer'" in line and "measurement" in line


def test_a_wrong_value_in_a_known_action_names_its_slot(tmp_path):
    line = refused(decoder_reproducer(tmp_path, ["measurement", "yes", "hex:00"]))
    assert "actions[0][1]: 'yes' is not true, false or null" in line
    path = edited(tmp_path, TRANSMITTER_FINDING, lambda e: e["actions"].append(["wait"]))
    assert "wait takes 1 values, not 0" in refused(path)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("target", "toaster", "target: unknown target 'toaster' over link memory"),
        ("link", "carrier-pigeon", "link: unknown link 'carrier-pigeon'"),
        ("actions", {"step": 1}, "actions: not a list"),
    ],
)
def test_an_unknown_target_or_link_is_refused(tmp_path, field, value, says):
    path = edited(tmp_path, RECEIVER_FINDING, lambda e: e.__setitem__(field, value))
    line = refused(path)
    assert says in line or ("unsupported reproducer" in line and field == "actions")


def test_the_corpus_reproducers_pass_the_check():
    for path in CORPUS.glob("*.json"):
        result = CliRunner().invoke(command, ["--replay", str(path)])
        assert result.exit_code == 0, (path.name, result.output)


# --- the harness's own mistakes ---------------------------------------------------------------


def test_a_sample_at_the_instant_of_the_last_one_is_not_fed():
    """What stopped `cgmsim fuzz --target transmitter --atheris --seed 11` after about 7,600
    inputs (issue 17): a step to a sample, then a wait of 0 ms fed a second sample at the same
    instant, which the record store rightly refuses."""
    episode = {"actions": [["setup", False], ["connect", 23], ["step"], ["wait", 0], ["step"]]}
    assert engine.replay(TransmitterTarget(), episode) is None


class SloppyDecoderTarget(DecoderTarget):
    """A harness with a defect of its own: it generates payloads that are not hex."""

    name = "sloppy-decoder"

    def generate(self, rng, count):
        return [["measurement", None, "hex:0g"] for _ in range(count)]


def test_an_exception_in_the_harness_is_a_harness_error_not_a_finding():
    with pytest.raises(engine.HarnessError, match=r"ValueError in the harness \(decoder.py"):
        engine.campaign(SloppyDecoderTarget(), 10, seed=1)


def test_the_command_reports_a_harness_error_as_no_finding(monkeypatch):
    monkeypatch.setitem(TARGETS, "sloppy-decoder", SloppyDecoderTarget)
    result = CliRunner().invoke(command, ["--target", "sloppy-decoder", "--iterations", "10"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert "the harness failed, not the sloppy-decoder (no finding)" in line


def test_a_deadline_already_past_is_due_not_a_hang():
    """What stopped `cgmsim fuzz --target receiver --atheris --seed 11` after 116 s: a reading
    with time offset 0, injected after warm-up, makes the receiver's overdue check due at once
    (its deadline is before now). The project's drivers fire such a deadline at once
    (sim.links.core_timer: an asyncio call_at in the past); the harness called it a hang."""
    actions = [["setup", True], *[["step"]] * 5]
    actions.append(["inject", "notify", gatt.MEASUREMENT.uuid, "hex:0800000000002829"])
    run = _Run(ReceiverTarget(), True)
    for action in actions:
        run.apply(action)
    assert run.link.rx.get_timer() < run.now  # the case: a deadline already past
    assert engine.replay(ReceiverTarget(), {"actions": [*actions, ["step"], ["step"]]}) is None
