"""A bleak backend over a bumble ``Device``: the receiver's bleak code, run on bumble's host stack.

``BleakScanner(backend=BumbleScanner, bumble_device=device)`` scans with the bumble device and
``BleakClient(ble_device, backend=BumbleClient, bumble_device=device, pairing=config)`` connects,
pairs (with the given bumble ``PairingConfig``), discovers, reads, writes and subscribes (to
notifications or indications). ATT error responses become ``BleakGATTProtocolError``, failed
pairing a ``BleakError`` (shared/spec/ble-stack.md, "bleak").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import att
from bumble.core import UUID, AdvertisingData, ProtocolError
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address
from bumble.keys import PairingKeys
from bumble.pairing import PairingConfig

logger = logging.getLogger(__name__)
_TYPE = AdvertisingData.Type
_UUID_LISTS = [t for t in _TYPE if "_SERVICE_CLASS_UUIDS" in t.name]
_SERVICE_DATA = [t for t in _TYPE if t.name.startswith("SERVICE_DATA_")]


def _property_names(properties: Characteristic.Properties) -> list[CharacteristicPropertyName]:
    """bumble's flags as bleak's names ("write-without-response", ...)."""
    names = [p.name.lower().replace("_", "-") for p in Characteristic.Properties if p & properties]
    return cast(list[CharacteristicPropertyName], names)


def bleak_uuid(value: UUID) -> str:
    """bumble's UUID as bleak's lower-case 128-bit string."""
    return str(uuidlib.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


@dataclass(frozen=True, slots=True)
class LinkSecurity:
    """A link's security as the bumble backend sees it (``BumbleClient.link_security``)."""

    encrypted: bool
    keys: PairingKeys | None  # the keys it is encrypted with, if known


async def link_security(client: Any) -> LinkSecurity | None:
    """The security of a ``BleakClient``'s link when its backend can tell (``BumbleClient``
    does); ``None`` for any other backend: bleak's API has no way to ask."""
    backend = getattr(client, "_backend", None)  # bleak keeps its backend there
    ask = getattr(backend, "link_security", None)
    return await ask() if ask is not None else None


class BumbleScanner(BaseBleakScanner):
    """Scans with ``bumble_device`` (already powered on); ``BLEDevice.details`` is the address."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bumble_device: Device,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._device, self._active = bumble_device, scanning_mode == "active"

    async def start(self) -> None:
        self.seen_devices = {}
        self._device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._device.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        self._device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        if self._device.is_scanning:
            await self._device.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        """One advertising report (or scan response), merged with what the address sent before."""
        data, key = advertisement.data, str(advertisement.address)
        previous = self.seen_devices.get(key)
        old = previous[1] if previous is not None else None
        uuids = list(old.service_uuids) if old else []
        for kind in _UUID_LISTS:
            for found in data.get_all(kind):
                uuids += [u for u in map(bleak_uuid, found) if u not in uuids]  # type: ignore[arg-type]
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
            AdvertisingData.SHORTENED_LOCAL_NAME
        )
        manufacturer = dict(old.manufacturer_data) if old else {}
        manufacturer.update(data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA))
        service_data = dict(old.service_data) if old else {}
        for kind in _SERVICE_DATA:
            for service, payload in data.get_all(kind):  # type: ignore[misc]
                service_data[bleak_uuid(service)] = bytes(payload)
        tx_power = data.get(AdvertisingData.TX_POWER_LEVEL)
        if not self.is_allowed_uuid(uuids):
            return
        adv = AdvertisementData(
            local_name=str(name) if name else (old.local_name if old else None),
            manufacturer_data=manufacturer,
            service_data=service_data,
            service_uuids=uuids,
            tx_power=tx_power if isinstance(tx_power, int) else None,
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
        device = self.create_or_update_device(key, key, adv.local_name, advertisement.address, adv)
        self.call_detection_callbacks(device, adv)


class BumbleClient(BaseBleakClient):
    """A GATT client on ``bumble_device``; ``pairing`` is the bumble ``PairingConfig`` used when
    pairing (the device's own factory if ``None``)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        bumble_device: Device,
        pairing: PairingConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._device, self._pairing = bumble_device, pairing
        details = getattr(address_or_ble_device, "details", None)
        self._peer_address = details if isinstance(details, Address) else Address(self.address)
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._disconnecting = False
        self._paired_keys: PairingKeys | None = None  # from a pairing on this connection

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def _require(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._pairing is not None:
            pairing = self._pairing
            self._device.pairing_config_factory = lambda connection: pairing
        try:
            connection = await self._device.connect(self._peer_address, timeout=self._timeout)
        except (ProtocolError, TimeoutError) as error:
            raise BleakError(f"could not connect to {self.address}: {error}") from error
        self._connection, self._peer, self._disconnecting = connection, Peer(connection), False
        self._paired_keys = None
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        connection.on(connection.EVENT_PAIRING, self._on_pairing)
        try:
            if pair:
                await self.pair()
            else:
                await self._encrypt_if_bonded(connection)
            await asyncio.wait_for(self._discover(), self._timeout)
        except BaseException:
            await self.disconnect()
            raise

    async def _encrypt_if_bonded(self, connection: Connection) -> None:
        """What a desktop stack does on its own: re-encrypt a link to a bonded device."""
        keystore = self._device.keystore
        if keystore is None or not await keystore.get(str(connection.peer_address)):
            return
        try:
            await asyncio.wait_for(connection.encrypt(), self._timeout)
        except (ProtocolError, TimeoutError) as error:  # a stale bond: the app pairs again
            logger.warning("re-encryption with %s failed: %s", self.address, error)

    async def _discover(self) -> None:
        peer = self._require()
        await peer.discover_all()
        services = BleakGATTServiceCollection()
        payload = lambda: self.mtu_size - 3  # noqa: E731 (bleak calls it when asked)
        for service in peer.services:
            ours = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
            services.add_service(ours)
            for char in service.characteristics:
                properties = _property_names(char.properties)
                bleak_char = BleakGATTCharacteristic(
                    char, char.handle, bleak_uuid(char.uuid), properties, payload, ours
                )
                services.add_characteristic(bleak_char)
                for descriptor in char.descriptors:
                    services.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, bleak_uuid(descriptor.type), bleak_char
                        )
                    )
        self.services = services

    def _on_pairing(self, keys: PairingKeys) -> None:
        self._paired_keys = keys

    async def link_security(self) -> LinkSecurity | None:
        """What bleak's API does not tell but this backend can: whether the link is encrypted,
        and the keys it is encrypted with (this connection's pairing, else the bond)."""
        connection = self._connection
        if connection is None or not connection.is_encrypted:
            return LinkSecurity(encrypted=False, keys=None)
        keys = self._paired_keys
        if keys is None and self._device.keystore is not None:
            keys = await self._device.keystore.get(str(connection.peer_address))
        return LinkSecurity(encrypted=True, keys=keys)

    def _on_disconnection(self, reason: int) -> None:
        self._connection = self._peer = None
        self.services = None
        self._subscribers.clear()
        if not self._disconnecting and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        if self._connection is None:
            return
        self._disconnecting = True
        try:
            await asyncio.wait_for(self._connection.disconnect(), self._timeout)
        except (ProtocolError, TimeoutError) as error:
            raise BleakError(f"disconnection failed: {error}") from error

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        try:
            await asyncio.wait_for(self._require().connection.pair(), self._timeout)
        except (ProtocolError, TimeoutError) as error:
            raise BleakError(f"pairing with {self.address} failed: {error}") from error

    async def unpair(self) -> None:
        if self._device.keystore is not None:
            with contextlib.suppress(KeyError):  # bumble's JsonKeyStore: no bond to delete
                await self._device.keystore.delete(str(self._peer_address))
        await self.disconnect()

    async def _gatt(self, work: Any) -> Any:
        try:
            return await asyncio.wait_for(work, self._timeout)
        except att.ATT_Error as error:  # an ATT error response: bleak's protocol error
            raise BleakGATTProtocolError(error.error_code) from error
        except (ProtocolError, TimeoutError) as error:
            raise BleakError(str(error) or type(error).__name__) from error

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require()
        return bytearray(await self._gatt(peer.read_value(characteristic.obj)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require()
        return bytearray(await self._gatt(peer.read_value(descriptor.obj)))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        peer = self._require()
        await self._gatt(peer.write_value(characteristic.obj, bytes(data), with_response=response))

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        peer = self._require()
        await self._gatt(peer.write_value(descriptor.obj, bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Notifications if the characteristic has them, else indications."""
        peer = self._require()
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        try:
            await self._gatt(peer.subscribe(proxy, subscriber, prefer_notify=True))
        except BleakError:
            client = peer.gatt_client  # bumble registers the subscriber before the CCCD write
            for table in (client.notification_subscribers, client.indication_subscribers):
                table.get(proxy.handle, set()).discard(subscriber)
            raise
        self._subscribers[characteristic.handle] = subscriber

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require()
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._gatt(peer.unsubscribe(characteristic.obj, subscriber))
