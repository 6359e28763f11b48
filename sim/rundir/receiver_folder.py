"""The run folder of a receiver on hardware (``cgmsim receiver --out DIR``), written from its
durable store as the run goes, in the shape ``cgmsim simulate`` writes (shared/design/cli.md),
so ``report``, ``export`` and ``replay`` work on it during the run and after.

The store (``DIR/receiver.sqlite``, ``sim.durable``) is what survives a crash; the three files
are views of it, each replaced whole (written beside, then renamed), so a reader never sees a
half-written file and a killed run leaves the files of its last write, which the next run on the
same store rewrites. Writes are at most one per ``min_interval_s`` of wall time, and one at the end.

Times. A hardware receiver's clock starts when it does, not when the sensor's session did. The
folder speaks in the sensor's session time, as a simulated run does: ``readings.csv``'s
``time_offset_min`` is the sensor's, and every ``t_min`` of ``events.jsonl`` is shifted by the
session start the receiver learnt from the sensor (``Receiver.session_start_ms``), as is
``session.clock_at_zero``. Before that is known the shift is 0.

What a receiver cannot know is left empty: the reference glucose (``nan``), the readings the
sensor made (``generated``, ``lost``: null) and so the accuracy (no pairs). The rows of
readings.csv are the readings received, with an empty row for each reading interval of the
profile missing between the first and the last, so the report's capture rate counts them.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import pathlib
import time
from collections import Counter
from typing import Any

from firmware.profiles import MINUTE_MS, DeviceProfile
from firmware.receiver.receiver import Receiver
from sim.durable import DurableReceiver, reading_record
from sim.outputs import READINGS_COLUMNS
from sim.private_files import replace_private

MIN_INTERVAL_S = 1.0


class ReceiverFolder:
    """Writes ``out``'s summary.json, readings.csv and events.jsonl from ``keeper``'s store.
    ``settings``: what the run was asked for (recorded in summary.json); ``extra``: the run's
    own keys beside the shared ones (transport, peer, connections, ...)."""

    def __init__(
        self,
        out: pathlib.Path,
        keeper: DurableReceiver,
        profile: DeviceProfile,
        clock_at_zero: datetime.datetime,
        settings: dict[str, Any],
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self.out, self.keeper, self.profile = out, keeper, profile
        self.clock_at_zero, self.settings = clock_at_zero, settings
        self.min_interval_s = min_interval_s
        self._written_at: float | None = None

    def maybe_write(self, receiver: Receiver, now_ms: int, extra: dict[str, Any]) -> bool:
        """Write unless the last write was less than ``min_interval_s`` ago; True if it did."""
        wall = time.monotonic()
        if self._written_at is not None and wall - self._written_at < self.min_interval_s:
            return False
        self.write(receiver, now_ms, extra)
        return True

    def write(self, receiver: Receiver, now_ms: int, extra: dict[str, Any]) -> dict[str, Any]:
        """Write the three files now; returns the summary."""
        self._written_at = time.monotonic()
        shift_ms = receiver.session_start_ms or 0
        stored = self.keeper.readings()
        history = self.keeper.history(stored)
        readings = sorted(stored, key=lambda r: r.time_offset_min)
        events = "".join(
            json.dumps({**e, "t_min": e["t_min"] - shift_ms / MINUTE_MS}) + "\n" for e in history
        )
        summary = self._summary(receiver, now_ms - shift_ms, shift_ms, history, readings, extra)
        replace_private(self.out / "events.jsonl", events)
        replace_private(self.out / "readings.csv", self._readings_csv(readings))
        replace_private(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _readings_csv(self, readings: list[Any]) -> str:
        step = self.profile.reading_interval_ms // MINUTE_MS
        by_offset = {r.time_offset_min: r for r in readings}
        offsets = set(by_offset)
        if readings:
            first, last = readings[0].time_offset_min, readings[-1].time_offset_min
            offsets.update(range(first, last, step))
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(READINGS_COLUMNS)
        for offset in sorted(offsets):
            r = by_offset.get(offset)
            if r is None:
                writer.writerow([offset, "nan", "", "", "", "", ""])
                continue
            record = reading_record(r)
            writer.writerow(
                [
                    offset,
                    "nan",  # the receiver has no reference glucose
                    "" if r.glucose_mgdl is None else f"{r.glucose_mgdl:g}",
                    record["text"] or "",
                    "" if r.trend_mgdl_min is None else f"{r.trend_mgdl_min:g}",
                    record["arrow"] or "",
                    r.delivery,
                ]
            )
        return text.getvalue()

    def _summary(
        self,
        receiver: Receiver,
        session_now_ms: int,
        shift_ms: int,
        history: list[dict[str, Any]],
        readings: list[Any],
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        profile = self.profile
        delivered = Counter(r.delivery for r in readings)
        offsets = [r.time_offset_min for r in readings]
        alerts = Counter(e["alert"] for e in history if e["kind"] == "alert_raised")
        zero = self.clock_at_zero + datetime.timedelta(milliseconds=shift_ms)
        return {
            "profile": profile.name,
            "seed": None,  # a device's session: no seed made it
            "reference": None,
            "ideal_sensor": None,
            "settings": self.settings,
            "session": {
                "warmup_end_min": profile.warmup_ms / MINUTE_MS,
                "expiry_min": profile.session_ms / MINUTE_MS,
                "grace_end_min": profile.end_ms / MINUTE_MS if profile.grace_ms else None,
                "simulated_min": session_now_ms / MINUTE_MS,
                "clock_at_zero": zero.isoformat(),
                "receiver_started_min": -shift_ms / MINUTE_MS,
                "phase": None if receiver.phase is None else receiver.phase.value,
            },
            "readings": {
                "generated": None,  # the sensor's business: not known to the receiver
                "delivered_live": delivered.get("live", 0),
                "backfilled": delivered.get("backfill", 0),
                "displayed": len(readings),
                "lost": None,
                "duplicates": extra.get("duplicates", 0),
                "first_displayed_min": min(offsets) if offsets else None,
                "last_displayed_min": max(offsets) if offsets else None,
                **extra.get("this_run", {}),
            },
            "alerts": dict(sorted(alerts.items())),
            "accuracy": {
                "mard": None,
                "within_15_15": None,
                "within_20_20": None,
                "within_40_40": None,
                "pairs": 0,  # no reference glucose on a device
                "pairs_outside_range": 0,
            },
            "link_stats": {
                "notifications_lost": None,
                "frame_errors": receiver.collector.frame_errors,
            },
            **{k: v for k, v in extra.items() if k not in ("duplicates", "this_run")},
        }
