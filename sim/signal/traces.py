"""Reference glucose from a recorded trace (``cgmsim simulate --trace FILE``).

The format is told by content, not by extension: a file whose first non-space character is
``[`` (or ``{``, to report it) is JSON, anything else CSV.

- CSV: a header naming ``time_offset_min`` and ``glucose_mgdl`` (any order; other columns are
  ignored), then one row per reading: minutes from session start (>= 0, strictly increasing as
  written) and mg/dL. Blank lines (and rows of empty cells) are ignored.
- Nightscout entries export: a JSON array of objects. Entries whose ``type`` is ``"sgv"`` or
  absent and that carry ``sgv`` are used (``mbg``, ``cal`` and other types are skipped):
  glucose ``sgv``, time ``date`` (epoch ms) or, without it, ``dateString`` (ISO 8601; UTC when
  it has no zone). Times become minutes since the earliest used entry; entries are sorted by
  time and of entries with the same ``date`` only the first in the file is kept.

Glucose must lie in 10-1000 mg/dL. Any problem raises ``TraceError`` with one line naming the
file and the CSV line (1-based) or JSON entry (0-based index into the array, as ``jq '.[i]'``).

Every patient gets the same trace, resampled onto the 5-min grid by linear interpolation; the
reference is NaN before the first reading, after the last, and inside gaps longer than
``max_gap_min``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import pathlib
from dataclasses import dataclass

import numpy as np

from sim.signal.grid import SAMPLE_MIN

TIME, GLUCOSE = "time_offset_min", "glucose_mgdl"
GLUCOSE_RANGE_MGDL = (10.0, 1000.0)


class TraceError(ValueError):
    """A trace file that cannot be used; the message is one line naming file and place."""


@dataclass(frozen=True, eq=False)
class Trace:
    time_min: np.ndarray  # minutes from session start, strictly increasing
    glucose_mgdl: np.ndarray
    source: str  # the file it came from
    max_gap_min: float = 30.0  # readings further apart than this are not interpolated
    clock_start_min: float = 0.0  # time of day at session start: a trace carries none (midnight)

    def __post_init__(self) -> None:
        time = np.array(self.time_min, dtype=float)
        glucose = np.array(self.glucose_mgdl, dtype=float)
        shaped = time.ndim == 1 and time.size > 0 and time.shape == glucose.shape
        finite = np.isfinite(time).all() and np.isfinite(glucose).all()
        if not (shaped and finite and time[0] >= 0 and (np.diff(time) > 0).all()):
            raise TraceError(
                f"{self.source}: need non-empty, equal-length, finite 1-D arrays, "
                "times >= 0 and strictly increasing"
            )
        time.setflags(write=False)
        glucose.setflags(write=False)
        object.__setattr__(self, "time_min", time)  # frozen: private, read-only copies
        object.__setattr__(self, "glucose_mgdl", glucose)

    @property
    def name(self) -> str:
        return f"trace:{pathlib.Path(self.source).name}"

    @property
    def duration_min(self) -> float:
        return float(self.time_min[-1] - self.time_min[0])

    def at(self, time_min: np.ndarray) -> np.ndarray:
        """Glucose at the given minutes: linear between readings, NaN outside the trace and
        strictly inside gaps longer than ``max_gap_min``."""
        t = np.asarray(time_min, dtype=float)
        x, y = self.time_min, self.glucose_mgdl
        out = np.interp(t, x, y, left=np.nan, right=np.nan)
        interval = np.searchsorted(x, t, side="right") - 1  # x[interval] <= t
        inside = (interval >= 0) & (interval < len(x) - 1)
        wide = np.diff(x) > self.max_gap_min
        k = interval[inside]
        out[np.flatnonzero(inside)[wide[k] & (t[inside] > x[k])]] = np.nan
        return out

    def resample(self, samples: int) -> np.ndarray:
        """Samples ``0 .. samples - 1`` of the 5-min grid (sample ``k`` at ``k * 5`` min)."""
        return self.at(np.arange(samples) * SAMPLE_MIN)

    def start(self, n: int, samples: int, rng: np.random.Generator) -> TraceStream:
        """The same trace for all ``n`` patients; ``rng`` is unused (a trace is fixed)."""
        return TraceStream(self, n, samples)


class TraceStream:
    def __init__(self, trace: Trace, n: int, samples: int) -> None:
        self.trace, self.n, self.position = trace, n, 0
        self.row = trace.resample(samples)

    def next(self, length: int) -> np.ndarray:
        start, stop = self.position, self.position + length
        self.position = stop
        if stop > len(self.row):  # asked past the planned run: extend, same numbers
            self.row = self.trace.resample(stop)
        return np.repeat(self.row[None, start:stop], self.n, axis=0)


def load_trace(path: pathlib.Path) -> Trace:
    """Read a CSV or Nightscout JSON trace (see the module docstring); raise ``TraceError``."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TraceError(f"{path}: cannot read: {error}") from None
    head = text.lstrip()[:1]
    time, glucose = _nightscout(path, text) if head in ("[", "{") else _csv(path, text)
    return Trace(np.array(time), np.array(glucose), str(path))


def _number(value: object) -> float | None:
    """A finite float from a number or numeric string; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _check_glucose(where: str, key: str, value: object) -> float:
    number = _number(value)
    if number is None:
        raise TraceError(f"{where}: {key} {value!r} is not a number")
    low, high = GLUCOSE_RANGE_MGDL
    if not low <= number <= high:
        raise TraceError(f"{where}: {key} {value!r} is outside {low:g}-{high:g} mg/dL")
    return number


def _csv(path: pathlib.Path, text: str) -> tuple[list[float], list[float]]:
    reader = csv.reader(text.splitlines())
    rows = ((reader.line_num, row) for row in reader if any(cell.strip() for cell in row))
    line, header = next(rows, (0, None))
    if header is None:
        raise TraceError(f"{path}: empty file, expected a header {TIME},{GLUCOSE}")
    names = [cell.strip() for cell in header]
    missing = [column for column in (TIME, GLUCOSE) if column not in names]
    if missing:
        found = ",".join(names)
        raise TraceError(f"{path} line {line}: header lacks {', '.join(missing)} (found {found})")
    columns = names.index(TIME), names.index(GLUCOSE)
    times: list[float] = []
    glucose: list[float] = []
    previous = (0, "")  # line and text of the last time
    for line, row in rows:
        where = f"{path} line {line}"
        if len(row) <= max(columns):
            raise TraceError(f"{where}: {len(row)} columns, the header has {len(names)}")
        raw_time, raw_glucose = (row[column].strip() for column in columns)
        time = _number(raw_time)
        if time is None:
            raise TraceError(f"{where}: {TIME} {raw_time!r} is not a number")
        if time < 0:
            raise TraceError(f"{where}: {TIME} {raw_time} is negative")
        if times and time <= times[-1]:
            raise TraceError(
                f"{where}: {TIME} {raw_time} is not after {previous[1]} (line {previous[0]})"
            )
        glucose.append(_check_glucose(where, GLUCOSE, raw_glucose))
        times.append(time)
        previous = (line, raw_time)
    if not times:
        raise TraceError(f"{path}: no readings after the header")
    return times, glucose


def _nightscout(path: pathlib.Path, text: str) -> tuple[list[float], list[float]]:
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as e:
        raise TraceError(
            f"{path} line {e.lineno} column {e.colno}: malformed JSON: {e.msg}"
        ) from None
    if not isinstance(entries, list):
        raise TraceError(f"{path}: expected a JSON array of Nightscout entries")
    used: list[tuple[float, int, float]] = []  # (epoch ms, index, mg/dL)
    for index, entry in enumerate(entries):
        where = f"{path} entry {index}"
        if not isinstance(entry, dict):
            raise TraceError(f"{where}: not a JSON object")
        if entry.get("type", "sgv") != "sgv" or "sgv" not in entry:
            continue
        glucose = _check_glucose(where, "sgv", entry["sgv"])
        used.append((_epoch_ms(where, entry), index, glucose))
    if not used:
        raise TraceError(f"{path}: no sgv entries")
    used.sort()  # by time, then by position in the file
    kept = [item for i, item in enumerate(used) if i == 0 or item[0] != used[i - 1][0]]
    origin = kept[0][0]
    return [(ms - origin) / 60_000.0 for ms, _, _ in kept], [mgdl for _, _, mgdl in kept]


def _epoch_ms(where: str, entry: dict) -> float:
    if "date" in entry:
        ms = _number(entry["date"])
        if ms is None:
            raise TraceError(f"{where}: date {entry['date']!r} is not a number (epoch ms)")
        return ms
    if "dateString" not in entry:
        raise TraceError(f"{where}: neither date nor dateString")
    try:
        stamp = dt.datetime.fromisoformat(str(entry["dateString"]))
    except ValueError:
        raise TraceError(f"{where}: dateString {entry['dateString']!r} is not ISO 8601") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp() * 1000.0
