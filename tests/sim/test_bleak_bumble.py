"""The bleak API over bumble (``sim.links.bleak_bumble``) against our transmitter's GATT server.

Two in-process bumble devices on a ``LocalLink``: ``BleTransmitter`` serving a ``Transmitter``
core, and a plain bleak ``BleakScanner`` / ``BleakClient`` on the other device. Real time,
short timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode
from bumble.device import Device
from bumble.link import LocalLink

from firmware.events import SensorSample
from firmware.profiles import G7, MINUTE_MS
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import attributes, measurement, racp
from protocol.cgms.attributes import FeatureFlags
from protocol.cgms.racp import RacpOpcode, RacpOperator
from sim.links.ble import BleTransmitter, in_process_device, receiver_pairing
from sim.links.bleak_bumble import BumbleClient, BumbleScanner

PASSKEY = 123_456
CAL = FactoryCalibration(770.0, 25_700.0)
TIMEOUT_S = 2.0
AFTER_WARMUP_MS = G7.warmup_ms + 5 * MINUTE_MS
CGM_SERVICE = "0000181f-0000-1000-8000-00805f9b34fb"
CGM_FEATURE = "00002aa8-0000-1000-8000-00805f9b34fb"
CGM_MEASUREMENT = "00002aa7-0000-1000-8000-00805f9b34fb"
RACP = "00002a52-0000-1000-8000-00805f9b34fb"


def counts(mgdl: float) -> int:
    return round(mgdl * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)


def _device(link: LocalLink, index: int) -> Device:
    return in_process_device(link, f"dev{index}", ":".join([f"E{index}"] * 6))


@dataclass
class Rig:
    server: BleTransmitter
    central: Device
    clock: list[int]

    async def find(self) -> BLEDevice:
        def is_sensor(device: BLEDevice, adv: AdvertisementData) -> bool:
            return CGM_SERVICE in adv.service_uuids

        found = await BleakScanner.find_device_by_filter(
            is_sensor, timeout=TIMEOUT_S, backend=BumbleScanner, bumble_device=self.central
        )
        assert found is not None
        return found


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
        try:
            await asyncio.wait_for(test(Rig(server, rx_device, clock)), 8.0)
        finally:
            await server.stop()

    asyncio.run(main())


def test_scan_reports_the_sensor_with_its_service_and_name() -> None:
    async def body(rig: Rig) -> None:
        seen = await BleakScanner.discover(
            timeout=0.3, return_adv=True, backend=BumbleScanner, bumble_device=rig.central
        )
        ((device, adv),) = [v for v in seen.values() if CGM_SERVICE in v[1].service_uuids]
        assert adv.local_name == "cgmsim-test"
        assert device.name == "cgmsim-test"

    run(body)


def test_paired_bleak_client_reads_feature_and_receives_a_measurement() -> None:
    async def body(rig: Rig) -> None:
        sensor = await rig.find()
        client = BleakClient(
            sensor,
            timeout=TIMEOUT_S,
            backend=BumbleClient,
            bumble_device=rig.central,
            pairing=receiver_pairing(PASSKEY),
        )
        async with client:
            await client.pair()
            assert client.mtu_size >= 23
            assert rig.server.connection is not None
            assert rig.server.connection.is_encrypted
            feature = attributes.decode_feature(bytes(await client.read_gatt_char(CGM_FEATURE)))
            assert feature.features & FeatureFlags.TREND_INFORMATION

            values: asyncio.Queue[bytes] = asyncio.Queue()

            def on_value(sender: BleakGATTCharacteristic, data: bytearray) -> None:
                assert sender.uuid == CGM_MEASUREMENT
                values.put_nowait(bytes(data))

            await client.start_notify(CGM_MEASUREMENT, on_value)
            rig.clock[0] = AFTER_WARMUP_MS
            rig.server.sample(SensorSample(counts(120)))
            (record,) = measurement.decode(await asyncio.wait_for(values.get(), TIMEOUT_S))
            assert record.glucose == pytest.approx(120, abs=1)
            assert record.time_offset == AFTER_WARMUP_MS // MINUTE_MS
            await client.stop_notify(CGM_MEASUREMENT)
        assert not client.is_connected

    run(body)


def test_unpaired_bleak_read_raises_insufficient_encryption() -> None:
    async def body(rig: Rig) -> None:
        sensor = await rig.find()
        async with BleakClient(
            sensor, timeout=TIMEOUT_S, backend=BumbleClient, bumble_device=rig.central
        ) as client:
            with pytest.raises(BleakGATTProtocolError) as raised:
                await client.read_gatt_char(CGM_FEATURE)
            assert raised.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION
            with pytest.raises(BleakError):
                await client.start_notify(CGM_MEASUREMENT, lambda sender, data: None)
            assert not rig.server.core.subscriptions

    run(body)


def test_racp_indication_through_bleak() -> None:
    async def body(rig: Rig) -> None:
        sensor = await rig.find()
        async with BleakClient(
            sensor,
            pair=True,
            timeout=TIMEOUT_S,
            backend=BumbleClient,
            bumble_device=rig.central,
            pairing=receiver_pairing(PASSKEY),
        ) as client:
            assert "indicate" in client.services.get_characteristic(RACP).properties
            await client.start_notify(CGM_MEASUREMENT, lambda sender, data: None)
            indications: asyncio.Queue[bytes] = asyncio.Queue()
            await client.start_notify(RACP, lambda sender, data: indications.put_nowait(data))
            rig.clock[0] = AFTER_WARMUP_MS
            rig.server.sample(SensorSample(counts(100)))
            request = racp.request(
                RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS
            )
            await client.write_gatt_char(RACP, racp.encode(request), response=True)
            answer = racp.decode(bytes(await asyncio.wait_for(indications.get(), TIMEOUT_S)))
            assert answer.opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE
            assert answer.number_of_records == 1
            await client.stop_notify(RACP)

    run(body)


def test_wrong_passkey_fails_pairing_with_a_bleak_error() -> None:
    async def body(rig: Rig) -> None:
        sensor = await rig.find()
        async with BleakClient(
            sensor,
            timeout=TIMEOUT_S,
            backend=BumbleClient,
            bumble_device=rig.central,
            pairing=receiver_pairing(PASSKEY + 1),
        ) as client:
            with pytest.raises(BleakError, match="CONFIRM_VALUE_FAILED"):
                await client.pair()
            with pytest.raises(BleakGATTProtocolError):
                await client.read_gatt_char(CGM_FEATURE)

    run(body)


def test_link_loss_calls_the_disconnected_callback() -> None:
    async def body(rig: Rig) -> None:
        sensor = await rig.find()
        gone: asyncio.Future[BleakClient] = asyncio.get_running_loop().create_future()
        client = BleakClient(
            sensor,
            gone.set_result,
            timeout=TIMEOUT_S,
            backend=BumbleClient,
            bumble_device=rig.central,
        )
        await client.connect()
        assert rig.server.connection is not None
        await asyncio.wait_for(rig.server.connection.disconnect(), TIMEOUT_S)
        assert await asyncio.wait_for(gone, TIMEOUT_S) is client
        assert not client.is_connected
        await client.disconnect()  # already gone: nothing to do

    run(body)
