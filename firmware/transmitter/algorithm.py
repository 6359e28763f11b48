"""The transmitter's signal processing: raw counts -> mg/dL, trend, quality, warnings,
user calibration.

A factory-calibrated sensor ships with a calibration code: the sensitivity (counts per mg/dL)
and background (counts) measured for its production lot. The transmitter applies them; how far
the real sensor drifts from them is the sensor's error (modelled in ``sim.signal``). Works on
scalars and on numpy arrays alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from protocol.cgms.annunciation import WarningFlags
from protocol.cgms.socp import CalibrationStatus

DISPLAY_MIN_MGDL = 40  # below: LOW (Dexcom manuals; G7SensorKit and CGMBLEKit clamp to 40-400)
DISPLAY_MAX_MGDL = 400  # above: HIGH

Number = TypeVar("Number", float, np.ndarray)


@dataclass(frozen=True, slots=True)
class FactoryCalibration:
    sensitivity_counts_per_mgdl: float
    background_counts: float


def counts_to_mgdl(raw_counts: Number, calibration: FactoryCalibration) -> Number:
    """Glucose in mg/dL (unrounded, unlimited) from raw counts."""
    return (raw_counts - calibration.background_counts) / calibration.sensitivity_counts_per_mgdl


def reported_mgdl(glucose_mgdl: Number) -> Number:
    """The value a reading carries: rounded to whole mg/dL (half to even) and limited to
    40-400."""
    if isinstance(glucose_mgdl, float | int):  # one reading: plain Python is ~10x faster
        return float(min(max(round(glucose_mgdl), DISPLAY_MIN_MGDL), DISPLAY_MAX_MGDL))
    return np.clip(np.rint(glucose_mgdl), DISPLAY_MIN_MGDL, DISPLAY_MAX_MGDL)


TREND_WINDOW_MIN = 15  # rate of change over the last 15 minutes (shared/spec/behavior.md)


def _window(readings: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    newest = readings[-1][0]
    return [(t, g) for t, g in readings if newest - t <= TREND_WINDOW_MIN]


def _fit(window: list[tuple[int, float]]) -> tuple[float, float, float]:
    """Least squares over a few points, in plain Python: (slope, mean time, mean glucose)."""
    n = len(window)
    mean_t = sum(t for t, _ in window) / n
    mean_g = sum(g for _, g in window) / n
    sxx = sum((t - mean_t) ** 2 for t, _ in window)
    sxy = sum((t - mean_t) * (g - mean_g) for t, g in window)
    return sxy / sxx, mean_t, mean_g


def trend_mgdl_per_min(
    readings: Sequence[tuple[int, float]], interval_min: int = 5
) -> float | None:
    """Least-squares slope of ``(time_offset_min, mg/dL)`` readings over the 15 minutes up to
    the newest one, or None unless every reading of that window is there (no trend across a
    gap, as the receiver shows no arrow then)."""
    if not readings:
        return None
    window = _window(readings)
    if len(window) != TREND_WINDOW_MIN // interval_min + 1:
        return None
    return _fit(window)[0]


def quality_percent(readings: Sequence[tuple[int, float]], trend: float | None) -> float:
    """A confidence figure for the CGM Measurement's Quality field (*project default*): 100 %
    minus 5 % per mg/dL of RMS deviation of the 15-minute window from its trend line; 100 %
    when there is no trend to compare with. Clamped to 0-100, one decimal."""
    if trend is None:
        return 100.0
    window = _window(readings)
    _, mean_t, mean_g = _fit(window)
    squares = sum((g - mean_g - trend * (t - mean_t)) ** 2 for t, g in window)
    rms = (squares / len(window)) ** 0.5
    return round(min(100.0, max(0.0, 100.0 - 5.0 * rms)), 1)


@dataclass(frozen=True, slots=True)
class AlertLevels:
    """The six levels the SOCP sets (mg/dL; rates in mg/dL/min), behind the Warning octet.

    Defaults follow shared/spec/behavior.md where it has one (low 70, high 250, urgent low 55);
    hyper 300 and the 2 mg/dL/min rates are *project defaults*.
    """

    patient_high: float = 250.0
    patient_low: float = 70.0
    hypo: float = 55.0
    hyper: float = 300.0
    rate_of_decrease: float = 2.0
    rate_of_increase: float = 2.0


# What a SOCP Set ... Alert Level may ask for; outside -> response code 5 (*project default*,
# the low/high ranges from the G6/G7 receivers: low 60-100, high 120-400).
ALERT_LEVEL_RANGES: dict[str, tuple[float, float]] = {
    "patient_high": (120.0, 400.0),
    "patient_low": (60.0, 100.0),
    "hypo": (40.0, 70.0),
    "hyper": (180.0, 400.0),
    "rate_of_decrease": (1.0, 10.0),
    "rate_of_increase": (1.0, 10.0),
}


def warning_octet(glucose_mgdl: float, trend: float | None, levels: AlertLevels) -> int:
    """The Warning annunciation bits for one reading (CGMS §3.1.1.5; the unrounded value
    decides LOW/HIGH, the reported one is limited to 40-400)."""
    bits = 0
    if glucose_mgdl < levels.patient_low:
        bits |= WarningFlags.RESULT_LOWER_THAN_PATIENT_LOW
    if glucose_mgdl > levels.patient_high:
        bits |= WarningFlags.RESULT_HIGHER_THAN_PATIENT_HIGH
    if glucose_mgdl < levels.hypo:
        bits |= WarningFlags.RESULT_LOWER_THAN_HYPO
    if glucose_mgdl > levels.hyper:
        bits |= WarningFlags.RESULT_HIGHER_THAN_HYPER
    if trend is not None and trend < -levels.rate_of_decrease:
        bits |= WarningFlags.RATE_OF_DECREASE_EXCEEDED
    if trend is not None and trend > levels.rate_of_increase:
        bits |= WarningFlags.RATE_OF_INCREASE_EXCEEDED
    if glucose_mgdl < DISPLAY_MIN_MGDL:
        bits |= WarningFlags.RESULT_LOWER_THAN_DEVICE_CAN_PROCESS
    if glucose_mgdl > DISPLAY_MAX_MGDL:
        bits |= WarningFlags.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS
    return int(bits)


# User calibration (SOCP Set Calibration Value), *project default* rules:
CALIBRATION_RANGE_MGDL = (40.0, 400.0)  # a reference outside -> status "out of range"
CALIBRATION_MATCH_MIN = 5  # a reading must exist this close to the calibration time
CALIBRATION_MAX_CORRECTION = 0.3  # reference/reading outside 1 +- 0.3 -> "rejected"


def calibration_factor(
    reference_mgdl: float, reading_mgdl: float | None
) -> tuple[float | None, int]:
    """The gain correction a calibration asks for, and its status bits (CalibrationStatus):
    ``(reference / reading, 0)`` when accepted, ``(None, bits)`` when not. Accepted factors
    multiply every later reading until the next accepted calibration or a new session."""
    low, high = CALIBRATION_RANGE_MGDL
    if not low <= reference_mgdl <= high:
        return None, int(CalibrationStatus.OUT_OF_RANGE)
    if reading_mgdl is None or reading_mgdl <= 0:
        return None, int(CalibrationStatus.REJECTED)
    if abs(reference_mgdl - reading_mgdl) > CALIBRATION_MAX_CORRECTION * reading_mgdl:
        return None, int(CalibrationStatus.REJECTED)
    return reference_mgdl / reading_mgdl, 0
