"""One virtual patient's session, the unit of work of a population study.

Session ``i`` of a study with seed ``s`` wears a sensor on patient ``members[i mod len]`` and
draws everything from ``SeedSequence(s, spawn_key=(i,))`` (what ``SeedSequence(s).spawn(n)``
gives as child ``i``, whatever ``n``): its numbers depend on ``(s, i)`` only, never on how the
study is chunked or how many workers run it. ``run_session`` is a plain module-level function of
picklable arguments, so a Dask worker process can run it.

The pipeline is the one of ``cgmsim simulate --link memory``: the patient's plasma glucose is
the reference (``sim.physiology.source``), the sensor chain, transmitter, memory link and
receiver run in ``sim.world.run``. Nobody acknowledges alerts.

Sessions run in batches (``run_batch``): the physiology of a batch's patients, the costly part
when integrated one patient at a time, is one vectorised loop over the batch; each patient's
days are drawn from its own seed, so a session's numbers do not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from firmware.profiles import MINUTE_MS, PROFILES
from sim import world
from sim.physiology.patients import resolve
from sim.physiology.source import PatientBatch
from sim.population.labelling import episodes, rules
from sim.session.config import SimulationConfig
from sim.signal.scenarios import GlucoseSource

PHYSIOLOGY_STREAM = 2  # spawn key of the patient's days under the session's seed


@dataclass(frozen=True, slots=True)
class SessionSpec:
    index: int
    patient: str
    seed: int
    days: float | None
    profile: str


@dataclass(frozen=True, eq=False)
class SessionOutcome:
    """What the study keeps of a session: the 5-min reference, the displayed sensor values
    (NaN where nothing was displayed) and the episodes of the scored alerts."""

    index: int
    patient: str
    seed: int
    warmup_end_min: float
    end_min: float
    reference_mgdl: np.ndarray
    sensor_mgdl: np.ndarray
    alerts: dict[str, list[tuple[float, float]]]

    @property
    def time_min(self) -> np.ndarray:
        return 5.0 * np.arange(len(self.reference_mgdl))

    @property
    def group(self) -> str:
        return self.patient.split("#")[0]


def session_seed(seed: int, index: int) -> int:
    """The ``world`` seed of session ``index``: 63 bits of child ``index`` of ``seed``."""
    child = np.random.SeedSequence(seed, spawn_key=(index,))
    return int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))


def plan(
    patients: int, seed: int, days: float | None, profile: str = "g7", cohort: str = "all"
) -> list[SessionSpec]:
    """The sessions of a study: the cohort's published patients cycled over ``patients``."""
    members = resolve(cohort)
    return [
        SessionSpec(i, members[i % len(members)], session_seed(seed, i), days, profile)
        for i in range(patients)
    ]


def physiology_seed(spec: SessionSpec) -> np.random.SeedSequence:
    """What the patient's days (meals, boluses, exercise) of session ``spec`` are drawn from:
    a stream of the session's seed apart from the two the session itself spawns (sensor,
    link: ``sim.session.bookkeeping.session_input``)."""
    return np.random.SeedSequence(spec.seed, spawn_key=(PHYSIOLOGY_STREAM,))


def run_batch(specs: Sequence[SessionSpec]) -> list[SessionOutcome]:
    """The sessions ``specs``: their patients' physiology integrated side by side (one
    vectorised loop, ``sim.physiology.source.PatientBatch``), then each session's sensor,
    firmware and link. The outcomes do not depend on how the sessions are batched."""
    batch = PatientBatch([s.patient for s in specs], [physiology_seed(s) for s in specs])
    return [_run(spec, batch.source(k)) for k, spec in enumerate(specs)]


def _run(spec: SessionSpec, source: GlucoseSource) -> SessionOutcome:
    """The whole pipeline for one patient (see the module docstring)."""
    profile = PROFILES[spec.profile]
    config = SimulationConfig(profile=profile, days=spec.days, seed=spec.seed, source=source)
    result = world.run(config)
    rows = [r for r in result.rows if r.time_offset_min <= result.end_min]
    reference = np.array([r.reference_mgdl for r in rows])
    sensor = np.array(
        [
            r.sensor_mgdl if r.displayed is not None and r.sensor_mgdl is not None else np.nan
            for r in rows
        ]
    )
    scored = {rule.alert for rule in rules(config.alerts)}
    return SessionOutcome(
        index=spec.index,
        patient=spec.patient,
        seed=spec.seed,
        warmup_end_min=profile.warmup_ms / MINUTE_MS,
        end_min=result.end_min,
        reference_mgdl=reference,
        sensor_mgdl=sensor,
        alerts={name: episodes(result.events, name, result.end_min) for name in sorted(scored)},
    )
