"""One engine, one fault schedule: the in-memory link and the BLE link give the same session.

Both links run through ``sim.session.engine``; what differs is only how bytes travel (directly
between the cores, or over bumble's GATT with pairing and encryption). So readings.csv's rows
(what the sensor made, what the receiver displayed, live or backfilled or lost) must be equal,
the same notifications lost, and the same alerts raised, repeated and cleared at the same
minute — under loss, outages and receiver restarts together, as the README's fault mix has
them. Before the engine, that mix lost 1,033 notifications in memory and 1,031 over BLE, and
the alerts differed (issue 15).
"""

from __future__ import annotations

import dataclasses

import pytest

from firmware.profiles import PROFILES
from sim import world
from sim.ble_world import run_ble
from sim.session.config import Faults, SimulationConfig
from sim.session.result import SimulationResult

README_MIX = "loss=0.3,outage=600:2040,receiver_restart=3"


def alert_timeline(result: SimulationResult) -> list[tuple[str, str, float]]:
    return [
        (e["kind"], e["alert"], round(e["t_min"], 1))  # link-level milliseconds aside
        for e in result.events
        if e["kind"].startswith("alert")
    ]


def assert_same_session(memory: SimulationResult, ble: SimulationResult) -> None:
    rows = [dataclasses.asdict(row) for row in memory.rows]
    assert [dataclasses.asdict(row) for row in ble.rows] == rows
    assert ble.notifications_lost == memory.notifications_lost
    assert ble.duplicates == memory.duplicates == 0
    assert alert_timeline(ble) == alert_timeline(memory)
    # the faults did happen: readings were lost on the air and backfilled
    if memory.config.faults.loss:
        assert memory.notifications_lost > 0
    assert any(row["delivery"] == "backfill" for row in rows)


@pytest.mark.parametrize(
    ("profile", "seed", "faults", "days"),
    [
        ("g6", 2, "loss=0.3,outage=600:1800,receiver_restart=3", 2.0),
        ("g7", 3, "loss=0.2,outage=100:400,outage=1000:1100,receiver_restart=2", 1.5),
        ("g6", 5, "outage=300:320,receiver_restart=1", 1.0),
    ],
)
def test_memory_and_ble_give_the_same_session_under_faults(profile, seed, faults, days):
    config = SimulationConfig(
        profile=PROFILES[profile], seed=seed, days=days, faults=Faults.parse(faults)
    )
    assert_same_session(world.run(config), run_ble(config))


@pytest.mark.slow
def test_the_readme_fault_mix_gives_the_same_whole_session_on_both_links():
    config = SimulationConfig(seed=1, faults=Faults.parse(README_MIX))
    memory = world.run(config)
    assert_same_session(memory, run_ble(config))
    assert memory.notifications_lost == 1_069  # as the README says
