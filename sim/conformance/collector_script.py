"""What the collector cases share (``Script``) and the run's options: below both the cases
(``collector_cases``) and the runner (``collector_runner``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from firmware.profiles import MINUTE_MS
from sim.clock.live import LiveClock
from sim.conformance.registry import Inconclusive
from sim.conformance.scripted_sensor import AirEvent, ScriptedSensor
from sim.fuzz import corpus

SAMPLE_MS = corpus.SAMPLE_MS
T = TypeVar("T")


@dataclass(frozen=True)
class CollectorOptions:
    speed: float = 1.0  # session time x the loop's
    offline_readings: int = 2  # readings made during each outage
    connect_wait_s: float = 60.0  # for the collector to connect (and pair: a person types)
    step_s: float = 30.0  # for each next thing the collector does on a link

    @property
    def outage_s(self) -> float:
        """How long an outage lasts: its readings at the sensor's speed, and a second."""
        return self.offline_readings * SAMPLE_MS / 1000 / self.speed + 1.0


class Script:
    """What the cases share: the sensor, its log, the collector's link and identity, and the
    records made during the last outage."""

    def __init__(self, sensor: ScriptedSensor, clock: LiveClock, options: CollectorOptions):
        self.sensor, self.clock, self.options = sensor, clock, options
        self.link = 0
        self.identity: str | None = None
        self.missed: list[int] = []
        self.outage_mark: int | None = None

    async def until(self, condition: Callable[[], T], timeout_s: float) -> T | None:
        """``condition()`` once it is truthy, re-checked on every event; None at the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self.sensor.changed.clear()
            found = condition()
            if found:
                return found
            left = deadline - loop.time()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sensor.changed.wait(), min(left, 0.5))

    async def until_event(self, kind: str, timeout_s: float, after: int = 0) -> AirEvent | None:
        def first() -> AirEvent | None:
            return next((e for e in self.sensor.events[after:] if e.kind == kind), None)

        return await self.until(first, timeout_s)

    def sensor_handles(self) -> tuple[int, int]:
        handles = [c.handle for c in self.sensor.characteristics.values()]
        return min(handles) - 1, max(handles) + 1  # declarations to the last CCCD

    async def outage(
        self, *, forget: bool = False, readings: int | None = None, rogue: str | None = None
    ) -> int:
        """Drop the link, make ``readings`` readings (default ``offline_readings``) with
        nobody connected, ``forget`` the collector's bond if asked, advertise again (as a
        ``rogue`` sensor of that kind, knowing no bond, if asked). Returns the index of the
        first event after the drop; ``missed`` holds the offsets made meanwhile."""
        sensor = self.sensor
        await sensor.drop()
        mark = len(sensor.events)
        newest = sensor.newest_offset()
        count = self.options.offline_readings if readings is None else readings
        target = (newest or 0) + count * SAMPLE_MS // MINUTE_MS

        def made() -> bool:
            latest = sensor.newest_offset()
            return latest is not None and latest >= target

        if count and not await self.until(made, self.options.outage_s + 5):
            raise Inconclusive(f"the sensor made no {count} readings in {self.options.outage_s} s")
        self.missed = sorted(
            r.time_offset for r in sensor.core.store if r.time_offset > (newest or -1)
        )
        if forget and self.identity is not None:
            await sensor.forget(self.identity)
        if rogue is not None:
            await sensor.forget_all()
            sensor.go_rogue(rogue)
        await sensor.advertise()
        self.outage_mark = mark
        return mark
