"""cgmsim fuzz throughput per target, against a baseline measured in the same run.

Baselines: for the decoder, the bare decode loop over the same inputs (no generation,
mutation or bookkeeping); for each core, the same episodes executed again without the
generation cost. The ratio says what the engine's generation and mutation cost on top of the
work under test. Aims (issue 8): >= 20,000 decoder inputs/s, >= 5,000 core inputs/s, one CPU.

Over ``--link ble`` (bumble's in-process link on the virtual clock, pairing per episode) the
baseline is the same target over the memory link, measured in the same run: the ratio is what
the BLE stack costs. No aim: it is meant to be much slower.
"""

from __future__ import annotations

import random
import time

from protocol.cgms.codecs import CODECS
from protocol.errors import FrameError
from sim.fuzz import engine
from sim.fuzz.targets import make_target

ITERATIONS = {"decoder": 100_000, "transmitter": 20_000, "receiver": 10_000}
AIMS = {"decoder": 20_000, "transmitter": 5_000, "receiver": 5_000}
BLE_ITERATIONS = {"transmitter": 1_000, "receiver": 1_000}
BLE_EPISODE = 50


def bare_decode_rate(actions: list[list[object]]) -> float:
    inputs = [
        (CODECS[name].decode, bytes.fromhex(value[4:]), mode) for name, mode, value in actions
    ]
    start = time.perf_counter()
    for decode, data, mode in inputs:
        try:  # noqa: SIM105 - contextlib.suppress costs more than the decode in this loop
            decode(data, mode)
        except FrameError:
            pass
    return len(inputs) / (time.perf_counter() - start)


def execute_rate(target: engine.Target, episodes: list[list[list[object]]]) -> float:
    start = time.perf_counter()
    ran = sum(target.execute(actions)[0] for actions in episodes)
    return ran / (time.perf_counter() - start)


def main() -> None:
    print(
        f"{'cgmsim fuzz':17} {'engine /s':>11} {'baseline /s':>12} {'ratio':>6} "
        f"{'aim /s':>8}  baseline"
    )
    for name, iterations in ITERATIONS.items():
        target = make_target(name)
        report = engine.campaign(target, iterations, seed=1)
        rng = random.Random(1)
        if name == "decoder":
            actions = target.generate(rng, iterations)
            base, label = bare_decode_rate(actions), "bare decode loop"
        else:
            episodes = [target.generate(rng, 200) for _ in range(iterations // 200)]
            base, label = execute_rate(target, episodes), "execute only"
        rate = report.iterations_per_second
        print(
            f"{name:17} {rate:11,.0f} {base:12,.0f} {rate / base:6.2f} {AIMS[name]:8,}  {label}"
            + ("" if not report.failures else f"  ({report.unique_failures} failures!)")
        )
    for name, iterations in BLE_ITERATIONS.items():
        over_ble = engine.campaign(
            make_target(name, "ble"), iterations, seed=1, episode_length=BLE_EPISODE
        )
        memory = engine.campaign(make_target(name), iterations, seed=1, episode_length=BLE_EPISODE)
        rate, base = over_ble.iterations_per_second, memory.iterations_per_second
        print(
            f"{name + ' (ble)':17} {rate:11,.0f} {base:12,.0f} {rate / base:6.2f} {'-':>8}  "
            "same target over the memory link"
            + ("" if not over_ble.failures else f"  ({over_ble.unique_failures} failures!)")
        )


if __name__ == "__main__":
    main()
