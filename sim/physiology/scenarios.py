"""The sensor-model scenarios (``sim.signal.scenarios``) expressed as meals and insulin for the
virtual patients: what a person eats and doses to get that glucose shape, rather than the shape
drawn directly. ``patient:adult#001:nocturnal_hypo`` on the command line.

- ``daily_life``: the default regimen of ``sim.physiology.therapy`` (simglucose's random meals,
  basal-bolus with counting errors, missed and late boluses, exercise on 30 % of days).
- ``nocturnal_hypo``: the dinner bolus is 1.6x what the meal needs (an over-correction at
  dinner), the bedtime snack always eaten and bolused 1.5x, and exercise on most evenings around
  19:00 (late exercise raises the risk of nocturnal hypoglycaemia), on the published settings
  (not titrated), the low not felt in sleep: glucose falls in the night.
- ``fast_rise``: large meals (110/130/140 g) every day, bolused 30-60 min late and for 80 % of
  the carbohydrate: rises of 4-5 mg/dL/min after meals.
- ``rapid_fall``: on the published settings, basal at 60 % and meal boluses at half of what the
  meals need keep glucose high, and each meal bolus corrects hard (the whole excess, to
  70 mg/dL from above 120): falls of 2-3 mg/dL/min,
  about twice daily life's (subcutaneous insulin does not allow faster ones in this model).
- ``prolonged_high``: basal at 60 %, meal boluses at 30 % and half of them missed, no exercise:
  long hyperglycaemia (mean above 200 mg/dL, a third of the time above 250).
- ``flat``: no meals, no exercise, the published basal: it holds each patient at their basal
  glucose.

These are our choices of regimen (not published scenarios); their shapes are tested in
``tests/sim/test_physiology.py``.
"""

from __future__ import annotations

from dataclasses import replace

from sim.physiology.therapy import (
    DEFAULT_PROFILE,
    RANDOM_SCENARIO_SLOTS,
    MealSlot,
    TherapyProfile,
)

_BREAKFAST, _SNACK1, _LUNCH, _SNACK2, _DINNER, _BEDTIME = RANDOM_SCENARIO_SLOTS


def _scaled(factor: float) -> tuple[MealSlot, ...]:
    return tuple(replace(slot, bolus_factor=factor) for slot in RANDOM_SCENARIO_SLOTS)


SCENARIO_PROFILES: dict[str, TherapyProfile] = {
    "daily_life": DEFAULT_PROFILE,
    "nocturnal_hypo": replace(
        DEFAULT_PROFILE,
        slots=(
            _BREAKFAST,
            _SNACK1,
            _LUNCH,
            _SNACK2,
            replace(_DINNER, bolus_factor=1.6),
            replace(_BEDTIME, probability=1.0, mean_g=15, bolus_factor=1.5),
        ),
        exercise_probability=0.8,
        exercise_time_min=19 * 60.0,
        exercise_sd_min=30.0,
        titrated=False,
        symptoms_mgdl=0.0,  # asleep: the night's low is not felt
        impaired_symptoms_mgdl=0.0,
    ),
    "fast_rise": replace(
        DEFAULT_PROFILE,
        slots=(
            replace(_BREAKFAST, mean_g=110, probability=1.0, bolus_factor=0.8),
            _SNACK1,
            replace(_LUNCH, mean_g=130, probability=1.0, bolus_factor=0.8),
            _SNACK2,
            replace(_DINNER, mean_g=140, probability=1.0, bolus_factor=0.8),
            _BEDTIME,
        ),
        missed_bolus_probability=0.0,
        late_bolus_probability=1.0,
        late_bolus_min=(30.0, 60.0),
        exercise_probability=0.0,
    ),
    "rapid_fall": replace(
        DEFAULT_PROFILE,
        slots=_scaled(0.5),
        target_mgdl=70.0,
        correct_above_mgdl=120.0,
        correct_at_most_mgdl=float("inf"),  # corrects the whole excess at once
        titrated=False,
        missed_bolus_probability=0.0,
        late_bolus_probability=0.0,
        exercise_probability=0.0,
        basal_factor=0.6,
    ),
    "prolonged_high": replace(
        DEFAULT_PROFILE,
        slots=_scaled(0.3),
        missed_bolus_probability=0.5,
        exercise_probability=0.0,
        basal_factor=0.6,
    ),
    "flat": replace(DEFAULT_PROFILE, slots=(), exercise_probability=0.0, titrated=False),
}


def scenario_profile(name: str) -> TherapyProfile:
    """The regimen for a scenario name; ``ValueError`` naming the choices otherwise."""
    try:
        return SCENARIO_PROFILES[name]
    except KeyError:
        choices = ", ".join(SCENARIO_PROFILES)
        raise ValueError(
            f"unknown scenario {name!r} for a virtual patient: one of {choices}"
        ) from None
