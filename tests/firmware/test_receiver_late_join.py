"""A receiver that joins a sensor already in session, or comes back after its process was
down, has not lost the signal before it had its chance to backfill (issue 18: on connecting,
``signal_loss`` was raised 0.6 min after the receiver started and cleared 0.09 min later, when
the backfill arrived). shared/spec/behavior.md, "Alerts": signal loss after 20 min without a
reading; it clears when readings (or backfill) resume.

The transmitter and receiver cores on a link where every GATT exchange takes air time, as on
a controller whose clock is compressed with the session's (``cgmsim receiver --speed``): so
the receiver's timers run between the CGM Status read, which tells it the session started
hours ago, and the backfill."""

from __future__ import annotations

import datetime
import heapq
import itertools
from collections.abc import Callable

from firmware.events import (
    Connected,
    Disconnected,
    Indicate,
    Notify,
    Read,
    Respond,
    SensorSample,
    SensorState,
    Sent,
    Subscribe,
    Write,
)
from firmware.profiles import G7, MINUTE_MS
from firmware.receiver.alerts import AlertName, AlertRaised
from firmware.receiver.collector import (
    CollectorConfig,
    ReadRequest,
    SubscribeRequest,
    WriteRequest,
)
from firmware.receiver.receiver import ReadingShown, Receiver, ReceiverConfig
from firmware.transmitter.server import Transmitter, TransmitterConfig
from tests.firmware.test_receiver_checks import CAL, COUNTS
from tests.support.cores import SAMPLE_MS

AIR_MS = 1_500  # one way, per GATT message: a pty controller at --speed 600 or so
JOIN_MS = 3 * 60 * MINUTE_MS  # the sensor has been in session for 3 h
CONFIG = ReceiverConfig(G7, CollectorConfig(datetime.datetime(2026, 1, 5)))


class SlowLink:
    """The two cores with ``AIR_MS`` between a message sent and its arrival, each way; the
    sensor samples every 5 minutes; both cores' timers fire when due. ``cut`` ends the link (out
    of range, nothing more arrives) once the receiver knows the session (from CGM Status)."""

    def __init__(self, tx: Transmitter, rx: Receiver, now_ms: int, cut: bool = False):
        self.tx, self.rx, self.now = tx, rx, now_ms
        self.events: list[object] = []
        self.air: list[tuple[int, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.cut, self.up = cut, True
        self.known_ms: int | None = None  # when the receiver learnt the session
        tx.receive(Connected(185), now_ms)
        rx.connected(now_ms)

    def _send(self, deliver: Callable[[], None]) -> None:
        if self.up:
            heapq.heappush(self.air, (self.now + AIR_MS, next(self.order), deliver))

    def _move(self) -> None:
        now = self.now
        while (event := self.rx.next_event()) is not None:
            match event:
                case ReadRequest(uuid=uuid):
                    self._send(lambda u=uuid: self.tx.receive(Read(u), self.now))
                case WriteRequest(uuid=uuid, value=value):
                    self._send(lambda u=uuid, v=value: self.tx.receive(Write(u, v), self.now))
                case SubscribeRequest(uuid=uuid, notify=n, indicate=i):
                    sub = Subscribe(uuid, n, i)
                    self._send(lambda s=sub: self.tx.receive(s, self.now))
                case _:
                    self.events.append(event)
        while (event := self.tx.next_event()) is not None:
            match event:
                case Respond(uuid=uuid, value=value, error=error):
                    code = None if error is None else int(error)
                    self._send(lambda u=uuid, v=value, e=code: self.rx.response(u, v, e, self.now))
                case Notify(uuid=uuid, value=value):
                    self._send(lambda u=uuid, v=value: self.rx.notification(u, v, self.now))
                    self.tx.receive(Sent(), now)
                case Indicate(uuid=uuid, value=value):
                    self._send(lambda u=uuid, v=value: self.rx.indication(u, v, self.now))
                    self.tx.receive(Sent(), now)
        if self.known_ms is None and self.rx.session_start_ms is not None:
            self.known_ms = now
        if self.up and self.cut and self.known_ms is not None:
            self.up, self.air = False, []  # out of range: what was on the air is lost

    def run(self, until_ms: int) -> None:
        while True:
            self._move()
            next_sample = (self.now // SAMPLE_MS + 1) * SAMPLE_MS
            due = [next_sample, self.tx.get_timer(), self.rx.get_timer()]
            if self.air:
                due.append(self.air[0][0])
            now = min(t for t in due if t is not None)
            if now > until_ms:
                return
            self.now = max(now, self.now)
            while self.air and self.air[0][0] <= self.now:
                _, _, deliver = heapq.heappop(self.air)
                deliver()
                self._move()
            if self.now == next_sample:
                self.tx.sample(SensorSample(COUNTS, SensorState.OK), self.now)
            if (t := self.tx.get_timer()) is not None and t <= self.now:
                self.tx.handle_timer(self.now)
            if (t := self.rx.get_timer()) is not None and t <= self.now:
                self.rx.handle_timer(self.now)

    def raised(self, alert: AlertName) -> list[float]:
        return [
            e.t_ms / MINUTE_MS
            for e in self.events
            if isinstance(e, AlertRaised) and e.alert is alert
        ]

    def backfilled(self) -> list[int]:
        return [e.time_offset for e in self.events if isinstance(e, ReadingShown) and e.backfill]


def sensor_in_session(until_ms: int) -> Transmitter:
    """A transmitter that has sampled every 5 minutes from 0 to ``until_ms``, nobody listening."""
    tx = Transmitter(TransmitterConfig(G7), CAL, 0)
    for t in range(SAMPLE_MS, until_ms + 1, SAMPLE_MS):
        while (timer := tx.get_timer()) is not None and timer <= t:
            tx.handle_timer(timer)
        tx.sample(SensorSample(COUNTS, SensorState.OK), t)
        while tx.next_event() is not None:
            pass
    return tx


def test_a_receiver_joining_a_sensor_in_session_raises_no_signal_loss_while_it_backfills():
    link = SlowLink(sensor_in_session(JOIN_MS), Receiver(CONFIG, JOIN_MS), JOIN_MS)
    link.run(JOIN_MS + 30 * MINUTE_MS)
    missed = range(30, JOIN_MS // MINUTE_MS + 1, 5)  # warm-up end (27 min) to the join
    assert set(missed) <= set(link.backfilled())
    assert link.raised(AlertName.SIGNAL_LOSS) == []


def test_a_receiver_back_after_its_process_was_down_raises_no_signal_loss_while_it_backfills():
    tx = sensor_in_session(JOIN_MS)
    first = SlowLink(tx, Receiver(CONFIG, JOIN_MS), JOIN_MS)
    first.run(JOIN_MS + 10 * MINUTE_MS)
    state = first.rx.snapshot()
    back_ms = JOIN_MS + 3 * 60 * MINUTE_MS  # down for 3 h, the sensor sampling on
    for t in range(JOIN_MS + 15 * MINUTE_MS, back_ms + 1, SAMPLE_MS):
        tx.sample(SensorSample(COUNTS, SensorState.OK), t)
        while tx.next_event() is not None:
            pass
    tx.receive(Disconnected(), back_ms)
    while tx.next_event() is not None:
        pass
    second = SlowLink(tx, Receiver.restore(CONFIG, state, back_ms), back_ms)
    second.run(back_ms + 30 * MINUTE_MS)
    assert set(range(JOIN_MS // MINUTE_MS + 15, back_ms // MINUTE_MS + 1, 5)) <= set(
        second.backfilled()
    )
    assert second.raised(AlertName.SIGNAL_LOSS) == []


def test_a_receiver_that_joins_and_hears_nothing_more_raises_signal_loss_20_min_later():
    """The receiver learns the session from CGM Status, then the sensor goes out of range
    before the backfill: 20 minutes without a reading from the moment it joined."""
    link = SlowLink(sensor_in_session(JOIN_MS), Receiver(CONFIG, JOIN_MS), JOIN_MS, cut=True)
    link.run(JOIN_MS + 60 * MINUTE_MS)
    assert link.backfilled() == []
    assert link.known_ms is not None and link.known_ms - JOIN_MS == 4 * AIR_MS  # Feature, Status
    assert link.raised(AlertName.SIGNAL_LOSS) == [link.known_ms / MINUTE_MS + 20]
