"""A population study's numbers from its sessions (population.json).

Alert performance per alert type (``sim.population.labelling``), pooled over every session and
per patient group; accuracy (``sim.metrics.accuracy``) over every displayed (reference, sensor)
pair of every session; times in ranges (``sim.metrics.session_metrics``) of the reference and of
the displayed readings. Sessions are taken in index order, so the numbers depend only on the
sessions, never on the order workers finished them.

The UVA/Padova 2008 model has no counter-regulation: some patients' plasma glucose falls far
below anything a sensor measures, even to 0 mg/dL. Accuracy is therefore scored, as sensor
studies do, on the pairs whose reference is in the measuring range 40-400 mg/dL (the count left
out is ``accuracy.pairs_outside_range``); times in ranges count every sample, with values below
1 mg/dL taken as 1 (the risk indices take a logarithm; no range boundary moves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.metrics import accuracy, in_measuring_range, session_metrics
from sim.population.labelling import Tally, label, rules, warned_before
from sim.population.sessions import SessionOutcome

# G6 pivotal study as quoted in shared/spec/behavior.md ("Alerts"): Urgent Low Soon warned
# correctly within 30 min before glucose fell below 70 mg/dL in 84 % of cases.
ANCHOR_PERCENT = 84.0
ANCHOR_SOURCE = (
    "G6 pivotal study (Wadwa 2018) as quoted in shared/spec/behavior.md: Urgent Low Soon warned "
    "correctly within 30 min before glucose fell below 70 mg/dL in 84 % of cases"
)
ANCHOR_BELOW_MGDL = 70.0
ANCHOR_BEFORE_MIN = 30.0
TIME_IN_RANGE_KEYS = (
    "time_in_range_70_180",
    "time_below_70",
    "time_below_54",
    "time_above_180",
    "time_above_250",
    "mean_mgdl",
    "cv_percent",
)


def alert_tallies(outcomes: Sequence[SessionOutcome]) -> dict[str, Tally]:
    """Each scored alert's counts, summed over ``outcomes``."""
    tallies: dict[str, Tally] = {}
    for rule in rules():
        total = Tally()
        for o in outcomes:
            total += label(
                o.time_min,
                o.reference_mgdl,
                o.alerts.get(rule.alert, []),
                rule,
                o.warmup_end_min,
                o.end_min,
            )
        tallies[rule.alert] = total
    return tallies


def anchor(outcomes: Sequence[SessionOutcome]) -> dict[str, Any]:
    """Urgent Low Soon detection next to the published anchor: the spec's detection rate of
    reference <= 55 events, and the anchor's own measure (warned within 30 min before the
    reference fell below 70)."""
    warned = falls = 0
    for o in outcomes:
        w, f = warned_before(
            o.time_min,
            o.reference_mgdl,
            o.alerts.get("urgent_low_soon", []),
            ANCHOR_BELOW_MGDL,
            o.warmup_end_min,
            ANCHOR_BEFORE_MIN,
        )
        warned, falls = warned + w, falls + f
    uls = alert_tallies(outcomes)["urgent_low_soon"].to_json()
    return {
        "published_percent": ANCHOR_PERCENT,
        "source": ANCHOR_SOURCE,
        "urgent_low_soon_detection_rate": uls["detection_rate"],
        "urgent_low_soon_events": uls["events"],
        "warned_before_below_70_rate": 100.0 * warned / falls if falls else None,
        "falls_below_70": falls,
    }


def _ranges(values: np.ndarray) -> dict[str, float] | None:
    if np.all(np.isnan(values)):
        return None
    metrics = session_metrics(np.maximum(values, 1.0)).to_json()
    return {key: float(metrics[key]) for key in TIME_IN_RANGE_KEYS}  # type: ignore[arg-type]


def _session_medians(outcomes: Sequence[SessionOutcome]) -> dict[str, float] | None:
    """The median session's time in ranges, mean and CV of the reference (each key on its
    own), as real-world CGM studies report their cohorts."""
    per_session = [r for r in (_ranges(o.reference_mgdl) for o in outcomes) if r is not None]
    if not per_session:
        return None
    return {key: float(np.median([r[key] for r in per_session])) for key in TIME_IN_RANGE_KEYS}


def _pairs(reference: np.ndarray, sensor: np.ndarray) -> np.ndarray:
    """Where a displayed reading pairs with a reference in the measuring range."""
    return ~np.isnan(sensor) & in_measuring_range(reference)


def _accuracy(reference: np.ndarray, sensor: np.ndarray) -> dict[str, Any] | None:
    paired = _pairs(reference, sensor)
    if not paired.any():
        return None
    scored = accuracy(reference[paired], sensor[paired]).to_json()
    scored["pairs_outside_range"] = int(np.count_nonzero(~np.isnan(sensor) & ~paired))
    return scored


def _session_row(o: SessionOutcome) -> dict[str, Any]:
    paired = _pairs(o.reference_mgdl, o.sensor_mgdl)
    ref, cgm = o.reference_mgdl[paired], o.sensor_mgdl[paired]
    mard = float(np.mean(np.abs(cgm - ref) / ref)) * 100.0 if paired.any() else None
    ranges = _ranges(o.reference_mgdl)
    return {
        "index": o.index,
        "patient": o.patient,
        "seed": o.seed,
        "mard": mard,
        "reference_time_below_70": ranges["time_below_70"] if ranges else None,
        "reference_time_in_range_70_180": ranges["time_in_range_70_180"] if ranges else None,
        "alerts": {name: len(eps) for name, eps in sorted(o.alerts.items())},
    }


def summarise(outcomes: Sequence[SessionOutcome]) -> dict[str, Any]:
    """population.json without the run's own settings and wall time (``sim.population.study``
    adds them)."""
    outcomes = sorted(outcomes, key=lambda o: o.index)
    reference = np.concatenate([o.reference_mgdl for o in outcomes])
    sensor = np.concatenate([o.sensor_mgdl for o in outcomes])
    groups = sorted({o.group for o in outcomes})
    return {
        "sessions": len(outcomes),
        "monitored_days": sum(max(o.end_min - o.warmup_end_min, 0.0) for o in outcomes) / 1440.0,
        "alert_performance": {k: t.to_json() for k, t in alert_tallies(outcomes).items()},
        "anchor": anchor(outcomes),
        "accuracy": _accuracy(reference, sensor),
        "time_in_ranges": {"reference": _ranges(reference), "sensor": _ranges(sensor)},
        "reference_min_mgdl": float(np.nanmin(reference)),
        "by_group": {
            group: {
                "sessions": sum(o.group == group for o in outcomes),
                "alert_performance": {
                    k: t.to_json()
                    for k, t in alert_tallies([o for o in outcomes if o.group == group]).items()
                },
                "reference_time_in_ranges": _ranges(
                    np.concatenate([o.reference_mgdl for o in outcomes if o.group == group])
                ),
                "reference_session_medians": _session_medians(
                    [o for o in outcomes if o.group == group]
                ),
            }
            for group in groups
        },
        "per_session": [_session_row(o) for o in outcomes],
    }
