"""Runs the collector-role cases (``collector_cases``): cgmsim is the sensor, a peripheral
advertising the CGM service, and the collector under test (a receiver, an app) connects to it.

The sensor is our transmitter core (``ScriptedSensor``): its session started ``START_MS`` ago
(records stored for a first backfill), a reading every 5 minutes of session time, which runs
``speed`` x the loop's (the collector's own clock should run as fast: ``cgmsim receiver
--speed``). The cases run in order on whatever link the collector holds; the script's outages
drop the link, make ``offline_readings`` readings with nobody connected and advertise again.
Link timers (the 30 s RACP timeout, how long the collector may take) are the loop's seconds,
whatever the speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from bumble.device import Device
from bumble.hci import Address

from firmware.events import SensorSample
from firmware.profiles import G6, G7, MINUTE_MS
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms.racp import PROCEDURE_TIMEOUT_MS
from sim import hil
from sim.clock.live import LiveClock, session_ms
from sim.conformance.collector_script import CollectorOptions, Script
from sim.conformance.collector_suite import collector_suite
from sim.conformance.registry import (
    Case,
    Result,
    judge,
)
from sim.conformance.scripted_sensor import ScriptedSensor
from sim.fuzz import corpus

SENSOR_ADDRESS = "C0:CA:FE:00:00:5C"  # random static
START_MS = 3 * 60 * MINUTE_MS  # the session three hours in: 36 records stored
SAMPLE_MS = corpus.SAMPLE_MS
__all__ = ["CollectorOptions", "CollectorRun", "Script", "run_collector", "serve"]


@dataclass
class CollectorRunResult:
    peer: str | None
    results: list[Result]
    wall_seconds: float


class CollectorRun:
    """The collector cases in order against whatever collector connects to ``sensor``."""

    def __init__(
        self,
        sensor: ScriptedSensor,
        clock: LiveClock,
        options: CollectorOptions,
        *,
        only: Callable[[Case], bool] | None = None,
        on_result: Callable[[Result], None] | None = None,
    ) -> None:
        self.script = Script(sensor, clock, options)
        self.only = only or (lambda case: True)
        self.on_result = on_result or (lambda result: None)

    async def run(self) -> list[Result]:
        results: list[Result] = []
        for case in collector_suite():
            if not self.only(case):
                continue
            result = await self._one(case)
            if not any(e.kind == "connected" for e in self.script.sensor.events):
                wait = self.script.options.connect_wait_s
                raise TimeoutError(f"no collector connected in {wait:g} s")
            results.append(result)
            self.on_result(result)
        return results

    async def _one(self, case: Case) -> Result:
        start = time.perf_counter()
        events = self.script.sensor.events
        first = len(events)
        timeout = case.timeout_s + (case.budget(self.script.options) if case.budget else 0.0)
        verdict, reason = await judge(case.run(self.script), timeout)  # type: ignore[arg-type]
        frames = [e.frame() for e in events[first:] if e.kind != "att"]
        return Result(case, verdict, reason, frames, time.perf_counter() - start)


def make_core(
    profile: str = "g7", start_ms: int = START_MS, speed: float = 1.0, e2e_crc: bool = False
) -> Transmitter:
    """Our transmitter core ``start_ms`` into its session, a reading every 5 minutes so far;
    its own RACP timeout 30 s of link time; ``e2e_crc``: E2E-CRC on every value (Feature bit
    12)."""
    config = TransmitterConfig(
        G6 if profile == "g6" else G7,
        procedure_timeout_ms=session_ms(PROCEDURE_TIMEOUT_MS, speed),
        e2e_crc=e2e_crc,
    )
    core = Transmitter(config, corpus.CALIBRATION, 0)
    for now in range(SAMPLE_MS, start_ms + 1, SAMPLE_MS):
        core.sample(SensorSample(corpus.counts_at(now)), now)
    return core


async def serve(
    device: Device,
    options: CollectorOptions,
    *,
    passkey: int,
    profile: str = "g7",
    e2e_crc: bool = False,
    only: Callable[[Case], bool] | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> tuple[list[Result], str | None]:
    """Play the sensor on ``device`` (powered on) and run the collector cases; returns the
    results and the collector's identity address (None if it never bonded)."""
    clock = LiveClock(options.speed, START_MS)
    core = make_core(profile, START_MS, options.speed, e2e_crc)
    sensor = ScriptedSensor(
        device, core, clock.now_ms, passkey=passkey, name="cgmsim", to_loop=clock.to_loop
    )

    async def sampling() -> None:
        t = START_MS
        while True:
            t += SAMPLE_MS
            await clock.sleep_until(t)
            sensor.sample(SensorSample(corpus.counts_at(t)))

    await sensor.start()
    if on_ready is not None:
        on_ready(str(device.random_address))
    feeder = asyncio.ensure_future(sampling())
    run = CollectorRun(sensor, clock, options, only=only, on_result=on_result)
    try:
        results = await run.run()
    finally:
        feeder.cancel()
        if sensor.timer is not None:
            sensor.timer.cancel()
        with contextlib.suppress(Exception):
            await sensor.drop()
    return results, run.script.identity


async def run_collector(
    transport: str,
    options: CollectorOptions,
    *,
    passkey: int,
    address: str = SENSOR_ADDRESS,
    profile: str = "g7",
    e2e_crc: bool = False,
    only: Callable[[Case], bool] | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> CollectorRunResult:
    """Open ``transport`` and play the sensor for the collector cases; raises
    ``TransportProblem`` when the transport cannot be opened."""
    started = time.perf_counter()
    async with await hil._open(transport) as hci:  # raises TransportProblem
        device = Device.with_hci("cgmsim", Address(address), hci.source, hci.sink)
        await device.power_on()
        results, peer = await serve(
            device,
            options,
            passkey=passkey,
            profile=profile,
            e2e_crc=e2e_crc,
            only=only,
            on_result=on_result,
            on_ready=on_ready,
        )
    return CollectorRunResult(peer, results, time.perf_counter() - started)
