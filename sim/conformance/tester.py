"""The tester's side of the link to the device under test (the IUT, in the test suite's
words): ATT reads and writes, CCCD writes, control-point procedures, each logged as a frame
line (``W 2A52 0101``, ``I 2A52 06000101``, ``N 2AA7 …``, ``E 2A52 ATT 0xFD``) so that a verdict
can show the frames that decided it.

Notifications and indications are collected in ``inbox`` from the moment of discovery,
whatever the CCCDs say (``sim.links.cgms_peer.listen``); a procedure's notifications are the
ones that arrive between its write and its response indication.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bumble import att
from bumble.device import Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy

from protocol.cgms import gatt
from sim.conformance import wire
from sim.conformance.verdicts import CaseFailed, Features, Inconclusive, NotApplicable
from sim.links.cgms_peer import cgms_attributes, listen

if TYPE_CHECKING:
    from sim.conformance.attacker import Attacker

MEASUREMENT, FEATURE, STATUS = gatt.MEASUREMENT.uuid, gatt.FEATURE.uuid, gatt.STATUS.uuid
SST, SRT = gatt.SESSION_START_TIME.uuid, gatt.SESSION_RUN_TIME.uuid
RACP, SOCP = gatt.RACP.uuid, gatt.SOCP.uuid
INDICATION_WAIT_S = 5.0  # for a control point's answer (the device's own timeout is 30 s)
RECORDS_WAIT_S = 20.0  # for the records a case needs to appear
BOOKKEEPING_PAUSE_S = 0.05  # around the tester's own record snapshots (see ``snapshot``)
NOTIFY_ON, INDICATE_ON, OFF = b"\x01\x00", b"\x02\x00", b"\x00\x00"


@dataclass(frozen=True)
class Received:
    kind: str  # "N" notification, "I" indication
    uuid: int
    value: bytes
    at: float


@dataclass
class Exchange:
    """One control-point write and what came of it."""

    error: int | None  # the ATT error of the write, if refused
    response: bytes | None  # the indication answering it (None: none within the wait)
    notifications: list[bytes] = field(default_factory=list)


class Tester:
    """The link to the IUT. Cases use ``read``/``write``/``racp``/``socp`` and the checks."""

    def __init__(
        self,
        device: Device,
        connection: Connection,
        peer: Peer,
        security_requests: list[int] | None = None,
    ) -> None:
        self.device, self.connection, self.peer = device, connection, peer
        self.chars: dict[int, CharacteristicProxy[bytes]] = {}
        self.cccds: dict[int, DescriptorProxy | None] = {}
        self.features: Features | None = None
        self.inbox: list[Received] = []
        self.frames: list[str] = []
        self.arrived = asyncio.Event()
        # SMP auth_req of each Security Request, collected from the connection's creation on
        # (see ``listen_for_security_requests``), or from now on
        self.security_requests: list[int] = (
            security_requests if security_requests is not None else []
        )
        self.connected_at = asyncio.get_running_loop().time()
        self.paired = False
        self.pairing_error: str | None = None
        self.cache: dict[str, Any] = {}  # what one case learnt for the next (record offsets)
        self.attacks: Attacker | None = None  # separate centrals, for the security attacks
        if security_requests is None:
            connection.on(connection.EVENT_SECURITY_REQUEST, self.security_requests.append)

    # --- setting up ---

    def attach(self) -> None:
        """After discovery: the CGMS attributes, and every PDU on them into the inbox."""
        self.chars, self.cccds = cgms_attributes(self.peer)
        listen(self.peer, self.chars, self._arrived)

    def _arrived(self, uuid: int, value: bytes, indication: bool) -> None:
        kind = "I" if indication else "N"
        self.inbox.append(Received(kind, uuid, value, asyncio.get_running_loop().time()))
        self.arrived.set()

    @property
    def e2e(self) -> bool:
        return self.features is not None and self.features.e2e_crc

    def log(self, line: str) -> None:
        self.frames.append(line)

    # --- checks ---

    @staticmethod
    def fail(reason: str) -> CaseFailed:
        return CaseFailed(reason)

    @staticmethod
    def check(condition: object, reason: str) -> None:
        if not condition:
            raise CaseFailed(reason)

    @staticmethod
    def inconclusive(reason: str) -> Inconclusive:
        return Inconclusive(reason)

    @staticmethod
    def not_applicable(reason: str) -> NotApplicable:
        return NotApplicable(reason)

    def char(self, uuid: int) -> CharacteristicProxy[bytes]:
        char = self.chars.get(uuid)
        if char is None:
            raise Inconclusive(f"0x{uuid:04X} was not discovered")
        return char

    def cccd(self, uuid: int) -> DescriptorProxy:
        cccd = self.cccds.get(uuid)
        if cccd is None:
            raise Inconclusive(f"0x{uuid:04X} has no CCCD")
        return cccd

    # --- ATT ---

    async def read(self, uuid: int) -> tuple[bytes | None, int | None]:
        """(value, None) or (None, ATT error code)."""
        return await self._read(self.char(uuid), f"{uuid:04X}")

    async def read_cccd(self, uuid: int) -> tuple[bytes | None, int | None]:
        return await self._read(self.cccd(uuid), f"{uuid:04X}.CCCD")

    async def _read(self, proxy: Any, name: str) -> tuple[bytes | None, int | None]:
        try:
            value = bytes(await self.peer.read_value(proxy))
        except att.ATT_Error as error:
            self.log(f"R {name} -> ATT error 0x{error.error_code:02X}")
            return None, error.error_code
        self.log(f"R {name} -> {value.hex()}")
        return value, None

    async def write(self, uuid: int, value: bytes) -> int | None:
        """Write with response; the ATT error code, or None when accepted."""
        return await self._write(self.char(uuid), f"{uuid:04X}", value)

    async def write_cccd(self, uuid: int, value: bytes) -> int | None:
        return await self._write(self.cccd(uuid), f"{uuid:04X}.CCCD", value)

    async def _write(self, proxy: Any, name: str, value: bytes) -> int | None:
        try:
            await self.peer.write_value(proxy, value, with_response=True)
        except att.ATT_Error as error:
            self.log(f"W {name} {value.hex()} -> ATT error 0x{error.error_code:02X}")
            return error.error_code
        self.log(f"W {name} {value.hex()} -> ok")
        return None

    async def must_read(self, uuid: int, what: str = "") -> bytes:
        value, error = await self.read(uuid)
        if value is None:
            raise CaseFailed(f"reading 0x{uuid:04X}{what} refused with ATT error 0x{error:02X}")
        return value

    # --- notifications and indications ---

    def mark(self) -> int:
        return len(self.inbox)

    async def wait_for(
        self, matches: Callable[[Received], bool], since: int, timeout_s: float
    ) -> int | None:
        """Index in the inbox of the first PDU from ``since`` on that ``matches``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        at = since
        while True:
            while at < len(self.inbox):
                if matches(self.inbox[at]):
                    return at
                at += 1
            left = deadline - loop.time()
            if left <= 0:
                return None
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)

    async def settle(self, seconds: float = 0.3) -> None:
        await asyncio.sleep(seconds)

    def notifications(self, since: int, until: int | None = None) -> list[bytes]:
        return [r.value for r in self.inbox[since:until] if r.kind == "N" and r.uuid == MEASUREMENT]

    # --- control points ---

    async def control_point(
        self, uuid: int, value: bytes, wait_s: float = INDICATION_WAIT_S
    ) -> Exchange:
        """Write ``value`` as is to RACP or SOCP and wait for the indication answering it."""
        mark = self.mark()
        error = await self.write(uuid, value)
        if error is not None:
            return Exchange(error, None)
        at = await self.wait_for(lambda r: r.kind == "I" and r.uuid == uuid, mark, wait_s)
        if at is None:
            self.log(f"(no indication on {uuid:04X} within {wait_s:g} s)")
            return Exchange(None, None, self.notifications(mark))
        response = self.inbox[at].value
        notes = self.notifications(mark, at)
        for note in notes:
            self.log(f"N {MEASUREMENT:04X} {note.hex()}")
        self.log(f"I {uuid:04X} {response.hex()}")
        return Exchange(None, response, notes)

    async def racp(self, value: bytes, wait_s: float = INDICATION_WAIT_S) -> Exchange:
        return await self.control_point(RACP, value, wait_s)

    async def socp(self, body: bytes, crc: bool | None = None) -> Exchange:
        """A SOCP request; the E2E-CRC is appended when the device uses it (``crc`` forces)."""
        add = self.e2e if crc is None else crc
        return await self.control_point(SOCP, wire.with_crc(body) if add else body)

    def socp_body(self, exchange: Exchange, what: str) -> bytes:
        """The SOCP answer without its CRC (checked when the device uses E2E-CRC)."""
        self.answered(exchange, what)
        assert exchange.response is not None
        value = exchange.response
        if self.e2e:
            self.check(wire.crc_ok(value), f"{what}: SOCP answer {value.hex()} has a bad E2E-CRC")
            return value[:-2]
        return value

    def answered(self, exchange: Exchange, what: str) -> None:
        if exchange.error is not None:
            raise CaseFailed(f"{what}: the write was refused with ATT error 0x{exchange.error:02X}")
        if exchange.response is None:
            raise CaseFailed(f"{what}: no indication answered it within {INDICATION_WAIT_S:g} s")

    def expect_racp(self, exchange: Exchange, expected: bytes, what: str) -> None:
        self.answered(exchange, what)
        got = exchange.response
        self.check(
            got == expected,
            f"{what}: expected RACP {expected.hex(' ')}, got {got.hex(' ') if got else None}",
        )

    def expect_socp(self, exchange: Exchange, request: int, code: int, what: str) -> None:
        body = self.socp_body(exchange, what)
        expected = wire.socp_response(request, code)
        self.check(
            body == expected, f"{what}: expected SOCP {expected.hex(' ')}, got {body.hex(' ')}"
        )

    def expect_att_error(self, error: int | None, codes: tuple[int, ...], what: str) -> None:
        names = " or ".join(f"0x{code:02X}" for code in codes)
        if error is None:
            raise CaseFailed(f"{what}: accepted, expected ATT error {names}")
        self.check(error in codes, f"{what}: ATT error 0x{error:02X}, expected {names}")

    # --- preambles (CGMS.TS 4.2.3, 4.2.4) ---

    async def configure(self, uuid: int, value: bytes) -> None:
        error = await self.write_cccd(uuid, value)
        if error is not None:
            raise Inconclusive(f"preamble: CCCD of 0x{uuid:04X} write refused (0x{error:02X})")

    async def preamble_racp(self) -> None:
        await self.configure(MEASUREMENT, NOTIFY_ON)
        await self.configure(RACP, INDICATE_ON)

    async def preamble_socp(self) -> None:
        await self.configure(MEASUREMENT, NOTIFY_ON)
        await self.configure(SOCP, INDICATE_ON)

    # --- records ---

    def parse(self, notes: list[bytes]) -> list[wire.Record]:
        found: list[wire.Record] = []
        for note in notes:
            try:
                found += wire.records(note, self.e2e)
            except ValueError as error:
                raise CaseFailed(f"CGM Measurement {note.hex()}: {error}") from None
        return found

    async def count(self, operator: bytes = b"\x01") -> int:
        exchange = await self.racp(b"\x04" + operator)
        self.answered(exchange, "Report Number of Stored Records")
        value = exchange.response or b""
        if len(value) != 4 or value[:2] != b"\x05\x00":
            raise CaseFailed(f"Report Number of Stored Records answered {value.hex(' ')}")
        return int.from_bytes(value[2:], "little")

    async def all_records(self) -> list[wire.Record]:
        """Report Stored Records, All: the records, checked, in the order sent."""
        exchange = await self.racp(b"\x01\x01")
        if exchange.response == wire.racp_response(0x01, 0x06):
            return []
        self.expect_racp(exchange, wire.racp_response(0x01, 0x01), "Report Stored Records, All")
        return self.parse(exchange.notifications)

    async def snapshot(self) -> list[wire.Record]:
        """The stored records, oldest first, for the tester's own bookkeeping (not a step of a
        test suite case): a 'report all' with a pause before and after it, standing for the
        preamble that separates the test suite's cases (it reconnects). Procedures within a case go
        back to back, as a collector may send them (issue 13 defect 5)."""
        await self.settle(BOOKKEEPING_PAUSE_S)
        found = await self.all_records()
        await self.settle(BOOKKEEPING_PAUSE_S)
        # oldest first, each once: a live record may be notified during the report as well
        return sorted({r.time_offset: r for r in found}.values(), key=lambda r: r.time_offset)

    async def need_records(self, n: int, timeout_s: float = RECORDS_WAIT_S) -> list[wire.Record]:
        """At least ``n`` stored records (waiting for the sensor to make them), all of them."""
        await self.preamble_racp()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            found = await self.snapshot()
            if len(found) >= n:
                return found
            if loop.time() > deadline:
                raise Inconclusive(f"{len(found)} records stored after {timeout_s:g} s; needs {n}")
            await asyncio.sleep(0.5)
