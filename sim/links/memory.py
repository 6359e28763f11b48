"""The in-memory link: transmitter and receiver cores in one process, no BLE stack.

Moves events between the two cores and decides nothing about the protocol. Faults are
injected here: notifications lost with a probability (the receiver sees a gap and asks again
with RACP), and the link taken down and up (outages, receiver restarts). Deterministic: loss
draws come from the generator it is given.

Given a session's ``Scheduler`` (``sim.clock.scheduler``), it is a link of the session engine
(``sim.session.engine.Link``): it keeps both cores' timers on the scheduler and connects again
``reconnect_delay_ms`` after a disconnection the receiver asked for, as a receiver app does.
Without one, its caller drives it (``connect``, ``pump``, the cores' timers).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from firmware.events import (
    Connected,
    Disconnected,
    Indicate,
    Notify,
    Read,
    Respond,
    SensorSample,
    Sent,
    Subscribe,
    Write,
)
from firmware.receiver.collector import (
    DisconnectRequest,
    ReadRequest,
    SubscribeRequest,
    WriteRequest,
)
from firmware.receiver.receiver import RECONNECT_MS, Receiver
from firmware.transmitter.server import Transmitter
from sim.clock.scheduler import Priority, Scheduler
from sim.links.core_timer import CoreTimer

DEFAULT_MTU = 185


class MemoryLink:
    def __init__(
        self,
        transmitter: Transmitter,
        receiver: Receiver,
        *,
        loss: float = 0.0,
        rng: np.random.Generator | None = None,
        mtu: int = DEFAULT_MTU,
        on_receiver_event: Callable[[object], None] | None = None,
        scheduler: Scheduler | None = None,
        reconnect_delay_ms: int = RECONNECT_MS,
    ) -> None:
        self.tx, self.rx = transmitter, receiver
        self.loss, self.rng, self.mtu = loss, rng or np.random.default_rng(0), mtu
        self.up = False
        self.lost = 0
        self.delivered = 0
        self.on_receiver_event = on_receiver_event or (lambda event: None)
        self.disconnect_wanted: str | None = None
        self.scheduler = scheduler
        self.reconnect_delay_ms = reconnect_delay_ms
        self.out_of_range_until = 0  # no connection before then (an outage)
        self._timers: tuple[CoreTimer, CoreTimer] | None = None
        if scheduler is not None:
            self._timers = (
                CoreTimer(
                    lambda: self.tx.get_timer(),
                    lambda: self._fire(self.tx.handle_timer),
                    lambda t, fire: scheduler.call_at(t, Priority.TRANSMITTER, fire),
                ),
                CoreTimer(
                    lambda: self.rx.get_timer(),
                    lambda: self._fire(self.rx.handle_timer),
                    lambda t, fire: scheduler.call_at(t, Priority.RECEIVER, fire),
                ),
            )

    def connect(self, now_ms: int) -> None:
        if self.up:
            return
        self.up = True
        self.tx.receive(Connected(self.mtu), now_ms)
        self.rx.connected(now_ms)
        self.pump(now_ms)

    def disconnect(self, now_ms: int, reason: str = "") -> None:
        if not self.up:
            return
        self.up = False
        self.tx.receive(Disconnected(), now_ms)
        self.rx.disconnected(now_ms, reason)
        self.pump(now_ms)

    def replace_receiver(self, receiver: Receiver) -> None:
        self.rx = receiver

    def pump(self, now_ms: int) -> None:
        """Move events both ways until both cores are quiet."""
        busy = True
        while busy:
            busy = False
            while (event := self.rx.next_event()) is not None:
                busy = True
                self._from_receiver(event, now_ms)
            while (event := self.tx.next_event()) is not None:
                busy = True
                self._from_transmitter(event, now_ms)
        if self.disconnect_wanted is not None:
            reason, self.disconnect_wanted = self.disconnect_wanted, None
            self.disconnect(now_ms, reason)
            self._connect_at(now_ms + self.reconnect_delay_ms)
        if self._timers is not None:
            for timer in self._timers:
                timer.arm()

    def _from_receiver(self, event: object, now_ms: int) -> None:
        match event:
            case ReadRequest(uuid=uuid) if self.up:
                self.tx.receive(Read(uuid), now_ms)
            case WriteRequest(uuid=uuid, value=value) if self.up:
                self.tx.receive(Write(uuid, value), now_ms)
            case SubscribeRequest(uuid=uuid, notify=notify, indicate=indicate) if self.up:
                self.tx.receive(Subscribe(uuid, notify, indicate), now_ms)
            case DisconnectRequest(reason=reason):
                self.disconnect_wanted = reason
            case ReadRequest() | WriteRequest() | SubscribeRequest():
                pass  # the link is down: the request is lost with it
            case _:
                self.on_receiver_event(event)

    def _from_transmitter(self, event: object, now_ms: int) -> None:
        if not self.up:
            return
        match event:
            case Respond(uuid=uuid, value=value, error=error):
                self.rx.response(uuid, value, None if error is None else int(error), now_ms)
            case Notify(uuid=uuid, value=value):
                if self.loss and self.rng.random() < self.loss:
                    self.lost += 1
                else:
                    self.delivered += 1
                    self.rx.notification(uuid, value, now_ms)
                self.tx.receive(Sent(), now_ms)
            case Indicate(uuid=uuid, value=value):
                self.rx.indication(uuid, value, now_ms)
                self.tx.receive(Sent(), now_ms)

    # --- as a link of the session engine (with a scheduler) ---

    @property
    def receiver(self) -> Receiver:
        return self.rx

    def _now(self) -> int:
        assert self.scheduler is not None, "MemoryLink: the engine API needs a scheduler"
        return self.scheduler.clock.now_ms()

    def _fire(self, handle_timer: Callable[[int], None]) -> None:
        now = self._now()
        handle_timer(now)
        self.pump(now)

    def _connect_at(self, t_ms: int) -> None:
        if self.scheduler is not None:
            self.scheduler.call_at(t_ms, Priority.CONNECT, self._connect_in_range)

    def _connect_in_range(self) -> None:
        now = self._now()
        if now >= self.out_of_range_until:
            self.connect(now)

    async def open(self) -> None:
        """Nothing to ready: the cores are wired directly."""

    def start(self, connect_at_ms: int) -> None:
        """The receiver connects at ``connect_at_ms``."""
        self._connect_at(connect_at_ms)

    def sample(self, sample: SensorSample, t_ms: int) -> None:
        """The transmitter takes the sensor's sample (now, ``t_ms``), and says what it has to."""
        self.tx.sample(sample, t_ms)
        self.pump(t_ms)

    def out_of_range(self, until_ms: int) -> None:
        """The sensor goes out of range now: the link drops, and comes back at ``until_ms``."""
        now = self._now()
        self.out_of_range_until = until_ms
        self.disconnect(now, "outage")
        self._connect_at(until_ms)

    def restart_receiver(
        self, restarted: Callable[[Receiver], Receiver], connect_at_ms: int
    ) -> None:
        """The receiver process restarts now: the link ends, the receiver comes back as
        ``restarted(old core)`` and connects at ``connect_at_ms``."""
        now = self._now()
        self.disconnect(now, "receiver restart")
        self.rx = restarted(self.rx)
        self.pump(now)
        self._connect_at(connect_at_ms)

    def receiver_acted(self) -> None:
        """The engine gave the receiver core an input (the user pressed): move what follows."""
        self.pump(self._now())

    async def close(self) -> None:
        """The session is over: nothing more runs."""
        if self._timers is not None:
            for timer in self._timers:
                timer.cancel()

    def stats(self) -> dict[str, int]:
        return {"delivered": self.delivered, "lost": self.lost}
