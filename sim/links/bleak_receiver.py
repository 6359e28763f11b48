"""The receiver core through the ``bleak`` API: the code that talks to real sensors from a host
with a Bluetooth adapter (BlueZ, CoreBluetooth, WinRT), and in CI to our transmitter through
the bleak backend over bumble (``sim.links.bleak_bumble``).

An adapter on ``sim.links.gatt_client.CollectorLink`` (the connection cycle, one request at a
time, the core's timer), the bleak counterpart of ``sim.links.ble_receiver.BleReceiver``: the
collector's ``ReadRequest`` / ``WriteRequest`` / ``SubscribeRequest`` become ``read_gatt_char`` /
``write_gatt_char`` (with response) / ``start_notify`` or ``stop_notify``, and what arrives goes
back into the core. bleak does not tell a notification from an indication:
the characteristic's declared properties do (CGMS: Measurement notifies, RACP and SOCP
indicate). It decides nothing about CGMS.

Security: bleak has no "encrypt" call; a bonded host's stack re-encrypts on its own (so does our
bumble backend). The adapter reads the CGM Feature once the link is up: if that is refused for
want of encryption or authentication, it pairs (``BleakClient.pair``; on a desktop the OS's
pairing agent asks for the passkey) and goes on. A pairing refused for a wrong passkey ends
``run()`` with ``PairingRefused``; any other failure is retried after ``reconnect_delay_ms``.

bleak's API does not say whether a link is encrypted, nor how it was paired, so the sensor is
refused (``InsecureSensor``; ``insecure`` lets it through) on what can be known:

- On the bleak backend over bumble, the backend tells (``sim.links.bleak_bumble.link_security``):
  a Feature read before pairing on an unencrypted link is an open sensor; keys from a pairing
  that are not authenticated LE Secure Connections are refused and unpaired
  (``BleakClient.unpair``); a bond of that kind found on the link is unpaired and paired again.
- On the host's own stack (BlueZ, CoreBluetooth, WinRT) only the read before and after
  ``pair()`` is seen: a Feature read that succeeds before this receiver ever paired with the
  sensor (``host_bonds``) is refused as unverified (open, or bonded by someone else through
  the same stack: it cannot tell); after a bond, the stack encrypts the link on
  connection (BlueZ: bonded devices connect at security level medium) and the read succeeding
  is trusted. The pairing method (SC or legacy, passkey or Just Works) is the OS agent's: it
  cannot be checked from here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, MutableSet
from typing import Any

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError, BleakGATTProtocolError

from firmware.receiver.collector import ReadRequest, SubscribeRequest, WriteRequest
from firmware.receiver.receiver import RECONNECT_MS, Receiver
from protocol.cgms import gatt
from sim.links.bleak_bumble import link_security
from sim.links.core_timer import Schedule
from sim.links.gatt_client import CollectorLink, PairingRefused, Request
from sim.links.keystore import describe, secure_keys

logger = logging.getLogger(__name__)

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


class BleakReceiver(CollectorLink):
    """Drives ``receiver`` through bleak clients made by ``make_client(disconnected_callback)``
    (which fixes the target and the backend)."""

    link_errors = (BleakError, TimeoutError)

    def __init__(
        self,
        receiver: Receiver,
        make_client: ClientFactory,
        now_ms: Callable[[], int],
        to_loop: Callable[[int], float],
        *,
        on_event: Callable[[object], None] | None = None,
        on_established: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        reconnect_delay_ms: int = RECONNECT_MS,
        schedule_timer: Schedule | None = None,
        host_bonds: MutableSet[str] | None = None,
    ) -> None:
        super().__init__(
            receiver,
            now_ms,
            to_loop,
            on_event=on_event,
            on_established=on_established,
            on_lost=on_lost,
            reconnect_delay_ms=reconnect_delay_ms,
            schedule_timer=schedule_timer,
        )
        self.make_client = make_client
        # sensors this receiver paired with through the host's own stack (``HostBonds``)
        self.host_bonds: MutableSet[str] = set() if host_bonds is None else host_bonds
        self.characteristics: dict[int, BleakGATTCharacteristic] = {}

    async def _connect(self) -> BleakClient:
        client = self.make_client(lambda gone: self._lost(gone, "link lost"))
        self._link = client
        await client.connect()
        await self._secure(client)
        characteristics = {}
        for char in gatt.CHARACTERISTICS:
            found = client.services.get_characteristic(bleak_uuid(char.uuid))
            if found is not None:
                characteristics[char.uuid] = found
        self.characteristics = characteristics
        return client

    async def _secure(self, client: BleakClient) -> None:
        """Pair if the sensor refuses to talk to an unencrypted (or unbonded) link; refuse a
        sensor that talks on an unencrypted link, or pairs without authenticated LE Secure
        Connections (see the module docstring for what each backend lets us check)."""
        try:
            await client.read_gatt_char(bleak_uuid(gatt.FEATURE.uuid))
        except BleakGATTProtocolError as error:
            if int(error.args[0]) not in _NEEDS_PAIRING:
                raise
        else:
            await self._check_readable(client)
            return
        try:
            await client.pair()
        except BleakError as error:
            if "CONFIRM_VALUE_FAILED" in str(error):
                raise PairingRefused(
                    f"pairing with {client.address} failed: wrong passkey (CONFIRM_VALUE_FAILED)"
                ) from None
            raise
        self.pairings += 1
        security = await link_security(client)
        if security is None:  # the host's stack paired, with its agent: as it allows
            self.host_bonds.add(client.address)
            return
        keys = security.keys if security.encrypted else None
        if keys is None or not secure_keys(keys):
            if not self.insecure:
                with contextlib.suppress(BleakError, TimeoutError):
                    await client.unpair()  # forget the bond, and drop the link
            self._refuse(client.address, "just-works" if keys is None else describe(keys))

    async def _check_readable(self, client: BleakClient) -> None:
        """The CGM Feature was read before any pairing: fine on a link the stack encrypted
        with an authenticated SC bond; a sensor that serves it in clear is refused."""
        security = await link_security(client)
        if security is None:  # bleak cannot tell an encrypted link from an open one
            if client.address not in self.host_bonds:
                self._refuse(client.address, "unverified")
            return  # a bond this receiver made: the host's stack encrypts it on connection
        if not security.encrypted:
            self._refuse(client.address, "open")
        elif (keys := security.keys) is None or not secure_keys(keys):
            if self.insecure:
                self._refuse(client.address, "just-works" if keys is None else describe(keys))
                return
            logger.warning("bond with %s is not authenticated SC: forgotten", client.address)
            with contextlib.suppress(BleakError, TimeoutError):
                await client.unpair()
            raise ConnectionError("a bond without authenticated LE Secure Connections: pair again")

    async def _end_link(self, client: BleakClient) -> None:
        if client.is_connected:
            await client.disconnect()

    def _notified(self, uuid: int, value: bytes) -> None:
        self._value(uuid in _INDICATE_ONLY, uuid, value)

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
                            char, lambda _, data, u=uuid: self._notified(u, bytes(data))
                        )
                    else:
                        await client.stop_notify(char)
        except BleakGATTProtocolError as error:
            return None, int(error.args[0])
        return None, None
