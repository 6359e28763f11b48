"""Issue 19 as it was found: ``cgmsim transmitter --passkey 123456`` in its own process on one of
bumble's virtual controllers on pseudo-terminals, and an attacker scripted here with bumble on
the other (the dongle's code path, as tests/sim/test_hil_serial.py runs it). Real time; every
wait is on an event with a timeout.

The attacker sees a resolvable private address (not the identity ``C0:CA:FE:00:00:01``); legacy
pairing, even with the right passkey, and Just Works are refused with Authentication
Requirements; a wrong passkey fails, and the next attempt at once meets Repeated Attempts; an
idle connection is dropped after the encryption deadline; no reading leaves the sensor.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from bumble import att
from bumble.core import ProtocolError
from bumble.device import Connection, Device, Peer
from bumble.hci import HCI_AUTHENTICATION_FAILURE_ERROR
from bumble.pairing import PairingConfig, PairingDelegate

from protocol.cgms import gatt
from sim.hil import _device, _open, scan_for_cgm
from sim.links.ble import EnterPasskey, uuid16
from sim.links.ble_receiver import bonding_pairing
from sim.links.ble_security import ENCRYPTION_DEADLINE_S
from tests.support.hil import _transmitter

pytestmark = pytest.mark.slow  # a separate process over virtual controllers, 10 s idle wait

PASSKEY = 123_456
TIMEOUT_S = 10.0
IDENTITY = "C0:CA:FE:00:00:01"  # the transmitter command's default --address

# SMP Pairing Failed reasons (Core Vol 3 Part H 3.5.5, Table 3.7)
AUTHENTICATION_REQUIREMENTS = 0x03
CONFIRM_VALUE_FAILED = 0x04
REPEATED_ATTEMPTS = 0x09
INSUFFICIENT_ENCRYPTION = 0x0F  # ATT (Core Vol 3 Part F 3.4.1.1)


async def _pair_fails(device: Device, connection: Connection, config: PairingConfig) -> int:
    device.pairing_config_factory = lambda c: config
    with pytest.raises(ProtocolError) as raised:
        await asyncio.wait_for(connection.pair(), TIMEOUT_S)
    return int(raised.value.error_code)


async def _attack(port: str) -> dict[str, object]:
    seen: dict[str, object] = {}
    async with await _open(port) as transport:
        device = _device("attacker", "E0:00:00:00:00:0A", transport, None)
        await device.power_on()
        address = await scan_for_cgm(device, TIMEOUT_S)
        seen["address"] = address
        connection = await asyncio.wait_for(device.connect(address), TIMEOUT_S)
        legacy = PairingConfig(sc=False, mitm=True, bonding=True, delegate=EnterPasskey(PASSKEY))
        seen["legacy"] = await _pair_fails(device, connection, legacy)
        just_works = PairingConfig(
            sc=True,
            mitm=False,
            bonding=True,
            delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
        )
        seen["just works"] = await _pair_fails(device, connection, just_works)
        peer = Peer(connection)
        await asyncio.wait_for(peer.discover_all(), TIMEOUT_S)
        (feature,) = peer.get_characteristics_by_uuid(uuid16(gatt.FEATURE.uuid))
        with pytest.raises(att.ATT_Error) as raised:
            await asyncio.wait_for(peer.read_value(feature), TIMEOUT_S)
        seen["read"] = raised.value.error_code
        guesses = [
            await _pair_fails(device, connection, bonding_pairing(PASSKEY + 1)),
            await _pair_fails(device, connection, bonding_pairing(PASSKEY + 2)),
        ]
        seen["guesses"] = guesses
        await asyncio.wait_for(connection.disconnect(), TIMEOUT_S)

        await asyncio.sleep(0.5)  # the sensor advertises again
        address = await scan_for_cgm(device, TIMEOUT_S)
        idle = await asyncio.wait_for(device.connect(address), TIMEOUT_S)
        gone: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        idle.once(idle.EVENT_DISCONNECTION, gone.set_result)
        seen["idle dropped"] = await asyncio.wait_for(gone, ENCRYPTION_DEADLINE_S + TIMEOUT_S)
    return seen


def test_attacks_on_the_transmitter_process(ptys, tmp_path: Path) -> None:
    tx_port, attacker_port = ptys
    tx = _transmitter(tx_port, tmp_path, "--passkey", f"{PASSKEY:06d}")
    try:
        seen = asyncio.run(_attack(attacker_port))
    finally:
        tx.send_signal(signal.SIGTERM)
        summary, _ = tx.communicate(timeout=60)
    address = seen["address"]
    assert address.is_resolvable and str(address) != IDENTITY  # type: ignore[attr-defined]
    assert seen["legacy"] == AUTHENTICATION_REQUIREMENTS  # Secure Connections Only
    assert seen["just works"] == AUTHENTICATION_REQUIREMENTS  # no MITM: refused
    assert seen["read"] == INSUFFICIENT_ENCRYPTION
    assert seen["guesses"] == [CONFIRM_VALUE_FAILED, REPEATED_ATTEMPTS]  # Core Vol 3 Part H 2.3.6
    assert seen["idle dropped"] == HCI_AUTHENTICATION_FAILURE_ERROR
    assert tx.returncode == 0
    assert json.loads(summary)["sent_over_air"] == 0  # nothing left the sensor
