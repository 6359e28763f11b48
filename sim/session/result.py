"""What one simulated session gives back, whatever link carried it: a row per 5-minute sample
(the rows of readings.csv), the receiver's events (events.jsonl) and the session's counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.session.config import SimulationConfig


@dataclass
class SampleRow:
    """One 5-minute sample of the session (a row of readings.csv)."""

    time_offset_min: int
    reference_mgdl: float
    made: bool = False  # the transmitter made a record (with a glucose value or not)
    sensor_mgdl: float | None = None  # the record's value, when the transmitter made one
    displayed: str | None = None
    trend_mgdl_min: float | None = None
    arrow: str | None = None
    delivery: str | None = None  # live, backfill or lost (None: no record)


@dataclass
class SimulationResult:
    config: SimulationConfig
    rows: list[SampleRow]
    events: list[dict[str, Any]]
    duplicates: int
    notifications_lost: int
    frame_errors: int
    end_min: float
