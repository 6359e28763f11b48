"""The transmitter against a model of its record store and replies (RuleBasedStateMachine):
RACP reports, counts and deletions, SOCP start/stop and alert levels, Session Start Time
writes, CCCDs, connections and time passing, with valid and structure-aware invalid frames."""

import datetime

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from firmware.events import (
    AttError,
    Connected,
    Disconnected,
    Indicate,
    Notify,
    Respond,
    SensorSample,
    Sent,
    Subscribe,
    Write,
)
from firmware.profiles import G7, MINUTE_MS
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import attributes, gatt, measurement, racp, socp, strategies
from protocol.cgms.racp import RacpOpcode, RacpResponseCode
from protocol.cgms.socp import SocpOpcode, SocpResponseCode
from sim.fuzz.transmitter import select  # RACP's selection, written from the spec's table

CAL = FactoryCalibration(770.0, 25_700.0)
SAMPLE_MS = 5 * MINUTE_MS
MEASUREMENT, RACP, SOCP = gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid


class TransmitterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tx = Transmitter(TransmitterConfig(G7), CAL, 0)
        self.now = 0
        self.session_start = 0
        self.stopped = False
        self.offsets: list[int] = []  # the model of the record store
        self.connected = False
        self.notify_on = False
        self.indicate_on = {RACP: False, SOCP: False}
        self.notified: list[int] = []
        self.indications: list[Indicate] = []
        self.responses: list[Respond] = []

    def drain(self) -> None:
        while (event := self.tx.next_event()) is not None:
            if isinstance(event, Respond):
                self.responses.append(event)
                continue
            if isinstance(event, Notify):
                self.notified += [r.time_offset for r in measurement.decode(event.value)]
            else:
                self.indications.append(event)
            self.tx.receive(Sent(), self.now)

    def write(self, uuid: int, value: bytes) -> Respond:
        self.responses, self.indications, self.notified = [], [], []
        self.tx.receive(Write(uuid, value), self.now)
        self.drain()
        (response,) = self.responses
        assert response.uuid == uuid
        return response

    # --- link ---

    @precondition(lambda self: not self.connected)
    @rule(mtu=st.sampled_from([23, 64, 185]))
    def connect(self, mtu):
        # CCCD values are per client: the core starts each link with none; a bonded
        # collector's come back from the link's stack as Subscribe (Core Vol 3 Part G 3.3.3.3)
        self.tx.receive(Connected(mtu), self.now)
        self.connected = True
        self.drain()

    @precondition(lambda self: self.connected)
    @rule()
    def disconnect(self):
        self.tx.receive(Disconnected(), self.now)
        self.connected = False
        self.notify_on = False
        self.indicate_on = {RACP: False, SOCP: False}

    @precondition(lambda self: self.connected)
    @rule(uuid=st.sampled_from([MEASUREMENT, RACP, SOCP]), on=st.booleans())
    def subscribe(self, uuid, on):
        self.tx.receive(Subscribe(uuid, notify=on, indicate=on), self.now)
        if uuid == MEASUREMENT:
            self.notify_on = on
        else:
            self.indicate_on[uuid] = on
        self.responses = []
        self.drain()
        assert [r.uuid for r in self.responses] == [uuid]

    # --- time and the sensor ---

    @rule(samples=st.integers(1, 6))
    def time_passes(self, samples):
        for _ in range(samples):
            self.now = (self.now // SAMPLE_MS + 1) * SAMPLE_MS
            self.notified = []
            self.tx.sample(SensorSample(150 * 770 + 25_700), self.now)
            self.drain()
            elapsed = self.now - self.session_start
            if not self.stopped and G7.warmup_ms <= elapsed < G7.end_ms:
                self.offsets.append(elapsed // MINUTE_MS)
                if self.connected and self.notify_on:  # a live reading goes out at once
                    assert self.notified == [elapsed // MINUTE_MS]

    # --- RACP ---

    @precondition(lambda self: self.connected)
    @rule(request=strategies.racp_requests())
    def racp_request(self, request):
        response = self.write(RACP, racp.encode(request))
        if not self.indicate_on[RACP]:
            assert response.error == AttError.CCCD_IMPROPERLY_CONFIGURED
            return
        if request.opcode == RacpOpcode.REPORT_STORED_RECORDS and not self.notify_on:
            assert response.error == AttError.CCCD_IMPROPERLY_CONFIGURED
            return
        assert response.error is None
        (answer,) = [racp.decode(i.value) for i in self.indications]
        if request.opcode == RacpOpcode.ABORT_OPERATION:
            assert answer == racp.response(RacpOpcode.ABORT_OPERATION, RacpResponseCode.SUCCESS)
            return
        chosen = select(self.offsets, request.operator, request.operand)
        if request.opcode == RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS:
            assert answer == racp.number_of_records(len(chosen))
            return
        found = RacpResponseCode.SUCCESS if chosen else RacpResponseCode.NO_RECORDS_FOUND
        assert answer == racp.response(request.opcode, found)
        if request.opcode == RacpOpcode.REPORT_STORED_RECORDS:
            assert self.notified == chosen
        else:
            self.offsets = [t for t in self.offsets if t not in set(chosen)]

    @precondition(lambda self: self.connected)
    @rule(frame=strategies.invalid_frames("racp"))
    def racp_invalid(self, frame):
        response = self.write(RACP, frame.data)
        if not self.indicate_on[RACP]:
            assert response.error == AttError.CCCD_IMPROPERLY_CONFIGURED
            return
        assert response.error is None
        (answer,) = [racp.decode(i.value) for i in self.indications]
        assert answer.opcode == RacpOpcode.RESPONSE_CODE
        assert answer.request_opcode == (frame.data[0] if frame.data else 0)
        assert answer.response_code != RacpResponseCode.SUCCESS

    # --- SOCP and Session Start Time ---

    @precondition(lambda self: self.connected)
    @rule(
        opcode=st.sampled_from([SocpOpcode.START_SESSION, SocpOpcode.STOP_SESSION]),
    )
    def start_or_stop(self, opcode):
        response = self.write(SOCP, socp.encode(socp.SocpFrame(opcode)))
        if not self.indicate_on[SOCP]:
            assert response.error == AttError.CCCD_IMPROPERLY_CONFIGURED
            return
        (answer,) = [socp.decode(i.value) for i in self.indications]
        running = not self.stopped and self.now - self.session_start < G7.end_ms
        if opcode == SocpOpcode.START_SESSION:
            # a session exists from power-on: with no Multiple Sessions (Feature bit 14 = 0),
            # no second one starts, stopped or over (issue 13 defect 4)
            expected = SocpResponseCode.PROCEDURE_NOT_COMPLETED
        else:
            expected = SocpResponseCode.SUCCESS if running else 2
            self.stopped = self.stopped or running
        assert answer == socp.response(opcode, expected)

    @precondition(lambda self: self.connected)
    @rule(frame=strategies.invalid_frames("socp").filter(lambda f: not f.e2e_crc))
    def socp_invalid(self, frame):
        response = self.write(SOCP, frame.data)
        if not self.indicate_on[SOCP]:
            assert response.error == AttError.CCCD_IMPROPERLY_CONFIGURED
            return
        (answer,) = [socp.decode(i.value) for i in self.indications]
        assert answer.opcode == SocpOpcode.RESPONSE_CODE
        assert answer.response_code != SocpResponseCode.SUCCESS

    @precondition(lambda self: self.connected)
    @rule(start=strategies.session_start_times())
    def write_start_time(self, start):
        value = attributes.SESSION_START_TIME_CODEC.encode(start)
        answer = self.write(gatt.SESSION_START_TIME.uuid, value).error
        # stored minus the time offset: a start before 1582 (the Date Time year's first) is
        # refused as Out of Range
        before_1582 = False
        if start.year and start.month and start.day and self.tx.session is not None:
            offset = datetime.timedelta(minutes=self.tx.session.time_offset(self.now))
            before_1582 = (start.to_datetime() - offset).year < 1582
        assert answer == (AttError.OUT_OF_RANGE if before_1582 else None)
        assert self.indications == [] and self.notified == []

    @invariant()
    def the_store_matches_the_model(self):
        assert [r.time_offset for r in self.tx.store] == self.offsets


TransmitterMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None
)
test_transmitter_against_its_model = TransmitterMachine.TestCase
