"""Separate centrals for the security cases (``cases_security``): the tester's own controller,
each time under a new random static address, with a pairing configuration, an SMP session and
a key store of its own, so that an attack is a stranger to the sensor and neither uses nor
disturbs the bond of the main link. The main link is dropped first (a sensor serves one
collector at a time); the runs's cases that need it are over by then (``Phase.ATTACKS``).

What the attacker sends and hears is logged as frame lines for the report: ``SMP > Pairing
Request io 0x04 auth 0x0D``, ``SMP < Pairing Failed 0x03``, ``connected to …``, ``R 2AA8 -> …``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bumble import att, smp
from bumble.core import UUID, BaseBumbleError, ProtocolError
from bumble.device import Connection, Device, Peer
from bumble.hci import Address, HCI_LE_Set_Random_Address_Command
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate

from protocol.cgms import gatt
from sim.conformance.verdicts import Inconclusive


class MainLink(Protocol):
    """What an attack needs of the tester (``sim.conformance.tester.Tester``): its main link,
    which is ended for the attack, and its log."""

    @property
    def connection(self) -> Connection | None: ...

    def log(self, line: str) -> None: ...


CONNECT_TIMEOUT_S = 10.0
PAIRING_TIMEOUT_S = 10.0  # a sensor answers a Pairing Request at once, or refuses it
GATT_TIMEOUT_S = 5.0
SETTLE_S = 0.2  # after a link ends, for the sensor to advertise again

# SMP Pairing Failed reasons (Core Vol 3 Part H 3.5.5, Table 3.7)
PASSKEY_ENTRY_FAILED = 0x01
AUTHENTICATION_REQUIREMENTS = 0x03
CONFIRM_VALUE_FAILED = 0x04
PAIRING_NOT_SUPPORTED = 0x05
REPEATED_ATTEMPTS = 0x09
NO_KEYS = smp.KeyDistribution(0)


@dataclass(frozen=True)
class SecurityOptions:
    """What the security cases may spend (``cgmsim conformance`` options of the same names)."""

    attacks: bool = True  # run the Phase.ATTACKS cases at all (--no-attacks)
    idle_limit_s: float = 30.0  # --idle-limit: an idle link must be dropped within this
    privacy_wait_s: float = 960.0  # --privacy-wait: watch the address this long for a change
    guesses: int = 3  # --guesses: wrong passkeys the guessing case gets accepted
    guess_wait_s: float = 60.0  # --guess-wait: the longest it waits for the next one


@dataclass(frozen=True)
class Sighting:
    """An address the sensor used on the air, and when (loop time) it was first seen."""

    address: Address
    at: float


@dataclass
class Outcome:
    """What came of one Pairing Request."""

    kind: str  # paired | refused | failed (after a Pairing Response) | dropped | silent
    reason: int | None = None  # the Pairing Failed reason (or, dropped, the HCI reason)
    responded: bool = False  # the sensor answered with a Pairing Response: it went along
    encrypted: bool = False
    sent_at: float = 0.0
    ended_at: float = 0.0

    def describe(self) -> str:
        if self.kind == "paired":
            return "pairing completed"
        if self.kind in ("refused", "failed"):
            name = _reason_name(self.reason)
            after = " after its Pairing Response" if self.responded else ""
            return f"Pairing Failed 0x{self.reason or 0:02X} ({name}){after}"
        if self.kind == "dropped":
            how = "" if self.reason is None else f" (HCI reason 0x{self.reason:02X})"
            return f"the sensor dropped the link{how}"
        return f"no answer within {PAIRING_TIMEOUT_S:g} s"


def _reason_name(reason: int | None) -> str:
    try:
        return smp.ErrorCode(reason).name.replace("_", " ").title()
    except ValueError:
        return "unknown"


def _smp_line(direction: str, command: smp.SMP_Command) -> str:
    name = type(command).__name__.removeprefix("SMP_").removesuffix("_Command")
    line = f"SMP {direction} {name.replace('_', ' ')}"
    if isinstance(command, smp.SMP_Pairing_Failed_Command):
        line += f" 0x{int(command.reason):02X}"
    elif isinstance(command, smp.SMP_Pairing_Request_Command | smp.SMP_Pairing_Response_Command):
        line += (
            f" io 0x{int(command.io_capability):02X} auth 0x{int(command.auth_req):02X}"
            f" keys {int(command.initiator_key_distribution):02X}"
            f"/{int(command.responder_key_distribution):02X}"
        )
    elif isinstance(command, smp.SMP_Identity_Information_Command):
        line += " (IRK)"
    return line


def _session_class(attack: Attack, withhold: bool) -> type[smp.Session]:
    """bumble's SMP session, logging every PDU into ``attack``; with ``withhold``, promising
    its keys in the Pairing Request and never sending them (issue 19's attack: the sensor's
    pairing then never completes, so a check made only at completion never runs)."""

    class Session(smp.Session):
        def on_smp_command(self, command: smp.SMP_Command) -> None:
            attack.heard(command)
            super().on_smp_command(command)

        def send_command(self, command: smp.SMP_Command) -> None:
            attack.log(_smp_line(">", command))
            super().send_command(command)

        def distribute_keys(self) -> None:
            if not withhold:
                super().distribute_keys()

    return Session


def pairing(
    io: PairingDelegate.IoCapability,
    *,
    sc: bool,
    mitm: bool,
    bonding: bool = True,
    passkey: int | None = None,
    keys: smp.KeyDistribution | None = None,
) -> PairingConfig:
    """An attacker's pairing configuration: I/O capability, Authentication Requirements, the
    passkey it types when asked and the keys it distributes and asks for."""

    class Delegate(PairingDelegate):
        async def get_number(self) -> int | None:
            return passkey

    if keys is None:
        delegate = Delegate(io_capability=io)
    else:
        delegate = Delegate(
            io_capability=io,
            local_initiator_key_distribution=keys,
            local_responder_key_distribution=keys,
        )
    return PairingConfig(sc=sc, mitm=mitm, bonding=bonding, delegate=delegate)


class Attack:
    """One separate central's link to the sensor (made by ``Attacker.central``)."""

    def __init__(self, t: MainLink) -> None:
        self.t = t
        self.connection: Connection | None = None
        self.pdus: list[tuple[float, smp.SMP_Command]] = []
        self.gone: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def log(self, line: str) -> None:
        self.t.log(line)

    def heard(self, command: smp.SMP_Command) -> None:
        self.pdus.append((asyncio.get_running_loop().time(), command))
        self.log(_smp_line("<", command))

    def _disconnected(self, reason: int) -> None:
        if not self.gone.done():
            self.gone.set_result(reason)
        self.log(f"disconnected (HCI reason 0x{reason:02X})")

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.gone.done()

    async def pair(self, timeout_s: float = PAIRING_TIMEOUT_S) -> Outcome:
        """Send a Pairing Request (with the central's pairing configuration) and classify the
        answer. Never raises for what the sensor does."""
        assert self.connection is not None
        loop = asyncio.get_running_loop()
        start = len(self.pdus)
        outcome = Outcome("silent", sent_at=loop.time())
        if not self.connected:
            outcome.kind = "dropped"
            outcome.reason = self.gone.result() if self.gone.done() else None
        else:
            task = asyncio.ensure_future(self.connection.pair())
            await asyncio.wait(
                [task, self.gone], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                if self.gone.done():
                    outcome.kind, outcome.reason = "dropped", self.gone.result()
            elif task.cancelled() or task.exception() is not None:
                error = None if task.cancelled() else task.exception()
                if isinstance(error, ProtocolError) and error.error_namespace == "smp":
                    outcome.kind, outcome.reason = "refused", int(error.error_code)
                else:
                    outcome.kind = "dropped"
                    outcome.reason = self.gone.result() if self.gone.done() else None
            else:
                outcome.kind = "paired"
        outcome.responded = any(
            isinstance(command, smp.SMP_Pairing_Response_Command)
            for _, command in self.pdus[start:]
        )
        if outcome.kind == "refused" and outcome.responded:
            outcome.kind = "failed"
        for _, command in self.pdus[start:]:  # a Pairing Failed the session did not raise
            if outcome.kind == "silent" and isinstance(command, smp.SMP_Pairing_Failed_Command):
                outcome.kind = "failed" if outcome.responded else "refused"
                outcome.reason = int(command.reason)
        outcome.encrypted = self.connected and bool(self.connection.is_encrypted)
        outcome.ended_at = loop.time()
        state = "encrypted" if outcome.encrypted else "not encrypted"
        self.log(f"pairing: {outcome.describe()}; link {state}")
        return outcome

    async def access(self) -> list[str]:
        """What the link gives: reading CGM Feature, enabling CGM Measurement notifications
        (harmless, should the sensor allow them). Each granted access is one line."""
        if not self.connected:
            return []
        assert self.connection is not None
        peer = Peer(self.connection)
        try:
            await asyncio.wait_for(peer.discover_all(), GATT_TIMEOUT_S)
        except (TimeoutError, BaseBumbleError, ConnectionError) as error:
            self.log(f"discovery failed: {type(error).__name__}")
            return []
        service = UUID.from_16_bits(gatt.CGM_SERVICE)
        granted: list[str] = []
        for uuid, what in ((gatt.FEATURE.uuid, "read"), (gatt.MEASUREMENT.uuid, "subscribe")):
            found = peer.get_characteristics_by_uuid(UUID.from_16_bits(uuid), service)
            if not found:
                continue
            char = found[0]
            try:
                if what == "read":
                    value = bytes(await asyncio.wait_for(peer.read_value(char), GATT_TIMEOUT_S))
                    self.log(f"R {uuid:04X} -> {value.hex()}")
                    granted.append(f"read 0x{uuid:04X} ({value.hex()})")
                else:
                    cccd = char.get_descriptor(
                        UUID.from_16_bits(0x2902)  # Client Characteristic Configuration
                    )
                    if cccd is None:
                        continue
                    await asyncio.wait_for(
                        peer.write_value(cccd, b"\x01\x00", with_response=True), GATT_TIMEOUT_S
                    )
                    self.log(f"W {uuid:04X}.CCCD 0100 -> ok")
                    granted.append(f"enabled notifications of 0x{uuid:04X}")
            except att.ATT_Error as error:
                self.log(f"{what} {uuid:04X} -> ATT error 0x{error.error_code:02X}")
            except (TimeoutError, BaseBumbleError, ConnectionError) as error:
                self.log(f"{what} {uuid:04X} -> {type(error).__name__}")
                break
        return granted


class Attacker:
    """Makes separate centrals on the tester's ``device`` towards the sensor at ``target()``."""

    def __init__(
        self,
        device: Device,
        target: Callable[[], Address],
        options: SecurityOptions | None = None,
        passkey: int | None = None,
    ) -> None:
        self.device, self.target, self.passkey = device, target, passkey
        self.options = options or SecurityOptions()
        self.sightings: list[Sighting] = []
        self.centrals = 0

    def saw(self, connection: Connection) -> None:
        """Note the address the sensor used on the air for ``connection`` (bumble resolves a
        peer's private address to its identity once it has the IRK; the air address stays
        in ``peer_resolvable_address``)."""
        address = connection.peer_resolvable_address or connection.peer_address
        self.saw_address(address)

    def saw_address(self, address: Address) -> None:
        if all(s.address != address for s in self.sightings):
            self.sightings.append(Sighting(address, asyncio.get_running_loop().time()))

    async def release(self, t: MainLink) -> None:
        """End the main link, if it is up: the sensor serves one central at a time."""
        connection = t.connection
        if connection.handle in self.device.connections:
            gone: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            connection.once(
                connection.EVENT_DISCONNECTION, lambda r: gone.done() or gone.set_result(r)
            )
            with contextlib.suppress(BaseBumbleError, ConnectionError, TimeoutError):
                await asyncio.wait_for(connection.disconnect(), 5)
                await asyncio.wait_for(gone, 5)
            t.log("main link ended for the attack")
            await asyncio.sleep(SETTLE_S)

    @contextlib.asynccontextmanager
    async def central(
        self, t: MainLink, config: PairingConfig | None = None, *, withhold: bool = False
    ) -> AsyncIterator[Attack]:
        """A link to the sensor from a new random static address (raises ``Inconclusive``
        when none can be made). On leaving, the link ends and the device is the tester again."""
        await self.release(t)
        device = self.device
        attack = Attack(t)
        saved: dict[str, Any] = {
            "random_address": device.random_address,
            "keystore": device.keystore,
            "factory": device.pairing_config_factory,
            "proxy": device.smp_session_proxy,
        }
        address = Address.generate_static_address()
        self.centrals += 1
        quiet = logging.getLogger("bumble.smp")  # its warning on each refusal: the report has them
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            await self._set_address(address)
            device.keystore = MemoryKeyStore()  # a stranger: no bond, and keeps none of ours
            device.pairing_config_factory = lambda connection: config or PairingConfig()
            device.smp_session_proxy = _session_class(attack, withhold)
            target = self.target()

            def listen(connection: Connection) -> None:
                """From the link's creation, before connect() returns: a sensor may ask for
                security at once (heard, and not answered), or drop a stranger at once."""
                connection.on(
                    connection.EVENT_SECURITY_REQUEST,
                    lambda auth: attack.log(f"SMP < Security Request auth 0x{int(auth):02X}"),
                )
                connection.on(connection.EVENT_DISCONNECTION, attack._disconnected)

            device.on(device.EVENT_CONNECTION, listen)
            try:
                connection = await asyncio.wait_for(
                    device.connect(target, timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S + 5
                )
            except (TimeoutError, BaseBumbleError, ConnectionError) as error:
                raise Inconclusive(
                    f"the attacker at {address} could not connect to {target}: "
                    f"{type(error).__name__} {error}"
                ) from None
            finally:
                device.remove_listener(device.EVENT_CONNECTION, listen)
            attack.connection = connection
            self.saw(connection)
            where = connection.peer_resolvable_address or connection.peer_address
            t.log(f"attacker {address} connected to {where}")
            yield attack
        finally:
            if attack.connected:
                assert attack.connection is not None
                with contextlib.suppress(BaseBumbleError, ConnectionError, TimeoutError):
                    await asyncio.wait_for(attack.connection.disconnect(), 5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(attack.gone), 5)
            quiet.setLevel(level)
            device.keystore = saved["keystore"]
            device.pairing_config_factory = saved["factory"]
            device.smp_session_proxy = saved["proxy"]
            with contextlib.suppress(BaseBumbleError, ConnectionError, TimeoutError):
                await self._set_address(saved["random_address"])
                if device.keystore is not None:
                    await device.refresh_resolving_list()
            await asyncio.sleep(SETTLE_S)

    async def _set_address(self, address: Address) -> None:
        await self.device.send_sync_command(
            HCI_LE_Set_Random_Address_Command(random_address=address)
        )
        self.device.random_address = address

    async def attempt(self, t: MainLink, config: PairingConfig) -> Outcome:
        """One Pairing Request from a new central; the link ends after the answer."""
        async with self.central(t, config) as attack:
            return await attack.pair()
