"""One sensor session inside the transmitter: lifecycle, readings, calibration, start time.

Pure: every method takes ``now_ms`` (session time axis). Turns sensor samples into CGM
Measurement records (``protocol.cgms.measurement.MeasurementRecord``) while the phase allows.
"""

from __future__ import annotations

import datetime
from collections import deque
from dataclasses import dataclass, replace

from firmware.events import SensorSample, SensorState
from firmware.lifecycle import Phase, phase
from firmware.profiles import MINUTE_MS, DeviceProfile
from firmware.transmitter import algorithm
from firmware.transmitter.algorithm import AlertLevels, FactoryCalibration
from protocol.cgms.annunciation import CalTempFlags, StatusFlags
from protocol.cgms.attributes import SessionStartTime
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.socp import CalibrationRecord

HISTORY = 4  # readings kept for the 15-minute trend


@dataclass(frozen=True, slots=True)
class Reading:
    """The latest processed reading, for Status and calibration."""

    time_offset: int
    glucose_mgdl: float  # calibrated, unrounded
    warning: int


FIRST_YEAR = 1582


class Session:
    def __init__(
        self,
        profile: DeviceProfile,
        factory: FactoryCalibration,
        start_ms: int,
        levels: AlertLevels,
    ) -> None:
        self.profile, self.factory, self.start_ms = profile, factory, start_ms
        self.levels = levels
        self.stopped_at_ms: int | None = None
        self.failed_at_ms: int | None = None
        self.issue_since_ms: int | None = None
        self.start_time: SessionStartTime | None = None  # None: time synchronisation required
        self.gain = 1.0  # user calibration
        self.calibrations: list[CalibrationRecord] = []
        self.history: deque[tuple[int, float]] = deque(maxlen=HISTORY)
        self.latest: Reading | None = None

    # --- time ---

    def time_offset(self, now_ms: int) -> int:
        """Minutes since the session started (the records' sequence numbers)."""
        return min((now_ms - self.start_ms) // MINUTE_MS, 0xFFFF)

    def phase(self, now_ms: int) -> Phase:
        return phase(
            self.profile,
            self.start_ms,
            now_ms,
            failed_at_ms=self.failed_at_ms,
            stopped_at_ms=self.stopped_at_ms,
        )

    def running(self, now_ms: int) -> bool:
        """Measuring or about to (warm-up): a new session cannot start yet."""
        return self.phase(now_ms) is not Phase.ENDED and self.failed_at_ms is None

    def stop(self, now_ms: int) -> None:
        self.stopped_at_ms = now_ms

    # --- readings ---

    def sample(self, sample: SensorSample, now_ms: int) -> MeasurementRecord | None:
        """Process one sensor sample; the record to store and notify, if there is one."""
        current = self.phase(now_ms)
        if current in (Phase.ENDED, Phase.FAILED):
            return None
        if sample.state is SensorState.FAILED:
            self.failed_at_ms = now_ms
            return None
        if sample.state is SensorState.ISSUE:
            self.issue_since_ms = self.issue_since_ms if self.issue_since_ms is not None else now_ms
            if now_ms - self.issue_since_ms > self.profile.sensor_issue_limit_ms:
                self.failed_at_ms = now_ms  # a long sensor issue fails the sensor
            return None
        self.issue_since_ms = None
        if sample.state is not SensorState.OK or current is Phase.WARMUP:
            return None
        offset = self.time_offset(now_ms)
        glucose = float(algorithm.counts_to_mgdl(sample.raw_counts, self.factory)) * self.gain
        self.history.append((offset, glucose))
        readings = list(self.history)
        trend = algorithm.trend_mgdl_per_min(readings)
        warning = algorithm.warning_octet(glucose, trend, self.levels)
        self.latest = Reading(offset, glucose, warning)
        return MeasurementRecord(
            glucose=float(algorithm.reported_mgdl(glucose)),
            time_offset=offset,
            warning=warning or None,
            trend=None if trend is None else round(trend, 2),
            quality=algorithm.quality_percent(readings, trend),
        )

    def issue(self, now_ms: int) -> bool:
        """A brief sensor issue now: readings withheld, the session still running."""
        return self.issue_since_ms is not None and self.running(now_ms)

    def status_octet(self, now_ms: int) -> int:
        """Session Stopped and Sensor Malfunction as CGM Status reports them (the server adds
        Session Stopped whenever no session runs). Read together they tell the three reasons
        for withholding readings apart (docs/receiver.md): a brief sensor issue is
        Sensor Malfunction while the session runs; a failed sensor, Sensor Malfunction with
        Session Stopped; an ended (or stopped) session, Session Stopped alone."""
        bits = 0
        current = self.phase(now_ms)
        if current is Phase.ENDED:
            bits |= StatusFlags.SESSION_STOPPED
        if self.failed_at_ms is not None or self.issue(now_ms):
            bits |= StatusFlags.SENSOR_MALFUNCTION
        return int(bits)

    def cal_temp_octet(self) -> int:
        return int(CalTempFlags.TIME_SYNCHRONIZATION_REQUIRED) if self.start_time is None else 0

    # --- calibration (SOCP Set/Get Calibration Value) ---

    def calibrate(self, record: CalibrationRecord, now_ms: int) -> CalibrationRecord:
        """Apply a user calibration; the stored record carries its number and status bits."""
        reading = None
        if self.latest is not None and self.phase(now_ms) in (Phase.ACTIVE, Phase.GRACE):
            close = abs(self.latest.time_offset - record.calibration_time)
            if close <= algorithm.CALIBRATION_MATCH_MIN:
                reading = self.latest.glucose_mgdl
        glucose = record.glucose if isinstance(record.glucose, float) else -1.0
        factor, status = algorithm.calibration_factor(glucose, reading)
        if factor is not None:
            self.gain *= factor
        stored = replace(record, record_number=len(self.calibrations) + 1, status=status)
        self.calibrations.append(stored)
        return stored

    # --- Session Start Time (CGMS §3.4.1: stored as written time minus the time offset) ---

    def set_start_time(self, written: SessionStartTime, now_ms: int) -> None:
        if written.year == 0 or written.month == 0 or written.day == 0:
            self.start_time = written  # unknown date: keep as written
            return
        moment = written.to_datetime() - datetime.timedelta(minutes=self.time_offset(now_ms))
        if moment.year < FIRST_YEAR:  # the Date Time year field starts at 1582 (GSS)
            raise ValueError(f"the session would have started in {moment.year}")
        self.start_time = SessionStartTime.from_datetime(moment, written.time_zone, written.dst)
