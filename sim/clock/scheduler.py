"""What happens at each instant of a session, and in which order.

A ``Scheduler`` runs callbacks at session times (integer milliseconds) on the running asyncio
loop, in the order (time, ``Priority``, scheduling order). After each callback it lets everything
that callback set off at the same instant finish first — the link's traffic, a reading reaching
the receiver — before the next callback due at that instant runs (``Clock.settle``). So the order
of same-instant events is written down once, as data, instead of being encoded in tiny offsets of
loop time.

The clock says what a session millisecond is on the loop: ``VirtualClock`` (simulation, on
``sim.virtual_loop``: nothing waits on a wall clock) or a live clock (hardware, ``--speed``).
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import inspect
import itertools
from collections.abc import Awaitable, Callable
from typing import Protocol

from sim.virtual_loop import VirtualTimeEventLoop

STUCK_STEPS = 10_000  # callbacks at one instant beyond which a timer is taken not to move on


class Priority(enum.IntEnum):
    """Among events due at the same instant, the lower runs first."""

    FAULT = 0  # a receiver restarts, the sensor goes out of range or comes back
    CONNECT = 1  # the receiver connects (again)
    USER = 2  # the simulated user acknowledges an alert, before a repeat due now sounds
    SAMPLE = 3  # the sensor samples: its reading reaches the receiver before the timers run
    TRANSMITTER = 4  # the transmitter core's timer
    RECEIVER = 5  # the receiver core's timer


class Clock(Protocol):
    """Session time on an asyncio loop."""

    def now_ms(self) -> int: ...

    def to_loop(self, t_ms: int) -> float: ...

    async def settle(self) -> None:
        """Let what is due at this instant on the loop run (the link's traffic)."""


class VirtualClock:
    """Session time on a virtual-time loop: session 0 is loop time ``epoch``. Without one the
    session has not begun: it is 0 until the first ``thaw()`` (e.g. once a first link is up)."""

    def __init__(self, loop: VirtualTimeEventLoop, epoch: float | None = None) -> None:
        self.loop = loop
        self.epoch = epoch
        self._frozen_ms: int | None = None

    def freeze(self) -> None:
        """Stop session time (loop time goes on): what the loop does until ``thaw()`` takes no
        session time, as setting up a link takes none on the in-memory link."""
        self._frozen_ms = self.now_ms()

    def thaw(self) -> None:
        """Session time goes on from where ``freeze()`` stopped it (or begins, at 0)."""
        frozen, self._frozen_ms = self.now_ms(), None
        self.epoch = self.loop.time() - frozen / 1000

    def now_ms(self) -> int:
        if self._frozen_ms is not None:
            return self._frozen_ms
        if self.epoch is None:
            return 0
        return round((self.loop.time() - self.epoch) * 1000)

    def to_loop(self, t_ms: int) -> float:
        if self.epoch is None or self._frozen_ms is not None:
            return self.loop.time() + (t_ms - self.now_ms()) / 1000
        return self.epoch + t_ms / 1000

    async def settle(self) -> None:
        while self.loop.busy_now():
            await asyncio.sleep(0)

    def jump(self, t_ms: int) -> bool:
        """Move straight to ``t_ms`` when nothing else is on the loop (True if it did): an
        in-memory session then never waits on the loop at all."""
        if not self.loop.idle():
            return False
        self.loop.advance(max(self.to_loop(t_ms) - self.loop.time(), 0.0))
        return True


class _Entry:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        self.callback = callback
        self.cancelled = False


class Handle:
    """A scheduled callback; ``cancel()`` takes it back."""

    __slots__ = ("_entry",)

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def cancel(self) -> None:
        self._entry.cancelled = True


class Scheduler:
    """Runs callbacks at session times in (time, priority, order) order (module docstring).
    ``after_instant(now_ms)`` is called when an instant is over (e.g. to commit a store)."""

    def __init__(self, clock: Clock, after_instant: Callable[[int], None] | None = None) -> None:
        self.clock = clock
        self.after_instant = after_instant
        self._heap: list[tuple[int, int, int, _Entry]] = []  # (time, priority, order, entry)
        self._seq = itertools.count()
        self._wake: asyncio.Future[None] | None = None
        self.stopped = False

    def stop(self) -> None:
        """End ``run_until`` now (a person stopped a live run): what is due later never runs."""
        self.stopped = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def call_at(
        self, t_ms: int, priority: Priority, callback: Callable[[], Awaitable[None] | None]
    ) -> Handle:
        """Run ``callback`` at ``t_ms`` (awaited when it returns an awaitable)."""
        entry = _Entry(callback)
        item = (t_ms, int(priority), next(self._seq), entry)
        heapq.heappush(self._heap, item)
        if self._wake is not None and not self._wake.done() and self._heap[0] is item:
            self._wake.set_result(None)  # earlier than what the runner waits for
        return Handle(entry)

    def next_time(self) -> int | None:
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    async def run_until(self, end_ms: int) -> None:
        """Run every callback due up to ``end_ms``, then return at ``end_ms``. The last instant
        gets one pass in priority order: what its events set off at that instant with a
        priority already passed (an acknowledgement of an alert that sounded just then) falls
        after the end."""
        clock = self.clock
        last, steps, final_pass = None, 0, -1
        while not self.stopped:
            due = self.next_time()
            if due is not None and due > end_ms:
                due = None
            now = clock.now_ms()
            if due is None or due > now:
                if self.after_instant is not None:
                    self.after_instant(now)
                if due is None and now >= end_ms:
                    return
                await self._sleep_until(end_ms if due is None else due)
                await clock.settle()  # what is already under way at this instant goes first
                continue
            priority, entry = self._heap[0][1], heapq.heappop(self._heap)[3]
            if due == end_ms:
                if priority <= final_pass:
                    continue
                final_pass = priority
            steps = steps + 1 if now == last else 0
            if steps > STUCK_STEPS:
                raise RuntimeError(f"session time stuck at {now} ms: a timer does not move on")
            last = now
            done = entry.callback()
            if inspect.isawaitable(done):
                await done
            await clock.settle()

    async def _sleep_until(self, t_ms: int) -> None:
        jump = getattr(self.clock, "jump", None)
        if jump is not None and jump(t_ms):
            return
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = loop.call_at(self.clock.to_loop(t_ms), _resolve, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
