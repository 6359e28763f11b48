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

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sim.physiology import titrated
from sim.physiology.cohorts import cohort_profile
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
CLOCK_START_MIN = 8 * 60.0  # sessions start at 08:00, as the built-in scenarios


class ClosedLoop:
    """Patients, their plan and the basal-bolus regimen, stepped one minute at a time."""

    def __init__(
        self,
        patients: Patients,
        plan: TherapyPlan,
        profile: TherapyProfile = DEFAULT_PROFILE,
        substeps: int = 1,
        basal_scale: np.ndarray | None = None,
        bolus_scale: np.ndarray | None = None,
    ) -> None:
        """``basal_scale``, ``bolus_scale``: each patient's settings relative to the published
        ones; by default the titrated ones (``sim.physiology.titration``) when the profile is
        ``titrated``, else the published ones."""
        self.patients, self.plan, self.profile = patients, plan, profile
        self.body = Physiology(patients, substeps)
        self.hr = np.zeros(patients.n)
        titrated_basal, titrated_bolus = (
            titrated.settings(patients.names)
            if profile.titrated
            else (np.ones(patients.n), np.ones(patients.n))
        )
        basal_scale = titrated_basal if basal_scale is None else basal_scale
        self.bolus_scale = titrated_bolus if bolus_scale is None else bolus_scale
        self.basal = patients.basal_u_per_min * profile.basal_factor * basal_scale
        self.treatments = np.zeros(patients.n, np.int64)  # hypoglycaemia treatments so far
        self.next_treatment = np.zeros(patients.n, np.int64)  # minute from which to treat again

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
            units = self.bolus_scale[who] * bolus_units(
                self.patients, who, plan.boluses.value[due], self.body.glucose, self.profile
            )
            np.add.at(insulin, who, units)  # U over this minute
        felt = (self.body.glucose < plan.symptoms_mgdl) & (minute >= self.next_treatment)
        if felt.any():  # a hypoglycaemia felt: fast carbohydrate, and recheck later
            who = np.flatnonzero(felt)
            count = np.minimum(self.treatments[who], plan.treatment_g.shape[1] - 1)
            carbs[who] += plan.treatment_g[who, count]
            self.treatments[who] += 1
            self.next_treatment[who] = minute + self.profile.recheck_min
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
    clock_start_min: float = CLOCK_START_MIN
    substeps: int = 1

    def patients(self, n: int) -> Patients:
        return load_patients(self.members[i % len(self.members)] for i in range(n))

    def start(self, n: int, samples: int, rng: np.random.Generator) -> PatientStream:
        patients = self.patients(n)
        minutes = samples * SAMPLE_MIN
        plan = draw_plan(patients, minutes, rng, self.profile, self.clock_start_min)
        return PatientStream(ClosedLoop(patients, plan, self.profile, self.substeps))


class PatientBatch:
    """The reference glucose of several sessions' patients, integrated side by side.

    Patient ``k`` is ``members[k]`` living its cohort's days (``sim.physiology.cohorts``)
    drawn from ``seeds[k]`` alone (its own ``SeedSequence``), so its glucose is the same
    whichever patients share the batch: every step of ``sim.physiology.model`` is elementwise
    over patients, and the numbers are
    identical for a batch of one and a batch of many (``tests/sim/test_population*.py``).
    The batch is integrated once, when the first session asks for it, over the samples it
    asks for (the sessions of a study all have the same length)."""

    def __init__(
        self,
        members: Sequence[str],
        seeds: Sequence[np.random.SeedSequence],
        clock_start_min: float = CLOCK_START_MIN,
    ) -> None:
        if len(members) != len(seeds):
            raise ValueError("one seed per patient")
        self.members, self.seeds = tuple(members), tuple(seeds)
        self.clock_start_min = clock_start_min
        self.glucose = np.empty((len(self.members), 0))

    def source(self, k: int) -> BatchedPatient:
        """Patient ``k`` as a ``GlucoseSource`` for its session."""
        return BatchedPatient(PREFIX + self.members[k], self, k, self.clock_start_min)

    def samples(self, samples: int) -> np.ndarray:
        """Blood glucose of every patient at samples ``0..samples-1``: ``(n, samples)``."""
        if self.glucose.shape[1] < samples:
            patients = load_patients(self.members)
            minutes = samples * SAMPLE_MIN
            plan = TherapyPlan.combine(
                [
                    draw_plan(
                        patients.take([k]),
                        minutes,
                        np.random.default_rng(seed),
                        cohort_profile(name),
                        self.clock_start_min,
                    )
                    for k, (name, seed) in enumerate(zip(self.members, self.seeds, strict=True))
                ]
            )
            # the regimen's shared rules (bolus targets, rechecks) are every cohort's
            stream = PatientStream(ClosedLoop(patients, plan, DEFAULT_PROFILE))
            self.glucose = stream.next(samples)
        return self.glucose[:, :samples]


@dataclass(frozen=True, eq=False)
class BatchedPatient:
    """One patient of a ``PatientBatch`` as reference glucose (a ``GlucoseSource`` for a single
    stream). Its plan comes from the batch's seed for it, not from the ``rng`` the sensor chain
    hands to ``start``."""

    name: str
    batch: PatientBatch
    index: int
    clock_start_min: float

    def start(self, n: int, samples: int, rng: np.random.Generator) -> RecordedStream:
        if n != 1:
            raise ValueError("a batched patient is one stream")
        return RecordedStream(self.batch.samples(samples)[self.index : self.index + 1])


class RecordedStream:
    """Samples computed ahead, served in chunks."""

    def __init__(self, glucose: np.ndarray) -> None:
        self.glucose, self.position = glucose, 0

    def next(self, length: int) -> np.ndarray:
        chunk = self.glucose[:, self.position : self.position + length]
        self.position += length
        return chunk


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
