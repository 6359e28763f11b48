"""``--side collector``: what the captured collector asked drives our transmitter core; what
the captured sensor answered, notified and indicated is what the core is expected to send.

The sensor's physics is not in a capture: our transmitter is given, as its sensor samples, the
glucose each CGM Measurement record of the capture carries, at the minute of its Time Offset
(the first time the capture shows the record; a slot the capture never shows gets no sample).
The calibration that turns those into counts (``SAMPLE_CALIBRATION``) gives the record's whole
mg/dL back exactly. A device derives Trend and Quality from its unrounded glucose, which the
capture does not hold; the replay of an imported capture therefore compares those two fields
within what the rounding explains (``sim.recording.replay``), and every other field, the
records' order and packing, every answer and every indication exactly.
"""

from __future__ import annotations

from typing import Any

from firmware.events import (
    Connected,
    Disconnected,
    Indicate,
    MtuChanged,
    Notify,
    Read,
    Sent,
    Subscribe,
    Write,
)
from firmware.profiles import MINUTE_MS, PROFILES
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import TransmitterConfig
from protocol.cgms import gatt
from protocol.cgms.racp import PROCEDURE_TIMEOUT_MS
from sim.capture.exchanges import (
    Answer,
    Confirmation,
    Exchange,
    Frame,
    Link,
    Mtu,
    Request,
    Value,
    as_event,
)
from sim.capture.recording_lines import Lines, first_frame
from sim.capture.session_time import measurement_records, session_times
from sim.hil import session_ms
from sim.recording.codec import event_json, to_json

# counts per mg/dL and background: a record's whole mg/dL in counts and back, exactly
SAMPLE_CALIBRATION = FactoryCalibration(sensitivity_counts_per_mgdl=1000.0, background_counts=0.0)


def samples(items: list[Exchange]) -> list[tuple[int, int, Frame]]:
    """(session ms, raw counts, the frame that showed it first) for every record shown."""
    first: dict[int, tuple[float, Frame]] = {}
    for item in items:
        if isinstance(item, Value) and item.uuid == gatt.MEASUREMENT.uuid:
            for offset, glucose, _crc in measurement_records(item.value):
                if glucose is not None and glucose == glucose:  # not NaN
                    first.setdefault(offset, (glucose, item.frame))
    scale = SAMPLE_CALIBRATION.sensitivity_counts_per_mgdl
    return [
        (offset * MINUTE_MS, round(glucose * scale + SAMPLE_CALIBRATION.background_counts), frame)
        for offset, (glucose, frame) in sorted(first.items())
    ]


def _e2e_crc(items: list[Exchange]) -> bool:
    return any(
        crc
        for item in items
        if isinstance(item, Value) and item.uuid == gatt.MEASUREMENT.uuid
        for _offset, _glucose, crc in measurement_records(item.value)
    )


def _respond(answer: Answer) -> dict[str, Any]:
    value = None if answer.value is None else answer.value.hex()
    return {"type": "Respond", "uuid": answer.request.uuid, "value": value, "error": answer.error}


def collector_side(items: list[Exchange], profile: str, speed: float) -> list[dict[str, Any]]:
    """Lines that drive our transmitter with what the collector asked."""
    times = session_times(items, speed)
    answered_at = {
        id(item.request): t
        for item, t in zip(items, times, strict=True)
        if isinstance(item, Answer)
    }
    config = TransmitterConfig(
        PROFILES[profile],
        e2e_crc=_e2e_crc(items),
        procedure_timeout_ms=session_ms(PROCEDURE_TIMEOUT_MS, speed),
    )
    lines = Lines("tx")
    lines.input(
        0,
        first_frame(items),
        "start",
        config=to_json(config),
        factory=to_json(SAMPLE_CALIBRATION),
        session=True,
    )
    pending = samples(items)
    for item, t in zip(items, times, strict=True):
        now = answered_at.get(id(item), t) if isinstance(item, Request) else t
        while pending and pending[0][0] <= now:
            sample_t, counts, frame = pending.pop(0)
            lines.input(sample_t, frame, "sample", raw_counts=counts, state=0)
        match item:
            case Link(frame=frame, up=up):
                event = Connected() if up else Disconnected()
                lines.input(now, frame, "receive", event=event_json(event))
            case Mtu(frame=frame, mtu=mtu):
                lines.input(now, frame, "receive", event=event_json(MtuChanged(mtu)))
            case Request(frame=frame):
                lines.input(
                    now, frame, "receive", event=event_json(as_event(item, Read, Write, Subscribe))
                )
            case Answer():
                lines.expect_json(_respond(item), item.frame)
            case Value(frame=frame, uuid=uuid, value=value, indication=indication):
                kind = Indicate if indication else Notify
                lines.expect(kind(uuid, value), frame)
                if not indication:  # left the device: the next may go
                    lines.input(now, frame, "receive", event=event_json(Sent()))
            case Confirmation(frame=frame):
                lines.input(now, frame, "receive", event=event_json(Sent()))
    for sample_t, counts, frame in pending:
        lines.input(sample_t, frame, "sample", raw_counts=counts, state=0)
    return lines.lines
