"""A population study end to end: plan the sessions, run them (``sim.population.cluster``),
aggregate (``sim.population.aggregate``), write population.json and population.png."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

from sim.population.aggregate import summarise
from sim.population.cluster import Progress, Runner
from sim.population.names import JSON_NAME, PNG_NAME
from sim.population.sessions import plan


def run_study(
    patients: int,
    *,
    days: float | None,
    seed: int,
    profile: str = "g7",
    cohort: str = "all",
    runner: Runner | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """population.json's content. Everything but ``runner`` and ``wall_seconds`` depends only
    on the arguments (not on the runner)."""
    runner = runner or Runner()
    specs = plan(patients, seed, days, profile, cohort)
    started = time.perf_counter()
    outcomes = runner.run(specs, progress)
    wall = time.perf_counter() - started
    return {
        "patients": patients,
        "cohort": cohort,
        "profile": profile,
        "days": days,
        "seed": seed,
        **summarise(outcomes),
        "runner": runner.describe(),
        "wall_seconds": wall,
    }


def write_outputs(out: pathlib.Path, data: dict[str, Any], plot: bool = True) -> None:
    """``out``/population.json and, with ``plot``, ``out``/population.png."""
    from sim.population.figure import write_figure

    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_NAME).write_text(json.dumps(data, indent=2) + "\n")
    if plot:
        write_figure(data, out / PNG_NAME)
