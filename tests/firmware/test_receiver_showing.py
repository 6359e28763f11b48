"""What the receiver core says its screen shows (read-only queries): ``Receiver.showing`` (the
newest reading, or the state that replaces it), ``Receiver.phase_left_ms`` (warm-up remaining,
time to expiry, grace remaining) and ``AlertEngine.by_urgency`` (the alerts raised, most urgent
first). Rules: shared/spec/behavior.md ("Session lifecycle", "Readings and display", "Alerts");
the G7 profile's times are those of its table (warm-up 27 min, 10 d, 12 h grace). A transmitter
and a receiver core on the memory link, in virtual time.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from firmware.events import SensorSample, SensorState
from firmware.lifecycle import Phase
from firmware.profiles import DAY_MS, G7, HOUR_MS, MINUTE_MS
from firmware.receiver.alerts import AlertName
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.display import Showing
from firmware.receiver.receiver import ReadingShown, Receiver, ReceiverConfig
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from sim.links.memory import MemoryLink
from tests.support.cores import run_cores

CAL = FactoryCalibration(770.0, 25_700.0)


def counts(glucose_mgdl: float) -> int:
    return round(glucose_mgdl * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)


class Session:
    """The two cores on a memory link; ``run`` feeds a sensor sample every 5 minutes."""

    def __init__(self) -> None:
        self.tx = Transmitter(TransmitterConfig(G7), CAL, 0)
        self.rx = Receiver(ReceiverConfig(G7, CollectorConfig(datetime.datetime(2026, 1, 5))), 0)
        self.events: list[object] = []
        self.link = MemoryLink(self.tx, self.rx, on_receiver_event=self.events.append)
        self.now = 0

    def run(
        self,
        until_ms: int,
        glucose: Callable[[int], float] = lambda t: 120.0,
        state: Callable[[int], SensorState] = lambda t: SensorState.OK,
    ) -> None:
        run_cores(
            self.tx,
            self.rx,
            self.link,
            self.now,
            until_ms,
            lambda t: SensorSample(counts(glucose(t)), state(t)),
        )
        self.now = until_ms


def test_before_a_session_is_known_nothing_is_shown_and_no_countdown_runs():
    s = Session()
    assert s.rx.showing() is Showing.NO_SESSION
    assert s.rx.phase_left_ms(0) is None


def test_warm_up_shows_its_countdown_then_readings_with_the_time_to_expiry():
    s = Session()
    s.link.connect(0)
    s.run(10 * MINUTE_MS)
    assert s.rx.showing() is Showing.WARMUP
    assert s.rx.phase_left_ms(s.now) == 27 * MINUTE_MS - 10 * MINUTE_MS
    s.run(60 * MINUTE_MS)
    assert s.rx.showing() is Showing.READING
    assert any(isinstance(e, ReadingShown) for e in s.events)
    assert s.rx.phase_left_ms(s.now) == 10 * DAY_MS - 60 * MINUTE_MS


def test_a_lost_signal_replaces_the_value_until_readings_come_back():
    s = Session()
    s.link.connect(0)
    s.run(60 * MINUTE_MS)
    s.link.disconnect(s.now, "out of range")
    s.run(60 * MINUTE_MS + 19 * MINUTE_MS)
    assert s.rx.showing() is Showing.READING  # behavior.md: signal loss after 20 min
    s.run(60 * MINUTE_MS + 21 * MINUTE_MS)
    assert s.rx.showing() is Showing.SIGNAL_LOSS
    s.link.connect(s.now)
    s.run(s.now + 10 * MINUTE_MS)
    assert s.rx.showing() is Showing.READING


def test_a_sensor_issue_then_a_failure_replace_the_value_and_stop_the_countdown():
    s = Session()
    s.link.connect(0)

    def state(t: int) -> SensorState:
        if t >= 200 * MINUTE_MS:
            return SensorState.FAILED
        return SensorState.ISSUE if t >= 100 * MINUTE_MS else SensorState.OK

    s.run(130 * MINUTE_MS, state=state)
    assert s.rx.showing() is Showing.SENSOR_ISSUE
    s.run(230 * MINUTE_MS, state=state)
    assert s.rx.phase is Phase.FAILED
    assert s.rx.showing() is Showing.SENSOR_FAILED
    assert s.rx.phase_left_ms(s.now) is None


def test_grace_counts_down_to_the_end_then_replace_sensor():
    s = Session()
    s.link.connect(0)
    s.run(10 * DAY_MS + 2 * HOUR_MS)
    assert s.rx.phase is Phase.GRACE
    assert s.rx.showing() is Showing.READING
    assert s.rx.phase_left_ms(s.now) == 12 * HOUR_MS - 2 * HOUR_MS
    s.run(10 * DAY_MS + 13 * HOUR_MS)
    assert s.rx.showing() is Showing.REPLACE_SENSOR
    assert s.rx.phase_left_ms(s.now) is None


def test_alerts_are_listed_most_urgent_first_with_their_acknowledgement():
    s = Session()
    s.link.connect(0)
    s.run(60 * MINUTE_MS, glucose=lambda t: 50.0)  # <= 55: urgent low, and <= 70: low
    assert s.rx.alerts is not None
    assert s.rx.alerts.by_urgency() == [(AlertName.URGENT_LOW, False), (AlertName.LOW, False)]
    s.rx.acknowledge(AlertName.LOW, s.now)
    assert s.rx.alerts.by_urgency() == [(AlertName.URGENT_LOW, False), (AlertName.LOW, True)]
