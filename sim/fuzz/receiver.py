"""Fuzz target: the receiver core, facing a rogue sensor.

The sensor is the real transmitter core behind a tampering in-memory link: the fuzzer lets
its traffic through, replaces, drops or repeats the next value, answers a request with an ATT
error, injects notifications and indications of its own, and drops the link. Each episode
starts at the session's start with the receiver connecting. Actions (JSON-ready lists):

``["step"]`` (virtual time to the next sample or timer) ``["replace", kind, "hex:.."]``
``["drop", kind]`` ``["repeat", kind]`` (kind: ``response``, ``notify``, ``indicate``: the
next one of that kind) ``["error", att_code]`` (the next response) ``["inject", kind, uuid,
"hex:.."]`` ``["disconnect"]`` ``["connect"]``.

Invariants after every action:

- no exception escapes the receiver (or the link, or the transmitter);
- the receiver never shows (stores) a reading twice in one session (same time offset, same
  session start);
- never a reading out of session: its time offset is in the active or grace phase of the
  profile (after warm-up, before the end) and its glucose is a finite number;
- every value the receiver writes decodes (RACP, SOCP, Session Start Time);
- outputs and timers settle (else a hang).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from firmware.events import Indicate, Notify, Respond, SensorSample, Sent
from firmware.profiles import G7, MINUTE_MS, DeviceProfile
from firmware.receiver.collector import CollectorConfig, WriteRequest
from firmware.receiver.receiver import ReadingShown, Receiver, ReceiverConfig
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, strategies
from protocol.cgms.codecs import CODECS
from protocol.errors import FrameError
from sim.fuzz import corpus
from sim.fuzz.engine import Action, Failure, Hang, InvariantViolated, play
from sim.fuzz.mutate import mutate, pick
from sim.fuzz.schema import UINT16, Table, flag, hex_value, integer, one_of
from sim.links.memory import MemoryLink

SAMPLE_MS = corpus.SAMPLE_MS
KINDS = ("response", "notify", "indicate")
MAX_OUTPUTS = 10_000
MEASUREMENT, RACP, SOCP = gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid
NAME_OF = corpus.NAME_OF
ATT_ERRORS = (0x01, 0x03, 0x05, 0x0D, 0x0F, 0x80, 0x81, 0xFD, 0xFE, 0xFF)
KIND = one_of(KINDS, "kind of sensor output")
ACTIONS: Table = {
    "setup": (flag,),
    "step": (),
    "replace": (KIND, hex_value),
    "drop": (KIND,),
    "repeat": (KIND,),
    "error": (integer(1, 0xFF),),
    "inject": (one_of(("notify", "indicate"), "kind of PDU"), UINT16, hex_value),
    "disconnect": (),
    "connect": (),
}


class TamperingLink(MemoryLink):
    """The memory link with the fuzzer's hand on the sensor's side."""

    def __init__(self, tx: Transmitter, rx: Receiver, on_event: Callable[[object], None]) -> None:
        super().__init__(tx, rx, on_receiver_event=on_event)
        self.tamper: dict[str, tuple[str, object]] = {}
        self.moves = 0

    def pump(self, now_ms: int) -> None:
        self.moves = 0
        super().pump(now_ms)

    def _from_receiver(self, event: object, now_ms: int) -> None:
        self._count()
        if isinstance(event, WriteRequest):
            check_written(event.uuid, event.value, self.rx.collector.e2e_crc)
        super()._from_receiver(event, now_ms)

    def _from_transmitter(self, event: object, now_ms: int) -> None:
        self._count()
        kind = {Respond: "response", Notify: "notify", Indicate: "indicate"}[type(event)]
        rule = self.tamper.pop(kind, None)
        if rule is None or not self.up:
            super()._from_transmitter(event, now_ms)
            return
        how, value = rule
        if how == "replace":
            if isinstance(event, Respond):
                event = Respond(event.uuid, value if event.value is not None else None, event.error)
            else:
                event = type(event)(event.uuid, value)
        elif how == "error":
            event = Respond(event.uuid, error=value)  # type: ignore[arg-type, attr-defined]
        elif how == "drop":
            if not isinstance(event, Respond):
                self.tx.receive(Sent(), now_ms)
            return
        super()._from_transmitter(event, now_ms)
        if how == "repeat" and self.up:
            self.inject(event, now_ms)

    def inject(self, event: object, now_ms: int) -> None:
        """The rogue sensor sends this by itself (no confirmation reaches the transmitter)."""
        match event:
            case Notify(uuid=uuid, value=value):
                self.rx.notification(uuid, value, now_ms)
            case Indicate(uuid=uuid, value=value):
                self.rx.indication(uuid, value, now_ms)
            case Respond(uuid=uuid, value=value, error=error):
                self.rx.response(uuid, value, None if error is None else int(error), now_ms)

    def _count(self) -> None:
        self.moves += 1
        if self.moves > MAX_OUTPUTS:
            raise Hang(f"the link does not settle after {MAX_OUTPUTS} events")


class ReceiverTarget:
    name = "receiver"
    actions: Table = ACTIONS

    def __init__(
        self,
        seeds: corpus.Seeds | None = None,
        profile: DeviceProfile = G7,
        make_receiver: Callable[[ReceiverConfig, int], Receiver] = Receiver,
    ) -> None:
        self.seeds = seeds or corpus.seeds()
        self.profile = profile
        self.make_receiver = make_receiver

    def generate(self, rng: random.Random, count: int) -> list[Action]:
        draw = rng.random
        actions: list[Action] = [["setup", draw() < 0.5]]
        # Through warm-up quickly: most of an episode is spent where readings are shown.
        actions += [["step"]] * (self.profile.warmup_ms // SAMPLE_MS + int(draw() * 4))
        while len(actions) < count:
            roll = draw()
            if roll < 0.4:
                actions.append(["step"])
            elif roll < 0.6:
                kind = KINDS[int(draw() * 3)]
                actions.append(["replace", kind, "hex:" + self._value(rng, kind).hex()])
            elif roll < 0.75:
                kind = ("notify", "indicate")[int(draw() * 2)]
                uuid = MEASUREMENT if kind == "notify" else (RACP, SOCP)[int(draw() * 2)]
                name = NAME_OF[uuid]
                actions.append(["inject", kind, uuid, "hex:" + self._value(rng, name).hex()])
            elif roll < 0.83:
                actions.append([("drop", "repeat")[int(draw() * 2)], KINDS[int(draw() * 3)]])
            elif roll < 0.87:
                actions.append(["error", pick(rng, ATT_ERRORS)])
            elif roll < 0.92:
                actions.append(["disconnect"])
            else:
                actions.append(["connect"])
        return actions[:count]

    def _value(self, rng: random.Random, kind: str) -> bytes:
        if kind == "notify" or kind == "measurement":
            if rng.random() < 0.5:
                return self._record(rng)
            name = "measurement"
        elif kind == "indicate":
            name = ("racp", "socp")[int(rng.random() * 2)]
        elif kind == "response":
            name = pick(rng, ("feature", "status", "session-start-time", "session-run-time"))
        else:
            name = kind
        pool = self.seeds[name]
        data = pick(rng, pool)
        return mutate(rng, data, pool) if rng.random() < 0.7 else data

    def _record(self, rng: random.Random) -> bytes:
        """A well-formed record with a plausible or extreme time offset and raw glucose."""
        draw = rng.random
        offset = pick(rng, (0, 5, 25, 30, 35, 0xFFFF)) if draw() < 0.3 else int(draw() * 300)
        glucose = (
            pick(rng, strategies.BOUNDARY_SFLOAT_RAWS) if draw() < 0.3 else int(40 + draw() * 360)
        )
        flags = int(draw() * 256) & 0xE3
        octets = tuple(int(draw() * 256) for bit in (0x80, 0x40, 0x20) if flags & bit)
        trend = int(draw() * 0x10000) if flags & 1 else None
        quality = int(draw() * 0x10000) if flags & 2 else None
        return strategies.record_bytes(flags, glucose, offset, octets, trend, quality, draw() < 0.3)

    def execute(self, actions: list[Action]) -> tuple[int, Failure | None]:
        e2e = bool(actions and actions[0][0] == "setup" and actions[0][1])
        return play(lambda: _Run(self, e2e), actions)


class _Run:
    def __init__(self, target: ReceiverTarget, e2e: bool) -> None:
        self.profile = profile = target.profile
        self.tx = Transmitter(TransmitterConfig(profile, e2e_crc=e2e), corpus.CALIBRATION, 0)
        config = ReceiverConfig(profile, CollectorConfig(corpus.CLOCK_AT_ZERO))
        self.rx = target.make_receiver(config, 0)
        self.link = TamperingLink(self.tx, self.rx, self._event)
        self.shown: dict[int | None, set[int]] = {}
        self.now = 0
        self.next_sample = SAMPLE_MS
        self.link.connect(0)

    def _event(self, event: object) -> None:
        check_shown(event, self.shown, self.rx, self.profile)

    def apply(self, action: Action) -> None:
        kind, link, now = action[0], self.link, self.now
        if kind == "setup":
            return
        if kind == "step":
            self._step()
            return
        if kind == "replace":
            link.tamper[action[1]] = ("replace", bytes.fromhex(action[2][4:]))
        elif kind in ("drop", "repeat"):
            link.tamper[action[1]] = (kind, None)
        elif kind == "error":
            link.tamper["response"] = ("error", int(action[1]))
        elif kind == "inject":
            if link.up:
                value = bytes.fromhex(action[3][4:])
                event = Notify if action[1] == "notify" else Indicate
                link.inject(event(int(action[2]), value), now)
        elif kind == "disconnect":
            link.disconnect(now, "fuzz")
        elif kind == "connect":
            link.connect(now)
        self._pump()

    def _pump(self) -> None:
        link = self.link
        link.moves = 0
        link.pump(self.now)

    def _step(self) -> None:
        tx, link = self.tx, self.link
        timers = [t for t in (tx.get_timer(), link.rx.get_timer()) if t is not None]
        # A deadline already past is due at once, as the project's drivers fire it (an asyncio
        # call_at in the past, sim.links.core_timer); one that never moves on is caught below.
        now = max(self.now, min([self.next_sample, *timers]))
        self.now = now
        if now == self.next_sample:
            tx.sample(SensorSample(corpus.counts_at(now)), now)
            self._pump()
            self.next_sample += SAMPLE_MS
        for _ in range(1_000):
            fired = False
            if (t := tx.get_timer()) is not None and t <= now:
                tx.handle_timer(now)
                fired = True
            if (t := link.rx.get_timer()) is not None and t <= now:
                link.rx.handle_timer(now)
                fired = True
            self._pump()
            if not fired:
                break
        else:
            raise Hang(f"timers do not move on at {now} ms")
        if not link.up:
            link.connect(now)  # the receiver reconnects when the sensor is back in range
            self._pump()


def check_shown(
    event: object, shown: dict[int | None, set[int]], rx: Receiver, profile: DeviceProfile
) -> None:
    """A reading shown once per session (``shown``: offsets by session start), in session,
    with a finite glucose."""
    if not isinstance(event, ReadingShown):
        return
    offset = event.time_offset
    session = shown.setdefault(rx.session_start_ms, set())
    if offset in session:
        raise InvariantViolated("no-duplicate", f"offset {offset} shown twice")
    session.add(offset)
    taken_ms = offset * MINUTE_MS
    if not profile.warmup_ms <= taken_ms < profile.end_ms:
        raise InvariantViolated("in-session", f"offset {offset} is outside the session")
    if not math.isfinite(event.glucose_mgdl):
        raise InvariantViolated("in-session", f"glucose {event.glucose_mgdl} shown")


def check_written(uuid: int, value: bytes, e2e: bool) -> None:
    """A value the receiver writes must decode."""
    try:
        CODECS[NAME_OF[uuid]].decode(value, e2e)
    except (FrameError, KeyError) as error:
        raise InvariantViolated("written-value-decodes", f"0x{uuid:04X}: {error}") from None
