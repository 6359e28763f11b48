"""The receiver's alert engine: glucose, technical and session alerts as a pure state machine.

Sources: shared/spec/behavior.md ("Alerts", "Predicting Urgent Low Soon", "Session lifecycle");
Dexcom G5 Mobile user guide §11.3 (urgent low: every 5 min until confirmed, again if not above
55 mg/dL 30 min after confirming; rise/fall rates 2 or 3 mg/dL/min); Nightscout
``cgm-remote-monitor`` ``lib/plugins/ar2.js`` (AR2); alert names from shared/design/cli.md.
Sans-I/O (shared/design/architecture.md): inputs carry ``now_ms``; ``get_timer()`` /
``handle_timer(now_ms)`` drive repeats, signal loss, reminders and phase boundaries; events are
pulled with ``next_event()``.

Choices where the spec is silent (tested in tests/firmware/test_alerts.py):

- *Current vs backfilled.* A reading is current when it is newer than every reading seen and
  was taken less than one reading interval before it arrived. Only current readings raise or
  clear glucose alerts: alerting on a past low wakes someone for an event that is over. Older
  (backfilled) readings fill the Urgent Low Soon history and, like any reading, clear signal loss.
- *Independent glucose alerts,* no hysteresis: Low and Urgent Low may both be active; Urgent Low
  Soon needs glucose > 55 and clears when Urgent Low starts. An unknown rate (slope over fewer
  than 3 readings or across a gap; no trend) keeps the rate-based alert's state, no flapping.
- *Repeats:* an interval while unacknowledged and one after acknowledgement; a repeat makes the
  alert unacknowledged again. Urgent Low 5/30 min (fixed), Urgent Low Soon 5/30, Low 15/15,
  High 120/120; the others sound once. Glucose repeats pause during signal loss (nothing
  confirms the condition); an overdue repeat sounds once, not once per missed interval.
- *Reminders* are one ``AlertRaised`` each, with its reason; session_ending clears at expiry,
  grace_period when grace ends. Of several overdue reminders of one series (after a restart)
  only the latest is raised.
- *Signal loss* counts from the last reading received (or warm-up end, or the end of a sensor
  issue, or when the receiver began listening: ``listening``) and is not raised while a sensor
  issue explains the silence; a sensor issue learnt while signal loss is raised clears it (the
  sensor answers: the signal is there). A receiver that joins a sensor already in session, or
  whose process restarts, has not gone 20 min without a reading before it could receive one:
  it gets the signal-loss interval to connect and backfill, as after warm-up.
- *Sensor issue* ends when the sensor says so or a current reading arrives (the sensor
  withholds readings only during the issue).
- *Sensor failure* is final: it clears every other alert, and no reminders follow. So is a
  session stopped before its end (``session_stopped``): replace sensor at once, no reminders.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from firmware.lifecycle import Phase, phase
from firmware.profiles import MINUTE_MS, DeviceProfile

URGENT_LOW_MGDL = 55  # fixed: cannot be changed or turned off
URGENT_LOW_REPEAT_MIN = 5  # G5 guide: every 5 min until confirmed ...
URGENT_LOW_REACK_MIN = 30  # ... then again 30 min after confirming if still <= 55
PREDICTION_HORIZON_MIN = 20  # Urgent Low Soon: predicted <= 55 within 20 min
MAX_PLAUSIBLE_RATE = 4.0  # mg/dL/min: the prediction slope is limited to this
HISTORY_MS = 30 * MINUTE_MS  # readings kept for the slope (newest minus this)
AR2_COEFFS = (-0.723, 1.716)  # Nightscout ar2.js, on ln(g / 140)
AR2_CENTER_MGDL = 140.0
STATE_VERSION = 1


class AlertName(str, enum.Enum):  # noqa: UP042 - (str, Enum) by design
    """Alert names as used in summary.json and events.jsonl (shared/design/cli.md), most urgent
    first (project default: glucose dangers, then the sensor's state, then reminders)."""

    URGENT_LOW = "urgent_low"
    URGENT_LOW_SOON = "urgent_low_soon"
    LOW = "low"
    HIGH = "high"
    RISING_FAST = "rising_fast"
    FALLING_FAST = "falling_fast"
    SIGNAL_LOSS = "signal_loss"
    SENSOR_ISSUE = "sensor_issue"
    SENSOR_FAILED = "sensor_failed"
    SESSION_ENDING = "session_ending"
    GRACE_PERIOD = "grace_period"
    REPLACE_SENSOR = "replace_sensor"


A = AlertName
GLUCOSE_ALERTS = (A.URGENT_LOW, A.URGENT_LOW_SOON, A.LOW, A.HIGH, A.RISING_FAST, A.FALLING_FAST)
LIVE = (Phase.ACTIVE, Phase.GRACE)


def _check(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"alert settings: {name} is {value}, allowed {low}..{high}")


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """User alert settings with the defaults of behavior.md; invalid values raise ValueError."""

    urgent_low_enabled: bool = True  # cannot be turned off
    urgent_low_mgdl: int = URGENT_LOW_MGDL  # cannot be changed
    urgent_low_soon_enabled: bool = True
    urgent_low_soon_repeat_min: int = 5  # project default, like Urgent Low
    urgent_low_soon_reack_min: int = 30  # project default (behavior.md)
    low_enabled: bool = True
    low_mgdl: int = 70  # adjustable 60-100
    low_repeat_min: int = 15  # project default
    high_enabled: bool = True
    high_mgdl: int = 250  # adjustable 120-400
    high_repeat_min: int = 120  # project default
    rising_fast_enabled: bool = False
    rising_fast_mgdl_min: int = 2  # 2 or 3
    falling_fast_enabled: bool = False
    falling_fast_mgdl_min: int = 2  # 2 or 3
    signal_loss_enabled: bool = True
    signal_loss_min: int = 20  # project default, adjustable 10-240
    session_ending_min: tuple[int, ...] = (24 * 60, 6 * 60, 2 * 60, 30)  # before expiry
    grace_ending_min: tuple[int, ...] = (2 * 60, 30)  # before grace ends (g7 only)

    def __post_init__(self) -> None:
        if not self.urgent_low_enabled:
            raise ValueError("alert settings: the urgent low alarm cannot be turned off")
        if self.urgent_low_mgdl != URGENT_LOW_MGDL:
            raise ValueError(f"alert settings: the urgent low level is fixed at {URGENT_LOW_MGDL}")
        _check("low_mgdl", self.low_mgdl, 60, 100)
        _check("high_mgdl", self.high_mgdl, 120, 400)
        for name in ("rising_fast_mgdl_min", "falling_fast_mgdl_min"):
            if getattr(self, name) not in (2, 3):
                raise ValueError(f"alert settings: {name} must be 2 or 3 mg/dL/min")
        _check("signal_loss_min", self.signal_loss_min, 10, 240)
        for name in ("urgent_low_soon_repeat_min", "urgent_low_soon_reack_min"):
            _check(name, getattr(self, name), 1, 24 * 60)
        for name in ("low_repeat_min", "high_repeat_min"):
            _check(name, getattr(self, name), 1, 24 * 60)
        for name in ("session_ending_min", "grace_ending_min"):
            offsets = getattr(self, name)
            if len(set(offsets)) != len(offsets) or any(m <= 0 for m in offsets):
                raise ValueError(f"alert settings: {name} must be distinct positive minutes")


# --- events out -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRaised:
    alert: AlertName
    t_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class AlertRepeated:
    alert: AlertName
    t_ms: int


@dataclass(frozen=True, slots=True)
class AlertCleared:
    alert: AlertName
    t_ms: int


AlertEvent = AlertRaised | AlertRepeated | AlertCleared


# --- predictors -----------------------------------------------------------------------------


def ar2_forecast(prev: float, curr: float, steps: int = 6) -> list[float]:
    """Nightscout AR2 (``lib/plugins/ar2.js``): forecasts at 5, 10, ... min from two readings
    5 min apart, on ``ln(g / 140)`` with ``next = -0.723 * prev + 1.716 * curr``."""
    if prev <= 0 or curr <= 0:
        raise ValueError(f"AR2 needs positive glucose, got {prev} and {curr}")
    a, b = math.log(prev / AR2_CENTER_MGDL), math.log(curr / AR2_CENTER_MGDL)
    forecast = []
    for _ in range(steps):
        a, b = b, AR2_COEFFS[0] * a + AR2_COEFFS[1] * b
        forecast.append(AR2_CENTER_MGDL * math.exp(b))
    return forecast


def recent_slope(history: Sequence[tuple[int, float]], interval_ms: int) -> float | None:
    """The Urgent Low Soon slope in mg/dL/min (behavior.md): least squares over the newest 3-4
    ``(time_ms, mg/dL)`` readings (15-20 min) with no gap (spacing <= 1.5 intervals), limited
    to +-4 mg/dL/min; None when there are fewer than 3."""
    run = list(history[-1:])
    for point in reversed(history[:-1]):
        if run[0][0] - point[0] > interval_ms * 3 // 2 or len(run) == 4:
            break
        run.insert(0, point)
    if len(run) < 3:
        return None
    xs = [t / MINUTE_MS for t, _ in run]
    mean_x, mean_g = sum(xs) / len(xs), sum(g for _, g in run) / len(run)
    sxx = sum((x - mean_x) ** 2 for x in xs)  # > 0: distinct times
    slope = sum((x - mean_x) * (g - mean_g) for x, (_, g) in zip(xs, run, strict=True)) / sxx
    return max(-MAX_PLAUSIBLE_RATE, min(MAX_PLAUSIBLE_RATE, slope))


def _opt(value: Any) -> int | None:
    return None if value is None else int(value)


def _hours(minutes: int) -> str:
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


# --- the engine -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Active:
    """An alert currently raised: when it was raised, last sounded and acknowledged."""

    raised_ms: int
    sounded_ms: int
    acked_ms: int | None = None


@dataclass(frozen=True, slots=True)
class _Reminder:
    key: str
    alert: AlertName
    at_ms: int
    window_end_ms: int | None  # after this the reminder is stale; None: never
    reason: str


class AlertEngine:
    """Alerts for one sensor session (see the module docstring for the rules)."""

    def __init__(self, settings: AlertSettings, profile: DeviceProfile, session_start_ms: int):
        self.settings, self.profile, self.start_ms = settings, profile, session_start_ms
        self._events: deque[AlertEvent] = deque()
        self._active: dict[AlertName, _Active] = {}
        self._history: list[tuple[int, float]] = []  # (time taken, mg/dL), sorted by time
        self._now_ms = session_start_ms
        self._signal_base_ms = session_start_ms + profile.warmup_ms  # signal loss counts from
        self._issue = False
        self._failed_at_ms: int | None = None
        self._stopped_at_ms: int | None = None  # stopped before its end
        self._done: set[str] = set()  # reminders given (or skipped as stale)
        s = settings
        self._intervals: dict[AlertName, tuple[int, int]] = {
            A.URGENT_LOW: (URGENT_LOW_REPEAT_MIN, URGENT_LOW_REACK_MIN),
            A.URGENT_LOW_SOON: (s.urgent_low_soon_repeat_min, s.urgent_low_soon_reack_min),
            A.LOW: (s.low_repeat_min, s.low_repeat_min),
            A.HIGH: (s.high_repeat_min, s.high_repeat_min),
        }
        self._reminders = self._schedule()

    # --- inputs ---

    def reading(
        self, now_ms: int, glucose_mgdl: float, trend_mgdl_min: float | None, time_ms: int
    ) -> None:
        """A displayed reading taken at ``time_ms``, received at ``now_ms``. Glucose is limited
        to the display range 40-400 (LOW counts as 40); ``time_ms`` may be up to a minute off
        (CGMS time offsets have minute resolution) and is limited to session start..now."""
        if not (self.start_ms - MINUTE_MS <= time_ms <= now_ms + MINUTE_MS):
            raise ValueError(f"reading taken at {time_ms} ms: not in session start..now {now_ms}")
        if not math.isfinite(glucose_mgdl):
            raise ValueError(f"reading of {glucose_mgdl} mg/dL is not a number")
        time_ms = min(max(time_ms, self.start_ms), now_ms)
        glucose_mgdl = min(max(float(glucose_mgdl), 40.0), 400.0)
        self._tick(now_ms)
        self._signal_base_ms = max(self._signal_base_ms, now_ms)
        self._clear(A.SIGNAL_LOSS, now_ms)
        if all(t != time_ms for t, _ in self._history):  # else a duplicate
            newest = all(t < time_ms for t, _ in self._history)
            current = newest and now_ms - time_ms < self.profile.reading_interval_ms
            history = sorted([*self._history, (time_ms, glucose_mgdl)])
            self._history = [p for p in history if p[0] >= history[-1][0] - HISTORY_MS]
            if current and self._issue:  # readings are back: the sensor issue is over
                self._issue = False
                self._clear(A.SENSOR_ISSUE, now_ms)
            if current and self._phase(time_ms) in LIVE and self._phase(now_ms) in LIVE:
                self._evaluate(now_ms, glucose_mgdl, trend_mgdl_min)
        self._sound(now_ms)

    def sensor_state(self, now_ms: int, issue: bool, failed: bool) -> None:
        """The sensor's state as reported by the transmitter; a failure is final."""
        self._tick(now_ms)
        if self._failed_at_ms is not None or self._phase(now_ms) is Phase.ENDED:
            pass
        elif failed:
            self._failed_at_ms = now_ms
            for alert in AlertName:
                self._clear(alert, now_ms)
            self._raise(A.SENSOR_FAILED, now_ms, "sensor failed: replace the sensor")
        elif issue and not self._issue:
            self._clear(A.SIGNAL_LOSS, now_ms)  # the sensor answered: it is not the signal
            self._raise(A.SENSOR_ISSUE, now_ms, "sensor issue: readings withheld")
        elif not issue and self._issue:
            self._clear(A.SENSOR_ISSUE, now_ms)
            self._signal_base_ms = max(self._signal_base_ms, now_ms)
        self._issue = issue and self._failed_at_ms is None
        self._sound(now_ms)

    def session_stopped(self, now_ms: int) -> None:
        """The sensor reports its session stopped before its end (SOCP Stop Session): the
        session is over now; like a failure, no reminders follow."""
        self._tick(now_ms)
        if self._failed_at_ms is not None or self._phase(now_ms) is Phase.ENDED:
            return
        self._stopped_at_ms = now_ms
        self._issue = False
        self._tick(now_ms)  # the phase is over: glucose alerts, signal loss, issue clear
        self._raise(A.REPLACE_SENSOR, now_ms, "session stopped: replace sensor")
        self._sound(now_ms)

    def listening(self, now_ms: int) -> None:
        """The receiver (re)starts listening at ``now_ms``: it joined the session late, or its
        process restarted. Signal loss counts from then at the earliest (module docstring)."""
        self._signal_base_ms = max(self._signal_base_ms, now_ms)

    @property
    def sensor_issue(self) -> bool:
        """A brief sensor issue is going on (readings withheld)."""
        return self._issue

    def acknowledge(self, alert: AlertName, now_ms: int) -> None:
        """The user acknowledged ``alert``: silent until its re-alert interval has passed.
        Acknowledging an alert that is not raised (or already acknowledged) does nothing."""
        self._tick(now_ms)
        active = self._active.get(AlertName(alert))
        if active is not None and active.acked_ms is None:
            active.acked_ms = now_ms
        self._sound(now_ms)  # acknowledged as it was about to repeat: silence wins

    def handle_timer(self, now_ms: int) -> None:
        self._tick(now_ms)
        self._sound(now_ms)

    # --- outputs ---

    def get_timer(self) -> int | None:
        """The next moment something may happen without input: a repeat, the signal-loss
        deadline, a reminder or a phase boundary that clears an alert."""
        due = [self._due(alert) for alert in self._active]
        if self._signal_loss_armed():
            due.append(self._signal_deadline())
        if self._failed_at_ms is None and self._stopped_at_ms is None:
            due += [r.at_ms for r in self._reminders if r.key not in self._done]
        return min((t for t in due if t is not None), default=None)  # always after now

    def next_event(self) -> AlertEvent | None:
        return self._events.popleft() if self._events else None

    @property
    def active(self) -> frozenset[AlertName]:
        """The alerts raised and not cleared."""
        return frozenset(self._active)

    def by_urgency(self) -> list[tuple[AlertName, bool]]:
        """The alerts raised and not cleared, most urgent first (``AlertName`` order), each with
        whether it is acknowledged: what a receiver's screen lists."""
        return [(alert, self.acknowledged(alert)) for alert in AlertName if alert in self._active]

    def acknowledged(self, alert: AlertName) -> bool:
        active = self._active.get(alert)
        return active is not None and active.acked_ms is not None

    # --- persistence ---

    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue after a restart, as JSON-serialisable data.
        Queued events are not included: drain ``next_event()`` before saving."""
        return {
            "version": STATE_VERSION,
            "profile": self.profile.name,
            "session_start_ms": self.start_ms,
            "now_ms": self._now_ms,
            "signal_base_ms": self._signal_base_ms,
            "issue": self._issue,
            "failed_at_ms": self._failed_at_ms,
            "stopped_at_ms": self._stopped_at_ms,
            "history": [[t, g] for t, g in self._history],
            "active": {alert.value: asdict(a) for alert, a in self._active.items()},
            "reminders_done": sorted(self._done),
        }

    @classmethod
    def from_state(
        cls, settings: AlertSettings, profile: DeviceProfile, state: dict[str, Any]
    ) -> AlertEngine:
        """Rebuild an engine saved with :meth:`to_state`; malformed state raises ValueError."""
        try:
            if state["version"] != STATE_VERSION:
                raise ValueError(f"alert state: version {state['version']} is not supported")
            if state["profile"] != profile.name:
                raise ValueError(f"alert state: saved for {state['profile']}, not {profile.name}")
            engine = cls(settings, profile, int(state["session_start_ms"]))
            engine._now_ms = int(state["now_ms"])
            engine._signal_base_ms = int(state["signal_base_ms"])
            engine._issue = bool(state["issue"])
            engine._failed_at_ms = _opt(state["failed_at_ms"])
            engine._stopped_at_ms = _opt(state.get("stopped_at_ms"))  # absent before it was kept
            engine._history = sorted((int(t), float(g)) for t, g in state["history"])
            engine._active = {
                AlertName(name): _Active(
                    int(a["raised_ms"]), int(a["sounded_ms"]), _opt(a["acked_ms"])
                )
                for name, a in state["active"].items()
            }
            engine._done = {str(key) for key in state["reminders_done"]}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"alert state: missing or malformed field ({exc!r})") from exc
        return engine

    # --- internals ---

    def _phase(self, t_ms: int) -> Phase:
        return phase(
            self.profile,
            self.start_ms,
            t_ms,
            failed_at_ms=self._failed_at_ms,
            stopped_at_ms=self._stopped_at_ms,
        )

    def _schedule(self) -> list[_Reminder]:
        expiry = self.start_ms + self.profile.session_ms
        end = self.start_ms + self.profile.end_ms
        grace_min = self.profile.grace_ms // MINUTE_MS
        items = [_Reminder("replace_sensor", A.REPLACE_SENSOR, end, None, "replace sensor now")]
        for m in self.settings.session_ending_min:
            at, reason = expiry - m * MINUTE_MS, f"session ends in {_hours(m)}"
            items.append(_Reminder(f"session_ending:{m}", A.SESSION_ENDING, at, expiry, reason))
        if grace_min:  # g7 only
            reason = f"grace period started: sensor stops in {_hours(grace_min)}"
            items.append(_Reminder("grace_period:start", A.GRACE_PERIOD, expiry, end, reason))
            for m in (m for m in self.settings.grace_ending_min if m < grace_min):
                at, reason = end - m * MINUTE_MS, f"grace period ends in {_hours(m)}"
                items.append(_Reminder(f"grace_period:{m}", A.GRACE_PERIOD, at, end, reason))
        return sorted((r for r in items if r.at_ms > self.start_ms), key=lambda r: r.at_ms)

    def _due(self, alert: AlertName) -> int | None:
        """When ``alert`` next sounds again, or None."""
        active, intervals = self._active[alert], self._intervals.get(alert)
        if intervals is None or (alert in GLUCOSE_ALERTS and A.SIGNAL_LOSS in self._active):
            return None
        repeat_min, reack_min = intervals
        if active.acked_ms is not None:
            return active.acked_ms + reack_min * MINUTE_MS
        return active.sounded_ms + repeat_min * MINUTE_MS

    def _signal_deadline(self) -> int:
        base = max(self._signal_base_ms, self.start_ms + self.profile.warmup_ms)
        return base + self.settings.signal_loss_min * MINUTE_MS

    def _signal_loss_armed(self) -> bool:
        return (
            self.settings.signal_loss_enabled
            and not self._issue
            and self._failed_at_ms is None
            and A.SIGNAL_LOSS not in self._active
            and self._phase(self._now_ms) is not Phase.ENDED
        )

    def _tick(self, now_ms: int) -> None:
        """Phase-boundary clears and reminders, up to ``now_ms``."""
        if now_ms < self._now_ms:
            raise ValueError(f"time went backwards: {now_ms} ms after {self._now_ms} ms")
        self._now_ms = now_ms
        if self._phase(now_ms) not in LIVE:
            for alert in (*GLUCOSE_ALERTS, A.SIGNAL_LOSS):
                self._clear(alert, now_ms)
        if self._phase(now_ms) is Phase.ENDED:
            self._clear(A.SENSOR_ISSUE, now_ms)
        stopped = self._stopped_at_ms is not None and now_ms >= self._stopped_at_ms
        if stopped or now_ms >= self.start_ms + self.profile.session_ms:
            self._clear(A.SESSION_ENDING, now_ms)
        if stopped or now_ms >= self.start_ms + self.profile.end_ms:
            self._clear(A.GRACE_PERIOD, now_ms)
        if self._failed_at_ms is None and self._stopped_at_ms is None:
            self._give_reminders(now_ms)

    def _sound(self, now_ms: int) -> None:
        """Repeats that are due, then the signal-loss deadline. After a reading's evaluation, so
        a reading and a repeat at the same moment do not sound an alert the reading clears."""
        for alert in AlertName:
            due = self._due(alert) if alert in self._active else None
            if due is not None and due <= now_ms:
                self._active[alert].sounded_ms, self._active[alert].acked_ms = now_ms, None
                self._events.append(AlertRepeated(alert, now_ms))
        live = self._phase(now_ms) in LIVE
        if self._signal_loss_armed() and live and now_ms >= self._signal_deadline():
            self._raise(
                A.SIGNAL_LOSS, now_ms, f"no reading for {self.settings.signal_loss_min} min"
            )

    def _give_reminders(self, now_ms: int) -> None:
        due = [r for r in self._reminders if r.at_ms <= now_ms and r.key not in self._done]
        self._done.update(r.key for r in due)
        for r in {r.alert: r for r in due}.values():  # in time order: the latest of each series
            if r.window_end_ms is None or now_ms < r.window_end_ms:
                self._raise(r.alert, now_ms, r.reason)

    def _evaluate(self, now_ms: int, g: float, trend: float | None) -> None:
        """Glucose conditions from a current reading: clears first, then raises."""
        s = self.settings
        conditions: dict[AlertName, tuple[bool, str]] = {
            A.URGENT_LOW: (g <= URGENT_LOW_MGDL, f"glucose {g:g} mg/dL <= {URGENT_LOW_MGDL}"),
            A.LOW: (s.low_enabled and g <= s.low_mgdl, f"glucose {g:g} mg/dL <= {s.low_mgdl}"),
            A.HIGH: (s.high_enabled and g >= s.high_mgdl, f"glucose {g:g} mg/dL >= {s.high_mgdl}"),
        }
        slope = recent_slope(self._history, self.profile.reading_interval_ms)
        if slope is not None:
            predicted = g + PREDICTION_HORIZON_MIN * slope
            conditions[A.URGENT_LOW_SOON] = (
                s.urgent_low_soon_enabled and g > URGENT_LOW_MGDL and predicted <= URGENT_LOW_MGDL,
                f"predicted {predicted:.0f} mg/dL in {PREDICTION_HORIZON_MIN} min"
                f" (glucose {g:g}, {slope:+.1f} mg/dL/min)",
            )
        elif g <= URGENT_LOW_MGDL:
            conditions[A.URGENT_LOW_SOON] = (False, "")
        if trend is not None:
            rise, fall = s.rising_fast_mgdl_min, s.falling_fast_mgdl_min
            conditions[A.RISING_FAST] = (
                s.rising_fast_enabled and trend >= rise,
                f"rising {trend:+.1f} mg/dL/min (>= {rise})",
            )
            conditions[A.FALLING_FAST] = (
                s.falling_fast_enabled and trend <= -fall,
                f"falling {trend:+.1f} mg/dL/min (<= -{fall})",
            )
        for alert in GLUCOSE_ALERTS:
            if alert in conditions and not conditions[alert][0]:
                self._clear(alert, now_ms)
        for alert in GLUCOSE_ALERTS:
            if alert in conditions and conditions[alert][0] and alert not in self._active:
                self._raise(alert, now_ms, conditions[alert][1])

    def _raise(self, alert: AlertName, now_ms: int, reason: str) -> None:
        self._active[alert] = _Active(now_ms, now_ms)
        self._events.append(AlertRaised(alert, now_ms, reason))

    def _clear(self, alert: AlertName, now_ms: int) -> None:
        if self._active.pop(alert, None) is not None:
            self._events.append(AlertCleared(alert, now_ms))
