"""The receiver through the bleak API (``sim.links.bleak_receiver``), on the bleak backend over
bumble, for whole sessions in virtual time (``sim.ble_world`` with ``receiver_api="bleak"``):
the same readings and events as the in-memory link, and faults survived the same way."""

from __future__ import annotations

import pytest

from sim.ble_world import run_ble
from sim.session.config import Faults, SimulationConfig
from sim.session.result import SimulationResult
from sim.world import run


def _shown(result: SimulationResult) -> list[int]:
    return sorted(e["time_offset_min"] for e in result.events if e["kind"] == "reading")


def _produced(result: SimulationResult) -> list[int]:
    return [row.time_offset_min for row in result.rows if row.sensor_mgdl is not None]


def test_a_day_through_bleak_is_the_memory_links_day_event_for_event() -> None:
    config = SimulationConfig(days=1, ideal_sensor=True)
    stats: dict[str, int] = {}
    result = run_ble(config, stats=stats, receiver_api="bleak")
    assert stats["connections"] == 1 and stats["pairings"] == 1  # paired on demand
    assert _shown(result) == _produced(result)
    assert result.events == run(config).events


def test_outages_and_restarts_through_bleak_reencrypt_and_backfill_every_reading_once() -> None:
    config = SimulationConfig(
        days=3, ideal_sensor=True, faults=Faults(outages_min=((600, 2040),), receiver_restarts=3)
    )
    stats: dict[str, int] = {}
    result = run_ble(config, stats=stats, receiver_api="bleak")
    assert stats["connections"] == 4
    assert stats["pairings"] == 1  # the backend re-encrypts with the bond, as a desktop stack
    assert _shown(result) == _produced(result)
    assert result.duplicates == 0
    backfilled = {e["time_offset_min"] for e in result.events if e.get("backfill")}
    assert backfilled >= set(range(605, 2040, 5))


def test_lost_notifications_through_bleak_are_asked_for_again() -> None:
    config = SimulationConfig(days=2, faults=Faults(loss=0.3))
    result = run_ble(config, receiver_api="bleak")
    assert result.notifications_lost == run(config).notifications_lost > 50
    made = [r for r in result.rows if r.sensor_mgdl is not None]
    assert {r.delivery for r in made[:-1]} == {"live", "backfill"}
    assert result.duplicates == 0


def test_an_unknown_receiver_api_is_refused() -> None:
    with pytest.raises(ValueError, match="bumble or bleak"):
        run_ble(SimulationConfig(days=1), receiver_api="winrt")
