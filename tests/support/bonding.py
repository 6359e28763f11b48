"""A sensor-like peripheral keeping its bonds in a ``SecureKeyStore`` and centrals pairing with it,
over the in-process bumble stack: for the key store's tests (tests/sim/test_keystore.py,
tests/sim/test_bonds_command.py)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bumble.device import Device
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate

from sim.links.ble import in_process_device, transmitter_pairing
from sim.links.ble_receiver import bonding_pairing
from sim.links.keystore import SecureKeyStore, attach

PASSKEY = 123_456
SENSOR = "C0:CA:FE:00:00:01"
CENTRALS = ["F0:00:00:00:00:0A", "F0:00:00:00:00:0B", "F0:00:00:00:00:0C"]
TIMEOUT_S = 10.0  # virtual


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """A usual umask: files would be created 0644 and folders 0755 without care."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def just_works() -> PairingConfig:
    no_io = PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT)
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        delegate=no_io,
        identity_address_type=PairingConfig.AddressType.RANDOM,
    )


async def sensor_device(link: LocalLink, store: SecureKeyStore) -> Device:
    """A peripheral that pairs as the transmitter does (SC, passkey), bonds kept in ``store``."""
    device = in_process_device(link, "sensor", SENSOR)
    attach(device, store)
    device.pairing_config_factory = lambda connection: transmitter_pairing(PASSKEY)
    await device.power_on()
    await device.start_advertising(auto_restart=True)
    return device


async def visit(
    central: Device, sensor: Device, *, pair: bool, config: PairingConfig | None = None
) -> None:
    """``central`` connects to ``sensor``, pairs (or re-encrypts with its bond), leaves."""
    central.pairing_config_factory = lambda connection: config or bonding_pairing(PASSKEY)
    connection = await asyncio.wait_for(central.connect(sensor.random_address), TIMEOUT_S)
    await asyncio.wait_for(connection.pair() if pair else connection.encrypt(), TIMEOUT_S)
    await asyncio.wait_for(connection.disconnect(), TIMEOUT_S)


def stored_bonds(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()).get(SENSOR, {})
