"""The transmitter: a sans-I/O CGMS server (CGMS v1.0.1; shared/spec/cgms.md) over one session.

Inputs: GATT events (``firmware.events``) via ``receive(event, now_ms)``, sensor samples via
``sample(sample, now_ms)``, and ``handle_timer(now_ms)`` at ``get_timer()``. Outputs are pulled
with ``next_event()``. It never reads a clock.

The connection-level machine is one table, ``TRANSITIONS``: ``{(state, input): new state}``.
A pair not in it is a protocol error (e.g. a Read while disconnected) and moves the machine to
``ERROR``, where it stays until the link drops. One notification or indication is in flight at
a time; the next goes out on ``Sent``. A RACP report streams records one notification per
``Sent`` (so it can be aborted, and times out after 30 s without progress), then indicates its
response; live readings due meanwhile wait for it (CGMS §3.8.3).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field, replace

from firmware import events
from firmware.events import (
    AttError,
    Connected,
    Disconnected,
    GattInput,
    GattOutput,
    Indicate,
    MtuChanged,
    Notify,
    Read,
    Respond,
    SensorSample,
    Sent,
    Subscribe,
    Write,
)
from firmware.profiles import DAY_MS, MINUTE_MS, DeviceProfile
from firmware.transmitter.algorithm import ALERT_LEVEL_RANGES, AlertLevels, FactoryCalibration
from firmware.transmitter.flow import Outbound, pack
from firmware.transmitter.session import Session
from firmware.transmitter.store import RecordStore
from protocol.cgms import attributes, gatt, measurement, racp, socp
from protocol.cgms.annunciation import StatusFlags
from protocol.cgms.attributes import FeatureFlags, SessionRunTime, SessionStartTime, Status
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import (
    PROCEDURE_TIMEOUT_MS,
    RacpOpcode,
    RacpOperator,
    RacpResponseCode,
)
from protocol.cgms.socp import SocpFrame, SocpOpcode, SocpResponseCode
from protocol.errors import ControlPointError, CrcError, FrameError, MissingCrcError
from protocol.sfloat import SFloatSpecial


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    IDLE = "idle"  # connected, no control-point procedure running
    TRANSFER = "transfer"  # a RACP report is streaming records
    ERROR = "error"


class Input(enum.Enum):
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    MTU = "mtu"
    READ = "read"
    WRITE = "write"
    SUBSCRIBE = "subscribe"
    SENT = "sent"
    SAMPLE = "sample"
    TIMER = "timer"
    TRANSFER_START = "transfer start"  # a RACP report begins (from WRITE)
    TRANSFER_END = "transfer end"  # its response was confirmed, it was aborted or timed out


_CONNECTED_INPUTS = (
    Input.MTU,
    Input.READ,
    Input.WRITE,
    Input.SUBSCRIBE,
    Input.SENT,
    Input.SAMPLE,
    Input.TIMER,
)
TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.DISCONNECTED, Input.CONNECT): State.IDLE,
    (State.DISCONNECTED, Input.SAMPLE): State.DISCONNECTED,
    (State.DISCONNECTED, Input.TIMER): State.DISCONNECTED,
    **{(State.IDLE, i): State.IDLE for i in _CONNECTED_INPUTS},
    (State.IDLE, Input.DISCONNECT): State.DISCONNECTED,
    (State.IDLE, Input.TRANSFER_START): State.TRANSFER,
    **{(State.TRANSFER, i): State.TRANSFER for i in _CONNECTED_INPUTS},
    (State.TRANSFER, Input.DISCONNECT): State.DISCONNECTED,
    (State.TRANSFER, Input.TRANSFER_END): State.IDLE,
    (State.ERROR, Input.DISCONNECT): State.DISCONNECTED,
    (State.ERROR, Input.SAMPLE): State.ERROR,
    (State.ERROR, Input.TIMER): State.ERROR,
}

_INPUT_OF = {
    Connected: Input.CONNECT,
    Disconnected: Input.DISCONNECT,
    MtuChanged: Input.MTU,
    Read: Input.READ,
    Write: Input.WRITE,
    Subscribe: Input.SUBSCRIBE,
    Sent: Input.SENT,
}


@dataclass(frozen=True, slots=True)
class TransmitterConfig:
    profile: DeviceProfile
    e2e_crc: bool = False
    store_records: int | None = None  # default: 24 hours (see capacity)
    comm_interval_min: int = 5
    battery_low_ms: int = 14 * 24 * 60 * MINUTE_MS  # outlasts a 10.5-day session
    levels: AlertLevels = field(default_factory=AlertLevels)
    # racp.PROCEDURE_TIMEOUT_MS in session time (a driver whose session clock runs X times
    # faster than the link's gives 30 s * X)
    procedure_timeout_ms: int = PROCEDURE_TIMEOUT_MS

    @property
    def capacity(self) -> int:
        """Records the store keeps: ``store_records``, else 25 hours' worth (more when the
        profile backfills further): the 24 hours a G7 backfills, plus an hour so that a
        collector back after exactly 24 hours still finds the reading it missed first."""
        if self.store_records is not None:
            return self.store_records
        keep_ms = max(DAY_MS, self.profile.backfill_ms) + DAY_MS // 24
        return keep_ms // self.profile.reading_interval_ms


FEATURES = (
    FeatureFlags.CALIBRATION
    | FeatureFlags.PATIENT_HIGH_LOW_ALERTS
    | FeatureFlags.HYPO_ALERTS
    | FeatureFlags.HYPER_ALERTS
    | FeatureFlags.RATE_OF_INCREASE_DECREASE_ALERTS
    | FeatureFlags.DEVICE_SPECIFIC_ALERT
    | FeatureFlags.SENSOR_MALFUNCTION_DETECTION
    | FeatureFlags.SENSOR_RESULT_HIGH_LOW_DETECTION
    | FeatureFlags.LOW_BATTERY_DETECTION
    | FeatureFlags.GENERAL_DEVICE_FAULT
    | FeatureFlags.TREND_INFORMATION
    | FeatureFlags.QUALITY
)
_LEVEL_OF = {
    opcode: name for name, triple in socp.ALERT_LEVELS.items() for opcode in (triple[0], triple[1])
}
_RESPONSE_OF = {triple[1]: triple[2] for triple in socp.ALERT_LEVELS.values()}


@dataclass
class _Transfer:
    """A RACP report in progress: the records still to send, then its response."""

    records: deque[MeasurementRecord]
    deadline_ms: int
    responded: bool = False  # the final response is out, awaiting its confirmation


class Transmitter:
    """The CGM sensor's firmware: one session at a time, one connected collector."""

    def __init__(
        self,
        config: TransmitterConfig,
        factory: FactoryCalibration,
        now_ms: int,
        *,
        start_session: bool = True,
    ) -> None:
        self.config = config
        self.factory = factory
        self.powered_on_ms = now_ms
        self.state = State.DISCONNECTED
        self.store = RecordStore(config.capacity)
        self.levels = config.levels
        self.comm_interval_min = config.comm_interval_min
        self.session: Session | None = None
        self.device_specific_alert = False
        self.mtu = events.DEFAULT_ATT_MTU
        self.subscriptions: dict[int, tuple[bool, bool]] = {}
        # live records taken while connected and notifying, not yet notified
        self.live_waiting: deque[MeasurementRecord] = deque()
        self.last_now_ms = now_ms
        self.transfer: _Transfer | None = None
        self.outbound = Outbound()  # what goes to the link, one PDU in flight
        self.protocol_errors = 0
        self.frame_errors = 0
        if start_session:
            self._start_session(now_ms)

    # --- the sans-I/O interface ---

    def receive(self, event: GattInput, now_ms: int) -> None:
        kind = _INPUT_OF[type(event)]
        if not self._transition(kind):
            if isinstance(event, Read | Write | Subscribe):
                self.outbound.respond(Respond(event.uuid, error=AttError.WRITE_NOT_PERMITTED))
            return
        match event:
            case Connected(mtu=mtu):
                self.mtu = mtu
                self.outbound.reset()
                self._flush_live(now_ms)
            case MtuChanged(mtu=mtu):
                self.mtu = mtu
            case Disconnected():
                # What was not notified the collector backfills with RACP on reconnection.
                # CCCD values are per client (Core Vol 3 Part G 3.3.3.3): this client's end
                # here; a bonded one's are given back (as Subscribe) by the link's stack.
                self.subscriptions.clear()
                self.transfer = None
                self.outbound.reset()
                self.live_waiting.clear()
            case Read(uuid=uuid):
                self.outbound.respond(self._read(uuid, now_ms))
            case Write(uuid=uuid, value=value):
                self._write(uuid, value, now_ms)
            case Subscribe(uuid=uuid, notify=notify, indicate=indicate):
                self.subscriptions[uuid] = (notify, indicate)
                self.outbound.respond(Respond(uuid))
                if uuid == gatt.MEASUREMENT.uuid and notify:
                    self._flush_live(now_ms)
            case Sent():
                self._sent(now_ms)

    def sample(self, sample: SensorSample, now_ms: int) -> None:
        """One sample from the sensor (every reading interval)."""
        self._transition(Input.SAMPLE)
        if self.session is None:
            return
        record = self.session.sample(sample, now_ms)
        if record is None:
            return
        self.store.append(record)
        if self.state is not State.DISCONNECTED and self._notifying() and self.comm_interval_min:
            self.live_waiting.append(record)
        self._flush_live(now_ms)

    def get_timer(self) -> int | None:
        """The next deadline after the last ``now`` seen: a RACP transfer's 30 s timeout, or
        live records waiting for their communication interval to run out."""
        deadlines = [self._live_due_ms()]
        if self.transfer is not None:
            deadlines.append(self.transfer.deadline_ms)
        future = [t for t in deadlines if t is not None and t > self.last_now_ms]
        return min(future) if future else None

    def handle_timer(self, now_ms: int) -> None:
        self.last_now_ms = max(self.last_now_ms, now_ms)
        self._transition(Input.TIMER)
        if self.transfer is not None and now_ms >= self.transfer.deadline_ms:
            # No progress for 30 s: the procedure is given up. What is in flight stays so (an
            # unconfirmed PDU holds the bearer until it is confirmed or the link drops).
            self.transfer = None
            self.outbound.waiting.clear()
            self._transition(Input.TRANSFER_END)
        self._flush_live(now_ms)

    def next_event(self) -> GattOutput | None:
        return self.outbound.next_event()

    @property
    def in_flight(self) -> bool:
        return self.outbound.in_flight

    @property
    def out(self) -> deque[GattOutput]:
        """``outbound.to_link``, by the name a subclass in tests/sim/test_conformance.py uses."""
        return self.outbound.to_link

    # --- state table ---

    def _transition(self, kind: Input) -> bool:
        new = TRANSITIONS.get((self.state, kind))
        if new is None:
            self.protocol_errors += 1
            self.state = State.ERROR
            return False
        self.state = new
        return new is not State.ERROR or kind in (Input.SAMPLE, Input.TIMER)

    # --- outbound flow: one notification or indication in flight ---

    def _sent(self, now_ms: int) -> None:
        if self.outbound.sent():
            return
        if self.transfer is not None:
            self._continue_transfer(now_ms)
        if not self.outbound.in_flight and self.transfer is None:
            self._flush_live(now_ms)

    def _notifying(self) -> bool:
        return self.subscriptions.get(gatt.MEASUREMENT.uuid, (False, False))[0]

    def _indicating(self, uuid: int) -> bool:
        return self.subscriptions.get(uuid, (False, False))[1]

    def _pack(
        self, records: deque[MeasurementRecord] | list[MeasurementRecord]
    ) -> list[MeasurementRecord]:
        return pack(records, self.mtu, self.config.e2e_crc)

    def _live_due_ms(self) -> int | None:
        """When the waiting live records are due. With a communication interval no longer than
        the reading interval (the default), each record goes out as it is taken; with a longer
        one, a batch goes out half a reading interval before the next reading would join it
        (15 minutes: three records every 15 minutes), so the outcome never depends on whether
        a driver runs a timer or a sample first when both fall on the same instant."""
        if not self.live_waiting or self.session is None:
            return None
        reading_ms = self.config.profile.reading_interval_ms
        interval_ms = self.comm_interval_min * MINUTE_MS
        oldest = self.session.start_ms + self.live_waiting[0].time_offset * MINUTE_MS
        return oldest if interval_ms <= reading_ms else oldest + interval_ms - reading_ms // 2

    def _flush_live(self, now_ms: int) -> None:
        """Notify the live records that are due, if the link is free for it."""
        self.last_now_ms = max(self.last_now_ms, now_ms)
        due = self._live_due_ms()
        if due is None or now_ms < due:
            return
        if self.state is not State.IDLE or not self._notifying():
            return  # then at the end of a transfer, or on subscription
        while self.live_waiting:  # every record due now, as many notifications as it takes
            batch = self._pack(self.live_waiting)
            self.outbound.send(
                Notify(gatt.MEASUREMENT.uuid, measurement.encode(batch, self.config.e2e_crc))
            )

    # --- reads ---

    def _read(self, uuid: int, now_ms: int) -> Respond:
        e2e = self.config.e2e_crc
        if uuid == gatt.FEATURE.uuid:
            flags = FEATURES | (FeatureFlags.E2E_CRC if e2e else 0)
            return Respond(uuid, attributes.encode_feature(attributes.Feature(int(flags))))
        if uuid == gatt.STATUS.uuid:
            return Respond(uuid, attributes.STATUS_CODEC.encode(self._status(now_ms), e2e))
        if uuid == gatt.SESSION_START_TIME.uuid:
            start = (
                self.session.start_time
                if self.session and self.session.start_time
                else _UNKNOWN_START
            )
            return Respond(uuid, attributes.SESSION_START_TIME_CODEC.encode(start, e2e))
        if uuid == gatt.SESSION_RUN_TIME.uuid:
            hours = self.config.profile.end_ms // (60 * MINUTE_MS)
            return Respond(
                uuid, attributes.SESSION_RUN_TIME_CODEC.encode(SessionRunTime(hours), e2e)
            )
        return Respond(uuid, error=AttError.WRITE_NOT_PERMITTED)

    def _status(self, now_ms: int) -> Status:
        session = self.session
        status = StatusFlags(0)
        if session is None or not session.running(now_ms):
            status |= StatusFlags.SESSION_STOPPED
        if session is not None:
            status |= session.status_octet(now_ms)
        if now_ms - self.powered_on_ms >= self.config.battery_low_ms:
            status |= StatusFlags.DEVICE_BATTERY_LOW
        if self.device_specific_alert:
            status |= StatusFlags.DEVICE_SPECIFIC_ALERT
        cal_temp = session.cal_temp_octet() if session else 0
        warning = session.latest.warning if session and session.latest else 0
        offset = session.time_offset(now_ms) if session else 0
        return Status(offset, int(status), cal_temp, warning)

    # --- writes ---

    def _write(self, uuid: int, value: bytes, now_ms: int) -> None:
        if uuid == gatt.RACP.uuid:
            self._write_racp(value, now_ms)
        elif uuid == gatt.SOCP.uuid:
            self._write_socp(value, now_ms)
        elif uuid == gatt.SESSION_START_TIME.uuid:
            self._write_start_time(value, now_ms)
        else:
            self.outbound.respond(Respond(uuid, error=AttError.WRITE_NOT_PERMITTED))

    def _write_start_time(self, value: bytes, now_ms: int) -> None:
        uuid = gatt.SESSION_START_TIME.uuid
        try:
            written = attributes.SESSION_START_TIME_CODEC.decode(value, self.config.e2e_crc)
            if self.session is None:
                raise ValueError("no session")
            self.session.set_start_time(written, now_ms)
        except (FrameError, ValueError) as error:
            self.frame_errors += 1
            self.outbound.respond(Respond(uuid, error=_att_error(error)))
            return
        self.outbound.respond(Respond(uuid))

    # RACP (CGMS §3.6)

    def _write_racp(self, value: bytes, now_ms: int) -> None:
        uuid = gatt.RACP.uuid
        if not self._indicating(uuid):
            self.outbound.respond(Respond(uuid, error=AttError.CCCD_IMPROPERLY_CONFIGURED))
            return
        if self.transfer is not None and value[:1] != bytes([RacpOpcode.ABORT_OPERATION]):
            self.outbound.respond(Respond(uuid, error=AttError.PROCEDURE_ALREADY_IN_PROGRESS))
            return
        try:
            request = racp.decode(value)
        except ControlPointError as error:
            self.frame_errors += 1
            self.outbound.respond(Respond(uuid))
            self._indicate_racp(error.request_opcode, RacpResponseCode(error.response_code))
            return
        if not request.is_request:
            self.outbound.respond(Respond(uuid))
            self._indicate_racp(request.opcode, RacpResponseCode.OP_CODE_NOT_SUPPORTED)
            return
        if request.opcode == RacpOpcode.REPORT_STORED_RECORDS and not self._notifying():
            self.outbound.respond(Respond(uuid, error=AttError.CCCD_IMPROPERLY_CONFIGURED))
            return
        self.outbound.respond(Respond(uuid))
        operand = request.operand
        match request.opcode:
            case RacpOpcode.ABORT_OPERATION:
                if self.transfer is not None:
                    self.transfer = None
                    self._transition(Input.TRANSFER_END)
                self._indicate_racp(RacpOpcode.ABORT_OPERATION, RacpResponseCode.SUCCESS)
            case RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS:
                count = self.store.count(RacpOperator(request.operator), operand)
                self.outbound.send(Indicate(uuid, racp.encode(racp.number_of_records(count))))
            case RacpOpcode.DELETE_STORED_RECORDS:
                deleted = self.store.delete(RacpOperator(request.operator), operand)
                code = RacpResponseCode.SUCCESS if deleted else RacpResponseCode.NO_RECORDS_FOUND
                self._indicate_racp(RacpOpcode.DELETE_STORED_RECORDS, code)
            case RacpOpcode.REPORT_STORED_RECORDS:
                selected = self.store.select(RacpOperator(request.operator), operand)
                if not selected:
                    self._indicate_racp(
                        RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND
                    )
                    return
                self.transfer = _Transfer(
                    deque(selected), now_ms + self.config.procedure_timeout_ms
                )
                self._transition(Input.TRANSFER_START)
                if not self.outbound.in_flight:
                    self._continue_transfer(now_ms)

    def _indicate_racp(self, opcode: int, code: RacpResponseCode) -> None:
        self.outbound.send(Indicate(gatt.RACP.uuid, racp.encode(racp.response(opcode, code))))

    def _continue_transfer(self, now_ms: int) -> None:
        """Send the next notification of stored records, or the final response, or finish."""
        transfer = self.transfer
        assert transfer is not None
        transfer.deadline_ms = now_ms + self.config.procedure_timeout_ms
        if transfer.responded:  # the response was confirmed: done
            self.transfer = None
            self._transition(Input.TRANSFER_END)
        elif transfer.records:
            batch = self._pack(transfer.records)
            self.outbound.send(
                Notify(gatt.MEASUREMENT.uuid, measurement.encode(batch, self.config.e2e_crc))
            )
        else:
            transfer.responded = True
            self._indicate_racp(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)

    # SOCP (CGMS §3.7)

    def _write_socp(self, value: bytes, now_ms: int) -> None:
        uuid = gatt.SOCP.uuid
        if not self._indicating(uuid):
            self.outbound.respond(Respond(uuid, error=AttError.CCCD_IMPROPERLY_CONFIGURED))
            return
        try:
            frame = socp.decode(value, self.config.e2e_crc)
        except ControlPointError as error:
            self.frame_errors += 1
            self.outbound.respond(Respond(uuid))
            self._indicate_socp(
                socp.response(error.request_opcode, SocpResponseCode(error.response_code))
            )
            return
        except FrameError as error:
            self.frame_errors += 1
            self.outbound.respond(Respond(uuid, error=_att_error(error)))
            return
        self.outbound.respond(Respond(uuid))
        self._indicate_socp(self._socp(frame, now_ms))

    def _indicate_socp(self, frame: SocpFrame) -> None:
        self.outbound.send(Indicate(gatt.SOCP.uuid, socp.encode(frame, self.config.e2e_crc)))

    def _socp(self, frame: SocpFrame, now_ms: int) -> SocpFrame:
        op = frame.opcode
        ok = socp.response(op, SocpResponseCode.SUCCESS)
        session = self.session
        if op == SocpOpcode.SET_COMMUNICATION_INTERVAL:
            interval = frame.interval_min or 0
            fastest = self.config.profile.reading_interval_ms // MINUTE_MS
            self.comm_interval_min = fastest if interval == 0xFF else interval
            if interval == 0:  # periodic notifications stop
                self.live_waiting.clear()
            self._flush_live(now_ms)
            return ok
        if op == SocpOpcode.GET_COMMUNICATION_INTERVAL:
            return SocpFrame(
                SocpOpcode.COMMUNICATION_INTERVAL_RESPONSE, interval_min=self.comm_interval_min
            )
        if op == SocpOpcode.SET_CALIBRATION_VALUE:
            if session is None or frame.calibration is None:
                return socp.response(op, SocpResponseCode.PROCEDURE_NOT_COMPLETED)
            session.calibrate(frame.calibration, now_ms)
            return ok
        if op == SocpOpcode.GET_CALIBRATION_VALUE:
            records = session.calibrations if session else []
            number = frame.record_number
            if records and number == socp.LAST_CALIBRATION:
                return SocpFrame(SocpOpcode.CALIBRATION_VALUE_RESPONSE, calibration=records[-1])
            if number is not None and 1 <= number <= len(records):
                return SocpFrame(
                    SocpOpcode.CALIBRATION_VALUE_RESPONSE, calibration=records[number - 1]
                )
            return socp.response(op, SocpResponseCode.PARAMETER_OUT_OF_RANGE)
        if op in _LEVEL_OF:
            name = _LEVEL_OF[op]
            if op in _RESPONSE_OF:  # a get
                return SocpFrame(_RESPONSE_OF[op], level=float(getattr(self.levels, name)))
            low, high = ALERT_LEVEL_RANGES[name]
            level = frame.level
            if isinstance(level, SFloatSpecial) or level is None or not low <= level <= high:
                return socp.response(op, SocpResponseCode.PARAMETER_OUT_OF_RANGE)
            self.levels = _replace_level(self.levels, name, float(level))
            if session is not None:
                session.levels = self.levels
            return ok
        if op == SocpOpcode.RESET_DEVICE_SPECIFIC_ALERT:
            self.device_specific_alert = False
            return ok
        if op == SocpOpcode.START_SESSION:
            # One sensor, one session: Feature bit 14 (Multiple Sessions) is 0, so a session
            # that ran (running, stopped or over) cannot be followed by another (CGMS.TS
            # CGMS/SEN/CGMCP/BI-08-C and BV-24-C); only a sensor with no session yet starts one.
            if session is not None:
                return socp.response(op, SocpResponseCode.PROCEDURE_NOT_COMPLETED)
            self._start_session(now_ms)
            return ok
        if op == SocpOpcode.STOP_SESSION:
            if session is None or not session.running(now_ms):
                return socp.response(op, SocpResponseCode.OP_CODE_NOT_SUPPORTED)
            session.stop(now_ms)
            return ok
        return socp.response(op, SocpResponseCode.OP_CODE_NOT_SUPPORTED)  # responses written to us

    def _start_session(self, now_ms: int) -> None:
        """A new session: records of the last one are deleted, time offsets restart."""
        self.session = Session(self.config.profile, self.factory, now_ms, self.levels)
        self.store.clear()
        self.live_waiting.clear()


_UNKNOWN_START = SessionStartTime(0, 0, 0, 0, 0, 0)


def _replace_level(levels: AlertLevels, name: str, value: float) -> AlertLevels:
    return replace(levels, **{name: value})


def _att_error(error: Exception) -> AttError:
    if isinstance(error, MissingCrcError):
        return AttError.MISSING_CRC
    if isinstance(error, CrcError):
        return AttError.INVALID_CRC
    return AttError.OUT_OF_RANGE
