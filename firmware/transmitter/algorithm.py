"""Raw sensor counts -> mg/dL, as the transmitter computes it.

A factory-calibrated sensor ships with a calibration code: the sensitivity (counts per mg/dL)
and background (counts) measured for its production lot. The transmitter applies them; how far
the real sensor drifts from them is the sensor's error (modelled in ``sim.signal``). Works on
scalars and on numpy arrays alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

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
    """The value a reading carries: rounded to whole mg/dL and limited to 40-400."""
    return np.clip(np.rint(glucose_mgdl), DISPLAY_MIN_MGDL, DISPLAY_MAX_MGDL)
