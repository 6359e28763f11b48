"""Accuracy studies: many simulated sensors scored the way clinical studies score them.

Design (shared/spec/sensor-model.md, "Accuracy anchors"): each sensor is worn by its own
patient living the ``daily_life`` scenario; a laboratory reference (YSI-class analyser) is drawn
every 15 minutes during waking hours (07:00-23:00, as in-clinic sessions run; so night-time
compression lows, an artefact of lying on the sensor, do not enter the statistics) from warm-up
end to the end of the session, with a 2 % CV measurement error
(*project default*: YSI 2300 STAT Plus precision is about 2 %); it is paired with the sensor
reading of the same 5-minute sample, as the transmitter reports it (factory calibration
applied, rounded, limited to 40-400). Samples without a reading (dropout, sensor issue, failed
sensor) give no pair. Rates for iCGM J/K are 15-minute differences of the CGM readings and of
the true blood glucose.

A study that yields no pair at all raises ``NoPairs`` (nothing can be scored); the share of
sensors alive at 10 days is None (n/a) for a study shorter than 10 days, and the share of
readings produced is None when no sample after warm-up was counted (issue 18).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware.profiles import MINUTE_MS, DeviceProfile
from firmware.transmitter.algorithm import FactoryCalibration, counts_to_mgdl, reported_mgdl
from sim.metrics import Accuracy, accuracy
from sim.signal.grid import MINUTES_PER_DAY, SAMPLE_MIN
from sim.signal.scenarios import DAILY_LIFE, GlucoseSource
from sim.signal.sensor import SensorArray, SensorModel, SensorState

RATE_SAMPLES = 3  # 15 minutes
SURVIVAL_DAYS = 10


class NoPairs(ValueError):
    """The study drew no (reference, sensor) pair: nothing to score."""


@dataclass(frozen=True, slots=True)
class StudyDesign:
    reference_interval_min: int = 15
    lab_cv: float = 0.02
    cut_point_mgdl: float = 100.0
    clinic_hours: tuple[int, int] = (7, 23)  # references are drawn between these hours
    chunk_samples: int = 576  # two days at a time


@dataclass(frozen=True, slots=True)
class StudyResult:
    accuracy: Accuracy
    first_day_mard: float | None  # pairs in the first 24 h
    later_mard: float | None
    sensors: int
    days: float
    survival_10_days: float | None  # share of sensors not failed at 10 days (None: < 10 days)
    readings_produced: float | None  # share of samples after warm-up with a reading (failed
    # excluded); None when the study has no sample after warm-up

    def to_json(self) -> dict[str, object]:
        return {
            **self.accuracy.to_json(),
            "first_day_mard": self.first_day_mard,
            "later_mard": self.later_mard,
            "sensors": self.sensors,
            "days": self.days,
            "survival_10_days": self.survival_10_days,
            "readings_produced": self.readings_produced,
        }


def run_study(
    profile: DeviceProfile,
    model: SensorModel,
    sensors: int,
    seed: int,
    days: float | None = None,
    source: GlucoseSource = DAILY_LIFE,
    design: StudyDesign = StudyDesign(),
    progress: Callable[[int, int], None] | None = None,
) -> StudyResult:
    """Simulate ``sensors`` sensors for ``days`` (default: the profile's whole session,
    grace included) and score them. ``progress(samples_done, samples)`` is called after each
    chunk."""
    minutes = days * MINUTES_PER_DAY if days is not None else profile.end_ms / MINUTE_MS
    samples = int(minutes // SAMPLE_MIN) + 1
    sensor_seed, lab_seed = np.random.SeedSequence(seed).spawn(2)
    lab = np.random.default_rng(lab_seed)
    array = SensorArray(model, source, sensors, samples, sensor_seed)
    calibration = FactoryCalibration(array.sensitivity[:, None], array.background[:, None])
    every = design.reference_interval_min // int(SAMPLE_MIN)
    warmup_end = profile.warmup_ms / MINUTE_MS

    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("ref", "cgm", "cgm_rate", "ref_rate", "t")
    }
    produced = counted = 0
    history_cgm = np.full((sensors, RATE_SAMPLES), np.nan)
    history_bg = np.full((sensors, RATE_SAMPLES), np.nan)
    for chunk in array.chunks(design.chunk_samples):
        if progress is not None:
            progress(min(chunk.start + design.chunk_samples, samples), samples)
        cgm = np.where(
            chunk.state == SensorState.OK,
            reported_mgdl(counts_to_mgdl(chunk.raw_counts, calibration)),
            np.nan,
        )
        cgm_all = np.concatenate([history_cgm, cgm], axis=1)
        bg_all = np.concatenate([history_bg, chunk.reference_mgdl], axis=1)
        history_cgm, history_bg = cgm_all[:, -RATE_SAMPLES:], bg_all[:, -RATE_SAMPLES:]
        cgm_rate = (cgm_all[:, RATE_SAMPLES:] - cgm_all[:, :-RATE_SAMPLES]) / (
            RATE_SAMPLES * SAMPLE_MIN
        )
        bg_rate = (bg_all[:, RATE_SAMPLES:] - bg_all[:, :-RATE_SAMPLES]) / (
            RATE_SAMPLES * SAMPLE_MIN
        )

        t = chunk.time_min
        after_warmup = t >= warmup_end
        alive = chunk.state != SensorState.FAILED
        produced += int(np.sum((chunk.state == SensorState.OK) & after_warmup))
        counted += int(np.sum(alive & after_warmup))
        hour = ((t + source.clock_start_min) % MINUTES_PER_DAY) / 60
        in_clinic = (hour >= design.clinic_hours[0]) & (hour < design.clinic_hours[1])
        paired = after_warmup & in_clinic & (np.round(t / SAMPLE_MIN).astype(int) % every == 0)
        take = paired[None, :] & ~np.isnan(cgm)
        reference = chunk.reference_mgdl[take]
        columns["ref"].append(
            reference * (1.0 + design.lab_cv * lab.standard_normal(reference.size))
        )
        columns["cgm"].append(cgm[take])
        columns["cgm_rate"].append(cgm_rate[take])
        columns["ref_rate"].append(bg_rate[take])
        columns["t"].append(np.broadcast_to(t, take.shape)[take])

    data = {key: np.concatenate(parts) for key, parts in columns.items()}
    if data["ref"].size == 0:
        start, end = design.clinic_hours
        raise NoPairs(
            f"no (reference, sensor) pair in {minutes:g} min: references are drawn every "
            f"{design.reference_interval_min} min between {start:02d}:00 and {end:02d}:00 after "
            f"warm-up ({warmup_end:g} min), where the sensor gave a reading"
        )
    result = accuracy(
        data["ref"],
        data["cgm"],
        cut_point_mgdl=design.cut_point_mgdl,
        sensor_rate=data["cgm_rate"],
        reference_rate=data["ref_rate"],
    )
    first_day = data["t"] < MINUTES_PER_DAY
    return StudyResult(
        accuracy=result,
        first_day_mard=_mard(data["ref"][first_day], data["cgm"][first_day]),
        later_mard=_mard(data["ref"][~first_day], data["cgm"][~first_day]),
        sensors=sensors,
        days=minutes / MINUTES_PER_DAY,
        survival_10_days=(
            float(np.mean(array.failure_sample > SURVIVAL_DAYS * MINUTES_PER_DAY / SAMPLE_MIN))
            if minutes >= SURVIVAL_DAYS * MINUTES_PER_DAY
            else None
        ),
        readings_produced=produced / counted if counted else None,
    )


def _mard(reference: np.ndarray, sensor: np.ndarray) -> float | None:
    if reference.size == 0:
        return None
    return float(np.mean(np.abs(sensor - reference) / reference) * 100)
