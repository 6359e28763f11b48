"""Session time on a live loop, for hardware: ``--speed`` times the loop's clock (1 = real time).

``LiveClock`` is a ``sim.clock.scheduler.Clock``: the session engine's scheduler runs on it as
it runs on the virtual clock in simulation. Protocol timers are another matter: the timers the
specifications state in seconds of air time (RACP's 30 s without progress, ATT's 30 s) belong to
the link, which runs at 1x whatever the session's speed, so a core gets them in session time
(``session_ms``): at 1500x, 30 s of air is 750 session minutes, not 20 ms of air.
"""

from __future__ import annotations

import asyncio

from firmware.profiles import MINUTE_MS


class LiveClock:
    """Session milliseconds on the running loop: ``start_ms`` now, then ``speed`` x the loop."""

    def __init__(self, speed: float, start_ms: int = 0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, not {speed}")
        self.loop = asyncio.get_running_loop()
        self.speed, self.start_ms, self.t0 = speed, start_ms, self.loop.time()

    def now_ms(self) -> int:
        return self.start_ms + round((self.loop.time() - self.t0) * 1000 * self.speed)

    def to_loop(self, t_ms: int) -> float:
        return self.t0 + (t_ms - self.start_ms) / 1000 / self.speed

    async def sleep_until(self, t_ms: int) -> None:
        await asyncio.sleep(max(self.to_loop(t_ms) - self.loop.time(), 0))

    async def settle(self) -> None:
        """What the loop has ready now runs before the next thing due (one turn: a live
        link's traffic takes air time, which the scheduler does not wait for)."""
        await asyncio.sleep(0)


#: The most an exchange on the air may be late, seen from the session (an ATT round trip on a
#: busy host, a connection event missed): ``clock_tolerance`` allows for it.
AIR_LATENCY_MS = 500


def clock_tolerance_ms(speed: float) -> int:
    """How far a sensor's session clock may seem to move between two looks at it, in session
    time (``firmware.receiver.collector.CollectorConfig.clock_tolerance_ms``): a minute (the
    time offset's resolution) plus the air's latency, ``speed`` x faster in session time. At
    50000x, without it, a Status read 2 ms late looked like a new session."""
    return MINUTE_MS + session_ms(AIR_LATENCY_MS, speed)


def session_ms(link_ms: int, speed: float) -> int:
    """A duration on the link's clock (the loop's) in session time, which runs ``speed`` x."""
    return round(link_ms * speed)
