"""Fuzz target over BLE: a rogue client against our transmitter's GATT server.

Each episode runs on a fresh virtual-time loop (``sim.virtual_loop``): the transmitter core,
an hour into a G7 session, served by ``sim.links.ble.BleTransmitter`` on one in-process bumble
device, and a rogue client on another, connected over bumble's ``LocalLink`` and paired with
the passkey (LE Secure Connections, as a receiver would). The client writes generated and
mutated values to every CGMS characteristic and raw values to every CCCD, and reads them.
Actions (JSON-ready lists): ``["write", uuid, "hex:.."]`` ``["cccd", uuid, "hex:.."]``
``["read", uuid]`` ``["step"]`` (to the next sample, the core's timers on the way)
``["reconnect"]`` (drop the link, connect and pair again).

Invariants after every action:

- no exception escapes the core or the adapter (an exception on the loop counts);
- every ATT request is answered, with a value or an ATT error, within the ATT timeout; a read
  of a readable characteristic returns a value that decodes, of anything else an ATT error; a
  write to a characteristic that is not writable, and a CCCD write that is not two octets
  (Invalid Attribute Value Length), get an ATT error;
- every notification decodes as CGM Measurement records, every indication as a RACP or SOCP
  frame, and answers a write that was accepted (a RACP count equals the selection computed
  from the store when it was written, a delete succeeds exactly when something is selected);
- at each step and at the end, every accepted RACP and SOCP write has had its answer, and the
  transmitter keeps serving: a Session Run Time read succeeds and decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

from bumble import att
from bumble.device import Connection, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy
from bumble.link import LocalLink

from firmware.events import SensorSample
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, measurement, racp, socp
from protocol.cgms.racp import RacpOpcode, RacpResponseCode
from protocol.cgms.socp import SocpOpcode
from protocol.errors import ControlPointError, FrameError
from sim.fuzz import corpus
from sim.fuzz.engine import Action, Failure, Hang, InvariantViolated, failure_from
from sim.fuzz.mutate import pick
from sim.fuzz.schema import Table, flag, hex_value, one_of
from sim.fuzz.transmitter import (
    CHECKED_RACP,
    READABLE,
    START_MS,
    UUIDS,
    TransmitterTarget,
    select,
)
from sim.links.ble import BleTransmitter, in_process_device, receiver_pairing
from sim.links.cgms_peer import cgms_attributes, listen
from sim.virtual_loop import run_virtual

SAMPLE_MS = corpus.SAMPLE_MS
PASSKEY = 123_456
ATT_TIMEOUT_S = 31.0  # bumble's ATT transaction timeout is 30 s (Core Vol 3 Part F 3.3.3)
SETTLE_S = 0.05  # virtual: the in-process link delivers at once, this lets every task run
MEASUREMENT, RACP, SOCP = gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid
SRT = gatt.SESSION_RUN_TIME.uuid
WRITABLE = (RACP, SOCP, gatt.SESSION_START_TIME.uuid)
NOTIFYING = (MEASUREMENT, RACP, SOCP)
ACTIONS: Table = {
    "setup": (flag,),
    "write": (one_of(UUIDS, "CGMS characteristic"), hex_value),
    "cccd": (one_of(NOTIFYING, "characteristic with a CCCD"), hex_value),
    "read": (one_of(UUIDS, "CGMS characteristic"),),
    "step": (),
    "reconnect": (),
}
CCCD_VALUES = (b"\x00\x00", b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\xff\xff", b"", b"\x01")


def _fail(name: str, message: str) -> InvariantViolated:
    return InvariantViolated(name, message)


@contextlib.contextmanager
def quiet_links() -> Iterator[None]:
    """bumble's and the adapters' warnings (indications unconfirmed, links lost) are the
    fuzzer's doing, not findings: kept off stderr during an episode."""
    loggers = [logging.getLogger(name) for name in ("bumble", "sim.links")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def witness(core: Any, names: tuple[str, ...], escaped: list[BaseException]) -> None:
    """Note the first exception out of these methods of a core (bumble or the adapter would
    turn it into an ATT error or a log line) and raise it on; the core is otherwise untouched."""

    def watched(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any) -> Any:
            try:
                return method(*args)
            except Exception as error:
                escaped.append(error)
                raise

        return call

    for name in names:
        setattr(core, name, watched(getattr(core, name)))


class BleTransmitterTarget(TransmitterTarget):
    name = "transmitter"
    link = "ble"
    actions: Table = ACTIONS

    def generate(self, rng: random.Random, count: int) -> list[Action]:
        draw = rng.random
        actions: list[Action] = [["setup", draw() < 0.5]]
        subscribe: list[Action] = [
            ["cccd", MEASUREMENT, "hex:0100"],
            ["cccd", RACP, "hex:0200"],
            ["cccd", SOCP, "hex:0200"],
        ]
        if draw() < 0.9:
            actions += subscribe
        while len(actions) < count:
            roll = draw()
            if roll < 0.55:
                actions.append(self._write(rng))
            elif roll < 0.65:
                actions.append(["read", pick(rng, UUIDS)])
            elif roll < 0.75:
                value = pick(rng, CCCD_VALUES) if draw() < 0.8 else rng.randbytes(int(draw() * 4))
                actions.append(["cccd", pick(rng, NOTIFYING), "hex:" + value.hex()])
            elif roll < 0.98:
                actions.append(["step"])
            else:
                # As a receiver does on every connection, CCCDs are written again: bumble
                # forgets them on disconnection while the core keeps a bonded collector's
                # (a known defect of sim.links.ble, kept in tests/fuzz_corpus).
                actions += [["reconnect"], *subscribe]
        return actions[:count]

    def execute(self, actions: list[Action]) -> tuple[int, Failure | None]:
        e2e = bool(actions and actions[0][0] == "setup" and actions[0][1])
        core = self.make_transmitter(TransmitterConfig(self.profile, e2e_crc=e2e))
        for now in range(SAMPLE_MS, START_MS, SAMPLE_MS):
            core.sample(SensorSample(corpus.counts_at(now)), now)
        with quiet_links():
            return run_virtual(_BleRun(core, e2e).play(actions), start=START_MS / 1000)


class _BleRun:
    def __init__(self, core: Transmitter, e2e: bool) -> None:
        self.escaped: list[BaseException] = []
        witness(core, ("receive", "sample", "handle_timer"), self.escaped)
        self.core = core
        self.e2e = e2e
        self.problems: list[BaseException] = []  # found in callbacks, raised after the action
        self.owed: dict[int, list[tuple[int, int | None]]] = {RACP: [], SOCP: []}
        self.connection: Connection | None = None
        self.peer: Peer | None = None
        self.chars: dict[int, CharacteristicProxy[bytes]] = {}
        self.cccds: dict[int, DescriptorProxy] = {}

    def now_ms(self) -> int:
        return round(asyncio.get_running_loop().time() * 1000)

    async def play(self, actions: list[Action]) -> tuple[int, Failure | None]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: self._loop_error(context))
        link = LocalLink()
        self.server_device = in_process_device(link, "tx", "F0:F0:F0:F0:F0:F1")
        self.client = in_process_device(link, "rogue", "F0:F0:F0:F0:F0:F2")
        self.client.pairing_config_factory = lambda connection: receiver_pairing(PASSKEY)
        self.server = BleTransmitter(self.server_device, self.core, self.now_ms, passkey=PASSKEY)
        at = [0]  # the action being played
        try:
            await self.server_device.power_on()
            await self.client.power_on()
            await self.server.start()
            await self._connect()
            for action in actions:
                await self._apply(action)
                self._raise_found()
                at[0] += 1
            at[0] = max(0, len(actions) - 1)
            await self._check_serving()
        except Exception as error:
            return at[0] + 1, failure_from(error, at[0])
        finally:
            await self._close()
        return len(actions), None

    def _loop_error(self, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, Exception) and not isinstance(error, asyncio.CancelledError):
            self.problems.append(error)

    def _raise_found(self) -> None:
        if self.escaped:
            raise self.escaped[0]
        if self.problems:
            raise self.problems[0]

    async def _close(self) -> None:
        logging.disable(logging.WARNING)  # the teardown's own complaints are not findings
        try:
            await self.server.stop()
            if self.connection is not None and self.connection.handle in self.client.connections:
                await asyncio.wait_for(self.connection.disconnect(), ATT_TIMEOUT_S)
        except Exception:
            pass
        finally:
            logging.disable(logging.NOTSET)

    # --- the link ---

    async def _connect(self) -> None:
        self.owed = {RACP: [], SOCP: []}
        connection = await asyncio.wait_for(
            self.client.connect(self.server_device.random_address), ATT_TIMEOUT_S
        )
        self.connection = connection
        await asyncio.wait_for(connection.pair(), ATT_TIMEOUT_S)
        peer = Peer(connection)
        await asyncio.wait_for(peer.discover_all(), ATT_TIMEOUT_S)
        self.peer = peer
        self.chars, cccds = cgms_attributes(peer)
        assert set(self.chars) == set(UUIDS), f"characteristics missing: {set(UUIDS)}"
        for uuid in NOTIFYING:
            cccd = cccds.get(uuid)
            assert cccd is not None, f"no CCCD on 0x{uuid:04X}"
            self.cccds[uuid] = cccd
        # Listen on every notifying characteristic, whatever the CCCDs say.
        listen(peer, self.chars, lambda uuid, value, indication: self._pdu(uuid, value, indication))

    async def _reconnect(self) -> None:
        connection = self.connection
        if connection is not None and connection.handle in self.client.connections:
            gone: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            connection.once(connection.EVENT_DISCONNECTION, gone.set_result)
            await asyncio.wait_for(connection.disconnect(), ATT_TIMEOUT_S)
            await asyncio.wait_for(gone, ATT_TIMEOUT_S)
        await asyncio.sleep(0.1)  # the transmitter advertises again
        await self._connect()

    # --- actions ---

    async def _apply(self, action: Action) -> None:
        kind = action[0]
        if kind == "setup":
            return
        if kind == "step":
            await self._step()
        elif kind == "reconnect":
            await self._reconnect()
        elif kind == "read":
            await self._read(int(action[1]))
        elif kind == "write":
            await self._write(int(action[1]), bytes.fromhex(action[2][4:]))
        elif kind == "cccd":
            await self._write_cccd(int(action[1]), bytes.fromhex(action[2][4:]))
        await asyncio.sleep(SETTLE_S)

    async def _request(self, what: str, request: Any) -> att.ATT_Error | bytes | None:
        """The answer to one ATT request: its value, or the ATT error."""
        try:
            return await asyncio.wait_for(request, ATT_TIMEOUT_S)
        except att.ATT_Error as error:
            return error
        except TimeoutError:
            raise _fail("att-answer", f"{what}: no answer within {ATT_TIMEOUT_S:g} s") from None

    async def _read(self, uuid: int) -> None:
        assert self.peer is not None
        answer = await self._request(f"read 0x{uuid:04X}", self.peer.read_value(self.chars[uuid]))
        codec = READABLE.get(uuid)
        if codec is None:
            if not isinstance(answer, att.ATT_Error):
                raise _fail("read-not-permitted", f"0x{uuid:04X} is not readable: {answer!r}")
            return
        if not isinstance(answer, att.ATT_Error):
            try:
                codec.decode(bytes(answer or b""), self.e2e)
            except FrameError as error:
                raise _fail("read-value-decodes", f"0x{uuid:04X}: {error}") from None

    async def _write(self, uuid: int, value: bytes) -> None:
        assert self.peer is not None
        entry = None
        if uuid in self.owed:
            entry = (value[0] if value else 0, self._selection_size(uuid, value))
            self.owed[uuid].append(entry)
        answer = await self._request(
            f"write 0x{uuid:04X}",
            self.peer.write_value(self.chars[uuid], value, with_response=True),
        )
        if isinstance(answer, att.ATT_Error):
            if entry is not None and entry in self.owed[uuid]:
                self.owed[uuid].remove(entry)  # refused: no answer owed
        elif uuid not in WRITABLE:
            raise _fail("write-not-permitted", f"0x{uuid:04X} is not writable")

    def _selection_size(self, uuid: int, value: bytes) -> int | None:
        if uuid != RACP or not value or value[0] not in CHECKED_RACP:
            return None
        try:
            request = racp.decode(value)
        except ControlPointError:
            return None
        offsets = [record.time_offset for record in self.core.store]
        return len(select(offsets, request.operator, request.operand))

    async def _write_cccd(self, uuid: int, value: bytes) -> None:
        assert self.peer is not None
        answer = await self._request(
            f"CCCD 0x{uuid:04X}",
            self.peer.write_value(self.cccds[uuid], value, with_response=True),
        )
        if len(value) != 2 and not (
            isinstance(answer, att.ATT_Error)
            and answer.error_code == att.ErrorCode.INVALID_ATTRIBUTE_LENGTH
        ):
            raise _fail("cccd-length", f"CCCD 0x{uuid:04X} took {value.hex()}: {answer!r}")

    # --- what the transmitter sends ---

    def _pdu(self, uuid: int, value: bytes, indication: bool) -> None:
        try:
            if not indication:
                if uuid != MEASUREMENT:
                    raise _fail("pdu-decodes", f"notification on 0x{uuid:04X}")
                measurement.decode(value, self.e2e)
                return
            if uuid == RACP:
                frame = racp.decode(value)
                opcode = (
                    RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS
                    if frame.opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE
                    else frame.request_opcode
                )
                self._answered(RACP, opcode, frame)
            elif uuid == SOCP:
                answer = socp.decode(value, self.e2e)
                opcode = (
                    answer.request_opcode
                    if answer.opcode == SocpOpcode.RESPONSE_CODE
                    else answer.opcode - 1
                )
                self._answered(SOCP, opcode, None)
            else:
                raise _fail("pdu-decodes", f"indication on 0x{uuid:04X}")
        except FrameError as error:
            self.problems.append(_fail("pdu-decodes", f"0x{uuid:04X}: {error}"))
        except InvariantViolated as error:
            self.problems.append(error)

    def _answered(self, uuid: int, opcode: int | None, frame: racp.RacpFrame | None) -> None:
        owed = self.owed[uuid]
        matching = [entry for entry in owed if entry[0] == opcode]
        if not matching:
            raise _fail("answer-unrequested", f"0x{uuid:04X} answered {opcode}, owed {owed}")
        entry = matching[0]
        aborted = frame is not None and frame.response_code == RacpResponseCode.SUCCESS
        if aborted and opcode == RacpOpcode.ABORT_OPERATION:  # the aborted report ends
            before = owed[: owed.index(entry)]
            owed[:] = [e for e in before if e[0] != RacpOpcode.REPORT_STORED_RECORDS] + [
                *owed[owed.index(entry) :]
            ]
        owed.remove(entry)
        size = entry[1]
        if frame is None or size is None:
            return
        if opcode == RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS:
            if frame.number_of_records != size:
                raise _fail("racp-count", f"counted {frame.number_of_records}, {size} selected")
        elif opcode == RacpOpcode.DELETE_STORED_RECORDS:
            found = RacpResponseCode.SUCCESS if size else RacpResponseCode.NO_RECORDS_FOUND
            if frame.response_code != found:
                raise _fail("racp-delete", f"delete answered {frame.response_code}, {size} chosen")

    # --- time and liveness ---

    async def _step(self) -> None:
        await self._check_serving()
        now = self.now_ms()
        until = (now // SAMPLE_MS + 1) * SAMPLE_MS
        for _ in range(1_000):
            timer = self.core.get_timer()
            if timer is None or timer > until:
                break
            await asyncio.sleep(max(0, timer - self.now_ms()) / 1000)
            self.server.handle_timer()
            await asyncio.sleep(SETTLE_S)
        else:
            raise Hang(f"the transmitter's timers do not settle before {until} ms")
        await asyncio.sleep(max(0, until - self.now_ms()) / 1000)
        self.server.sample(SensorSample(corpus.counts_at(until)))

    async def _check_serving(self) -> None:
        await asyncio.sleep(SETTLE_S)
        self._raise_found()
        for uuid, owed in self.owed.items():
            if owed:
                raise _fail("answer-owed", f"0x{uuid:04X} still owes answers to {owed}")
        if self.connection is None or self.peer is None:
            return
        answer = await self._request("read SRT", self.peer.read_value(self.chars[SRT]))
        if isinstance(answer, att.ATT_Error):
            raise _fail("keeps-serving", f"Session Run Time read refused: {answer}")
        try:
            READABLE[SRT].decode(bytes(answer or b""), self.e2e)
        except FrameError as error:
            raise _fail("keeps-serving", f"Session Run Time: {error}") from None
