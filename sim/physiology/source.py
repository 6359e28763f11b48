"""Virtual patients as reference glucose (``cgmsim simulate --scenario patient:adult#001``).

``parse_patient_scenario("patient:adult#001")`` gives a ``GlucoseSource`` (see
``sim.signal.scenarios``): every stream is that patient living their own random days (meals,
basal-bolus therapy with its mistakes, exercise: ``sim.physiology.therapy``). A group name
(``patient:adult``, ``patient:child``, ``patient:adolescent``) or ``patient:all`` assigns its
members to the streams in turn (stream ``i`` is member ``i mod len(group)``).

Blood glucose is the model's plasma glucose, integrated minute by minute and sampled every
5 minutes (sample ``k`` is the value at minute ``5k``; sample 0 is the basal steady state).
Everything random is drawn when the stream starts, so chunk sizes do not change the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sim.physiology.model import Physiology
from sim.physiology.patients import Patients, load_patients, resolve
from sim.physiology.scenarios import scenario_profile
from sim.physiology.therapy import (
    DEFAULT_PROFILE,
    TherapyPlan,
    TherapyProfile,
    bolus_units,
    draw_plan,
)

PREFIX = "patient:"
SAMPLE_MIN = 5  # the CGM grid of sim.signal.grid


class ClosedLoop:
    """Patients, their plan and the basal-bolus regimen, stepped one minute at a time."""

    def __init__(
        self,
        patients: Patients,
        plan: TherapyPlan,
        profile: TherapyProfile = DEFAULT_PROFILE,
        substeps: int = 1,
    ) -> None:
        self.patients, self.plan, self.profile = patients, plan, profile
        self.body = Physiology(patients, substeps)
        self.hr = np.zeros(patients.n)
        self.basal = patients.basal_u_per_min * profile.basal_factor

    @property
    def minute(self) -> int:
        return self.body.minute

    def step(self) -> None:
        minute, plan, n = self.body.minute, self.plan, self.patients.n
        carbs = np.zeros(n)
        meals = plan.meals.at(minute)
        np.add.at(carbs, plan.meals.patient[meals], plan.meals.value[meals])
        insulin = self.basal.copy()
        due = plan.boluses.at(minute)
        if due.start != due.stop:
            who = plan.boluses.patient[due]
            units = bolus_units(
                self.patients, who, plan.boluses.value[due], self.body.glucose, self.profile
            )
            np.add.at(insulin, who, units)  # U over this minute
        bouts = plan.exercise.at(minute)
        self.hr[plan.exercise.patient[bouts]] = plan.exercise.value[bouts]
        self.body.step(carbs, insulin, self.hr)

    def run(self, minutes: int) -> np.ndarray:
        """Blood glucose at this minute and each of the next ``minutes``: ``(n, minutes + 1)``."""
        out = np.empty((self.patients.n, minutes + 1))
        out[:, 0] = self.body.glucose
        for k in range(1, minutes + 1):
            self.step()
            out[:, k] = self.body.glucose
        return out


class PatientStream:
    def __init__(self, loop: ClosedLoop) -> None:
        self.loop, self.position = loop, 0

    def next(self, length: int) -> np.ndarray:
        out = np.empty((self.loop.patients.n, length))
        for j in range(length):
            target = (self.position + j) * SAMPLE_MIN
            while self.loop.minute < target:
                self.loop.step()
            out[:, j] = self.loop.body.glucose
        self.position += length
        return out


@dataclass(frozen=True)
class PatientSource:
    """Virtual patients ``members`` (cycled over the streams) as reference glucose."""

    name: str
    members: tuple[str, ...]
    profile: TherapyProfile = DEFAULT_PROFILE
    clock_start_min: float = 8 * 60.0  # sessions start at 08:00, as the built-in scenarios
    substeps: int = 1

    def patients(self, n: int) -> Patients:
        return load_patients(self.members[i % len(self.members)] for i in range(n))

    def start(self, n: int, samples: int, rng: np.random.Generator) -> PatientStream:
        patients = self.patients(n)
        minutes = samples * SAMPLE_MIN
        plan = draw_plan(patients, minutes, rng, self.profile, self.clock_start_min)
        return PatientStream(ClosedLoop(patients, plan, self.profile, self.substeps))


def patient_source(patient: str, profile: TherapyProfile = DEFAULT_PROFILE) -> PatientSource:
    """The source for a patient (``adult#001``), a group (``adult``) or ``all``."""
    return PatientSource(PREFIX + patient, resolve(patient), profile)


def parse_patient_scenario(text: str) -> PatientSource:
    """``patient:NAME`` or ``patient:NAME:SCENARIO`` (a regimen of ``sim.physiology.scenarios``,
    default ``daily_life``) -> its source; ``ValueError`` with a one-line reason otherwise."""
    if not text.startswith(PREFIX):
        raise ValueError(
            f"not a patient scenario {text!r}: expected {PREFIX}NAME, e.g. patient:adult#001"
        )
    patient, _, scenario = text[len(PREFIX) :].partition(":")
    if not scenario:
        return patient_source(patient)
    source = patient_source(patient, scenario_profile(scenario))
    return replace(source, name=f"{source.name}:{scenario}")
