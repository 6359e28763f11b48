"""Record -> replay -> identical, on both links; a tampered, truncated, corrupted or newer
recording fails the way ``cgmsim replay`` promises (exit 1 naming the divergence, exit 2
naming the line)."""

from __future__ import annotations

import datetime
import gzip
import json
import pathlib

import pytest
from click.testing import CliRunner

from firmware.events import SensorSample
from firmware.profiles import PROFILES
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import Receiver, ReceiverConfig
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from sim import world
from sim.ble_world import run_ble
from sim.links.memory import MemoryLink
from sim.recording import RecordingReceiver, RecordingWriter, header
from sim.recording.command import command as replay_command
from sim.recording.fileformat import FORMAT_VERSION
from sim.recording.replay import replay
from sim.session.config import Faults, SimulationConfig
from sim.session.result import SimulationResult

MEMORY = SimulationConfig(
    days=1.0,
    seed=3,
    faults=Faults.parse("loss=0.2,receiver_restart=1"),
    acknowledge_after_min=5,
)
BLE = SimulationConfig(
    days=0.3, seed=4, faults=Faults.parse("loss=0.2,outage=200:230,receiver_restart=1")
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, tuple[pathlib.Path, SimulationResult]]:
    folder = tmp_path_factory.mktemp("recordings")
    memory, ble = folder / "memory.jsonl", folder / "ble.jsonl"
    return {
        "memory": (memory, world.run(MEMORY, record=memory)),
        "ble": (ble, run_ble(BLE, record=ble)),
    }


def lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def invoke(*args: str):
    return CliRunner().invoke(replay_command, [str(a) for a in args])


@pytest.mark.parametrize("link", ["memory", "ble"])
def test_a_recording_replays_identical(recorded, link) -> None:
    path, _ = recorded[link]
    records = lines(path)
    assert records[0]["link"] == link and records[0]["version"] == FORMAT_VERSION
    inputs = [r for r in records[1:-1] if r["in"] != "start"]
    result = replay(path)
    assert result.divergence is None
    assert sum(result.inputs.values()) == len(inputs)
    assert result.outputs == sum(len(r["out"]) for r in records[1:-1])
    # both cores, every kind of input the run had: a restart restores the receiver
    kinds = {(r["core"], r["in"]) for r in records[1:-1]}
    assert {("rx", "notification"), ("rx", "handle_timer"), ("tx", "sample")} <= kinds
    assert [r["core"] for r in records[1:-1] if r["in"] == "start"] == ["tx", "rx", "rx"]
    done = invoke(path, "--check")
    assert done.exit_code == 0, done.output
    [summary] = done.output.strip().splitlines()
    assert "identical" in summary and f"{link} link" in summary


def test_the_simulated_users_presses_are_recorded_and_replayed(recorded) -> None:
    path, result = recorded["memory"]
    presses = [r for r in lines(path)[1:-1] if r["in"] == "acknowledge"]
    acknowledged = [e for e in result.events if e["kind"] == "alert_acknowledged"]
    assert presses and len(presses) == len(acknowledged)
    assert [p["alert"] for p in presses] == [e["alert"] for e in acknowledged]


@pytest.mark.parametrize("link", ["memory", "ble"])
def test_recording_does_not_change_the_run(recorded, link) -> None:
    _, with_recording = recorded[link]
    plain = world.run(MEMORY) if link == "memory" else run_ble(BLE)
    assert with_recording.events == plain.events
    assert with_recording.rows == plain.rows
    assert with_recording.notifications_lost == plain.notifications_lost


def test_the_receiver_events_replayed_are_the_runs(recorded) -> None:
    """What the recording holds for the receiver is what the run's outputs show."""
    path, result = recorded["memory"]
    shown = [
        (o["time_offset"], o["glucose_mgdl"], o["backfill"])
        for r in lines(path)[1:-1]
        if r["core"] == "rx"
        for o in r["out"]
        if o["type"] == "ReadingShown"
    ]
    readings = [
        (e["time_offset_min"], e["glucose_mgdl"], e["backfill"])
        for e in result.events
        if e["kind"] == "reading"
    ]
    assert shown == readings and len(readings) > 200


def rewrite(source: pathlib.Path, target: pathlib.Path, change) -> int:
    """Copy ``source`` to ``target`` with ``change(record)`` applied to the first input line
    it returns True for; that line's number."""
    text = source.read_text().splitlines()
    for number, line in enumerate(text[1:-1], 2):
        record = json.loads(line)
        if change(record):
            text[number - 1] = json.dumps(record, separators=(",", ":"))
            target.write_text("\n".join(text) + "\n")
            return number
    raise AssertionError("nothing to change")


def flip_byte(hex_value: str, index: int) -> str:
    data = bytearray(bytes.fromhex(hex_value))
    data[index] ^= 0x01
    return data.hex()


def test_a_byte_changed_in_a_transmitted_frame_fails_naming_it(recorded, tmp_path) -> None:
    path, _ = recorded["memory"]
    original: list[str] = []

    def tamper(record: dict) -> bool:
        notify = [o for o in record["out"] if o["type"] == "Notify"]
        if record["core"] != "tx" or record["in"] != "sample" or not notify:
            return False
        original.append(notify[0]["value"])
        notify[0]["value"] = flip_byte(notify[0]["value"], 2)  # the glucose SFLOAT
        return True

    number = rewrite(path, tmp_path / "tampered.jsonl", tamper)
    done = invoke(tmp_path / "tampered.jsonl", "--check")
    assert done.exit_code == 1, done.output
    message = done.output.strip()
    assert f"line {number}:" in message
    assert "transmitter's sensor sample" in message and "differs in value" in message
    assert f'"value":"{original[0]}"' in message.split("actual")[1]  # what the core made
    assert f'"value":"{flip_byte(original[0], 2)}"' in message.split("actual")[0]
    # without --check the divergence is reported, not failed
    assert invoke(tmp_path / "tampered.jsonl").exit_code == 0


def test_a_byte_changed_in_a_received_frame_fails_naming_it(recorded, tmp_path) -> None:
    path, _ = recorded["memory"]

    def tamper(record: dict) -> bool:
        shown = [o for o in record["out"] if o["type"] == "ReadingShown"]
        if record["core"] != "rx" or record["in"] != "notification" or not shown:
            return False
        record["value"] = flip_byte(record["value"], 2)  # the first record's glucose
        return True

    number = rewrite(path, tmp_path / "tampered.jsonl", tamper)
    done = invoke(tmp_path / "tampered.jsonl", "--check", "--json")
    assert done.exit_code == 1, done.output
    report = json.loads(done.output)
    divergence = report["divergence"]
    assert report["identical"] is False and divergence["line"] == number
    assert divergence["core"] == "receiver" and divergence["input"].startswith("notification")
    assert divergence["expected"]["type"] == divergence["actual"]["type"] == "ReadingShown"
    assert divergence["expected"]["glucose_mgdl"] != divergence["actual"]["glucose_mgdl"]


def test_a_truncated_recording_exits_2_naming_the_line(recorded, tmp_path) -> None:
    path, _ = recorded["memory"]
    text = path.read_text()
    count = len(text.splitlines())
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) // 2])  # mid-line
    done = invoke(cut, "--check")
    assert done.exit_code == 2
    [line] = done.output.strip().splitlines()
    partial = len(text[: len(text) // 2].splitlines())
    assert f"line {partial}: not JSON" in line and "truncated" in line
    whole_lines = tmp_path / "lines.jsonl"  # cut at a line end: the end line is missing
    whole_lines.write_text("\n".join(text.splitlines()[: count // 2]) + "\n")
    done = invoke(whole_lines, "--check")
    assert done.exit_code == 2
    assert f"line {count // 2 + 1}:" in done.output and "truncated" in done.output


def test_a_corrupted_or_newer_recording_exits_2(recorded, tmp_path) -> None:
    path, _ = recorded["ble"]
    text = path.read_text().splitlines()
    corrupted = tmp_path / "corrupted.jsonl"
    corrupted.write_text("\n".join([*text[:10], '{"t": 1, "core": "zz"}', *text[10:]]) + "\n")
    done = invoke(corrupted, "--check")
    assert done.exit_code == 2 and "line 11: not an input line" in done.output
    head = json.loads(text[0])
    newer = tmp_path / "newer.jsonl"
    newer.write_text("\n".join([json.dumps({**head, "version": FORMAT_VERSION + 1}), *text[1:]]))
    done = invoke(newer, "--check")
    assert done.exit_code == 2
    assert f"line 1: format version {FORMAT_VERSION + 1} is newer" in done.output
    bad_value = tmp_path / "bad-value.jsonl"
    rewrite(path, bad_value, lambda r: r["in"] == "notification" and r.update(value="zz") is None)
    done = invoke(bad_value, "--check")
    assert done.exit_code == 2 and "bad 'notification' line" in done.output
    assert invoke(tmp_path / "missing.jsonl").exit_code == 2


def test_a_gzipped_recording_replays_and_a_truncated_one_exits_2(tmp_path) -> None:
    path = tmp_path / "run.jsonl.gz"
    world.run(SimulationConfig(days=0.2, seed=5, ideal_sensor=True), record=path)
    assert invoke(path, "--check").exit_code == 0
    data = path.read_bytes()
    assert gzip.decompress(data).startswith(b'{"format":"cgmsim-recording"')
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    done = invoke(cut, "--check")
    assert done.exit_code == 2 and "truncated" in done.output


def test_a_receiver_alone_recorded_as_on_hardware_replays(tmp_path) -> None:
    """The way sim/hil.py records: only the local core is wrapped (here a receiver, whose
    peer is a plain transmitter core), and a restart restores it from a stored state."""
    profile = PROFILES["g7"]
    config = ReceiverConfig(profile, CollectorConfig(datetime.datetime(2026, 1, 5, 8)))
    calibration = FactoryCalibration(1000.0, 0.0)
    tx = Transmitter(TransmitterConfig(profile), calibration, 0)
    path = tmp_path / "hw.jsonl"
    with RecordingWriter.create(path, header("hil", "g7", None, {"transport": "x"})) as writer:
        link = MemoryLink(tx, RecordingReceiver(Receiver(config, 0), writer))
        link.connect(0)
        for k in range(1, 25):  # two hours: warm-up ends on the way
            tx.sample(SensorSample(120_000 + 1000 * k), k * 300_000)
            link.pump(k * 300_000)
            if k == 12:  # the receiver process restarts from its snapshot
                link.disconnect(k * 300_000, "restart")
                state = json.loads(json.dumps(link.rx.snapshot()))
                restored = Receiver.restore(config, state, k * 300_000 + 2_000)
                link.replace_receiver(RecordingReceiver(restored, writer, restored_from=state))
                link.connect(k * 300_000 + 2_000)
    result = replay(path)
    assert result.divergence is None
    assert result.inputs["tx"] == 0 and result.inputs["rx"] > 20
    shown = [o for r in lines(path)[1:-1] for o in r["out"] if o["type"] == "ReadingShown"]
    assert [o["glucose_mgdl"] for o in shown[-2:]] == [143.0, 144.0]
