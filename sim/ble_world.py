"""One whole simulated session over the real BLE host stack, in virtual time.

The same session as ``sim.world.run`` (sensor -> transmitter -> link -> receiver), with the link
being two bumble devices on an in-process ``LocalLink``: the transmitter core served by
``sim.links.ble.BleTransmitter``, the receiver core driven by ``sim.links.ble_receiver.BleReceiver``
(passkey pairing, encryption, GATT discovery, notifications and indications on the air). All of
it runs on ``sim.virtual_loop``: bumble's timers, the sensor's 5-minute samples and both cores'
timers are loop timers, so the clock jumps from one to the next and a day costs CPU time only.
What happens is ``sim.bookkeeping``'s, as for the in-memory driver; this module decides when.

Simulation time 0 is the moment the first link is secured and discovered (connecting takes an
advertising interval of loop time), so that times match the in-memory driver's, which connects
at 0. Reconnections take that loop time too, so events after one come a few milliseconds later
than in memory. Faults:

- ``loss``: ATT notifications dropped on the air (``sim.links.ble.LossyLink``), one draw per
  notification from the same generator as the in-memory link's;
- ``outage=a:b``: the transmitter goes out of range at ``a`` (the link drops, it stops
  advertising) and comes back at ``b``, when the receiver connects, re-encrypts with the bond
  and backfills;
- ``receiver_restart``: the receiver process ends its link and restarts from what it committed
  (``sim.durable`` when there is a store), connecting again ``RECONNECT_MS`` later.

With a store, the receiver commits after each 5-minute sample and at each restart, so a killed
run loses at most five minutes of receiver progress, which the rerun resumes and backfills.
"""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any, BinaryIO

import numpy as np

from firmware.receiver.alerts import AlertRaised, AlertRepeated
from firmware.receiver.receiver import Receiver
from sim import durable
from sim.bookkeeping import RECONNECT_MS, SAMPLE_MS, Bookkeeper, Progress, recording_header
from sim.durable import DurableReceiver
from sim.links.ble import BleTransmitter, LossyLink, in_process_device
from sim.links.ble_receiver import BleReceiver
from sim.links.bleak_receiver import BleakReceiver, bleak_client_factory
from sim.recording import RecordingWriter
from sim.session.config import SimulationConfig
from sim.session.result import SimulationResult
from sim.store import ReceiverStore
from sim.virtual_loop import run_virtual

PASSKEY = 123_456
# Timers run this much loop time after their millisecond (which ``now_ms`` still reports), once
# what that millisecond sent over the link has arrived: transmitter first, then receiver, as
# ``sim.world`` orders them after its pump. The simulated user presses before all of them, and
# the store commits after.
ACK_LAG_S = -0.000_05
TX_TIMER_LAG_S = 0.000_1
RX_TIMER_LAG_S = 0.000_2
COMMIT_LAG_S = 0.000_3


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
    if receiver_api not in ("bumble", "bleak"):
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
    loop = asyncio.get_running_loop()
    config, session = books.config, books.session
    end_ms = session.end_ms

    epoch: list[float] = []  # loop seconds at simulation time 0

    def now_ms() -> int:
        return round((loop.time() - epoch[0]) * 1000) if epoch else 0

    def to_loop(t_ms: int) -> float:
        return (epoch[0] if epoch else loop.time()) + t_ms / 1000

    link = LossyLink(config.faults.loss, np.random.default_rng(session.link_seed))
    books.lost = lambda: link.lost
    tx_device = in_process_device(link, "transmitter", "F0:F0:F0:F0:F0:F1")
    rx_device = in_process_device(link, "receiver", "F0:F0:F0:F0:F0:F0")
    if capture is not None:
        from bumble.snoop import BtSnooper

        rx_device.host.snooper = BtSnooper(capture)
    core = books.transmitter()

    def sample_core(t_ms: int) -> None:
        books.take_sample(core, t_ms, tx.sample)  # at now_ms() == t_ms, out on the air

    start_ms, receiver = books.resume(core)
    tx = BleTransmitter(
        tx_device,
        core,
        now_ms,
        passkey=PASSKEY,
        name="cgmsim",
        to_loop=to_loop,
        timer_lag_s=TX_TIMER_LAG_S,
    )
    await tx_device.power_on()
    await rx_device.power_on()
    await tx.start()

    started = loop.create_future()
    totals = {"connections": 0, "pairings": 0}

    def established() -> None:
        if not epoch:
            epoch.append(loop.time())
            started.set_result(None)

    def on_event(event: object) -> None:
        books.on_event(event)
        if isinstance(event, AlertRaised | AlertRepeated) and event.alert in books.pending_acks:
            loop.call_at(to_loop(books.pending_acks[event.alert]) + ACK_LAG_S, user_acknowledges)

    def user_acknowledges() -> None:
        now = now_ms()
        for alert in books.due(now):
            if books.press(rx.receiver, alert, now):
                rx.drain()

    def new_receiver(core_: Receiver, hold_until_ms: int | None) -> BleReceiver | BleakReceiver:
        receiver_: BleReceiver | BleakReceiver
        if receiver_api == "bleak":
            receiver_ = BleakReceiver(
                core_,
                bleak_client_factory(rx_device, tx_device.random_address, PASSKEY),
                now_ms,
                to_loop,
                on_event=on_event,
                on_established=established,
                timer_lag_s=RX_TIMER_LAG_S,
            )
            receiver_.hold_until_ms = hold_until_ms
            return receiver_
        receiver_ = BleReceiver(
            rx_device,
            core_,
            tx_device.random_address,
            now_ms,
            to_loop,
            passkey=PASSKEY,
            on_event=on_event,
            on_established=established,
            timer_lag_s=RX_TIMER_LAG_S,
        )
        receiver_.hold_until_ms = hold_until_ms
        return receiver_

    def hold_after(t_ms: int) -> int:
        """When the receiver may connect, if it is away from ``t_ms``: after the outage then."""
        return max([t_ms] + [b for a, b in books.outages_ms if a <= t_ms < b])

    if books.resumed is None:
        rx = new_receiver(receiver, None)
    else:  # the restarted receiver process reconnects; the clock is where it left off
        epoch.append(loop.time() - start_ms / 1000)
        started.set_result(None)
        rx = new_receiver(receiver, hold_after(start_ms + RECONNECT_MS))
    runners: list[asyncio.Task[None]] = [asyncio.ensure_future(rx.run())]
    await started

    for k in range(start_ms // SAMPLE_MS + 1, session.samples):
        if k * SAMPLE_MS <= end_ms:
            loop.call_at(to_loop(k * SAMPLE_MS), sample_core, k * SAMPLE_MS)
            loop.call_at(
                to_loop(k * SAMPLE_MS) + COMMIT_LAG_S, lambda: books.commit(rx.receiver, now_ms())
            )
    for t in sorted(books.pending_acks.values()):  # carried over by a resumed run
        loop.call_at(to_loop(t) + ACK_LAG_S, user_acknowledges)

    background: set[asyncio.Task[None]] = set()

    def spawn(work: Any) -> None:
        task = asyncio.ensure_future(work)
        background.add(task)
        task.add_done_callback(background.discard)

    async def out_of_range(until_ms: int) -> None:
        """The transmitter goes out of range: the link drops, and nothing is heard of it
        (no advertising) until ``until_ms``, when the receiver may connect again."""
        rx.hold_until_ms = until_ms
        await tx.stop()
        if tx.connection is not None:
            await tx.connection.disconnect()
        await asyncio.sleep(max(to_loop(until_ms) - loop.time(), 0))
        await tx.start()

    async def restart() -> None:
        nonlocal rx
        now = now_ms()
        old = rx
        runners[-1].cancel()
        await old.close("receiver restart")
        totals["connections"] += old.connections
        totals["pairings"] += old.pairings
        rx = new_receiver(books.restarted(old.receiver, now), hold_after(now + RECONNECT_MS))
        runners.append(asyncio.ensure_future(rx.run()))

    for start, until in books.outages_ms:
        if start >= start_ms:
            loop.call_at(to_loop(start), lambda until=until: spawn(out_of_range(until)))
    for t in books.restarts_ms:
        if t > start_ms:
            loop.call_at(to_loop(t), lambda: spawn(restart()))

    await asyncio.sleep(max(to_loop(end_ms + 1) - loop.time(), 0))
    rx.stop()
    for runner in runners:
        runner.cancel()
    for task in background:
        task.cancel()
    if tx.timer is not None:
        tx.timer.cancel()
    await tx.stop()
    rx_device.host.snooper = None  # _run closes the capture file after this

    result = books.finish(rx.receiver)
    if stats is not None:
        stats.update(
            connections=totals["connections"] + rx.connections,
            pairings=totals["pairings"] + rx.pairings,
            sent_over_air=tx.sent,
        )
    return result
