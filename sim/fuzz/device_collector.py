"""Fuzzing a CGM collector under test (a receiver, a phone app): ``cgmsim fuzz --target
collector --transport T``.

A rogue sensor on the HCI transport advertises the CGM service from a static address and pairs
as a sensor does (LE Secure Connections, the passkey): the genuine transmitter core, three hours
into a session and sampling on its own clock (``--speed``), behind the fuzz adapter of the
in-process BLE receiver target (``sim.fuzz.ble_receiver.RogueSensor``, the transmitter's GATT
server with the fuzzer's hand between the core and the air). The collector under test connects,
pairs and runs its procedure; the campaign plays episodes of the receiver targets' actions
(``sim.fuzz.receiver``): the next response, notification or indication replaced, dropped,
repeated or made an ATT error, notifications and indications of the rogue's own (values from
the strategies and recorded traffic, and mutations of what the collector itself wrote), the
link dropped, and ``["step"]``: a reading interval of session time for the collector to act.

After every action the collector must be alive (``alive``): on the link, or back on it within
``RECONNECT_S`` once the rogue dropped it or the collector left; confirming every indication
the rogue sends of its own within ``CONFIRM_S`` (``confirms-indications``); and every value it
writes must decode (``written-value-decodes``). Failing sequences are shrunk against the
collector and saved as reproducers (``target: collector``, ``link: device``) that ``cgmsim fuzz
--replay FILE --transport T`` plays again; the session is written as a btsnoop capture.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from bumble.device import Device
from bumble.hci import Address

from firmware.events import Indicate, Notify, SensorSample
from firmware.profiles import MINUTE_MS
from firmware.transmitter.server import Transmitter, TransmitterConfig
from sim import hil
from sim.fuzz import corpus
from sim.fuzz.ble_receiver import RogueSensor
from sim.fuzz.device import HANG_SECONDS, OwnLoop, capture_into, quiet
from sim.fuzz.device_options import DeviceOptions
from sim.fuzz.engine import Action, Failure, InvariantViolated, failure_from
from sim.fuzz.mutate import pick
from sim.fuzz.receiver import ATT_ERRORS, KINDS, MEASUREMENT, NAME_OF, RACP, SOCP, ReceiverTarget

ROGUE_ADDRESS = "C0:CA:FE:00:00:F1"  # random static
START_MS = 3 * 60 * MINUTE_MS  # three hours in: warm-up over, records stored
CONNECT_WAIT_S = 60.0  # for the collector's first connection
RECONNECT_S = 60.0
CONFIRM_S = 3.0  # a collector's stack confirms at once; ATT allows 30 s
SETTLE_S = 0.1
QUIET_S = 0.3  # without a request from the collector: its procedure is over
SAMPLE_MS = corpus.SAMPLE_MS


def _fail(name: str, message: str) -> InvariantViolated:
    return InvariantViolated(name, message)


def _racp_answer(rng: random.Random) -> bytes:
    """A well-formed RACP answer a collector may not expect (CGMS §3.6): a response code
    ``06 00 <request opcode> <code>`` (codes 1..9 and beyond) or a count ``05 00 <u16>``."""
    draw = rng.random
    if draw() < 0.2:
        count = pick(rng, (0, 1, 0xFFFF)) if draw() < 0.5 else int(draw() * 0x10000)
        return bytes([0x05, 0x00]) + count.to_bytes(2, "little")
    opcode = 1 + int(draw() * 4) if draw() < 0.9 else int(draw() * 256)
    code = 1 + int(draw() * 9) if draw() < 0.9 else int(draw() * 256)
    return bytes([0x06, 0x00, opcode, code])


class CollectorUnderTest(OwnLoop, ReceiverTarget):
    """The target ``collector`` over ``link: device``: the rogue sensor kept advertising and
    serving across episodes. ``open()`` waits for the collector's first link."""

    name = "collector"
    link = "device"
    hang_seconds = HANG_SECONDS

    def __init__(self, options: DeviceOptions, *, seeds: corpus.Seeds | None = None) -> None:
        ReceiverTarget.__init__(self, seeds=seeds)
        self.options = options
        self.reconnect_within_s = options.patience_s
        OwnLoop.__init__(self)
        self.sensor: RogueSensor | None = None
        self.links = 0
        self.clock: hil.LiveClock | None = None
        self._sampling: asyncio.Task[None] | None = None
        self._linked = asyncio.Event()
        self._last = 0.0
        self._dirty = False  # the last episode failed: the next starts on a fresh link

    # --- the rogue sensor ---

    async def _open(self) -> None:
        options = self.options
        transport = await self._stack.enter_async_context(await hil._open(options.transport))
        device = Device.with_hci("cgmsim", Address(ROGUE_ADDRESS), transport.source, transport.sink)
        capture_into(device, options.capture, self._stack)
        await device.power_on()
        core = Transmitter(TransmitterConfig(self.profile), corpus.CALIBRATION, 0)
        for now in range(SAMPLE_MS, START_MS + 1, SAMPLE_MS):
            core.sample(SensorSample(corpus.counts_at(now)), now)
        clock = hil.LiveClock(options.speed, START_MS)
        sensor = RogueSensor(
            device, core, clock.now_ms, passkey=options.passkey, to_loop=clock.to_loop
        )
        sensor.confirm_within_s = CONFIRM_S
        device.on(device.EVENT_CONNECTION, self._connected)
        self.sensor, self.clock = sensor, clock
        await sensor.start()
        self._sampling = asyncio.ensure_future(self._sample())
        try:
            await asyncio.wait_for(self._linked.wait(), CONNECT_WAIT_S)
        except TimeoutError:
            raise TimeoutError(f"no collector connected within {CONNECT_WAIT_S:g} s") from None

    def _connected(self, connection: Any) -> None:
        self.links += 1
        self._linked.set()
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self._linked.clear())

    async def _sample(self) -> None:
        assert self.clock is not None and self.sensor is not None
        t = START_MS
        while True:
            t += SAMPLE_MS
            await self.clock.sleep_until(t)
            self.sensor.sample(SensorSample(corpus.counts_at(t)))

    async def _close(self) -> None:
        if self._sampling is not None:
            self._sampling.cancel()
        sensor = self.sensor
        if sensor is not None:
            if sensor.timer is not None:
                sensor.timer.cancel()
            with contextlib.suppress(Exception):
                await sensor.stop()
            if sensor.connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sensor.connection.disconnect(), 5)
        await self._stack.aclose()

    # --- generation: no warm-up to wait through, the session is three hours old ---

    def generate(self, rng: random.Random, count: int) -> list[Action]:
        draw = rng.random
        actions: list[Action] = []
        while len(actions) < count:
            roll = draw()
            if roll < 0.25:
                actions.append(["step"])
            elif roll < 0.5:
                kind = KINDS[int(draw() * 3)]
                actions.append(["replace", kind, "hex:" + self._value(rng, kind).hex()])
            elif roll < 0.75:
                kind = ("notify", "indicate")[int(draw() * 2)]
                uuid = MEASUREMENT if kind == "notify" else (RACP, SOCP)[int(draw() * 2)]
                if uuid == RACP and draw() < 0.5:
                    value = _racp_answer(rng)
                else:
                    value = self._value(rng, NAME_OF[uuid])
                actions.append(["inject", kind, uuid, "hex:" + value.hex()])
            elif roll < 0.85:
                actions.append([("drop", "repeat")[int(draw() * 2)], KINDS[int(draw() * 3)]])
            elif roll < 0.93:
                actions.append(["error", pick(rng, ATT_ERRORS)])
            else:
                actions.append(["disconnect"])
        return actions[:count]

    # --- execution ---

    def execute(self, actions: list[Action]) -> tuple[int, Failure | None]:
        with quiet():
            return self.loop.run_until_complete(self._episode(actions))

    async def _episode(self, actions: list[Action]) -> tuple[int, Failure | None]:
        sensor = self.sensor
        assert sensor is not None
        index = 0
        try:
            if self._dirty and sensor.connection is not None:  # a fresh ATT bearer after a
                with contextlib.suppress(Exception):  # failure (an indication unconfirmed)
                    await asyncio.wait_for(sensor.connection.disconnect(), 5)
                self._linked.clear()
            self._dirty = False
            await self._alive(settled=True)
            sensor.tamper.clear()
            sensor.problems.clear()
            for action in actions:
                await self._paced()
                await self._apply(action)
                await asyncio.sleep(SETTLE_S)
                if sensor.problems:
                    raise sensor.problems[0]
                await self._alive()
                index += 1
        except InvariantViolated as error:
            self._dirty = True
            return index + 1, failure_from(error, index)
        return len(actions), None

    async def _apply(self, action: Action) -> None:
        sensor, kind = self.sensor, action[0]
        assert sensor is not None and self.clock is not None
        if kind == "step":
            await asyncio.sleep(SAMPLE_MS / 1000 / self.options.speed)
        elif sensor.tampers(action):
            pass
        elif kind == "inject":
            await self._quiet_collector()  # sent of its own, to a collector at rest
            event = Notify if action[1] == "notify" else Indicate
            await sensor.send_own(event(int(action[2]), bytes.fromhex(action[3][4:])))
        elif kind == "disconnect" and sensor.connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sensor.connection.disconnect(), 5)
        # "setup" and "connect" (of the in-process targets): the collector links by itself

    async def _alive(self, settled: bool = False) -> None:
        """On the link (or back on it within the patience) and ready: the link encrypted,
        Measurement notifications on, and with ``settled`` (an episode's start) the collector's
        procedure over (no request for ``QUIET_S``), so that the episode meets it at rest."""
        sensor = self.sensor
        assert sensor is not None
        loop = self.loop
        deadline = loop.time() + self.reconnect_within_s
        requests, since = sensor.requests, loop.time()
        while True:
            connection = sensor.connection
            ready = (
                self._linked.is_set()
                and connection is not None
                and connection.is_encrypted
                and sensor.core.subscriptions.get(MEASUREMENT, (False, False))[0]
            )
            if sensor.requests != requests:
                requests, since = sensor.requests, loop.time()
            if ready and (not settled or loop.time() - since >= QUIET_S):
                return
            if loop.time() > deadline:
                what = "link again" if not self._linked.is_set() else "subscribe and settle"
                raise _fail(
                    "alive", f"the collector did not {what} within {self.reconnect_within_s:g} s"
                )
            await asyncio.sleep(0.05)

    async def _quiet_collector(self) -> None:
        """Until the collector has made no request for ``QUIET_S`` (at most the patience)."""
        sensor, loop = self.sensor, self.loop
        assert sensor is not None
        deadline = loop.time() + self.reconnect_within_s
        requests, since = sensor.requests, loop.time()
        while loop.time() - since < QUIET_S and loop.time() < deadline:
            await asyncio.sleep(0.05)
            if sensor.requests != requests:
                requests, since = sensor.requests, loop.time()

    async def _paced(self) -> None:
        wait = self._last + 1 / self.options.rate - self.loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last = self.loop.time()

    def describe(self) -> dict[str, Any]:
        return {
            "transport": self.options.transport,
            "address": ROGUE_ADDRESS,
            "links": self.links,
            "capture": None if self.options.capture is None else str(self.options.capture),
        }
