"""Produce a btsnoop capture of a CGM Service (0x181F) GATT session with real bumble.

Two bumble devices talk over bumble's in-process ``LocalLink`` (no hardware, no
sockets): a peripheral GATT server exposing the CGM service and a central GATT client.
The central's HCI traffic is written with ``bumble.snoop.BtSnooper`` so that an
independent decoder (tshark) can check the bytes.  The capture contains the full GATT
discovery, which is what lets tshark map handles to CGM characteristic UUIDs.

Order of the ATT traffic (deterministic): MTU exchange, discovery (services,
characteristics, descriptors), CCCD writes (0x2AA7 notify, 0x2A52 / 0x2AAC indicate),
``reads`` (in dict order; a characteristic given several values is read once per value, the
server changing the value in between), ``writes``, ``notifications``, ``indications``,
disconnect.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bumble.core import UUID
from bumble.device import Connection, Device, Peer
from bumble.gatt import Characteristic, Service
from bumble.gatt_client import CharacteristicProxy
from bumble.link import LocalLink
from bumble.snoop import BtSnooper

from protocol.cgms import gatt
from sim.links.ble import in_process_device

_P = Characteristic.Properties
_PERMS = Characteristic.Permissions
_PROPERTIES = {
    gatt.Property.READ: _P.READ,
    gatt.Property.WRITE: _P.WRITE,
    gatt.Property.NOTIFY: _P.NOTIFY,
    gatt.Property.INDICATE: _P.INDICATE,
}
_MEASUREMENT = gatt.MEASUREMENT.uuid
_CONTROL_POINTS = (gatt.RACP.uuid, gatt.SOCP.uuid)


def _bumble_properties(
    char: gatt.Characteristic,
) -> tuple[Characteristic.Properties, Characteristic.Permissions]:
    properties = _P(0)
    for ours, theirs in _PROPERTIES.items():
        if ours in char.properties:
            properties |= theirs
    # Unencrypted permissions: the in-process link does not pair (gatt.Characteristic.encrypted
    # is about the real sensor, not about what the capture needs).
    permissions = _PERMS(0)
    if char.properties & (gatt.Property.READ | gatt.Property.NOTIFY):
        permissions |= _PERMS.READABLE
    if gatt.Property.WRITE in char.properties:
        permissions |= _PERMS.WRITEABLE
    return properties, permissions


# uuid -> (properties, permissions), in the service's declaration order
_CHARACTERISTICS: dict[int, tuple[Characteristic.Properties, Characteristic.Permissions]] = {
    char.uuid: _bumble_properties(char) for char in gatt.CHARACTERISTICS
}
_SUBSCRIBED = tuple(
    char.uuid
    for char in gatt.CHARACTERISTICS
    if char.properties & (gatt.Property.NOTIFY | gatt.Property.INDICATE)
)
_ATT_MTU = 247


@dataclass(frozen=True)
class CaptureScript:
    """What happens on the air, in the order documented in the module docstring."""

    reads: dict[int, bytes | Sequence[bytes]] = field(default_factory=dict)
    notifications: list[bytes] = field(default_factory=list)
    writes: list[tuple[int, bytes]] = field(default_factory=list)
    indications: list[tuple[int, bytes]] = field(default_factory=list)


def _read_values(script: CaptureScript, uuid: int) -> list[bytes]:
    value = script.reads.get(uuid, ())
    return [bytes(value)] if isinstance(value, bytes | bytearray) else [bytes(v) for v in value]


def _uuid(value: int) -> UUID:
    return UUID.from_16_bits(value)


def _make_device(link: LocalLink, index: int) -> Device:
    return in_process_device(link, f"cgmsim-{index}", ":".join([f"F{index}"] * 6))


def _build_service(script: CaptureScript) -> dict[int, Characteristic[bytes]]:
    characteristics: dict[int, Characteristic[bytes]] = {}
    for uuid, (properties, permissions) in _CHARACTERISTICS.items():
        value = next(iter(_read_values(script, uuid)), b"")
        characteristics[uuid] = Characteristic(_uuid(uuid), properties, permissions, value)
    return characteristics


def _validate(script: CaptureScript) -> None:
    used = set(script.reads) | {u for u, _ in script.writes}
    if used - set(_CHARACTERISTICS):
        raise ValueError(
            f"not a CGM characteristic: {sorted(map(hex, used - set(_CHARACTERISTICS)))}"
        )
    if any(u not in _CONTROL_POINTS for u, _ in script.indications):
        raise ValueError("indications are only sent on RACP 0x2A52 and SOCP 0x2AAC")
    values = script.notifications + [v for _, v in script.indications]
    if any(len(v) > _ATT_MTU - 3 for v in values):
        raise ValueError(f"notified/indicated values are limited to {_ATT_MTU - 3} bytes")


async def _run(snooper: BtSnooper, script: CaptureScript) -> None:
    loop = asyncio.get_running_loop()
    link = LocalLink()
    central, peripheral = _make_device(link, 0), _make_device(link, 1)
    central.host.snooper = snooper

    server_chars = _build_service(script)
    peripheral.add_service(Service(_uuid(gatt.CGM_SERVICE), list(server_chars.values())))

    await central.power_on()
    await peripheral.power_on()
    server_side: asyncio.Future[Connection] = loop.create_future()
    peripheral.once(peripheral.EVENT_CONNECTION, server_side.set_result)
    await peripheral.start_advertising(
        advertising_interval_min=20, advertising_interval_max=20
    )  # ms, the BLE minimum
    connection = await central.connect(peripheral.random_address)
    server_connection = await server_side

    # Client: MTU exchange and full discovery.
    peer = Peer(connection)
    await peer.request_mtu(_ATT_MTU)
    await peer.discover_all()

    def client_char(uuid: int) -> CharacteristicProxy[bytes]:
        found = peer.get_characteristics_by_uuid(_uuid(uuid), _uuid(gatt.CGM_SERVICE))
        if len(found) != 1:
            raise RuntimeError(f"characteristic 0x{uuid:04X} not discovered")
        return found[0]

    # Subscriptions: collect what the client actually receives.
    expected = len(script.notifications) + len(script.indications)
    received: list[tuple[int, bytes]] = []
    all_received: asyncio.Future[None] = loop.create_future()

    def make_subscriber(uuid: int) -> Callable[[bytes], None]:
        def on_value(value: bytes) -> None:
            received.append((uuid, bytes(value)))
            if len(received) >= expected and not all_received.done():
                all_received.set_result(None)

        return on_value

    for uuid in _SUBSCRIBED:
        await peer.subscribe(client_char(uuid), make_subscriber(uuid))

    for uuid in script.reads:
        for expected_value in _read_values(script, uuid):
            server_chars[uuid].value = expected_value
            if await peer.read_value(client_char(uuid)) != expected_value:
                raise RuntimeError(f"read of 0x{uuid:04X} returned an unexpected value")
    for uuid, value in script.writes:
        await peer.write_value(client_char(uuid), value, with_response=True)

    # Server: notifications, then indications (each waits for its confirmation).
    for value in script.notifications:
        await peripheral.notify_subscriber(server_connection, server_chars[_MEASUREMENT], value)
    for uuid, value in script.indications:
        await peripheral.indicate_subscriber(server_connection, server_chars[uuid], value)

    if expected:
        await asyncio.wait_for(all_received, timeout=10.0)
    want = [(_MEASUREMENT, v) for v in script.notifications] + list(script.indications)
    if received != want:
        raise RuntimeError(f"client received {received!r}, expected {want!r}")

    server_gone: asyncio.Future[None] = loop.create_future()
    server_connection.once(
        server_connection.EVENT_DISCONNECTION, lambda *_: server_gone.set_result(None)
    )
    await connection.disconnect()
    await asyncio.wait_for(server_gone, timeout=10.0)


def write_capture(path: pathlib.Path, script: CaptureScript) -> None:
    """Run the scripted CGM GATT session and write it to ``path`` as btsnoop."""
    _validate(script)
    with pathlib.Path(path).open("wb") as output:
        asyncio.run(_run(BtSnooper(output), script))
