"""One whole simulated session: sensor -> transmitter -> link -> receiver, in virtual time.

The driver advances a virtual clock straight to the earliest of: the next sensor sample (every
5 minutes), a core's timer, a fault (outage start or end, receiver restart), a simulated user's
acknowledgement (``acknowledge_after_min``). Nothing waits on a wall clock. Randomness: one
``SeedSequence(seed)`` spawned per component (sensor chain, link loss).
"""

from __future__ import annotations

import datetime
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firmware.events import SensorSample, SensorState
from firmware.lifecycle import Phase
from firmware.profiles import MINUTE_MS, PROFILES, DeviceProfile
from firmware.receiver.alerts import (
    AlertCleared,
    AlertName,
    AlertRaised,
    AlertRepeated,
    AlertSettings,
)
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import (
    LinkChanged,
    PhaseChanged,
    ReadingShown,
    Receiver,
    ReceiverConfig,
)
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms.measurement import MeasurementRecord
from sim import durable
from sim.durable import DurableReceiver
from sim.links.memory import MemoryLink
from sim.signal import models
from sim.signal.scenarios import DAILY_LIFE, GlucoseSource
from sim.signal.sensor import SensorArray, SensorChunk
from sim.store import ReceiverStore

SAMPLE_MS = 5 * MINUTE_MS
RECONNECT_MS = 2_000  # after the receiver asks to disconnect


@dataclass(frozen=True, slots=True)
class Faults:
    """``--faults``: loss ratio of notifications, outage windows (minutes), receiver restarts."""

    loss: float = 0.0
    outages_min: tuple[tuple[float, float], ...] = ()
    receiver_restarts: int = 0

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """``loss=0.3,outage=120:480,outage=2000:2100,receiver_restart=3``."""
        loss, outages, restarts = 0.0, [], 0
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, _, value = item.partition("=")
            try:
                if key == "loss":
                    loss = float(value)
                    if not 0 <= loss < 1:
                        raise ValueError
                elif key == "outage":
                    start, end = (float(x) for x in value.split(":"))
                    if not 0 <= start < end:
                        raise ValueError
                    outages.append((start, end))
                elif key in ("receiver_restart", "receiver_restarts"):
                    restarts = int(value)
                    if restarts < 0:
                        raise ValueError
                else:
                    raise KeyError(key)
            except KeyError:
                raise ValueError(
                    f"--faults: unknown fault {key!r} (loss, outage, receiver_restart)"
                ) from None
            except ValueError:
                raise ValueError(f"--faults: bad value in {item!r}") from None
        return cls(loss, tuple(sorted(outages)), restarts)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    profile: DeviceProfile = PROFILES["g7"]
    days: float | None = None  # default: the whole session, grace included
    seed: int = 1
    source: GlucoseSource = DAILY_LIFE
    ideal_sensor: bool = False
    faults: Faults = field(default_factory=Faults)
    e2e_crc: bool = False
    clock_at_zero: datetime.datetime = datetime.datetime(2026, 1, 5, 8, 0, 0)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    # The simulated user acknowledges every alert raised or repeated this many minutes after it
    # sounded (if it is still active and unacknowledged then). None: nobody acknowledges.
    acknowledge_after_min: float | None = None

    def __post_init__(self) -> None:
        ack = self.acknowledge_after_min
        if ack is not None and not (math.isfinite(ack) and ack >= 0):
            raise ValueError(f"acknowledge_after_min must be a finite number >= 0, not {ack}")


@dataclass(frozen=True, slots=True)
class AlertAcknowledged:
    """The simulated user acknowledged ``alert`` (a driver event, not the receiver's)."""

    t_ms: int
    alert: AlertName


@dataclass
class SampleRow:
    """One 5-minute sample of the session (a row of readings.csv)."""

    time_offset_min: int
    reference_mgdl: float
    sensor_mgdl: float | None = None  # the record's value, when the transmitter made one
    displayed: str | None = None
    trend_mgdl_min: float | None = None
    arrow: str | None = None
    delivery: str | None = None  # live, backfill or lost (None: no record)


@dataclass
class SimulationResult:
    config: SimulationConfig
    rows: list[SampleRow]
    events: list[dict[str, Any]]
    duplicates: int
    notifications_lost: int
    frame_errors: int
    end_min: float


@dataclass(frozen=True, slots=True)
class SessionInput:
    """What the sensor does over the whole session, computed up front (it does not depend on
    the link): the transmitter's input, one sample every 5 minutes."""

    end_ms: int
    samples: int
    chunk: SensorChunk
    calibration: FactoryCalibration
    link_seed: np.random.SeedSequence


def session_input(config: SimulationConfig) -> SessionInput:
    profile = config.profile
    days_ms = None if config.days is None else int(config.days * 1440 * MINUTE_MS)
    end_ms = days_ms if days_ms is not None else profile.end_ms + SAMPLE_MS
    samples = end_ms // SAMPLE_MS + 1
    sensor_seed, link_seed = np.random.SeedSequence(config.seed).spawn(2)
    model = models.SENSOR_MODELS[profile.name]
    sensor = models.ideal(model) if config.ideal_sensor else model
    array = SensorArray(sensor, config.source, 1, samples, sensor_seed)
    return SessionInput(end_ms, samples, array.next(samples), array.calibrations[0], link_seed)


class Recorder:
    """The session as the outputs show it, filled the same way whatever the link: a row per
    sample (what the transmitter made, what the receiver displayed and how it arrived), the
    receiver's events as events.jsonl records, and the readings displayed twice."""

    def __init__(self, session: SessionInput) -> None:
        reference = session.chunk.reference_mgdl[0]
        self.rows = [SampleRow(k * 5, float(reference[k])) for k in range(session.samples)]
        self.events: list[dict[str, Any]] = []
        self.shown: dict[int, str] = {}  # time offset -> delivery
        self.duplicates = 0

    def event(self, event: object) -> dict[str, Any] | None:
        """Record one receiver event; its events.jsonl record, if it has one."""
        record = _event_json(event)
        if record is not None:
            self.events.append(record)
        if isinstance(event, ReadingShown):
            if event.time_offset in self.shown:
                self.duplicates += 1
            self.shown[event.time_offset] = "backfill" if event.backfill else "live"
            row = self.row(event.time_offset)
            if row is not None:
                row.displayed, row.delivery = event.text, self.shown[event.time_offset]
                row.trend_mgdl_min, row.arrow = event.trend_mgdl_min, event.arrow
        return record

    def made(self, before: MeasurementRecord | None, after: MeasurementRecord | None) -> None:
        """The transmitter's newest record before and after a sample: note a new one."""
        if after is not None and after is not before:
            row = self.rows[after.time_offset // 5]
            row.sensor_mgdl = after.glucose if isinstance(after.glucose, float) else None

    def row(self, time_offset: int) -> SampleRow | None:
        index = time_offset // 5
        return self.rows[index] if index < len(self.rows) else None

    def finish(self) -> None:
        for row in self.rows:
            if row.sensor_mgdl is not None and row.delivery is None:
                row.delivery = "lost"


def run(config: SimulationConfig, store_path: pathlib.Path | None = None) -> SimulationResult:
    """Simulate the session. With ``store_path`` the receiver is durable (``sim.durable``):
    every pump that gave receiver events is committed to the SQLite store there, receiver
    restarts reload from it, and a run started on a store that already holds this session (a
    previous process was killed) resumes where the last commit left it."""
    if store_path is None:
        return _run(config, None)
    with ReceiverStore.open(store_path) as store:
        session = durable.session_id(config.profile.name, config.seed)
        return _run(config, durable.DurableReceiver(store, session, durable.fingerprint(config)))


def _run(config: SimulationConfig, keeper: DurableReceiver | None) -> SimulationResult:
    profile = config.profile
    session = session_input(config)
    end_ms, chunk, link_seed = session.end_ms, session.chunk, session.link_seed
    tx = Transmitter(TransmitterConfig(profile, e2e_crc=config.e2e_crc), session.calibration, 0)
    receiver_config = ReceiverConfig(profile, CollectorConfig(config.clock_at_zero), config.alerts)
    recorder = Recorder(session)
    lost_before = 0  # notifications lost by the processes this one resumes
    ack_ms = (
        None
        if config.acknowledge_after_min is None
        else round(config.acknowledge_after_min * MINUTE_MS)
    )
    # The user's acknowledgements to come: alert -> when (kept with the progress, see counters)
    pending_acks: dict[AlertName, int] = {}

    def on_event(event: object) -> None:
        if ack_ms is not None:
            match event:
                case AlertRaised() | AlertRepeated():
                    pending_acks[event.alert] = event.t_ms + ack_ms
                case AlertCleared():
                    pending_acks.pop(event.alert, None)
        record = recorder.event(event)
        if keeper is not None:
            keeper.add(event, record)

    def take_sample(now: int) -> None:
        k = now // SAMPLE_MS
        state = SensorState(int(chunk.state[0, k]))
        before = tx.store.latest()
        tx.sample(SensorSample(int(chunk.raw_counts[0, k]), state), now)
        recorder.made(before, tx.store.latest())

    now, next_sample = 0, SAMPLE_MS
    reconnect_at: int | None = None
    resumed = keeper.resumed if keeper is not None else None
    if keeper is not None and resumed is not None:
        # A previous process was killed: the sensor kept sampling while the receiver was down.
        now = min(int(resumed["now_ms"]), end_ms)
        while next_sample <= now:
            take_sample(next_sample)
            next_sample += SAMPLE_MS
        recorder.duplicates = int(resumed.get("duplicates", 0))
        lost_before = int(resumed.get("notifications_lost", 0))
        pending_acks.update(
            (AlertName(name), int(t)) for name, t in (resumed.get("pending_acks") or {}).items()
        )
        recorder.events.extend(keeper.history())
        keeper.seq = len(recorder.events)  # new events go after the history
        for r in keeper.readings():
            recorder.shown[r.time_offset_min] = r.delivery
            row = recorder.row(r.time_offset_min)
            if row is not None:
                record = durable.reading_record(r)
                row.displayed, row.delivery = record["text"], r.delivery
                row.trend_mgdl_min, row.arrow = r.trend_mgdl_min, record["arrow"]
        state = keeper.receiver_state()
        receiver = (
            Receiver.restore(receiver_config, state, now)
            if state is not None
            else Receiver(receiver_config, now)
        )
    else:
        receiver = Receiver(receiver_config, 0)

    link = MemoryLink(
        tx,
        receiver,
        loss=config.faults.loss,
        rng=np.random.default_rng(link_seed),
        on_receiver_event=on_event,
    )
    outages = [(int(a * MINUTE_MS), int(b * MINUTE_MS)) for a, b in config.faults.outages_min]
    restarts = [
        end_ms * (i + 1) // (config.faults.receiver_restarts + 1) + 1_234
        for i in range(config.faults.receiver_restarts)
    ]

    def link_should_be_up(t: int) -> bool:
        return not any(a <= t < b for a, b in outages)

    def counters() -> dict[str, Any]:
        progress: dict[str, Any] = {
            "duplicates": recorder.duplicates,
            "notifications_lost": lost_before + link.lost,
        }
        if ack_ms is not None:
            progress["pending_acks"] = {a.value: t for a, t in sorted(pending_acks.items())}
        return progress

    def user_acknowledges(now: int) -> None:
        """The acknowledgements due by ``now``, one press each, in alert-name order
        (deterministic). Each press runs the engine up to ``now``: a repeat of another alert
        due at this very moment sounds then (and that one is acknowledged after its delay)."""
        for alert in sorted(a for a, t in pending_acks.items() if t <= now):
            del pending_acks[alert]
            engine = link.rx.alerts
            if engine is None or alert not in engine.active or engine.acknowledged(alert):
                continue
            on_event(AlertAcknowledged(now, alert))
            link.rx.acknowledge(alert, now)
            link.pump(now)

    if resumed is None:
        link.connect(0)
    else:
        reconnect_at = now + RECONNECT_MS  # the restarted receiver process reconnects
    fault_times = sorted({t for window in outages for t in window} | set(restarts))
    steps_at_now = 0
    while now < end_ms:
        candidates = [next_sample, tx.get_timer(), link.rx.get_timer(), reconnect_at]
        candidates += [t for t in fault_times if t > now][:1]
        candidates += pending_acks.values()
        previous, now = now, min(t for t in candidates if t is not None and t >= now)
        steps_at_now = steps_at_now + 1 if now == previous else 0
        if steps_at_now > 1_000:
            raise RuntimeError(f"virtual time stuck at {now} ms: a timer does not move on")
        if now > end_ms:
            break
        if now in restarts:
            if keeper is not None:
                # The receiver process restarts: it reloads what it committed.
                link.disconnect(now, "receiver restart")
                keeper.commit(link.rx, now, counters)
                state = keeper.receiver_state()
                assert state is not None
            else:
                state = _json_round_trip(link.rx.snapshot())
                link.disconnect(now, "receiver restart")
            link.replace_receiver(Receiver.restore(receiver_config, state, now))
            reconnect_at = now + RECONNECT_MS
        if link.up and not link_should_be_up(now):
            link.disconnect(now, "outage")
        if not link.up and reconnect_at is None and link_should_be_up(now) and now not in restarts:
            reconnect_at = now
        if reconnect_at is not None and now >= reconnect_at and link_should_be_up(now):
            reconnect_at = None
            link.connect(now)
        user_acknowledges(now)  # before a repeat due now: acknowledged in time, it stays silent
        if now == next_sample:
            take_sample(now)
            link.pump(now)  # a reading reaches the receiver before its timers run
            next_sample += SAMPLE_MS
        if tx.get_timer() is not None and tx.get_timer() <= now:
            tx.handle_timer(now)
        if link.rx.get_timer() is not None and link.rx.get_timer() <= now:
            link.rx.handle_timer(now)
        link.pump(now)
        if not link.up and reconnect_at is None and link_should_be_up(now):
            reconnect_at = now + RECONNECT_MS
        if keeper is not None:
            keeper.commit(link.rx, now, counters)
    if keeper is not None:
        keeper.finish(link.rx, end_ms, counters)
    recorder.finish()
    return SimulationResult(
        config=config,
        rows=recorder.rows,
        events=recorder.events,
        duplicates=recorder.duplicates,
        notifications_lost=lost_before + link.lost,
        frame_errors=link.rx.collector.frame_errors,
        end_min=end_ms / MINUTE_MS,
    )


def _json_round_trip(state: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(state))


def _event_json(event: object) -> dict[str, Any] | None:
    match event:
        case ReadingShown():
            return {
                "t_min": event.t_ms / MINUTE_MS,
                "kind": "reading",
                "time_offset_min": event.time_offset,
                "glucose_mgdl": event.glucose_mgdl,
                "text": event.text,
                "trend_mgdl_min": event.trend_mgdl_min,
                "arrow": event.arrow,
                "backfill": event.backfill,
            }
        case PhaseChanged():
            return {"t_min": event.t_ms / MINUTE_MS, "kind": "phase", "phase": event.phase.value}
        case LinkChanged():
            return {
                "t_min": event.t_ms / MINUTE_MS,
                "kind": "link",
                "connected": event.connected,
                "reason": event.reason,
            }
        case AlertRaised():
            return {
                "t_min": event.t_ms / MINUTE_MS,
                "kind": "alert_raised",
                "alert": event.alert.value,
                "reason": event.reason,
            }
        case AlertRepeated():
            return {
                "t_min": event.t_ms / MINUTE_MS,
                "kind": "alert_repeated",
                "alert": event.alert.value,
            }
        case AlertCleared():
            return {
                "t_min": event.t_ms / MINUTE_MS,
                "kind": "alert_cleared",
                "alert": event.alert.value,
            }
        case AlertAcknowledged():
            return {
                "t_min": event.t_ms / MINUTE_MS,
                "kind": "alert_acknowledged",
                "alert": event.alert.value,
            }
    return None


__all__ = ["AlertAcknowledged", "Faults", "Phase", "SimulationConfig", "SimulationResult", "run"]
