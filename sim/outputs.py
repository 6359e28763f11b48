"""What ``cgmsim simulate`` writes: summary.json, readings.csv, events.jsonl, session.png
(file formats: shared/design/cli.md; session.png is drawn by ``sim.rundir.plots``)."""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections import Counter
from typing import Any

import numpy as np

from firmware.profiles import MINUTE_MS
from sim.rundir.glycemia import displayed_accuracy
from sim.session.result import SimulationResult

READINGS_COLUMNS = (
    "time_offset_min",
    "reference_mgdl",
    "sensor_mgdl",
    "displayed",
    "trend_mgdl_min",
    "arrow",
    "delivery",
)


def summary(result: SimulationResult, link: str, wall_seconds: float) -> dict[str, Any]:
    profile = result.config.profile
    rows = result.rows
    generated = [r for r in rows if r.sensor_mgdl is not None]
    delivered = Counter(r.delivery for r in generated)
    displayed = [r for r in rows if r.displayed is not None]
    alerts = Counter(e["alert"] for e in result.events if e["kind"] == "alert_raised")
    scored, outside = displayed_accuracy(
        np.array([r.reference_mgdl for r in displayed], dtype=float),
        np.array([math.nan if r.sensor_mgdl is None else r.sensor_mgdl for r in displayed]),
    )
    return {
        "profile": profile.name,
        "seed": result.config.seed,
        "link": link,
        "reference": result.config.source.name,
        "ideal_sensor": result.config.ideal_sensor,
        "settings": settings(result.config),
        "session": {
            "warmup_end_min": profile.warmup_ms / MINUTE_MS,
            "expiry_min": profile.session_ms / MINUTE_MS,
            "grace_end_min": profile.end_ms / MINUTE_MS if profile.grace_ms else None,
            "simulated_min": result.end_min,
            # wall clock at session time 0 (no zone: UTC); reports and exports date readings by it
            "clock_at_zero": result.config.clock_at_zero.isoformat(),
        },
        "readings": {
            "generated": len(generated),
            "delivered_live": delivered.get("live", 0),
            "backfilled": delivered.get("backfill", 0),
            "displayed": len(displayed),
            "lost": delivered.get("lost", 0),
            "duplicates": result.duplicates,
            "first_displayed_min": displayed[0].time_offset_min if displayed else None,
            "last_displayed_min": displayed[-1].time_offset_min if displayed else None,
        },
        "alerts": dict(sorted(alerts.items())),
        "accuracy": {
            "mard": scored.mard if scored else None,
            "within_15_15": scored.within_15_15 if scored else None,
            "within_20_20": scored.within_20_20 if scored else None,
            "within_40_40": scored.within_40_40 if scored else None,
            "pairs": scored.pairs if scored else 0,
            "pairs_outside_range": outside,  # reference outside 40-400 mg/dL: not scored
        },
        "link_stats": {
            "notifications_lost": result.notifications_lost,
            "frame_errors": result.frame_errors,
        },
        "wall_seconds": wall_seconds,
    }


def settings(config: Any) -> dict[str, Any]:
    """What the run was asked for beyond profile, seed, reference and sensor: its length, the
    faults on the link, E2E-CRC and the simulated user (``cgmsim simulate`` options)."""
    faults = config.faults
    return {
        "days": config.days,  # None: the whole session, grace included
        "faults": {
            "loss": faults.loss,
            "outages_min": [list(window) for window in faults.outages_min],
            "receiver_restarts": faults.receiver_restarts,
        },
        "e2e_crc": config.e2e_crc,
        "acknowledge_after_min": config.acknowledge_after_min,  # None: nobody acknowledges
    }


def write_all(
    out: pathlib.Path, result: SimulationResult, summary_data: dict[str, Any], plot: bool
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary_data, indent=2) + "\n")
    with (out / "readings.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(READINGS_COLUMNS)
        for row in result.rows:
            if row.time_offset_min > result.end_min:
                break
            writer.writerow(
                [
                    row.time_offset_min,
                    repr(row.reference_mgdl),  # unrounded: the report scores what we scored
                    "" if row.sensor_mgdl is None else f"{row.sensor_mgdl:g}",
                    row.displayed or "",
                    "" if row.trend_mgdl_min is None else f"{row.trend_mgdl_min:g}",
                    row.arrow or "",
                    row.delivery or "",
                ]
            )
    with (out / "events.jsonl").open("w") as handle:
        for event in result.events:
            handle.write(json.dumps(event) + "\n")
    if plot:
        plot_session(out)


def plot_session(out: pathlib.Path) -> None:
    """Draw ``out``/session.png from the files just written there (sim.rundir.plots), so the
    picture shows exactly what the run directory holds and any past run can be redrawn."""
    from sim.rundir.files import load_run
    from sim.rundir.plots import session_figure

    session_figure(load_run(out)).savefig(out / "session.png")
