"""Basal and bolus settings titrated over a run-in, as clinicians titrate them.

The published virtual patients come with a basal rate (the steady-state infusion ``u2ss``), a
carbohydrate ratio and a correction factor (``quest.csv``); under daily life's meals those
settings leave many of them, children above all, hypoglycaemic much of the time — settings no
clinician would leave in place. Before a patient lives their sessions, their settings are
titrated over ``ROUNDS`` run-in periods of ``ROUND_DAYS`` days each (the patient's random days of
``sim.physiology.therapy``, from a fixed seed), adjusting after each as at a clinic visit:

- basal: down 10 % after a night (00:00-06:00) that went below 70 mg/dL, up 10 % after nights
  averaging above 150 mg/dL;
- meal and correction boluses (carbohydrate ratio and correction factor together): down 15 %
  when time below 70 mg/dL exceeds 4 %, up 10 % when it is under 1 % and mean glucose is
  above 154 mg/dL.

The targets are the international consensus's (time below 70 under 4 %: Battelino et al.,
Diabetes Care 42:1593, 2019) and an HbA1c of 7 %, i.e. a mean of 154 mg/dL (Nathan et al.,
ADAG, Diabetes Care 31:1473, 2008); the step sizes are ours. The result, one basal and one bolus
scale per published patient, is ``data/titration.csv`` (read by ``sim.physiology.titrated``);
``python -m sim.physiology.titration`` writes it again and a test checks that it is what the
titration gives.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.physiology.patients import Patients, load_patients, patient_names
from sim.physiology.source import ClosedLoop
from sim.physiology.therapy import (
    DEFAULT_PROFILE,
    MINUTES_PER_DAY,
    TherapyPlan,
    TherapyProfile,
    draw_plan,
)
from sim.physiology.titrated import TABLE

ROUNDS = 10
ROUND_DAYS = 2
SEED = 20190601  # the run-in's days, the same for every study
NIGHT_MIN = (0, 6 * 60)  # after midnight
LOW_MGDL, NIGHT_HIGH_MGDL = 70.0, 150.0
TBR_HIGH, TBR_LOW = 0.04, 0.01  # time below 70: too much, little enough to intensify
MEAN_TARGET_MGDL = 154.0
BASAL_DOWN, BASAL_UP = 0.9, 1.1
BOLUS_DOWN, BOLUS_UP = 0.85, 1.1


def titrate(
    patients: Patients,
    profiles: Sequence[TherapyProfile],
    rounds: int = ROUNDS,
    round_days: int = ROUND_DAYS,
    seed: int = SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Basal and bolus scales, shape ``(n,)`` each, after the run-in (module docstring);
    patient ``k`` lives ``profiles[k]``'s days."""
    rng = np.random.default_rng(seed)
    basal = np.ones(patients.n)
    bolus = np.ones(patients.n)
    minutes = round_days * MINUTES_PER_DAY
    day = np.arange(minutes + 1) % MINUTES_PER_DAY
    night = (day >= NIGHT_MIN[0]) & (day < NIGHT_MIN[1])
    night[:MINUTES_PER_DAY] = False  # the first night starts from the steady state
    for _ in range(rounds):
        plan = TherapyPlan.combine(
            [
                draw_plan(patients.take([k]), minutes, rng, profile, clock_start_min=0.0)
                for k, profile in enumerate(profiles)
            ]
        )
        loop = ClosedLoop(patients, plan, DEFAULT_PROFILE, basal_scale=basal, bolus_scale=bolus)
        glucose = loop.run(minutes)
        nights = glucose[:, night]
        low_night = nights.min(axis=1) < LOW_MGDL
        basal *= np.where(
            low_night, BASAL_DOWN, np.where(nights.mean(axis=1) > NIGHT_HIGH_MGDL, BASAL_UP, 1.0)
        )
        tbr = (glucose < LOW_MGDL).mean(axis=1)
        intensify = (tbr < TBR_LOW) & (glucose.mean(axis=1) > MEAN_TARGET_MGDL)
        bolus *= np.where(tbr > TBR_HIGH, BOLUS_DOWN, np.where(intensify, BOLUS_UP, 1.0))
    return basal, bolus


def titrate_published() -> dict[str, tuple[float, float]]:
    """Every published patient titrated, each living their cohort's days
    (``sim.physiology.cohorts``): name -> (basal scale, bolus scale)."""
    from sim.physiology.cohorts import cohort_profile

    names = patient_names()
    basal, bolus = titrate(load_patients(names), [cohort_profile(name) for name in names])
    return {n: (float(b), float(c)) for n, b, c in zip(names, basal, bolus, strict=True)}


def write_table(path: Path = TABLE) -> None:
    table = titrate_published()
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Name", "basal_scale", "bolus_scale"])
        for name in patient_names():
            out.writerow([name, *map(repr, table[name])])


if __name__ == "__main__":
    write_table()
