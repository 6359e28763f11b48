"""``--side sensor``: what the captured sensor sent (notifications, indications, the answers
to reads and writes) drives our receiver core; the captured collector's requests (reads, writes,
subscriptions) are what the core is expected to ask. The collector's wall clock (its
``clock_at_zero``, time zone and DST) comes from the Session Start Time it wrote, if it did.
Session time: ``sim.capture.session_time``.
"""

from __future__ import annotations

import datetime
from typing import Any

from firmware.profiles import PROFILES
from firmware.receiver.collector import (
    CollectorConfig,
    ReadRequest,
    SubscribeRequest,
    WriteRequest,
)
from firmware.receiver.receiver import Receiver, ReceiverConfig
from protocol.cgms import attributes, gatt
from protocol.cgms.racp import PROCEDURE_TIMEOUT_MS
from protocol.errors import ProtocolError
from sim.capture.exchanges import (
    Answer,
    Confirmation,
    Exchange,
    Link,
    Mtu,
    Request,
    Value,
    as_event,
)
from sim.capture.recording_lines import Lines, first_frame
from sim.capture.session_time import session_times
from sim.hil import session_ms
from sim.recording.codec import to_json

DEFAULT_CLOCK_AT_ZERO = datetime.datetime(2000, 1, 1)  # when the collector wrote no start time


def _clock(items: list[Exchange], times: list[int]) -> tuple[datetime.datetime, int, int]:
    """The collector's clock at session time 0, time zone and DST, from its first Session
    Start Time write (the receiver writes its clock's now: the time of the input it answers)."""
    asked_at = times[0]
    for item, t in zip(items, times, strict=True):
        if isinstance(item, Answer | Value | Link):
            asked_at = t
        if (
            isinstance(item, Request)
            and item.kind == "write"
            and item.uuid == gatt.SESSION_START_TIME.uuid
            and item.value is not None
        ):
            try:
                written = attributes.SESSION_START_TIME_CODEC.decode(item.value)
                moment = written.to_datetime()
            except (ProtocolError, ValueError):
                continue
            return (
                moment - datetime.timedelta(milliseconds=asked_at),
                written.time_zone,
                written.dst,
            )
    return DEFAULT_CLOCK_AT_ZERO, 0, 0


def sensor_side(items: list[Exchange], profile: str, speed: float) -> list[dict[str, Any]]:
    """Lines that drive our receiver with what the sensor sent (see the module docstring)."""
    times = session_times(items, speed)
    clock, time_zone, dst = _clock(items, times)
    timeout_ms = session_ms(PROCEDURE_TIMEOUT_MS, speed)
    collector = CollectorConfig(clock, time_zone, dst, procedure_timeout_ms=timeout_ms)
    config = ReceiverConfig(PROFILES[profile], collector)
    lines = Lines("rx")
    t0 = times[0]
    lines.input(
        t0,
        first_frame(items),
        "start",
        config=to_json(config),
        state=Receiver(config, t0).snapshot(),
    )
    held: list[tuple[Value, int]] = []  # values that came while a request was answered
    asking = False
    for item, t in zip(items, times, strict=True):
        match item:
            case Link(frame=frame, up=True):
                lines.input(t, frame, "connected")
            case Link(frame=frame, up=False):
                lines.input(t, frame, "disconnected", reason="link lost")
                held, asking = [], False
            case Request():
                lines.expect(
                    as_event(item, ReadRequest, WriteRequest, SubscribeRequest), item.frame
                )
                asking = True
            case Answer(frame=frame, request=request, value=value, error=error):
                hexed = None if value is None else value.hex()
                lines.input(t, frame, "response", uuid=request.uuid, value=hexed, error=error)
                asking = False
                for value_item, value_t in held:
                    _value_input(lines, value_item, max(value_t, t))
                held = []
            case Value():
                if asking:  # our GATT client hands these on after the answer
                    held.append((item, t))
                else:
                    _value_input(lines, item, t)
            case Mtu() | Confirmation():
                pass  # the host stack's, not the core's
    return lines.lines


def _value_input(lines: Lines, item: Value, t: int) -> None:
    name = "indication" if item.indication else "notification"
    lines.input(t, item.frame, name, uuid=item.uuid, value=item.value.hex())
