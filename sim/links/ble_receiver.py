"""The receiver core as a GATT client on the bumble BLE host stack.

An adapter (shared/design/architecture.md, Links), the counterpart of ``sim.links.ble``, on
``sim.links.gatt_client.CollectorLink`` (the connection cycle, one request at a time, the core's
timer): it connects to the transmitter by address, pairs with the passkey (or re-encrypts with
the bonded key on a reconnection), discovers the CGM service, and turns the core's requests into
ATT operations: ``ReadRequest`` -> read (value or ATT error code), ``WriteRequest`` -> write with
response, ``SubscribeRequest`` -> CCCD write, with notifications and indications routed back into
the core. A link lost is reported to the core as ``link lost (HCI 0xNN)``. The adapter decides
nothing about CGMS.

Security (``CollectorLink``): before pairing it reads the CGM Feature on the unencrypted link and
refuses a sensor that answers; after pairing it refuses keys that are not authenticated LE
Secure Connections (Just Works, legacy), and forgets them. A stored bond that is not
authenticated SC (an older version's) is forgotten and the sensor paired again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from bumble import att
from bumble.core import BaseBumbleError, ProtocolError
from bumble.device import Connection, Device, Peer
from bumble.gatt import GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR, Address
from bumble.keys import PairingKeys
from bumble.pairing import PairingConfig
from bumble.smp import SMP_CONFIRM_VALUE_FAILED_ERROR

from firmware.receiver.collector import ReadRequest, SubscribeRequest, WriteRequest
from firmware.receiver.receiver import RECONNECT_MS, Receiver
from protocol.cgms import gatt
from sim.links.ble import receiver_pairing, uuid16
from sim.links.core_timer import Schedule
from sim.links.gatt_client import (
    CollectorLink,
    PairingRefused,
    Request,
)
from sim.links.keystore import describe, secure_keys

__all__ = ["BleReceiver", "PairingRefused", "bonding_pairing"]

logger = logging.getLogger(__name__)

REQUESTED_MTU = 185


class BleReceiver(CollectorLink):
    """Drives ``receiver`` over ``device`` towards the transmitter at ``address``."""

    link_errors = (BaseBumbleError, TimeoutError)

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
        on_lost: Callable[[], None] | None = None,
        reconnect_delay_ms: int = RECONNECT_MS,
        schedule_timer: Schedule | None = None,
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
        self.device, self.address = device, address
        self.peer: Peer | None = None
        self.characteristics: dict[int, CharacteristicProxy[bytes]] = {}
        device.pairing_config_factory = lambda connection: bonding_pairing(passkey)

    async def _connect(self) -> Connection:
        connection = await self.device.connect(self.address)
        self._link = connection
        connection.on(
            connection.EVENT_DISCONNECTION,
            lambda reason: self._lost(connection, f"link lost (HCI 0x{reason:02X})"),
        )
        peer = Peer(connection)
        with contextlib.suppress(att.ATT_Error):
            await peer.request_mtu(REQUESTED_MTU)
        service = uuid16(gatt.CGM_SERVICE)
        await peer.discover_service(service)  # in clear: discovery needs no security
        for found in peer.get_services_by_uuid(service):
            await found.discover_characteristics()
        characteristics: dict[int, CharacteristicProxy[bytes]] = {}
        for char in gatt.CHARACTERISTICS:
            proxies = peer.get_characteristics_by_uuid(uuid16(char.uuid), service)
            if proxies:
                characteristics[char.uuid] = proxies[0]
        await self._secure(connection, peer, characteristics.get(gatt.FEATURE.uuid))
        # The sensor's identity address once paired (or resolved): its resolvable private
        # address changes, so reconnections go by identity, which bumble resolves by scanning.
        self.address = connection.peer_address
        self.peer, self.characteristics = peer, characteristics
        return connection

    async def _secure(
        self, connection: Connection, peer: Peer, feature: CharacteristicProxy[bytes] | None
    ) -> None:
        """Re-encrypt with the bonded key when there is one (an authenticated SC bond), else
        check that the sensor keeps its CGM Feature from an unencrypted link and pair with the
        passkey, keeping the bond only if it is authenticated LE Secure Connections."""
        keystore = self.device.keystore
        name = str(connection.peer_address)
        bond = await keystore.get(name) if keystore is not None else None
        if bond is not None and not secure_keys(bond) and not self.insecure:
            logger.warning("bond with %s is %s: forgotten, pairing again", name, describe(bond))
            await keystore.delete(name)  # type: ignore[union-attr]
            bond = None
        if bond is not None:
            try:
                await connection.encrypt()
                return
            except (BaseBumbleError, att.ATT_Error) as error:
                logger.warning("re-encryption failed (%s): pairing again", error)
        if feature is not None and await _reads_in_clear(peer, feature):
            self._refuse(self.address, "open")
            return  # insecure: it needs no pairing to be read
        paired: list[PairingKeys] = []
        connection.on(connection.EVENT_PAIRING, paired.append)
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
        finally:
            connection.remove_listener(connection.EVENT_PAIRING, paired.append)
        self.pairings += 1
        keys = paired[-1] if paired else None
        if keys is None or not secure_keys(keys):
            kind = "just-works" if keys is None else describe(keys)
            if not self.insecure and keystore is not None:
                with contextlib.suppress(KeyError):  # bumble's JsonKeyStore, if never stored
                    await keystore.delete(str(connection.peer_address))  # the identity address
            self._refuse(self.address, kind)

    async def _end_link(self, connection: Connection) -> None:
        if connection.handle in self.device.connections:
            await connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)

    async def _execute(
        self, connection: Connection, request: Request
    ) -> tuple[bytes | None, int | None]:
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


async def _reads_in_clear(peer: Peer, feature: CharacteristicProxy[bytes]) -> bool:
    """Whether the sensor answers a read of its CGM Feature on this unencrypted link."""
    try:
        await peer.read_value(feature)
    except att.ATT_Error:
        return False
    return True


def bonding_pairing(passkey: int) -> PairingConfig:
    """``receiver_pairing`` with the random (static) address as identity: the one this device
    connects from, so the transmitter finds the bond under it and re-encryption works."""
    config = receiver_pairing(passkey)
    config.identity_address_type = PairingConfig.AddressType.RANDOM
    return config
