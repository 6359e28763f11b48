"""cgmsim fuzz --link ble: bounded smoke campaigns over bumble's in-process link find nothing,
a planted defect in the transmitter is found through its GATT server, and the known adapter
defect the BLE campaign found replays."""

import json
import pathlib

import pytest
from click.testing import CliRunner

from protocol.cgms import gatt
from sim.fuzz import engine
from sim.fuzz.ble_receiver import BleReceiverTarget
from sim.fuzz.ble_transmitter import BleTransmitterTarget
from sim.fuzz.command import command
from sim.fuzz.targets import make_target

from .test_fuzz import MiscountingTransmitter, WarmupShowingReceiver

CORPUS = pathlib.Path(__file__).resolve().parent.parent / "fuzz_corpus"
SMOKE = {"transmitter": 200, "receiver": 150}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_ble_smoke_campaign_finds_nothing(name):
    report = engine.campaign(make_target(name, "ble"), SMOKE[name], seed=7, episode_length=50)
    assert report.iterations == SMOKE[name] and report.link == "ble"
    assert report.failures == [], report.failures


@pytest.mark.slow
def test_a_planted_miscount_is_found_through_the_gatt_server():
    target = BleTransmitterTarget(make_transmitter=MiscountingTransmitter)
    report = engine.campaign(target, 300, seed=0, episode_length=50, shrink_budget=10)
    (found,) = report.failures
    assert found["failure"]["signature"] == "invariant:racp-count"
    assert found["link"] == "ble"
    kind, uuid, _ = found["actions"][-1]
    assert (kind, uuid) == ("write", gatt.RACP.uuid)
    assert engine.replay(BleTransmitterTarget(), found) is None  # the project's is fine


@pytest.mark.slow
def test_a_receiver_defect_is_found_through_a_rogue_sensor():
    target = BleReceiverTarget(make_receiver=WarmupShowingReceiver)
    report = engine.campaign(target, 100, seed=4, episode_length=50, shrink_budget=10)
    signatures = {f["failure"]["signature"]: f for f in report.failures}
    found = signatures["invariant:in-session"]
    assert found["link"] == "ble"
    assert engine.replay(BleReceiverTarget(), found) is None  # the project's receiver is fine


def test_json_summary_over_ble(tmp_path):
    result = CliRunner().invoke(
        command,
        ["--target", "transmitter", "--link", "ble", "--iterations", "60", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["link"] == "ble" and summary["iterations"] == 60
    assert summary["iterations_per_second"] > 0 and summary["unique_failures"] == 0


def test_cccds_kept_across_a_reconnection_still_deliver():
    """Found by the BLE fuzzer: bumble forgot the CCCDs on disconnection while the core kept a
    bonded collector's, so the core's indications after a reconnection were dropped unsent."""
    path = CORPUS / "transmitter-ble-cccd-forgotten-after-reconnect.json"
    result = CliRunner().invoke(command, ["--replay", str(path), "--json"])
    assert json.loads(result.stdout)["link"] == "ble"
    assert result.exit_code == 0, result.output
