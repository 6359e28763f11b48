"""Issue 19, the sensor's half: the attacks tried with bumble scripts, each against the
transmitter's GATT server (``sim.links.ble``) on two in-process bumble devices.

The attacker is a bumble ``Device`` scripted here: a central without Secure Connections, one
that pairs Just Works and withholds its key distribution, one encrypting with an
unauthenticated bond, one guessing passkeys, one that connects and does nothing, and two
bonded collectors taking turns. Everything runs on the virtual-time loop (``sim.virtual_loop``):
bumble's timers and ours run on the loop clock, so waits of seconds or hours cost none, and
"10 s after connecting" is exact. What is asserted is what the attacker gets: SMP Pairing Failed
reason codes (Core Vol 3 Part H 3.5.5), ATT error codes (Core Vol 3 Part F 3.4.1.1),
disconnection, and notifications (none).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from bumble import att, smp
from bumble.core import ProtocolError
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import HCI_AUTHENTICATION_FAILURE_ERROR, Address
from bumble.keys import PairingKeys
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate

from firmware.events import SensorSample
from firmware.profiles import G7, MINUTE_MS
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import Receiver, ReceiverConfig
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, measurement, socp
from sim.hil import sensor_privacy
from sim.links.ble import BleTransmitter, EnterPasskey, in_process_device, uuid16
from sim.links.ble_receiver import BleReceiver, bonding_pairing
from sim.links.ble_security import (
    ENCRYPTION_DEADLINE_S,
    RPA_INTERVAL_S,
    SMP_TIMEOUT_S,
    AttemptGuard,
    Privacy,
    RepeatedAttempts,
)
from sim.virtual_loop import run_virtual

PASSKEY = 123_456
CAL = FactoryCalibration(770.0, 25_700.0)
TIMEOUT_S = 5.0  # virtual seconds
AFTER_WARMUP_MS = G7.warmup_ms + 5 * MINUTE_MS

# SMP Pairing Failed reasons (Core Vol 3 Part H 3.5.5, Table 3.7)
AUTHENTICATION_REQUIREMENTS = 0x03
CONFIRM_VALUE_FAILED = 0x04
REPEATED_ATTEMPTS = 0x09
# ATT errors (Core Vol 3 Part F 3.4.1.1, Table 3.4)
INSUFFICIENT_AUTHENTICATION = 0x05
INSUFFICIENT_ENCRYPTION = 0x0F


def counts(mgdl: float) -> int:
    return round(mgdl * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)


@dataclass
class Sensor:
    """The transmitter on one in-process radio, and a way to add attackers to that radio."""

    link: LocalLink
    server: BleTransmitter
    clock: list[int] = field(default_factory=lambda: [0])
    devices: int = 0

    @property
    def address(self) -> object:
        return self.server.device.random_address

    async def central(self) -> Device:
        self.devices += 1
        device = in_process_device(
            self.link, f"central{self.devices}", f"E0:00:00:00:00:{self.devices:02X}"
        )
        await device.power_on()
        return device

    async def connect(self, central: Device) -> Connection:
        await asyncio.sleep(0.1)  # the sensor advertises again after the last link
        return await asyncio.wait_for(central.connect(self.address), TIMEOUT_S)

    def sample(self, mgdl: float) -> None:
        self.clock[0] = max(self.clock[0] + 5 * MINUTE_MS, AFTER_WARMUP_MS)
        self.server.sample(SensorSample(counts(mgdl)))


def run(
    test: Callable[[Sensor], Awaitable[None]],
    attempts: RepeatedAttempts | None = None,
    privacy: Privacy | None = None,
    bonded_only: bool = False,
) -> None:
    async def main() -> None:
        link = LocalLink()
        device = in_process_device(link, "sensor", "C0:CA:FE:00:00:01")
        clock = [0]
        core = Transmitter(TransmitterConfig(G7), CAL, 0)
        server = BleTransmitter(
            device,
            core,
            lambda: clock[0],
            passkey=PASSKEY,
            name="cgmsim",
            attempts=attempts,
            privacy=privacy,
            bonded_only=bonded_only,
        )
        await device.power_on()
        await server.start()
        try:
            await test(Sensor(link, server, clock))
        finally:
            await server.stop()

    run_virtual(main())


async def discover(connection: Connection) -> Peer:
    peer = Peer(connection)
    await asyncio.wait_for(peer.discover_all(), TIMEOUT_S)
    return peer


def char(peer: Peer, uuid: int) -> CharacteristicProxy[bytes]:
    (found,) = peer.get_characteristics_by_uuid(uuid16(uuid), uuid16(gatt.CGM_SERVICE))
    return found


async def att_error(action: Awaitable[object]) -> int:
    with pytest.raises(att.ATT_Error) as raised:
        await asyncio.wait_for(action, TIMEOUT_S)
    return int(raised.value.error_code)


async def smp_failure(connection: Connection) -> int:
    """Pair on ``connection`` (with its device's pairing config) and return the Pairing Failed
    reason the sensor answers with."""
    with pytest.raises(ProtocolError) as raised:
        await asyncio.wait_for(connection.pair(), TIMEOUT_S)
    assert raised.value.error_namespace == "smp"
    return int(raised.value.error_code)


def disconnection(connection: Connection) -> asyncio.Future[int]:
    gone: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    connection.once(
        connection.EVENT_DISCONNECTION, lambda reason: gone.done() or gone.set_result(reason)
    )
    return gone


# --- finding 1: legacy pairing ------------------------------------------------------------


def test_legacy_pairing_is_refused_even_with_the_right_passkey() -> None:
    """Secure Connections Only mode: a central that does not ask for SC (legacy passkey entry,
    broken by a passive eavesdropper) is answered Pairing Failed, Authentication Requirements
    (Core Vol 3 Part H 2.3.5.1 / 3.5.5), even when it types the right passkey."""

    async def body(sensor: Sensor) -> None:
        attacker = await sensor.central()
        attacker.pairing_config_factory = lambda c: PairingConfig(
            sc=False, mitm=True, bonding=True, delegate=EnterPasskey(PASSKEY)
        )
        connection = await sensor.connect(attacker)
        assert await smp_failure(connection) == AUTHENTICATION_REQUIREMENTS
        assert not connection.is_encrypted
        peer = await discover(connection)
        assert (
            await att_error(peer.read_value(char(peer, gatt.FEATURE.uuid)))
            == INSUFFICIENT_ENCRYPTION
        )
        assert await sensor.server.device.keystore.get_all() == []

    run(body)


# --- finding 2: the passkey skipped -------------------------------------------------------


class WithholdingSession(smp.Session):
    """An initiator that promises its keys in the Pairing Request and never sends them: the
    sensor's pairing never completes, so a check made only at completion never runs."""

    def distribute_keys(self) -> None:
        pass


def test_just_works_with_withheld_key_distribution_gets_nothing() -> None:
    """The attack that stopped the session: Just Works (NoInputNoOutput), withholding its key
    distribution. The sensor refuses the method (Authentication Requirements, Core Vol 3 Part H
    2.3.5.1: Just Works cannot meet its MITM requirement); the link stays unencrypted, Feature
    and SOCP answer Insufficient Encryption, and the session is not stopped."""

    async def body(sensor: Sensor) -> None:
        attacker = await sensor.central()
        attacker.smp_session_proxy = WithholdingSession
        attacker.pairing_config_factory = lambda c: PairingConfig(
            sc=True,
            mitm=False,
            bonding=True,
            delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
        )
        connection = await sensor.connect(attacker)
        encrypted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection.on(
            connection.EVENT_CONNECTION_ENCRYPTION_CHANGE,
            lambda: encrypted.done() or encrypted.set_result(None),
        )
        pairing = asyncio.ensure_future(connection.pair())
        await asyncio.wait(
            [pairing, encrypted], timeout=TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        assert pairing.done(), "the sensor went along with Just Works"
        error = pairing.exception()
        assert isinstance(error, ProtocolError) and error.error_code == AUTHENTICATION_REQUIREMENTS
        assert not connection.is_encrypted
        peer = await discover(connection)
        assert (
            await att_error(peer.read_value(char(peer, gatt.FEATURE.uuid)))
            == INSUFFICIENT_ENCRYPTION
        )
        stop = socp.encode(socp.SocpFrame(socp.SocpOpcode.STOP_SESSION), False)
        assert stop == b"\x1b"  # Stop Session: the attack's write, answered 1C 1B 01 (success)
        write = peer.write_value(char(peer, gatt.SOCP.uuid), stop, with_response=True)
        assert await att_error(write) == INSUFFICIENT_ENCRYPTION
        assert (
            sensor.server.core.session is not None
            and sensor.server.core.session.stopped_at_ms is None
        )

    run(body)


def test_a_link_encrypted_with_an_unauthenticated_key_gets_insufficient_authentication() -> None:
    """Security Mode 1 Level 4 is checked on the key in use at every access, not at pairing:
    a bond made without MITM protection (an unauthenticated LTK, as a key file from before this
    fix may hold) encrypts the link — bumble then calls it "authenticated" — but every CGMS
    value and CCCD answers Insufficient Authentication (Core Vol 3 Part F 3.4.1.1) and the
    sensor drops the link."""

    async def body(sensor: Sensor) -> None:
        attacker = await sensor.central()
        ltk = bytes(range(16))
        tx_keys = sensor.server.device.keystore
        await tx_keys.update(
            str(attacker.random_address), PairingKeys(ltk=PairingKeys.Key(ltk, authenticated=False))
        )
        await attacker.keystore.update(
            str(sensor.address), PairingKeys(ltk=PairingKeys.Key(ltk, authenticated=False))
        )
        connection = await sensor.connect(attacker)
        peer = await discover(connection)
        await asyncio.wait_for(connection.encrypt(), TIMEOUT_S)
        assert connection.is_encrypted and connection.authenticated  # bumble's view
        gone = disconnection(connection)
        assert (
            await att_error(peer.read_value(char(peer, gatt.FEATURE.uuid)))
            == INSUFFICIENT_AUTHENTICATION
        )
        assert await asyncio.wait_for(gone, TIMEOUT_S) == HCI_AUTHENTICATION_FAILURE_ERROR
        assert (
            sensor.server.core.session is not None
            and sensor.server.core.session.stopped_at_ms is None
        )

    run(body)


def test_a_stalled_pairing_ends_after_the_smp_timeout() -> None:
    """SMP's procedure timeout (Core Vol 3 Part H 3.4): a central that sends a Pairing Request
    the sensor accepts and then goes silent has its link ended 30 s after the last SMP PDU."""

    async def body(sensor: Sensor) -> None:
        attacker = await sensor.central()
        connection = await sensor.connect(attacker)
        gone = disconnection(connection)
        request = smp.SMP_Pairing_Request_Command(
            io_capability=smp.SMP_KEYBOARD_ONLY_IO_CAPABILITY,
            oob_data_flag=0,
            auth_req=smp.AuthReq.BONDING | smp.AuthReq.MITM | smp.AuthReq.SC,
            maximum_encryption_key_size=16,
            initiator_key_distribution=0,
            responder_key_distribution=0,
        )
        responses: list[bytes] = []
        attacker.smp_manager.on_smp_pdu = lambda c, pdu: responses.append(pdu)  # stay silent
        sent_s = asyncio.get_running_loop().time()
        connection.send_l2cap_pdu(smp.SMP_CID, bytes(request))
        await asyncio.wait_for(gone, SMP_TIMEOUT_S + TIMEOUT_S)
        assert asyncio.get_running_loop().time() - sent_s == pytest.approx(SMP_TIMEOUT_S, abs=0.1)
        # the sensor's Security Request on connecting (CGMP §6.1), then its Pairing Response
        assert [pdu[0] for pdu in responses] == [
            smp.CommandCode.SECURITY_REQUEST,
            smp.CommandCode.PAIRING_RESPONSE,
        ]

    run(body)


# --- finding 3: passkey guessing ----------------------------------------------------------


def test_wrong_passkeys_meet_repeated_attempts_with_growing_waits() -> None:
    """Repeated Attempts (Core Vol 3 Part H 2.3.6): after a failed pairing, the next attempt —
    from the same address or another — is refused Pairing Failed, Repeated Attempts, until a
    waiting interval has passed, and that interval doubles with each failure. On the loop's
    virtual clock: 10 s, 20 s, 40 s, 80 s here (the default policy starts at 5 s and caps at 4 h).
    Each attempt (connect, pair, disconnect) takes about 0.2 s of loop time."""
    policy = RepeatedAttempts(first_wait_s=10.0, growth=2.0, max_wait_s=80.0)

    async def body(sensor: Sensor) -> None:
        guesser = await sensor.central()
        guesser.pairing_config_factory = lambda c: bonding_pairing(PASSKEY + 1)
        loop = asyncio.get_running_loop()

        async def attempt(central: Device) -> int:
            connection = await sensor.connect(central)
            try:
                return await smp_failure(connection)
            finally:
                await asyncio.wait_for(connection.disconnect(), TIMEOUT_S)

        waits = []
        for failures in range(1, 6):
            assert await attempt(guesser) == CONFIRM_VALUE_FAILED
            failed_s = loop.time()
            assert await attempt(guesser) == REPEATED_ATTEMPTS  # at once: refused
            other = await sensor.central()  # a new address does not start afresh
            other.pairing_config_factory = lambda c: bonding_pairing(PASSKEY + 2)
            assert await attempt(other) == REPEATED_ATTEMPTS
            wait = policy.wait_s(failures)
            await asyncio.sleep(failed_s + wait - 1.0 - loop.time())
            assert await attempt(guesser) == REPEATED_ATTEMPTS  # still waiting
            await asyncio.sleep(max(failed_s + wait - loop.time(), 0))
            waits.append(wait)
        assert waits == [10.0, 20.0, 40.0, 80.0, 80.0]  # doubling, up to the cap
        assert sensor.server.attempts.refusals == 15

        # the right passkey, once the wait is over, pairs; and that resets the count
        owner = await sensor.central()
        owner.pairing_config_factory = lambda c: bonding_pairing(PASSKEY)
        connection = await sensor.connect(owner)
        await asyncio.wait_for(connection.pair(), TIMEOUT_S)
        assert connection.is_encrypted
        assert sensor.server.attempts.overall == 0

    run(body, policy)


def test_the_default_policy_makes_twenty_guesses_cost_hours() -> None:
    """A 6-digit passkey has 20 bits; with the passkey fixed each failure can leak one."""
    policy = RepeatedAttempts()
    assert policy.wait_s(1) == 5.0
    assert sum(policy.wait_s(n) for n in range(1, 21)) > 24 * 3600


# --- finding 4: an idle central -----------------------------------------------------------


def test_an_idle_central_is_dropped_after_the_encryption_deadline() -> None:
    """A central that connects and does nothing is disconnected ENCRYPTION_DEADLINE_S (10 s of
    loop time) after connecting, and the sensor is connectable again for its collector."""

    async def body(sensor: Sensor) -> None:
        squatter = await sensor.central()
        connection = await sensor.connect(squatter)
        connected_s = asyncio.get_running_loop().time()
        gone = disconnection(connection)
        reason = await asyncio.wait_for(gone, 10 * ENCRYPTION_DEADLINE_S)
        assert reason == HCI_AUTHENTICATION_FAILURE_ERROR
        waited = asyncio.get_running_loop().time() - connected_s
        assert waited == pytest.approx(ENCRYPTION_DEADLINE_S, abs=0.05)

        owner = await sensor.central()
        owner.pairing_config_factory = lambda c: bonding_pairing(PASSKEY)
        mine = await sensor.connect(owner)
        await asyncio.wait_for(mine.pair(), TIMEOUT_S)
        peer = await discover(mine)
        await asyncio.sleep(3 * ENCRYPTION_DEADLINE_S)  # a secured link has no deadline
        assert mine.handle in owner.connections
        assert await asyncio.wait_for(peer.read_value(char(peer, gatt.FEATURE.uuid)), TIMEOUT_S)

    run(body)


# --- finding 9: per-client CCCDs ----------------------------------------------------------


def test_each_bonded_collector_gets_back_only_its_own_subscriptions() -> None:
    """CCCD values are per client, and a bonded client's last across its connections (Core
    Vol 3 Part G 3.3.3.3). Collector B bonds and leaves without subscribing; A bonds,
    subscribes to CGM Measurement and leaves. B re-encrypts with its bond and receives nothing;
    A re-encrypts and receives readings without writing its CCCD again."""

    async def body(sensor: Sensor) -> None:
        a, b = await sensor.central(), await sensor.central()
        for collector in (a, b):
            collector.pairing_config_factory = lambda c: bonding_pairing(PASSKEY)

        link_b = await sensor.connect(b)
        await asyncio.wait_for(link_b.pair(), TIMEOUT_S)
        await asyncio.wait_for(link_b.disconnect(), TIMEOUT_S)

        link_a = await sensor.connect(a)
        await asyncio.wait_for(link_a.pair(), TIMEOUT_S)
        peer_a = await discover(link_a)
        readings: asyncio.Queue[bytes] = asyncio.Queue()
        await asyncio.wait_for(
            peer_a.subscribe(
                char(peer_a, gatt.MEASUREMENT.uuid), lambda v: readings.put_nowait(bytes(v))
            ),
            TIMEOUT_S,
        )
        sensor.sample(120)
        assert (
            measurement.decode(await asyncio.wait_for(readings.get(), TIMEOUT_S), None)[0].glucose
            == 120
        )
        await asyncio.wait_for(link_a.disconnect(), TIMEOUT_S)

        async def back(collector: Device) -> tuple[Connection, asyncio.Queue[bytes]]:
            """Reconnect, listen to Measurement without writing the CCCD, re-encrypt."""
            link = await sensor.connect(collector)
            peer = await discover(link)
            heard: asyncio.Queue[bytes] = asyncio.Queue()
            handle = char(peer, gatt.MEASUREMENT.uuid).handle
            peer.gatt_client.notification_subscribers.setdefault(handle, set()).add(
                lambda value: heard.put_nowait(bytes(value))
            )
            await asyncio.wait_for(link.encrypt(), TIMEOUT_S)
            await asyncio.sleep(0.05)
            return link, heard

        link_b, heard_b = await back(b)
        sensor.sample(130)
        peer_b = await discover(link_b)  # a round trip: what was sent has arrived
        assert await asyncio.wait_for(peer_b.read_value(char(peer_b, gatt.FEATURE.uuid)), TIMEOUT_S)
        assert heard_b.empty(), "B received a reading it never subscribed to"
        assert not sensor.server.core.subscriptions.get(gatt.MEASUREMENT.uuid, (False, False))[0]
        await asyncio.wait_for(link_b.disconnect(), TIMEOUT_S)

        link_a, heard_a = await back(a)
        sensor.sample(140)
        (record,) = measurement.decode(await asyncio.wait_for(heard_a.get(), TIMEOUT_S), None)
        assert record.glucose == 140
        await asyncio.wait_for(link_a.disconnect(), TIMEOUT_S)

    run(body)


# --- finding 7: tracking ------------------------------------------------------------------


def _privacy(seed: int) -> Privacy:
    rng = np.random.default_rng(seed)
    return Privacy(irk=rng.bytes(16), prand=lambda: rng.bytes(3))


async def heard(central: Device) -> Address:
    """The address the next advertisement of the CGM service comes from."""
    found: asyncio.Future[Address] = asyncio.get_running_loop().create_future()

    def advertisement(adv: Advertisement) -> None:
        uuids = adv.data.get_all(adv.data.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS)
        if any(uuid16(gatt.CGM_SERVICE) in group for group in uuids) and not found.done():
            found.set_result(adv.address)

    central.on(central.EVENT_ADVERTISEMENT, advertisement)
    await central.start_scanning(filter_duplicates=False)
    try:
        return await asyncio.wait_for(found, TIMEOUT_S)
    finally:
        central.remove_listener(central.EVENT_ADVERTISEMENT, advertisement)
        await central.stop_scanning()


def test_the_sensor_advertises_rotating_private_addresses_its_collector_resolves() -> None:
    """LE privacy (Core Vol 3 Part C 10.7; Vol 6 Part B 1.3.2.2): the sensor advertises from
    resolvable private addresses, a new one every 15 minutes (TGAP(private_addr_int)), never
    from its identity address; pairing gives the collector a real (non-zero) IRK and the
    identity; after a rotation the bonded collector resolves the new address, reconnects and
    re-encrypts with its bond. A tracker without the IRK sees unrelated addresses."""
    privacy = _privacy(7)

    async def body(sensor: Sensor) -> None:
        identity = sensor.server.device.static_address
        collector = await sensor.central()
        collector.pairing_config_factory = lambda c: bonding_pairing(PASSKEY)
        first = await heard(collector)
        assert first.is_resolvable and first != identity

        link = await asyncio.wait_for(collector.connect(first), TIMEOUT_S)
        await asyncio.wait_for(link.pair(), TIMEOUT_S)
        assert link.peer_address == identity  # Identity Address Information, at pairing
        keys = await collector.keystore.get(str(identity))
        assert keys is not None and keys.irk is not None
        assert keys.irk.value == privacy.irk and any(keys.irk.value)
        await asyncio.wait_for(link.disconnect(), TIMEOUT_S)

        await asyncio.sleep(RPA_INTERVAL_S)
        second = await heard(collector)
        assert second.is_resolvable and second not in (first, identity)
        assert collector.address_resolver is not None
        assert collector.address_resolver.resolve(second) == identity

        link = await asyncio.wait_for(collector.connect(identity), TIMEOUT_S)  # resolved
        assert link.peer_address == identity
        await asyncio.wait_for(link.encrypt(), TIMEOUT_S)  # the bond, no new pairing
        peer = await discover(link)
        assert await asyncio.wait_for(peer.read_value(char(peer, gatt.FEATURE.uuid)), TIMEOUT_S)
        await asyncio.wait_for(link.disconnect(), TIMEOUT_S)

    run(body, privacy=privacy)


def test_our_receiver_reconnects_and_re_encrypts_after_a_rotation() -> None:
    """The project's collector, ``BleReceiver`` driving the receiver core: it pairs with the
    sensor found at its first private address, and after the link is lost and the sensor has
    taken a new address, it finds it by its identity, reconnects and re-encrypts with the bond
    (no second pairing)."""

    async def body(sensor: Sensor) -> None:
        loop = asyncio.get_running_loop()
        device = await sensor.central()
        config = ReceiverConfig(G7, CollectorConfig(datetime.datetime(2026, 1, 5, 8)))
        established: asyncio.Queue[Address] = asyncio.Queue()
        rx = BleReceiver(
            device,
            Receiver(config, 0),
            sensor.address,
            lambda: round(loop.time() * 1000),
            lambda t_ms: t_ms / 1000,
            passkey=PASSKEY,
            on_established=lambda: established.put_nowait(sensor.server.connection.self_address),
        )
        runner = asyncio.ensure_future(rx.run())
        try:
            first = await asyncio.wait_for(established.get(), TIMEOUT_S)
            link = sensor.server.connection
            await sensor.server.stop()  # the sensor goes out of range
            await asyncio.wait_for(link.disconnect(), TIMEOUT_S)
            await asyncio.sleep(RPA_INTERVAL_S)
            await sensor.server.start()  # back, at a new address
            second = await asyncio.wait_for(established.get(), 10 * TIMEOUT_S)
            assert first.is_resolvable and second.is_resolvable and first != second
            assert (rx.connections, rx.pairings) == (2, 1)  # re-encrypted with the bond
            assert sensor.server.keys.secure(sensor.server.connection)
        finally:
            await rx.close("test over")
            runner.cancel()

    run(body, privacy=_privacy(11))


def test_the_private_addresses_are_the_same_for_the_same_seed() -> None:
    """Deterministic by seed in a simulation: the IRK and every address come from the seeded
    generator."""
    one, two = _privacy(3), _privacy(3)
    assert one.irk == two.irk
    assert [one.address() for _ in range(3)] == [two.address() for _ in range(3)]


def test_bonded_only_drops_collectors_without_a_bond() -> None:
    """The option after bonding (issue 19, privacy): once the sensor has a bond, a central
    without one is dropped at once (not after the 10 s deadline), while the bonded collector
    still gets in — even after a refused pairing request on the same link, it re-encrypts with
    its bond."""

    async def body(sensor: Sensor) -> None:
        owner, stranger = await sensor.central(), await sensor.central()
        owner.pairing_config_factory = lambda c: bonding_pairing(PASSKEY)
        link = await sensor.connect(owner)  # no bond yet: pairing is open
        await asyncio.wait_for(link.pair(), TIMEOUT_S)
        await asyncio.wait_for(link.disconnect(), TIMEOUT_S)

        loop = asyncio.get_running_loop()
        intruder = await sensor.connect(stranger)
        connected_s = loop.time()
        reason = await asyncio.wait_for(disconnection(intruder), TIMEOUT_S)
        assert reason == HCI_AUTHENTICATION_FAILURE_ERROR
        assert loop.time() - connected_s < ENCRYPTION_DEADLINE_S / 10

        link = await sensor.connect(owner)
        legacy = PairingConfig(sc=False, mitm=True, bonding=True, delegate=EnterPasskey(PASSKEY))
        owner.pairing_config_factory = lambda c: legacy
        assert await smp_failure(link) == AUTHENTICATION_REQUIREMENTS
        await asyncio.wait_for(link.encrypt(), TIMEOUT_S)
        peer = await discover(link)
        assert await asyncio.wait_for(peer.read_value(char(peer, gatt.FEATURE.uuid)), TIMEOUT_S)
        await asyncio.wait_for(link.disconnect(), TIMEOUT_S)

    run(body, bonded_only=True)


def test_the_attempt_guard_remembers_a_bounded_number_of_claimants() -> None:
    """An attacker that changes address on every attempt cannot grow the sensor's table; the
    overall count still makes it wait."""
    now = [0.0]
    guard = AttemptGuard(RepeatedAttempts(claimants_kept=4), lambda: now[0])
    for n in range(10):
        guard.failed(f"E0:00:00:00:01:{n:02X}")
    assert len(guard.failures) == len(guard.last_failure_s) == 4
    assert guard.wait_left_s("E0:00:00:00:02:00") == RepeatedAttempts().wait_s(10)


def test_an_unbonded_clients_subscriptions_end_with_its_connection() -> None:
    """A client that paired without bonding (Bonding_Flags 0) subscribes and leaves; on its
    next link, paired again, its subscription is not restored (Core Vol 3 Part G 3.3.3.3: CCCD
    values are kept across connections only for a bonded client)."""

    async def body(sensor: Sensor) -> None:
        client = await sensor.central()
        client.pairing_config_factory = lambda c: PairingConfig(
            sc=True, mitm=True, bonding=False, delegate=EnterPasskey(PASSKEY)
        )
        link = await sensor.connect(client)
        await asyncio.wait_for(link.pair(), TIMEOUT_S)
        peer = await discover(link)
        readings: asyncio.Queue[bytes] = asyncio.Queue()
        measurement_char = char(peer, gatt.MEASUREMENT.uuid)
        await asyncio.wait_for(
            peer.subscribe(measurement_char, lambda v: readings.put_nowait(bytes(v))), TIMEOUT_S
        )
        sensor.sample(120)
        assert await asyncio.wait_for(readings.get(), TIMEOUT_S)
        await asyncio.wait_for(link.disconnect(), TIMEOUT_S)

        link = await sensor.connect(client)
        peer = await discover(link)
        peer.gatt_client.notification_subscribers.setdefault(measurement_char.handle, set()).add(
            lambda v: readings.put_nowait(bytes(v))
        )
        await asyncio.wait_for(link.pair(), TIMEOUT_S)  # no bond: it pairs again
        sensor.sample(130)
        assert await asyncio.wait_for(peer.read_value(char(peer, gatt.FEATURE.uuid)), TIMEOUT_S)
        assert readings.empty()
        assert not sensor.server.core.subscriptions

    run(body)


def test_the_transmitter_commands_irk_is_random_kept_beside_its_keys_and_private(
    tmp_path: Path,
) -> None:
    """``cgmsim transmitter --keys FILE``: a random IRK (not all zero, not derived from the
    address), written once to FILE.irk readable by its owner only, and the same after a
    restart, so bonded collectors still resolve the sensor."""
    keys = tmp_path / "keys.json"
    first, again = sensor_privacy(keys), sensor_privacy(keys)
    irk_file = tmp_path / "keys.json.irk"
    assert irk_file.stat().st_mode & 0o777 == 0o600
    assert first.irk == again.irk == bytes.fromhex(irk_file.read_text())
    assert any(first.irk) and first.irk != sensor_privacy(tmp_path / "other.json").irk
    assert sensor_privacy(None).irk != sensor_privacy(None).irk  # no keys: a new one each run
