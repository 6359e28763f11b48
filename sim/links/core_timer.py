"""A sans-I/O core's timer on the asyncio loop: the one piece of scheduling both BLE adapters
(the transmitter's GATT server, the receiver's GATT client) need. Works on the virtual-time loop
(``sim.virtual_loop``) as on a real one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class CoreTimer:
    """Keeps one ``loop.call_at`` armed at a core's ``get_timer()`` (ms on the ``now_ms``
    clock; ``to_loop`` turns such a time into loop seconds). Call ``arm()`` after every input
    into the core; ``fire()`` runs when the timer is due.

    ``lag_s`` fires that much loop time late, less than the clock's millisecond resolution: on
    a virtual loop, where traffic over the in-process link takes no loop time, what was sent at
    the same millisecond (a reading) arrives before the timer runs, as the in-memory driver
    orders it (pump first, then timers)."""

    def __init__(
        self,
        get_timer: Callable[[], int | None],
        fire: Callable[[], None],
        to_loop: Callable[[int], float],
        lag_s: float = 0.0,
    ) -> None:
        self.get_timer, self.fire, self.to_loop, self.lag_s = get_timer, fire, to_loop, lag_s
        self._when: int | None = None
        self._handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        when = self.get_timer()
        if when == self._when and (when is None or self._handle is not None):
            return
        self.cancel()
        if when is not None:
            self._when = when
            self._handle = asyncio.get_running_loop().call_at(
                self.to_loop(when) + self.lag_s, self._run
            )

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._when = None, None

    def _run(self) -> None:
        self._handle, self._when = None, None
        self.fire()
        self.arm()
