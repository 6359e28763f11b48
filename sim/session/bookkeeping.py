"""What a session driver keeps whatever the link carries it (``sim.world`` in memory,
``sim.ble_world`` over the BLE stack): the sensor's input, the outputs as they fill
(``Recorder``), the fault schedule, the simulated user's acknowledgements, and the durable
receiver's commits and resumption (``sim.durable``). The drivers only decide when things happen
on their clock; what happens is here, once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from firmware.events import SensorSample, SensorState
from firmware.profiles import MINUTE_MS
from firmware.receiver.alerts import AlertCleared, AlertName, AlertRaised, AlertRepeated
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
from sim.recording import RecordingReceiver, RecordingTransmitter, RecordingWriter
from sim.recording import header as make_header
from sim.session.config import SimulationConfig
from sim.session.result import SampleRow, SimulationResult
from sim.signal import models
from sim.signal.sensor import SensorArray, SensorChunk

if TYPE_CHECKING:
    from sim.durable import DurableReceiver

SAMPLE_MS = 5 * MINUTE_MS
Progress = Callable[[int, int], None]  # (done, total): simulated ms so far, and at the end


@dataclass(frozen=True, slots=True)
class AlertAcknowledged:
    """The simulated user acknowledged ``alert`` (a driver event, not the receiver's)."""

    t_ms: int
    alert: AlertName


@dataclass(frozen=True, slots=True)
class SessionInput:
    """What the sensor does over the whole session, computed up front (it does not depend on
    the link): the transmitter's input, one sample every 5 minutes."""

    end_ms: int
    samples: int
    chunk: SensorChunk
    calibration: FactoryCalibration
    link_seed: np.random.SeedSequence

    def sample(self, t_ms: int) -> SensorSample:
        """The sensor's sample at ``t_ms`` (a multiple of ``SAMPLE_MS``)."""
        k = t_ms // SAMPLE_MS
        chunk = self.chunk
        return SensorSample(int(chunk.raw_counts[0, k]), SensorState(int(chunk.state[0, k])))


def build_transmitter(
    config: SimulationConfig, session: SessionInput, procedure_timeout_ms: int | None = None
) -> Transmitter:
    """The transmitter core of a session (every driver builds it here). ``procedure_timeout_ms``:
    RACP's procedure timeout in session time, when the session clock runs faster than the
    link's (hardware at ``--speed``)."""
    settings = TransmitterConfig(config.profile, e2e_crc=config.e2e_crc)
    if procedure_timeout_ms is not None:
        settings = replace(settings, procedure_timeout_ms=procedure_timeout_ms)
    return Transmitter(settings, session.calibration, 0)


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
        record = event_json(event)
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
            row.made = True
            row.sensor_mgdl = after.glucose if isinstance(after.glucose, float) else None

    def row(self, time_offset: int) -> SampleRow | None:
        index = time_offset // 5
        return self.rows[index] if index < len(self.rows) else None

    def finish(self) -> None:
        for row in self.rows:
            if row.sensor_mgdl is not None and row.delivery is None:
                row.delivery = "lost"


class Bookkeeper:
    """One run's shared state. The driver calls ``on_event`` for every receiver event,
    ``commit`` when it has moved, ``press`` for each acknowledgement ``due``, ``restarted``
    at a receiver restart and ``finish`` at the end; ``lost`` reads the link's count of
    notifications lost (set it once the link exists). With a ``recording`` writer, the
    receivers it makes (``resume``, ``restarted``) and the transmitter the driver passes
    through ``transmitter`` record their inputs and outputs (``sim.recording``)."""

    def __init__(
        self,
        config: SimulationConfig,
        keeper: DurableReceiver | None = None,
        recording: RecordingWriter | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config, self.keeper, self.recording = config, keeper, recording
        self.progress = progress
        self.session = session_input(config)
        end_ms = self.session.end_ms
        self.recorder = Recorder(self.session)
        self.receiver_config = ReceiverConfig(
            config.profile, CollectorConfig(config.clock_at_zero), config.alerts
        )
        faults = config.faults
        self.outages_ms = [(int(a * MINUTE_MS), int(b * MINUTE_MS)) for a, b in faults.outages_min]
        self.restarts_ms = [
            end_ms * (i + 1) // (faults.receiver_restarts + 1) + 1_234
            for i in range(faults.receiver_restarts)
        ]
        ack = config.acknowledge_after_min
        self.ack_ms = None if ack is None else round(ack * MINUTE_MS)
        # The user's acknowledgements to come: alert -> when (kept with the progress)
        self.pending_acks: dict[AlertName, int] = {}
        self.lost_before = 0  # notifications lost by the processes this one resumes
        self.lost: Callable[[], int] = lambda: 0

    def transmitter(self, procedure_timeout_ms: int | None = None) -> Transmitter:
        """The session's transmitter core, recorded when recording (``procedure_timeout_ms``:
        ``build_transmitter``'s)."""
        core = build_transmitter(self.config, self.session, procedure_timeout_ms)
        if self.recording is None:
            return core
        return cast(Transmitter, RecordingTransmitter(core, self.recording))

    def take_sample(
        self, core: Transmitter, t_ms: int, deliver: Callable[[SensorSample], None]
    ) -> None:
        """The sensor samples at ``t_ms``: ``deliver`` hands the sample to the transmitter
        ``core`` (directly, or through its link adapter), and the record it made is noted."""
        before = core.store.latest()
        deliver(self.session.sample(t_ms))
        self.sampled(t_ms, before, core.store.latest())

    def _receiver(self, core: Receiver, restored_from: dict[str, Any] | None) -> Receiver:
        if self.recording is None:
            return core
        return cast(Receiver, RecordingReceiver(core, self.recording, restored_from=restored_from))

    @property
    def resumed(self) -> dict[str, Any] | None:
        """The progress a killed process committed, when this run resumes its session."""
        return self.keeper.resumed if self.keeper is not None else None

    def sampled(
        self, t_ms: int, before: MeasurementRecord | None, after: MeasurementRecord | None
    ) -> None:
        """The sensor sampled at ``t_ms``; the transmitter's newest record before and after."""
        self.recorder.made(before, after)
        if self.progress is not None:
            self.progress(t_ms, self.session.end_ms)

    def link_up_at(self, t_ms: int) -> bool:
        """Whether the radio link can be up at ``t_ms`` (no outage)."""
        return not any(a <= t_ms < b for a, b in self.outages_ms)

    def on_event(self, event: object) -> None:
        if self.ack_ms is not None:
            match event:
                case AlertRaised() | AlertRepeated():
                    self.pending_acks[event.alert] = event.t_ms + self.ack_ms
                case AlertCleared():
                    self.pending_acks.pop(event.alert, None)
        record = self.recorder.event(event)
        if self.keeper is not None:
            self.keeper.add(event, record)

    def due(self, now_ms: int) -> list[AlertName]:
        """The acknowledgements due by ``now_ms``, taken off the list, in alert-name order
        (deterministic)."""
        alerts = sorted(a for a, t in self.pending_acks.items() if t <= now_ms)
        for alert in alerts:
            del self.pending_acks[alert]
        return alerts

    def press(self, receiver: Receiver, alert: AlertName, now_ms: int) -> bool:
        """The user acknowledges ``alert`` (``acknowledge``), noted here."""
        return acknowledge(receiver, alert, now_ms, self.on_event)

    def counters(self) -> dict[str, Any]:
        progress: dict[str, Any] = {
            "duplicates": self.recorder.duplicates,
            "notifications_lost": self.lost_before + self.lost(),
        }
        if self.ack_ms is not None:
            progress["pending_acks"] = {a.value: t for a, t in sorted(self.pending_acks.items())}
        return progress

    def commit(self, receiver: Receiver, now_ms: int) -> None:
        if self.keeper is not None:
            self.keeper.commit(receiver, now_ms, self.counters)

    def restarted(self, receiver: Receiver, now_ms: int) -> Receiver:
        """The receiver process restarts at ``now_ms`` (its link already down): what it comes
        back as — reloaded from the store when durable, else from its own snapshot."""
        if self.keeper is not None:
            self.keeper.commit(receiver, now_ms, self.counters)
            state = self.keeper.receiver_state()
            assert state is not None
        else:
            state = json.loads(json.dumps(receiver.snapshot()))
        return self._receiver(Receiver.restore(self.receiver_config, state, now_ms), state)

    def resume(self, core: Transmitter) -> tuple[int, Receiver]:
        """Where this run starts: (0, a new receiver), or, resuming a killed process, the time
        it had reached and the receiver it committed. The sensor kept sampling while the
        receiver was down: the transmitter ``core`` takes every sample up to then."""
        resumed = self.resumed
        if self.keeper is None or resumed is None:
            return 0, self._receiver(Receiver(self.receiver_config, 0), None)
        keeper, recorder = self.keeper, self.recorder
        now = min(int(resumed["now_ms"]), self.session.end_ms)
        for t in range(SAMPLE_MS, now + 1, SAMPLE_MS):
            self.take_sample(core, t, lambda sample, t=t: core.sample(sample, t))
        recorder.duplicates = int(resumed.get("duplicates", 0))
        self.lost_before = int(resumed.get("notifications_lost", 0))
        self.pending_acks.update(
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
        if state is None:
            return now, self._receiver(Receiver(self.receiver_config, now), None)
        return now, self._receiver(Receiver.restore(self.receiver_config, state, now), state)

    def finish(self, receiver: Receiver | None, end_ms: int | None = None) -> SimulationResult:
        """The session is over (at ``end_ms``, when stopped before its end): the last commit,
        and what it gives back. ``receiver`` None: the receiver was another device."""
        end_ms = self.session.end_ms if end_ms is None else end_ms
        if self.keeper is not None and receiver is not None:
            self.keeper.finish(receiver, end_ms, self.counters)
        self.recorder.finish()
        recorder = self.recorder
        return SimulationResult(
            config=self.config,
            rows=recorder.rows,
            events=recorder.events,
            duplicates=recorder.duplicates,
            notifications_lost=self.lost_before + self.lost(),
            frame_errors=0 if receiver is None else receiver.collector.frame_errors,
            end_min=end_ms / MINUTE_MS,
        )


def acknowledge(
    receiver: Receiver, alert: AlertName, now_ms: int, on_event: Callable[[object], None]
) -> bool:
    """A person acknowledges ``alert`` if it still sounds unacknowledged: ``on_event`` gets the
    ``AlertAcknowledged``, then the core takes it; True if so (the driver then moves what the
    receiver has to say)."""
    engine = receiver.alerts
    if engine is None or alert not in engine.active or engine.acknowledged(alert):
        return False
    on_event(AlertAcknowledged(now_ms, alert))
    receiver.acknowledge(alert, now_ms)
    return True


def recording_header(config: SimulationConfig, link: str) -> dict[str, Any]:
    """The first line of a simulated run's recording: what made the run."""
    return make_header(link, config.profile.name, config.seed, durable.fingerprint(config))


def event_json(event: object) -> dict[str, Any] | None:
    """The events.jsonl record of a receiver (or simulated user) event, None for others."""
    t_min = getattr(event, "t_ms", 0) / MINUTE_MS
    match event:
        case ReadingShown():
            return {
                "t_min": t_min,
                "kind": "reading",
                "time_offset_min": event.time_offset,
                "glucose_mgdl": event.glucose_mgdl,
                "text": event.text,
                "trend_mgdl_min": event.trend_mgdl_min,
                "arrow": event.arrow,
                "backfill": event.backfill,
            }
        case PhaseChanged():
            return {"t_min": t_min, "kind": "phase", "phase": event.phase.value}
        case LinkChanged():
            return {
                "t_min": t_min,
                "kind": "link",
                "connected": event.connected,
                "reason": event.reason,
            }
        case AlertRaised():
            return {
                "t_min": t_min,
                "kind": "alert_raised",
                "alert": event.alert.value,
                "reason": event.reason,
            }
        case AlertRepeated():
            return {"t_min": t_min, "kind": "alert_repeated", "alert": event.alert.value}
        case AlertCleared():
            return {"t_min": t_min, "kind": "alert_cleared", "alert": event.alert.value}
        case AlertAcknowledged():
            return {"t_min": t_min, "kind": "alert_acknowledged", "alert": event.alert.value}
    return None
