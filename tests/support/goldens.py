"""The golden recordings under tests/data/, replayed in CI (tests/sim/test_goldens.py).

Regenerate them after a deliberate change of behaviour (docs/recording.md)::

    .venv/bin/python -m tests.support.goldens
"""

from __future__ import annotations

import pathlib

from sim import simulation
from sim.session.config import Faults, SimulationConfig
from sim.signal.scenarios import SCENARIOS

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"

# file name -> (link, what the run was)
GOLDENS: dict[str, tuple[str, SimulationConfig]] = {
    # a day of an ideal sensor over the memory link: warm-up, readings, a night's low and
    # urgent-low-soon alerts, a high, and the simulated user acknowledging them
    "memory-1day-ideal.jsonl.gz": (
        "memory",
        SimulationConfig(
            days=1.0,
            seed=3,
            source=SCENARIOS["nocturnal_hypo"],
            ideal_sensor=True,
            acknowledge_after_min=10,
        ),
    ),
    # half a day over the BLE stack with lost notifications, an outage and a receiver restart
    "ble-halfday-faults.jsonl.gz": (
        "ble",
        SimulationConfig(
            days=0.5,
            seed=2,
            faults=Faults.parse("loss=0.1,outage=150:240,receiver_restart=1"),
        ),
    ),
}


def record(name: str, target: pathlib.Path) -> None:
    link, config = GOLDENS[name]
    simulation.run(config, link=link, record=target)


def main() -> None:
    for name in GOLDENS:
        record(name, DATA / name)
        print(f"{DATA / name}: {(DATA / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
