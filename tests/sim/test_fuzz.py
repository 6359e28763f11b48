"""cgmsim fuzz: bounded smoke campaigns find nothing; planted bugs are found, shrunk, saved
and replayed; the command's JSON and its refusals."""

import json
import pathlib

import click
import pytest
from click.testing import CliRunner

from firmware.receiver.receiver import ReadingShown, Receiver
from firmware.transmitter.server import Transmitter
from firmware.transmitter.store import RecordStore
from protocol.cgms import gatt, measurement, racp
from protocol.cgms.annunciation import StatusFlags
from protocol.cgms.codecs import CODECS
from protocol.cgms.racp import RacpOpcode, RacpOperator
from sim.fuzz import engine
from sim.fuzz.command import command
from sim.fuzz.corpus import CALIBRATION
from sim.fuzz.decoder import DecoderTarget
from sim.fuzz.receiver import ReceiverTarget
from sim.fuzz.targets import TARGETS, make_target
from sim.fuzz.transmitter import TransmitterTarget

CORPUS = pathlib.Path(__file__).resolve().parent.parent / "fuzz_corpus"
SMOKE = {"decoder": 20_000, "transmitter": 2_000, "receiver": 1_500}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_smoke_campaign_finds_nothing(name):
    report = engine.campaign(make_target(name), SMOKE[name], seed=7)
    assert report.iterations == SMOKE[name]
    assert report.failures == [], report.failures
    assert report.crashes == report.hangs == report.invariant_failures == 0


# --- a planted bug in a decoder -------------------------------------------------------------


def faulty_measurement_decode(data, e2e_crc):
    """The project's decoder, plus a defect: a record whose Status octet says "general device
    fault" crashes it."""
    records = measurement.decode(data, e2e_crc)
    for record in records:
        if record.status is not None and record.status & StatusFlags.GENERAL_DEVICE_FAULT:
            raise IndexError("planted")
    return records


def planted_decoder() -> DecoderTarget:
    codec = CODECS["measurement"]
    target = DecoderTarget({"measurement": (faulty_measurement_decode, codec.fields)})
    target.name = "planted-decoder"
    return target


@pytest.mark.slow  # a campaign until the planted defect is found, then shrinking
def test_the_engine_finds_and_shrinks_a_planted_decoder_bug(tmp_path):
    report = engine.campaign(planted_decoder(), 20_000, seed=2, corpus=tmp_path)
    assert report.crashes >= 1
    (found,) = report.failures
    assert found["failure"]["signature"].startswith("crash:IndexError@")
    assert "test_fuzz.py" in found["failure"]["signature"]  # where it was raised
    (action,) = found["actions"]  # shrunk to the one input
    name, mode, value = action
    assert name == "measurement"
    (record,) = measurement.decode(bytes.fromhex(value[4:]), mode)
    assert record.status == StatusFlags.GENERAL_DEVICE_FAULT  # every other bit cleared
    assert record.glucose == 0.0 and record.time_offset == 0  # fields zeroed
    # fields whose flag could not be shrunk away on its own are zero
    assert record.cal_temp in (None, 0) and record.warning in (None, 0)
    assert record.trend in (None, 0.0) and record.quality in (None, 0.0)
    saved = pathlib.Path(found["path"])
    assert saved.parent == tmp_path and json.loads(saved.read_text())["seed"] == 2
    again = engine.replay(planted_decoder(), engine.load(saved))
    assert again is not None and again.signature == found["failure"]["signature"]
    assert engine.replay(DecoderTarget(), engine.load(saved)) is None  # the real decoder is fine


# --- a planted bug in a receiver ------------------------------------------------------------


class WarmupShowingReceiver(Receiver):
    """A receiver with a defect: it shows readings taken during warm-up."""

    def _record(self, record, backfill, now_ms):
        if self.session_start_ms is not None and isinstance(record.glucose, float):
            self.out.append(
                ReadingShown(now_ms, record.time_offset, record.glucose, "x", None, "", backfill)
            )


@pytest.mark.slow  # a campaign until the planted defect is found, then shrinking
def test_the_engine_finds_and_shrinks_a_receiver_defect():
    target = ReceiverTarget(make_receiver=WarmupShowingReceiver)
    report = engine.campaign(target, 3_000, seed=5)
    signatures = {f["failure"]["signature"]: f for f in report.failures}
    found = signatures["invariant:in-session"]
    actions = found["actions"]
    assert len(actions) < 20, actions
    for index in range(len(actions)):  # 1-minimal: no action can go
        fewer = {**found, "actions": actions[:index] + actions[index + 1 :]}
        again = engine.replay(target, fewer)
        assert again is None or again.signature != "invariant:in-session", index
    assert engine.replay(ReceiverTarget(), found) is None  # the project's receiver is fine
    assert engine.replay(target, found).signature == "invariant:in-session"


# --- a planted miscount in a transmitter ----------------------------------------------------


class OffByOneStore(RecordStore):
    """The project's record store, plus a defect: a within-range count leaves one out."""

    def count(self, operator, operand=None):
        counted = super().count(operator, operand)
        return counted - 1 if operator == RacpOperator.WITHIN_RANGE_OF and counted else counted


class MiscountingTransmitter(Transmitter):
    def __init__(self, config):
        super().__init__(config, CALIBRATION, 0)
        self.store = OffByOneStore(config.capacity)


@pytest.mark.slow  # a campaign until the planted defect is found, then shrinking
def test_the_engine_finds_and_shrinks_a_planted_racp_miscount():
    target = TransmitterTarget(make_transmitter=MiscountingTransmitter)
    report = engine.campaign(target, 2_000, seed=7)  # the smoke campaign's size and seed
    (found,) = report.failures
    assert found["failure"]["signature"] == "invariant:racp-count"
    *setup, (kind, uuid, value) = found["actions"]
    assert [action[0] for action in setup] == ["connect", "subscribe"]  # RACP indications on
    request = racp.decode(bytes.fromhex(value[4:]))
    assert (kind, uuid) == ("write", gatt.RACP.uuid)
    assert request.opcode == RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS
    assert request.operator == RacpOperator.WITHIN_RANGE_OF
    assert engine.replay(TransmitterTarget(), found) is None  # the project's transmitter is fine


def test_engine_campaigns_are_deterministic_by_seed():
    first = engine.campaign(planted_decoder(), 5_000, seed=11)
    second = engine.campaign(planted_decoder(), 5_000, seed=11)
    assert [f["actions"] for f in first.failures] == [f["actions"] for f in second.failures]
    assert (first.iterations, first.crashes) == (second.iterations, second.crashes)


# --- the command ----------------------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def test_json_summary():
    result = run("--target", "decoder", "--iterations", "3000", "--seed", "1", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["iterations"] == 3000 and summary["target"] == "decoder"
    assert summary["crashes"] == summary["hangs"] == summary["unique_failures"] == 0
    assert summary["iterations_per_second"] > 0


def test_replay_round_trip_through_the_command(tmp_path, monkeypatch):
    monkeypatch.setitem(TARGETS, "planted-decoder", planted_decoder)
    found = run(
        "--target",
        "planted-decoder",
        "--iterations",
        "20000",
        "--seed",
        "3",
        "--corpus",
        str(tmp_path),
    )
    assert found.exit_code == 1 and "crash:IndexError" in found.stdout
    (saved,) = tmp_path.glob("planted-decoder-*.json")
    still = run("--replay", str(saved), "--json")
    assert still.exit_code == 1
    assert json.loads(still.stdout)["failure"]["signature"].startswith("crash:IndexError")
    entry = json.loads(saved.read_text())
    entry["target"] = "decoder"  # the same input against the project's decoder
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(entry))
    result = run("--replay", str(fixed))
    assert result.exit_code == 0 and "no longer fails" in result.stdout


@pytest.mark.parametrize(
    "finding", ["receiver-future-time-offset.json", "transmitter-start-time-before-1582.json"]
)
def test_the_findings_stay_fixed(finding):
    result = run("--replay", str(CORPUS / finding))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--target", "decoder", "--link", "ble"], "--link ble fuzzes"),
        (["--target", "decoder", "--iterations", "0"], "--iterations"),
        (["--target", "firmware"], "--target"),
        ([], "--target"),
        (["--replay", "missing.json"], "missing.json"),
        (
            ["--replay", str(CORPUS / "receiver-future-time-offset.json"), "--target", "decoder"],
            "receiver reproducer",
        ),
    ],
)
def test_bad_options_exit_2(args, says):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2, result.output
    assert says in result.stderr and "Traceback" not in result.output


def test_replay_refuses_a_file_that_is_not_a_reproducer(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"format": "something else"}')
    result = CliRunner().invoke(command, ["--replay", str(path)])
    assert result.exit_code == 2 and "not a cgmsim-fuzz-reproducer" in result.stderr


def test_the_command_is_a_click_command():
    assert isinstance(command, click.Command) and command.name == "fuzz"
