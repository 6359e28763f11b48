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
"""

from __future__ import annotations

import datetime
import enum
from collections import deque
from dataclasses import dataclass

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
BUSY = 0xFE
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


class Step(enum.Enum):
    DISCONNECTED = "disconnected"
    READ_FEATURE = "read feature"
    READ_STATUS = "read status"
    CHECK_STATUS = "check status"  # a reading is overdue: what does the sensor say?
    SUBSCRIBE_MEASUREMENT = "subscribe measurement"
    SUBSCRIBE_RACP = "subscribe racp"
    SUBSCRIBE_SOCP = "subscribe socp"
    START_SESSION = "start session"
    WRITE_START_TIME = "write session start time"
    COUNT = "count records"
    BACKFILL = "backfill"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    clock_at_zero: datetime.datetime  # the wall-clock time at now_ms = 0 (an edge fact)
    time_zone: int = 0  # 15-minute units
    dst: int = 0
    start_session: bool = True  # write SOCP 1A when no session runs
    # racp.PROCEDURE_TIMEOUT_MS in session time (a driver whose session clock runs X times
    # faster than the link's gives 30 s * X)
    procedure_timeout_ms: int = PROCEDURE_TIMEOUT_MS


class Collector:
    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.step = Step.DISCONNECTED
        self.feature: Feature | None = None
        self.status: Status | None = None
        self.e2e_crc = False
        self.seen: set[int] = set()  # time offsets received this session
        self.last_offset: int | None = None
        # The session start the receiver learnt from Status (None: not yet). A record taken
        # more than a minute after now by it is refused before its offset is marked seen.
        self.session_start_ms: int | None = None
        self.pending: Request | None = None
        self.retry: Request | None = None
        self.deadline_ms: int | None = None
        self.retry_at_ms: int | None = None
        self.backfilling = False
        self.gap_wanted = False
        self.absent: set[int] = set()  # offsets the sensor never produced (checked by count)
        self.reconciling: tuple[int, int] | None = None  # the range being counted
        # A backfill's last step: count what the sensor holds after the newest record
        # received, and ask again while it holds some and the last ask brought one.
        self.verify_tail = False
        self.counting_tail = False
        self.tail_asked_after: int | None = None  # the newest offset (-1: none) at the last ask
        self.synced_at_ms: int | None = None  # when the sensor last held nothing we lack
        self.check_wanted = False  # a check is due once the procedure running ends
        self.checking = False  # a check runs (its Status read, then its backfill)
        self.frame_errors = 0
        self.out: deque[CollectorOutput] = deque()

    # --- inputs ---

    @property
    def connected_now(self) -> bool:
        return self.step is not Step.DISCONNECTED

    def connected(self, now_ms: int) -> None:
        self.step, self.pending = Step.READ_FEATURE, None
        self.backfilling = self.gap_wanted = self.check_wanted = False
        self._request(ReadRequest(gatt.FEATURE.uuid))

    def disconnected(self, now_ms: int) -> None:
        self.step, self.pending, self.retry = Step.DISCONNECTED, None, None
        self.reconciling = self.tail_asked_after = None
        self.deadline_ms = self.retry_at_ms = None
        self.backfilling = self.verify_tail = self.counting_tail = self.check_wanted = False
        self.checking = False

    def check(self, now_ms: int) -> None:
        """A reading is overdue (the receiver knows when): read CGM Status, then fetch what
        the sensor holds after the newest record received and count what is left. If another
        procedure is running, the check follows it."""
        if self.step is Step.DISCONNECTED:
            return
        if self.step is not Step.LIVE or self.pending is not None or self.backfilling:
            self.check_wanted = True
            return
        self.check_wanted, self.checking = False, True
        self.step = Step.CHECK_STATUS
        self._request(ReadRequest(gatt.STATUS.uuid))

    def response(self, uuid: int, value: bytes | None, error: int | None, now_ms: int) -> None:
        """The answer to the request in flight: a value for a read, else an ATT error or None."""
        request, self.pending = self.pending, None
        if request is None or request.uuid != uuid:
            return  # not ours (a late answer after a reconnection)
        if error == BUSY and isinstance(request, WriteRequest):
            self.retry_at_ms, self.retry = now_ms + RETRY_MS, request
            return
        if error is not None:
            self.out.append(DisconnectRequest(f"{self.step.value}: ATT error 0x{error:02X}"))
            return
        try:
            self._advance(value, now_ms)
        except FrameError as problem:
            self._reject(uuid, str(problem))
            self.out.append(DisconnectRequest(f"{self.step.value}: {problem}"))

    def notification(self, uuid: int, value: bytes, now_ms: int) -> None:
        if uuid != gatt.MEASUREMENT.uuid:
            return
        try:
            records = measurement.decode(value, self.e2e_crc)
        except FrameError as problem:
            self._reject(uuid, str(problem))
            return
        if self.backfilling:
            self.deadline_ms = now_ms + self.config.procedure_timeout_ms  # progress
        for record in records:
            if not self._accept(record, self.backfilling, now_ms):
                continue
            if not self.backfilling and self.step is Step.LIVE:
                self._check_gap(record)
        self._maybe_fill_gap(now_ms)

    def indication(self, uuid: int, value: bytes, now_ms: int) -> None:
        if uuid == gatt.RACP.uuid:
            self._racp_indication(value, now_ms)
        elif uuid == gatt.SOCP.uuid and self.step is Step.START_SESSION:
            try:
                answer = socp.decode(value, self.e2e_crc)
            except FrameError as problem:
                self._reject(uuid, str(problem))
                return
            if answer.request_opcode == socp.SocpOpcode.START_SESSION:
                self._after_session_started(now_ms)

    def get_timer(self) -> int | None:
        times = [t for t in (self.deadline_ms, self.retry_at_ms) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now_ms: int) -> None:
        if self.retry_at_ms is not None and now_ms >= self.retry_at_ms and self.retry:
            self.retry_at_ms, request, self.retry = None, self.retry, None
            self._request(request)
        if self.deadline_ms is not None and now_ms >= self.deadline_ms:
            self.deadline_ms = None  # the transfer stalled: keep what came, start over
            what = "transfer: no progress" if self.backfilling else "count: no answer"
            self.backfilling = False
            self.out.append(DisconnectRequest(f"RACP {what} for 30 s"))

    def next_event(self) -> CollectorOutput | None:
        return self.out.popleft() if self.out else None

    def forget_session(self) -> None:
        """A new sensor session: nothing received yet."""
        self.seen.clear()
        self.absent.clear()
        self.last_offset = None

    # --- the procedure ---

    def _request(self, request: Request) -> None:
        self.pending = request
        self.out.append(request)

    def _advance(self, value: bytes | None, now_ms: int) -> None:
        step = self.step
        if step is Step.READ_FEATURE:
            self.feature = attributes.decode_feature(value or b"")
            self.e2e_crc = self.feature.e2e_crc
            self.step = Step.READ_STATUS
            self._request(ReadRequest(gatt.STATUS.uuid))
        elif step in (Step.READ_STATUS, Step.CHECK_STATUS):
            self.status = attributes.STATUS_CODEC.decode(value or b"", self.e2e_crc)
            self.out.append(SensorStatusRead(self.status))
            if step is Step.CHECK_STATUS:
                self._backfill(now_ms)
                return
            self.step = Step.SUBSCRIBE_MEASUREMENT
            self._request(SubscribeRequest(gatt.MEASUREMENT.uuid, notify=True))
        elif step is Step.SUBSCRIBE_MEASUREMENT:
            self.step = Step.SUBSCRIBE_RACP
            self._request(SubscribeRequest(gatt.RACP.uuid, indicate=True))
        elif step is Step.SUBSCRIBE_RACP:
            self.step = Step.SUBSCRIBE_SOCP
            self._request(SubscribeRequest(gatt.SOCP.uuid, indicate=True))
        elif step is Step.SUBSCRIBE_SOCP:
            stopped = self.status is not None and self.status.status & StatusFlags.SESSION_STOPPED
            if stopped and self.config.start_session and self.last_offset is None:
                self.step = Step.START_SESSION
                start = socp.SocpFrame(socp.SocpOpcode.START_SESSION)
                self._request(WriteRequest(gatt.SOCP.uuid, socp.encode(start, self.e2e_crc)))
            else:
                self._after_session_started(now_ms)
        elif step is Step.WRITE_START_TIME:
            self._backfill(now_ms)
        # START_SESSION and the RACP writes move on when their indication arrives.

    def _after_session_started(self, now_ms: int) -> None:
        sync = CalTempFlags.TIME_SYNCHRONIZATION_REQUIRED
        if self.status is None or self.status.cal_temp & sync:
            self.step = Step.WRITE_START_TIME
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
            self.step = Step.COUNT
            count = racp.request(
                RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS
            )
            self._write_racp(count, now_ms)
        else:
            self.step = Step.BACKFILL
            self._write_racp(self._report_since(self.last_offset + 1), now_ms)

    @staticmethod
    def _report_since(offset: int) -> racp.RacpFrame:
        return racp.request(
            RacpOpcode.REPORT_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL_TO,
            min(offset, 0xFFFF),
        )

    def _write_racp(self, request: racp.RacpFrame, now_ms: int) -> None:
        """A RACP request; its answer is awaited 30 s at most (a report: 30 s without a
        record), after which the link is dropped and the backfill starts over."""
        if request.opcode == RacpOpcode.REPORT_STORED_RECORDS:
            self.backfilling = True
        self.deadline_ms = now_ms + self.config.procedure_timeout_ms
        self._request(WriteRequest(gatt.RACP.uuid, racp.encode(request)))

    def _racp_indication(self, value: bytes, now_ms: int) -> None:
        try:
            answer = racp.decode(value)
        except FrameError as problem:
            self._reject(gatt.RACP.uuid, str(problem))
            return
        if answer.opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            if not self.backfilling:
                self.deadline_ms = None
            self._counted(answer.number_of_records or 0, now_ms)
            return
        if (
            self.counting_tail
            and answer.opcode == RacpOpcode.RESPONSE_CODE
            and answer.request_opcode == RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS
        ):  # the count refused: the tail is left to the next check
            self.counting_tail = self.verify_tail = False
            self.deadline_ms = None
            self._reconcile(now_ms)
            return
        if (
            answer.opcode != RacpOpcode.RESPONSE_CODE
            or answer.request_opcode != RacpOpcode.REPORT_STORED_RECORDS
        ):
            return
        self.backfilling, self.deadline_ms = False, None
        if answer.response_code not in (
            RacpResponseCode.SUCCESS,
            RacpResponseCode.NO_RECORDS_FOUND,
        ):
            self.out.append(DisconnectRequest(f"RACP report answered {answer.response_code}"))
            return
        self._reconcile(now_ms)

    # --- making sure nothing is missing ---

    def _holes(self) -> list[int]:
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
        holes = self._holes()
        if not holes and self.verify_tail:
            self._count_tail(now_ms)
            return
        if not holes:
            self.step, self.reconciling, self.checking = Step.LIVE, None, False
            if self.check_wanted:
                self.check(now_ms)
            return
        self.step = Step.BACKFILL
        self.reconciling = (holes[0], holes[-1])
        count = racp.request(
            RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
            RacpOperator.WITHIN_RANGE_OF,
            self.reconciling,
        )
        self._write_racp(count, now_ms)

    def _count_tail(self, now_ms: int) -> None:
        self.step, self.reconciling, self.counting_tail = Step.BACKFILL, None, True
        after = 0 if self.last_offset is None else min(self.last_offset + 1, 0xFFFF)
        count = racp.request(
            RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL_TO, after
        )
        self._write_racp(count, now_ms)

    def _tail_counted(self, number: int, now_ms: int) -> None:
        """The sensor holds ``number`` records after the newest one received."""
        self.counting_tail = False
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
        self.step = Step.BACKFILL
        self._write_racp(self._report_since(newest + 1), now_ms)

    def _counted(self, number: int, now_ms: int) -> None:
        if self.counting_tail:
            self._tail_counted(number, now_ms)
            return
        if self.reconciling is None:  # the first connection's "how many": then report all
            self.step = Step.BACKFILL
            every = racp.request(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)
            self._write_racp(every, now_ms)
            return
        low, high = self.reconciling
        have = sum(1 for t in self.seen if low <= t <= high)
        if number <= have:  # the sensor holds nothing we lack: the holes were never made
            self.absent.update(t for t in self._holes() if low <= t <= high)
            self._reconcile(now_ms)
            return
        report = racp.request(
            RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.WITHIN_RANGE_OF, (low, high)
        )
        self._write_racp(report, now_ms)

    # --- records ---

    def _accept(self, record: MeasurementRecord, backfill: bool, now_ms: int) -> bool:
        """Pass a record on once; False when it is refused (not marked seen)."""
        start = self.session_start_ms
        if start is not None and start + record.time_offset * MINUTE_MS > now_ms + MINUTE_MS:
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

    def _maybe_fill_gap(self, now_ms: int) -> None:
        if not self.gap_wanted or self.step is not Step.LIVE or self.pending or self.backfilling:
            return
        self.gap_wanted = False
        self._reconcile(now_ms)

    def _reject(self, uuid: int, reason: str) -> None:
        self.frame_errors += 1
        self.out.append(FrameRejected(uuid, reason))
