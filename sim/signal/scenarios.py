"""Reference glucose from built-in scenarios: a pluggable source of "true" blood glucose.

A source is started for ``n`` patients over ``samples`` 5-minute samples and then yields chunks
of shape ``(n, length)`` in mg/dL; the numbers do not depend on the chunk size.

Every scenario is the same generator with other parameters. Blood glucose is

    basal + slow drift + dawn rise + meals - insulin - exercise - night dip

each meal, bolus, exercise bout and night dip a gamma-shaped curve (``grid.peak_kernel``),
passed through a soft floor (counter-regulation: values below 70 approach 40 smoothly and
never reach it). Patients differ in basal level, meal sizes and bolus accuracy; days differ in
meal times and sizes. This is not a physiological model (one comes in a later issue); it gives
realistic shapes, rates of change and time in ranges for sensor and alert testing.

Scenarios (``SCENARIOS``):

- ``daily_life`` (default): sessions start at 08:00; breakfast 07:30, lunch 12:30, dinner 19:00
  (±45-60 min), an afternoon snack on half the days; meal peaks 60 min after eating, median
  75 mg/dL; boluses take away 40-160 % of what their meal adds, peaking at 100 min (so some
  meals overshoot and some dip below 70); exercise on 30 % of days around 17:00; a 15 mg/dL dawn
  rise around 06:30; a slow drift (SD 40 mg/dL, two poles at a 150-min time constant); basal
  150 ± 30 mg/dL per patient. Mean about 150 mg/dL (SD ~52), ~6 % of time below 70, ~28 %
  above 180: a type 1 population with enough low and high readings to score every range.
- ``nocturnal_hypo``: daily life plus a nightly fall from about 23:30 to 45-60 mg/dL around
  03:00, recovering by breakfast.
- ``fast_rise``: large, fast-absorbed meals with late boluses: rises of 3-4.5 mg/dL/min to
  250-350 mg/dL.
- ``rapid_fall``: basal 210 mg/dL corrected by large, fast boluses (3.5x the meal, peaking at
  55 min): falls of 3-4 mg/dL/min, down to 70-110.
- ``prolonged_high``: basal 260 mg/dL with under-dosed meals: most of the time above 250.
- ``flat``: a constant 120 mg/dL, no meals, no drift (for tests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from sim.signal.grid import MINUTES_PER_DAY, SAMPLE_MIN, Events, Filter, Normals, peak_kernel


class GlucoseStream(Protocol):
    def next(self, length: int) -> np.ndarray:
        """The next ``length`` samples for every patient, shape ``(n, length)``, mg/dL."""
        ...


class GlucoseSource(Protocol):
    name: str
    clock_start_min: float  # time of day at session start, minutes after midnight

    def start(self, n: int, samples: int, rng: np.random.Generator) -> GlucoseStream:
        """A stream for ``n`` patients over ``samples`` samples from time 0."""
        ...


@dataclass(frozen=True, slots=True)
class Meal:
    time_of_day_min: float
    sd_min: float
    probability: float = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    basal_mgdl: float = 150.0
    basal_sd_mgdl: float = 30.0
    meals: tuple[Meal, ...] = (
        Meal(7.5 * 60, 45),
        Meal(12.5 * 60, 45),
        Meal(19 * 60, 60),
        Meal(15.5 * 60, 60, probability=0.5),
    )
    meal_mgdl: float = 75.0  # median peak effect of a meal
    meal_spread: float = 0.4  # lognormal sigma of meal size
    meal_peak_min: float = 60.0
    bolus_ratio: float = 1.0  # glucose a bolus takes away relative to what its meal adds
    bolus_ratio_sd: float = 0.3
    bolus_delay_min: float = 0.0
    bolus_peak_min: float = 100.0
    exercise_probability: float = 0.3
    exercise_time_min: float = 17 * 60
    exercise_mgdl: float = 40.0
    exercise_peak_min: float = 50.0
    night_dip_mgdl: float = 0.0  # how far below basal the nightly fall reaches
    night_dip_peak_min: float = 210.0
    night_dip_time_min: float = 23.5 * 60
    dawn_mgdl: float = 15.0
    drift_sd_mgdl: float = 40.0
    drift_tau_min: float = 150.0
    floor_mgdl: float = 40.0
    clock_start_min: float = 8 * 60.0  # sessions start at 08:00

    def start(self, n: int, samples: int, rng: np.random.Generator) -> ScenarioStream:
        return ScenarioStream(self, n, samples, rng)


_SOFT_FLOOR_FROM = 70.0


def soft_floor(glucose: np.ndarray, floor: float) -> np.ndarray:
    """Identity above 70 mg/dL; below, ``floor + (70 - floor)·exp((g - 70)/(70 - floor))``:
    continuous with slope 1 at 70, approaching ``floor`` without reaching it."""
    span = _SOFT_FLOOR_FROM - floor
    low = floor + span * np.exp(np.minimum(glucose - _SOFT_FLOOR_FROM, 0.0) / span)
    return np.where(glucose >= _SOFT_FLOOR_FROM, glucose, low)


class ScenarioStream:
    """Per-patient parameters and every event of the run are drawn up front; the curves are
    filters of those events, run chunk by chunk with carried state."""

    def __init__(self, scenario: Scenario, n: int, samples: int, rng: np.random.Generator) -> None:
        self.scenario, self.n, self.position = scenario, n, 0
        s = scenario
        days = int(np.ceil((samples * SAMPLE_MIN + s.clock_start_min) / MINUTES_PER_DAY)) + 1
        # Event times are drawn on the clock (day d, time of day) and shifted to session time.
        midnights = np.arange(days)[None, :] * MINUTES_PER_DAY - s.clock_start_min
        self.basal = s.basal_mgdl + s.basal_sd_mgdl * rng.standard_normal(n)

        meal_streams, meal_times, meal_sizes = [np.zeros(0, int)], [np.zeros(0)], [np.zeros(0)]
        for meal in s.meals:
            happens = rng.random((n, days)) < meal.probability
            times = midnights + meal.time_of_day_min + meal.sd_min * rng.standard_normal((n, days))
            sizes = s.meal_mgdl * np.exp(s.meal_spread * rng.standard_normal((n, days)))
            stream = np.broadcast_to(np.arange(n)[:, None], (n, days))
            meal_streams.append(stream[happens])
            meal_times.append(times[happens])
            meal_sizes.append(sizes[happens])
        streams = np.concatenate(meal_streams)
        times = np.concatenate(meal_times)
        sizes = np.concatenate(meal_sizes)
        ratios = np.clip(
            s.bolus_ratio + s.bolus_ratio_sd * rng.standard_normal(len(sizes)), 0, None
        )
        self.meals = Events.of(streams, _sample(times), sizes)
        # A bolus of ratio 1.0 takes away exactly the glucose its meal adds (equal areas).
        bolus_sizes = sizes * ratios * s.meal_peak_min / s.bolus_peak_min
        self.boluses = Events.of(streams, _sample(times + s.bolus_delay_min), bolus_sizes)

        exercising = rng.random((n, days)) < s.exercise_probability
        ex_times = midnights + s.exercise_time_min + 90 * rng.standard_normal((n, days))
        ex_size = s.exercise_mgdl * np.exp(0.3 * rng.standard_normal((n, days)))
        ex_stream = np.broadcast_to(np.arange(n)[:, None], (n, days))
        self.exercise = Events.of(
            ex_stream[exercising], _sample(ex_times[exercising]), ex_size[exercising]
        )

        night_times = (
            np.arange(-1, days)[None, :] * MINUTES_PER_DAY
            - s.clock_start_min
            + s.night_dip_time_min
            + 30 * rng.standard_normal((n, days + 1))
        )
        depth = (self.basal[:, None] - 52.0 + 8 * rng.standard_normal((n, days + 1))).clip(0)
        dip = s.night_dip_mgdl > 0
        night_stream = np.broadcast_to(np.arange(n)[:, None], (n, days + 1))
        self.night = Events.of(
            night_stream.ravel() if dip else np.zeros(0, int),
            _sample(night_times.ravel()) if dip else np.zeros(0, int),
            depth.ravel() if dip else np.zeros(0),
        )

        self.meal_filter = Filter.create(*peak_kernel(s.meal_peak_min), n)
        self.bolus_filter = Filter.create(*peak_kernel(s.bolus_peak_min), n)
        self.exercise_filter = Filter.create(*peak_kernel(s.exercise_peak_min), n)
        self.night_filter = Filter.create(*peak_kernel(s.night_dip_peak_min), n)
        # Drift: white noise through two poles at exp(-dt/tau), smooth at the 5-min scale;
        # stationary variance of 1/(1 - phi z^-1)^2 is (1 + phi^2)/(1 - phi^2)^3.
        phi = np.exp(-SAMPLE_MIN / s.drift_tau_min)
        self.drift = Filter.create(np.array([1.0]), np.array([1.0, -2 * phi, phi * phi]), n)
        start = s.drift_sd_mgdl * rng.standard_normal(n)  # begin at rest at a random level
        self.drift.state[:, 0] = (2 * phi - phi * phi) * start
        self.drift.state[:, 1] = -phi * phi * start
        scale = s.drift_sd_mgdl * np.sqrt((1 - phi * phi) ** 3 / (1 + phi * phi))
        self.innovations = Normals(rng, n, np.full(n, scale))

    def next(self, length: int) -> np.ndarray:
        start, stop = self.position, self.position + length
        self.position = stop
        n = self.n
        t = (np.arange(start, stop) * SAMPLE_MIN + self.scenario.clock_start_min) % MINUTES_PER_DAY
        dawn = self.scenario.dawn_mgdl * np.exp(-0.5 * ((t - 390.0) / 90.0) ** 2)
        glucose = (
            self.basal[:, None]
            + dawn[None, :]
            + self.drift(self.innovations.draw(length))
            + self.meal_filter(self.meals.impulses(n, start, stop))
            - self.bolus_filter(self.boluses.impulses(n, start, stop))
            - self.exercise_filter(self.exercise.impulses(n, start, stop))
            - self.night_filter(self.night.impulses(n, start, stop))
        )
        return soft_floor(glucose, self.scenario.floor_mgdl)


def _sample(times_min: np.ndarray) -> np.ndarray:
    """Event times (minutes; may be negative for events before the start) to sample indices.
    Events before time 0 are dropped by placing them past any run."""
    index = np.rint(times_min / SAMPLE_MIN).astype(np.int64)
    return np.where(index < 0, np.iinfo(np.int64).max // 2, index)


DAILY_LIFE = Scenario("daily_life")
SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        DAILY_LIFE,
        replace(DAILY_LIFE, name="nocturnal_hypo", night_dip_mgdl=1.0),
        replace(
            DAILY_LIFE,
            name="fast_rise",
            meal_mgdl=140.0,
            meal_spread=0.15,
            meal_peak_min=60.0,
            bolus_delay_min=20.0,
            exercise_probability=0.0,
        ),
        replace(
            DAILY_LIFE,
            name="rapid_fall",
            basal_mgdl=210.0,
            meal_mgdl=40.0,
            bolus_ratio=3.5,
            bolus_ratio_sd=0.3,
            bolus_peak_min=55.0,
            exercise_probability=0.0,
        ),
        replace(
            DAILY_LIFE,
            name="prolonged_high",
            basal_mgdl=260.0,
            basal_sd_mgdl=20.0,
            bolus_ratio=0.4,
            exercise_probability=0.0,
        ),
        Scenario(
            "flat",
            basal_mgdl=120.0,
            basal_sd_mgdl=0.0,
            meals=(),
            exercise_probability=0.0,
            dawn_mgdl=0.0,
            drift_sd_mgdl=0.0,
        ),
    )
}
