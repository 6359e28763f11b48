"""The simglucose peer for ``bench.sensor_chain``; runs under ``.venv-bench/bin/python``.

simglucose (PyPI 0.2.11) lives only in the bench environment (its pins, gym and gymnasium among
them, would clash with ours), so ``bench/sensor_chain.py`` starts this script there and reads
one JSON object from its last line of standard output. Standard library and simglucose only:
nothing from cgmsim is importable here.

Two measurements, single process, nothing written to disk (no plotting, no ``save_results``, no
pathos batch runner):

- ``simulation``: one virtual patient with its own Dexcom sensor (Breton noise, 3-min sample
  time), an Insulet pump, ``RandomScenario`` meals and the basal-bolus controller, stepped by
  ``SimObj.simulate`` (the engine the simglucose user interface uses) for ``--days``. One
  patient, so sensor-days are simulated days.
- ``sensor``: the same ``CGMSensor`` alone, called once per simulated minute as the environment
  calls it, on the blood glucose recorded during the simulation (repeated as needed); best of
  three.

Usage: ``python bench/simglucose_peer.py [--days 1.5] [--sensor-days 60]
[--patient adolescent#001] [--seed 1]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from importlib import metadata
from itertools import cycle
from types import SimpleNamespace

from simglucose.actuator.pump import InsulinPump
from simglucose.controller.basal_bolus_ctrller import BBController
from simglucose.patient.t1dpatient import T1DPatient
from simglucose.sensor.cgm import CGMSensor
from simglucose.simulation.env import T1DSimEnv
from simglucose.simulation.scenario_gen import RandomScenario
from simglucose.simulation.sim_engine import SimObj

MINUTES_PER_DAY = 1440
START = datetime(2024, 1, 1, 0, 0)  # midnight: RandomScenario draws each day's meals then


def simulate(patient_name: str, days: float, seed: int) -> tuple[dict[str, object], list[float]]:
    began = time.perf_counter()
    patient = T1DPatient.withName(patient_name)
    sensor = CGMSensor.withName("Dexcom", seed=seed)
    pump = InsulinPump.withName("Insulet")
    scenario = RandomScenario(start_time=START, seed=seed)
    env = T1DSimEnv(patient, sensor, pump, scenario)
    run = SimObj(env, BBController(), timedelta(days=days), animate=False, path=None)
    ready = time.perf_counter()
    run.simulate()
    done = time.perf_counter()
    bg = [float(x) for x in env.BG_hist]
    cgm = [float(x) for x in env.CGM_hist]
    result = {
        "patient": patient_name,
        "sensor": sensor.name,
        "sensor_sample_min": float(sensor.sample_time),
        "pump": "Insulet",
        "scenario": f"RandomScenario(seed={seed}) from {START:%H:%M}",
        "controller": "BBController(target=140)",
        "days": days,
        "setup_s": ready - began,
        "seconds": done - ready,
        "sensor_days_per_s": days / (done - ready),
        "samples": len(cgm),
        "meals_g": sum(env.CHO_hist) * env.sample_time,
        "bg_mean": sum(bg) / len(bg),
        "bg_range": [min(bg), max(bg)],
        "cgm_mean": sum(cgm) / len(cgm),
    }
    return result, bg


def sensor_alone(bg: list[float], days: float, seed: int, repeats: int = 3) -> dict[str, object]:
    """``CGMSensor.measure`` once a minute (the environment's patient step) on recorded BG;
    best of ``repeats``."""
    sensor = CGMSensor.withName("Dexcom", seed=seed)
    patient = SimpleNamespace(t=0, observation=SimpleNamespace(Gsub=bg[0]))
    hold = int(sensor.sample_time)  # BG_hist holds one value per sensor sample
    minutes = int(days * MINUTES_PER_DAY)
    best = float("inf")
    for _ in range(repeats):
        sensor.reset()
        values = cycle(bg)
        began = time.perf_counter()
        for minute in range(minutes):
            if minute % hold == 0:
                patient.observation = SimpleNamespace(Gsub=next(values))
            patient.t = minute
            sensor.measure(patient)
        best = min(best, time.perf_counter() - began)
    return {"days": days, "seconds": best, "sensor_days_per_s": days / best, "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.5)
    parser.add_argument("--sensor-days", type=float, default=60.0)
    parser.add_argument("--patient", default="adolescent#001")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result, bg = simulate(args.patient, args.days, args.seed)
    result["sensor_alone"] = sensor_alone(bg, args.sensor_days, args.seed)
    result["versions"] = {
        name: metadata.version(name) for name in ("simglucose", "numpy", "scipy", "pandas")
    }
    result["python"] = sys.version.split()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
