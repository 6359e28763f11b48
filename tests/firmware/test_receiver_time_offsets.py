"""A record whose time offset is ahead of the session's clock is refused, not shown.

Found by `cgmsim fuzz --target receiver`: a sensor notifying time offset 88 min 50 minutes
into the session made the alert engine raise ValueError out of the receiver core."""

import datetime

from firmware.profiles import G7, MINUTE_MS
from firmware.receiver.collector import CollectorConfig, FrameRejected
from firmware.receiver.receiver import ReadingShown, Receiver, ReceiverConfig
from protocol.cgms import attributes, gatt, measurement
from protocol.cgms.attributes import Feature, Status
from protocol.cgms.measurement import MeasurementRecord


def receiver_at(now: int) -> Receiver:
    """A receiver that connected at ``now`` and read a Status saying the session is
    ``now`` old, so its session starts at 0."""
    rx = Receiver(ReceiverConfig(G7, CollectorConfig(datetime.datetime(2025, 1, 1))), now)
    rx.connected(now)
    rx.response(gatt.FEATURE.uuid, attributes.encode_feature(Feature(0)), None, now)
    status = attributes.STATUS_CODEC.encode(Status(now // MINUTE_MS), False)
    rx.response(gatt.STATUS.uuid, status, None, now)
    assert rx.session_start_ms == 0
    drain(rx)
    return rx


def drain(rx: Receiver) -> list[object]:
    events = []
    while (event := rx.next_event()) is not None:
        events.append(event)
    return events


def notify(rx: Receiver, offset: int, now: int) -> list[object]:
    value = measurement.encode([MeasurementRecord(120.0, offset)])
    rx.notification(gatt.MEASUREMENT.uuid, value, now)
    return drain(rx)


def test_a_record_from_the_future_is_rejected():
    now = 50 * MINUTE_MS
    rx = receiver_at(now)
    events = notify(rx, 88, now)
    assert not any(isinstance(e, ReadingShown) for e in events)
    (rejected,) = [e for e in events if isinstance(e, FrameRejected)]
    assert "88" in rejected.reason and rejected.uuid == gatt.MEASUREMENT.uuid
    assert rx.collector.frame_errors == 1


def test_a_record_up_to_a_minute_ahead_is_shown():
    """Time offsets have minute resolution: the receiver's session start may be late by up to
    a minute, so a current record can look up to a minute ahead."""
    now = 50 * MINUTE_MS
    rx = receiver_at(now)
    (shown,) = [e for e in notify(rx, 51, now) if isinstance(e, ReadingShown)]
    assert shown.time_offset == 51


def test_a_refused_record_does_not_hide_the_genuine_one_with_its_offset():
    """A record refused for being ahead of the clock was not received: when the sensor's
    real record with that offset comes at its time, it is shown (it used to be dropped as a
    duplicate, its offset already marked as seen)."""
    rx = receiver_at(50 * MINUTE_MS)
    notify(rx, 60, 50 * MINUTE_MS)
    assert 60 not in rx.collector.seen
    (shown,) = [e for e in notify(rx, 60, 60 * MINUTE_MS) if isinstance(e, ReadingShown)]
    assert shown.time_offset == 60
    assert rx.collector.last_offset == 60
