"""The receiver checks on the sensor when a reading is overdue (issue 13, defects 6 and 7;
docs/receiver.md): it reads CGM Status, then fetches what the sensor holds and counts what is
left after the newest record received, so that the last readings before the sensor stops
measuring arrive and a sensor that stopped is not taken for a lost signal. The transmitter
core and the receiver core on the memory link, in virtual time.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from firmware.events import Notify, SensorSample, SensorState, Sent, Write
from firmware.lifecycle import Phase
from firmware.profiles import G7, MINUTE_MS
from firmware.receiver.alerts import AlertName, AlertRaised
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import PhaseChanged, ReadingShown, Receiver, ReceiverConfig
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, measurement, racp
from protocol.cgms.annunciation import StatusFlags
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import RacpOpcode
from protocol.sfloat import SFloatSpecial
from sim.links.memory import MemoryLink
from tests.support.cores import run_cores

CAL = FactoryCalibration(770.0, 25_700.0)
COUNTS = round(120 * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)


class Session:
    """A transmitter and a receiver on a memory link that loses the notifications carrying
    chosen time offsets, so many times each; the receiver's events and the RACP writes kept."""

    def __init__(self, drops: dict[int, int] | None = None) -> None:
        self.tx = Transmitter(TransmitterConfig(G7), CAL, 0)
        self.rx = Receiver(ReceiverConfig(G7, CollectorConfig(datetime.datetime(2026, 1, 5))), 0)
        self.events: list[object] = []
        self.racp_writes: list[tuple[int, bytes]] = []
        self.drops = dict(drops or {})
        session = self

        class Link(MemoryLink):
            def _from_transmitter(self, event: object, now_ms: int) -> None:
                if self.up and isinstance(event, Notify):
                    offsets = {r.time_offset for r in measurement.decode(event.value)}
                    hit = [t for t in offsets if session.drops.get(t, 0) > 0]
                    if hit:
                        for t in hit:
                            session.drops[t] -= 1
                        self.tx.receive(Sent(), now_ms)
                        return
                super()._from_transmitter(event, now_ms)

        self.link = Link(self.tx, self.rx, on_receiver_event=self.events.append)
        tx_receive = self.tx.receive

        def receive(event: object, now_ms: int) -> None:
            if isinstance(event, Write) and event.uuid == gatt.RACP.uuid:
                self.racp_writes.append((now_ms, event.value))
            tx_receive(event, now_ms)  # type: ignore[arg-type]

        self.tx.receive = receive  # type: ignore[method-assign]
        self.now = 0
        self.link.connect(0)

    def run(self, until_min: int, state: Callable[[int], SensorState] = lambda t: SensorState.OK):
        until = until_min * MINUTE_MS
        run_cores(
            self.tx, self.rx, self.link, self.now, until, lambda t: SensorSample(COUNTS, state(t))
        )
        self.now = until

    def shown(self) -> dict[int, float]:
        return {
            e.time_offset: e.t_ms / MINUTE_MS for e in self.events if isinstance(e, ReadingShown)
        }

    def raised(self, alert: AlertName) -> list[float]:
        return [
            e.t_ms / MINUTE_MS
            for e in self.events
            if isinstance(e, AlertRaised) and e.alert is alert
        ]


def failed_from(minute: int) -> Callable[[int], SensorState]:
    return lambda t: SensorState.FAILED if t >= minute * MINUTE_MS else SensorState.OK


def test_a_tail_lost_again_and_again_is_asked_for_at_the_next_check():
    """595 is lost live, in the check's backfill and in the ask its count made: the next
    check, five minutes on, fetches it; then the sensor, failed, is left alone."""
    s = Session(drops={595: 3})
    s.run(700, failed_from(600))
    assert s.shown()[595] == 602.5
    assert s.raised(AlertName.SENSOR_FAILED) == [602.5]
    assert s.raised(AlertName.SIGNAL_LOSS) == []
    assert s.rx.check_ms is None  # nothing more to ask a failed sensor that holds nothing new
    assert max(t for t, _ in s.racp_writes) == 602.5 * MINUTE_MS


def test_a_record_that_never_arrives_costs_a_few_requests_per_check_and_time_moves_on():
    s = Session(drops={595: 10**6})
    s.run(700, failed_from(600))
    assert 595 not in s.shown()
    checks = sorted({t for t, _ in s.racp_writes if t > 595 * MINUTE_MS})
    assert checks == [round((597.5 + 5 * k) * MINUTE_MS) for k in range(len(checks))]
    assert checks[-1] > 690 * MINUTE_MS  # it keeps asking, every reading interval
    per_check = len([w for w in s.racp_writes if w[0] > 595 * MINUTE_MS]) / len(checks)
    assert per_check == 4  # report, count, ask again, count (no progress): the next check


def test_a_backfill_counts_the_tail_and_an_overdue_reading_is_asked_for():
    s = Session(drops={100: 1})
    s.run(110)
    requests = [racp.decode(v) for _, v in s.racp_writes]
    # first connection: how many, all; then the tail counted (synced)
    assert [(r.opcode, r.operator, r.operand) for r in requests[:3]] == [
        (RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, racp.RacpOperator.ALL_RECORDS, None),
        (RacpOpcode.REPORT_STORED_RECORDS, racp.RacpOperator.ALL_RECORDS, None),
        (RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, racp.RacpOperator.GREATER_THAN_OR_EQUAL_TO, 0),
    ]
    # (at 30 min the first reading's gap: the warm-up offsets counted, none held)
    assert (requests[3].operator, requests[3].operand) == (
        racp.RacpOperator.WITHIN_RANGE_OF,
        (0, 25),
    )
    # 100 lost live is fetched when overdue (before the next one would reveal the gap)
    assert s.shown()[100] == 102.5
    assert [(r.opcode, r.operator, r.operand) for r in requests[4:]] == [
        (RacpOpcode.REPORT_STORED_RECORDS, racp.RacpOperator.GREATER_THAN_OR_EQUAL_TO, 96),
        (
            RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
            racp.RacpOperator.GREATER_THAN_OR_EQUAL_TO,
            101,
        ),
    ]
    assert [t for t, _ in s.racp_writes[4:]] == [102.5 * MINUTE_MS] * 2
    assert s.rx.collector.synced_at_ms == 102.5 * MINUTE_MS  # it held nothing more


def test_a_session_stopped_on_the_sensor_is_over_for_the_receiver_within_a_reading_interval():
    s = Session()
    s.run(300)
    assert s.tx.session is not None
    s.tx.session.stop(300 * MINUTE_MS)  # after its reading: the user stopped it (or another
    s.run(400)  # collector did); the next reading would have come at 305
    assert s.raised(AlertName.REPLACE_SENSOR) == [307.5]
    phases = [(e.phase, e.t_ms / MINUTE_MS) for e in s.events if isinstance(e, PhaseChanged)]
    assert phases[-1] == (Phase.ENDED, 307.5)
    assert s.raised(AlertName.SIGNAL_LOSS) == []
    assert s.rx.get_timer() is None  # no checks, no alerts, no phase change to come


def test_a_record_with_no_glucose_is_never_a_reading():
    """NaN, NRes or an infinity for glucose, with Sensor Status Annunciation bits, as a sensor
    may send for a measurement it could not make: not shown, not alerted on."""
    s = Session()
    s.run(58)  # readings up to 55; 56-59 are not on the sensor's grid
    now = s.now
    specials = [
        SFloatSpecial.NAN,
        SFloatSpecial.NRES,
        SFloatSpecial.POSITIVE_INFINITY,
        SFloatSpecial.NEGATIVE_INFINITY,
    ]
    for offset, glucose in zip(range(56, 60), specials, strict=True):
        record = MeasurementRecord(glucose, offset, status=int(StatusFlags.SENSOR_MALFUNCTION))
        s.rx.notification(gatt.MEASUREMENT.uuid, measurement.encode([record]), now)
        s.link.pump(now)
    assert not set(range(56, 60)) & set(s.shown())
    assert not [e for e in s.events if isinstance(e, AlertRaised) and e.t_ms == now]
