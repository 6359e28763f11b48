"""A raw GATT client's view of a CGM sensor over bumble: the CGMS characteristics and their
CCCDs found by discovery, and every notification and indication on them handed to one
callback whatever the CCCDs say. Shared by the clients that are not a receiver core: the rogue
client of the BLE fuzz target (``sim.fuzz.ble_transmitter``) and the conformance tester
(``sim.conformance``), which judge what a sensor does instead of acting on it."""

from __future__ import annotations

from collections.abc import Callable

from bumble.device import Peer
from bumble.gatt import GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy

from protocol.cgms import gatt
from sim.links.ble import uuid16

NOTIFYING = (gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid)


def cgms_attributes(
    peer: Peer,
) -> tuple[dict[int, CharacteristicProxy[bytes]], dict[int, DescriptorProxy | None]]:
    """After ``peer.discover_all()``: the CGMS characteristics found in the first CGM service,
    by UUID (absent ones left out), and the CCCD of each notifying one (None when it has
    none)."""
    service = uuid16(gatt.CGM_SERVICE)
    chars: dict[int, CharacteristicProxy[bytes]] = {}
    for char in gatt.CHARACTERISTICS:
        found = peer.get_characteristics_by_uuid(uuid16(char.uuid), service)
        if found:
            chars[char.uuid] = found[0]
    cccds = {
        uuid: chars[uuid].get_descriptor(GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR)
        for uuid in NOTIFYING
        if uuid in chars
    }
    return chars, cccds


def listen(
    peer: Peer,
    chars: dict[int, CharacteristicProxy[bytes]],
    on_value: Callable[[int, bytes, bool], None],
) -> None:
    """Call ``on_value(uuid, value, indication)`` for every notification and indication on
    the notifying characteristics, whatever their CCCDs say (bumble confirms indications)."""
    client = peer.gatt_client
    for uuid in NOTIFYING:
        char = chars.get(uuid)
        if char is None:
            continue
        client.notification_subscribers.setdefault(char.handle, set()).add(
            lambda value, u=uuid: on_value(u, bytes(value), False)
        )
        client.indication_subscribers.setdefault(char.handle, set()).add(
            lambda value, u=uuid: on_value(u, bytes(value), True)
        )
