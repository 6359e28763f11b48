"""The link ``hci:<transport>``: the session's transmitter on a real controller (a dongle, a
virtual controller on a pseudo-terminal), facing a receiver that is another device — ours in
another process, or the user's phone or receiver under test.

It is a link of the session engine (``sim.session.engine.Link``) with one side only: the engine
feeds the sensor's samples through it on a live clock (``sim.clock.live``), and the far side's
receiver is not a core here (``receiver`` is None), so it connects, pairs and backfills when it
wants; faults are whatever happens on the air. The transmitter's adapter is
``sim.links.ble.BleTransmitter``; this class only tells the engine's calls to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from bumble.core import BaseBumbleError

from firmware.events import SensorSample
from firmware.receiver.receiver import Receiver
from sim.links.ble import BleTransmitter

#: What a person watching is told (``on_line``): connections, pairings, disconnections.
Told = Callable[[str], None]


class HciTransmitterLink:
    """``tx`` (already built on its device) as the engine's link. ``on_line``: one line per
    connection, pairing or disconnection, with the collector's address."""

    receiver: Receiver | None = None  # the receiver is the device on the other side
    lost = 0  # nothing counts what the air loses: the far side's business

    def __init__(self, tx: BleTransmitter, on_line: Told | None = None) -> None:
        self.tx, self.on_line = tx, on_line
        self.connections = 0
        self.pairings = 0
        tx.device.on(tx.device.EVENT_CONNECTION, self._connected)

    def _tell(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(line)

    def _connected(self, connection: Any) -> None:
        self.connections += 1
        peer = connection.peer_address
        self._tell(f"collector {peer} connected")

        def paired(*_: Any) -> None:
            self.pairings += 1
            self._tell(f"paired with {peer}")

        def encrypted(*_: Any) -> None:
            if connection.is_encrypted:
                self._tell(f"link with {peer} encrypted")

        def gone(reason: Any) -> None:
            self._tell(f"collector {peer} disconnected (reason 0x{int(reason):02X})")

        connection.on(connection.EVENT_PAIRING, paired)
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, encrypted)
        connection.on(connection.EVENT_DISCONNECTION, gone)

    async def open(self) -> None:
        await self.tx.start()

    def start(self, connect_at_ms: int) -> None:
        """The far side connects when it wants: nothing to do."""

    def sample(self, sample: SensorSample, t_ms: int) -> None:
        """The sensor's sample of ``t_ms``: the record keeps that time even when the live
        loop comes to it late (a busy host), so the readings do not depend on ``--speed``."""
        self.tx.sample(sample, t_ms)

    def out_of_range(self, until_ms: int) -> None:
        raise NotImplementedError("an outage on a real controller is the air's, not a fault")

    def restart_receiver(
        self, restarted: Callable[[Receiver], Receiver], connect_at_ms: int
    ) -> None:
        raise NotImplementedError("the receiver is another device")

    def receiver_acted(self) -> None:
        """No receiver core here."""

    async def close(self) -> None:
        tx = self.tx
        if tx.timer is not None:
            tx.timer.cancel()
        await tx.stop()
        if tx.connection is not None:
            with contextlib.suppress(BaseBumbleError, TimeoutError):  # already gone
                await tx.connection.disconnect()

    def stats(self) -> dict[str, int]:
        return {
            "connections": self.connections,
            "pairings": self.pairings,
            "sent_over_air": self.tx.sent,
        }
