"""The transmitter over whole sessions in virtual time, and its transition table."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from firmware.events import (
    Connected,
    Disconnected,
    Indicate,
    MtuChanged,
    Notify,
    Read,
    Respond,
    SensorSample,
    SensorState,
    Sent,
    Subscribe,
    Write,
)
from firmware.profiles import DAY_MS, G6, G7, HOUR_MS, MINUTE_MS, DeviceProfile
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import TRANSITIONS, Input, State, Transmitter, TransmitterConfig
from protocol.cgms import attributes, gatt, measurement, racp
from protocol.cgms.annunciation import StatusFlags, WarningFlags
from protocol.cgms.codecs import CODECS

CAL = FactoryCalibration(770.0, 25_700.0)
FIVE_MIN = 5 * MINUTE_MS


def counts(mgdl: float) -> int:
    return round(mgdl * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)


@dataclass
class Collector:
    """A minimal client: subscribes to everything and confirms every notification."""

    tx: Transmitter
    notified: list[measurement.MeasurementRecord] = field(default_factory=list)
    indications: list[tuple[int, bytes]] = field(default_factory=list)
    responses: list[Respond] = field(default_factory=list)

    def connect(self, now: int, mtu: int = 23) -> None:
        self.tx.receive(Connected(mtu), now)
        self.tx.receive(Subscribe(gatt.MEASUREMENT.uuid, notify=True), now)
        self.tx.receive(Subscribe(gatt.RACP.uuid, indicate=True), now)
        self.tx.receive(Subscribe(gatt.SOCP.uuid, indicate=True), now)
        self.drain(now)

    def drain(self, now: int) -> None:
        while (event := self.tx.next_event()) is not None:
            if isinstance(event, Respond):
                self.responses.append(event)
                if event.value is not None:  # every value read decodes
                    codec = next(c for c in CODECS.values() if c.characteristic.uuid == event.uuid)
                    codec.decode(event.value, self.tx.config.e2e_crc)
                continue
            assert isinstance(event, Notify | Indicate)
            if isinstance(event, Notify):
                assert event.uuid == gatt.MEASUREMENT.uuid
                self.notified.extend(measurement.decode(event.value, self.tx.config.e2e_crc))
            else:
                self.indications.append((event.uuid, event.value))
            self.tx.receive(Sent(), now)

    def read(self, uuid: int, now: int) -> bytes:
        self.tx.receive(Read(uuid), now)
        self.drain(now)
        value = self.responses[-1].value
        assert value is not None
        return value


def run_session(
    profile: DeviceProfile,
    days: float,
    glucose=lambda t: 120.0,
    state=lambda t: SensorState.OK,
    e2e_crc: bool = False,
    mtu: int = 23,
) -> Collector:
    tx = Transmitter(TransmitterConfig(profile, e2e_crc=e2e_crc), CAL, 0)
    client = Collector(tx)
    client.connect(0, mtu)
    for now in range(FIVE_MIN, int(days * DAY_MS) + 1, FIVE_MIN):
        timer = tx.get_timer()
        while timer is not None and timer <= now:
            tx.handle_timer(timer)
            client.drain(timer)
            timer = tx.get_timer()
        tx.sample(SensorSample(counts(glucose(now)), state(now)), now)
        client.drain(now)
    return client


@pytest.mark.parametrize(
    ("profile", "first_min", "last_min"),
    [(G7, 30, 10 * 24 * 60 + 12 * 60 - 5), (G6, 120, 10 * 24 * 60 - 5)],
)
def test_a_whole_session_records_every_5_minutes_from_warmup_to_end(profile, first_min, last_min):
    client = run_session(profile, 11)
    offsets = [r.time_offset for r in client.notified]
    assert offsets[0] == first_min
    assert offsets[-1] == last_min
    assert offsets == list(range(first_min, last_min + 1, 5))  # every one, in order, once
    assert all(r.glucose == 120.0 for r in client.notified)
    assert all(r.quality == 100.0 for r in client.notified)
    # After the end: Status says "session stopped", and the time offset keeps counting.
    status = attributes.STATUS_CODEC.decode(client.read(gatt.STATUS.uuid, 11 * DAY_MS))
    assert status.status & StatusFlags.SESSION_STOPPED
    assert status.time_offset == 11 * 24 * 60


def test_grace_period_records_continue_on_g7_only():
    g7 = run_session(G7, 10.4)
    assert any(r.time_offset >= 10 * 24 * 60 for r in g7.notified)


def test_run_time_reflects_the_profile():
    for profile, hours in ((G7, 252), (G6, 240)):
        client = run_session(profile, 0.1)
        value = client.read(gatt.SESSION_RUN_TIME.uuid, DAY_MS // 10)
        assert attributes.SESSION_RUN_TIME_CODEC.decode(value).hours == hours


def test_low_and_high_are_limited_and_flagged():
    def glucose(t):
        return 30.0 if t < 2 * HOUR_MS else 450.0

    client = run_session(G7, 0.25, glucose=glucose)
    low = [r for r in client.notified if r.time_offset < 120]
    high = [r for r in client.notified if r.time_offset >= 130]
    assert low and all(r.glucose == 40.0 for r in low)
    assert all(r.warning & WarningFlags.RESULT_LOWER_THAN_DEVICE_CAN_PROCESS for r in low)
    assert high and all(r.glucose == 400.0 for r in high)
    assert all(r.warning & WarningFlags.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS for r in high)


def test_trend_is_the_15_minute_slope_and_absent_across_gaps():
    def glucose(t):
        return 100.0 + 2.5 * t / MINUTE_MS  # +2.5 mg/dL/min, above the 2.0 rate level

    def state(t):
        return SensorState.DROPOUT if t == HOUR_MS else SensorState.OK

    client = run_session(G7, 0.1, glucose=glucose, state=state)
    by_offset = {r.time_offset: r for r in client.notified}
    assert by_offset[30].trend is None and by_offset[40].trend is None  # fewer than 4 readings
    assert by_offset[45].trend == pytest.approx(2.5)
    assert 60 not in by_offset  # the dropout
    assert all(by_offset[t].trend is None for t in (65, 70, 75))  # window holds the gap
    assert by_offset[80].trend == pytest.approx(2.5)
    assert by_offset[45].warning & WarningFlags.RATE_OF_INCREASE_EXCEEDED


def test_a_failed_sensor_stops_records_and_reports_malfunction():
    def state(t):
        return SensorState.FAILED if t >= DAY_MS else SensorState.OK

    client = run_session(G7, 1.5, state=state)
    assert max(r.time_offset for r in client.notified) < 24 * 60
    status = attributes.STATUS_CODEC.decode(client.read(gatt.STATUS.uuid, int(1.5 * DAY_MS)))
    assert status.status & StatusFlags.SENSOR_MALFUNCTION


def test_a_sensor_issue_withholds_readings_then_resumes_or_fails():
    def short(t):
        return SensorState.ISSUE if HOUR_MS <= t < 3 * HOUR_MS else SensorState.OK

    client = run_session(G7, 0.25, state=short)
    offsets = {r.time_offset for r in client.notified}
    assert not offsets & set(range(60, 180, 5))
    assert 180 in offsets  # resumed

    def long(t):
        return SensorState.ISSUE if t >= HOUR_MS else SensorState.OK

    client = run_session(G7, 0.5, state=long)
    status = attributes.STATUS_CODEC.decode(client.read(gatt.STATUS.uuid, DAY_MS // 2))
    assert status.status & StatusFlags.SENSOR_MALFUNCTION  # more than 3 h: failed


ISSUE_BITS = StatusFlags.SESSION_STOPPED | StatusFlags.SENSOR_MALFUNCTION


def test_status_tells_a_brief_issue_a_failure_and_the_end_apart():
    """CGM Status while readings are withheld (docs/receiver.md): a brief sensor issue is
    Sensor Malfunction with the session running, a failure adds Session Stopped, the end of
    the session is Session Stopped alone; and the records made before are all still held."""

    def status_at(state, days, at_ms):
        client = run_session(G7, days, state=state)
        value = client.read(gatt.STATUS.uuid, at_ms)
        return attributes.STATUS_CODEC.decode(value).status & ISSUE_BITS, client

    def issue(t):
        return SensorState.ISSUE if HOUR_MS <= t < 2 * HOUR_MS else SensorState.OK

    during, _ = status_at(issue, 1.5 / 24, 90 * MINUTE_MS)
    assert during == StatusFlags.SENSOR_MALFUNCTION
    after, _ = status_at(issue, 0.1, int(0.1 * DAY_MS))
    assert after == 0

    def failed(t):
        return SensorState.FAILED if t >= HOUR_MS else SensorState.OK

    bits, client = status_at(failed, 0.5, 12 * HOUR_MS)
    assert bits == StatusFlags.SESSION_STOPPED | StatusFlags.SENSOR_MALFUNCTION
    assert [r.time_offset for r in client.tx.store][-1] == 55  # kept after the failure
    bits, _ = status_at(failed, 11, 11 * DAY_MS)  # failed, and past its end
    assert bits == StatusFlags.SESSION_STOPPED | StatusFlags.SENSOR_MALFUNCTION

    bits, client = status_at(lambda t: SensorState.OK, 11, 11 * DAY_MS)
    assert bits == StatusFlags.SESSION_STOPPED
    assert [r.time_offset for r in client.tx.store][-1] == G7.end_ms // MINUTE_MS - 5


def test_records_pack_into_the_mtu_without_splitting():
    tx = Transmitter(TransmitterConfig(G7, comm_interval_min=30), CAL, 0)
    tx.receive(Connected(23), 0)
    tx.receive(Subscribe(gatt.MEASUREMENT.uuid, notify=True), 0)
    tx.next_event()
    sizes = []
    for now in range(FIVE_MIN, 4 * HOUR_MS, FIVE_MIN):
        tx.sample(SensorSample(counts(150.0)), now)
        while tx.get_timer() is not None and tx.get_timer() <= now:
            tx.handle_timer(now)
        while (event := tx.next_event()) is not None:
            assert isinstance(event, Notify)
            assert len(event.value) <= 20  # ATT MTU 23 minus 3
            sizes.append(len(measurement.decode(event.value)))
            tx.receive(Sent(), now)
    assert max(sizes) == 2  # 10-byte records (trend + quality): two per notification
    # Every record went out except a batch still waiting for its 30-minute interval.
    assert len(tx.live_waiting) < 7
    assert sum(sizes) + len(tx.live_waiting) == len(range(30, 4 * 60, 5))


def test_communication_interval_batches_live_records():
    tx = Transmitter(TransmitterConfig(G7, comm_interval_min=15), CAL, 0)
    client = Collector(tx)
    client.connect(0, mtu=185)
    notifications = []
    for now in range(FIVE_MIN, 3 * HOUR_MS, FIVE_MIN):
        while tx.get_timer() is not None and tx.get_timer() <= now:
            tx.handle_timer(tx.get_timer())
        tx.sample(SensorSample(counts(150.0)), now)
        before = len(client.notified)
        client.drain(now)
        if len(client.notified) > before:
            notifications.append((now // MINUTE_MS, len(client.notified) - before))
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(notifications)}
    assert gaps == {15}
    assert [r.time_offset for r in client.notified] == list(range(30, 180, 5))[
        : len(client.notified)
    ]


# --- the transition table, walked pair by pair ---

EXTERNAL = {
    Input.CONNECT: Connected(),
    Input.DISCONNECT: Disconnected(),
    Input.MTU: MtuChanged(100),
    Input.READ: Read(gatt.STATUS.uuid),
    Input.WRITE: Write(gatt.RACP.uuid, racp.encode(racp.number_of_records(1))),
    Input.SUBSCRIBE: Subscribe(gatt.MEASUREMENT.uuid, notify=True),
    Input.SENT: Sent(),
}


def in_state(state: State) -> Transmitter:
    tx = Transmitter(TransmitterConfig(G7), CAL, 0)
    now = HOUR_MS
    if state is State.ERROR:
        tx.receive(Read(gatt.STATUS.uuid), now)  # a read with nobody connected
    elif state is not State.DISCONNECTED:
        client = Collector(tx)
        client.connect(0)
        for t in range(FIVE_MIN, now, FIVE_MIN):
            tx.sample(SensorSample(counts(100.0)), t)
            client.drain(t)
        if state is State.TRANSFER:
            request = racp.request(
                racp.RacpOpcode.REPORT_STORED_RECORDS, racp.RacpOperator.ALL_RECORDS
            )
            tx.receive(Write(gatt.RACP.uuid, racp.encode(request)), now)
            while tx.next_event() is not None:  # leave the first notification unconfirmed
                pass
    assert tx.state is state
    return tx


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("kind", [*EXTERNAL, Input.SAMPLE, Input.TIMER])
def test_every_state_input_pair_follows_the_table(state, kind):
    tx = in_state(state)
    now = HOUR_MS + 1_000  # within a transfer's 30 s timeout
    if kind is Input.SAMPLE:
        tx.sample(SensorSample(counts(100.0)), now)
    elif kind is Input.TIMER:
        tx.handle_timer(now)
    else:
        tx.receive(EXTERNAL[kind], now)
    expected = TRANSITIONS.get((state, kind), State.ERROR)
    assert tx.state is expected
    errors_before = 1 if state is State.ERROR else 0
    assert tx.protocol_errors == errors_before + (0 if (state, kind) in TRANSITIONS else 1)
    while (event := tx.next_event()) is not None:  # whatever it says decodes
        if isinstance(event, Notify | Indicate):
            codec = next(c for c in CODECS.values() if c.characteristic.uuid == event.uuid)
            codec.decode(event.value, None)


def test_internal_inputs_only_move_between_idle_and_transfer():
    assert {pair: new for pair, new in TRANSITIONS.items() if pair[1] is Input.TRANSFER_START} == {
        (State.IDLE, Input.TRANSFER_START): State.TRANSFER
    }
    assert {pair: new for pair, new in TRANSITIONS.items() if pair[1] is Input.TRANSFER_END} == {
        (State.TRANSFER, Input.TRANSFER_END): State.IDLE
    }


def test_a_cgmp_collector_gets_every_reading_live_or_by_racp_despite_outages():
    """CGMP §4: reconnect, then backfill with RACP '>= last time offset + 1'."""
    outages = [
        (2 * HOUR_MS, 5 * HOUR_MS),
        (DAY_MS, DAY_MS + 20 * HOUR_MS),
        (3 * DAY_MS, 3 * DAY_MS + 5 * MINUTE_MS),
    ]
    tx = Transmitter(TransmitterConfig(G7), CAL, 0)
    client = Collector(tx)
    client.connect(0)
    connected = True
    for now in range(FIVE_MIN, 4 * DAY_MS, FIVE_MIN):
        down = any(start <= now < end for start, end in outages)
        if connected and down:
            tx.receive(Disconnected(), now)
            connected = False
        elif not connected and not down:
            client.connect(now, mtu=185)
            last = max(r.time_offset for r in client.notified)
            request = racp.request(
                racp.RacpOpcode.REPORT_STORED_RECORDS,
                racp.RacpOperator.GREATER_THAN_OR_EQUAL_TO,
                last + 1,
            )
            tx.receive(Write(gatt.RACP.uuid, racp.encode(request)), now)
            client.drain(now)
            assert client.indications[-1] == (gatt.RACP.uuid, bytes.fromhex("06000101"))
            connected = True
        tx.sample(SensorSample(counts(110.0)), now)
        client.drain(now)
    offsets = [r.time_offset for r in client.notified]
    assert sorted(offsets) == list(range(30, 4 * 24 * 60, 5))  # every reading, none twice


def test_store_keeps_a_day_by_default_and_can_hold_a_session():
    assert TransmitterConfig(G7).capacity == 300  # 24 h plus an hour's margin
    assert TransmitterConfig(G6).capacity == 300  # G6 backfills 3 h, but keeps a day too
    assert TransmitterConfig(G7, store_records=3100).capacity == 3100


def test_battery_low_after_its_threshold_outlasts_the_session():
    tx = Transmitter(TransmitterConfig(G7, battery_low_ms=12 * DAY_MS), CAL, 0)
    client = Collector(tx)
    client.connect(0)
    status = attributes.STATUS_CODEC.decode(client.read(gatt.STATUS.uuid, 11 * DAY_MS))
    assert not status.status & StatusFlags.DEVICE_BATTERY_LOW
    status = attributes.STATUS_CODEC.decode(client.read(gatt.STATUS.uuid, 12 * DAY_MS))
    assert status.status & StatusFlags.DEVICE_BATTERY_LOW
    assert TransmitterConfig(G7).battery_low_ms > G7.end_ms
