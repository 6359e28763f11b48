"""A crafted run directory, written file by file, whose report numbers can be worked out by hand."""

from __future__ import annotations

import json
import pathlib

HEADER = "time_offset_min,reference_mgdl,sensor_mgdl,displayed,trend_mgdl_min,arrow,delivery"

# 20 displayed readings: 1 LOW (40, < 54), 2 at 60 (54-69), 12 at 100 (70-180),
# 4 at 200 (181-250), 1 HIGH (400, > 250): 5 / 10 / 60 / 20 / 5 % of readings,
# mean (40 + 2*60 + 12*100 + 4*200 + 400) / 20 = 128 mg/dL.
DISPLAYED = ["LOW"] + ["60"] * 2 + ["100"] * 12 + ["200"] * 4 + ["HIGH"]
BACKFILLED_AT = {60, 65, 70}  # of the displayed, these arrived by backfill
LOST_AT, NO_READING_AT = 130, 135  # two slots in the wear window with nothing displayed
ALERTS = [(40.0, "low"), (95.0, "high"), (125.0, "low"), (135.0, "signal_loss")]


def write_run(out: pathlib.Path, *, clock: str | None = "2026-03-01T22:00:00") -> pathlib.Path:
    """Rows every 5 min from 0: warm-up to 25, then DISPLAYED from 30 (skipping the lost and
    no-reading slots), last row at 135 min; the run ends at 140 min: 22 slots in the wear
    window [27, 140), 20 of them displayed."""
    out.mkdir(parents=True, exist_ok=True)
    session = {
        "warmup_end_min": 27.0,
        "expiry_min": 14400.0,
        "grace_end_min": 15120.0,
        "simulated_min": 140.0,
    }
    if clock is not None:
        session["clock_at_zero"] = clock
    summary = {"profile": "g7", "seed": 7, "link": "memory", "reference": "crafted"}
    (out / "summary.json").write_text(json.dumps(summary | {"session": session}))
    lines = [HEADER] + [f"{t},120.0,,,,," for t in range(0, 30, 5)]
    shown = iter(DISPLAYED)
    for t in range(30, 140, 5):
        if t == LOST_AT:
            lines.append(f"{t},120.0,118,,,,lost")
        elif t == NO_READING_AT:
            lines.append(f"{t},120.0,,,,,")
        else:
            text = next(shown)
            value = {"LOW": 40, "HIGH": 400}.get(text, text)
            delivery = "backfill" if t in BACKFILLED_AT else "live"
            lines.append(f"{t},{float(value) + 10:.1f},{value},{text},0.5,Flat,{delivery}")
    (out / "readings.csv").write_text("\n".join(lines) + "\n")
    events = [{"t_min": 0.0, "kind": "phase", "phase": "warmup"}]
    events.append({"t_min": 27.0, "kind": "phase", "phase": "active"})
    for t, name in ALERTS:
        events.append({"t_min": t, "kind": "alert_raised", "alert": name, "reason": ""})
    events.append({"t_min": 45.0, "kind": "alert_repeated", "alert": "low"})
    events.append({"t_min": 50.0, "kind": "alert_cleared", "alert": "low"})
    events.sort(key=lambda e: e["t_min"])
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return out
