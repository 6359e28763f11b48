"""Fuzz target: the transmitter core, driven by a rogue collector.

Each episode starts from a G7 session an hour old (readings stored, nobody connected; E2E-CRC
on or off, the first action says) and plays actions, JSON-ready lists:

``["connect", mtu]`` ``["disconnect"]`` ``["mtu", mtu]`` ``["read", uuid]``
``["write", uuid, "hex:.."]`` ``["subscribe", uuid, notify, indicate]`` ``["step"]`` (time to
the next sample, the transmitter's timers on the way) ``["wait", ms]`` ``["hold"]`` (the next
notifications and indications stay unconfirmed) ``["confirm"]``.

Actions that the link could not deliver in the current state (a read while disconnected, a
second connect) are skipped, so any sublist of an episode is a valid episode (for shrinking).
Held PDUs are confirmed before time moves on, as an ATT bearer would time out otherwise.

Invariants after every action (``shared/spec/cgms.md``):

- no exception escapes the core;
- every read, write and CCCD write gets exactly one response for its characteristic; a read of
  a readable value returns one that decodes, anything else an ATT error;
- every notification decodes as CGM Measurement records, every indication as a RACP or SOCP
  frame;
- every RACP or SOCP write that was accepted gets its answer, in order: the response code,
  the record count, or the requested value (an abort answered with success ends the report it
  aborted), unless the link drops first;
- a RACP count is the number of stored records the operator and operand select, and a RACP
  delete answers success exactly when they select some (the selection is computed here, from
  the spec's table, over the store's time offsets when the request is written);
- the transmitter keeps producing readings on schedule: after each sample in the active or
  grace phase (from a model of the session: started at 0 or by an accepted SOCP start,
  ended by an accepted stop) the newest stored record is that sample's; and when the collector
  listens and the link is idle, that record is notified.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

from firmware.events import (
    Connected,
    Disconnected,
    Indicate,
    MtuChanged,
    Notify,
    Read,
    Respond,
    SensorSample,
    Sent,
    Subscribe,
    Write,
)
from firmware.profiles import G7, MINUTE_MS
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, measurement, racp, socp
from protocol.cgms.codecs import CODECS
from protocol.cgms.racp import RacpOpcode, RacpOperator, RacpResponseCode
from protocol.cgms.socp import SocpOpcode
from protocol.errors import ControlPointError, FrameError
from sim.fuzz import corpus
from sim.fuzz.engine import (
    Action,
    Failure,
    Hang,
    HarnessError,
    InvariantViolated,
    play,
)
from sim.fuzz.mutate import mutate, pick
from sim.fuzz.schema import MILLISECONDS, UINT16, Table, flag, hex_value, integer

SAMPLE_MS = corpus.SAMPLE_MS
START_MS = 60 * MINUTE_MS + 1_000
MAX_OUTPUTS = 10_000  # outputs of one action; more is a hang
READABLE = {
    codec.characteristic.uuid: codec
    for codec in CODECS.values()
    if codec.characteristic.properties & gatt.Property.READ
}
MEASUREMENT, RACP, SOCP = gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid
SST = gatt.SESSION_START_TIME.uuid
UUIDS = tuple(c.characteristic.uuid for c in CODECS.values())
WRITE_TARGETS = ((RACP, "racp", 0.45), (SOCP, "socp", 0.8), (SST, "session-start-time", 0.93))
MTUS = (23, 23, 23, 24, 27, 30, 64, 185, 247, 517)
REQUEST_OPCODES = (
    *[RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS] * 5,
    *[RacpOpcode.REPORT_STORED_RECORDS] * 4,
    RacpOpcode.DELETE_STORED_RECORDS,
)
CHECKED_RACP = (RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOpcode.DELETE_STORED_RECORDS)
MakeTransmitter = Callable[[TransmitterConfig], Transmitter]
ATT_MTU = integer(23, 0xFFFF)
ACTIONS: Table = {
    "setup": (flag,),
    "connect": (ATT_MTU,),
    "disconnect": (),
    "mtu": (ATT_MTU,),
    "read": (UINT16,),
    "write": (UINT16, hex_value),
    "subscribe": (UINT16, flag, flag),
    "step": (),
    "wait": (MILLISECONDS,),
    "hold": (),
    "confirm": (),
}


def select(offsets: list[int], operator: int, operand: object) -> list[int]:
    """The time offsets a RACP operator and operand select (CGMS §3.6.2: all,
    <=, >=, within range inclusive, first, last), written independently of the store."""
    if operator == RacpOperator.ALL_RECORDS:
        return list(offsets)
    if operator == RacpOperator.FIRST_RECORD:
        return offsets[:1]
    if operator == RacpOperator.LAST_RECORD:
        return offsets[-1:]
    if operator == RacpOperator.LESS_THAN_OR_EQUAL_TO:
        return [t for t in offsets if t <= operand]  # type: ignore[operator]
    if operator == RacpOperator.GREATER_THAN_OR_EQUAL_TO:
        return [t for t in offsets if t >= operand]  # type: ignore[operator]
    low, high = operand  # type: ignore[misc]
    return [t for t in offsets if low <= t <= high]


def _make_transmitter(config: TransmitterConfig) -> Transmitter:
    return Transmitter(config, corpus.CALIBRATION, 0)


def _fail(name: str, message: str) -> InvariantViolated:
    return InvariantViolated(name, message)


class TransmitterTarget:
    name = "transmitter"
    actions: Table = ACTIONS

    def __init__(
        self,
        seeds: corpus.Seeds | None = None,
        profile=G7,  # noqa: ANN001
        make_transmitter: MakeTransmitter = _make_transmitter,
    ) -> None:
        self.seeds = seeds or corpus.seeds()
        self.profile = profile
        self.make_transmitter = make_transmitter

    # --- generation ---

    def generate(self, rng: random.Random, count: int) -> list[Action]:
        draw = rng.random
        actions: list[Action] = [["setup", draw() < 0.5]]
        # A collector subscribes on every connection: CCCD values end with the link unless the
        # client bonded (Core Vol 3 Part G 3.3.3.3), and this one has not.
        subscriptions: list[Action] = [
            ["subscribe", uuid, uuid == MEASUREMENT, uuid != MEASUREMENT]
            for uuid in (MEASUREMENT, RACP, SOCP)
        ]
        connected = False
        if draw() < 0.9:
            actions += [["connect", pick(rng, MTUS)], *subscriptions]
            connected = True
        while len(actions) < count:
            roll = draw()
            if not connected:
                if roll < 0.6:  # and mostly as a collector does, sometimes not (CCCDs off)
                    actions.append(["connect", pick(rng, MTUS)])
                    actions += subscriptions if draw() < 0.8 else []
                else:
                    actions.append(["step"])
                connected = roll < 0.6
            elif roll < 0.5:
                actions.append(self._write(rng))
            elif roll < 0.6:
                actions.append(
                    [
                        "read",
                        UUIDS[int(draw() * len(UUIDS))] if draw() < 0.9 else int(draw() * 0x10000),
                    ]
                )
            elif roll < 0.67:
                uuid = (
                    (MEASUREMENT, RACP, SOCP)[int(draw() * 3)] if draw() < 0.9 else pick(rng, UUIDS)
                )
                actions.append(["subscribe", uuid, draw() < 0.7, draw() < 0.7])
            elif roll < 0.82:
                actions.append(["step"])
            elif roll < 0.86:
                actions.append(["wait", int(draw() * 40_000)])
            elif roll < 0.91:
                actions.append(["hold"])
            elif roll < 0.95:
                actions.append(["confirm"])
            elif roll < 0.97:
                actions.append(["mtu", pick(rng, MTUS)])
            else:
                actions.append(["disconnect"])
                connected = False
        return actions[:count]

    def _write(self, rng: random.Random) -> Action:
        roll = rng.random()
        if roll < 0.12:
            return ["write", RACP, "hex:" + self._racp_request(rng).hex()]
        uuid, name = pick(rng, UUIDS), pick(rng, tuple(self.seeds.by_name))
        for target_uuid, target_name, below in WRITE_TARGETS:
            if roll < below:
                uuid, name = target_uuid, target_name
                break
        pool = self.seeds[name]
        data = pick(rng, pool)
        if rng.random() < 0.6:
            data = mutate(rng, data, pool)
        return ["write", uuid, "hex:" + data.hex()]

    @staticmethod
    def _racp_request(rng: random.Random) -> bytes:
        """A well-formed RACP report, count or (rarely) delete whose operands fall among
        the episode's time offsets, where an off-by-one in a selection shows."""
        draw = rng.random
        opcode = pick(rng, REQUEST_OPCODES)
        operator = RacpOperator(1 + int(draw() * 6))
        newest = START_MS // MINUTE_MS + 120

        def offset() -> int:
            return int(draw() * newest) // 5 * 5 + (int(draw() * 3) - 1 if draw() < 0.3 else 0)

        operand: int | tuple[int, int] | None = None
        if operator in (RacpOperator.LESS_THAN_OR_EQUAL_TO, RacpOperator.GREATER_THAN_OR_EQUAL_TO):
            operand = max(0, offset())
        elif operator == RacpOperator.WITHIN_RANGE_OF:
            low, high = sorted((max(0, offset()), max(0, offset())))
            operand = (low, high)
        return racp.encode(racp.request(opcode, operator, operand))

    # --- execution ---

    def execute(self, actions: list[Action]) -> tuple[int, Failure | None]:
        e2e = bool(actions and actions[0][0] == "setup" and actions[0][1])
        return play(lambda: _Run(self.profile, e2e, self.make_transmitter), actions)


class _Run:
    """One episode: the transmitter, the rogue collector's view of the link, and the model."""

    def __init__(self, profile, e2e: bool, make: MakeTransmitter) -> None:  # noqa: ANN001
        self.profile = profile
        self.e2e = e2e
        self.tx = make(TransmitterConfig(profile, e2e_crc=e2e))
        for now in range(SAMPLE_MS, START_MS, SAMPLE_MS):
            self.tx.sample(SensorSample(corpus.counts_at(now)), now)
        self.sampled_at = START_MS // SAMPLE_MS * SAMPLE_MS
        self.now = START_MS
        self.connected = False
        self.held: deque[Notify | Indicate] = deque()
        self.holding = False
        self.subscribed: dict[int, tuple[bool, bool]] = {}
        self.owed: dict[int, list[int]] = {RACP: [], SOCP: []}
        # per checked RACP opcode, in request order: the selection's size (None: invalid)
        self.selected: dict[int, deque[int | None]] = {op: deque() for op in CHECKED_RACP}
        self.session_start = 0
        self.stopped = False
        # A start or stop whose answer the link lost (still in the core's outbox when it
        # dropped): the core decided, the collector never learnt how; until a start or stop
        # is answered with success, the schedule is not checked.
        self.session_unknown = False
        self.interval_min = 5
        self.notified: set[int] = set()  # time offsets notified in this action

    def apply(self, action: Action) -> None:
        kind = action[0]
        tx, now = self.tx, self.now
        self.notified = set()
        if kind == "setup":
            return
        if kind == "connect":
            if self.connected:
                return
            self.connected, self.subscribed = True, {}
            self._clear_owed()
            tx.receive(Connected(int(action[1])), now)
        elif kind == "disconnect":
            if not self.connected:
                return
            self.connected, self.held, self.holding = False, deque(), False
            self._clear_owed()
            tx.receive(Disconnected(), now)
        elif kind in ("step", "wait"):
            self._confirm_held()
            self._advance(action)
            return
        elif not self.connected:
            return
        elif kind == "mtu":
            tx.receive(MtuChanged(int(action[1])), now)
        elif kind == "hold":
            self.holding = True
        elif kind == "confirm":
            self._confirm_held()
            return
        elif kind in ("read", "write", "subscribe"):
            self._request(action)
            return
        self._drain(None)

    # --- GATT requests ---

    def _request(self, action: Action) -> None:
        tx, now, uuid = self.tx, self.now, int(action[1])
        if action[0] == "read":
            tx.receive(Read(uuid), now)
        elif action[0] == "subscribe":
            self.subscribed[uuid] = (bool(action[2]), bool(action[3]))
            tx.receive(Subscribe(uuid, bool(action[2]), bool(action[3])), now)
        else:
            value = bytes.fromhex(action[2][4:])
            self._owe_answer(uuid, value)
            tx.receive(Write(uuid, value), now)
        responses = self._drain(action)
        if len(responses) != 1 or responses[0].uuid != uuid:
            raise _fail("one-response", f"{action[0]} 0x{uuid:04X} answered by {responses!r}")
        response = responses[0]
        if (response.value is None) == (response.error is None) and action[0] == "read":
            raise _fail("one-response", f"read 0x{uuid:04X} answered by {response!r}")
        if action[0] == "read":
            codec = READABLE.get(uuid)
            if codec is None and response.error is None:
                raise _fail("read-not-permitted", f"0x{uuid:04X} is not readable: {response!r}")
            if codec is not None and response.value is not None:
                try:
                    codec.decode(response.value, self.e2e)
                except FrameError as error:
                    raise _fail("read-value-decodes", str(error)) from None
        elif action[0] == "write":
            if uuid not in (RACP, SOCP, SST) and response.error is None:
                raise _fail("write-not-permitted", f"0x{uuid:04X} is not writable")
            if response.error is not None and uuid in self.owed:
                opcode = self.owed[uuid].pop()  # refused with an ATT error: no answer owed
                if uuid == RACP and opcode in self.selected:
                    self.selected[opcode].pop()
        self._check_owed()

    def _owe_answer(self, uuid: int, value: bytes) -> None:
        if uuid not in self.owed:
            return
        opcode = value[0] if value else 0
        self.owed[uuid].append(opcode)
        if uuid == RACP and opcode in self.selected:
            self.selected[opcode].append(self._selection_size(value))

    def _selection_size(self, value: bytes) -> int | None:
        try:
            request = racp.decode(value)
        except ControlPointError:
            return None
        offsets = [record.time_offset for record in self.tx.store]
        return len(select(offsets, request.operator, request.operand))

    def _clear_owed(self) -> None:
        if {SocpOpcode.START_SESSION, SocpOpcode.STOP_SESSION} & set(self.owed[SOCP]):
            self.session_unknown = True
        self.owed = {RACP: [], SOCP: []}
        self.selected = {opcode: deque() for opcode in CHECKED_RACP}

    # --- outputs ---

    def _drain(self, action: Action | None) -> list[Respond]:
        """Take every output of the core, confirming notifications and indications (unless
        held); the responses, in order."""
        tx, responses = self.tx, []
        for _ in range(MAX_OUTPUTS):
            event = tx.next_event()
            if event is None:
                return responses
            if isinstance(event, Respond):
                responses.append(event)
                continue
            self._check_pdu(event)
            if self.holding:
                self.held.append(event)
            else:
                tx.receive(Sent(), self.now)
        raise Hang(f"outputs do not settle after {MAX_OUTPUTS} events ({action})")

    def _confirm_held(self) -> None:
        self.holding = False
        while self.held:
            self.held.popleft()
            self.tx.receive(Sent(), self.now)
            self._drain(None)
        self._check_owed()

    def _check_pdu(self, event: Notify | Indicate) -> None:
        if isinstance(event, Notify):
            if event.uuid != MEASUREMENT:
                raise _fail("pdu-decodes", f"notification on 0x{event.uuid:04X}")
            try:
                records = measurement.decode(event.value, self.e2e)
            except FrameError as error:
                raise _fail("pdu-decodes", str(error)) from None
            self.notified.update(record.time_offset for record in records)
            return
        try:
            if event.uuid == RACP:
                answered = racp.decode(event.value)
                opcode = (
                    RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS
                    if answered.opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE
                    else answered.request_opcode
                )
                code = answered.response_code
                if opcode in self.selected:
                    self._check_selection(opcode, answered)
            elif event.uuid == SOCP:
                frame = socp.decode(event.value, self.e2e)
                opcode = (
                    frame.request_opcode
                    if frame.opcode == SocpOpcode.RESPONSE_CODE
                    else frame.opcode - 1
                )
                code = frame.response_code
            else:
                raise _fail("pdu-decodes", f"indication on 0x{event.uuid:04X}")
        except FrameError as error:
            raise _fail("pdu-decodes", str(error)) from None
        self._answered(event.uuid, opcode, code)

    def _check_selection(self, opcode: int, answered: racp.RacpFrame) -> None:
        """A count or delete answered: against the selection computed when it was written."""
        expected = self.selected[opcode]
        if not expected:
            return  # not owed: answer-in-order says so
        size = expected.popleft()
        if size is None:
            return
        if opcode == RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS:
            if answered.number_of_records != size:
                raise _fail(
                    "racp-count",
                    f"counted {answered.number_of_records} records, {size} selected",
                )
            return
        found = RacpResponseCode.SUCCESS if size else RacpResponseCode.NO_RECORDS_FOUND
        if answered.response_code != found:
            raise _fail("racp-delete", f"delete answered {answered.response_code}, {size} selected")

    def _answered(self, uuid: int, opcode: int | None, code: int | None) -> None:
        owed = self.owed[uuid]
        if uuid == RACP and opcode == RacpOpcode.ABORT_OPERATION and opcode in owed:
            # An abort is answered while the report it targets runs; when it succeeds, the
            # reports before it end unanswered.
            at = owed.index(opcode)
            before = owed[:at]
            if code == 1:
                before = [op for op in before if op != RacpOpcode.REPORT_STORED_RECORDS]
            owed[:] = [*before, *owed[at:]]
            owed.insert(0, owed.pop(len(before)))
        if not owed or owed[0] != opcode:
            raise _fail("answer-in-order", f"0x{uuid:04X} answered {opcode}, owed {owed}")
        owed.pop(0)
        if uuid == SOCP and code == 1:
            if opcode == SocpOpcode.START_SESSION:
                self.session_start, self.stopped = self.now, False
                self.session_unknown = False
            elif opcode == SocpOpcode.STOP_SESSION:
                self.stopped, self.session_unknown = True, False
        if uuid == SOCP and opcode == SocpOpcode.SET_COMMUNICATION_INTERVAL and code == 1:
            self.interval_min = self.tx.comm_interval_min

    def _check_owed(self) -> None:
        if self.held or self.holding:
            return
        for uuid, owed in self.owed.items():
            if owed:
                raise _fail("answer-owed", f"0x{uuid:04X} still owes answers to {owed}")

    # --- time ---

    def _advance(self, action: Action) -> None:
        tx = self.tx
        if action[0] == "wait":
            until = self.now + max(0, int(action[1]))
        else:
            until = (self.now // SAMPLE_MS + 1) * SAMPLE_MS
        for _ in range(1_000):
            timer = tx.get_timer()
            if timer is None or timer > until:
                break
            # a deadline already past is due at once (sim.links.core_timer fires it so); one
            # that never moves on ends the loop below
            self.now = max(self.now, timer)
            tx.handle_timer(self.now)
            self._drain(action)
        else:
            raise Hang(f"timers do not settle after 1000 runs ({action})")
        self.now = until
        if until % SAMPLE_MS == 0 and until > self.sampled_at:  # a "wait 0" there: no second
            self._sample(until)
        self._check_owed()

    def _sample(self, now: int) -> None:
        if now <= self.sampled_at:  # the core rightly refuses it: the harness's mistake
            raise HarnessError(f"a sensor sample at {now} ms after one at {self.sampled_at} ms")
        self.sampled_at = now
        tx = self.tx
        tx.sample(SensorSample(corpus.counts_at(now)), now)
        self._drain(["sample"])
        elapsed = now - self.session_start
        if self.session_unknown:
            return
        active = not self.stopped and self.profile.warmup_ms <= elapsed < self.profile.end_ms
        if not active:
            return
        offset = elapsed // MINUTE_MS
        latest = tx.store.latest()
        if latest is None or latest.time_offset != offset:
            raise _fail("readings-on-schedule", f"no record for offset {offset}: {latest}")
        listening = self.connected and self.subscribed.get(MEASUREMENT, (False, False))[0]
        idle = not self.owed[RACP] and not self.held
        if listening and idle and 1 <= self.interval_min <= 5 and offset not in self.notified:
            raise _fail("live-reading-notified", f"offset {offset} was not notified")
