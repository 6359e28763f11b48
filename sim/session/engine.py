"""The session engine: one session, from one config, over any link.

It owns what every session has whatever carries it: the clock (``sim.clock.scheduler``), the
sensor's samples every 5 minutes, the fault schedule (outages, receiver restarts), the simulated
user's acknowledgements and the durable store's commits (``sim.session.bookkeeping``). The link is a
parameter (``Link``): the in-memory link, or both firmwares on a BLE stack. What happens at one
instant runs in ``Priority`` order, so the memory and BLE links see the same sequence of events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from firmware.events import SensorSample
from firmware.receiver.alerts import AlertRaised, AlertRepeated
from firmware.receiver.receiver import RECONNECT_MS, Receiver
from firmware.transmitter.server import Transmitter
from sim.clock.scheduler import Clock, Priority, Scheduler
from sim.session.bookkeeping import SAMPLE_MS, Bookkeeper
from sim.session.result import SimulationResult


class Link(Protocol):
    """A link between the session's transmitter core and its receiver core, as the engine
    drives it. Times are session milliseconds; each call happens at the scheduler's now."""

    @property
    def receiver(self) -> Receiver | None:
        """The receiver core on the far side (a new one after a restart); None when the far
        side is another device (the transmitter on a controller facing a receiver)."""

    @property
    def lost(self) -> int:
        """Notifications lost on the way so far."""

    async def open(self) -> None:
        """Ready the link (power the radios on, advertise) before the session starts."""

    def start(self, connect_at_ms: int) -> Awaitable[None] | None:
        """The receiver connects at ``connect_at_ms`` (and again after each link loss); the
        session clock begins when this returns."""

    def sample(self, sample: SensorSample, t_ms: int) -> None:
        """The transmitter takes the sensor's sample of ``t_ms`` (the scheduler's now, which a
        live loop may reach late), and sends what it has to."""

    def out_of_range(self, until_ms: int) -> Awaitable[None] | None:
        """The sensor goes out of range: the link drops; no connection before ``until_ms``."""

    def restart_receiver(
        self, restarted: Callable[[Receiver], Receiver], connect_at_ms: int
    ) -> Awaitable[None] | None:
        """The receiver process restarts: its link ends, it comes back as ``restarted(old)``
        and connects at ``connect_at_ms``."""

    def receiver_acted(self) -> None:
        """The engine gave the receiver core an input: move what follows from it."""

    async def close(self) -> None:
        """The session is over."""

    def stats(self) -> dict[str, int]:
        """What the link counted (connections, pairings, values sent), if it counts."""


class Engine:
    """Runs the session of ``books`` on ``clock`` (at ``start_ms``: 0, or where a killed run
    left the session, ``Bookkeeper.resume``): the transmitter ``core`` takes the samples
    through the link, set with ``attach`` before ``run``. The durable store commits when each
    instant is over."""

    def __init__(
        self, books: Bookkeeper, core: Transmitter, clock: Clock, start_ms: int = 0
    ) -> None:
        self.books, self.core, self.start_ms = books, core, start_ms
        self.scheduler = Scheduler(clock, after_instant=self._commit)
        self.link: Link | None = None
        self.lag_ms = 0  # the most a sample came late (a live clock on a busy host)

    def attach(self, link: Link) -> None:
        self.link = link

    def _commit(self, now_ms: int) -> None:
        receiver = None if self.link is None else self.link.receiver
        if receiver is not None:
            self.books.commit(receiver, now_ms)

    def stop(self) -> None:
        """End the session now (a live run stopped by a person): ``run`` returns what it has."""
        self.scheduler.stop()

    def on_event(self, event: object) -> None:
        """Every receiver event goes here (the link calls it)."""
        self.books.on_event(event)
        if isinstance(event, AlertRaised | AlertRepeated):
            due = self.books.pending_acks.get(event.alert)
            if due is not None:
                self.scheduler.call_at(due, Priority.USER, self._user_acknowledges)

    def _user_acknowledges(self) -> None:
        """One press per acknowledgement due; each moves what the receiver then says (a repeat
        of another alert due at this very moment sounds then, acknowledged after its delay)."""
        assert self.link is not None
        now, receiver = self.scheduler.clock.now_ms(), self.link.receiver
        assert receiver is not None, "acknowledgements are pressed on a receiver core"
        for alert in self.books.due(now):
            if self.books.press(receiver, alert, now):
                self.link.receiver_acted()

    def _hold_after(self, t_ms: int) -> int:
        """When the receiver may connect, if it is away from ``t_ms``: after an outage then."""
        return max([t_ms] + [b for a, b in self.books.outages_ms if a <= t_ms < b])

    async def run(self) -> SimulationResult:
        books, link, scheduler, start = self.books, self.link, self.scheduler, self.start_ms
        assert link is not None, "Engine.attach(link) first"
        end_ms = books.session.end_ms
        self._next_sample((start // SAMPLE_MS + 1) * SAMPLE_MS)
        for a, b in books.outages_ms:
            if a >= start:
                scheduler.call_at(a, Priority.FAULT, lambda b=b: link.out_of_range(b))
        for t in books.restarts_ms:
            if t > start:
                scheduler.call_at(t, Priority.FAULT, self._restart)
        for t in sorted(books.pending_acks.values()):  # carried over by a resumed run
            scheduler.call_at(t, Priority.USER, self._user_acknowledges)
        started = link.start(0 if books.resumed is None else self._hold_after(start + RECONNECT_MS))
        if started is not None:
            await started
        await scheduler.run_until(end_ms)
        await link.close()
        stopped_at = min(scheduler.clock.now_ms(), end_ms) if scheduler.stopped else None
        return books.finish(link.receiver, stopped_at)

    def _next_sample(self, t_ms: int) -> None:
        if t_ms <= self.books.session.end_ms:
            self.scheduler.call_at(t_ms, Priority.SAMPLE, lambda: self._sample(t_ms))

    def _sample(self, t_ms: int) -> None:
        assert self.link is not None
        link = self.link
        self.lag_ms = max(self.lag_ms, self.scheduler.clock.now_ms() - t_ms)
        self.books.take_sample(self.core, t_ms, lambda sample: link.sample(sample, t_ms))
        self._next_sample(t_ms + SAMPLE_MS)

    def _restart(self) -> Awaitable[None] | None:
        assert self.link is not None
        now = self.scheduler.clock.now_ms()
        return self.link.restart_receiver(
            lambda old: self.books.restarted(old, now), self._hold_after(now + RECONNECT_MS)
        )
