"""The receiver against a model of what it should show and store (RuleBasedStateMachine).

The sensor is the real transmitter core on the in-memory link, so every genuine reading is
one the sensor made. The machine lets time pass, drops the link and brings it back, loses
notifications, repeats genuine ones, and sends notifications and indications of its own:
records ahead of the session's clock or from warm-up, malformed measurement frames, stray
RACP and SOCP indications. The model: the offsets the sensor made (its record store).

Invariants: a reading is never shown twice in a session; never one the sensor did not make,
nor one outside the active and grace phases; the receiver stores (marks received) no offset
the sensor has not made yet; and once the link has been up and untampered with for three
readings, every reading the sensor made has been shown exactly once.
"""

import datetime

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from firmware.events import Notify, SensorSample
from firmware.profiles import G7, MINUTE_MS
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import ReadingShown, Receiver, ReceiverConfig
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, measurement, racp, socp, strategies
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import RacpOpcode, RacpResponseCode
from protocol.cgms.socp import SocpOpcode
from sim.links.memory import MemoryLink

CAL = FactoryCalibration(770.0, 25_700.0)
SAMPLE_MS = 5 * MINUTE_MS
HEALED_MS = 3 * SAMPLE_MS  # a healthy link this long: everything made has been shown
MEASUREMENT, RACP, SOCP = gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid
WARMUP_OFFSETS = range(0, G7.warmup_ms // MINUTE_MS)


def counts_at(now_ms: int) -> int:
    """A sensor signal that changes with every reading (70 to 269 mg/dL)."""
    mgdl = 70 + (now_ms // SAMPLE_MS * 37) % 200
    return round(mgdl * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)


class FaultyLink(MemoryLink):
    """The memory link that loses the next ``lose`` notifications and remembers what it
    delivered (for repeats)."""

    lose = 0
    delivered_values: list[bytes]

    def _from_transmitter(self, event: object, now_ms: int) -> None:
        if isinstance(event, Notify) and self.up:
            if self.lose:
                self.lose -= 1
                self.loss, saved = 1.0, self.loss  # the link's own way of losing one
                super()._from_transmitter(event, now_ms)
                self.loss = saved
                return
            self.delivered_values.append(event.value)
        super()._from_transmitter(event, now_ms)


class ReceiverMachine(RuleBasedStateMachine):
    @initialize(e2e=st.booleans(), mtu=st.sampled_from([23, 185]))
    def start(self, e2e, mtu):
        self.e2e = e2e
        self.tx = Transmitter(TransmitterConfig(G7, e2e_crc=e2e), CAL, 0)
        config = ReceiverConfig(G7, CollectorConfig(datetime.datetime(2025, 1, 1, 8)))
        self.rx = Receiver(config, 0)
        self.shown: dict[int, ReadingShown] = {}
        self.link = FaultyLink(self.tx, self.rx, mtu=mtu, on_receiver_event=self.event)
        self.link.delivered_values = []
        self.now = 0
        self.healthy_since = 0  # the link is up and untampered with since then
        self.link.connect(0)

    # --- what the receiver says ---

    def event(self, event):
        if not isinstance(event, ReadingShown):
            return
        assert event.time_offset not in self.shown, f"offset {event.time_offset} shown twice"
        self.shown[event.time_offset] = event

    def made(self) -> dict[int, MeasurementRecord]:
        return {record.time_offset: record for record in self.tx.store}

    def fault(self):
        self.healthy_since = None

    def settle(self):
        self.link.pump(self.now)

    # --- time passing ---

    def run_timers_until(self, until):
        for _ in range(1_000):
            timers = [t for t in (self.tx.get_timer(), self.rx.get_timer()) if t is not None]
            due = min(timers, default=None)
            if due is None or due > until:
                break
            self.now = max(self.now, due)
            if (t := self.tx.get_timer()) is not None and t <= self.now:
                self.tx.handle_timer(self.now)
            if (t := self.rx.get_timer()) is not None and t <= self.now:
                self.rx.handle_timer(self.now)
            self.settle()
        else:
            raise AssertionError(f"timers do not settle by {until} ms")
        self.now = until

    @rule(samples=st.integers(1, 4))
    def time_passes(self, samples):
        for _ in range(samples):
            next_sample = (self.now // SAMPLE_MS + 1) * SAMPLE_MS
            self.run_timers_until(next_sample)
            self.tx.sample(SensorSample(counts_at(self.now)), self.now)
            self.settle()
            self.run_timers_until(self.now)  # what the sample started, at the same instant

    # --- the link ---

    @precondition(lambda self: self.link.up)
    @rule()
    def disconnect(self):
        self.link.disconnect(self.now, "out of range")
        self.link.lose = 0  # losses were this connection's
        self.fault()

    @precondition(lambda self: not self.link.up)
    @rule()
    def connect(self):
        self.link.connect(self.now)

    @precondition(lambda self: self.link.up)
    @rule(count=st.integers(1, 3))
    def lose_notifications(self, count):
        self.link.lose += count
        self.fault()

    @precondition(lambda self: self.link.up and self.link.delivered_values)
    @rule(data=st.data())
    def repeat_a_notification(self, data):
        value = data.draw(st.sampled_from(self.link.delivered_values))
        self.rx.notification(MEASUREMENT, value, self.now)
        self.settle()

    # --- a rogue sensor's own notifications and indications ---

    @precondition(lambda self: self.link.up)
    @rule(ahead=st.integers(1, 3), glucose=st.floats(40, 400))
    def record_from_the_future(self, ahead, glucose):
        """The offset of a reading the sensor will make: refused now, shown when it comes."""
        offset = (self.now // SAMPLE_MS + ahead) * SAMPLE_MS // MINUTE_MS
        value = measurement.encode([MeasurementRecord(glucose, offset)], self.e2e)
        self.rx.notification(MEASUREMENT, value, self.now)
        self.settle()
        self.fault()

    @precondition(lambda self: self.link.up)
    @rule(offset=st.sampled_from(WARMUP_OFFSETS), glucose=st.floats(40, 400))
    def record_from_warmup(self, offset, glucose):
        value = measurement.encode([MeasurementRecord(glucose, offset)], self.e2e)
        self.rx.notification(MEASUREMENT, value, self.now)
        self.settle()
        self.fault()

    @precondition(lambda self: self.link.up)
    @rule(frame=strategies.invalid_frames("measurement"))
    def malformed_notification(self, frame):
        if frame.e2e_crc not in (None, self.e2e):
            return
        errors = self.rx.collector.frame_errors
        for chunk in frame.chunks or (frame.data,):
            self.rx.notification(MEASUREMENT, chunk, self.now)
            self.settle()
        assert self.rx.collector.frame_errors > errors  # refused, not taken in
        self.fault()

    @precondition(lambda self: self.link.up)
    @rule(
        value=st.sampled_from(
            [
                racp.encode(racp.response(RacpOpcode.REPORT_STORED_RECORDS, code))
                for code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND)
            ]
            + [racp.encode(racp.number_of_records(n)) for n in (0, 1, 500)]
        )
        | strategies.invalid_frames("racp").map(lambda frame: frame.data)
    )
    def stray_racp_indication(self, value):
        self.rx.indication(RACP, value, self.now)
        self.settle()
        self.fault()

    @precondition(lambda self: self.link.up)
    @rule(code=st.sampled_from([1, 2, 3, 4, 5]))
    def stray_socp_indication(self, code):
        value = socp.encode(socp.response(SocpOpcode.START_SESSION, code), self.e2e)
        self.rx.indication(SOCP, value, self.now)
        self.settle()
        self.fault()

    # --- the model ---

    @invariant()
    def shows_only_what_the_sensor_made_in_session(self):
        made = self.made()
        for offset, shown in self.shown.items():
            assert offset in made, f"offset {offset} shown, never made"
            assert G7.warmup_ms <= offset * MINUTE_MS < G7.end_ms
            assert shown.glucose_mgdl == made[offset].glucose

    @invariant()
    def stores_nothing_from_the_future(self):
        ahead = {t for t in self.rx.collector.seen if t * MINUTE_MS > self.now + MINUTE_MS}
        assert not ahead, f"offsets {sorted(ahead)} received before their time"

    @invariant()
    def a_healthy_link_shows_every_reading_made(self):
        if not self.link.up or self.link.lose:
            self.healthy_since = None
            return
        if self.healthy_since is None:  # healthy from now on, unless tampered with again
            self.healthy_since = self.now
        if self.now - self.healthy_since >= HEALED_MS:
            missing = sorted(set(self.made()) - set(self.shown))
            assert not missing, f"made but never shown: {missing}"


ReceiverMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
test_receiver_against_its_model = ReceiverMachine.TestCase
