"""The in-memory link: transmitter and receiver cores in one process, no BLE stack.

Moves events between the two cores and decides nothing about the protocol. Faults are
injected here: notifications lost with a probability (the receiver sees a gap and asks again
with RACP), and the link taken down and up (outages, receiver restarts). Deterministic: loss
draws come from the generator it is given.
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
from firmware.receiver.receiver import Receiver
from firmware.transmitter.server import Transmitter

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
    ) -> None:
        self.tx, self.rx = transmitter, receiver
        self.loss, self.rng, self.mtu = loss, rng or np.random.default_rng(0), mtu
        self.up = False
        self.lost = 0
        self.delivered = 0
        self.on_receiver_event = on_receiver_event or (lambda event: None)
        self.disconnect_wanted: str | None = None

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
