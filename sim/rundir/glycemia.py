"""The numbers of a session report, from a ``Run`` read back from its files.

- Glucose is what the receiver displayed (LOW 40, HIGH 400 mg/dL), every displayed reading
  once, live or backfilled alike: that is what a patient's report is made of.
- Time in ranges, targets and the core metrics follow the international consensus (Battelino
  et al., "Clinical Targets for Continuous Glucose Monitoring Data Interpretation", Diabetes
  Care 42:1593, 2019): bands < 54, 54-69, 70-180, 181-250, > 250 mg/dL as percent of readings;
  targets for most adults with type 1 or type 2 diabetes: < 54 under 1 %, < 70 (both low bands)
  under 4 %, 70-180 over 70 %, > 180 (both high bands) under 25 %, > 250 under 5 %; CV at most
  36 %. GMI % = 3.31 + 0.02392 x mean mg/dL (Bergenstal et al., Diabetes Care 41:2275, 2018),
  computed by ``sim.metrics.session_metrics``.
- CGM active % = displayed readings / 5-min slots of the wear window (warm-up end to the end
  of the grace period, an ``ended``/``failed`` phase or the end of the run, whichever is first).
  The consensus asks for at least 70 % over 14 days; a sensor session is 10 days, so the report
  states the days of data next to the percentage.
- Accuracy is scored by ``displayed_accuracy`` over the displayed rows with a sensor value and
  a reference in the measuring range. ``cgmsim simulate`` scores summary.json's figures with the
  same function over the same rows, and readings.csv keeps the reference unrounded (Python's
  shortest round-trip form), so the report recomputed from the files of any run directory gives
  summary.json's numbers to the last bit.
- AGP: displayed readings by wall-clock time of day (``Run.clock_at_zero``) in 15-min bins;
  per bin the 5th, 25th, 50th, 75th and 95th percentiles (numpy's linear interpolation), not
  smoothed; a bin with no reading is NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.metrics import Accuracy, accuracy, in_measuring_range, session_metrics
from sim.rundir.files import ALERT_ORDER, Run

AGP_BIN_MIN = 15
AGP_PERCENTILES = (5, 25, 50, 75, 95)
CV_TARGET_PERCENT = 36.0
ACTIVE_TARGET_PERCENT = 70.0

# (key, label); the bounds are drawn as sim.metrics.session_metrics draws them: < 54,
# [54, 70), [70, 180], (180, 250], > 250 mg/dL (displayed values are whole numbers).
TIR_BANDS = (
    ("very_low", "< 54"),
    ("low", "54-69"),
    ("in_range", "70-180"),
    ("high", "181-250"),
    ("very_high", "> 250"),
)
# Consensus targets (Battelino 2019): (what is measured, keys it adds up, "<" or ">", percent)
TIR_TARGETS = {
    "very_low": ("< 54", ("very_low",), "<", 1.0),
    "low": ("< 70", ("very_low", "low"), "<", 4.0),
    "in_range": ("70-180", ("in_range",), ">", 70.0),
    "high": ("> 180", ("high", "very_high"), "<", 25.0),
    "very_high": ("> 250", ("very_high",), "<", 5.0),
}


def time_in_ranges(glucose_mgdl: np.ndarray) -> list[dict[str, Any]]:
    """One row per consensus band: percent of readings, the target and whether it is met."""
    glucose = glucose_mgdl[~np.isnan(glucose_mgdl)]
    if glucose.size == 0:
        raise ValueError("no displayed readings")
    g = glucose
    masks = {
        "very_low": g < 54,
        "low": (g >= 54) & (g < 70),
        "in_range": (g >= 70) & (g <= 180),
        "high": (g > 180) & (g <= 250),
        "very_high": g > 250,
    }
    percent = {key: 100.0 * np.count_nonzero(mask) / g.size for key, mask in masks.items()}
    rows = []
    for key, label in TIR_BANDS:
        measured, keys, sense, limit = TIR_TARGETS[key]
        total = sum(percent[k] for k in keys)
        met = total < limit if sense == "<" else total > limit
        rows.append(
            {
                "band": key,
                "label": label,
                "percent": percent[key],
                "target": f"{measured}: {sense} {limit:g} %",
                "met": bool(met),
            }
        )
    return rows


def agp(run: Run, bin_min: int = AGP_BIN_MIN) -> dict[str, Any]:
    """Percentiles of the displayed glucose by time of day (see the module docstring)."""
    shown = run.shown
    glucose = run.displayed_mgdl[shown]
    bins = int(1440 // bin_min)
    which = (run.clock_of(run.time_min[shown]) // bin_min).astype(int) % bins
    table = np.full((len(AGP_PERCENTILES), bins), np.nan)
    counts = np.bincount(which, minlength=bins)
    for b in np.flatnonzero(counts):
        table[:, b] = np.percentile(glucose[which == b], AGP_PERCENTILES)
    return {
        "bin_min": bin_min,
        "clock_min": (np.arange(bins) + 0.5) * bin_min,
        "counts": counts,
        **{f"p{p}": table[i] for i, p in enumerate(AGP_PERCENTILES)},
    }


def readings_summary(run: Run) -> dict[str, Any]:
    expected = run.expected()
    shown = run.shown
    start, end = run.wear_window()
    slots = int(np.count_nonzero(expected))
    in_window = int(np.count_nonzero(shown & expected))
    first = run.time_min[shown][0] if shown.any() else None
    last = run.time_min[shown][-1] if shown.any() else None
    return {
        "displayed": int(np.count_nonzero(shown)),
        "live": int(np.count_nonzero(run.delivered("live"))),
        "backfilled": int(np.count_nonzero(run.delivered("backfill"))),
        "lost": int(np.count_nonzero(run.delivered("lost"))),
        "no_reading": int(np.count_nonzero(expected & ~shown & ~run.delivered("lost"))),
        "expected": slots,
        "active_percent": 100.0 * in_window / slots if slots else None,
        "wear_start_min": start,
        "wear_end_min": min(end, run.end_min),
        "days_of_data": None if first is None else float(last - first + 5) / 1440.0,
    }


def displayed_accuracy(
    reference_mgdl: np.ndarray, sensor_mgdl: np.ndarray
) -> tuple[Accuracy | None, int]:
    """Accuracy of the displayed readings: ``reference_mgdl`` and ``sensor_mgdl`` hold one value
    per displayed reading (sensor NaN where the transmitter gave no value). Pairs whose reference
    lies outside the measuring range (40-400 mg/dL) or is missing are not scored; the second
    value counts them. None when nothing is left to score."""
    paired = ~np.isnan(sensor_mgdl)
    scored = paired & in_measuring_range(reference_mgdl)
    outside = int(np.count_nonzero(paired & ~scored))
    if not scored.any():
        return None, outside
    return accuracy(reference_mgdl[scored], sensor_mgdl[scored]), outside


def accuracy_summary(run: Run) -> dict[str, Any] | None:
    scored, _ = displayed_accuracy(run.reference_mgdl[run.shown], run.sensor_mgdl[run.shown])
    if scored is None:
        return None
    return {
        "pairs": scored.pairs,
        "mard": scored.mard,
        "bias_mgdl": scored.bias_mgdl,
        "within_15_15": scored.within_15_15,
        "within_20_20": scored.within_20_20,
        "within_40_40": scored.within_40_40,
        "clarke_a": scored.clarke["A"],
    }


def alert_counts(run: Run) -> list[dict[str, Any]]:
    """Per alert name seen in events.jsonl: times raised, repeated and acknowledged."""
    counts: dict[str, dict[str, int]] = {}
    for event in run.events:
        kind = event["kind"]
        if kind in ("alert_raised", "alert_repeated", "alert_acknowledged"):
            row = counts.setdefault(event["alert"], {"raised": 0, "repeated": 0, "acknowledged": 0})
            row[kind.removeprefix("alert_")] += 1
    known = [name for name in ALERT_ORDER if name in counts]
    return [{"alert": n, **counts[n]} for n in known + sorted(set(counts) - set(known))]


def summarise(run: Run) -> dict[str, Any]:
    """Everything the report shows, JSON-ready (``cgmsim report --json``)."""
    glucose = run.displayed_mgdl[run.shown]
    core = session_metrics(glucose).to_json() if glucose.size else None
    return {
        "run_dir": str(run.path),
        "profile": run.profile,
        "seed": run.summary.get("seed"),
        "reference": run.summary.get("reference"),
        "clock_at_zero": run.clock_at_zero.isoformat(),
        "readings": readings_summary(run),
        "glucose": None
        if core is None
        else {
            "mean_mgdl": core["mean_mgdl"],
            "gmi_percent": core["gmi_percent"],
            "cv_percent": core["cv_percent"],
            "cv_target_met": core["cv_percent"] <= CV_TARGET_PERCENT,
            "sd_mgdl": core["sd_mgdl"],
        },
        "time_in_ranges": time_in_ranges(glucose) if glucose.size else [],
        "accuracy": accuracy_summary(run),
        "alerts": alert_counts(run),
    }
