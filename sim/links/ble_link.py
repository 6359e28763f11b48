"""The BLE link of a simulated session: both firmwares on the real bumble host stack.

Two bumble devices on virtual controllers joined by an in-process ``LossyLink``: the
transmitter core served by ``BleTransmitter`` (GATT server, passkey pairing, encryption), the
receiver core driven by ``BleReceiver`` (bumble) or ``BleakReceiver`` (the bleak API on its
bumble backend), with notifications dropped on the air at the session's loss ratio. All of it
runs on the virtual-time loop (``sim.virtual_loop``), so bumble's own timers (advertising,
connection, ATT and SMP timeouts) are loop timers and a day costs CPU time only.

It is a link of the session engine (``sim.session.engine.Link``): both cores' timers are kept
on the session's scheduler, so the engine orders them among the other events of an instant as
it does for the in-memory link, and the receiver connects when the link says, as the in-memory
link does: at the start, at the end of an outage, after a restart, and ``RECONNECT_MS`` after
a link loss (as an app does). Connecting, pairing or re-encrypting and discovering take loop
time (an advertising interval, the SMP and ATT exchanges) but no session time: the session
clock stands still meanwhile (``VirtualClock.freeze``), as the in-memory link connects in an
instant. So both links give the same readings, the same notifications to lose, the same alerts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from bumble.snoop import Snooper

from firmware.events import SensorSample
from firmware.receiver.receiver import Receiver
from firmware.transmitter.server import Transmitter
from sim.clock.scheduler import Priority, Scheduler, VirtualClock
from sim.links.ble import BleTransmitter, LossyLink, in_process_device
from sim.links.ble_receiver import BleReceiver
from sim.links.bleak_receiver import BleakReceiver, bleak_client_factory
from sim.links.core_timer import Cancellable, Schedule

PASSKEY = 123_456
RECEIVER_APIS = ("bumble", "bleak")


class BleLink:
    """Both cores over bumble (module docstring). ``open()`` powers the devices on and starts
    advertising; the engine then calls ``start``."""

    def __init__(
        self,
        transmitter: Transmitter,
        receiver: Receiver,
        scheduler: Scheduler,
        clock: VirtualClock,
        *,
        loss: float,
        rng: np.random.Generator,
        on_receiver_event: Callable[[object], None],
        receiver_api: str = "bumble",
        capture: Snooper | None = None,
    ) -> None:
        if receiver_api not in RECEIVER_APIS:
            raise ValueError(f"receiver_api is bumble or bleak, not {receiver_api!r}")
        self.scheduler, self.clock = scheduler, clock
        self.on_receiver_event = on_receiver_event
        self.receiver_api = receiver_api
        self.air = LossyLink(loss, rng)
        self.tx_device = in_process_device(self.air, "transmitter", "F0:F0:F0:F0:F0:F1")
        self.rx_device = in_process_device(self.air, "receiver", "F0:F0:F0:F0:F0:F0")
        if capture is not None:
            self.rx_device.host.snooper = capture
        self.tx = BleTransmitter(
            self.tx_device,
            transmitter,
            clock.now_ms,
            passkey=PASSKEY,
            name="cgmsim",
            schedule_timer=self._schedule(Priority.TRANSMITTER),
        )
        self.rx = self._receiver_adapter(receiver)
        self.out_of_range_until = 0  # no connection before then (an outage)
        self.connections = 0  # of the receivers that came before the current one
        self.pairings = 0

    def _schedule(self, priority: Priority) -> Schedule:
        def schedule(t_ms: int, callback: Callable[[], None]) -> Cancellable:
            return self.scheduler.call_at(t_ms, priority, callback)

        return schedule

    def _receiver_adapter(self, core: Receiver) -> BleReceiver | BleakReceiver:
        clock = self.clock
        common = dict(
            on_event=self.on_receiver_event,
            on_lost=self._on_lost,
            schedule_timer=self._schedule(Priority.RECEIVER),
        )
        if self.receiver_api == "bleak":
            factory = bleak_client_factory(self.rx_device, self.tx_device.random_address, PASSKEY)
            return BleakReceiver(core, factory, clock.now_ms, clock.to_loop, **common)
        return BleReceiver(
            self.rx_device,
            core,
            self.tx_device.random_address,
            clock.now_ms,
            clock.to_loop,
            passkey=PASSKEY,
            **common,
        )

    def _connect_at(self, t_ms: int) -> None:
        self.scheduler.call_at(t_ms, Priority.CONNECT, self._connect)

    async def _connect(self) -> None:
        """The receiver connects now, unless it is connected or the sensor is out of range; a
        failed attempt is tried again ``RECONNECT_MS`` later."""
        rx, now = self.rx, self.clock.now_ms()
        if rx.established or now < self.out_of_range_until:
            return
        self.clock.freeze()
        try:
            up = await rx.connect_once()
        finally:
            self.clock.thaw()
        if not up and rx is self.rx:
            self._connect_at(now + rx.reconnect_delay_ms)

    def _on_lost(self) -> None:
        now = self.clock.now_ms()
        self._connect_at(max(now + self.rx.reconnect_delay_ms, self.out_of_range_until))

    @property
    def receiver(self) -> Receiver:
        return self.rx.receiver

    @property
    def lost(self) -> int:
        return self.air.lost

    @property
    def sent(self) -> int:
        return self.tx.sent

    async def open(self) -> None:
        await self.tx_device.power_on()
        await self.rx_device.power_on()
        await self.tx.start()

    def start(self, connect_at_ms: int) -> None:
        self._connect_at(connect_at_ms)

    def sample(self, sample: SensorSample, t_ms: int) -> None:
        self.tx.sample(sample, t_ms)  # at the scheduler's now, out on the air

    async def out_of_range(self, until_ms: int) -> None:
        """The sensor goes out of range: the link drops and it stops advertising until
        ``until_ms``, when the receiver may connect again."""
        self.out_of_range_until = until_ms
        await self.tx.stop()
        if self.tx.connection is not None:
            await self.tx.connection.disconnect()
        self.scheduler.call_at(until_ms, Priority.FAULT, self.tx.start)
        self._connect_at(until_ms)

    async def restart_receiver(
        self, restarted: Callable[[Receiver], Receiver], connect_at_ms: int
    ) -> None:
        old = self.rx
        await old.close("receiver restart")
        self.connections += old.connections
        self.pairings += old.pairings
        self.rx = self._receiver_adapter(restarted(old.receiver))
        self._connect_at(connect_at_ms)

    def receiver_acted(self) -> None:
        self.rx.drain()

    async def close(self) -> None:
        self.rx.stop()
        if self.tx.timer is not None:
            self.tx.timer.cancel()
        await self.tx.stop()
        self.rx_device.host.snooper = None  # the caller closes the capture file after this

    def stats(self) -> dict[str, int]:
        """Connections made, pairings done and values sent over the air."""
        return {
            "connections": self.connections + self.rx.connections,
            "pairings": self.pairings + self.rx.pairings,
            "sent_over_air": self.tx.sent,
        }
