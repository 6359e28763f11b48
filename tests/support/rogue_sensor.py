"""A rogue CGM sensor, as someone within radio range could run one: the genuine transmitter core
(``firmware.transmitter``) behind a GATT server of its own on a bumble device, sending 333 mg/dL,
with weak security of one of three kinds:

- ``just-works``: the CGM characteristics require encryption, but it pairs as NoInputNoOutput
  (Just Works: no passkey, no MITM protection);
- ``legacy``: it requires encryption and pairs with a passkey, but LE legacy pairing (no Secure
  Connections), "displaying" the receiver's default passkey;
- ``open``: no security at all: every characteristic and CCCD can be read and written in clear.

In process (``RogueSensor`` on an in-process device), or as a process on an HCI transport
(``python -m tests.support.rogue_sensor --transport T --kind K [--speed X]``: one line on stderr
once it advertises; on SIGTERM/SIGINT, a JSON line on stdout: connections, values sent, pairings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from bumble import att
from bumble.device import Connection, Device
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    Characteristic,
    CharacteristicValue,
    Descriptor,
    Service,
)
from bumble.hci import Address

from firmware.events import (
    Connected,
    Disconnected,
    Indicate,
    Notify,
    Read,
    Respond,
    SensorSample,
    SensorState,
    Sent,
    Subscribe,
    Write,
)
from firmware.profiles import G7
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt
from sim.conformance.scripted_sensor import ROGUE_KINDS, rogue_pairing
from sim.links.ble import advertising_data, uuid16

KINDS = ROGUE_KINDS
ROGUE_MGDL = 333.0
ROGUE_PASSKEY = 123_456  # the receiver's default: the legacy rogue "knows" it
ROGUE_ADDRESS = "C0:BA:D0:00:00:66"
SAMPLE_MS = 5 * 60_000
CAL = FactoryCalibration(770.0, 25_700.0)
_P = Characteristic.Properties
_PROPERTIES = {
    gatt.Property.READ: _P.READ,
    gatt.Property.WRITE: _P.WRITE,
    gatt.Property.NOTIFY: _P.NOTIFY,
    gatt.Property.INDICATE: _P.INDICATE,
}
_ENCRYPTED = (
    Characteristic.Permissions.READ_REQUIRES_ENCRYPTION
    | Characteristic.Permissions.WRITE_REQUIRES_ENCRYPTION
)
_OPEN = Characteristic.Permissions.READABLE | Characteristic.Permissions.WRITEABLE


def counts(mgdl: float) -> int:
    return round(mgdl * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)


class RogueSensor:
    """The transmitter core served on ``device`` with ``kind`` security; ``now_ms`` is the
    core's clock. ``start()`` advertises and samples 333 mg/dL every 5 minutes of core time
    (``to_loop``: core milliseconds to loop seconds)."""

    def __init__(
        self,
        device: Device,
        kind: str,
        now_ms: Callable[[], int],
        to_loop: Callable[[int], float],
        name: str = "rogue-cgm",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind is one of {KINDS}, not {kind!r}")
        self.device, self.kind, self.now_ms, self.to_loop, self.name = (
            device,
            kind,
            now_ms,
            to_loop,
            name,
        )
        self.core = Transmitter(TransmitterConfig(G7), CAL, 0)
        self.connection: Connection | None = None
        self.connections = self.pairings = self.sent = 0
        self.pairing_keys: list[Any] = []
        self.characteristics: dict[int, Characteristic[bytes]] = {}
        self._outgoing: deque[Notify | Indicate] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._answers: deque[Respond] = deque()
        self._handles: list[asyncio.TimerHandle] = []
        device.name = name
        device.pairing_config_factory = lambda connection: rogue_pairing(kind, ROGUE_PASSKEY)
        device.add_service(self._service())
        device.on(device.EVENT_CONNECTION, self._on_connection)

    def _service(self) -> Service:
        permissions = _OPEN if self.kind == "open" else _ENCRYPTED
        server = self.device.gatt_server
        for char in gatt.CHARACTERISTICS:
            properties = _P(0)
            for ours, theirs in _PROPERTIES.items():
                if ours in char.properties:
                    properties |= theirs
            value = CharacteristicValue(
                read=lambda connection, uuid=char.uuid: self._respond(Read(uuid)).value or b"",
                write=lambda connection, data, uuid=char.uuid: self._respond(
                    Write(uuid, bytes(data))
                ),
            )
            characteristic = Characteristic(uuid16(char.uuid), properties, permissions, value)
            if char.properties & (gatt.Property.NOTIFY | gatt.Property.INDICATE):

                def write_cccd(
                    bearer: Any, data: bytes, c: Characteristic[bytes] = characteristic, u: int = 0
                ) -> None:
                    flags = data[0] if data else 0
                    self._respond(Subscribe(u, notify=bool(flags & 1), indicate=bool(flags & 2)))
                    server.write_cccd(bearer, c, data)

                characteristic.descriptors = [
                    Descriptor(
                        GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                        permissions,
                        att.AttributeValueV2(
                            read=lambda bearer, c=characteristic: server.read_cccd(bearer, c),
                            write=lambda bearer, data, c=characteristic, u=char.uuid: write_cccd(
                                bearer, data, c, u
                            ),
                        ),
                    )
                ]
            self.characteristics[char.uuid] = characteristic
        return Service(uuid16(gatt.CGM_SERVICE), list(self.characteristics.values()))

    def _respond(self, request: Read | Write | Subscribe) -> Respond:
        self._answers.clear()
        self._feed(request)
        answer = self._answers.popleft()
        if answer.error is not None:
            raise att.ATT_Error(int(answer.error))
        return answer

    def _feed(self, event: Any = None) -> None:
        if event is not None:
            self.core.receive(event, self.now_ms())
        while (output := self.core.next_event()) is not None:
            if isinstance(output, Respond):
                self._answers.append(output)
            elif self.connection is not None:
                self._outgoing.append(output)
                self._wakeup.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        start_ms = self.now_ms()
        for k in range(1, 3000):  # ten days of samples, each at its core time
            at = start_ms + k * SAMPLE_MS
            self._handles.append(loop.call_at(self.to_loop(at), self._sample))
        await self._advertise()

    async def _advertise(self) -> None:
        await self.device.start_advertising(
            advertising_data=advertising_data(self.name),
            scan_response_data=advertising_data(self.name),
            advertising_interval_min=20,
            advertising_interval_max=20,
        )

    def stop(self) -> None:
        for handle in self._handles:
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()

    def _sample(self) -> None:
        self.core.sample(SensorSample(counts(ROGUE_MGDL), SensorState.OK), self.now_ms())
        self._feed()

    def _on_connection(self, connection: Connection) -> None:
        self.connection = connection
        self.connections += 1
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self._gone())
        connection.on(connection.EVENT_PAIRING, self._paired)
        self._feed(Connected(connection.att_mtu))
        self._spawn(self._send_loop(connection))

    def _paired(self, keys: Any) -> None:
        self.pairings += 1
        self.pairing_keys.append(keys)

    def _gone(self) -> None:
        self.connection = None
        self._outgoing.clear()
        self._feed(Disconnected())
        self._spawn(self._advertise())

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_loop(self, connection: Connection) -> None:
        while self.connection is connection:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._outgoing and self.connection is connection:
                output = self._outgoing.popleft()
                send = (
                    self.device.notify_subscriber
                    if isinstance(output, Notify)
                    else self.device.indicate_subscriber
                )
                try:
                    await send(connection, self.characteristics[output.uuid], output.value)
                except Exception:  # the link went: nothing more to send on it
                    return
                self.sent += 1
                self._feed(Sent())


async def _serve(transport_spec: str, kind: str, speed: float) -> dict[str, Any]:
    from bumble.transport import open_transport

    async with await open_transport(transport_spec) as transport:
        device = Device.with_hci("rogue", Address(ROGUE_ADDRESS), transport.source, transport.sink)
        await device.power_on()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        rogue = RogueSensor(
            device,
            kind,
            lambda: round((loop.time() - t0) * 1000 * speed),
            lambda ms: t0 + ms / 1000 / speed,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await rogue.start()
        print(f"rogue sensor ({kind}): advertising as {device.random_address}", file=sys.stderr)
        sys.stderr.flush()
        await stop.wait()
        rogue.stop()
        if rogue.connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(rogue.connection.disconnect(), 5)
        return {
            "kind": kind,
            "connections": rogue.connections,
            "pairings": rogue.pairings,
            "sent_over_air": rogue.sent,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", required=True)
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_serve(args.transport, args.kind, args.speed))))


if __name__ == "__main__":
    main()
