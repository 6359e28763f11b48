"""The sensor cases against a transmitter core served in this process: the core on one bumble
device, the tester on another, over bumble's in-process link (``sim.links.ble``), on the
running loop with session time ``speed`` x the loop's. For tests (a core with a planted defect
must FAIL the case that catches it) and quick runs; ``cgmsim conformance`` against
``cgmsim transmitter`` is the same tester over a real or virtual controller."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from bumble.device import Device
from bumble.link import LocalLink

from firmware.events import SensorSample
from firmware.profiles import MINUTE_MS
from firmware.transmitter.server import Transmitter
from sim.clock.live import LiveClock
from sim.conformance.attacker import SecurityOptions
from sim.conformance.registry import Case, Result
from sim.conformance.runner import TESTER_ADDRESS, SensorRun
from sim.fuzz import corpus
from sim.links.ble import BleTransmitter, in_process_device
from sim.links.ble_security import Privacy, RepeatedAttempts

SENSOR_ADDRESS = "F0:F0:F0:F0:F0:C1"
PASSKEY = 123_456
START_MS = 3 * 60 * MINUTE_MS  # three hours in: warm-up over, 30 records stored
SPEED = 3000.0  # a 5-minute reading every 0.1 s


def with_samples(core: Transmitter, until_ms: int = START_MS) -> Transmitter:
    """``core`` fed a sample every 5 minutes up to ``until_ms``."""
    for now in range(corpus.SAMPLE_MS, until_ms + 1, corpus.SAMPLE_MS):
        core.sample(SensorSample(corpus.counts_at(now)), now)
    return core


async def run_local(
    core: Transmitter,
    *,
    allow_destructive: bool = True,
    only: Callable[[Case], bool] | None = None,
    speed: float = SPEED,
    start_ms: int = START_MS,
    sensor_setup: Callable[[Device], None] | None = None,
    security: SecurityOptions | None = None,
    privacy: Privacy | None = None,
    attempts: RepeatedAttempts | None = None,
    bonded_only: bool = False,
) -> list[Result]:
    """The sensor cases (those ``only`` keeps) against ``core``, which has been fed samples up
    to ``start_ms``; it goes on sampling every 5 minutes of session time. ``sensor_setup``
    may change the sensor's bumble device before it powers on; ``privacy``, ``attempts`` and
    ``bonded_only`` are the transmitter's (``BleTransmitter``: without ``privacy`` it
    advertises from its static address, as ``cgmsim transmitter --no-privacy``); ``security``
    the tester's."""
    link = LocalLink()
    sensor = in_process_device(link, "cgmsim", SENSOR_ADDRESS)
    tester = in_process_device(link, "tester", TESTER_ADDRESS)
    clock = LiveClock(speed, start_ms)
    served = BleTransmitter(
        sensor,
        core,
        clock.now_ms,
        passkey=PASSKEY,
        to_loop=clock.to_loop,
        privacy=privacy,
        attempts=attempts,
        bonded_only=bonded_only,
    )

    async def sampling() -> None:
        t = start_ms
        while True:
            t += corpus.SAMPLE_MS
            await clock.sleep_until(t)
            served.sample(SensorSample(corpus.counts_at(t)))

    if sensor_setup is not None:
        sensor_setup(sensor)
    await sensor.power_on()
    await tester.power_on()
    await served.start()
    feeder = asyncio.ensure_future(sampling())
    try:
        run = SensorRun(
            tester,
            sensor.random_address,
            passkey=PASSKEY,
            allow_destructive=allow_destructive,
            only=only,
            security=security,
        )
        return await run.run()
    finally:
        feeder.cancel()
        if served.timer is not None:
            served.timer.cancel()
        with contextlib.suppress(Exception):
            await served.stop()
