"""A whole simulated session in virtual time, over a link chosen by name.

The session engine (``sim.session.engine``) with one of the links in ``LINKS``:

- ``memory``: the two cores wired directly (``sim.links.memory``), fastest;
- ``ble``: both firmwares on the bumble host stack, two devices on virtual controllers joined
  in process (``sim.links.ble_link``): passkey pairing, encryption, GATT discovery,
  notifications and indications on the air;
- ``bleak``: as ``ble``, with the receiver going through the bleak API on its bumble backend.

All of them run on the virtual-time loop (``sim.virtual_loop``): the clock jumps from one
thing due to the next, so nothing waits on a wall clock. Randomness: one ``SeedSequence(seed)``
spawned per component (sensor chain, link loss). The links give the same session for the same
config (``tests/sim/test_links_agree.py``). Faults:

- ``loss``: notifications lost on the way (on the air for the BLE links), one draw per
  notification from the same generator;
- ``outage=a:b``: the sensor is out of range from ``a`` to ``b`` (the link drops; over BLE it
  stops advertising); the receiver connects again at ``b``, re-encrypts with the bond and
  backfills;
- ``receiver_restart``: the receiver process ends its link and restarts from what it committed
  (``sim.durable`` when there is a store), connecting again ``RECONNECT_MS`` later.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from firmware.receiver.receiver import Receiver
from firmware.transmitter.server import Transmitter
from sim import durable
from sim.clock.scheduler import VirtualClock
from sim.links.ble_link import BleLink
from sim.links.memory import MemoryLink
from sim.links.session_snoop import SessionSnooper
from sim.recording import RecordingWriter
from sim.session.bookkeeping import Bookkeeper, Progress, recording_header
from sim.session.config import SimulationConfig
from sim.session.engine import Engine, Link
from sim.session.result import SimulationResult
from sim.store import ReceiverStore
from sim.virtual_loop import VirtualTimeEventLoop, run_virtual

# The BLE links, by name: how their receiver drives bumble (directly, or through bleak)
RECEIVER_APIS = {"ble": "bumble", "bleak": "bleak"}
LINKS = ("memory", *RECEIVER_APIS)


def _link(
    name: str,
    books: Bookkeeper,
    tx: Transmitter,
    rx: Receiver,
    engine: Engine,
    clock: VirtualClock,
    capture: BinaryIO | None,
) -> Link:
    """The link ``name`` between the session's cores, on the engine's scheduler."""
    loss = books.config.faults.loss
    rng = np.random.default_rng(books.session.link_seed)
    if name == "memory":
        return MemoryLink(
            tx,
            rx,
            loss=loss,
            rng=rng,
            on_receiver_event=engine.on_event,
            scheduler=engine.scheduler,
        )
    return BleLink(
        tx,
        rx,
        engine.scheduler,
        clock,
        loss=loss,
        rng=rng,
        on_receiver_event=engine.on_event,
        receiver_api=RECEIVER_APIS[name],
        capture=None
        if capture is None
        else SessionSnooper(capture, clock.now_ms, books.config.clock_at_zero),
    )


def run(
    config: SimulationConfig,
    *,
    link: str = "memory",
    store_path: pathlib.Path | None = None,
    record: pathlib.Path | None = None,
    capture: pathlib.Path | None = None,
    progress: Progress | None = None,
    stats: dict[str, int] | None = None,
    watch: Callable[[Engine], None] | None = None,
) -> SimulationResult:
    """Simulate the session over ``link`` (a name in ``LINKS``). ``store_path``: the durable
    receiver's SQLite store (``sim.durable``): every instant that gave receiver events is
    committed there, restarts reload from it, and a run on a store that already holds this
    session (a killed process) resumes where the last commit left it. ``record``: where both
    cores' inputs and outputs are written for ``cgmsim replay`` (``sim.recording``; gzip when
    the name ends in ``.gz``). ``capture`` (BLE links): the receiver's HCI traffic as a btsnoop
    log, which tshark decodes, stamped with session time (``sim.links.session_snoop``).
    ``progress(done_ms, end_ms)`` is called after every sensor sample. ``stats`` (BLE links)
    gets the connections made, pairings done and values sent. ``watch(engine)`` is called once
    the link is attached, before the session runs (the live screen, ``sim.screen.paced``, puts
    its frames on the engine's scheduler)."""
    if link not in LINKS:
        raise ValueError(f"link is one of {', '.join(LINKS)}, not {link!r}")
    if capture is not None and link not in RECEIVER_APIS:
        raise ValueError(f"--capture needs a BLE link ({', '.join(RECEIVER_APIS)}), not {link}")
    with contextlib.ExitStack() as stack:
        writer = None
        if record is not None:
            header = recording_header(config, link)
            writer = stack.enter_context(RecordingWriter.create(record, header))
        keeper = None
        if store_path is not None:
            store = stack.enter_context(ReceiverStore.open(store_path))
            session = durable.session_id(config.profile.name, config.seed)
            keeper = durable.DurableReceiver(store, session, durable.fingerprint(config))
        output = None if capture is None else stack.enter_context(pathlib.Path(capture).open("wb"))
        books = Bookkeeper(config, keeper, writer, progress)
        return run_virtual(_session(books, link, output, stats, watch))


async def _session(
    books: Bookkeeper,
    name: str,
    capture: BinaryIO | None,
    stats: dict[str, int] | None,
    watch: Callable[[Engine], None] | None = None,
) -> SimulationResult:
    tx = books.transmitter()
    start_ms, receiver = books.resume(tx)
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeEventLoop)
    clock = VirtualClock(loop, loop.time() - start_ms / 1000)
    engine = Engine(books, tx, clock, start_ms)
    link = _link(name, books, tx, receiver, engine, clock, capture)
    books.lost = lambda: link.lost
    await link.open()
    engine.attach(link)
    if watch is not None:
        watch(engine)
    result = await engine.run()
    if stats is not None:
        stats.update(link.stats())
    return result
