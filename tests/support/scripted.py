"""Scripted whole sessions, on the memory link or over the BLE stack: the sensor's state forced
over chosen minutes (a brief issue, a failure) and chosen readings' notifications lost on the
way, the first ``n`` times they are sent (live, then in a backfill).

The drivers are the real ones (``sim.world.run``, ``sim.ble_world.run_ble``); only what they
are fed is replaced, for the length of a ``with`` block: the sensor's input
(``sim.session.bookkeeping.session_input``) and the link's notification loss (the memory link,
bumble's in-process link).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import replace

import pytest

from firmware.events import Notify, SensorState, Sent
from protocol.cgms import measurement
from protocol.errors import FrameError
from sim import ble_world, simulation, world
from sim.links import ble_link
from sim.links.ble import LossyLink
from sim.links.memory import MemoryLink
from sim.session import bookkeeping
from sim.session.config import SimulationConfig
from sim.session.result import SimulationResult

SAMPLE_MIN = 5
ATT_NOTIFICATION = 0x1B


def _offsets(value: bytes) -> set[int]:
    try:
        return {record.time_offset for record in measurement.decode(value)}
    except FrameError:
        return set()


class _Drops:
    """How many more times the notification carrying each time offset is lost."""

    def __init__(self, drops: Mapping[int, int]) -> None:
        self.left = dict(drops)

    def take(self, value: bytes) -> bool:
        hit = [t for t in _offsets(value) if self.left.get(t, 0) > 0]
        for t in hit:
            self.left[t] -= 1
        return bool(hit)


@contextlib.contextmanager
def scripted(
    states: Mapping[tuple[int, int | None], SensorState], drops: Mapping[int, int]
) -> Iterator[None]:
    """``states``: ``{(from_min, until_min or None): state}``; ``drops``: ``{time offset:
    times its notification is lost}``."""
    patch = pytest.MonkeyPatch()
    real_input = bookkeeping.session_input
    lost = _Drops(drops)

    def session_input(config: SimulationConfig) -> bookkeeping.SessionInput:
        made = real_input(config)
        state = made.chunk.state.copy()
        for (first, until), value in states.items():
            stop = state.shape[1] if until is None else until // SAMPLE_MIN
            state[0, first // SAMPLE_MIN : stop] = value
        return replace(made, chunk=replace(made.chunk, state=state))

    class DroppingMemoryLink(MemoryLink):
        def _from_transmitter(self, event: object, now_ms: int) -> None:
            if self.up and isinstance(event, Notify) and lost.take(event.value):
                self.lost += 1
                self.tx.receive(Sent(), now_ms)
                return
            super()._from_transmitter(event, now_ms)

    class DroppingLossyLink(LossyLink):
        def send_acl_data(
            self,
            sender_controller: object,
            destination_address: object,
            transport: object,
            data: bytes,
        ) -> None:
            # one whole L2CAP PDU: length (2), channel id (2), ATT opcode, handle (2), value
            if len(data) > 7 and data[4] == ATT_NOTIFICATION and lost.take(bytes(data[7:])):
                self.lost += 1
                return
            super().send_acl_data(sender_controller, destination_address, transport, data)

    patch.setattr(bookkeeping, "session_input", session_input)
    patch.setattr(simulation, "MemoryLink", DroppingMemoryLink)
    patch.setattr(ble_link, "LossyLink", DroppingLossyLink)
    try:
        yield
    finally:
        patch.undo()


def run_scripted(
    link: str,
    config: SimulationConfig,
    states: Mapping[tuple[int, int | None], SensorState],
    drops: Mapping[int, int] | None = None,
) -> SimulationResult:
    with scripted(states, drops or {}):
        if link == "memory":
            return world.run(config)
        return ble_world.run_ble(config)


def alert_times(result: SimulationResult, kind: str, alert: str) -> list[float]:
    return [e["t_min"] for e in result.events if e["kind"] == kind and e.get("alert") == alert]
