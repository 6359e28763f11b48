"""Fuzzing a CGM sensor under test: ``cgmsim fuzz --target sensor --transport T``.

A rogue collector on the HCI transport finds the sensor (``--address``, else the first
advertiser of the CGM service), pairs with LE Secure Connections and the passkey (a sensor that
accepts less is not what this target is for: ``sim.links.ble.receiver_pairing``), discovers
the service through the conformance tester (``sim.conformance.tester.Tester``: ATT reads, writes
and CCCD writes, and every notification and indication from discovery on), and plays episodes of
actions on it, as the in-process BLE fuzzer does (``sim.fuzz.ble_transmitter``, whose action
format this is): ``["write", uuid, "hex:.."]`` ``["cccd", uuid, "hex:.."]`` ``["read", uuid]``.
Values are drawn from the project's strategies and recorded traffic (``sim.fuzz.corpus``) and
from what the device itself sent (its read values, notifications and indications join the
pools as the campaign goes), and mutated (``sim.fuzz.mutate``).

Each episode starts on a link with every CCCD off. Checks after every action (CGMS §3, the
spec's ATT errors, ``shared/spec/cgms.md``), each failing as an invariant of its own name:

- ``att-error``: an ATT error is one the spec allows for that write (a characteristic that is
  not writable: Write Not Permitted; a control point: Invalid Attribute Value Length, Missing or
  Invalid CRC, CCCD Improperly Configured, Procedure Already In Progress, Out of Range); a CCCD
  value that is not two octets: Invalid Attribute Value Length;
- ``write-not-permitted`` / ``cccd-length``: such writes are refused;
- ``answer-missing`` / ``answer-decodes`` / ``answer-names-request``: an accepted RACP or SOCP
  write is answered by an indication on it within ``INDICATION_WAIT_S``, which decodes and
  answers that request (RACP ``06 00 <op> rc`` or, to a count, ``05 00 n``; SOCP ``1C <op> rc``
  or the value asked for);
- ``pdu-decodes``: every notification decodes as CGM Measurement records (with the E2E-CRC the
  Feature announced), every read of a readable characteristic decodes;
- ``alive``: the device answers a read of CGM Session Run Time; when it dropped the link, it
  comes back advertising and links again within ``RELINK_S``; when Measurement notifications
  are on and no control point changed the session, a notification arrives within
  the patience (``--patience``).

A failing episode is shrunk against the device (the engine replays its sublists, each on a
fresh link) and saved as a reproducer (``target: sensor``, ``link: device``) that ``cgmsim
fuzz --replay FILE --transport T`` plays against it again. The campaign's HCI traffic is
written as a btsnoop capture. ``rate`` bounds the ATT requests per second (a real device's
safety), as ``--max-duration`` bounds the campaign.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import random
from collections.abc import Iterator
from typing import Any

from bumble import att
from bumble.core import BaseBumbleError
from bumble.device import Connection, Device, Peer
from bumble.hci import Address
from bumble.keys import MemoryKeyStore

from protocol.cgms import gatt, measurement, racp, socp
from protocol.cgms.racp import RacpOpcode
from protocol.cgms.socp import SocpOpcode
from protocol.errors import FrameError
from sim import hil
from sim.conformance.cases_gatt import parse_features
from sim.conformance.tester import Tester
from sim.fuzz import corpus
from sim.fuzz.ble_transmitter import ACTIONS, CCCD_VALUES, NOTIFYING
from sim.fuzz.device_options import DeviceOptions
from sim.fuzz.engine import Action, Failure, InvariantViolated, failure_from
from sim.fuzz.mutate import mutate, pick
from sim.fuzz.transmitter import READABLE, UUIDS, TransmitterTarget
from sim.links.ble import receiver_pairing

FUZZER_ADDRESS = "C0:CA:FE:00:00:F2"  # random static
CONNECT_S = 15.0
SETUP_S = 30.0
INDICATION_WAIT_S = 5.0
RELINK_S = 30.0
MEASUREMENT, RACP, SOCP = gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid
SST, SRT = gatt.SESSION_START_TIME.uuid, gatt.SESSION_RUN_TIME.uuid
WRITABLE = (RACP, SOCP, SST)
CONTROL_POINT_ERRORS = frozenset(
    {
        att.ErrorCode.INVALID_ATTRIBUTE_LENGTH,
        0x80,  # Missing CRC (CGMS §1.8)
        0x81,  # Invalid CRC
        0xFD,  # CCCD Improperly Configured (Core Supplement Part B 1.2)
        0xFE,  # Procedure Already In Progress
        0xFF,  # Out of Range
    }
)
NOT_WRITABLE_ERRORS = frozenset({att.ErrorCode.WRITE_NOT_PERMITTED})
SESSION_CHANGING = (
    SocpOpcode.START_SESSION,
    SocpOpcode.STOP_SESSION,
    SocpOpcode.SET_COMMUNICATION_INTERVAL,
)
HANG_SECONDS = 600.0  # the link's own timeouts end a stuck step long before


def _fail(name: str, message: str) -> InvariantViolated:
    return InvariantViolated(name, message)


class OwnLoop:
    """A device campaign's asyncio loop, its link kept across the engine's synchronous
    episodes: ``open()`` runs ``_open``, ``close()`` runs ``_close`` (and whatever entered
    ``_stack``)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()

    def open(self) -> None:
        self.loop.run_until_complete(self._open())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self._close())
        self.loop.close()

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        await self._stack.aclose()


class SensorUnderTest(OwnLoop):
    """The target ``sensor`` over ``link: device``: a campaign's rogue collector on one HCI
    transport, kept open (with its bond) across episodes. ``open()`` before, ``close()``
    after; the engine's ``generate``/``execute`` run in between."""

    name = "sensor"
    link = "device"
    actions = ACTIONS
    hang_seconds = HANG_SECONDS

    def __init__(self, options: DeviceOptions, *, seeds: corpus.Seeds | None = None) -> None:
        self.options = options
        self.transport_spec, self.address = options.transport, options.address
        self.passkey, self.rate = options.passkey, options.rate
        self.notify_within_s, self.capture = options.patience_s, options.capture
        self.seeds = seeds or corpus.seeds()
        self.pools = {name: list(values) for name, values in self.seeds.by_name.items()}
        super().__init__()
        self.device: Device | None = None
        self.target: Address | None = None
        self.tester: Tester | None = None
        self.e2e = False
        self.links = 0
        self._last_request = 0.0

    # --- the campaign's link ---

    async def _open(self) -> None:
        transport = await self._stack.enter_async_context(await hil._open(self.transport_spec))
        device = Device.with_hci(
            "cgmsim-fuzz", Address(FUZZER_ADDRESS), transport.source, transport.sink
        )
        device.keystore = MemoryKeyStore()  # the bond lives as long as the campaign
        device.pairing_config_factory = lambda connection: receiver_pairing(self.passkey)
        capture_into(device, self.capture, self._stack)
        await device.power_on()
        self.device = device
        if self.address is not None:
            self.target = Address(self.address)
        else:
            self.target = await hil.scan_for_cgm(device)
        await self._link()

    async def _close(self) -> None:
        tester = self.tester
        if tester is not None and self._connected():
            with contextlib.suppress(BaseBumbleError, TimeoutError):
                await asyncio.wait_for(tester.connection.disconnect(), 5)
        await self._stack.aclose()

    def _connected(self) -> bool:
        tester, device = self.tester, self.device
        return (
            tester is not None
            and device is not None
            and (tester.connection.handle in device.connections)
        )

    async def _link(self) -> Tester:
        """Connect, pair (the first time) or encrypt with the bond, discover, read Feature."""
        device, target = self.device, self.target
        assert device is not None and target is not None
        connection: Connection = await asyncio.wait_for(
            device.connect(target, timeout=CONNECT_S), CONNECT_S + 5
        )
        self.links += 1
        await asyncio.wait_for(connection.pair(), SETUP_S)
        identity = connection.peer_address  # bumble resolves a private address once bonded
        resolver = device.address_resolver
        if resolver is not None and resolver.can_resolve_to(identity):
            self.target = identity
        tester = Tester(device, connection, Peer(connection))
        await asyncio.wait_for(tester.peer.discover_all(), SETUP_S)
        tester.attach()
        missing = set(UUIDS) - set(tester.chars)
        if missing:
            raise ConnectionError(f"the device has no {', '.join(f'0x{u:04X}' for u in missing)}")
        feature, _ = await asyncio.wait_for(tester.read(gatt.FEATURE.uuid), SETUP_S)
        if feature is not None:
            with contextlib.suppress(ValueError):
                tester.features = parse_features(feature)
                self.e2e = tester.features.e2e_crc
        self.tester = tester
        return tester

    async def _fresh(self) -> Tester:
        """A link with every CCCD off, for an episode's start (the same link while the device
        keeps it: a sensor's own state is not reset by a new link anyway)."""
        if not self._connected():
            await self._relink()
        tester = self.tester
        assert tester is not None
        for uuid in NOTIFYING:
            await asyncio.wait_for(tester.write_cccd(uuid, b"\x00\x00"), SETUP_S)
        tester.inbox.clear()
        return tester

    async def _relink(self) -> None:
        """The device dropped the link: it must come back advertising and link again."""
        loop = self.loop
        deadline = loop.time() + RELINK_S
        last: Exception | None = None
        while loop.time() < deadline:
            try:
                await self._link()
                return
            except (BaseBumbleError, TimeoutError, ConnectionError, att.ATT_Error) as error:
                last = error
                await asyncio.sleep(0.5)
        raise _fail("alive", f"the device did not link again within {RELINK_S:g} s ({last})")

    def describe(self) -> dict[str, Any]:
        """What the JSON summary says about the device campaign."""
        return {
            "transport": self.transport_spec,
            "peer": str(self.target),
            "links": self.links,
            "e2e_crc": self.e2e,
            "capture": None if self.capture is None else str(self.capture),
        }

    # --- generation ---

    def generate(self, rng: random.Random, count: int) -> list[Action]:
        draw = rng.random
        actions: list[Action] = [
            ["cccd", MEASUREMENT, "hex:0100"],
            ["cccd", RACP, "hex:0200"],
            ["cccd", SOCP, "hex:0200"],
        ]
        while len(actions) < count:
            roll = draw()
            if roll < 0.35:
                request = TransmitterTarget._racp_request(rng)
                actions.append(["write", RACP, "hex:" + request.hex()])
            elif roll < 0.7:
                uuid = pick(rng, WRITABLE) if draw() < 0.9 else pick(rng, UUIDS)
                name = corpus.NAME_OF[uuid]
                pool = self.pools.get(name) or self.pools["racp"]
                data = pick(rng, pool)
                if draw() < 0.7:
                    data = mutate(rng, data, pool)
                actions.append(["write", uuid, "hex:" + data.hex()])
            elif roll < 0.85:
                actions.append(["read", pick(rng, UUIDS)])
            else:
                value = pick(rng, CCCD_VALUES) if draw() < 0.8 else rng.randbytes(int(draw() * 4))
                actions.append(["cccd", pick(rng, NOTIFYING), "hex:" + value.hex()])
        return actions[:count]

    def _learn(self, uuid: int, value: bytes) -> None:
        """What the device sent becomes seed material (mutations of its own values)."""
        name = corpus.NAME_OF.get(uuid)
        if name is not None and value and value not in self.pools.setdefault(name, []):
            self.pools[name].append(value)

    # --- execution ---

    def execute(self, actions: list[Action]) -> tuple[int, Failure | None]:
        with quiet():
            return self.loop.run_until_complete(self._episode(actions))

    async def _episode(self, actions: list[Action]) -> tuple[int, Failure | None]:
        index = 0
        try:
            tester = await self._fresh()
            episode = _Episode(self, tester)
            for action in actions:
                await self._paced()
                await episode.apply(action)
                await self._paced()
                await episode.alive()
                index += 1
        except InvariantViolated as error:
            return index + 1, failure_from(error, index)
        except TimeoutError:
            found = _fail("att-answer", f"no answer to {actions[index]} within {SETUP_S:g} s")
            return index + 1, failure_from(found, index)
        except (BaseBumbleError, ConnectionError, att.ATT_Error):
            # the link went during a request: alive if the device comes back (the episode
            # ends there, its state went with the link)
            try:
                await self._relink()
            except InvariantViolated as gone:
                return index + 1, failure_from(gone, index)
            return index + 1, None
        return len(actions), None

    async def _paced(self) -> None:
        """At most ``rate`` requests a second."""
        loop = self.loop
        wait = self._last_request + 1 / self.rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_request = loop.time()


class _Episode:
    def __init__(self, target: SensorUnderTest, tester: Tester) -> None:
        self.target, self.tester = target, tester
        self.notifying_since: float | None = None
        self.session_changed = False
        self.seen = 0  # inbox entries checked

    async def apply(self, action: Action) -> None:
        kind, uuid = action[0], int(action[1])
        if kind == "read":
            await self._read(uuid)
        elif kind == "cccd":
            await self._cccd(uuid, bytes.fromhex(action[2][4:]))
        else:
            await self._write(uuid, bytes.fromhex(action[2][4:]))
        self._check_inbox()

    async def _read(self, uuid: int) -> None:
        value, _ = await asyncio.wait_for(self.tester.read(uuid), SETUP_S)
        codec = READABLE.get(uuid)
        if value is not None and codec is None:
            raise _fail("read-not-permitted", f"0x{uuid:04X} is not readable: {value.hex()}")
        if value is None or codec is None:
            return  # a refusal of a readable value is judged by ``alive``
        self.target._learn(uuid, value)
        try:
            codec.decode(value, self.target.e2e)
        except FrameError as problem:
            raise _fail("pdu-decodes", f"read 0x{uuid:04X} -> {value.hex()}: {problem}") from None

    async def _cccd(self, uuid: int, value: bytes) -> None:
        error = await asyncio.wait_for(self.tester.write_cccd(uuid, value), SETUP_S)
        if len(value) != 2:
            if error is None:
                raise _fail("cccd-length", f"CCCD 0x{uuid:04X} took {value.hex() or 'nothing'}")
            if error != att.ErrorCode.INVALID_ATTRIBUTE_LENGTH:
                raise _fail("att-error", f"CCCD 0x{uuid:04X} {value.hex()}: ATT 0x{error:02X}")
        elif uuid == MEASUREMENT and error is None:
            on = bool(value[0] & 1)
            if on and self.notifying_since is None:
                self.notifying_since = self.target.loop.time()
            elif not on:
                self.notifying_since = None

    async def _write(self, uuid: int, value: bytes) -> None:
        tester = self.tester
        mark = tester.mark()
        error = await asyncio.wait_for(tester.write(uuid, value), SETUP_S)
        if uuid not in WRITABLE:
            if error is None:
                raise _fail("write-not-permitted", f"0x{uuid:04X} accepted {value.hex()}")
            if error not in NOT_WRITABLE_ERRORS:
                raise _fail("att-error", f"write 0x{uuid:04X} {value.hex()}: ATT 0x{error:02X}")
            return
        if error is not None:
            if error not in CONTROL_POINT_ERRORS:
                raise _fail("att-error", f"write 0x{uuid:04X} {value.hex()}: ATT 0x{error:02X}")
            return
        if uuid == SST:
            return
        if uuid == SOCP and value[:1] and value[0] in SESSION_CHANGING:
            self.session_changed = True
        at = await tester.wait_for(
            lambda r: r.kind == "I" and r.uuid == uuid, mark, INDICATION_WAIT_S
        )
        if at is None:
            message = (
                f"write 0x{uuid:04X} {value.hex()}: no indication within {INDICATION_WAIT_S:g} s"
            )
            raise _fail("answer-missing", message)
        answer = tester.inbox[at].value
        self._check_answer(uuid, value, answer)

    def _check_answer(self, uuid: int, request: bytes, answer: bytes) -> None:
        what = f"0x{uuid:04X} {request.hex()} answered {answer.hex()}"
        opcode = request[0] if request else 0
        try:
            if uuid == RACP:
                frame = racp.decode(answer)
                if frame.opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
                    answers = RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS
                else:
                    answers = frame.request_opcode
            else:
                reply = socp.decode(answer, self.target.e2e)
                answers = (
                    reply.request_opcode
                    if reply.opcode == SocpOpcode.RESPONSE_CODE
                    else reply.opcode - 1
                )
        except FrameError as problem:
            raise _fail("answer-decodes", f"{what}: {problem}") from None
        if answers != opcode:
            raise _fail("answer-names-request", f"{what}: it answers opcode 0x{answers:02X}")

    def _check_inbox(self) -> None:
        inbox = self.tester.inbox
        for received in inbox[self.seen :]:
            self.target._learn(received.uuid, received.value)
            if received.kind == "N" and received.uuid == MEASUREMENT:
                try:
                    measurement.decode(received.value, self.target.e2e)
                except FrameError as problem:
                    message = f"notification {received.value.hex()}: {problem}"
                    raise _fail("pdu-decodes", message) from None
        self.seen = len(inbox)

    async def alive(self) -> None:
        target, tester = self.target, self.tester
        if not target._connected():  # alive when it comes back advertising and links again
            await target._relink()
            self.tester, self.seen = target.tester, 0  # type: ignore[assignment]
            self.notifying_since = None  # CCCDs are off on the new link
            return
        value, error = await asyncio.wait_for(tester.read(SRT), SETUP_S)
        if value is None:
            raise _fail("alive", f"Session Run Time read refused (ATT 0x{error:02X})")
        since = self.notifying_since
        now = target.loop.time()
        if since is None or self.session_changed or now - since < target.notify_within_s:
            return
        last = max(
            (r.at for r in tester.inbox if r.kind == "N" and r.uuid == MEASUREMENT), default=since
        )
        if now - last > target.notify_within_s:
            raise _fail("alive", f"no notification for {now - last:.1f} s while subscribed")


def capture_into(
    device: Device, path: pathlib.Path | None, stack: contextlib.AsyncExitStack
) -> None:
    """``device``'s HCI traffic written to ``path`` as a btsnoop capture (closed with
    ``stack``)."""
    if path is None:
        return
    from bumble.snoop import BtSnooper

    path.parent.mkdir(parents=True, exist_ok=True)
    device.host.snooper = BtSnooper(stack.enter_context(path.open("wb")))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """bumble's own warnings about a device that misbehaves are the findings' business."""
    logger = logging.getLogger("bumble")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
