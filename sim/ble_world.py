"""One whole simulated session over the real BLE host stack, in virtual time.

The session engine (``sim.session.engine``) with the BLE link (``sim.links.ble_link``): the
same session as ``sim.world.run``, with both firmwares on bumble devices joined by an in-process
link (passkey pairing, encryption, GATT discovery, notifications and indications on the air),
all on ``sim.virtual_loop``. Faults:

- ``loss``: ATT notifications dropped on the air (``sim.links.ble.LossyLink``), one draw per
  notification from the same generator as the in-memory link's;
- ``outage=a:b``: the transmitter goes out of range at ``a`` (the link drops, it stops
  advertising) and comes back at ``b``, when the receiver connects, re-encrypts with the bond
  and backfills;
- ``receiver_restart``: the receiver process ends its link and restarts from what it committed
  (``sim.durable`` when there is a store), connecting again ``RECONNECT_MS`` later.

With a store, the receiver commits at the end of every instant at which something happened, as
in memory.
"""

from __future__ import annotations

import asyncio
import pathlib
from typing import BinaryIO

import numpy as np

from sim import durable
from sim.clock.scheduler import VirtualClock
from sim.durable import DurableReceiver
from sim.links.ble_link import RECEIVER_APIS, BleLink
from sim.recording import RecordingWriter
from sim.session.bookkeeping import Bookkeeper, Progress, recording_header
from sim.session.config import SimulationConfig
from sim.session.engine import Engine
from sim.session.result import SimulationResult
from sim.store import ReceiverStore
from sim.virtual_loop import VirtualTimeEventLoop, run_virtual


def run_ble(
    config: SimulationConfig,
    capture: pathlib.Path | None = None,
    store_path: pathlib.Path | None = None,
    *,
    stats: dict[str, int] | None = None,
    receiver_api: str = "bumble",
    record: pathlib.Path | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate the session over bumble. ``capture``, when given, is where the receiver's HCI
    traffic is written as a btsnoop log (``bumble.snoop.BtSnooper``): pairing, encryption, the
    GATT discovery (which a decoder such as tshark needs to map handles to CGM UUIDs) and every
    notification and indication. ``store_path``: the durable receiver's SQLite store, as for
    ``sim.world.run`` (a run on a store holding this session resumes it). ``stats``, when given,
    gets the connections made, pairings done and values sent over the air. ``receiver_api``:
    the receiver drives bumble directly (``"bumble"``, ``BleReceiver``) or goes through the
    bleak API (``"bleak"``, ``BleakReceiver`` on the bleak backend over bumble). ``record``:
    where both cores' inputs and outputs are written for ``cgmsim replay`` (``sim.recording``).
    ``progress(done_ms, end_ms)`` is called after every sensor sample (a progress bar)."""
    if receiver_api not in RECEIVER_APIS:
        raise ValueError(f"receiver_api is bumble or bleak, not {receiver_api!r}")
    if record is not None:
        with RecordingWriter.create(record, recording_header(config, "ble")) as writer:
            return _stored(config, capture, store_path, stats, writer, receiver_api, progress)
    return _stored(config, capture, store_path, stats, None, receiver_api, progress)


def _stored(
    config: SimulationConfig,
    capture: pathlib.Path | None,
    store_path: pathlib.Path | None,
    stats: dict[str, int] | None,
    writer: RecordingWriter | None,
    receiver_api: str,
    progress: Progress | None,
) -> SimulationResult:
    if store_path is None:
        return _run(config, None, capture, stats, writer, receiver_api, progress)
    with ReceiverStore.open(store_path) as store:
        session = durable.session_id(config.profile.name, config.seed)
        keeper = durable.DurableReceiver(store, session, durable.fingerprint(config))
        return _run(config, keeper, capture, stats, writer, receiver_api, progress)


def _run(
    config: SimulationConfig,
    keeper: DurableReceiver | None,
    capture: pathlib.Path | None,
    stats: dict[str, int] | None,
    writer: RecordingWriter | None,
    receiver_api: str,
    progress: Progress | None,
) -> SimulationResult:
    books = Bookkeeper(config, keeper, writer, progress)
    if capture is None:
        return run_virtual(_session(books, stats, None, receiver_api))
    with pathlib.Path(capture).open("wb") as output:
        return run_virtual(_session(books, stats, output, receiver_api))


async def _session(
    books: Bookkeeper, stats: dict[str, int] | None, capture: BinaryIO | None, receiver_api: str
) -> SimulationResult:
    tx = books.transmitter()
    start_ms, receiver = books.resume(tx)
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeEventLoop)
    # a fresh session's clock begins when the first link is up; a resumed one goes on
    clock = VirtualClock(loop, None if books.resumed is None else loop.time() - start_ms / 1000)
    engine = Engine.on_clock(books, tx, clock, start_ms)
    link = BleLink(
        tx,
        receiver,
        engine.scheduler,
        clock,
        loss=books.config.faults.loss,
        rng=np.random.default_rng(books.session.link_seed),
        on_receiver_event=engine.on_event,
        receiver_api=receiver_api,
        capture=capture,
    )
    books.lost = lambda: link.lost
    await link.open()
    engine.attach(link)
    result = await engine.run()
    if stats is not None:
        stats.update(link.stats())
    return result
