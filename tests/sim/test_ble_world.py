"""A session over the real BLE host stack (``sim.ble_world``): two bumble devices on the
in-process link, passkey pairing, encryption, GATT traffic, all in virtual time — and the same
readings, phases and events as the in-memory link."""

from __future__ import annotations

import pytest

from sim.ble_world import run_ble
from sim.session.config import Faults, SimulationConfig
from sim.session.result import SimulationResult
from sim.signal.scenarios import SCENARIOS
from sim.world import run

ONE_DAY = SimulationConfig(days=1, ideal_sensor=True)


def _produced(result: SimulationResult) -> list[int]:
    """Time offsets of the readings the transmitter made."""
    return [row.time_offset_min for row in result.rows if row.sensor_mgdl is not None]


def _shown(result: SimulationResult) -> list[dict[str, object]]:
    return [e for e in result.events if e["kind"] == "reading"]


def _displayed(result: SimulationResult) -> list[tuple[int, str | None]]:
    return [(row.time_offset_min, row.displayed) for row in result.rows if row.displayed]


def _phases(result: SimulationResult) -> list[dict[str, object]]:
    return [e for e in result.events if e["kind"] == "phase"]


@pytest.fixture(scope="module")
def memory() -> SimulationResult:
    return run(ONE_DAY)


def test_one_day_over_ble_shows_every_reading_once_live_as_on_the_memory_link(
    memory: SimulationResult,
) -> None:
    stats: dict[str, int] = {}
    result = run_ble(ONE_DAY, stats=stats)

    produced = _produced(result)
    assert len(produced) > 250
    shown = _shown(result)
    assert sorted(e["time_offset_min"] for e in shown) == produced  # each exactly once
    assert result.duplicates == 0
    assert all(not e["backfill"] for e in shown)
    assert {row.delivery for row in result.rows if row.sensor_mgdl is not None} == {"live"}

    assert _displayed(result) == _displayed(memory)
    assert _phases(result) == _phases(memory)
    assert shown[0] == _shown(memory)[0]
    assert result.events == memory.events  # alerts and link events too
    assert stats["connections"] == 1 and stats["pairings"] == 1


def test_link_drop_mid_run_reconnects_reencrypts_and_backfills(memory: SimulationResult) -> None:
    stats: dict[str, int] = {}
    outage = SimulationConfig(days=1, ideal_sensor=True, faults=Faults(outages_min=((600.5, 660),)))
    result = run_ble(outage, stats=stats)

    assert stats["connections"] == 2
    assert stats["pairings"] == 1  # the bond re-encrypted the second link
    links = [(e["connected"], e["t_min"]) for e in result.events if e["kind"] == "link"]
    assert [up for up, _ in links] == [True, False, True]
    assert links[1][1] == pytest.approx(600.5)
    assert links[2][1] == pytest.approx(660.0, abs=0.01)

    produced = _produced(result)
    shown = _shown(result)
    assert sorted(e["time_offset_min"] for e in shown) == produced  # still every reading once
    assert result.duplicates == 0
    backfilled = sorted(e["time_offset_min"] for e in shown if e["backfill"])
    # made while out of range; at 660 the sensor is back and the receiver reconnects before
    # that sample, as on the memory link (connecting takes no session time)
    assert backfilled == list(range(605, 656, 5))
    assert _displayed(result) == _displayed(memory)


@pytest.mark.slow
def test_cli_simulates_over_ble(tmp_path):
    import json
    import pathlib
    import subprocess
    import sys

    cgmsim = pathlib.Path(sys.executable).parent / "cgmsim"
    common = ["simulate", "--days", "1", "--no-plot", "--json"]
    ble = subprocess.run(
        [str(cgmsim), *common, "--link", "ble", "--out", str(tmp_path / "ble")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    memory = subprocess.run(
        [str(cgmsim), *common, "--link", "memory", "--out", str(tmp_path / "memory")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ble.returncode == 0, ble.stderr
    over_ble, over_memory = json.loads(ble.stdout), json.loads(memory.stdout)
    assert over_ble["link"] == "ble"
    assert over_ble["readings"]["lost"] == over_ble["readings"]["duplicates"] == 0
    assert over_ble["readings"] == over_memory["readings"]
    assert over_ble["alerts"] == over_memory["alerts"]
    faulty = [*common, "--faults", "loss=0.3,receiver_restart=1"]
    ble = subprocess.run(
        [str(cgmsim), *faulty, "--out", str(tmp_path / "ble-faults")],  # ble: the default
        capture_output=True,
        text=True,
        timeout=120,
    )
    memory = subprocess.run(
        [str(cgmsim), *faulty, "--link", "memory", "--out", str(tmp_path / "memory-faults")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ble.returncode == 0, ble.stderr
    over_ble, over_memory = json.loads(ble.stdout), json.loads(memory.stdout)
    assert over_ble["link"] == "ble"
    assert over_ble["link_stats"]["notifications_lost"] > 0
    assert over_ble["readings"]["lost"] == over_ble["readings"]["duplicates"] == 0
    assert over_ble["readings"] == over_memory["readings"]
    assert (tmp_path / "ble-faults" / "receiver.sqlite").exists()


LOSSY = SimulationConfig(days=2, faults=Faults(loss=0.3))


def test_lost_notifications_on_the_air_are_the_memory_links_and_are_backfilled() -> None:
    """One loss draw per notification on the air, from the same generator as the memory
    link's: the same notifications are lost, and the receiver finds the same gaps."""
    memory, ble = run(LOSSY), run_ble(LOSSY)
    assert ble.notifications_lost == memory.notifications_lost > 50
    assert [(r.displayed, r.delivery) for r in ble.rows] == [
        (r.displayed, r.delivery) for r in memory.rows
    ]
    assert ble.events == memory.events
    made = [r for r in ble.rows if r.sensor_mgdl is not None]
    assert {r.delivery for r in made[:-1]} == {"live", "backfill"}  # the gaps were filled
    # the very last reading may be lost with nothing after it to reveal the gap
    assert made[-1].delivery in ("live", "lost")
    assert ble.duplicates == 0


def test_receiver_restarts_reload_reencrypt_and_lose_nothing() -> None:
    config = SimulationConfig(days=2, ideal_sensor=True, faults=Faults(receiver_restarts=2))
    stats: dict[str, int] = {}
    result = run_ble(config, stats=stats)
    assert stats["connections"] == 3
    assert stats["pairings"] == 1  # the bond survives the restarts: re-encrypted each time
    reasons = [e["reason"] for e in result.events if e["kind"] == "link" and not e["connected"]]
    assert reasons == ["receiver restart"] * 2
    produced = _produced(result)
    assert sorted(e["time_offset_min"] for e in _shown(result)) == produced
    assert result.duplicates == 0
    assert _displayed(result) == _displayed(run(config))


@pytest.mark.parametrize("runner", [run, run_ble], ids=["memory", "ble"])
def test_a_restart_during_an_outage_reconnects_when_the_outage_ends(runner) -> None:
    # days=3 puts the first restart at 1080 min + 1.234 s, inside the outage
    config = SimulationConfig(
        days=3, ideal_sensor=True, faults=Faults(outages_min=((600, 2040),), receiver_restarts=3)
    )
    result = runner(config)
    ups = [e["t_min"] for e in result.events if e["kind"] == "link" and e["connected"]]
    assert not any(600 < t < 2040 for t in ups)
    assert any(2040 <= t < 2041 for t in ups)
    shown = _shown(result)
    assert sorted(e["time_offset_min"] for e in shown) == _produced(result)
    assert {e["time_offset_min"] for e in shown if e["backfill"]} >= set(range(605, 2040, 5))


def test_the_simulated_user_acknowledges_as_on_the_memory_link() -> None:
    config = SimulationConfig(
        days=2, source=SCENARIOS["nocturnal_hypo"], acknowledge_after_min=7
    )  # urgent lows that repeat until acknowledged
    memory, ble = run(config), run_ble(config)
    acknowledged = [e for e in ble.events if e["kind"] == "alert_acknowledged"]
    assert len(acknowledged) > 3
    assert ble.events == memory.events
