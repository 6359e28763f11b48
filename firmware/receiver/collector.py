"""The receiver's CGMS collector: the CGMP procedure as a sans-I/O client (PROF §4, §5.2;
shared/spec/cgms.md "Collector (receiver) procedure").

On every connection: read Feature, read Status, enable Measurement notifications and RACP/SOCP
indications, start a session if none runs, write Session Start Time if the sensor asks for it,
then backfill with RACP (first connection: ``04 01`` then ``01 01``; later ones
``01 03 01 <last time offset + 1>``). Live records after that; a gap in live records is asked
for again with RACP. Every record is accepted once (de-duplicated by time offset).

A backfill ends by counting what the sensor still holds: in the holes below the newest record
received (``04 04 01 <first> <last>``) and after it (``04 03 01 <newest + 1>``), asking again
for what was lost on the way; so the sensor's last records arrive even when no later one would
reveal the gap (its session ended or failed). ``check(now)``, which the receiver calls when a
reading is overdue, reads CGM Status (what the sensor says about itself) and then backfills
the same way (docs/receiver.md).

Inputs: ``connected``, ``disconnected``, ``response`` (to the one ATT request in flight),
``notification``, ``indication``, ``handle_timer``. Outputs: requests for the link
(``ReadRequest``, ``WriteRequest``, ``SubscribeRequest``, ``DisconnectRequest``) and what the
receiver needs (``RecordReceived``, ``SensorStatusRead``, ``FrameRejected``), pulled with
``next_event()``.

The procedure is one table, ``TRANSITIONS``: ``{(state, input): Transition}``, each naming the
method that runs and the states it may lead to (tests/firmware/test_collector_table.py walks
every pair). A pair not in it is not allowed: ignored and counted in ``stray_inputs`` (a RACP
answer nothing asked for, say). What the table does not hold is data: the records received,
the range being counted, and a check or a gap refetch asked for while another step runs.
"""

from __future__ import annotations

import datetime
import enum
from collections import deque
from dataclasses import dataclass
from typing import Any

from firmware.events import AttError
from firmware.profiles import MINUTE_MS
from protocol.cgms import attributes, gatt, measurement, racp, socp
from protocol.cgms.annunciation import CalTempFlags, StatusFlags
from protocol.cgms.attributes import Feature, SessionStartTime, Status
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import (
    PROCEDURE_TIMEOUT_MS,
    RacpOpcode,
    RacpOperator,
    RacpResponseCode,
)
from protocol.errors import FrameError

RETRY_MS = 1_000  # after ATT 0xFE (procedure already in progress)
READING_STEP_MIN = 5


# --- out of the collector ---


@dataclass(frozen=True, slots=True)
class ReadRequest:
    uuid: int


@dataclass(frozen=True, slots=True)
class WriteRequest:
    uuid: int
    value: bytes


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    uuid: int
    notify: bool = False
    indicate: bool = False


@dataclass(frozen=True, slots=True)
class DisconnectRequest:
    reason: str


@dataclass(frozen=True, slots=True)
class RecordReceived:
    record: MeasurementRecord
    backfill: bool


@dataclass(frozen=True, slots=True)
class SensorStatusRead:
    """What a Status read said: the time offset now, and the annunciation octets."""

    status: Status


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A value from the sensor that does not decode; counted and dropped."""

    uuid: int
    reason: str


Request = ReadRequest | WriteRequest | SubscribeRequest
CollectorOutput = Request | DisconnectRequest | RecordReceived | SensorStatusRead | FrameRejected


class State(enum.Enum):
    """What the collector is waiting for. The value names the step in a DisconnectRequest's
    reason (``State.step``: the three RACP steps after the first count say "backfill")."""

    DISCONNECTED = "disconnected"
    READ_FEATURE = "read feature"
    READ_STATUS = "read status"
    SUBSCRIBE_MEASUREMENT = "subscribe measurement"
    SUBSCRIBE_RACP = "subscribe racp"
    SUBSCRIBE_SOCP = "subscribe socp"
    START_SESSION = "start session"  # SOCP Start Session written: awaiting its indication
    WRITE_START_TIME = "write session start time"
    CHECK_STATUS = "check status"  # a reading is overdue: what does the sensor say?
    COUNT_ALL = "count records"  # the first connection's 04 01
    REPORT = "report records"  # 01 ..: records stream, then the response code
    COUNT_HOLES = "count holes"  # 04 04 01 <first> <last> over the records missing
    COUNT_TAIL = "count tail"  # 04 03 01 <newest + 1>
    LIVE = "live"
    FAILED = "failed"  # a disconnection was asked for: nothing more until it comes

    @property
    def step(self) -> str:
        return "backfill" if self in _BACKFILL else self.value


_BACKFILL = frozenset({State.REPORT, State.COUNT_HOLES, State.COUNT_TAIL})


class Input(enum.Enum):
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    CHECK = "check"  # the receiver: a reading is overdue
    ANSWER = "answer"  # the request in flight succeeded (a read's value, a write's ack)
    ATT_ERROR = "att error"  # ... or failed
    BUSY = "busy"  # ... a write, with ATT 0xFE: it is sent again after RETRY_MS
    RETRY = "retry"  # that time came
    TIMEOUT = "timeout"  # a RACP request unanswered (a report: no record) for 30 s
    MEASUREMENT = "measurement"  # a Measurement notification that decodes
    SOCP_INDICATION = "socp indication"
    RECORD_COUNT = "record count"  # RACP Number of Stored Records Response
    COUNT_REFUSED = "count refused"  # RACP Response Code to Report Number of Stored Records
    REPORT_DONE = "report done"  # RACP Response Code to a report: Success or No Records Found
    REPORT_FAILED = "report failed"  # ... any other code


@dataclass(frozen=True, slots=True)
class Transition:
    """What a (state, input) pair does: the ``Collector`` method that runs, and the states it
    may leave the collector in (it chooses among them by what it learns)."""

    action: str
    to: frozenset[State]


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    clock_at_zero: datetime.datetime  # the wall-clock time at now_ms = 0 (an edge fact)
    time_zone: int = 0  # 15-minute units
    dst: int = 0
    start_session: bool = True  # write SOCP 1A when no session runs
    # racp.PROCEDURE_TIMEOUT_MS in session time (a driver whose session clock runs X times
    # faster than the link's gives 30 s * X)
    procedure_timeout_ms: int = PROCEDURE_TIMEOUT_MS
    # How far the sensor's session clock may seem to move between two looks at it: the time
    # offset's minute resolution, plus (a driver at --speed X) the air's latency in session
    # time. Beyond it, a record is ahead of the clock, or a Status tells of a new session.
    clock_tolerance_ms: int = MINUTE_MS


class Collector:
    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.state = State.DISCONNECTED
        self.feature: Feature | None = None
        self.status: Status | None = None
        self.e2e_crc = False
        self.seen: set[int] = set()  # time offsets received this session
        self.last_offset: int | None = None
        # The session start the receiver learnt from Status (None: not yet). A record taken
        # more than ``clock_tolerance_ms`` after now by it is refused before its offset is
        # marked seen.
        self.session_start_ms: int | None = None
        self.pending: Request | None = None  # the ATT request in flight
        self.retry: Request | None = None  # a write answered "busy", sent again at retry_at_ms
        self.deadline_ms: int | None = None  # the RACP request's (COUNT_*, REPORT)
        self.retry_at_ms: int | None = None
        self.absent: set[int] = set()  # offsets the sensor never produced (checked by count)
        self.holes: tuple[int, int] | None = None  # the range COUNT_HOLES counts
        # A backfill's last step: count what the sensor holds after the newest record
        # received, and ask again while it holds some and the last ask brought one.
        self.verify_tail = False
        self.tail_asked_after: int | None = None  # the newest offset (-1: none) at the last ask
        self.synced_at_ms: int | None = None  # when the sensor last held nothing we lack
        # Procedures asked for while another runs, started when the collector is LIVE again.
        self.check_wanted = False  # a check (``check``)
        self.gap_wanted = False  # a live record's predecessor never came
        self.checking = False  # a check runs (its Status read, then its backfill)
        self.frame_errors = 0
        self.stray_inputs = 0  # inputs the table does not allow in the state they came in
        self.out: deque[CollectorOutput] = deque()

    # --- inputs ---

    @property
    def connected_now(self) -> bool:
        return self.state is not State.DISCONNECTED

    def connected(self, now_ms: int) -> None:
        self._fire(Input.CONNECT, None, now_ms)

    def disconnected(self, now_ms: int) -> None:
        self._fire(Input.DISCONNECT, None, now_ms)

    def check(self, now_ms: int) -> None:
        """A reading is overdue (the receiver knows when): read CGM Status, then fetch what
        the sensor holds after the newest record received and count what is left. If another
        procedure is running, the check follows it."""
        self._fire(Input.CHECK, None, now_ms)

    def response(self, uuid: int, value: bytes | None, error: int | None, now_ms: int) -> None:
        """The answer to the request in flight: a value for a read, else an ATT error or None."""
        request, self.pending = self.pending, None
        if request is None or request.uuid != uuid:
            return  # not ours (a late answer after a reconnection)
        if error == AttError.PROCEDURE_ALREADY_IN_PROGRESS and isinstance(request, WriteRequest):
            self._fire(Input.BUSY, request, now_ms)
        elif error is not None:
            self._fire(Input.ATT_ERROR, error, now_ms)
        else:
            self._fire(Input.ANSWER, value, now_ms)

    def notification(self, uuid: int, value: bytes, now_ms: int) -> None:
        if uuid != gatt.MEASUREMENT.uuid:
            return
        try:
            records = measurement.decode(value, self.e2e_crc)
        except FrameError as problem:
            self._reject(uuid, str(problem))
            return
        self._fire(Input.MEASUREMENT, records, now_ms)

    def indication(self, uuid: int, value: bytes, now_ms: int) -> None:
        if uuid == gatt.SOCP.uuid:
            self._fire(Input.SOCP_INDICATION, value, now_ms)  # decoded when awaited
        if uuid != gatt.RACP.uuid:
            return
        try:
            answer = racp.decode(value)
        except FrameError as problem:
            self._reject(uuid, str(problem))
            return
        if answer.opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            self._fire(Input.RECORD_COUNT, answer.number_of_records or 0, now_ms)
        elif answer.opcode != RacpOpcode.RESPONSE_CODE:
            return
        elif answer.request_opcode == RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS:
            self._fire(Input.COUNT_REFUSED, answer.response_code, now_ms)
        elif answer.request_opcode == RacpOpcode.REPORT_STORED_RECORDS:
            done = (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND)
            kind = Input.REPORT_DONE if answer.response_code in done else Input.REPORT_FAILED
            self._fire(kind, answer.response_code, now_ms)

    def get_timer(self) -> int | None:
        times = [t for t in (self.deadline_ms, self.retry_at_ms) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now_ms: int) -> None:
        if self.retry_at_ms is not None and now_ms >= self.retry_at_ms and self.retry:
            self.retry_at_ms, request, self.retry = None, self.retry, None
            self._fire(Input.RETRY, request, now_ms)
        if self.deadline_ms is not None and now_ms >= self.deadline_ms:
            self.deadline_ms = None
            self._fire(Input.TIMEOUT, None, now_ms)

    def next_event(self) -> CollectorOutput | None:
        return self.out.popleft() if self.out else None

    def forget_session(self) -> None:
        """A new sensor session: nothing received yet."""
        self.seen.clear()
        self.absent.clear()
        self.last_offset = None

    # --- the table ---

    def _fire(self, kind: Input, arg: Any, now_ms: int) -> None:
        transition = TRANSITIONS.get((self.state, kind))
        if transition is None:
            self.stray_inputs += 1  # e.g. a RACP answer nothing asked for: ignored
            return
        before = self.state
        getattr(self, transition.action)(arg, now_ms)
        assert self.state in transition.to, f"{before} x {kind} -> {self.state}"

    # --- the actions (each one a cell of the table: arg is the input's payload) ---

    def _nothing(self, arg: object, now_ms: int) -> None:
        pass

    def _start(self, arg: None, now_ms: int) -> None:
        self.pending = None
        self.gap_wanted = self.check_wanted = False
        self.state = State.READ_FEATURE
        self._request(ReadRequest(gatt.FEATURE.uuid))

    def _stop(self, arg: None, now_ms: int) -> None:
        self.state, self.pending, self.retry = State.DISCONNECTED, None, None
        self.holes = self.tail_asked_after = None
        self.deadline_ms = self.retry_at_ms = None
        self.verify_tail = self.check_wanted = self.checking = False

    def _check(self, arg: None, now_ms: int) -> None:
        if self.pending is not None:
            self.check_wanted = True
            return
        self.check_wanted, self.checking = False, True
        self.state = State.CHECK_STATUS
        self._request(ReadRequest(gatt.STATUS.uuid))

    def _check_later(self, arg: None, now_ms: int) -> None:
        self.check_wanted = True

    def _feature_read(self, value: bytes | None, now_ms: int) -> None:
        try:
            self.feature = attributes.decode_feature(value or b"")
        except FrameError as problem:
            self._unreadable(gatt.FEATURE.uuid, problem)
            return
        self.e2e_crc = self.feature.e2e_crc
        self.state = State.READ_STATUS
        self._request(ReadRequest(gatt.STATUS.uuid))

    def _status_read(self, value: bytes | None, now_ms: int) -> None:
        if self._read_status(value):
            self.state = State.SUBSCRIBE_MEASUREMENT
            self._request(SubscribeRequest(gatt.MEASUREMENT.uuid, notify=True))

    def _checked_status_read(self, value: bytes | None, now_ms: int) -> None:
        if self._read_status(value):
            self._backfill(now_ms)

    def _subscribe_racp(self, value: bytes | None, now_ms: int) -> None:
        self.state = State.SUBSCRIBE_RACP
        self._request(SubscribeRequest(gatt.RACP.uuid, indicate=True))

    def _subscribe_socp(self, value: bytes | None, now_ms: int) -> None:
        self.state = State.SUBSCRIBE_SOCP
        self._request(SubscribeRequest(gatt.SOCP.uuid, indicate=True))

    def _subscribed(self, value: bytes | None, now_ms: int) -> None:
        stopped = self.status is not None and self.status.status & StatusFlags.SESSION_STOPPED
        if stopped and self.config.start_session and self.last_offset is None:
            self.state = State.START_SESSION
            start = socp.SocpFrame(socp.SocpOpcode.START_SESSION)
            self._request(WriteRequest(gatt.SOCP.uuid, socp.encode(start, self.e2e_crc)))
        else:
            self._after_session_started(now_ms)

    def _socp_answered(self, value: bytes, now_ms: int) -> None:
        try:
            answer = socp.decode(value, self.e2e_crc)
        except FrameError as problem:
            self._reject(gatt.SOCP.uuid, str(problem))
            return
        if answer.request_opcode == socp.SocpOpcode.START_SESSION:
            self._after_session_started(now_ms)

    def _start_time_written(self, value: bytes | None, now_ms: int) -> None:
        self._backfill(now_ms)

    def _att_error(self, error: int, now_ms: int) -> None:
        """Asks for a disconnection; what the sensor sends until then is still taken in."""
        self.out.append(DisconnectRequest(f"{self.state.step}: ATT error 0x{error:02X}"))

    def _busy(self, request: Request, now_ms: int) -> None:
        self.retry_at_ms, self.retry = now_ms + RETRY_MS, request

    def _resend(self, request: Request, now_ms: int) -> None:
        self._request(request)

    def _transfer_stalled(self, arg: None, now_ms: int) -> None:
        self._fail("RACP transfer: no progress for 30 s")  # keep what came, start over

    def _count_unanswered(self, arg: None, now_ms: int) -> None:
        self._fail("RACP count: no answer for 30 s")

    def _records_backfilled(self, records: list[MeasurementRecord], now_ms: int) -> None:
        self.deadline_ms = now_ms + self.config.procedure_timeout_ms  # progress
        for record in records:
            self._accept(record, True, now_ms)

    def _records_live(self, records: list[MeasurementRecord], now_ms: int) -> None:
        for record in records:
            if self._accept(record, False, now_ms):
                self._check_gap(record)
        if self.gap_wanted and self.pending is None:
            self.gap_wanted = False
            self._reconcile(now_ms)

    def _records_meanwhile(self, records: list[MeasurementRecord], now_ms: int) -> None:
        for record in records:
            self._accept(record, False, now_ms)

    def _all_counted(self, number: int, now_ms: int) -> None:
        """The first connection's "how many": then report all."""
        self.deadline_ms = None
        every = racp.request(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)
        self._write_racp(State.REPORT, every, now_ms)

    def _holes_counted(self, number: int, now_ms: int) -> None:
        self.deadline_ms = None
        assert self.holes is not None
        low, high = self.holes
        have = sum(1 for t in self.seen if low <= t <= high)
        if number <= have:  # the sensor holds nothing we lack: the holes were never made
            self.absent.update(t for t in self.missing() if low <= t <= high)
            self._reconcile(now_ms)
            return
        report = racp.request(
            RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.WITHIN_RANGE_OF, (low, high)
        )
        self._write_racp(State.REPORT, report, now_ms)

    def _tail_counted(self, number: int, now_ms: int) -> None:
        """The sensor holds ``number`` records after the newest one received."""
        self.deadline_ms = None
        newest = -1 if self.last_offset is None else self.last_offset
        if number == 0 or self.tail_asked_after == newest:
            # Nothing left (synced), or the last ask brought nothing new (lost again, or
            # refused): done, and the next check asks again.
            self.verify_tail, self.tail_asked_after = False, None
            if number == 0:
                self.synced_at_ms = now_ms
            self._reconcile(now_ms)
            return
        self.tail_asked_after = newest
        self._write_racp(State.REPORT, self._report_since(newest + 1), now_ms)

    def _tail_refused(self, code: int, now_ms: int) -> None:
        """The count refused: the tail is left to the next check."""
        self.verify_tail = False
        self.deadline_ms = None
        self._reconcile(now_ms)

    def _reported(self, code: int, now_ms: int) -> None:
        self.deadline_ms = None
        self._reconcile(now_ms)

    def _report_failed(self, code: int, now_ms: int) -> None:
        self._fail(f"RACP report answered {code}")

    # --- the procedure's steps ---

    def _request(self, request: Request) -> None:
        self.pending = request
        self.out.append(request)

    def _fail(self, reason: str) -> None:
        """Ask for the link to be dropped; nothing more is awaited on this one."""
        self.state = State.FAILED
        self.deadline_ms = self.retry_at_ms = None
        self.retry = None
        self.out.append(DisconnectRequest(reason))

    def _unreadable(self, uuid: int, problem: FrameError) -> None:
        self._reject(uuid, str(problem))
        self._fail(f"{self.state.step}: {problem}")

    def _read_status(self, value: bytes | None) -> bool:
        try:
            self.status = attributes.STATUS_CODEC.decode(value or b"", self.e2e_crc)
        except FrameError as problem:
            self._unreadable(gatt.STATUS.uuid, problem)
            return False
        self.out.append(SensorStatusRead(self.status))
        return True

    def _after_session_started(self, now_ms: int) -> None:
        sync = CalTempFlags.TIME_SYNCHRONIZATION_REQUIRED
        if self.status is None or self.status.cal_temp & sync:
            self.state = State.WRITE_START_TIME
            start = self._now_as_start_time(now_ms)
            value = attributes.SESSION_START_TIME_CODEC.encode(start, self.e2e_crc)
            self._request(WriteRequest(gatt.SESSION_START_TIME.uuid, value))
        else:
            self._backfill(now_ms)

    def _now_as_start_time(self, now_ms: int) -> SessionStartTime:
        moment = self.config.clock_at_zero + datetime.timedelta(milliseconds=now_ms)
        return SessionStartTime.from_datetime(moment, self.config.time_zone, self.config.dst)

    def _backfill(self, now_ms: int) -> None:
        self.verify_tail, self.tail_asked_after = True, None
        if self.last_offset is None:
            count = racp.request(
                RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS
            )
            self._write_racp(State.COUNT_ALL, count, now_ms)
        else:
            self._write_racp(State.REPORT, self._report_since(self.last_offset + 1), now_ms)

    @staticmethod
    def _report_since(offset: int) -> racp.RacpFrame:
        return racp.request(
            RacpOpcode.REPORT_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL_TO,
            min(offset, 0xFFFF),
        )

    def _write_racp(self, state: State, request: racp.RacpFrame, now_ms: int) -> None:
        """A RACP request, awaited in ``state`` 30 s at most (a report: 30 s without a
        record), after which the link is dropped and the backfill starts over."""
        self.state = state
        self.deadline_ms = now_ms + self.config.procedure_timeout_ms
        self._request(WriteRequest(gatt.RACP.uuid, racp.encode(request)))

    # --- making sure nothing is missing ---

    def missing(self) -> list[int]:
        """Offsets from the session start to the last record received that never came and
        are not known to be absent on the sensor (the first reading after warm-up may be the
        one lost: nothing older would show the gap)."""
        if self.last_offset is None:
            return []
        return [
            t
            for t in range(0, self.last_offset, READING_STEP_MIN)
            if t not in self.seen and t not in self.absent
        ]

    def _reconcile(self, now_ms: int) -> None:
        """After a transfer (or a gap in live records): count what the sensor holds where
        records are missing; ask for them again, or learn that the sensor never made them.
        After a backfill, then count what it holds after the newest record received."""
        missing = self.missing()
        if not missing and self.verify_tail:
            self._count_tail(now_ms)
            return
        if not missing:
            self.state, self.holes, self.checking = State.LIVE, None, False
            if self.check_wanted:
                self._check(None, now_ms)
            return
        self.holes = (missing[0], missing[-1])
        count = racp.request(
            RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.WITHIN_RANGE_OF, self.holes
        )
        self._write_racp(State.COUNT_HOLES, count, now_ms)

    def _count_tail(self, now_ms: int) -> None:
        self.holes = None
        after = 0 if self.last_offset is None else min(self.last_offset + 1, 0xFFFF)
        count = racp.request(
            RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL_TO, after
        )
        self._write_racp(State.COUNT_TAIL, count, now_ms)

    # --- records ---

    def _accept(self, record: MeasurementRecord, backfill: bool, now_ms: int) -> bool:
        """Pass a record on once; False when it is refused (not marked seen)."""
        start = self.session_start_ms
        tolerance = self.config.clock_tolerance_ms
        if start is not None and start + record.time_offset * MINUTE_MS > now_ms + tolerance:
            # Ahead of the session's clock (minute resolution): not a reading yet. Refused
            # without marking its offset seen, so the genuine record can still come.
            self._reject(
                gatt.MEASUREMENT.uuid,
                f"time offset {record.time_offset} min is ahead of the session's clock",
            )
            return False
        if record.time_offset in self.seen:
            return True
        self.seen.add(record.time_offset)
        self.absent.discard(record.time_offset)
        if self.last_offset is None or record.time_offset > self.last_offset:
            self.last_offset = record.time_offset
        self.out.append(RecordReceived(record, backfill))
        return True

    def _check_gap(self, record: MeasurementRecord) -> None:
        """A live record whose predecessor never came (and is not known to be absent)."""
        before = record.time_offset - READING_STEP_MIN
        if before >= 0 and before not in self.seen and before not in self.absent:
            self.gap_wanted = True

    def _reject(self, uuid: int, reason: str) -> None:
        self.frame_errors += 1
        self.out.append(FrameRejected(uuid, reason))


# --- the procedure as data: {(state, input): Transition}; a pair not listed is ignored ---


def _to(action: str, *states: State) -> Transition:
    return Transition(action, frozenset(states))


_CONNECTED = tuple(s for s in State if s is not State.DISCONNECTED)
_WORKING = tuple(s for s in _CONNECTED if s is not State.FAILED)  # no disconnection asked for
_COUNTS = (State.COUNT_ALL, State.COUNT_HOLES, State.COUNT_TAIL)
# where a backfill goes once what it asked for came: holes to count, the tail, or done
_RECONCILED = (State.COUNT_HOLES, State.COUNT_TAIL, State.LIVE, State.CHECK_STATUS)
_BACKFILLING = (State.COUNT_ALL, State.REPORT)  # where a backfill starts
_AWAITING_INDICATION = (State.START_SESSION, *_COUNTS, State.REPORT)

TRANSITIONS: dict[tuple[State, Input], Transition] = {
    **{(s, Input.CONNECT): _to("_start", State.READ_FEATURE) for s in State},
    **{(s, Input.DISCONNECT): _to("_stop", State.DISCONNECTED) for s in State},
    # a check: now when LIVE and no request is in flight, else once the collector is LIVE
    (State.DISCONNECTED, Input.CHECK): _to("_nothing", State.DISCONNECTED),
    **{(s, Input.CHECK): _to("_check_later", s) for s in _CONNECTED if s is not State.LIVE},
    (State.LIVE, Input.CHECK): _to("_check", State.CHECK_STATUS, State.LIVE),
    # connecting: read, read, subscribe x 3, start a session?, write its start time?, backfill
    (State.READ_FEATURE, Input.ANSWER): _to("_feature_read", State.READ_STATUS, State.FAILED),
    (State.READ_STATUS, Input.ANSWER): _to(
        "_status_read", State.SUBSCRIBE_MEASUREMENT, State.FAILED
    ),
    (State.SUBSCRIBE_MEASUREMENT, Input.ANSWER): _to("_subscribe_racp", State.SUBSCRIBE_RACP),
    (State.SUBSCRIBE_RACP, Input.ANSWER): _to("_subscribe_socp", State.SUBSCRIBE_SOCP),
    (State.SUBSCRIBE_SOCP, Input.ANSWER): _to(
        "_subscribed", State.START_SESSION, State.WRITE_START_TIME, *_BACKFILLING
    ),
    (State.START_SESSION, Input.SOCP_INDICATION): _to(
        "_socp_answered", State.START_SESSION, State.WRITE_START_TIME, *_BACKFILLING
    ),
    (State.WRITE_START_TIME, Input.ANSWER): _to("_start_time_written", *_BACKFILLING),
    (State.CHECK_STATUS, Input.ANSWER): _to("_checked_status_read", *_BACKFILLING, State.FAILED),
    # a write answered (its indication follows), or an answer after the step moved on
    **{(s, Input.ANSWER): _to("_nothing", s) for s in (*_AWAITING_INDICATION, State.LIVE)},
    (State.FAILED, Input.ANSWER): _to("_nothing", State.FAILED),
    # the request in flight failing
    **{(s, Input.ATT_ERROR): _to("_att_error", s) for s in _WORKING},
    **{(s, Input.BUSY): _to("_busy", s) for s in _WORKING},
    **{(s, Input.RETRY): _to("_resend", s) for s in _WORKING},
    # RACP: first count all, report; after any report, count the holes and the tail
    (State.COUNT_ALL, Input.RECORD_COUNT): _to("_all_counted", State.REPORT),
    (State.COUNT_HOLES, Input.RECORD_COUNT): _to("_holes_counted", State.REPORT, *_RECONCILED),
    (State.COUNT_TAIL, Input.RECORD_COUNT): _to(
        "_tail_counted", State.REPORT, State.COUNT_HOLES, State.LIVE, State.CHECK_STATUS
    ),
    (State.COUNT_TAIL, Input.COUNT_REFUSED): _to(
        "_tail_refused", State.COUNT_HOLES, State.LIVE, State.CHECK_STATUS
    ),
    (State.REPORT, Input.REPORT_DONE): _to("_reported", *_RECONCILED),
    (State.REPORT, Input.REPORT_FAILED): _to("_report_failed", State.FAILED),
    (State.REPORT, Input.TIMEOUT): _to("_transfer_stalled", State.FAILED),
    **{(s, Input.TIMEOUT): _to("_count_unanswered", State.FAILED) for s in _COUNTS},
    # records: a report's are backfill; live ones show gaps, filled once nothing is in flight
    (State.REPORT, Input.MEASUREMENT): _to("_records_backfilled", State.REPORT),
    (State.LIVE, Input.MEASUREMENT): _to(
        "_records_live", State.LIVE, State.COUNT_HOLES, State.CHECK_STATUS
    ),
    **{
        (s, Input.MEASUREMENT): _to("_records_meanwhile", s)
        for s in _CONNECTED
        if s not in (State.REPORT, State.LIVE)
    },
}
