"""``cgmsim simulate --display --speed N``: a simulated session paced to N x real time, with
the receiver's screen drawn as it goes and the keyboard acknowledging alerts.

The session still runs on the virtual-time loop (``sim.simulation``); ``PacedSession.attach``
puts a frame on its scheduler every ``N x 0.1 s`` of session time. Each frame waits until the
wall clock has caught up with the session (``time.monotonic``: this is the one real-time edge of a
simulated run), takes the receiver's new events, draws the screen and hands the acknowledgements
typed to the receiver core as the simulated user's are (``Bookkeeper.press``: the core's
acknowledge input, and ``alert_acknowledged`` in events.jsonl). A run that cannot keep up with
N x simply runs as fast as it can.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from firmware.receiver.alerts import AlertName
from firmware.receiver.receiver import Receiver
from sim.clock.scheduler import Priority
from sim.screen.terminal import Screen
from sim.screen.view import LinkState
from sim.session.engine import Engine, Link

FRAME_S = 0.1  # wall seconds between frames
DEFAULT_SPEED = 600.0  # a sample every 0.5 s; a 10.5-day session in 25 min


class PacedSession:
    """Draws ``screen`` for the session of the engine it is attached to, at ``speed`` x real
    time over the link named ``link`` (``simulation.run(..., watch=paced.attach)``)."""

    def __init__(
        self,
        screen: Screen,
        speed: float,
        link: str,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"--speed must be > 0, not {speed}")
        self.screen, self.speed, self.link_name, self.wall = screen, speed, link, wall
        self.frame_ms = max(round(speed * FRAME_S * 1000), 1)
        self.engine: Engine | None = None
        self.t0_ms = 0
        self.wall0: float | None = None
        self.seen = 0  # events of the run already given to the screen
        self.pressed = 0  # acknowledgements typed on the keyboard (summary.json says how many)

    def attach(self, engine: Engine) -> None:
        """Start drawing the session of ``engine`` (its link attached) from its clock's now."""
        self.engine = engine
        self.t0_ms = engine.scheduler.clock.now_ms()
        engine.scheduler.call_at(self.t0_ms, Priority.RECEIVER, self._frame)

    def finish(self) -> None:
        """The session is over: draw its last instant."""
        if self.engine is not None:
            self._show(self.engine.scheduler.clock.now_ms())

    def _frame(self) -> None:
        assert self.engine is not None
        scheduler = self.engine.scheduler
        now = scheduler.clock.now_ms()
        if self.wall0 is None:
            self.wall0 = self.wall()
        behind = self.wall0 + (now - self.t0_ms) / 1000 / self.speed - self.wall()
        if behind > 0:
            self.screen.wait(behind)
        self._show(now)
        scheduler.call_at(now + self.frame_ms, Priority.RECEIVER, self._frame)

    def _show(self, now_ms: int) -> None:
        assert self.engine is not None and self.engine.link is not None
        books, link = self.engine.books, self.engine.link
        receiver = link.receiver
        wanted = self._update(now_ms, link, receiver)
        for alert in wanted:
            if books.press(receiver, alert, now_ms):
                self.pressed += 1
                link.receiver_acted()
        if wanted:  # the screen was not drawn: draw it with the acknowledgements
            self._update(now_ms, link, receiver)

    def _update(self, now_ms: int, link: Link, receiver: Receiver) -> list[AlertName]:
        events = self.engine.books.recorder.events if self.engine is not None else []
        new, self.seen = events[self.seen :], len(events)
        paired = link.stats().get("pairings")
        state = LinkState(
            self.link_name,
            receiver.collector.connected_now,
            None if paired is None else paired > 0,
        )
        return self.screen.update(now_ms, receiver, state, new)
