"""The receiver's screen as lines of text: pure, no terminal, no clock (``sim.screen``).

What is shown and when is the receiver core's (``Receiver.showing``, ``Receiver.phase_left_ms``,
``AlertEngine.by_urgency``; the text "LOW"/"HIGH" and the arrow of each reading come with its
event, computed by ``firmware.receiver.display``). This module only lays it out:

    cgmsim g7                                    clock 0 d 01:23:45
    link: connected · ble · bonded
      262 mg/dL  ↗ FortyFiveUp  (3 min ago)      sensor: 9 d 22 h 37 min left
    400 ┤
        ┤                                   ****
    180 ┤··································*·····   (the target band, 70-180 mg/dL)
     70 ┤········*****************·················
     40 ┤
        └─────────────┴─────────────┴─────────────┘
        -3 h          -2 h          -1 h        now
    Alerts (a: acknowledge the first marked !)
      ! high: glucose 262 mg/dL >= 250

The graph covers the last 3 hours, 40-400 mg/dL (the display range) on a linear scale; readings
LOW and HIGH sit on its floor and ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from firmware.lifecycle import Phase
from firmware.profiles import MINUTE_MS
from firmware.receiver.alerts import AlertName
from firmware.receiver.display import Showing
from firmware.receiver.receiver import Receiver

GRAPH_MS = 3 * 60 * MINUTE_MS  # the graph's span: the last 3 hours
DISPLAY_MGDL = (40.0, 400.0)  # behavior.md: the display range, the graph's floor and ceiling
TARGET_MGDL = (70.0, 180.0)  # the consensus target range (Battelino et al., Diabetes Care 2019)
ACK_KEY = "a"
READING_MARK, BAND_MARK = "*", "·"
ARROWS = {  # the Nightscout names of firmware.receiver.display, as a receiver draws them
    "DoubleUp": "⇈",
    "SingleUp": "↑",
    "FortyFiveUp": "↗",
    "Flat": "→",
    "FortyFiveDown": "↘",
    "SingleDown": "↓",
    "DoubleDown": "⇊",
}
INSTEAD = {  # what replaces the value (Receiver.showing)
    Showing.NO_SESSION: "---",
    Showing.WARMUP: "Warm-up",
    Showing.SIGNAL_LOSS: "Signal loss",
    Showing.SENSOR_ISSUE: "Sensor issue",
    Showing.SENSOR_FAILED: "Sensor failed",
    Showing.REPLACE_SENSOR: "Replace sensor",
}
COUNTDOWN = {Phase.WARMUP: "warm-up", Phase.ACTIVE: "sensor", Phase.GRACE: "grace period"}
PHASE_OVER = {Phase.ENDED: "session ended", Phase.FAILED: "sensor failed"}
MIN_GRAPH_ROWS = 5


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the link adapter knows: ``transport`` (``memory``, ``ble``, ``usb:0`` ...),
    whether it is ``connected``, whether the sensor is ``paired`` (bonded; None: the link has
    no pairing, as the memory link) and the ``peer``'s address if known."""

    transport: str
    connected: bool
    paired: bool | None = None
    peer: str = ""


def duration(ms: int) -> str:
    """A countdown in whole minutes, rounded up (so 0 min shows only when it is over):
    ``9 d 22 h 37 min``, ``1 h 5 min``, ``12 min``."""
    minutes = math.ceil(ms / MINUTE_MS)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if days or hours:
        parts.append(f"{hours} h")
    parts.append(f"{mins} min")
    return " ".join(parts)


def clock(ms: int) -> str:
    """The receiver's clock (session milliseconds) as ``D d HH:MM:SS``."""
    seconds = ms // 1000
    days, rest = divmod(seconds, 86_400)
    return f"{days} d {rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"


class View:
    """What the screen keeps of the receiver's events (events.jsonl records, as
    ``sim.session.bookkeeping.event_json`` makes them): the readings of the last 3 hours and
    the reason each alert was raised with (a new session's warm-up clears the readings).
    ``render`` lays the screen out."""

    def __init__(self, title: str = "cgmsim") -> None:
        self.title = title
        self.readings: dict[int, dict[str, Any]] = {}  # time offset (min) -> reading record
        self.reasons: dict[str, str] = {}  # alert name -> why it was last raised

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            kind = record.get("kind")
            if kind == "reading":
                self.readings[int(record["time_offset_min"])] = record
            elif kind == "alert_raised":
                self.reasons[record["alert"]] = record.get("reason", "")
            elif kind == "phase" and record.get("phase") == Phase.WARMUP.value:
                self.readings.clear()  # a new sensor session: its time offsets start again
        if self.readings:
            newest = max(self.readings)
            keep = newest - GRAPH_MS // MINUTE_MS - 5
            for offset in [t for t in self.readings if t < keep]:
                del self.readings[offset]

    def newest(self) -> dict[str, Any] | None:
        return self.readings[max(self.readings)] if self.readings else None

    def render(
        self, now_ms: int, receiver: Receiver, link: LinkState, cols: int, rows: int
    ) -> list[str]:
        """The screen at ``now_ms``: at most ``rows`` lines of at most ``cols`` characters.
        What does not fit goes, the graph first."""
        head = [
            _spread(self.title, f"clock {clock(now_ms)}", cols),
            _link_line(link),
            _spread(self._value(now_ms, receiver), _countdown(now_ms, receiver), cols),
        ]
        alerts = self._alerts(receiver)
        room = rows - len(head) - len(alerts) - 2  # two axis lines under the graph
        graph = self._graph(now_ms, receiver, cols, room) if room >= MIN_GRAPH_ROWS else []
        lines = head + graph + alerts
        return [line[:cols] for line in lines[: max(rows, 0)]]

    def _value(self, now_ms: int, receiver: Receiver) -> str:
        showing = receiver.showing()
        newest = self.newest()
        if showing is not Showing.READING or newest is None:
            return "  " + INSTEAD.get(showing, "---")
        text = newest["text"]
        value = text if text in ("LOW", "HIGH") else f"{text} mg/dL"
        name = newest["arrow"]
        arrow = f"  {ARROWS[name]} {name}" if name in ARROWS else ""
        age = ""
        if receiver.session_start_ms is not None:
            taken_ms = receiver.session_start_ms + int(newest["time_offset_min"]) * MINUTE_MS
            age = f"  ({max(now_ms - taken_ms, 0) // MINUTE_MS} min ago)"
        return f"  {value}{arrow}{age}"

    def _alerts(self, receiver: Receiver) -> list[str]:
        listed = receiver.alerts.by_urgency() if receiver.alerts is not None else []
        if not listed:
            return ["Alerts: none"]
        lines = [f"Alerts ({ACK_KEY}: acknowledge the first marked !)"]
        for alert, acknowledged in listed:
            reason = self.reasons.get(alert.value, "")
            mark, note = (" ", " (acknowledged)") if acknowledged else ("!", "")
            lines.append(f"  {mark} {alert.value}{note}" + (f": {reason}" if reason else ""))
        return lines

    def _graph(self, now_ms: int, receiver: Receiver, cols: int, height: int) -> list[str]:
        width = max(cols - 6, 10)
        low, high = DISPLAY_MGDL

        def row(mgdl: float) -> int:
            mgdl = min(max(mgdl, low), high)
            return round((high - mgdl) / (high - low) * (height - 1))

        band = range(row(TARGET_MGDL[1]), row(TARGET_MGDL[0]) + 1)
        grid = [[BAND_MARK if r in band else " "] * width for r in range(height)]
        start = receiver.session_start_ms
        if start is not None:
            since = now_ms - GRAPH_MS
            for offset, record in self.readings.items():
                column = (start + offset * MINUTE_MS - since) * width // GRAPH_MS
                if 0 <= column < width:
                    grid[row(float(record["glucose_mgdl"]))][column] = READING_MARK
        labels = {row(high): high, row(TARGET_MGDL[1]): TARGET_MGDL[1]}
        labels |= {row(TARGET_MGDL[0]): TARGET_MGDL[0], row(low): low}
        lines = [
            f"{int(labels[r]) if r in labels else '':>4} ┤" + "".join(cells)
            for r, cells in enumerate(grid)
        ]
        ticks = ["─"] * width
        for hours in (1, 2):
            ticks[hours * width // 3] = "┴"
        lines.append("     └" + "".join(ticks))
        axis = [" "] * width
        for hours, text in ((3, "-3 h"), (2, "-2 h"), (1, "-1 h")):
            at = (3 - hours) * width // 3
            axis[at : at + len(text)] = text
        axis[width - 3 :] = "now"
        lines.append("      " + "".join(axis))
        return lines


def _spread(left: str, right: str, cols: int) -> str:
    gap = cols - len(left) - len(right)
    return left + " " * max(gap, 2) + right


def _link_line(link: LinkState) -> str:
    parts = ["connected" if link.connected else "disconnected", link.transport]
    if link.paired is not None:
        parts.append("bonded" if link.paired else "not paired")
    if link.peer:
        parts.append(link.peer)
    return "link: " + " · ".join(parts)


def _countdown(now_ms: int, receiver: Receiver) -> str:
    phase = receiver.phase
    if phase is None:
        return ""
    left = receiver.phase_left_ms(now_ms)
    if phase in COUNTDOWN and left is not None:
        return f"{COUNTDOWN[phase]}: {duration(left)} left"
    return PHASE_OVER.get(phase, phase.value)


def most_urgent_unacknowledged(
    receiver: Receiver, skip: Iterable[AlertName] = ()
) -> AlertName | None:
    """The alert the acknowledge key acts on: the first raised and not acknowledged."""
    if receiver.alerts is None:
        return None
    skipped = set(skip)
    for alert, acknowledged in receiver.alerts.by_urgency():
        if not acknowledged and alert not in skipped:
            return alert
    return None
