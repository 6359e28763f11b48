"""The receiver trusts only an authenticated LE Secure Connections sensor (issue 19, finding 5),
over the real bumble stack in process: rogue sensors (``tests.support.rogue_sensor``: Just
Works, legacy passkey, open characteristics) against ``BleReceiver`` and ``BleakReceiver`` (on
the bleak backend over bumble), on a virtual-time loop. Refused means: ``run()`` ends with a
``PairingRefused`` that names the weakness, the core never heard of the sensor (nothing shown),
and no bond with it is left in the receiver's key store file."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bumble.keys import JsonKeyStore
from bumble.link import LocalLink

from firmware.profiles import G7, MINUTE_MS
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import ReadingShown, Receiver, ReceiverConfig
from firmware.transmitter.server import Transmitter, TransmitterConfig
from sim.links.ble import BleTransmitter, in_process_device
from sim.links.ble_receiver import BleReceiver, bonding_pairing
from sim.links.bleak_bumble import BumbleClient
from sim.links.bleak_receiver import BleakReceiver, bleak_client_factory
from sim.links.gatt_client import PairingRefused
from sim.virtual_loop import run_virtual
from tests.support.rogue_sensor import CAL, KINDS, ROGUE_MGDL, ROGUE_PASSKEY, RogueSensor

RECEIVER = "F0:F0:F0:F0:F0:F0"
ROGUE = "C0:BA:D0:00:00:66"
RUN_MS = 3 * 60 * MINUTE_MS  # virtual: past the warm-up, many readings for a trusting receiver
CLOCK_AT_ZERO = datetime.datetime(2026, 1, 1)
EXPECTED = {
    "just-works": "paired with Just Works",
    "legacy": "LE legacy pairing",
    "open": "read without encryption",
}


@dataclass
class Outcome:
    ended: BaseException | None  # how run() ended (None: still running at the end)
    events: list[Any] = field(default_factory=list)
    bonds: dict[str, Any] = field(default_factory=dict)  # the receiver's namespace in the file
    rogue_sent: int = 0
    weaknesses: list[str] = field(default_factory=list)

    @property
    def shown(self) -> list[float]:
        return [e.glucose_mgdl for e in self.events if isinstance(e, ReadingShown)]


class HostStackClient(BumbleClient):
    """The bumble backend telling nothing about the link's security, as bleak's backends on a
    host's own stack (BlueZ, CoreBluetooth, WinRT) do."""

    async def link_security(self) -> None:
        return None


def _host_stack_client(device: Any, address: Any) -> Callable[[Any], BleakClient]:
    target = BLEDevice(str(address), None, details=address)

    def make(disconnected: Callable[[BleakClient], None]) -> BleakClient:
        return BleakClient(
            target,
            disconnected_callback=disconnected,
            timeout=10.0,
            backend=HostStackClient,
            bumble_device=device,
            pairing=bonding_pairing(ROGUE_PASSKEY),
        )

    return make


def against_rogue(kind: str, api: str, keys: Path, *, insecure: bool = False) -> Outcome:
    """Run the receiver (``api``: bumble or bleak) against a ``kind`` rogue sensor for up to
    ``RUN_MS`` of virtual time; the receiver's bonds go to the JSON key store file ``keys``."""

    async def main() -> Outcome:
        loop = asyncio.get_running_loop()
        link = LocalLink()
        rogue_device = in_process_device(link, "rogue", ROGUE)
        rx_device = in_process_device(link, "receiver", RECEIVER)
        rx_device.keystore = JsonKeyStore(namespace=RECEIVER, filename=str(keys))

        def now_ms() -> int:
            return round(loop.time() * 1000)

        def to_loop(t_ms: int) -> float:
            return t_ms / 1000

        rogue = RogueSensor(rogue_device, kind, now_ms, to_loop)
        await rogue_device.power_on()
        await rx_device.power_on()
        await rogue.start()
        core = Receiver(ReceiverConfig(G7, CollectorConfig(CLOCK_AT_ZERO)), 0)
        events: list[Any] = []
        rx: BleReceiver | BleakReceiver
        if api == "bumble":
            rx = BleReceiver(
                rx_device,
                core,
                rogue_device.random_address,
                now_ms,
                to_loop,
                passkey=ROGUE_PASSKEY,
                on_event=events.append,
            )
        else:
            address = rogue_device.random_address
            make = (
                _host_stack_client(rx_device, address)
                if api == "host-stack"
                else bleak_client_factory(rx_device, address, ROGUE_PASSKEY)
            )
            rx = BleakReceiver(core, make, now_ms, to_loop, on_event=events.append)
        rx.insecure = insecure
        runner = asyncio.ensure_future(rx.run())
        await asyncio.wait([runner], timeout=RUN_MS / 1000)
        ended = runner.exception() if runner.done() else None
        await rx.close("test over")
        runner.cancel()
        rogue.stop()
        stored = json.loads(keys.read_text()) if keys.exists() and keys.read_text() else {}
        return Outcome(
            ended, events, stored.get(RECEIVER, {}), rogue.sent, getattr(rx, "weaknesses", [])
        )

    return run_virtual(main())


@pytest.mark.parametrize("api", ["bumble", "bleak"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_rogue_sensor_is_refused_and_nothing_of_it_is_shown_or_kept(
    kind: str, api: str, tmp_path: Path
) -> None:
    outcome = against_rogue(kind, api, tmp_path / "keys.json")
    assert outcome.ended is not None, (
        f"the receiver kept the {kind} rogue: {len(outcome.shown)} readings shown,"
        f" bonds {outcome.bonds}"
    )
    assert isinstance(outcome.ended, PairingRefused), repr(outcome.ended)
    assert str(outcome.ended).startswith(f"refused sensor {ROGUE}: ")
    assert EXPECTED[kind] in str(outcome.ended)
    assert outcome.events == []  # the core never heard of it: no reading, alert, phase
    assert outcome.bonds == {}
    assert outcome.rogue_sent == 0


@pytest.mark.parametrize("api", ["bumble", "bleak"])
def test_insecure_lets_a_just_works_sensor_through_and_says_so(api: str, tmp_path: Path) -> None:
    outcome = against_rogue("just-works", api, tmp_path / "keys.json", insecure=True)
    assert outcome.ended is None
    assert outcome.shown and set(outcome.shown) == {ROGUE_MGDL}
    assert outcome.weaknesses == ["just-works"]
    assert [b["ltk"]["authenticated"] for b in outcome.bonds.values()] == [False]


def test_through_a_stack_that_tells_nothing_a_sensor_read_before_pairing_is_refused(
    tmp_path: Path,
) -> None:
    """bleak on a host's own stack cannot tell an open link from one the stack encrypted with a
    bond: a sensor whose Feature is read before this receiver ever paired with it is refused."""
    outcome = against_rogue("open", "host-stack", tmp_path / "keys.json")
    assert isinstance(outcome.ended, PairingRefused), repr(outcome.ended)
    assert "before this receiver paired with it" in str(outcome.ended)
    assert outcome.events == []


def test_through_a_stack_that_tells_nothing_our_sensor_is_paired_then_trusted_as_bonded(
    tmp_path: Path,
) -> None:
    """Our transmitter refuses the read before pairing, so the receiver pairs; the next
    connection (re-encrypted by the stack with the bond) is trusted because this receiver
    recorded that bond (``host_bonds``)."""
    host_bonds: set[str] = set()

    async def main() -> list[tuple[int, int]]:
        loop = asyncio.get_running_loop()
        link = LocalLink()
        tx_device = in_process_device(link, "sensor", "C0:CA:FE:00:00:01")
        rx_device = in_process_device(link, "receiver", RECEIVER)

        def now_ms() -> int:
            return round(loop.time() * 1000)

        tx = BleTransmitter(
            tx_device, Transmitter(TransmitterConfig(G7), CAL, 0), now_ms, passkey=ROGUE_PASSKEY
        )
        await tx_device.power_on()
        await rx_device.power_on()
        await tx.start()
        counts = []
        for _ in range(2):
            rx = BleakReceiver(
                Receiver(ReceiverConfig(G7, CollectorConfig(CLOCK_AT_ZERO)), now_ms()),
                _host_stack_client(rx_device, tx_device.random_address),
                now_ms,
                lambda t_ms: t_ms / 1000,
                host_bonds=host_bonds,
            )
            assert await rx.connect_once()
            await rx.close("next")
            counts.append((rx.connections, rx.pairings))
        await tx.stop()
        return counts

    assert run_virtual(main()) == [(1, 1), (1, 0)]
    assert host_bonds == {"C0:CA:FE:00:00:01"}
