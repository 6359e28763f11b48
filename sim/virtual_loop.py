"""An asyncio event loop on a virtual clock: timers fire at once, in virtual-time order.

``loop.time()`` returns virtual seconds. When no callback is ready and no I/O is pending, the
loop does not sleep: it moves its clock straight to the earliest scheduled timer. So
``await asyncio.sleep(3600)`` returns immediately in wall time with ``loop.time()`` advanced by
exactly 3600, and every timer of every library on the loop (bumble's advertising, connection and
ATT timeouts included) runs on the simulated clock. A whole simulated day of bumble traffic over
the in-process ``LocalLink`` (which only uses ``call_soon``) then costs CPU time only.

How: a standard :class:`asyncio.SelectorEventLoop` with two public hooks replaced — ``time()``
and the selector it is constructed with. CPython's ``_run_once`` computes the wait as
``earliest timer - loop.time()`` and passes it to ``selector.select(timeout)``; our selector first
polls real I/O without blocking and, if nothing is ready, advances the virtual clock by that
timeout instead of sleeping. Two further rules keep it exact and deterministic:

- Timers due at the same virtual instant run in the order they were scheduled (``call_at`` is
  overridden to break ties by a sequence number; a plain heap does not keep insertion order, and
  with a virtual clock exact ties are common).
- While ``run_in_executor`` work is outstanding the clock stands still and the loop blocks for
  real until the worker thread reports back, so thread work takes zero virtual time and cannot
  be overtaken by a timeout.

Limitations: anything driven by real-world time must not run on this loop — real sockets,
serial/pty/USB HCI transports, subprocesses: their peers' clocks do not jump, so timeouts fire at
once. Code that reads ``time.time()``/``time.monotonic()`` directly (not ``loop.time()``) sees wall
time. If nothing is ready, no timer is scheduled and no executor work is pending, the loop blocks
on real I/O exactly like a normal loop (a deadlocked simulation hangs rather than failing).
Relies on CPython 3.11's ``BaseEventLoop._run_once``/``call_at``; ``tests/sim/test_virtual_loop.py``
checks the behaviour that depends on them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
from asyncio import events
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, TypeVar

__all__ = ["VirtualTimeEventLoop", "new_virtual_loop", "run_virtual"]

_T = TypeVar("_T")


class _OrderedTimerHandle(events.TimerHandle):
    """A timer handle ordered by (when, scheduling sequence): ties keep insertion order."""

    __slots__ = ("_seq",)

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        context: Context | None,
        seq: int,
    ) -> None:
        super().__init__(when, callback, args, loop, context)
        self._seq = seq

    def _key(self) -> tuple[float, int]:
        return (self._when, self._seq)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, _OrderedTimerHandle):
            return self._key() < other._key()
        return super().__lt__(other)

    def __hash__(self) -> int:
        return super().__hash__()


class _VirtualSelector(selectors.DefaultSelector):
    """Polls real I/O without blocking; otherwise advances the loop's virtual clock."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeEventLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        if loop is None or timeout == 0 or loop._pending_executor_work():
            # Ready callbacks, or thread work outstanding: real I/O only, the clock stands still.
            return super().select(timeout if loop is None or timeout == 0 else None)
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            # No timer at all: only real I/O (or another thread) can wake us, like a normal loop.
            return super().select(None)
        loop._advance(timeout)
        return []


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual and whose idle waits take no wall time."""

    def __init__(self, start: float = 0.0) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        self._virtual_now = float(start)
        self._timer_seq = itertools.count()
        self._executor_futures: set[asyncio.Future[Any]] = set()
        selector.loop = self

    def time(self) -> float:
        """The virtual clock, in seconds."""
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward by ``seconds`` (>= 0) without running anything."""
        if seconds < 0:
            raise ValueError("virtual time cannot go backwards")
        self._advance(seconds)

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        """As :meth:`asyncio.BaseEventLoop.call_at` (CPython 3.11), with FIFO ordering of ties."""
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        if self.get_debug():
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        timer = _OrderedTimerHandle(when, callback, args, self, context, next(self._timer_seq))
        if timer._source_traceback:
            del timer._source_traceback[-1]
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., _T], *args: Any
    ) -> asyncio.Future[_T]:
        """As the base method; the clock does not advance until the work has finished."""
        future = super().run_in_executor(executor, func, *args)
        self._executor_futures.add(future)
        future.add_done_callback(self._executor_futures.discard)
        return future

    def busy_now(self) -> bool:
        """Whether something is ready to run at the current instant (a callback, or a timer due
        now): ``sim.clock.scheduler`` lets it run before the next event of the instant."""
        scheduled = self._scheduled  # type: ignore[attr-defined]
        return bool(self._ready) or bool(  # type: ignore[attr-defined]
            scheduled and scheduled[0].when() <= self._virtual_now
        )

    def idle(self) -> bool:
        """Whether nothing at all is pending (no callback, timer or thread work): the clock can
        then move on without running the loop."""
        return (
            not self._ready  # type: ignore[attr-defined]
            and all(handle.cancelled() for handle in self._scheduled)  # type: ignore[attr-defined]
            and not self._pending_executor_work()
        )

    def _pending_executor_work(self) -> bool:
        return any(not f.done() for f in self._executor_futures)


def new_virtual_loop(start: float = 0.0) -> VirtualTimeEventLoop:
    """A new, not running, :class:`VirtualTimeEventLoop` whose clock starts at ``start``."""
    return VirtualTimeEventLoop(start)


def run_virtual(coro: Coroutine[Any, Any, _T], start: float = 0.0) -> _T:
    """Run ``coro`` to completion on a fresh virtual-time loop (like ``asyncio.run``)."""
    with asyncio.Runner(loop_factory=lambda: new_virtual_loop(start)) as runner:
        return runner.run(coro)
