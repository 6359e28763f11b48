"""A whole simulated session over the real BLE host stack: ``sim.simulation.run`` with
``link="ble"`` (the receiver on bumble) or ``link="bleak"`` (the receiver through the bleak
API), kept for the callers that name the BLE driver."""

from __future__ import annotations

import pathlib

from sim import simulation
from sim.session.bookkeeping import Progress
from sim.session.config import SimulationConfig
from sim.session.result import SimulationResult

LINK_OF_API = {api: link for link, api in simulation.RECEIVER_APIS.items()}


def run_ble(
    config: SimulationConfig,
    capture: pathlib.Path | None = None,
    store_path: pathlib.Path | None = None,
    *,
    stats: dict[str, int] | None = None,
    receiver_api: str = "bumble",
    record: pathlib.Path | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """The session over bumble (see ``sim.simulation.run`` for the arguments); the receiver
    drives bumble directly (``"bumble"``) or goes through the bleak API (``"bleak"``)."""
    if receiver_api not in LINK_OF_API:
        raise ValueError(f"receiver_api is bumble or bleak, not {receiver_api!r}")
    return simulation.run(
        config,
        link=LINK_OF_API[receiver_api],
        store_path=store_path,
        record=record,
        capture=capture,
        progress=progress,
        stats=stats,
    )
