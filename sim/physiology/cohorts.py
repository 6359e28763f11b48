"""How each cohort of virtual patients lives: one ``TherapyProfile`` per group of published
patients (adults, adolescents, children), the knobs of ``sim.physiology.therapy`` with the
defaults that put each cohort in its published real-world ranges (``docs/population.md``
shows the calibration table and its sources).

- adults: meals 1.2x simglucose's, their SD 4x (adults' meals vary most), carbohydrate
  counted with a 60 % (log-normal SD) error and bolused for 75 % of it, 15 % of meal boluses
  missed, 35 % given 15-60 min late;
- adolescents: simglucose's meals bolused for 90 %, 25 % of boluses missed and 35 % late:
  missed boluses are the adolescent pattern (Burdick et al., Pediatrics 113:e221, 2004);
- children: meals 0.8x simglucose's, their SD 2x, the defaults of ``TherapyProfile`` otherwise
  (35 % counting error, 10 % missed, 25 % late).

All of these are *calibration* values, tuned (with the titration's rules,
``sim.physiology.titration``) to land each cohort in its published ranges. The counting errors
are larger than measured (about 20 % of a meal: Brazeau et al., Eur J Clin Nutr 67:1220, 2013):
they stand in for the day-to-day variability the model lacks (of insulin sensitivity, meal
composition, stress). Symptoms and treatment of hypoglycaemia follow ``sim.physiology.therapy``.
"""

from __future__ import annotations

from dataclasses import replace

from sim.physiology.patients import GROUPS
from sim.physiology.therapy import (
    DEFAULT_PROFILE,
    RANDOM_SCENARIO_SLOTS,
    MealSlot,
    TherapyProfile,
)


def _meals(size: float, spread: float, bolused: float = 1.0) -> tuple[MealSlot, ...]:
    """simglucose's meal slots with amounts ``size`` times as large, their SD ``spread`` times
    as large, each bolused for ``bolused`` times the carbohydrate counted."""
    return tuple(
        replace(slot, mean_g=slot.mean_g * size, sd_g=slot.sd_g * spread, bolus_factor=bolused)
        for slot in RANDOM_SCENARIO_SLOTS
    )


COHORT_PROFILES: dict[str, TherapyProfile] = {
    "adult": replace(
        DEFAULT_PROFILE,
        slots=_meals(size=1.2, spread=4.0, bolused=0.75),
        carb_error_sd=0.6,
        missed_bolus_probability=0.15,
        late_bolus_probability=0.35,
    ),
    "adolescent": replace(
        DEFAULT_PROFILE,
        slots=_meals(size=1.0, spread=1.0, bolused=0.9),
        missed_bolus_probability=0.25,
        late_bolus_probability=0.35,
    ),
    "child": replace(DEFAULT_PROFILE, slots=_meals(size=0.8, spread=2.0)),
}
assert set(COHORT_PROFILES) == set(GROUPS)


def cohort_profile(patient: str) -> TherapyProfile:
    """The profile of a published patient's cohort (``child#003`` -> children's)."""
    return COHORT_PROFILES[patient.split("#")[0]]
