"""What the receiver shows for a reading (shared/spec/behavior.md, "Readings and display").

Display range 40-400 mg/dL: below shows LOW, above HIGH (the sensor flags them with the
Warning bits "result lower/higher than the device can process"). Trend arrows from the
15-minute rate (G7SensorKit ``trendType`` bins), named as Nightscout does.
"""

from __future__ import annotations

import enum

from protocol.cgms.annunciation import WarningFlags

NOT_COMPUTABLE = "NOT COMPUTABLE"
# (upper bound of the bin, inclusive?, name), scanned in order
_BINS = (
    (-3.0, True, "DoubleDown"),
    (-2.0, True, "SingleDown"),
    (-1.0, True, "FortyFiveDown"),
    (1.0, False, "Flat"),
    (2.0, False, "FortyFiveUp"),
    (3.0, False, "SingleUp"),
)


class Showing(str, enum.Enum):  # noqa: UP042 - (str, Enum) by design
    """What the receiver shows in the glucose value's place (``Receiver.showing``): the newest
    reading, or the state that replaces it (behavior.md: no glucose during warm-up, after the
    session ended or the sensor failed; a lost signal or a sensor issue withholds readings)."""

    READING = "reading"  # the newest reading shown ("123", "LOW" or "HIGH")
    NO_SESSION = "no_session"  # no sensor session known yet
    WARMUP = "warmup"
    SIGNAL_LOSS = "signal_loss"
    SENSOR_ISSUE = "sensor_issue"
    SENSOR_FAILED = "sensor_failed"
    REPLACE_SENSOR = "replace_sensor"  # the session ended (or was stopped)


def arrow(trend_mgdl_min: float | None) -> str:
    """rate <= -3 DoubleDown; <= -2 SingleDown; <= -1 FortyFiveDown; < 1 Flat; < 2 FortyFiveUp;
    < 3 SingleUp; >= 3 DoubleUp; no trend: NOT COMPUTABLE."""
    if trend_mgdl_min is None:
        return NOT_COMPUTABLE
    for bound, inclusive, name in _BINS:
        if trend_mgdl_min < bound or (inclusive and trend_mgdl_min == bound):
            return name
    return "DoubleUp"


def shown(glucose_mgdl: float, warning: int | None) -> str:
    """The text on the screen: LOW, HIGH or the whole mg/dL value."""
    bits = warning or 0
    if bits & WarningFlags.RESULT_LOWER_THAN_DEVICE_CAN_PROCESS or glucose_mgdl < 40:
        return "LOW"
    if bits & WarningFlags.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS or glucose_mgdl > 400:
        return "HIGH"
    return str(round(glucose_mgdl))
