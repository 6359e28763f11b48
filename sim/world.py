"""One whole simulated session on the in-memory link, in virtual time.

The session engine (``sim.session.engine``) with ``sim.links.memory``: sensor -> transmitter ->
link -> receiver, the two cores wired directly. The engine's scheduler moves the clock straight
to the next thing due (a sensor sample every 5 minutes, a core's timer, a fault, a simulated
user's acknowledgement), so nothing waits on a wall clock. Randomness: one
``SeedSequence(seed)`` spawned per component (sensor chain, link loss).
"""

from __future__ import annotations

import asyncio
import pathlib

import numpy as np

from sim import durable
from sim.clock.scheduler import VirtualClock
from sim.durable import DurableReceiver
from sim.links.memory import MemoryLink
from sim.recording import RecordingWriter
from sim.session.bookkeeping import Bookkeeper, Progress, recording_header
from sim.session.config import SimulationConfig
from sim.session.engine import Engine
from sim.session.result import SimulationResult
from sim.store import ReceiverStore
from sim.virtual_loop import VirtualTimeEventLoop, run_virtual


def run(
    config: SimulationConfig,
    store_path: pathlib.Path | None = None,
    *,
    record: pathlib.Path | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate the session. With ``store_path`` the receiver is durable (``sim.durable``):
    every pump that gave receiver events is committed to the SQLite store there, receiver
    restarts reload from it, and a run started on a store that already holds this session (a
    previous process was killed) resumes where the last commit left it. With ``record``, every
    input of both cores and what they emitted is written there (``sim.recording``; gzip when
    the name ends in ``.gz``) for ``cgmsim replay``. ``progress(done_ms, end_ms)`` is called
    after every sensor sample (a progress bar)."""
    if record is not None:
        with RecordingWriter.create(record, recording_header(config, "memory")) as writer:
            return _stored(config, store_path, writer, progress)
    return _stored(config, store_path, None, progress)


def _stored(
    config: SimulationConfig,
    store_path: pathlib.Path | None,
    writer: RecordingWriter | None,
    progress: Progress | None,
) -> SimulationResult:
    if store_path is None:
        return _run(config, None, writer, progress)
    with ReceiverStore.open(store_path) as store:
        session = durable.session_id(config.profile.name, config.seed)
        keeper = durable.DurableReceiver(store, session, durable.fingerprint(config))
        return _run(config, keeper, writer, progress)


def _run(
    config: SimulationConfig,
    keeper: DurableReceiver | None,
    writer: RecordingWriter | None,
    progress: Progress | None,
) -> SimulationResult:
    return run_virtual(_session(Bookkeeper(config, keeper, writer, progress)))


async def _session(books: Bookkeeper) -> SimulationResult:
    tx = books.transmitter()
    start_ms, receiver = books.resume(tx)
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeEventLoop)
    clock = VirtualClock(loop, loop.time() - start_ms / 1000)
    engine = Engine.on_clock(books, tx, clock, start_ms)
    link = MemoryLink(
        tx,
        receiver,
        loss=books.config.faults.loss,
        rng=np.random.default_rng(books.session.link_seed),
        on_receiver_event=engine.on_event,
        scheduler=engine.scheduler,
    )
    books.lost = lambda: link.lost
    engine.attach(link)
    return await engine.run()


__all__ = ["run"]
