"""The receiver core through the ``bleak`` API: the code that talks to real sensors from a host
with a Bluetooth adapter (BlueZ, CoreBluetooth, WinRT), and in CI to our transmitter through
the bleak backend over bumble (``sim.links.bleak_bumble``).

An adapter, the bleak counterpart of ``sim.links.ble_receiver.BleReceiver``: the collector's
``ReadRequest`` / ``WriteRequest`` / ``SubscribeRequest`` become ``read_gatt_char`` /
``write_gatt_char`` (with response) / ``start_notify`` or ``stop_notify``, one at a time, and
what arrives goes back into the core. bleak does not tell a notification from an indication:
the characteristic's declared properties do (CGMS: Measurement notifies, RACP and SOCP
indicate). It decides nothing about CGMS.

Security: bleak has no "encrypt" call; a bonded host's stack re-encrypts on its own (so does our
bumble backend). The adapter reads the CGM Feature once the link is up: if that is refused for
want of encryption or authentication, it pairs (``BleakClient.pair``; on a desktop the OS's
pairing agent asks for the passkey) and goes on. A pairing refused for a wrong passkey ends
``run()`` with ``PairingRefused``; any other failure is retried after ``reconnect_delay_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError, BleakGATTProtocolError

from firmware.receiver.collector import (
    DisconnectRequest,
    ReadRequest,
    SubscribeRequest,
    WriteRequest,
)
from firmware.receiver.receiver import Receiver
from protocol.cgms import gatt
from sim.links.ble_receiver import RECONNECT_MS, CoreTimer, PairingRefused

logger = logging.getLogger(__name__)

Request = ReadRequest | WriteRequest | SubscribeRequest
ClientFactory = Callable[[Callable[[BleakClient], None]], BleakClient]
_NEEDS_PAIRING = {0x05, 0x08, 0x0C, 0x0F}  # insufficient authentication/authorization/key/enc.
_INDICATE_ONLY = {
    c.uuid
    for c in gatt.CHARACTERISTICS
    if gatt.Property.INDICATE in c.properties and gatt.Property.NOTIFY not in c.properties
}


def bleak_client_factory(
    device: Any, address: Any, passkey: int, timeout_s: float = 10.0
) -> ClientFactory:
    """Clients of the bleak backend over bumble (``sim.links.bleak_bumble``) on ``device``,
    towards the bumble ``address``, pairing with ``passkey`` when asked."""
    from bleak.backends.device import BLEDevice

    from sim.links.ble_receiver import bonding_pairing
    from sim.links.bleak_bumble import BumbleClient

    target = BLEDevice(str(address), None, details=address)

    def make(disconnected: Callable[[BleakClient], None]) -> BleakClient:
        return BleakClient(
            target,
            disconnected_callback=disconnected,
            timeout=timeout_s,
            backend=BumbleClient,
            bumble_device=device,
            pairing=bonding_pairing(passkey),
        )

    return make


def bleak_uuid(uuid16: int) -> str:
    return f"0000{uuid16:04x}-0000-1000-8000-00805f9b34fb"


class BleakReceiver:
    """Drives ``receiver`` through bleak clients made by ``make_client(disconnected_callback)``
    (which fixes the target and the backend). ``await run()`` keeps it connected until
    ``stop()``; the same attributes and hooks as ``BleReceiver``."""

    def __init__(
        self,
        receiver: Receiver,
        make_client: ClientFactory,
        now_ms: Callable[[], int],
        to_loop: Callable[[int], float],
        *,
        on_event: Callable[[object], None] | None = None,
        on_established: Callable[[], None] | None = None,
        reconnect_delay_ms: int = RECONNECT_MS,
        timer_lag_s: float = 0.0,
    ) -> None:
        self.receiver, self.make_client = receiver, make_client
        self.now_ms, self.to_loop = now_ms, to_loop
        self.on_event = on_event or (lambda event: None)
        self.on_established = on_established
        self.reconnect_delay_ms = reconnect_delay_ms
        self.timer = CoreTimer(receiver.get_timer, self._on_timer, to_loop, timer_lag_s)
        self.client: BleakClient | None = None
        self.characteristics: dict[int, BleakGATTCharacteristic] = {}
        self.connections = 0
        self.pairings = 0
        self.hold_until_ms: int | None = None
        self._established = False
        self._requests: deque[Request] = deque()
        self._held: deque[tuple[bool, int, bytes]] = deque()
        self._in_flight = False
        self._wakeup = asyncio.Event()
        self._gone = asyncio.Event()
        self._running = False
        self._wanted_reason: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- the connection cycle ---

    async def run(self) -> None:
        """Connect (not before ``hold_until_ms``), and again after each link loss."""
        self._running = True
        delay = 0
        while self._running:
            if self.hold_until_ms is not None:
                delay = max(delay, self.hold_until_ms - self.now_ms())
            await asyncio.sleep(max(delay, 0) / 1000)
            if not self._running:
                break
            delay = self.reconnect_delay_ms
            try:
                await self._establish()
            except PairingRefused:
                self.stop()
                await self._drop()
                raise
            except (BleakError, TimeoutError, OSError) as error:
                logger.warning("connection failed: %s", error)
                await self._drop()
                continue
            await self._gone.wait()

    def stop(self) -> None:
        self._running = False
        self.timer.cancel()
        for task in list(self._tasks):
            task.cancel()

    async def close(self, reason: str) -> None:
        """Stop, and end the link with ``reason`` (the core hears it as its disconnection)."""
        self.stop()
        await self._disconnect(reason)

    async def _establish(self) -> None:
        self._gone.clear()
        client = self.make_client(self._on_disconnection)
        self.client = client
        await client.connect()
        await self._secure(client)
        characteristics = {}
        for char in gatt.CHARACTERISTICS:
            found = client.services.get_characteristic(bleak_uuid(char.uuid))
            if found is not None:
                characteristics[char.uuid] = found
        if self.client is not client or not client.is_connected:
            raise BleakError("link lost while setting up")
        self.characteristics, self._established = characteristics, True
        self.connections += 1
        if self.on_established is not None:
            self.on_established()
        self._spawn(self._worker(client))
        self.receiver.connected(self.now_ms())
        self.drain()

    async def _secure(self, client: BleakClient) -> None:
        """Pair if the sensor refuses to talk to an unencrypted (or unbonded) link."""
        try:
            await client.read_gatt_char(bleak_uuid(gatt.FEATURE.uuid))
            return  # already encrypted: bonded
        except BleakGATTProtocolError as error:
            if int(error.args[0]) not in _NEEDS_PAIRING:
                raise
        try:
            await client.pair()
        except BleakError as error:
            if "CONFIRM_VALUE_FAILED" in str(error):
                raise PairingRefused(
                    f"pairing with {client.address} failed: wrong passkey (CONFIRM_VALUE_FAILED)"
                ) from None
            raise
        self.pairings += 1

    async def _drop(self) -> None:
        client, self.client = self.client, None
        self._established = False
        if client is not None and client.is_connected:
            with contextlib.suppress(BleakError, TimeoutError):
                await client.disconnect()

    def _on_disconnection(self, client: BleakClient) -> None:
        if client is not self.client:
            return
        self.client, self.characteristics = None, {}
        established, self._established = self._established, False
        self._requests.clear()
        self._held.clear()
        self._in_flight = False
        for task in list(self._tasks):
            task.cancel()
        wanted, self._wanted_reason = self._wanted_reason, None
        if established:
            self.receiver.disconnected(self.now_ms(), wanted or "link lost")
            self.drain()
        self._gone.set()

    async def _disconnect(self, reason: str) -> None:
        client = self.client
        if client is None:
            return
        self._wanted_reason = reason
        with contextlib.suppress(BleakError, TimeoutError):
            await client.disconnect()
        # Some backends do not call back for a disconnection asked for: do what it would.
        if self.client is client:
            self._on_disconnection(client)

    # --- the core ---

    def drain(self) -> None:
        """Take what the core has to say: requests for the link, app events for the caller."""
        while (event := self.receiver.next_event()) is not None:
            match event:
                case ReadRequest() | WriteRequest() | SubscribeRequest():
                    if self._established:
                        self._requests.append(event)
                        self._wakeup.set()
                case DisconnectRequest(reason=reason):
                    self._spawn(self._disconnect(reason))
                case _:
                    self.on_event(event)
        if self._running:
            self.timer.arm()

    def _on_timer(self) -> None:
        self.receiver.handle_timer(self.now_ms())
        self.drain()

    def _value(self, uuid: int, value: bytes) -> None:
        indication = uuid in _INDICATE_ONLY
        if self._in_flight:  # after the answer to the request in flight
            self._held.append((indication, uuid, value))
            return
        self._deliver(indication, uuid, value)

    def _deliver(self, indication: bool, uuid: int, value: bytes) -> None:
        if indication:
            self.receiver.indication(uuid, value, self.now_ms())
        else:
            self.receiver.notification(uuid, value, self.now_ms())
        self.drain()

    async def _worker(self, client: BleakClient) -> None:
        while self.client is client:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._requests and self.client is client:
                request = self._requests.popleft()
                self._in_flight = True
                try:
                    value, error = await self._execute(client, request)
                except (BleakError, TimeoutError) as problem:
                    logger.warning("%s failed: %s", request, problem)
                    self._in_flight = False
                    await self._disconnect(f"{type(request).__name__}: {problem}")
                    return
                self._in_flight = False
                if self.client is not client:
                    return
                self.receiver.response(request.uuid, value, error, self.now_ms())
                self.drain()
                while self._held and not self._in_flight:
                    self._deliver(*self._held.popleft())

    async def _execute(
        self, client: BleakClient, request: Request
    ) -> tuple[bytes | None, int | None]:
        char = self.characteristics.get(request.uuid)
        if char is None:
            return None, 0x0A  # attribute not found
        try:
            match request:
                case ReadRequest():
                    return bytes(await client.read_gatt_char(char)), None
                case WriteRequest(value=value):
                    await client.write_gatt_char(char, value, response=True)
                case SubscribeRequest(uuid=uuid, notify=notify, indicate=indicate):
                    if notify or indicate:
                        await client.start_notify(
                            char, lambda _, data, u=uuid: self._value(u, bytes(data))
                        )
                    else:
                        await client.stop_notify(char)
        except BleakGATTProtocolError as error:
            return None, int(error.args[0])
        return None, None

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
