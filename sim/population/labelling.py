"""Alert performance as device labelling scores it (shared/spec/behavior.md, "Alerts"; CLSI
POCT05), against the reference glucose of a session.

- *True alert rate*: the share of alerts confirmed by reference glucose past the alert's
  threshold within +-15 min of the alert (predictive alerts: within the 30 min after it).
- *Detection rate*: the share of reference events that were alerted between 30 min before and
  15 min after the event.
- *False alerts per day*: alerts not confirmed, per day of monitoring (warm-up end to run end).

Choices where the spec is silent (tests: tests/sim/test_population_labelling.py):

- An *alert* is an ``alert_raised`` (an episode); repeats of a raised alert are not new alerts.
- A *reference event* starts at the first 5-min reference sample past the threshold after a
  sample that is not past it, inside the monitored window (from warm-up end to the end of the
  run): an episode already under way when alerts become possible has no onset to warn of.
- An event is *alerted* when an episode of the alert overlaps the window, i.e. it was raised in
  the window or was still active (raised, not yet cleared) when the window opened.
- Windows are closed intervals ``[a, b]`` in minutes; "past" is ``<=`` for low alerts and
  ``>=`` for high ones, as the receiver's own comparisons.
- Urgent Low Soon predicts a reading <= 55 within 20 min: its events are reference onsets of
  <= 55, and an alert is true when the reference is <= 55 within the 30 min after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from firmware.receiver.alerts import URGENT_LOW_MGDL, AlertSettings

CONFIRM_MIN = 15.0  # an alert is confirmed within +-15 min ...
PREDICTIVE_CONFIRM_MIN = 30.0  # ... a predictive one within the 30 min after
DETECT_BEFORE_MIN = 30.0  # an event is detected by an alert 30 min before ...
DETECT_AFTER_MIN = 15.0  # ... to 15 min after it


@dataclass(frozen=True, slots=True)
class AlertRule:
    """What confirms an alert: reference ``<= threshold`` (``below``) or ``>= threshold``."""

    alert: str
    threshold_mgdl: float
    below: bool
    predictive: bool = False
    strict: bool = False  # ``<`` / ``>`` instead of ``<=`` / ``>=``

    def past(self, glucose: np.ndarray) -> np.ndarray:
        if self.below:
            return glucose < self.threshold_mgdl if self.strict else glucose <= self.threshold_mgdl
        return glucose > self.threshold_mgdl if self.strict else glucose >= self.threshold_mgdl


def rules(settings: AlertSettings | None = None) -> tuple[AlertRule, ...]:
    """The glucose-level alerts scored, with the receiver's thresholds."""
    settings = settings or AlertSettings()
    return (
        AlertRule("urgent_low", URGENT_LOW_MGDL, below=True),
        AlertRule("urgent_low_soon", URGENT_LOW_MGDL, below=True, predictive=True),
        AlertRule("low", settings.low_mgdl, below=True),
        AlertRule("high", settings.high_mgdl, below=False),
    )


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts behind the rates, summed over sessions."""

    alerts: int = 0
    true_alerts: int = 0
    events: int = 0
    detected: int = 0
    monitored_days: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.alerts + other.alerts,
            self.true_alerts + other.true_alerts,
            self.events + other.events,
            self.detected + other.detected,
            self.monitored_days + other.monitored_days,
        )

    def to_json(self) -> dict[str, float | int | None]:
        """Counts and the rates in percent (None where there is nothing to divide by)."""
        false_alerts = self.alerts - self.true_alerts
        return {
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
            "true_alert_rate": _percent(self.true_alerts, self.alerts),
            "events": self.events,
            "detected": self.detected,
            "detection_rate": _percent(self.detected, self.events),
            "false_alerts": false_alerts,
            "false_alerts_per_day": false_alerts / self.monitored_days
            if self.monitored_days > 0
            else None,
        }


def _percent(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def episodes(
    records: Iterable[dict[str, object]], alert: str, end_min: float
) -> list[tuple[float, float]]:
    """``(raised_min, cleared_min)`` of every episode of ``alert`` in events.jsonl records; an
    episode never cleared lasts to ``end_min``."""
    out: list[tuple[float, float]] = []
    raised: float | None = None
    for record in records:
        if record.get("alert") != alert:
            continue
        t = float(record["t_min"])  # type: ignore[arg-type]
        if record["kind"] == "alert_raised" and raised is None:
            raised = t
        elif record["kind"] == "alert_cleared" and raised is not None:
            out.append((raised, t))
            raised = None
    if raised is not None:
        out.append((raised, end_min))
    return out


def reference_events(
    time_min: npt.ArrayLike, reference: npt.ArrayLike, rule: AlertRule, start_min: float
) -> np.ndarray:
    """Onset times of reference events at or after ``start_min`` (see the module docstring)."""
    t = np.asarray(time_min, dtype=float)
    past = rule.past(np.asarray(reference, dtype=float))
    onset = past[1:] & ~past[:-1]
    times = t[1:][onset]
    return times[times >= start_min]


def label(
    time_min: npt.ArrayLike,
    reference: npt.ArrayLike,
    alert_episodes: Sequence[tuple[float, float]],
    rule: AlertRule,
    start_min: float,
    end_min: float,
) -> Tally:
    """Score one session's episodes of one alert against its reference (5-min samples)."""
    t = np.asarray(time_min, dtype=float)
    past_times = t[rule.past(np.asarray(reference, dtype=float))]
    true_alerts = 0
    for raised, _ in alert_episodes:
        lo, hi = (
            (raised, raised + PREDICTIVE_CONFIRM_MIN)
            if rule.predictive
            else (raised - CONFIRM_MIN, raised + CONFIRM_MIN)
        )
        true_alerts += bool(np.any((past_times >= lo) & (past_times <= hi)))
    events = reference_events(t, reference, rule, start_min)
    detected = sum(
        any(
            raised <= e + DETECT_AFTER_MIN and cleared >= e - DETECT_BEFORE_MIN
            for raised, cleared in alert_episodes
        )
        for e in events
    )
    return Tally(
        alerts=len(alert_episodes),
        true_alerts=true_alerts,
        events=len(events),
        detected=detected,
        monitored_days=max(end_min - start_min, 0.0) / 1440.0,
    )


def warned_before(
    time_min: npt.ArrayLike,
    reference: npt.ArrayLike,
    alert_episodes: Sequence[tuple[float, float]],
    below_mgdl: float,
    start_min: float,
    before_min: float = 30.0,
) -> tuple[int, int]:
    """The published anchor's own measure: of the reference falls below ``below_mgdl`` (onset:
    the first sample ``< below_mgdl``), how many had an episode of the alert active at some time
    in the ``before_min`` before the fall. Returns ``(warned, falls)``."""
    rule = AlertRule("fall", below_mgdl, below=True, strict=True)
    falls = reference_events(time_min, reference, rule, start_min)
    warned = sum(
        any(raised <= e and cleared >= e - before_min for raised, cleared in alert_episodes)
        for e in falls
    )
    return warned, len(falls)
