"""A session over the real BLE host stack (``sim.ble_world``): two bumble devices on the
in-process link, passkey pairing, encryption, GATT traffic, all in virtual time — and the same
readings, phases and events as the in-memory link."""

from __future__ import annotations

import time

import pytest

from sim.ble_world import run_ble
from sim.world import Faults, SimulationConfig, SimulationResult, run

ONE_DAY = SimulationConfig(days=1, ideal_sensor=True)
WALL_LIMIT_S = 5.0


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
    started = time.perf_counter()
    result = run_ble(ONE_DAY, stats=stats)
    wall = time.perf_counter() - started
    print(f"1 day over BLE: {wall:.2f} s wall, {stats}")

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
    assert wall < WALL_LIMIT_S


def test_link_drop_mid_run_reconnects_reencrypts_and_backfills(memory: SimulationResult) -> None:
    stats: dict[str, int] = {}
    result = run_ble(ONE_DAY, link_drops_min=[(600.5, 660.0)], stats=stats)

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
    assert backfilled == list(range(605, 661, 5))  # made while out of range
    assert _displayed(result) == _displayed(memory)


def test_faults_are_rejected() -> None:
    with pytest.raises(ValueError, match="faults"):
        run_ble(SimulationConfig(days=1, faults=Faults(loss=0.1)))
    with pytest.raises(ValueError, match="acknowledge"):
        run_ble(SimulationConfig(days=1, acknowledge_after_min=5))


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
    faulty = subprocess.run(
        [
            str(cgmsim),
            *common,
            "--link",
            "ble",
            "--faults",
            "loss=0.1",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert faulty.returncode == 2
    assert faulty.stderr.strip().splitlines() == [
        "cgmsim: error: run_ble: faults are not supported on the BLE link yet"
    ]
