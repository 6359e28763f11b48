"""Read a run directory (``summary.json``, ``readings.csv``, ``events.jsonl``; formats in
shared/design/cli.md) back into one ``Run``, so reports and exports work on any past run.

Anything missing or malformed raises ``RunDirError`` with one line naming the file (and the CSV
line, 1-based, or the JSONL line, 1-based). What the files must hold:

- ``summary.json``: an object with ``profile`` and ``session`` holding ``warmup_end_min``,
  ``expiry_min`` and ``grace_end_min`` (null without grace). ``session.simulated_min`` is used
  when present, else the last row of readings.csv. ``session.clock_at_zero`` (ISO 8601, written
  by ``cgmsim simulate`` since the reports existed) is the wall clock at session time 0; a
  summary without it gets ``DEFAULT_CLOCK_AT_ZERO``, the simulator's own default
  (``sim.session.config.SimulationConfig.clock_at_zero``). A clock without a zone is UTC.
- ``readings.csv``: the header of ``sim.outputs.READINGS_COLUMNS`` (any order, extra columns
  ignored); numbers where numbers belong (``nan`` allowed for the reference), ``displayed`` a
  whole mg/dL value, ``LOW`` or ``HIGH`` or empty, ``delivery`` ``live``/``backfill``/``lost``
  or empty.
- ``events.jsonl``: one JSON object per line with a numeric ``t_min`` and a string ``kind``.

Displayed ``LOW`` / ``HIGH`` count as 40 / 400 mg/dL, the edges of the display range
(shared/spec/behavior.md, "Readings and display"), wherever a number is needed.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import pathlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware.receiver.alerts import AlertName

SUMMARY, READINGS, EVENTS = "summary.json", "readings.csv", "events.jsonl"
COLUMNS = (
    "time_offset_min",
    "reference_mgdl",
    "sensor_mgdl",
    "displayed",
    "trend_mgdl_min",
    "arrow",
    "delivery",
)
DELIVERIES = ("live", "backfill", "lost", "")
DISPLAY_EDGES_MGDL = {"LOW": 40.0, "HIGH": 400.0}
#: The default clock of sim.session.config.SimulationConfig (tests/sim/test_rundir_report.py).
DEFAULT_CLOCK_AT_ZERO = dt.datetime(2026, 1, 5, 8, 0, 0, tzinfo=dt.UTC)
#: Alert names in the order of shared/design/cli.md.
ALERT_ORDER = tuple(name.value for name in AlertName)
#: Phases in which the receiver shows readings: the wear period of the consensus metrics.
READING_PHASES = ("active", "grace")


class RunDirError(ValueError):
    """A run directory that cannot be read; the message is one line naming the file."""


@dataclass(frozen=True, eq=False)
class Run:
    """One run directory's contents. Arrays are aligned with the rows of readings.csv;
    missing numbers are NaN, missing text is ''."""

    path: pathlib.Path
    summary: dict[str, Any]
    time_min: np.ndarray
    reference_mgdl: np.ndarray
    sensor_mgdl: np.ndarray
    displayed: tuple[str, ...]
    trend_mgdl_min: np.ndarray
    arrow: tuple[str, ...]
    delivery: tuple[str, ...]
    events: tuple[dict[str, Any], ...]
    clock_at_zero: dt.datetime
    warmup_end_min: float
    end_min: float  # how far the run was simulated

    @property
    def profile(self) -> str:
        return str(self.summary["profile"])

    @property
    def shown(self) -> np.ndarray:
        """Rows with a displayed reading."""
        return np.array([text != "" for text in self.displayed], dtype=bool)

    @property
    def displayed_mgdl(self) -> np.ndarray:
        """The displayed value per row (LOW 40, HIGH 400), NaN where nothing was displayed."""
        return np.array([_display_value(text) for text in self.displayed])

    def delivered(self, how: str) -> np.ndarray:
        """Rows whose delivery is ``how`` (live, backfill, lost)."""
        return np.array([d == how for d in self.delivery], dtype=bool)

    def phases(self) -> list[tuple[float, float, str]]:
        """(start_min, end_min, phase) spans from the phase events, the last one to the end."""
        changes = [
            (float(e["t_min"]), str(e["phase"])) for e in self.events if e["kind"] == "phase"
        ]
        ends = [start for start, _ in changes[1:]] + [self.end_min]
        return [
            (start, end, name)
            for (start, name), end in zip(changes, ends, strict=True)
            if end > start
        ]

    def wear_window(self) -> tuple[float, float]:
        """[start, end) in minutes in which the receiver should show a reading every 5 min:
        warm-up end to the first ``ended``/``failed`` phase (else the end of the run)."""
        stops = [
            float(e["t_min"])
            for e in self.events
            if e["kind"] == "phase" and e.get("phase") in ("ended", "failed")
        ]
        return self.warmup_end_min, min([*stops, self.end_min + 1e-9])

    def expected(self) -> np.ndarray:
        """Rows inside the wear window: the readings the receiver should have shown."""
        start, end = self.wear_window()
        return (self.time_min >= start) & (self.time_min < end)

    def alerts_raised(self) -> Counter[str]:
        return Counter(str(e["alert"]) for e in self.events if e["kind"] == "alert_raised")

    def clock_of(self, time_min: np.ndarray | float) -> np.ndarray:
        """Minutes after midnight (wall clock) of session times."""
        zero = self.clock_at_zero
        midnight_offset = zero.hour * 60 + zero.minute + zero.second / 60
        return (np.asarray(time_min, dtype=float) + midnight_offset) % 1440.0


def _display_value(text: str) -> float:
    if text == "":
        return math.nan
    return DISPLAY_EDGES_MGDL[text] if text in DISPLAY_EDGES_MGDL else float(text)


def load_run(path: pathlib.Path) -> Run:
    """Read the run directory ``path``; raise ``RunDirError`` (one line) on any problem."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory (no such directory)")
    summary = _summary(path / SUMMARY)
    columns = _readings(path / READINGS)
    events = _events(path / EVENTS)
    session = summary["session"]
    time_min = columns["time_offset_min"]
    simulated = session.get("simulated_min")
    end_min = float(simulated) if _is_number(simulated) else float(time_min[-1])
    return Run(
        path=path,
        summary=summary,
        time_min=time_min,
        reference_mgdl=columns["reference_mgdl"],
        sensor_mgdl=columns["sensor_mgdl"],
        displayed=columns["displayed"],
        trend_mgdl_min=columns["trend_mgdl_min"],
        arrow=columns["arrow"],
        delivery=columns["delivery"],
        events=events,
        clock_at_zero=_clock(path / SUMMARY, session.get("clock_at_zero")),
        warmup_end_min=float(session["warmup_end_min"]),
        end_min=end_min,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_text(file: pathlib.Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunDirError(f"{file}: missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RunDirError(f"{file}: cannot read: {error}") from None


def _summary(file: pathlib.Path) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(file))
    except json.JSONDecodeError as e:
        raise RunDirError(f"{file} line {e.lineno}: malformed JSON: {e.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profile"), str):
        raise RunDirError(f"{file}: expected an object with a profile name")
    session = data.get("session")
    if not isinstance(session, dict):
        raise RunDirError(f"{file}: no session object")
    for key in ("warmup_end_min", "expiry_min"):
        if not _is_number(session.get(key)):
            raise RunDirError(f"{file}: session.{key} missing or not a number")
    grace = session.get("grace_end_min")
    if grace is not None and not _is_number(grace):
        raise RunDirError(f"{file}: session.grace_end_min is neither a number nor null")
    return data


def _clock(file: pathlib.Path, value: object) -> dt.datetime:
    if value is None:
        return DEFAULT_CLOCK_AT_ZERO
    try:
        clock = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise RunDirError(f"{file}: session.clock_at_zero {value!r} is not ISO 8601") from None
    return clock if clock.tzinfo is not None else clock.replace(tzinfo=dt.UTC)


def _readings(file: pathlib.Path) -> dict[str, Any]:
    reader = csv.reader(_read_text(file).splitlines())
    header = next(reader, None)
    if header is None:
        raise RunDirError(f"{file}: empty, expected the header {','.join(COLUMNS)}")
    names = [cell.strip() for cell in header]
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise RunDirError(f"{file} line 1: header lacks {', '.join(missing)}")
    index = {column: names.index(column) for column in COLUMNS}
    values: dict[str, list[Any]] = {column: [] for column in COLUMNS}
    for row in reader:
        where = f"{file} line {reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(names):
            raise RunDirError(f"{where}: {len(row)} columns, the header has {len(names)}")
        cells = {column: row[i].strip() for column, i in index.items()}
        time = _cell_number(where, "time_offset_min", cells["time_offset_min"], empty=False)
        if values["time_offset_min"] and time <= values["time_offset_min"][-1]:
            raise RunDirError(f"{where}: time_offset_min {time:g} is not after the row before")
        values["time_offset_min"].append(time)
        for column in ("reference_mgdl", "sensor_mgdl", "trend_mgdl_min"):
            values[column].append(_cell_number(where, column, cells[column], empty=True))
        shown = cells["displayed"]
        if shown not in DISPLAY_EDGES_MGDL and shown != "":
            _cell_number(where, "displayed", shown, empty=False)
        values["displayed"].append(shown)
        if cells["delivery"] not in DELIVERIES:
            raise RunDirError(f"{where}: delivery {cells['delivery']!r} is not live/backfill/lost")
        values["delivery"].append(cells["delivery"])
        values["arrow"].append(cells["arrow"])
    if not values["time_offset_min"]:
        raise RunDirError(f"{file}: no rows after the header")
    arrays: dict[str, Any] = {
        column: np.array(values[column], dtype=float)
        for column in ("time_offset_min", "reference_mgdl", "sensor_mgdl", "trend_mgdl_min")
    }
    arrays |= {column: tuple(values[column]) for column in ("displayed", "arrow", "delivery")}
    return arrays


def _cell_number(where: str, column: str, text: str, empty: bool) -> float:
    if text == "" and empty:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise RunDirError(f"{where}: {column} {text!r} is not a number") from None
    if math.isinf(number) or (math.isnan(number) and column != "reference_mgdl"):
        raise RunDirError(f"{where}: {column} {text!r} is not a finite number")
    return number


def _events(file: pathlib.Path) -> tuple[dict[str, Any], ...]:
    events = []
    for number, line in enumerate(_read_text(file).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file} line {number}"
        try:
            event = json.loads(line)
        except json.JSONDecodeError as e:
            raise RunDirError(f"{where}: malformed JSON: {e.msg}") from None
        if not isinstance(event, dict) or not _is_number(event.get("t_min")):
            raise RunDirError(f"{where}: expected an object with a numeric t_min")
        kind = event.get("kind")
        if not isinstance(kind, str):
            raise RunDirError(f"{where}: no kind")
        if kind == "phase" and not isinstance(event.get("phase"), str):
            raise RunDirError(f"{where}: a phase event without a phase name")
        if kind.startswith("alert_") and not isinstance(event.get("alert"), str):
            raise RunDirError(f"{where}: an {kind} event without an alert name")
        events.append(event)
    return tuple(events)
