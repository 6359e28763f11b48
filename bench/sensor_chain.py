"""Sensor-days per second of the sensor chain against simglucose, measured in the same run.

Ours: 1,000 ``g7`` sensors x 10.5 days (issue 3), each on its own ``daily_life`` patient,
generated in chunks of ``StudyDesign.chunk_samples`` as ``cgmsim accuracy`` does, two ways:

- whole chain: scenario generation + ``SensorArray`` (construction and every chunk);
- sensor chain: ``SensorArray`` alone, fed by ``Precomputed`` reference glucose (the same
  ``daily_life`` numbers, computed before the clock starts).

Both are the best of ``REPEATS`` runs and give the same raw counts (checked), so they differ
only in what is timed. Rates are for one core.

The peer, simglucose (shared/spec/sensor-model.md, "Peer for speed"), runs in its own
environment, ``.venv-bench`` (``make bench`` creates it), via ``bench/simglucose_peer.py``: one
patient with its own Dexcom sensor, pump, random meals and basal-bolus controller (its
simulated days are its sensor-days), and the same Dexcom sensor alone on recorded glucose. If
the peer cannot run, the reason is printed and our numbers stand alone.

Environment: ``BENCH_PEER_PYTHON`` (default ``.venv-bench/bin/python``), ``BENCH_PEER_DAYS``
(simulated days for the peer, default 1.5: about 10-15 s here).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import peer
from sim.accuracy import StudyDesign
from sim.signal.grid import MINUTES_PER_DAY, SAMPLE_MIN
from sim.signal.models import SENSOR_MODELS
from sim.signal.scenarios import SCENARIOS, GlucoseSource
from sim.signal.sensor import COMPONENTS, SensorArray

SENSORS = 1_000
DAYS = 10.5
SAMPLES = round(DAYS * MINUTES_PER_DAY / SAMPLE_MIN)  # 3,024
MODEL = SENSOR_MODELS["g7"]
SCENARIO = SCENARIOS["daily_life"]
CHUNK = StudyDesign().chunk_samples
SEED = 1
REPEATS = 5
AIM = 30_000  # sensor-days per second for the sensor chain (issue 3)

PEER_SCRIPT = Path(__file__).resolve().parent / "simglucose_peer.py"
PEER_DAYS = float(os.environ.get("BENCH_PEER_DAYS", "1.5"))
PEER_TIMEOUT_S = 300


class _Slices:
    def __init__(self, glucose: np.ndarray) -> None:
        self.glucose, self.position = glucose, 0

    def next(self, length: int) -> np.ndarray:
        start, self.position = self.position, self.position + length
        return self.glucose[:, start : self.position]


@dataclass(frozen=True)
class Precomputed:
    """A ``GlucoseSource`` serving a precomputed ``(n, samples)`` array, slice by slice."""

    glucose: np.ndarray
    clock_start_min: float
    name: str = "precomputed"

    def start(self, n: int, samples: int, rng: np.random.Generator) -> _Slices:
        if n > self.glucose.shape[0] or samples > self.glucose.shape[1]:
            raise ValueError(f"precomputed {self.glucose.shape}, asked for ({n}, {samples})")
        return _Slices(self.glucose[:n, :samples])


def reference_glucose(scenario: GlucoseSource, n: int, samples: int, seed: int) -> np.ndarray:
    """What ``SensorArray(..., seed)`` draws from ``scenario``: the same generator (the first
    component of the spawned seed), in one chunk (the numbers do not depend on chunk size)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(len(COMPONENTS))[0])
    return scenario.start(n, samples, rng).next(samples)


def run_chain(source: GlucoseSource) -> tuple[float, int]:
    """Seconds for the whole run (construction and every chunk) and a checksum of raw counts."""
    began = time.perf_counter()
    array = SensorArray(MODEL, source, SENSORS, SAMPLES, SEED)
    checksum = 0
    for chunk in array.chunks(CHUNK):
        checksum += int(chunk.raw_counts.sum())
    return time.perf_counter() - began, checksum


def best_rate(source: GlucoseSource) -> tuple[float, int]:
    """Sensor-days per second, best of ``REPEATS``, and the checksum (the same every run)."""
    times, checksums = zip(*(run_chain(source) for _ in range(REPEATS)), strict=True)
    if len(set(checksums)) != 1:
        raise AssertionError(f"runs differ: checksums {checksums}")
    return SENSORS * DAYS / min(times), checksums[0]


def run_peer() -> tuple[dict[str, object] | None, str]:
    """The peer's JSON result, or ``None`` and why not."""
    return peer.run_peer([str(PEER_SCRIPT), "--days", str(PEER_DAYS)], PEER_TIMEOUT_S)


def main() -> None:
    precomputed = Precomputed(
        reference_glucose(SCENARIO, SENSORS, SAMPLES, SEED), SCENARIO.clock_start_min
    )
    whole, whole_sum = best_rate(SCENARIO)
    chain, chain_sum = best_rate(precomputed)
    if whole_sum != chain_sum:
        raise AssertionError("the precomputed source does not reproduce the scenario")

    peer, why = run_peer()
    peer_whole = peer["sensor_days_per_s"] if peer else None
    peer_sensor = peer["sensor_alone"]["sensor_days_per_s"] if peer else None

    title = f"sensor-days/s ({SENSORS:,} x {DAYS} d)"
    print(f"{title:34} {'cgmsim /s':>12} {'simglucose /s':>14} {'ratio':>9}")
    for name, ours, theirs in (
        (f"whole chain: {SCENARIO.name} + {MODEL.name}", whole, peer_whole),
        (f"sensor chain: {MODEL.name} on given BG", chain, peer_sensor),
    ):
        base = f"{theirs:14,.{3 if theirs < 10 else 1}f}" if theirs else f"{'n/a':>14}"
        ratio = f"{ours / theirs:9,.0f}" if theirs else f"{'n/a':>9}"
        print(f"{name:34} {ours:12,.0f} {base} {ratio}")
    print(f"aim: >= {AIM:,} sensor-days per second for the sensor chain on one core")
    if peer:
        alone, (low, high) = peer["sensor_alone"], peer["bg_range"]
        print(
            f"simglucose {peer['versions']['simglucose']}, whole chain: one patient, its whole "
            "simulation (patient ODE, sensor, pump, controller):\n"
            f"  {peer['patient']}, {peer['sensor']} sensor (every {peer['sensor_sample_min']:g} "
            f"min), {peer['pump']} pump, {peer['scenario']}, {peer['controller']}\n"
            f"  {peer['days']:g} d in {peer['seconds']:.1f} s; BG {low:.0f}-{high:.0f} mg/dL, "
            f"mean {peer['bg_mean']:.0f}; meals {peer['meals_g']:.0f} g\n"
            f"simglucose, sensor chain: its CGMSensor.measure once a minute for {alone['days']:g} "
            f"d on the recorded BG, best of {alone['repeats']}"
        )
    else:
        print(f"simglucose: not measured: {why}")


if __name__ == "__main__":
    main()
