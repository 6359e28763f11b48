"""The displayed readings of a run in formats other tools read (``cgmsim export``).

Only readings the receiver displayed are exported (live and backfilled, each once): that is the
data a CGM app would upload. Their time is the session time of the reading (``time_offset_min``,
when the sensor measured it, not when a backfilled one arrived) on the wall clock of the run
(``Run.clock_at_zero``, UTC when it has no zone). LOW and HIGH export as 40 and 400 mg/dL, the
edges of the display range: Nightscout reserves values below 40 for sensor error codes.

- Nightscout ``entries`` (the array ``/api/v1/entries.json`` returns, newest first, as the API
  orders it): ``type`` "sgv", ``sgv`` (mg/dL, whole number), ``date`` (epoch ms),
  ``dateString`` (ISO 8601 UTC with milliseconds and ``Z``), ``direction`` (the Nightscout
  arrow name the receiver showed, ``NOT COMPUTABLE`` when it showed none), ``trend`` (Dexcom's
  numeric code for that direction, which Nightscout stores alongside: DoubleUp 1 ... DoubleDown
  7, NOT COMPUTABLE 8) and ``device`` ``cgmsim-<profile>``.
- CSV, oldest first: ``time_offset_min,glucose_mgdl,date_string,displayed,trend_mgdl_min,
  direction,delivery``. The first two columns are the ``--trace`` CSV format, so either export
  feeds ``cgmsim simulate --trace`` (a Nightscout trace starts at its first entry).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from sim.rundir.files import Run, RunDirError

DIRECTIONS = (
    "DoubleUp",
    "SingleUp",
    "FortyFiveUp",
    "Flat",
    "FortyFiveDown",
    "SingleDown",
    "DoubleDown",
    "NOT COMPUTABLE",
)
TREND_CODES = {name: code for code, name in enumerate(DIRECTIONS, start=1)}
CSV_COLUMNS = (
    "time_offset_min",
    "glucose_mgdl",
    "date_string",
    "displayed",
    "trend_mgdl_min",
    "direction",
    "delivery",
)


def _readings(run: Run) -> list[dict[str, Any]]:
    """The displayed rows, oldest first, with their wall-clock time and direction."""
    values = run.displayed_mgdl
    out = []
    for i in [int(i) for i in run.shown.nonzero()[0]]:
        direction = run.arrow[i] or "NOT COMPUTABLE"
        if direction not in TREND_CODES:
            raise RunDirError(f"{run.path / 'readings.csv'}: unknown arrow {direction!r}")
        when = run.clock_at_zero + dt.timedelta(minutes=float(run.time_min[i]))
        out.append(
            {
                "time_offset_min": float(run.time_min[i]),
                "mgdl": round(float(values[i])),
                "when": when.astimezone(dt.UTC),
                "direction": direction,
                "row": i,
            }
        )
    return out


def nightscout_entries(run: Run) -> list[dict[str, Any]]:
    """Nightscout ``entries`` for every displayed reading, newest first."""
    device = f"cgmsim-{run.profile}"
    entries = [
        {
            "type": "sgv",
            "sgv": reading["mgdl"],
            "date": round(reading["when"].timestamp() * 1000),
            "dateString": _iso(reading["when"]),
            "direction": reading["direction"],
            "trend": TREND_CODES[reading["direction"]],
            "device": device,
        }
        for reading in _readings(run)
    ]
    return entries[::-1]


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _number(value: float) -> str:
    return "" if value != value else f"{value:g}"  # NaN -> empty


def readings_csv(run: Run) -> str:
    """The displayed readings as CSV text (see the module docstring)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for reading in _readings(run):
        i = reading["row"]
        writer.writerow(
            [
                _number(reading["time_offset_min"]),
                reading["mgdl"],
                _iso(reading["when"]),
                run.displayed[i],
                _number(float(run.trend_mgdl_min[i])),
                reading["direction"],
                run.delivery[i],
            ]
        )
    return buffer.getvalue()
