"""The sensor the collector cases play: our transmitter's GATT server (``sim.links.ble``, the
genuine core, its security and CCCD handling) with a log of everything the collector does on
the air and a hand on what the sensor answers.

The log (``AirEvent``) is what the verdicts come from: ATT requests as they arrive (service and
characteristic discovery), the collector's SMP PDUs, pairing and encryption (with a new pairing
or with a stored bond), reads, writes and CCCD writes that reached the core, with its answer,
and every notification and indication that left. The hand: the next RACP requests of the
collector can be answered by the script instead of the core (a response code, an ATT error, or
nothing at all), the link dropped, advertising paused while the sensor makes readings, and the
collector's bond forgotten (its keys and its CCCD values), as a sensor that was reset would.

And the sensor can turn rogue (``go_rogue``): the same GATT database and core, but with weak
security of one of three kinds (``ROGUE_KINDS``), as an attacker's device posing as the sensor
would offer it: ``just-works`` pairs as NoInputNoOutput (no MITM protection), ``legacy`` pairs
with LE legacy passkey entry (no Secure Connections), ``open`` serves every value and CCCD
without encryption. Its checks of the key in use, its encryption deadline and the refusal of
weak pairings are off then; everything the collector does is logged as before.

Like ``sim.fuzz.ble_receiver.RogueSensor``, but the core sees nothing the script answers: it is
never left inside a procedure the collector was not served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bumble import att, smp
from bumble.device import Connection
from bumble.keys import PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate

from firmware.events import GattInput, Notify, Read, Respond, Sent, Subscribe, Write
from protocol.cgms import gatt
from protocol.cgms.racp import RacpOpcode
from sim.links.ble import BleTransmitter, DisplayPasskey, mitm_protected

RACP = gatt.RACP.uuid
REPORT_STORED_RECORDS = int(RacpOpcode.REPORT_STORED_RECORDS)
REPORT_NUMBER = int(RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS)
# SMP AuthReq bits (Core Vol 3 Part H 3.5.1)
BONDING, MITM, SC = 0x01, 0x04, 0x08
ROGUE_KINDS = ("just-works", "legacy", "open")
_PERMS = att.Attribute.Permissions


def rogue_pairing(kind: str, passkey: int) -> PairingConfig:
    """How a rogue sensor of ``kind`` pairs: ``legacy`` with LE legacy passkey entry showing
    ``passkey``; ``just-works`` (and ``open``, if anyone asks) as NoInputNoOutput."""
    random = PairingConfig.AddressType.RANDOM
    if kind == "legacy":
        return PairingConfig(
            sc=False,
            mitm=True,
            bonding=True,
            delegate=DisplayPasskey(passkey),
            identity_address_type=random,
        )
    no_io = PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT)
    return PairingConfig(
        sc=True, mitm=False, bonding=True, delegate=no_io, identity_address_type=random
    )


@dataclass
class AirEvent:
    """One thing seen on the air, at loop time ``t`` on link number ``link`` (1 = the first)."""

    t: float
    link: int
    kind: str  # connected disconnected att smp paired pairing-failed encrypted read write
    #            subscribe notify indicate
    uuid: int | None = None
    value: bytes = b""
    error: int | None = None  # the ATT error the request was answered with
    detail: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> str:
        """The event as a report frame line (``W 2A52 0101 -> ok``)."""
        uuid = "" if self.uuid is None else f"{self.uuid:04X}"
        answer = "ok" if self.error is None else f"ATT error 0x{self.error:02X}"
        match self.kind:
            case "read":
                return f"#{self.link} R {uuid} -> {answer if self.error else self.value.hex()}"
            case "write":
                return f"#{self.link} W {uuid} {self.value.hex()} -> {answer}"
            case "subscribe":
                return f"#{self.link} W {uuid}.CCCD {self.value.hex()} -> {answer}"
            case "notify":
                return f"#{self.link} N {uuid} {self.value.hex()}"
            case "indicate":
                return f"#{self.link} I {uuid} {self.value.hex()}"
        extra = " ".join(f"{k}={v}" for k, v in self.detail.items())
        return f"#{self.link} {self.kind} {extra}".rstrip()


class ScriptedSensor(BleTransmitter):
    """``BleTransmitter`` logging the collector's every move into ``events`` and answering
    the next RACP requests as ``racp_script`` says: ``("code", rc)`` a response code
    indication ``06 00 <op> rc`` for a Report Stored Records, ``("att", code)`` an ATT error to
    any RACP write, ``("silent", None)`` the write accepted and then nothing (a Report Stored
    Records), ``("silent-count", None)`` the same for a Report Number of Stored Records."""

    def __init__(self, *args: Any, passkey: int, **kwargs: Any) -> None:
        super().__init__(*args, passkey=passkey, **kwargs)
        self.passkey = passkey
        self.rogue: str | None = None  # one of ROGUE_KINDS once ``go_rogue`` was called
        self.paused = False  # the script dropped the link: no advertising until it says
        self._starting = 0  # start() calls under way
        self.events: list[AirEvent] = []
        self.links = 0
        self.racp_script: deque[tuple[str, int | None]] = deque()
        self.changed = asyncio.Event()
        # A report left unanswered holds the live notifications too, as a sensor still in the
        # procedure would (CGMS §3.8.3: a running procedure is finished first), until the
        # collector writes RACP again or the link goes.
        self.holding = False
        self.held = 0
        self._log_smp()
        self._log_att()
        self._log_values()
        self.device.on(self.device.EVENT_CONNECTION, self._watch)

    # --- the log ---

    def log(self, kind: str, uuid: int | None = None, value: bytes = b"", **detail: Any) -> None:
        error = detail.pop("error", None)
        t = asyncio.get_running_loop().time()
        self.events.append(AirEvent(t, self.links, kind, uuid, bytes(value), error, detail))
        self.changed.set()

    def _watch(self, connection: Connection) -> None:
        self.links += 1
        self.log("connected", peer=str(connection.peer_address))

        def paired(keys: PairingKeys) -> None:
            self.log(
                "paired",
                authenticated=mitm_protected(keys),
                sc=keys.ltk is not None,
                identity=str(connection.peer_address),
            )

        def failed(error: Any) -> None:
            self.log("pairing-failed", reason=str(error))

        def encrypted() -> None:
            handle = connection.handle
            self.log(
                "encrypted",
                on=bool(connection.is_encrypted),
                secure=self.keys.secure(connection),
                bond=self.keys.bonded.get(handle, False),
            )

        connection.on(connection.EVENT_PAIRING, paired)
        connection.on(connection.EVENT_PAIRING_FAILURE, failed)
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, encrypted)

        def disconnected(reason: int) -> None:
            self.holding = False
            self.log("disconnected", reason=reason)

        connection.on(connection.EVENT_DISCONNECTION, disconnected)

    def _log_smp(self) -> None:
        base = self.device.smp_session_proxy
        sensor = self

        class Session(base):  # type: ignore[misc,valid-type]
            def on_smp_command(self, command: smp.SMP_Command) -> None:
                detail: dict[str, Any] = {"pdu": type(command).__name__.removeprefix("SMP_")}
                if isinstance(command, smp.SMP_Pairing_Request_Command):
                    detail["auth"] = int(command.auth_req)
                    detail["io"] = int(command.io_capability)
                if isinstance(command, smp.SMP_Pairing_Failed_Command):
                    detail["reason"] = int(command.reason)
                sensor.log("smp", **detail)
                super().on_smp_command(command)

            def on_smp_pairing_request_command(
                self, command: smp.SMP_Pairing_Request_Command
            ) -> None:
                if sensor.rogue is None:
                    super().on_smp_pairing_request_command(command)
                    return
                self.attempted = True  # a rogue takes any pairing: bumble's own session
                smp.Session.on_smp_pairing_request_command(self, command)

        self.device.smp_session_proxy = Session

    def _log_att(self) -> None:
        """Every ATT PDU from the collector, before bumble's server handles it."""
        server = self.device.gatt_server
        handle = server.on_gatt_pdu

        def on_gatt_pdu(bearer: att.Bearer, pdu: att.ATT_PDU) -> None:
            detail: dict[str, Any] = {"pdu": pdu.name}
            for name in ("attribute_group_type", "attribute_type", "attribute_value"):
                if hasattr(pdu, name):
                    detail[name] = getattr(pdu, name)
            for name in ("starting_handle", "ending_handle"):
                if hasattr(pdu, name):
                    detail[name] = int(getattr(pdu, name))
            self.log("att", **detail)
            handle(bearer, pdu)

        server.on_gatt_pdu = on_gatt_pdu  # type: ignore[method-assign]

    def _log_values(self) -> None:
        """Each notification and indication as it leaves (the core's and the script's)."""
        device = self.device
        notify, indicate = device.notify_subscriber, device.indicate_subscriber

        def uuid_of(characteristic: Any) -> int:
            return int.from_bytes(bytes(characteristic.uuid), "little")

        async def notify_subscriber(connection: Any, characteristic: Any, value: Any) -> None:
            self.log("notify", uuid_of(characteristic), bytes(value))
            await notify(connection, characteristic, value)

        async def indicate_subscriber(connection: Any, characteristic: Any, value: Any) -> None:
            self.log("indicate", uuid_of(characteristic), bytes(value))
            await indicate(connection, characteristic, value)

        device.notify_subscriber = notify_subscriber  # type: ignore[method-assign]
        device.indicate_subscriber = indicate_subscriber  # type: ignore[method-assign]

    # --- the core, with the script in front of RACP ---

    def _feed(self, event: GattInput | None = None) -> None:
        super()._feed(event)
        while self.holding and any(isinstance(o, Notify) for o in self._outgoing):
            kept = [o for o in self._outgoing if not isinstance(o, Notify)]
            self._outgoing.clear()
            self._outgoing.extend(kept)
            self.held += 1
            super()._feed(Sent())  # as if it had left: the core goes on

    def _respond(self, request: Any) -> Respond:
        kind = {Read: "read", Write: "write", Subscribe: "subscribe"}[type(request)]
        value = b""
        if isinstance(request, Write):
            value = request.value
        elif isinstance(request, Subscribe):
            value = bytes([request.notify | request.indicate << 1, 0])
        scripted = self._scripted(request)
        if scripted is not None:
            self.log(kind, request.uuid, value, error=scripted.error, scripted=True)
            if scripted.error is not None:
                raise att.ATT_Error(scripted.error)
            return scripted
        try:
            answer = super()._respond(request)
        except att.ATT_Error as error:
            self.log(kind, request.uuid, value, error=int(error.error_code))
            raise
        self.log(kind, request.uuid, answer.value if kind == "read" else value)
        return answer

    def _scripted(self, request: Any) -> Respond | None:
        if isinstance(request, Write) and request.uuid == RACP:
            self.holding = False
        if not (isinstance(request, Write) and request.uuid == RACP and self.racp_script):
            return None
        how, code = self.racp_script[0]
        if how == "att":
            self.racp_script.popleft()
            return Respond(RACP, error=code)
        wanted = REPORT_NUMBER if how == "silent-count" else REPORT_STORED_RECORDS
        if not request.value or request.value[0] != wanted:
            return None  # the script answers a report (or a count); the core the rest
        self.racp_script.popleft()
        if how == "code":
            assert code is not None
            answer = bytes([0x06, 0x00, REPORT_STORED_RECORDS, code])
            self._spawn(self._indicate_own(answer))
        else:
            self.holding = True
        return Respond(RACP)

    async def _indicate_own(self, value: bytes) -> None:
        connection, characteristic = self.connection, self.characteristics[RACP]
        if connection is None:
            return
        await asyncio.sleep(0)  # after the write response
        with contextlib.suppress(Exception):  # the link may go meanwhile
            await self.device.indicate_subscriber(connection, characteristic, value)

    # --- the rogue ---

    def go_rogue(self, kind: str) -> None:
        """Pair and serve with ``kind`` of weak security from the next connection on."""
        if kind not in ROGUE_KINDS:
            raise ValueError(f"a rogue sensor is one of {ROGUE_KINDS}, not {kind!r}")
        self.rogue = kind
        self.device.pairing_config_factory = lambda connection: rogue_pairing(kind, self.passkey)
        if kind == "open":
            for characteristic in self.characteristics.values():
                characteristic.permissions = _PERMS.READABLE | _PERMS.WRITEABLE
                for descriptor in characteristic.descriptors:
                    descriptor.permissions = _PERMS.READABLE | _PERMS.WRITEABLE

    def _on_connection(self, connection: Connection) -> None:
        if self.rogue == "open":  # it asks for no security
            connection.request_pairing = lambda: None  # type: ignore[method-assign]
        super()._on_connection(connection)

    def _check_level4(self, connection: Connection) -> None:
        if self.rogue is None:
            super()._check_level4(connection)
        elif self.rogue != "open" and not connection.is_encrypted:
            raise att.ATT_Error(att.ErrorCode.INSUFFICIENT_ENCRYPTION)

    def _too_slow(self, connection: Connection) -> None:
        if self.rogue is None:
            super()._too_slow(connection)

    def _on_pairing(self, keys: PairingKeys) -> None:
        if self.rogue is None:
            super()._on_pairing(keys)

    # --- the script's hand on the link and the bond ---

    async def start(self) -> None:
        """Advertise, unless the script dropped the link (``advertise()`` ends that): the
        advertising the adapter starts by itself when a collector leaves must not race the
        script's ``drop()``, two HCI commands at once."""
        if self.paused:
            return
        self._starting += 1
        try:
            await super().start()
        finally:
            self._starting -= 1

    async def advertise(self) -> None:
        """Advertise again after ``drop()``."""
        self.paused = False
        await self.start()

    async def drop(self) -> None:
        """End the link and stop advertising until ``advertise()``."""
        self.paused = True
        while self._starting:
            await asyncio.sleep(0.01)
        await self.stop()
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.disconnect(), 10)
        while self.connection is not None:
            await asyncio.sleep(0.01)

    async def forget(self, identity: str) -> None:
        """Forget the collector's bond and its CCCD values, as a sensor reset would."""
        keystore = self.device.keystore
        if keystore is not None:
            with contextlib.suppress(KeyError):
                await keystore.delete(identity)
        self.cccds.pop(identity, None)

    async def forget_all(self) -> None:
        """Forget every bond and every CCCD value: a device that never met the collector."""
        keystore = self.device.keystore
        if keystore is not None:
            await keystore.delete_all()
        self.cccds.clear()

    def newest_offset(self) -> int | None:
        latest = self.core.store.latest()
        return None if latest is None else latest.time_offset
