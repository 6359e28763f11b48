"""The hardware set: the same checks as the virtual-controller tests, on real BLE controllers
(docs/hil.md). Skipped, saying why, unless pytest is given ``--hci-transport=T`` (and
``--hci-peer-transport=T2`` for the tests that need a second controller)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.hil import check_receiver_restarts, check_wrong_passkey


@pytest.fixture
def transport(request) -> str:
    return request.config.getoption("--hci-transport")


@pytest.fixture
def peer_transport(request) -> str:
    return request.config.getoption("--hci-peer-transport")


@pytest.mark.hardware
def test_the_controller_resets_and_reports_its_address_and_version(transport: str) -> None:
    from bumble.device import Device
    from bumble.hci import Address
    from bumble.transport import open_transport

    async def body() -> tuple[Address, object]:
        async with await open_transport(transport) as hci:
            device = Device.with_hci(
                "cgmsim-probe", Address("C0:CA:FE:00:00:0F"), hci.source, hci.sink
            )
            await device.power_on()  # HCI Reset, then the LE setup bumble does
            return device.public_address, device.host.local_version

    address, version = asyncio.run(body())
    assert version is not None, "the controller did not answer Read Local Version Information"
    assert address is not None


@pytest.mark.hardware(peer=True)
def test_transmitter_and_receiver_on_two_controllers(
    transport: str, peer_transport: str, tmp_path: Path
) -> None:
    check_receiver_restarts(transport, peer_transport, tmp_path)


@pytest.mark.hardware(peer=True)
def test_a_wrong_passkey_fails_on_two_controllers(
    transport: str, peer_transport: str, tmp_path: Path
) -> None:
    check_wrong_passkey(transport, peer_transport, tmp_path)
