"""A whole 10.5-day G7 session end to end on the in-memory link: sensor chain, transmitter,
link, receiver (collector, display, alerts). Aim: under 0.5 s wall on one core.

Baseline, measured in the same run: the transmitter alone over the same session
(``bench.transmitter``), so the ratio shows what the receiver, link and sensor chain add.
"""

from __future__ import annotations

from bench import transmitter
from firmware.profiles import G7
from sim import world


def main() -> None:
    clean = world.SimulationConfig()
    faulty = world.SimulationConfig(
        faults=world.Faults(loss=0.3, outages_min=((600, 2040),), receiver_restarts=3)
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


if __name__ == "__main__":
    main()
