"""A btsnoop capture stamped with session time, not the wall clock.

bumble's ``BtSnooper`` stamps each HCI packet with ``datetime.now()``; a simulated session runs
on virtual time, so its ten days would fit in the few seconds the run took. ``SessionSnooper``
writes the same btsnoop file (bumble's header, record layout and flags) but stamps each packet
with the session's calendar time: the wall clock at session time 0 (``clock_at_zero``, as in
summary.json) plus the session time in ms when the packet crossed the HCI. Wireshark and tshark
then show a capture that spans the session, packets at the session minute the receiver logged
them. Packets exchanged while session time stands still (connecting, pairing, discovery:
``VirtualClock.freeze``) share that instant's time stamp, in the order they were sent.

btsnoop time stamps are microseconds since midnight, 1 January of year 0 (AD), UTC
(bumble.snoop.BtSnooper.TIMESTAMP_DELTA is that count at 2000-01-01).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from typing import BinaryIO

from bumble.hci import HCI_COMMAND_PACKET, HCI_EVENT_PACKET
from bumble.snoop import BtSnooper, Snooper

_ONE_US = dt.timedelta(microseconds=1)
# btsnoop flags (bumble.snoop.BtSnooper): bit 0 the direction, bit 1 a command or an event
_COMMAND_OR_EVENT = 0x02


def btsnoop_timestamp(clock: dt.datetime) -> int:
    """The btsnoop time stamp (microseconds since 0 AD) of ``clock`` (no zone: UTC)."""
    if clock.tzinfo is None:
        clock = clock.replace(tzinfo=dt.UTC)
    return (clock - BtSnooper.TIMESTAMP_ANCHOR) // _ONE_US + BtSnooper.TIMESTAMP_DELTA


class SessionSnooper(BtSnooper):
    """bumble's btsnoop writer, each packet stamped ``clock_at_zero`` + ``now_ms()``."""

    def __init__(
        self, output: BinaryIO, now_ms: Callable[[], int], clock_at_zero: dt.datetime
    ) -> None:
        super().__init__(output)  # the btsnoop header
        self.now_ms = now_ms
        self.zero_us = btsnoop_timestamp(clock_at_zero)

    def snoop(self, hci_packet: bytes, direction: Snooper.Direction) -> None:
        flags = int(direction)
        if hci_packet[0] in (HCI_EVENT_PACKET, HCI_COMMAND_PACKET):
            flags |= _COMMAND_OR_EVENT
        timestamp = self.zero_us + self.now_ms() * 1000
        size = len(hci_packet)
        self.output.write(struct.pack(">IIIIQ", size, size, flags, 0, timestamp) + hci_packet)
