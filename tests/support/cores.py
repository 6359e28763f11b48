"""Two firmware cores on the memory link, driven in virtual time by the test itself (no session
engine): a sensor sample every 5 minutes, then each core's timer when it is due."""

from __future__ import annotations

from collections.abc import Callable

from firmware.events import SensorSample
from firmware.profiles import MINUTE_MS
from firmware.receiver.receiver import Receiver
from firmware.transmitter.server import Transmitter
from sim.links.memory import MemoryLink

SAMPLE_MS = 5 * MINUTE_MS


def run_cores(
    tx: Transmitter,
    rx: Receiver,
    link: MemoryLink,
    now_ms: int,
    until_ms: int,
    sample: Callable[[int], SensorSample],
) -> None:
    """Move the cores from ``now_ms`` to ``until_ms``; ``sample(t_ms)`` is the sensor's sample
    at ``t_ms`` (every 5 minutes)."""
    while True:
        next_sample = (now_ms // SAMPLE_MS + 1) * SAMPLE_MS
        timers = [t for t in (tx.get_timer(), rx.get_timer()) if t is not None]
        now = min([next_sample, *timers])
        if now > until_ms:
            return
        assert now >= now_ms, "a timer went back in time"
        now_ms = now
        if now == next_sample:
            tx.sample(sample(now), now)
            link.pump(now)
        if (t := tx.get_timer()) is not None and t <= now:
            tx.handle_timer(now)
        if (t := rx.get_timer()) is not None and t <= now:
            rx.handle_timer(now)
        link.pump(now)
