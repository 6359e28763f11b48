"""Flow control for the transmitter: one notification or indication in flight (CGMS §3.8.3).

``Outbound`` holds what goes to the link: ``to_link``, the events ``next_event()`` hands out
(answers at once; a notification or indication when the bearer is free), and ``waiting``, the
notifications and indications queued behind the one in flight, sent one per ``Sent``.
"""

from __future__ import annotations

from collections import deque

from firmware.events import GattOutput, Indicate, Notify, Respond
from protocol.cgms import measurement
from protocol.cgms.measurement import MeasurementRecord

ATT_NOTIFICATION_OVERHEAD = 3  # opcode + handle


class Outbound:
    def __init__(self) -> None:
        self.to_link: deque[GattOutput] = deque()
        self.waiting: deque[Notify | Indicate] = deque()
        self.in_flight = False

    def respond(self, event: Respond) -> None:
        self.to_link.append(event)

    def send(self, event: Notify | Indicate) -> None:
        if self.in_flight:
            self.waiting.append(event)
        else:
            self.in_flight = True
            self.to_link.append(event)

    def sent(self) -> bool:
        """The one in flight went (or was confirmed): True when a waiting one took its place."""
        self.in_flight = False
        if self.waiting:
            self.send(self.waiting.popleft())
            return True
        return False

    def reset(self) -> None:
        """A new link (or none): nothing in flight, nothing waiting."""
        self.in_flight = False
        self.waiting.clear()

    def next_event(self) -> GattOutput | None:
        return self.to_link.popleft() if self.to_link else None


def pack(
    records: deque[MeasurementRecord] | list[MeasurementRecord], mtu: int, e2e_crc: bool
) -> list[MeasurementRecord]:
    """Take from ``records`` as many as fit one notification (never split a record)."""
    room = mtu - ATT_NOTIFICATION_OVERHEAD
    batch: list[MeasurementRecord] = []
    while records:
        size = measurement.record_size(records[0], e2e_crc)
        if batch and size > room:
            break
        batch.append(records.popleft() if isinstance(records, deque) else records.pop(0))
        room -= size
    return batch
