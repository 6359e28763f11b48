"""Session time for a capture's frames, from what the sensor states.

A capture's timestamps are its host's clock, not the sensor's session clock (bumble's
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

The session therefore starts at session time 0, as our cores count it.
"""

from __future__ import annotations

import struct

from firmware.profiles import MINUTE_MS
from protocol import sfloat
from protocol.cgms import gatt, measurement
from protocol.errors import ProtocolError
from sim.capture.exchanges import Answer, Exchange, Value

_LAST_MS_OF_MINUTE = MINUTE_MS - 1


def measurement_records(value: bytes) -> list[tuple[int, float | None, bool]]:
    """(Time Offset, glucose or None, whether it carries an E2E-CRC) of each CGM Measurement
    record of a notification (CGMS §3.1: size, flags, glucose, time offset...), read by the
    size bytes alone, so that a record with a wrong CRC still tells what it says."""
    found, at = [], 0
    while at + 6 <= len(value) and value[at] >= 6:
        size, flags = value[at], value[at + 1]
        raw, offset = struct.unpack_from("<HH", value, at + 2)
        try:
            glucose: float | None = float(sfloat.decode(raw))
        except (ProtocolError, TypeError, ValueError):
            glucose = None  # a special value (NaN, NRes...): no reading
        found.append((offset, glucose, size == measurement.record_size_for_flags(flags, True)))
        at += size
    return found


def stated_ms(item: Exchange) -> int | None:
    """The session time a sensor frame states (see the module docstring), if any."""
    if isinstance(item, Value) and item.uuid == gatt.MEASUREMENT.uuid:
        offsets = [offset for offset, _glucose, _crc in measurement_records(item.value)]
        return max(offsets) * MINUTE_MS if offsets else None
    if (
        isinstance(item, Answer)
        and item.request.uuid == gatt.STATUS.uuid
        and item.value is not None
        and len(item.value) >= 2
    ):
        return int(struct.unpack_from("<H", item.value)[0]) * MINUTE_MS + _LAST_MS_OF_MINUTE
    return None


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
