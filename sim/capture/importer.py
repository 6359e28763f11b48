"""A capture of a device's CGM traffic as a recording that ``cgmsim replay`` runs, of either
side: ``sensor`` (``receiver_side``: what the sensor sent drives our receiver) or ``collector``
(``transmitter_side``: what the collector asked drives our transmitter). The recording's header
link is ``capture``; session time comes from what the sensor states (``session_time``).
"""

from __future__ import annotations

import pathlib
from typing import Any

from firmware.profiles import MINUTE_MS
from sim.capture.att_stream import conversation
from sim.capture.cgms_handles import CgmsHandles
from sim.capture.exchanges import Exchange, Request, Value, cgms_exchanges
from sim.capture.hci_files import CaptureError, read_packets
from sim.capture.receiver_side import sensor_side
from sim.capture.transmitter_side import collector_side
from sim.recording.fileformat import RecordingWriter, header
from sim.recording.replay import CAPTURE_LINK

SIDES = ("sensor", "collector")


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
    if side == "sensor":
        lines = sensor_side(items, profile, speed)
    else:
        lines = collector_side(items, profile, speed)
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
        "session_min": [
            min(line["t"] for line in lines[1:]) / MINUTE_MS,
            max(line["t"] for line in lines) / MINUTE_MS,
        ],
    }
