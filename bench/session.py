"""A whole 10.5-day G7 session end to end: sensor chain, transmitter, link, receiver
(collector, display, alerts), on the in-memory link (aim: under 0.5 s wall on one core) and over
the BLE host stack in virtual time (aim: under 10 s, stretch 5 s), with the values sent over the
air per second of wall time.

Baselines, measured in the same run: the transmitter alone over the same session
(``bench.transmitter``), so the ratio shows what the receiver, link and sensor chain add; and
for the BLE link, the memory link's time for the same session.
"""

from __future__ import annotations

from bench import transmitter
from firmware.profiles import G7
from sim import ble_world, world
from sim.session.config import Faults, SimulationConfig


def main() -> None:
    clean = SimulationConfig()
    faulty = SimulationConfig(
        faults=Faults(loss=0.3, outages_min=((600, 2040),), receiver_restarts=3)
    )
    inputs, calibration = transmitter.session_input()
    alone = transmitter.best(lambda: transmitter.run_session(inputs, calibration))
    simulated_s = G7.end_ms / 1000
    print(
        f"{'whole G7 session, memory link':40} {'wall s':>8} {'sim/wall':>11} {'vs tx alone':>12}"
    )
    for name, config in (("no faults", clean), ("30 % loss, 24 h outage, 3 restarts", faulty)):
        seconds = transmitter.best(lambda config=config: world.run(config), repeat=3)
        print(f"{name:40} {seconds:8.3f} {simulated_s / seconds:11,.0f} {seconds / alone:12.1f}")
    print(f"{'baseline: transmitter alone':40} {alone:8.3f}")
    print("aim: a whole session end to end under 0.5 s")
    print()
    print(
        f"{'whole G7 session, BLE link (bumble)':40} {'wall s':>8} {'values/s':>11} "
        f"{'vs memory':>12}"
    )
    for name, config in (("no faults", clean), ("30 % loss, 24 h outage, 3 restarts", faulty)):
        memory = transmitter.best(lambda config=config: world.run(config), repeat=3)
        stats: dict[str, int] = {}
        seconds = transmitter.best(
            lambda config=config, stats=stats: ble_world.run_ble(config, stats=stats), repeat=2
        )
        rate = stats["sent_over_air"] / seconds
        print(f"{name:40} {seconds:8.3f} {rate:11,.0f} {seconds / memory:12.1f}")
    print("aim: under 10 s (stretch 5 s) over the BLE stack")


if __name__ == "__main__":
    main()
