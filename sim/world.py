"""A whole simulated session on the in-memory link: ``sim.simulation.run`` with
``link="memory"`` (kept for the callers that name the memory driver)."""

from __future__ import annotations

import pathlib

from sim import simulation
from sim.session.bookkeeping import Progress
from sim.session.config import SimulationConfig
from sim.session.result import SimulationResult


def run(
    config: SimulationConfig,
    store_path: pathlib.Path | None = None,
    *,
    record: pathlib.Path | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """The session over the memory link (see ``sim.simulation.run`` for the arguments)."""
    return simulation.run(
        config, link="memory", store_path=store_path, record=record, progress=progress
    )


__all__ = ["run"]
