"""The receiver core as a GATT client on the bumble BLE host stack.

An adapter (shared/design/architecture.md, Links), the counterpart of ``sim.links.ble``: it
connects to the transmitter by address, pairs with the passkey (or re-encrypts with the bonded
key on a reconnection), discovers the CGM service, and then turns the core's requests into ATT
operations, one at a time as the collector expects: ``ReadRequest`` -> read (value or ATT error
code), ``WriteRequest`` -> write with response, ``SubscribeRequest`` -> CCCD write, with
notifications and indications routed back into the core; ``DisconnectRequest`` disconnects.
A value that arrives while a request is in flight is handed to the core after that request's
answer (as the in-memory link orders them). Link loss tells the core ``disconnected`` and the
adapter connects again after ``reconnect_delay_ms``. What the core says for the app
(``ReadingShown``, ``PhaseChanged``, ...) goes to ``on_event``. The adapter decides nothing
about CGMS.

Time comes from a callable (``now_ms``); the core's ``get_timer()`` is scheduled on the asyncio
loop with ``CoreTimer``, which works on the virtual-time loop (``sim.virtual_loop``) as on a
real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from bumble import att
from bumble.core import BaseBumbleError, ProtocolError
from bumble.device import Connection, Device, Peer
from bumble.gatt import GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR, Address
from bumble.pairing import PairingConfig
from bumble.smp import SMP_CONFIRM_VALUE_FAILED_ERROR

from firmware.receiver.collector import (
    DisconnectRequest,
    ReadRequest,
    SubscribeRequest,
    WriteRequest,
)
from firmware.receiver.receiver import Receiver
from protocol.cgms import gatt
from sim.links.ble import receiver_pairing, uuid16

logger = logging.getLogger(__name__)

RECONNECT_MS = 2_000  # after a disconnection, as the in-memory driver does
REQUESTED_MTU = 185
Request = ReadRequest | WriteRequest | SubscribeRequest


class PairingRefused(Exception):
    """The sensor refused pairing because the passkey did not match (SMP Confirm Value
    Failed): ``run()`` ends with it instead of trying again."""


class CoreTimer:
    """Keeps one ``loop.call_at`` armed at a core's ``get_timer()`` (ms on the ``now_ms``
    clock; ``to_loop`` turns such a time into loop seconds). Call ``arm()`` after every input
    into the core; ``fire()`` runs when the timer is due.

    ``lag_s`` fires that much loop time late, less than the clock's millisecond resolution: on
    a virtual loop, where traffic over the in-process link takes no loop time, what was sent at
    the same millisecond (a reading) arrives before the timer runs, as the in-memory driver
    orders it (pump first, then timers)."""

    def __init__(
        self,
        get_timer: Callable[[], int | None],
        fire: Callable[[], None],
        to_loop: Callable[[int], float],
        lag_s: float = 0.0,
    ) -> None:
        self.get_timer, self.fire, self.to_loop, self.lag_s = get_timer, fire, to_loop, lag_s
        self._when: int | None = None
        self._handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        when = self.get_timer()
        if when == self._when and (when is None or self._handle is not None):
            return
        self.cancel()
        if when is not None:
            self._when = when
            self._handle = asyncio.get_running_loop().call_at(
                self.to_loop(when) + self.lag_s, self._run
            )

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._when = None, None

    def _run(self) -> None:
        self._handle, self._when = None, None
        self.fire()
        self.arm()


class BleReceiver:
    """Drives ``receiver`` over ``device`` towards the transmitter at ``address``.

    ``await run()`` keeps it connected (reconnecting after link loss) until ``stop()``.
    ``on_established`` is called once the link is secured and discovered, just before the
    core hears ``connected`` (a driver can start its clock there).
    """

    def __init__(
        self,
        device: Device,
        receiver: Receiver,
        address: Address,
        now_ms: Callable[[], int],
        to_loop: Callable[[int], float],
        *,
        passkey: int,
        on_event: Callable[[object], None] | None = None,
        on_established: Callable[[], None] | None = None,
        reconnect_delay_ms: int = RECONNECT_MS,
        timer_lag_s: float = 0.0,
    ) -> None:
        self.device, self.receiver, self.address = device, receiver, address
        self.now_ms, self.to_loop = now_ms, to_loop
        self.on_event = on_event or (lambda event: None)
        self.on_established = on_established
        self.reconnect_delay_ms = reconnect_delay_ms
        self.timer = CoreTimer(receiver.get_timer, self._on_timer, to_loop, timer_lag_s)
        self.connection: Connection | None = None
        self.peer: Peer | None = None
        self.characteristics: dict[int, CharacteristicProxy[bytes]] = {}
        self.connections = 0
        self.pairings = 0
        self.hold_until_ms: int | None = None  # no reconnection before then (tests, outages)
        self._requests: deque[Request] = deque()
        self._held: deque[tuple[bool, int, bytes]] = deque()  # (indication?, uuid, value)
        self._in_flight = False
        self._wakeup = asyncio.Event()
        self._gone = asyncio.Event()
        self._running = False
        self._wanted_reason: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        device.pairing_config_factory = lambda connection: bonding_pairing(passkey)

    # --- the connection cycle ---

    async def run(self) -> None:
        """Connect (not before ``hold_until_ms``), and again after each link loss."""
        self._running = True
        delay = 0
        while self._running:
            if self.hold_until_ms is not None:
                delay = max(delay, self.hold_until_ms - self.now_ms())
            await self._sleep_ms(delay)
            if not self._running:
                break
            delay = self.reconnect_delay_ms
            try:
                await self._establish()
            except PairingRefused:
                self.stop()
                await self._drop()
                raise  # the same passkey would fail again: the caller must know
            except Exception as error:  # any failure: try again later
                logger.warning("connection to %s failed: %s", self.address, error)
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

    async def _sleep_ms(self, ms: int) -> None:
        await asyncio.sleep(max(ms, 0) / 1000)

    async def _establish(self) -> None:
        self._gone.clear()
        connection = await self.device.connect(self.address)
        self.connection = connection
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        await self._secure(connection)
        peer = Peer(connection)
        with contextlib.suppress(att.ATT_Error):
            await peer.request_mtu(REQUESTED_MTU)
        service = uuid16(gatt.CGM_SERVICE)
        await peer.discover_service(service)
        for found in peer.get_services_by_uuid(service):
            await found.discover_characteristics()
        characteristics: dict[int, CharacteristicProxy[bytes]] = {}
        for char in gatt.CHARACTERISTICS:
            proxies = peer.get_characteristics_by_uuid(uuid16(char.uuid), service)
            if proxies:
                characteristics[char.uuid] = proxies[0]
        if self.connection is not connection:  # lost while discovering
            raise ConnectionError("link lost while discovering")
        self.peer, self.characteristics = peer, characteristics
        self.connections += 1
        if self.on_established is not None:
            self.on_established()
        self._spawn(self._worker(connection))
        self.receiver.connected(self.now_ms())
        self.drain()

    async def _secure(self, connection: Connection) -> None:
        """Re-encrypt with the bonded key when there is one, else pair with the passkey."""
        keystore = self.device.keystore
        if keystore is not None and await keystore.get(str(connection.peer_address)):
            try:
                await connection.encrypt()
                return
            except (BaseBumbleError, att.ATT_Error) as error:
                logger.warning("re-encryption failed (%s): pairing again", error)
        try:
            await connection.pair()
        except ProtocolError as error:
            if (
                error.error_code == SMP_CONFIRM_VALUE_FAILED_ERROR
                and error.error_namespace == "smp"
            ):
                raise PairingRefused(
                    f"pairing with {self.address} failed: wrong passkey ({error.error_name})"
                ) from None
            raise
        self.pairings += 1

    async def _drop(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and connection.handle in self.device.connections:
            with contextlib.suppress(BaseBumbleError, TimeoutError):
                await connection.disconnect()

    def _on_disconnection(self, reason: int) -> None:
        if self.connection is None:
            return
        established = self.peer is not None
        self.connection, self.peer, self.characteristics = None, None, {}
        self._requests.clear()
        self._held.clear()
        self._in_flight = False
        for task in list(self._tasks):
            task.cancel()
        wanted, self._wanted_reason = self._wanted_reason, None
        if established:
            self.receiver.disconnected(self.now_ms(), wanted or f"link lost (HCI 0x{reason:02X})")
            self.drain()
        self._gone.set()

    async def _disconnect(self, reason: str) -> None:
        connection = self.connection
        if connection is None:
            return
        self._wanted_reason = reason
        with contextlib.suppress(BaseBumbleError, TimeoutError):
            await connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)

    # --- the core ---

    def drain(self) -> None:
        """Take what the core has to say: requests for the link, app events for the caller."""
        while (event := self.receiver.next_event()) is not None:
            match event:
                case ReadRequest() | WriteRequest() | SubscribeRequest():
                    if self.peer is not None:
                        self._requests.append(event)
                        self._wakeup.set()
                case DisconnectRequest(reason=reason):
                    self._spawn(self._disconnect(reason))
                case _:
                    self.on_event(event)
        if self._running:  # a closed receiver's core runs no more timers
            self.timer.arm()

    def _on_timer(self) -> None:
        self.receiver.handle_timer(self.now_ms())
        self.drain()

    def _value(self, indication: bool, uuid: int, value: bytes) -> None:
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

    async def _worker(self, connection: Connection) -> None:
        """The requests, one at a time, each answer into the core before the next."""
        while self.connection is connection:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._requests and self.connection is connection:
                request = self._requests.popleft()
                self._in_flight = True
                try:
                    value, error = await self._execute(request)
                except (BaseBumbleError, TimeoutError) as problem:
                    logger.warning("%s failed: %s", request, problem)
                    self._in_flight = False
                    await self._disconnect(f"{type(request).__name__}: {problem}")
                    return
                self._in_flight = False
                if self.connection is not connection:
                    return
                self.receiver.response(request.uuid, value, error, self.now_ms())
                self.drain()
                while self._held and not self._in_flight:
                    self._deliver(*self._held.popleft())

    async def _execute(self, request: Request) -> tuple[bytes | None, int | None]:
        peer = self.peer
        proxy = self.characteristics.get(request.uuid)
        if peer is None or proxy is None:
            return None, att.ErrorCode.ATTRIBUTE_NOT_FOUND
        try:
            match request:
                case ReadRequest():
                    return bytes(await peer.read_value(proxy)), None
                case WriteRequest(value=value):
                    await peer.write_value(proxy, value, with_response=True)
                case SubscribeRequest(uuid=uuid, notify=notify, indicate=indicate):
                    if notify or indicate:
                        await peer.subscribe(
                            proxy,
                            lambda value, u=uuid, i=not notify: self._value(i, u, bytes(value)),
                            prefer_notify=notify,
                        )
                    else:
                        await self._write_cccd(peer, proxy, b"\x00\x00")
        except att.ATT_Error as error:
            return None, int(error.error_code)
        return None, None

    @staticmethod
    async def _write_cccd(peer: Peer, proxy: CharacteristicProxy[bytes], value: bytes) -> None:
        await peer.discover_descriptors(proxy)
        cccd = proxy.get_descriptor(GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR)
        if cccd is None:
            raise att.ATT_Error(att.ErrorCode.ATTRIBUTE_NOT_FOUND)
        await peer.write_value(cccd, value, with_response=True)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def bonding_pairing(passkey: int) -> PairingConfig:
    """``receiver_pairing`` with the random (static) address as identity: the one this device
    connects from, so the transmitter finds the bond under it and re-encryption works."""
    config = receiver_pairing(passkey)
    config.identity_address_type = PairingConfig.AddressType.RANDOM
    return config
