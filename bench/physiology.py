"""The vectorised UVA/Padova model against simglucose: same patients, meals and insulin.

Inputs (one value per minute, open loop, identical in both): a day of meals drawn by
``sim.physiology.therapy.draw_plan`` (simglucose's ``RandomScenario`` slots), basal at each
patient's steady-state rate, and a bolus ``counted carbs/CR`` in the minute the patient takes
it (carb-counting errors, missed and late boluses included; no correction, which would need
each model's own glucose; no exercise, which simglucose lacks).

- Agreement: blood (plasma) glucose ``Gp/Vg`` every minute over 24 h for ``PEER_PATIENTS``;
  RMS and largest difference per patient (aim: RMS < 3 mg/dL, issue 9).
- Speed: patient-days per second. Ours: ``POPULATION`` patients (the 30 cycled) in one
  vectorised run, best of ``REPEATS``; simglucose: its ``T1DPatient.step`` loop (one patient at
  a time, scipy ``dopri5``), the time of its stepping only. Aim: >= 1,000x per patient-day.

The peer runs in ``.venv-bench`` via ``bench/physiology_peer.py`` (as ``bench.sensor_chain``
does); if it cannot run, the reason is printed and our numbers stand alone.
Environment: ``BENCH_PEER_PYTHON`` (default ``.venv-bench/bin/python``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench import peer
from sim.physiology.model import simulate
from sim.physiology.patients import Patients, load_patients, patient_names
from sim.physiology.source import parse_patient_scenario
from sim.physiology.therapy import TherapyProfile, draw_plan

PEER_PATIENTS = ("adolescent#001", "adult#001", "adult#006", "child#001", "child#007")
POPULATION = 1_000
MINUTES = 1_440
SEED = 1
REPEATS = 3
AIM_RMS, AIM_RATIO = 3.0, 1_000
PROFILE = TherapyProfile(exercise_probability=0.0)
CLOCK_START_MIN = 6 * 60.0  # before breakfast: the day holds every meal slot

PEER_SCRIPT = Path(__file__).resolve().parent / "physiology_peer.py"
PEER_TIMEOUT_S = 600


def open_loop_inputs(patients: Patients, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Carbohydrate announced (g) and insulin (U/min) per patient and minute, ``(n, MINUTES)``."""
    plan = draw_plan(patients, MINUTES, np.random.default_rng(seed), PROFILE, CLOCK_START_MIN)
    carbs = np.zeros((patients.n, MINUTES))
    insulin = np.repeat(patients.basal_u_per_min[:, None], MINUTES, axis=1)
    meals = plan.meals.minute < MINUTES
    np.add.at(carbs, (plan.meals.patient[meals], plan.meals.minute[meals]), plan.meals.value[meals])
    bolus = plan.boluses.minute < MINUTES
    who = plan.boluses.patient[bolus]
    units = plan.boluses.value[bolus] / patients.CR[who]
    np.add.at(insulin, (who, plan.boluses.minute[bolus]), units)
    return carbs, insulin


def run_peer(patients: Patients, carbs: np.ndarray, insulin: np.ndarray) -> tuple[dict | None, str]:
    request = {
        "runs": [
            {
                "patient": name,
                "carbs_g": carbs[i].tolist(),
                "insulin_u_per_min": insulin[i].tolist(),
            }
            for i, name in enumerate(patients.names)
        ]
    }
    return peer.run_peer([str(PEER_SCRIPT)], PEER_TIMEOUT_S, json.dumps(request))


def our_rate() -> tuple[float, float]:
    """Patient-days per second for ``POPULATION`` patients, best of ``REPEATS``; and a checksum."""
    names = patient_names()
    patients = load_patients(names[i % len(names)] for i in range(POPULATION))
    carbs, insulin = open_loop_inputs(patients, SEED)
    best, sums = float("inf"), set()
    for _ in range(REPEATS):
        began = time.perf_counter()
        glucose = simulate(patients, carbs, insulin, counter_regulation=False)
        best = min(best, time.perf_counter() - began)
        sums.add(float(glucose.sum()))
    if len(sums) != 1:
        raise AssertionError(f"runs differ: {sums}")
    return POPULATION * MINUTES / 1440 / best, sums.pop()


def closed_loop_rate() -> float:
    """Patient-days per second of ``patient:all`` as a glucose source (therapy decided minute
    by minute, correction boluses, exercise), ``POPULATION`` streams, one day, 5-min samples."""
    source = parse_patient_scenario("patient:all")
    began = time.perf_counter()
    source.start(POPULATION, 288, np.random.default_rng(SEED)).next(288)
    return POPULATION / (time.perf_counter() - began)


def main() -> None:
    patients = load_patients(PEER_PATIENTS)
    carbs, insulin = open_loop_inputs(patients, SEED)
    ours = simulate(patients, carbs, insulin, counter_regulation=False)
    rate, _ = our_rate()
    peer, why = run_peer(patients, carbs, insulin)

    print(f"physiology: UVA/Padova T1D model, {MINUTES / 60:g} h, same meals and insulin")
    print(
        f"{'patient':16} {'meals g':>8} {'bolus U':>8} {'BG range':>10} {'RMS diff':>9} {'max':>7}"
    )
    peer_days_per_s = None
    if peer:
        for i, run in enumerate(peer["runs"]):
            theirs = np.array(run["glucose"])
            diff = ours[i] - theirs
            bolus_u = (insulin[i] - patients.basal_u_per_min[i]).sum()
            print(
                f"{run['patient']:16} {carbs[i].sum():8.0f} {bolus_u:8.1f} "
                f"{theirs.min():4.0f}-{theirs.max():<5.0f} {np.sqrt(np.mean(diff**2)):9.4f} "
                f"{np.abs(diff).max():7.3f}"
            )
        seconds = sum(run["seconds"] for run in peer["runs"])
        peer_days_per_s = len(peer["runs"]) * MINUTES / 1440 / seconds
        print(f"aim: RMS < {AIM_RMS:g} mg/dL (differences in mg/dL, blood glucose every minute)")
    else:
        print(f"simglucose: not measured: {why}")
    print(f"\n{'patient-days/s':34} {'cgmsim /s':>12} {'simglucose /s':>14} {'ratio':>9}")
    base = f"{peer_days_per_s:14.3f}" if peer_days_per_s else f"{'n/a':>14}"
    ratio = f"{rate / peer_days_per_s:9,.0f}" if peer_days_per_s else f"{'n/a':>9}"
    print(f"{f'{POPULATION:,} patients vectorised (1 core)':34} {rate:12,.0f} {base} {ratio}")
    loop = closed_loop_rate()
    theirs = f"{loop / peer_days_per_s:9,.0f}" if peer_days_per_s else f"{'n/a':>9}"
    print(f"{'  as patient:all source (closed loop)':34} {loop:12,.0f} {base} {theirs}")
    print(f"aim: >= {AIM_RATIO:,}x per patient-day")
    if peer:
        versions = ", ".join(f"{k} {v}" for k, v in peer["versions"].items())
        print(f"simglucose: T1DPatient.step once a minute, one patient at a time ({versions})")


if __name__ == "__main__":
    main()
