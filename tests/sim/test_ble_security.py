"""The transmitter's GATT server on bumble: encryption, passkey pairing, CCCDs, notifications.

Two in-process bumble devices on a ``LocalLink``: the transmitter adapter (``sim.links.ble``)
and a tiny GATT client written here. Real time, short timeouts; every wait is on a future.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from bumble import att
from bumble.core import ProtocolError
from bumble.device import Connection, Device, Peer
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    GATT_MANUFACTURER_NAME_STRING_CHARACTERISTIC,
)
from bumble.gatt_client import CharacteristicProxy
from bumble.keys import PairingKeys
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.smp import SMP_AUTHENTICATION_REQUIREMENTS_ERROR

from firmware.events import SensorSample
from firmware.profiles import G7, MINUTE_MS
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import attributes, gatt, measurement, racp
from protocol.cgms.attributes import FeatureFlags
from protocol.cgms.racp import RacpOpcode, RacpOperator
from sim.links.ble import (
    BleTransmitter,
    in_process_device,
    mitm_protected,
    receiver_pairing,
    uuid16,
)
from sim.links.ble_receiver import bonding_pairing

T = TypeVar("T")
PASSKEY = 123_456
CAL = FactoryCalibration(770.0, 25_700.0)
TIMEOUT_S = 2.0
AFTER_WARMUP_MS = G7.warmup_ms + 5 * MINUTE_MS


def counts(mgdl: float) -> int:
    return round(mgdl * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)


def _device(link: LocalLink, index: int) -> Device:
    return in_process_device(link, f"dev{index}", ":".join([f"E{index}"] * 6))


def _setter(future: asyncio.Future[T]) -> Callable[[T], None]:
    """A listener that resolves ``future`` once (and never raises if it timed out)."""

    def settle(value: T) -> None:
        if not future.done():
            future.set_result(value)

    return settle


@dataclass
class Rig:
    server: BleTransmitter
    client: Device
    connection: Connection
    peer: Peer
    clock: list[int]  # the core's now, in ms (virtual: set by the test)
    security_requests: list[int]  # the AuthReq of each SM Security Request the sensor sent

    def char(self, uuid: int) -> CharacteristicProxy[bytes]:
        (found,) = self.peer.get_characteristics_by_uuid(uuid16(uuid), uuid16(gatt.CGM_SERVICE))
        return found

    async def read(self, uuid: int) -> bytes:
        return bytes(await asyncio.wait_for(self.peer.read_value(self.char(uuid)), TIMEOUT_S))

    async def subscribe(self, uuid: int, *, indicate: bool = False) -> asyncio.Queue[bytes]:
        values: asyncio.Queue[bytes] = asyncio.Queue()
        await asyncio.wait_for(
            self.peer.subscribe(
                self.char(uuid),
                lambda value: values.put_nowait(bytes(value)),
                prefer_notify=not indicate,
            ),
            TIMEOUT_S,
        )
        return values

    async def pair(self, passkey: int) -> PairingKeys:
        self.client.pairing_config_factory = lambda connection: receiver_pairing(passkey)
        keys: asyncio.Future[PairingKeys] = asyncio.get_running_loop().create_future()
        self.connection.once(self.connection.EVENT_PAIRING, _setter(keys))
        await asyncio.wait_for(self.connection.pair(), TIMEOUT_S)
        return await asyncio.wait_for(keys, TIMEOUT_S)

    async def barrier(self) -> None:
        """A round trip on an open attribute: whatever the server sent before has arrived."""
        (manufacturer,) = self.peer.get_characteristics_by_uuid(
            GATT_MANUFACTURER_NAME_STRING_CHARACTERISTIC
        )
        assert await asyncio.wait_for(self.peer.read_value(manufacturer), TIMEOUT_S) == b"cgmsim"


def run(test: Callable[[Rig], Awaitable[None]]) -> None:
    async def main() -> None:
        link = LocalLink()
        tx_device, rx_device = _device(link, 1), _device(link, 0)
        clock = [0]
        core = Transmitter(TransmitterConfig(G7), CAL, 0)
        server = BleTransmitter(
            tx_device, core, lambda: clock[0], passkey=PASSKEY, name="cgmsim-test"
        )
        await tx_device.power_on()
        await rx_device.power_on()
        await server.start()
        requests: list[int] = []
        rx_device.on(
            rx_device.EVENT_CONNECTION,
            lambda made: made.on(made.EVENT_SECURITY_REQUEST, lambda auth: requests.append(auth)),
        )
        connection = await asyncio.wait_for(rx_device.connect(tx_device.random_address), TIMEOUT_S)
        peer = Peer(connection)
        await asyncio.wait_for(peer.discover_all(), TIMEOUT_S)
        rig = Rig(server, rx_device, connection, peer, clock, requests)
        try:
            await test(rig)
        finally:
            await server.stop()
            if rx_device.connections.get(rig.connection.handle) is rig.connection:
                await asyncio.wait_for(rig.connection.disconnect(), TIMEOUT_S)

    asyncio.run(main())


async def _expect_att_error(action: Awaitable[object], code: int) -> None:
    with pytest.raises(att.ATT_Error) as raised:
        await asyncio.wait_for(action, TIMEOUT_S)
    assert raised.value.error_code == code


def test_unpaired_read_fails_with_insufficient_encryption() -> None:
    async def body(rig: Rig) -> None:
        assert not rig.connection.is_encrypted
        for uuid in (gatt.FEATURE.uuid, gatt.STATUS.uuid, gatt.SESSION_RUN_TIME.uuid):
            await _expect_att_error(rig.read(uuid), att.ErrorCode.INSUFFICIENT_ENCRYPTION)
        await rig.barrier()  # the Device Information service stays open

    run(body)


def test_the_sensor_asks_for_security_and_anyone_may_read_a_cccd() -> None:
    """CGMP §6.1: the sensor starts the SM Security Request procedure when a collector connects,
    asking to bond with MITM protection and Secure Connections (Core Vol 3 Part H 3.6.7, AuthReq:
    bonding 0b01, MITM bit 2, SC bit 3). Core Vol 3 Part G 3.3.3.3: a CCCD is readable without
    authentication (only writing may require it); unpaired, each reads as off."""

    async def body(rig: Rig) -> None:
        await rig.barrier()
        assert rig.security_requests == [0b0000_1101]
        for uuid in (gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid):
            cccd = rig.char(uuid).get_descriptor(
                GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
            )
            assert cccd is not None
            value = await asyncio.wait_for(rig.peer.read_value(cccd), TIMEOUT_S)
            assert bytes(value) == b"\x00\x00"

    run(body)


def test_unpaired_subscribe_fails_and_no_reading_leaks() -> None:
    async def body(rig: Rig) -> None:
        received: list[bytes] = []
        measurement_char = rig.char(gatt.MEASUREMENT.uuid)
        await _expect_att_error(
            rig.peer.subscribe(measurement_char, lambda value: received.append(bytes(value))),
            att.ErrorCode.INSUFFICIENT_ENCRYPTION,
        )
        racp_char = rig.char(gatt.RACP.uuid)
        await _expect_att_error(
            rig.peer.subscribe(racp_char, received.append, prefer_notify=False),
            att.ErrorCode.INSUFFICIENT_ENCRYPTION,
        )
        rig.clock[0] = AFTER_WARMUP_MS
        rig.server.sample(SensorSample(counts(120)))
        assert rig.server.core.store.count(RacpOperator.ALL_RECORDS, None) == 1
        await rig.barrier()
        assert received == []
        assert rig.server.sent == 0
        assert not rig.server.core.subscriptions

    run(body)


def test_paired_with_passkey_reads_and_receives_a_measurement() -> None:
    async def body(rig: Rig) -> None:
        keys = await rig.pair(PASSKEY)
        assert rig.connection.is_encrypted
        assert mitm_protected(keys)
        keystore = rig.server.device.keystore
        assert keystore is not None
        ((_, bonded),) = await keystore.get_all()  # bonded: the transmitter kept the keys
        assert mitm_protected(bonded)

        feature = attributes.decode_feature(await rig.read(gatt.FEATURE.uuid))
        assert feature.features & FeatureFlags.TREND_INFORMATION
        status = attributes.STATUS_CODEC.decode(await rig.read(gatt.STATUS.uuid), False)
        assert status.time_offset == 0

        notifications = await rig.subscribe(gatt.MEASUREMENT.uuid)
        rig.clock[0] = AFTER_WARMUP_MS
        rig.server.sample(SensorSample(counts(120)))
        (record,) = measurement.decode(await asyncio.wait_for(notifications.get(), TIMEOUT_S))
        assert record.glucose == pytest.approx(120, abs=1)
        assert record.time_offset == AFTER_WARMUP_MS // MINUTE_MS

    run(body)


def test_wrong_passkey_fails_pairing_and_reads_stay_closed() -> None:
    async def body(rig: Rig) -> None:
        with pytest.raises(ProtocolError) as raised:
            await rig.pair(PASSKEY + 1)
        assert "CONFIRM_VALUE_FAILED" in str(raised.value)
        assert not rig.connection.is_encrypted
        await _expect_att_error(rig.read(gatt.FEATURE.uuid), att.ErrorCode.INSUFFICIENT_ENCRYPTION)

    run(body)


def test_racp_indication_over_the_air() -> None:
    async def body(rig: Rig) -> None:
        await rig.pair(PASSKEY)
        await rig.subscribe(gatt.MEASUREMENT.uuid)
        indications = await rig.subscribe(gatt.RACP.uuid, indicate=True)
        rig.clock[0] = AFTER_WARMUP_MS
        rig.server.sample(SensorSample(counts(100)))
        request = racp.encode(
            racp.request(RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS)
        )
        await asyncio.wait_for(
            rig.peer.write_value(rig.char(gatt.RACP.uuid), request, with_response=True), TIMEOUT_S
        )
        answer = racp.decode(await asyncio.wait_for(indications.get(), TIMEOUT_S))
        assert answer.opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE
        assert answer.number_of_records == 1

    run(body)


def test_just_works_pairing_is_refused() -> None:
    """A client without a keyboard cannot get MITM-protected keys: its Pairing Request is
    answered Pairing Failed, Authentication Requirements (Core Vol 3 Part H 3.5.5: the
    resulting method, Just Works, cannot meet the sensor's MITM requirement), no key is made."""

    async def body(rig: Rig) -> None:
        rig.client.pairing_config_factory = lambda connection: PairingConfig(
            sc=True, mitm=False, bonding=True, delegate=PairingDelegate()
        )
        with pytest.raises(ProtocolError) as raised:
            await asyncio.wait_for(rig.connection.pair(), TIMEOUT_S)
        assert raised.value.error_code == SMP_AUTHENTICATION_REQUIREMENTS_ERROR
        assert not rig.connection.is_encrypted
        keystore = rig.server.device.keystore
        assert keystore is not None
        assert await keystore.get_all() == []  # no Just Works key to re-encrypt with later
        await _expect_att_error(rig.read(gatt.FEATURE.uuid), att.ErrorCode.INSUFFICIENT_ENCRYPTION)

    run(body)


def test_a_bonded_collectors_subscription_resumes_only_once_the_new_link_is_encrypted() -> None:
    """The core keeps a bonded collector's subscriptions across links (bumble's server forgets
    them): they apply again after re-encryption with the bond, and not before — a reconnected
    link that is not yet encrypted receives no reading."""

    async def body(rig: Rig) -> None:
        rig.client.pairing_config_factory = lambda connection: bonding_pairing(PASSKEY)
        await asyncio.wait_for(rig.connection.pair(), TIMEOUT_S)
        first = await rig.subscribe(gatt.MEASUREMENT.uuid)
        rig.clock[0] = AFTER_WARMUP_MS
        rig.server.sample(SensorSample(counts(120)))
        await rig.barrier()
        assert measurement.decode(first.get_nowait(), None)[0].glucose == 120.0

        await asyncio.wait_for(rig.connection.disconnect(), TIMEOUT_S)
        await asyncio.sleep(0.1)  # the transmitter advertises again
        server_address = rig.server.device.random_address
        connection = await asyncio.wait_for(rig.client.connect(server_address), TIMEOUT_S)
        peer = Peer(connection)
        await asyncio.wait_for(peer.discover_all(), TIMEOUT_S)
        rig.connection, rig.peer = connection, peer
        handle = rig.char(gatt.MEASUREMENT.uuid).handle
        heard: list[bytes] = []  # listening without writing the CCCD again
        peer.gatt_client.notification_subscribers.setdefault(handle, set()).add(
            lambda value: heard.append(bytes(value))
        )
        rig.clock[0] += 5 * MINUTE_MS
        rig.server.sample(SensorSample(counts(130)))
        await rig.barrier()
        assert heard == []  # not encrypted yet: nothing in clear

        await asyncio.wait_for(connection.encrypt(), TIMEOUT_S)
        await asyncio.sleep(0.05)
        rig.clock[0] += 5 * MINUTE_MS
        rig.server.sample(SensorSample(counts(140)))
        await rig.barrier()
        assert [measurement.decode(v, None)[0].glucose for v in heard] == [140.0]

    run(body)
