"""Meals, basal-bolus therapy and exercise for ``n`` patients, drawn up front from a Generator.

Meals follow simglucose 0.2.11's ``RandomScenario``: six daily slots (breakfast, snack, lunch,
snack, dinner, snack) with probabilities 0.95/0.3/0.95/0.3/0.95/0.3, times normal around
07:00/09:30/12:00/15:00/18:00/21:30 (SD 60/30/60/30/60/30 min, truncated to their windows) and
amounts normal 45/10/70/10/80/10 g (SD 10/5/10/5/10/5 g).

Therapy is the basal-bolus regimen of simglucose's ``BBController``: basal at the patient's
steady-state rate ``u2ss·BW/6000`` U/min; a meal bolus ``carbs/CR``, plus ``(BG - 140)/CF`` when
BG > 150 mg/dL, from the patient's questionnaire (``quest.csv``). BG is the plasma glucose at the
minute of the bolus (a meter reading), a correction sized as if BG were at most 300 mg/dL.
With ``titrated`` (the default) basal and boluses are the patient's titrated settings
(``sim.physiology.titration``). On top of it, what real patients do:

- carb-counting error: the bolus uses ``carbs·exp(N(0, carb_error_sd))``, default 0.35 (the
  per-meal error measured by Brazeau et al., Eur J Clin Nutr 67:1220, 2013, is about 20 % of
  the meal; the rest stands in for variability the model lacks, ``sim.physiology.cohorts``);
- missed boluses (``missed_bolus_probability``, 10 %), late boluses (``late_bolus_probability``,
  25 %, given 15-60 min after the meal starts) — *tuning*, not published figures;
- exercise on ``exercise_probability`` of days around 17:00 (SD 90 min), 30-60 min at 40-70 % of
  heart-rate reserve (``sim.physiology.exercise``).

Snacks (the 10 g slots) get a bolus like any meal. Events before the session start are dropped.

Hypoglycaemia felt is treated (``sim.physiology.source.ClosedLoop``): below ``symptoms_mgdl``
(58 mg/dL, the glycaemic threshold of autonomic symptoms: Schwartz et al., J Clin Invest 79:777,
1987) the patient eats 15-20 g of fast carbohydrate (the "rule of 15": ADA Standards of Care,
section 6) and again after ``recheck_min`` (15) minutes while still low. A quarter of patients
have impaired awareness of hypoglycaemia (20-25 % of adults with type 1 diabetes: Geddes et al.,
Diabet Med 25:501, 2008) and feel it only below 50 mg/dL (our choice). This is the person's own
sense of a low; treating on the receiver's alerts needs the session loop and is not modelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.physiology.exercise import heart_rate_excess
from sim.physiology.patients import Patients

MINUTES_PER_DAY = 1440
TREATMENTS = 256  # hypoglycaemia treatments drawn per patient and run (more reuse the last)


@dataclass(frozen=True, slots=True)
class MealSlot:
    mean_min: float  # time of day
    sd_min: float
    earliest_min: float
    latest_min: float
    mean_g: float
    sd_g: float
    probability: float
    bolus_factor: float = 1.0  # the patient boluses for this many times what they counted


# simglucose 0.2.11, simulation/scenario_gen.py, RandomScenario.create_scenario
RANDOM_SCENARIO_SLOTS = (
    MealSlot(7 * 60, 60, 5 * 60, 9 * 60, 45, 10, 0.95),
    MealSlot(9.5 * 60, 30, 9 * 60, 10 * 60, 10, 5, 0.3),
    MealSlot(12 * 60, 60, 10 * 60, 14 * 60, 70, 10, 0.95),
    MealSlot(15 * 60, 30, 14 * 60, 16 * 60, 10, 5, 0.3),
    MealSlot(18 * 60, 60, 16 * 60, 20 * 60, 80, 10, 0.95),
    MealSlot(21.5 * 60, 30, 20 * 60, 23 * 60, 10, 5, 0.3),
)


@dataclass(frozen=True, slots=True)
class TherapyProfile:
    """How meals, boluses and exercise are drawn (defaults as in the module docstring)."""

    slots: tuple[MealSlot, ...] = RANDOM_SCENARIO_SLOTS
    carb_error_sd: float = 0.35
    missed_bolus_probability: float = 0.1
    late_bolus_probability: float = 0.25
    late_bolus_min: tuple[float, float] = (15.0, 60.0)
    target_mgdl: float = 140.0
    correct_above_mgdl: float = 150.0
    # a correction is sized as if glucose were at most this: a very high reading is corrected
    # in steps (our choice; a full correction from 600 mg/dL crashes the model's patients)
    correct_at_most_mgdl: float = 300.0
    exercise_probability: float = 0.3
    exercise_time_min: float = 17 * 60.0
    exercise_sd_min: float = 90.0
    exercise_duration_min: tuple[float, float] = (30.0, 60.0)
    exercise_intensity: tuple[float, float] = (0.4, 0.7)
    basal_factor: float = 1.0  # basal insulin as a fraction of the steady-state rate
    titrated: bool = True  # settings titrated over a run-in (sim.physiology.titration)
    symptoms_mgdl: float = 58.0  # hypoglycaemia felt and treated below this
    impaired_awareness_probability: float = 0.25
    impaired_symptoms_mgdl: float = 50.0
    treatment_g: tuple[float, float] = (15.0, 20.0)  # fast carbohydrate per treatment
    recheck_min: int = 15  # treat again if still low this long after a treatment


DEFAULT_PROFILE = TherapyProfile()


@dataclass(frozen=True, eq=False)
class MinuteEvents:
    """Events ``(patient, minute, value)`` sorted by minute, looked up minute by minute."""

    patient: np.ndarray
    minute: np.ndarray
    value: np.ndarray

    @classmethod
    def of(cls, patient: np.ndarray, minute: np.ndarray, value: np.ndarray) -> MinuteEvents:
        keep = minute >= 0
        order = np.argsort(minute[keep], kind="stable")
        return cls(
            np.asarray(patient[keep][order], np.int64),
            np.asarray(minute[keep][order], np.int64),
            np.asarray(value[keep][order], float),
        )

    def at(self, minute: int) -> slice:
        lo, hi = np.searchsorted(self.minute, [minute, minute + 1])
        return slice(int(lo), int(hi))


@dataclass(frozen=True, eq=False)
class TherapyPlan:
    """Every meal, bolus decision and exercise bout of a run (minutes from session start)."""

    meals: MinuteEvents  # carbohydrate announced, g
    boluses: MinuteEvents  # carbohydrate the patient counts for this bolus, g
    exercise: MinuteEvents  # heart rate above rest from this minute on, bpm (0 ends a bout)
    treatment_g: np.ndarray  # (n, TREATMENTS): fast carbohydrate of each hypoglycaemia treatment
    symptoms_mgdl: np.ndarray  # (n,): glucose below which the patient feels low and treats

    @classmethod
    def combine(cls, plans: Sequence[TherapyPlan]) -> TherapyPlan:
        """One plan for the patients of ``plans`` side by side: patient 0 of ``plans[k]``
        becomes patient ``k`` (each plan is for a single patient)."""

        def joined(name: str) -> MinuteEvents:
            parts = [getattr(plan, name) for plan in plans]
            return MinuteEvents.of(
                np.concatenate([np.full(len(e.minute), k, np.int64) for k, e in enumerate(parts)]),
                np.concatenate([e.minute for e in parts]),
                np.concatenate([e.value for e in parts]),
            )

        return cls(
            joined("meals"),
            joined("boluses"),
            joined("exercise"),
            np.concatenate([plan.treatment_g for plan in plans]),
            np.concatenate([plan.symptoms_mgdl for plan in plans]),
        )


def draw_plan(
    patients: Patients,
    minutes: int,
    rng: np.random.Generator,
    profile: TherapyProfile = DEFAULT_PROFILE,
    clock_start_min: float = 0.0,
) -> TherapyPlan:
    """Meals, boluses and exercise for ``patients`` over ``minutes`` from a session starting at
    ``clock_start_min`` after midnight."""
    n = patients.n
    days = int(np.ceil((minutes + clock_start_min) / MINUTES_PER_DAY)) + 1
    midnights = np.arange(days)[None, :] * MINUTES_PER_DAY - clock_start_min
    rows = np.broadcast_to(np.arange(n)[:, None], (n, days))
    meal_p: list[np.ndarray] = [np.zeros(0, np.int64)]
    meal_t: list[np.ndarray] = [np.zeros(0)]
    meal_g: list[np.ndarray] = [np.zeros(0)]
    meal_f: list[np.ndarray] = [np.zeros(0)]
    for slot in profile.slots:
        happens = rng.random((n, days)) < slot.probability
        time = np.clip(
            slot.mean_min + slot.sd_min * rng.standard_normal((n, days)),
            slot.earliest_min,
            slot.latest_min,
        )
        grams = np.maximum(np.round(slot.mean_g + slot.sd_g * rng.standard_normal((n, days))), 0)
        happens &= grams > 0
        meal_p.append(rows[happens])
        meal_t.append(np.round(midnights + time)[happens])
        meal_g.append(grams[happens])
        meal_f.append(np.full(int(happens.sum()), slot.bolus_factor))
    patient = np.concatenate(meal_p)
    start = np.concatenate(meal_t).astype(np.int64)
    grams = np.concatenate(meal_g)
    count = len(grams)
    counted = grams * np.exp(profile.carb_error_sd * rng.standard_normal(count))
    counted *= np.concatenate(meal_f)
    missed = rng.random(count) < profile.missed_bolus_probability
    late = rng.random(count) < profile.late_bolus_probability
    delay = np.round(rng.uniform(*profile.late_bolus_min, count)) * late
    given = ~missed & (start >= 0)  # no bolus for a meal eaten before the session

    bout = rng.random((n, days)) < profile.exercise_probability
    bout_start = np.round(
        midnights
        + profile.exercise_time_min
        + profile.exercise_sd_min * rng.standard_normal((n, days))
    )
    duration = np.round(rng.uniform(*profile.exercise_duration_min, (n, days)))
    intensity = rng.uniform(*profile.exercise_intensity, (n, days))
    hr = heart_rate_excess(intensity, patients.age[:, None])
    ex_patient, ex_start = rows[bout], bout_start[bout].astype(np.int64)
    ex_stop = ex_start + duration[bout].astype(np.int64)
    return TherapyPlan(
        meals=MinuteEvents.of(patient, start, grams),
        boluses=MinuteEvents.of(patient[given], (start + delay)[given], counted[given]),
        exercise=MinuteEvents.of(
            np.concatenate([ex_patient, ex_patient]),
            np.concatenate([ex_start, ex_stop]),
            np.concatenate([hr[bout], np.zeros(len(ex_stop))]),
        ),
        treatment_g=np.round(rng.uniform(*profile.treatment_g, (n, TREATMENTS))),
        symptoms_mgdl=np.where(
            rng.random(n) < profile.impaired_awareness_probability,
            profile.impaired_symptoms_mgdl,
            profile.symptoms_mgdl,
        ),
    )


def bolus_units(
    patients: Patients,
    index: np.ndarray,
    counted_g: np.ndarray,
    glucose_mgdl: np.ndarray,
    profile: TherapyProfile,
) -> np.ndarray:
    """simglucose's ``BBController`` bolus for patients ``index``: ``carbs/CR`` plus a correction
    ``(BG - target)/CF`` when BG is above ``correct_above_mgdl``, BG taken as at most
    ``correct_at_most_mgdl``; never negative."""
    bg = np.minimum(glucose_mgdl[index], profile.correct_at_most_mgdl)
    correction = np.where(
        bg > profile.correct_above_mgdl, (bg - profile.target_mgdl) / patients.CF[index], 0.0
    )
    return np.maximum(counted_g / patients.CR[index] + correction, 0.0)
