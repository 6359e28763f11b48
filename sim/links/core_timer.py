"""A sans-I/O core's timer, kept armed at its ``get_timer()``: the one piece of scheduling every
adapter of a core needs. Where the timer is kept is the caller's choice (``Schedule``): on the
asyncio loop (``on_loop``: hardware, tools that run one adapter), or on a session's scheduler
(``sim.clock.scheduler``), which orders it among the other events due at the same instant."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# schedule(t_ms, callback) -> something to cancel it with
Schedule = Callable[[int, Callable[[], None]], Cancellable]


def on_loop(to_loop: Callable[[int], float]) -> Schedule:
    """Schedule on the running asyncio loop; ``to_loop`` turns a core time into loop seconds."""

    def schedule(t_ms: int, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_at(to_loop(t_ms), callback)

    return schedule


class CoreTimer:
    """Keeps one callback scheduled at a core's ``get_timer()`` (ms on the core's clock). Call
    ``arm()`` after every input into the core; ``fire()`` runs when the timer is due."""

    def __init__(
        self, get_timer: Callable[[], int | None], fire: Callable[[], None], schedule: Schedule
    ) -> None:
        self.get_timer, self.fire, self.schedule = get_timer, fire, schedule
        self._when: int | None = None
        self._handle: Cancellable | None = None

    def arm(self) -> None:
        when = self.get_timer()
        if when == self._when and (when is None or self._handle is not None):
            return
        self.cancel()
        if when is not None:
            self._when = when
            self._handle = self.schedule(when, self._run)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._when = None, None

    def _run(self) -> None:
        self._handle, self._when = None, None
        self.fire()
        self.arm()
