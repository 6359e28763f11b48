"""A capture of a device's CGM traffic as a recording that ``cgmsim replay`` runs.

``--side sensor``: what the sensor sent (notifications, indications, answers) drives our
receiver core; the captured collector's requests are what the core is expected to ask. (The
other side, the collector's requests driving our transmitter, is not built yet.)

Time. A capture's timestamps are its host's clock, not the sensor's session clock (bumble's
snooper stamps wall-clock time, which a simulation in virtual time or a lab run with ``--speed``
compresses), so the session time of every frame is taken from what the sensor itself states:

- a CGM Measurement notification states the start of the minute of its newest record's Time
  Offset (minutes since session start: the sensor sampled it then);
- a CGM Status read states its Time Offset: the answer came within that minute, taken as its
  last millisecond (so a collector's timer that fell within that minute comes first);
- a frame that states no time (or an older one: a backfilled record) is at the last statement's
  time plus the capture time since that statement, times ``--speed`` (the session clock of a
  lab run at ``--speed X`` ran X times the host's), but never past the next statement's time;
  frames before the first statement are at its time. Session time never goes back. For a real
  device (1x) this is its real timing; for ``cgmsim simulate --capture`` (virtual time, stamped
  with the host's wall clock, a few ms for hours of session) time stands at each statement.

The session therefore starts at session time 0, as our cores count it. Frame numbers and the
capture's own timestamps go with every line, for reports. The collector's wall clock (its
``clock_at_zero``, time zone and DST) comes from the Session Start Time it wrote, if it did.
"""

from __future__ import annotations

import datetime
import pathlib
import struct
from typing import Any

from firmware.profiles import MINUTE_MS, PROFILES
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
from sim.capture.att_stream import conversation
from sim.capture.cgms_handles import CgmsHandles
from sim.capture.exchanges import (
    Answer,
    Confirmation,
    Exchange,
    Frame,
    Link,
    Mtu,
    Request,
    Value,
    cgms_exchanges,
)
from sim.capture.hci_files import CaptureError, read_packets
from sim.hil import session_ms
from sim.recording.codec import event_json, to_json
from sim.recording.fileformat import RecordingWriter, header
from sim.recording.replay import CAPTURE_LINK

SIDES = ("sensor",)  # --side collector (driving our transmitter) is not built yet
DEFAULT_CLOCK_AT_ZERO = datetime.datetime(2000, 1, 1)  # when the collector wrote no start time
_LAST_MS_OF_MINUTE = MINUTE_MS - 1


def stated_ms(item: Exchange) -> int | None:
    """The session time a sensor frame states (see the module docstring), if any."""
    if isinstance(item, Value) and item.uuid == gatt.MEASUREMENT.uuid:
        offsets = _record_offsets(item.value)
        return max(offsets) * MINUTE_MS if offsets else None
    if (
        isinstance(item, Answer)
        and item.request.uuid == gatt.STATUS.uuid
        and item.value is not None
        and len(item.value) >= 2
    ):
        return int(struct.unpack_from("<H", item.value)[0]) * MINUTE_MS + _LAST_MS_OF_MINUTE
    return None


def _record_offsets(value: bytes) -> list[int]:
    """The Time Offset of each record (CGMS §3.1: size, flags, glucose, time offset...), read
    by the size bytes alone, so that a record with a wrong CRC still tells its time."""
    offsets, at = [], 0
    while at + 6 <= len(value) and value[at] >= 6:
        offsets.append(int(struct.unpack_from("<H", value, at + 4)[0]))
        at += value[at]
    return offsets


def session_times(items: list[Exchange], speed: float = 1.0) -> list[int]:
    """Each exchange's session time in ms: the anchors (frames whose statement moves time on)
    at what they state; a frame after an anchor at the anchor's time plus the capture time
    since it times ``speed``, but never past the next anchor; frames before the first anchor
    at its time."""
    anchors: list[tuple[int, int]] = []  # (index, session ms)
    for index, item in enumerate(items):
        t = stated_ms(item)
        if t is not None and (not anchors or t >= anchors[-1][1]):
            anchors.append((index, t))
    if not anchors:
        return [0] * len(items)
    times, following, now = [], 0, anchors[0][1]
    for index, item in enumerate(items):
        while following < len(anchors) and anchors[following][0] < index:
            following += 1
        if following < len(anchors) and anchors[following][0] == index:
            t = anchors[following][1]
        elif following > 0:
            before, t_before = anchors[following - 1]
            elapsed_ms = (item.frame.time_s - items[before].frame.time_s) * 1000 * speed
            t = t_before + max(round(elapsed_ms), 0)
            if following < len(anchors):
                t = min(t, anchors[following][1])
        else:
            t = now
        now = max(now, t)
        times.append(now)
    return times


def exchanges(path: pathlib.Path, handles: CgmsHandles | None) -> list[Exchange]:
    """The CGM exchanges of the capture at ``path``; ``CaptureError`` when there are none."""
    known = handles if handles is not None else CgmsHandles()
    items = cgms_exchanges(conversation(read_packets(path)), known)
    if not known:
        raise CaptureError(
            "no CGM service (0x181F) found: the capture has no GATT discovery of it; "
            "give its handles with --handles"
        )
    if not any(isinstance(item, Request | Value) for item in items):
        raise CaptureError("the capture has no CGM service traffic")
    return items


def _frame(frame: Frame) -> list[int | float]:
    return [frame.number, round(frame.time_s, 6)]


class _Lines:
    """Builds the recording's lines: inputs, each with the outputs expected after it."""

    def __init__(self, core: str) -> None:
        self.core = core
        self.lines: list[dict[str, Any]] = []

    def input(self, t: int, frame: Frame, name: str, **args: Any) -> None:
        line = {"t": t, "core": self.core, "in": name, **args, "frame": _frame(frame)}
        self.lines.append({**line, "out": [], "out_frames": []})

    def expect(self, event: object, frame: Frame) -> None:
        last = self.lines[-1]
        last["out"].append(event_json(event))
        last["out_frames"].append(_frame(frame))


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
    lines = _Lines("rx")
    t0 = times[0]
    lines.input(
        t0,
        _first_frame(items),
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
                lines.expect(_collector_request(item), item.frame)
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


def _first_frame(items: list[Exchange]) -> Frame:
    return min((item.frame for item in items), key=lambda frame: frame.number)


def _value_input(lines: _Lines, item: Value, t: int) -> None:
    name = "indication" if item.indication else "notification"
    lines.input(t, item.frame, name, uuid=item.uuid, value=item.value.hex())


def _collector_request(request: Request) -> object:
    if request.kind == "read":
        return ReadRequest(request.uuid)
    if request.kind == "write":
        return WriteRequest(request.uuid, request.value or b"")
    return SubscribeRequest(request.uuid, request.notify, request.indicate)


def write_recording(
    capture: pathlib.Path,
    out: pathlib.Path,
    side: str,
    profile: str,
    handles: CgmsHandles | None,
    speed: float = 1.0,
) -> dict[str, Any]:
    """Import ``capture`` as a recording of ``side`` at ``out``; a summary of what was taken.
    ``speed``: the capture is of a lab run whose session clock ran ``speed`` x the radio's
    (``cgmsim transmitter/receiver --speed``): the core's 30 s procedure timeout, a radio time,
    is that many times longer in session time, as it was in the run."""
    if side not in SIDES:
        raise CaptureError(f"--side {side} is not one of {', '.join(SIDES)}")
    items = exchanges(capture, handles)
    lines = sensor_side(items, profile, speed)
    settings = {"capture": capture.name, "side": side, "speed": speed, "compare": "gatt"}
    with RecordingWriter.create(out, header(CAPTURE_LINK, profile, None, settings)) as writer:
        for line in lines:
            writer.write(line)
    return {
        "capture": str(capture),
        "side": side,
        "inputs": len(lines) - 1,
        "expected_outputs": sum(len(line["out"]) for line in lines),
        "frames": [items[0].frame.number, items[-1].frame.number],
        "session_min": [lines[0]["t"] / MINUTE_MS, lines[-1]["t"] / MINUTE_MS],
    }
