"""The receiver: collector + session lifecycle + display + alerts, as one sans-I/O core.

Inputs mirror the transmitter's outputs (``connected``, ``disconnected``, ``response``,
``notification``, ``indication``) plus ``acknowledge`` and timers; outputs are the collector's
requests for the link (``ReadRequest``, ``WriteRequest``, ``SubscribeRequest``,
``DisconnectRequest``) and the receiver's own events: ``ReadingShown``, ``PhaseChanged``,
``LinkChanged`` and the alert engine's ``AlertRaised`` / ``AlertRepeated`` / ``AlertCleared``.

The session start is learnt from the sensor (Status time offset); the phase then is a pure
function of time (``firmware.lifecycle``). Readings are shown only in the active and grace
phases; backfilled ones are shown (in the history) but raise no alert for the past.

When a reading is overdue (half a reading interval after it was due) while connected, the
receiver checks on the sensor (``Collector.check``): it reads CGM Status, then fetches what the
sensor holds; again every reading interval while none comes. CGM Status tells why readings are
withheld (docs/receiver.md): Sensor Malfunction alone is a brief sensor issue, with Session
Stopped a failed sensor, Session Stopped alone a session that ended (or was stopped). So a
sensor issue or failure is alerted within a reading interval of the sensor knowing, and not
taken for signal loss. Once the sensor has stopped measuring, the checks go on until it holds
nothing the receiver lacks (its last readings are fetched), then stop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from firmware.lifecycle import Phase, next_change_ms, phase
from firmware.profiles import MINUTE_MS, DeviceProfile
from firmware.receiver import display
from firmware.receiver.alerts import AlertEngine, AlertName, AlertSettings
from firmware.receiver.collector import (
    Collector,
    CollectorConfig,
    DisconnectRequest,
    FrameRejected,
    ReadRequest,
    RecordReceived,
    SensorStatusRead,
    SubscribeRequest,
    WriteRequest,
)
from protocol.cgms.annunciation import StatusFlags

SHOWN_PHASES = (Phase.ACTIVE, Phase.GRACE)
# The receiver connects again this long after a link loss it asked for, or after its process
# restarted (project default; every link and driver uses it).
RECONNECT_MS = 2_000
# What replaces the glucose value on the screen (``Receiver.showing``): by phase first, then by
# alert, in this order.
_REPLACED_BY_PHASE = {
    Phase.WARMUP: display.Showing.WARMUP,
    Phase.FAILED: display.Showing.SENSOR_FAILED,
    Phase.ENDED: display.Showing.REPLACE_SENSOR,
}
_REPLACED_BY_ALERT = (
    (AlertName.SENSOR_ISSUE, display.Showing.SENSOR_ISSUE),
    (AlertName.SIGNAL_LOSS, display.Showing.SIGNAL_LOSS),
)


@dataclass(frozen=True, slots=True)
class ReadingShown:
    t_ms: int  # when the receiver got it
    time_offset: int  # minutes since session start: when it was measured
    glucose_mgdl: float
    text: str  # "123", "LOW" or "HIGH"
    trend_mgdl_min: float | None
    arrow: str
    backfill: bool


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    t_ms: int
    phase: Phase


@dataclass(frozen=True, slots=True)
class LinkChanged:
    t_ms: int
    connected: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    profile: DeviceProfile
    collector: CollectorConfig
    alerts: AlertSettings = field(default_factory=AlertSettings)


class Receiver:
    def __init__(self, config: ReceiverConfig, now_ms: int) -> None:
        self.config = config
        self.collector = Collector(config.collector)
        self.session_start_ms: int | None = None
        self.failed_at_ms: int | None = None
        self.stopped_at_ms: int | None = None
        self.phase: Phase | None = None
        self.next_phase_ms: int | None = None  # when the phase next changes (cached)
        self.alerts: AlertEngine | None = None
        self.out: deque[Any] = deque()
        self.now_ms = now_ms
        self.last_check_ms: int | None = None  # when the sensor was last asked (or connected)
        self.check_ms: int | None = None  # when to check on it next (cached)

    # --- persistence (what a restarted receiver reloads) ---

    def snapshot(self, with_seen: bool = True) -> dict[str, Any]:
        """What to persist. ``with_seen=False`` leaves out the time offsets received (which
        grow all session) for a store that keeps the readings themselves."""
        state = {
            "session_start_ms": self.session_start_ms,
            "failed_at_ms": self.failed_at_ms,
            "stopped_at_ms": self.stopped_at_ms,
            "phase": self.phase.value if self.phase else None,
            "absent": sorted(self.collector.absent),
            "alerts": self.alerts.to_state() if self.alerts else None,
        }
        if with_seen:
            state["seen"] = sorted(self.collector.seen)
        return state

    @classmethod
    def restore(cls, config: ReceiverConfig, state: dict[str, Any], now_ms: int) -> Receiver:
        receiver = cls(config, now_ms)
        receiver.session_start_ms = state.get("session_start_ms")
        receiver.collector.session_start_ms = receiver.session_start_ms
        receiver.failed_at_ms = state.get("failed_at_ms")
        receiver.stopped_at_ms = state.get("stopped_at_ms")
        receiver.phase = Phase(state["phase"]) if state.get("phase") else None
        seen = state.get("seen") or []
        receiver.collector.seen = set(seen)
        receiver.collector.absent = set(state.get("absent") or [])
        receiver.collector.last_offset = max(seen) if seen else None
        if receiver.session_start_ms is not None:
            alerts = state.get("alerts")
            receiver.alerts = (
                AlertEngine.from_state(config.alerts, config.profile, alerts)
                if alerts
                else AlertEngine(config.alerts, config.profile, receiver.session_start_ms)
            )
            receiver.alerts.listening(now_ms)  # back: its chance to backfill comes first
            receiver._update_phase(now_ms)  # it may have moved on while the receiver was down
        return receiver

    # --- inputs from the link ---

    def connected(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.last_check_ms = now_ms  # the connection reads Status and backfills
        self.out.append(LinkChanged(now_ms, True))
        self.collector.connected(now_ms)
        self._pump(now_ms)

    def disconnected(self, now_ms: int, reason: str = "") -> None:
        self.now_ms = now_ms
        self.out.append(LinkChanged(now_ms, False, reason))
        self.collector.disconnected(now_ms)
        self._pump(now_ms)

    def response(self, uuid: int, value: bytes | None, error: int | None, now_ms: int) -> None:
        self.now_ms = now_ms
        self.collector.response(uuid, value, error, now_ms)
        self._pump(now_ms)

    def notification(self, uuid: int, value: bytes, now_ms: int) -> None:
        self.now_ms = now_ms
        self.collector.notification(uuid, value, now_ms)
        self._pump(now_ms)

    def indication(self, uuid: int, value: bytes, now_ms: int) -> None:
        self.now_ms = now_ms
        self.collector.indication(uuid, value, now_ms)
        self._pump(now_ms)

    def acknowledge(self, alert: AlertName, now_ms: int) -> None:
        if self.alerts is not None:
            self.alerts.acknowledge(alert, now_ms)
            self._pump(now_ms)

    # --- timers ---

    def get_timer(self) -> int | None:
        times = [self.collector.get_timer(), self.next_phase_ms, self.check_ms]
        if self.alerts is not None:
            times.append(self._alerts_due(self.alerts.get_timer()))
        future = [t for t in times if t is not None]
        return min(future) if future else None

    def handle_timer(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.collector.handle_timer(now_ms)
        if self.check_ms is not None and now_ms >= self.check_ms:
            self.last_check_ms = now_ms
            self.collector.check(now_ms)
        self._update_phase(now_ms)
        if self.alerts is not None and self._alerts_due(now_ms) == now_ms:
            self.alerts.handle_timer(now_ms)
        self._pump(now_ms)

    def next_event(self) -> Any:
        return self.out.popleft() if self.out else None

    # --- what the screen shows (read-only) ---

    def showing(self) -> display.Showing:
        """What takes the glucose value's place now: the newest reading while the session is
        live and neither a sensor issue nor a lost signal is alerted, else the state instead."""
        if self.phase is None:
            return display.Showing.NO_SESSION
        replaced = _REPLACED_BY_PHASE.get(self.phase)
        if replaced is not None:
            return replaced
        active = self.alerts.active if self.alerts is not None else frozenset()
        for alert, state in _REPLACED_BY_ALERT:
            if alert in active:
                return state
        return display.Showing.READING

    def phase_left_ms(self, now_ms: int) -> int | None:
        """How long the current phase lasts from ``now_ms``: warm-up remaining, time to the
        session's expiry, grace remaining; None when no change is due (ended, failed)."""
        if self.next_phase_ms is None or self.phase not in (Phase.WARMUP, *SHOWN_PHASES):
            return None
        return max(self.next_phase_ms - now_ms, 0)

    # --- inside ---

    def _pump(self, now_ms: int) -> None:
        while (event := self.collector.next_event()) is not None:
            match event:
                case ReadRequest() | WriteRequest() | SubscribeRequest() | DisconnectRequest():
                    self.out.append(event)
                case SensorStatusRead(status=status):
                    self._status(status.time_offset, status.status, now_ms)
                case RecordReceived(record=record, backfill=backfill):
                    self._record(record, backfill, now_ms)
                case FrameRejected():
                    self.out.append(event)
        if self.alerts is not None:
            while (alert := self.alerts.next_event()) is not None:
                self.out.append(alert)
        self.check_ms = self._next_check_ms()

    def _alerts_due(self, t_ms: int | None) -> int | None:
        """When alerts due at ``t_ms`` are run: while a check runs, once it is over (what it
        fetches comes first: no signal loss raised at the moment a reading it brought arrives),
        but never later than the 30 s a RACP procedure may take."""
        if t_ms is None or not self.collector.checking or self.last_check_ms is None:
            return t_ms
        return max(t_ms, self.last_check_ms + self.config.collector.procedure_timeout_ms)

    def _measuring_stopped_ms(self) -> int | None:
        """When the sensor stopped measuring, as far as the receiver knows (None: it has not)."""
        if self.session_start_ms is None:
            return None
        ends = [self.session_start_ms + self.config.profile.end_ms]
        ends += [t for t in (self.failed_at_ms, self.stopped_at_ms) if t is not None]
        return min(ends)

    def _synced_since(self, t_ms: int) -> bool:
        """The sensor was last found holding nothing the receiver lacks at or after ``t_ms``."""
        synced = self.collector.synced_at_ms
        return synced is not None and synced >= t_ms

    def all_fetched(self) -> bool:
        """The sensor stopped measuring (session over, stopped or failed) and the receiver has
        synced with it since, or (the sensor gone after it stopped) holds every record up to
        its last interval: nothing more will come from this session."""
        stopped = self._measuring_stopped_ms()
        if stopped is None:
            return False
        if self._synced_since(stopped):
            return True
        collector = self.collector
        last = collector.last_offset
        return (
            not collector.connected_now
            and self.now_ms >= stopped
            and last is not None
            and self.session_start_ms is not None
            and self.session_start_ms + last * MINUTE_MS + self.config.profile.reading_interval_ms
            >= stopped
            and not collector.missing()
        )

    def _next_check_ms(self) -> int | None:
        """When a reading is overdue while connected: half a reading interval after the next
        one was due (from the newest received, or the end of warm-up), then every interval.
        None once the sensor stopped measuring and was found holding nothing more for us."""
        start = self.session_start_ms
        if start is None or not self.collector.connected_now:
            return None
        stopped = self._measuring_stopped_ms()
        if stopped is not None and self._synced_since(stopped):
            return None
        profile = self.config.profile
        interval = profile.reading_interval_ms
        last = self.collector.last_offset
        newest = start + (profile.warmup_ms if last is None else last * MINUTE_MS)
        due = newest + interval + interval // 2
        if self.last_check_ms is not None:
            due = max(due, self.last_check_ms + interval)
        return due

    def _status(self, time_offset: int, status: int, now_ms: int) -> None:
        start = now_ms - time_offset * MINUTE_MS
        tolerance = self.config.collector.clock_tolerance_ms
        if self.session_start_ms is None or abs(start - self.session_start_ms) > tolerance:
            new_session = self.session_start_ms is not None
            self.session_start_ms = self.collector.session_start_ms = start
            self.failed_at_ms = self.stopped_at_ms = None
            if new_session:
                self.collector.forget_session()
            self.alerts = AlertEngine(self.config.alerts, self.config.profile, start)
            self.alerts.listening(now_ms)  # joined now: its chance to backfill comes first
        malfunction = bool(status & StatusFlags.SENSOR_MALFUNCTION)
        stopped = bool(status & StatusFlags.SESSION_STOPPED)
        if malfunction and stopped:  # failed: it stopped measuring for good
            if self.failed_at_ms is None:
                self.failed_at_ms = now_ms
                self._sensor_state(now_ms, issue=False, failed=True)
        elif malfunction:  # a brief sensor issue: readings withheld, the session runs
            self._sensor_state(now_ms, issue=True, failed=False)
        else:
            if self.alerts is not None and self.alerts.sensor_issue:
                self._sensor_state(now_ms, issue=False, failed=False)  # the issue is over
            early = now_ms - start < self.config.profile.end_ms
            if stopped and early and self.stopped_at_ms is None and self.failed_at_ms is None:
                self.stopped_at_ms = now_ms  # stopped before its end (SOCP Stop Session)
                if self.alerts is not None:
                    self.alerts.session_stopped(now_ms)
        self._update_phase(now_ms)

    def _sensor_state(self, now_ms: int, issue: bool, failed: bool) -> None:
        if self.alerts is not None:
            self.alerts.sensor_state(now_ms, issue=issue, failed=failed)

    def _update_phase(self, now_ms: int) -> None:
        if self.session_start_ms is None or now_ms < self.session_start_ms:
            return
        current = phase(
            self.config.profile,
            self.session_start_ms,
            now_ms,
            failed_at_ms=self.failed_at_ms,
            stopped_at_ms=self.stopped_at_ms,
        )
        if current is not self.phase:
            self.phase = current
            self.out.append(PhaseChanged(now_ms, current))
        self.next_phase_ms = next_change_ms(
            self.config.profile,
            self.session_start_ms,
            now_ms,
            failed_at_ms=self.failed_at_ms,
            stopped_at_ms=self.stopped_at_ms,
        )

    def _record(self, record: Any, backfill: bool, now_ms: int) -> None:
        self._update_phase(now_ms)
        if self.session_start_ms is None:
            return
        # The collector refused records ahead of the session's clock (it knows the start).
        taken_ms = self.session_start_ms + record.time_offset * MINUTE_MS
        taken_phase = phase(
            self.config.profile, self.session_start_ms, max(taken_ms, self.session_start_ms)
        )
        if taken_phase not in SHOWN_PHASES or not isinstance(record.glucose, float):
            return
        trend = record.trend if isinstance(record.trend, float) else None
        self.out.append(
            ReadingShown(
                t_ms=now_ms,
                time_offset=record.time_offset,
                glucose_mgdl=record.glucose,
                text=display.shown(record.glucose, record.warning),
                trend_mgdl_min=trend,
                arrow=display.arrow(trend),
                backfill=backfill,
            )
        )
        if self.alerts is not None:
            self.alerts.reading(now_ms, record.glucose, trend, taken_ms)
