"""One whole simulated session over the real BLE host stack, in virtual time.

The same session as ``sim.world.run`` (sensor -> transmitter -> link -> receiver), with the link
being two bumble devices on an in-process ``LocalLink``: the transmitter core served by
``sim.links.ble.BleTransmitter``, the receiver core driven by ``sim.links.ble_receiver.BleReceiver``
(passkey pairing, encryption, GATT discovery, notifications and indications on the air). All of
it runs on ``sim.virtual_loop``: bumble's timers, the sensor's 5-minute samples and both cores'
timers are loop timers, so the clock jumps from one to the next and a day costs CPU time only.

Simulation time 0 is the moment the first link is secured and discovered (connecting takes an
advertising interval of loop time), so that times match the in-memory driver's, which connects
at 0. Faults and the simulated user's acknowledgements are not modelled here yet.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Sequence
from typing import Any, BinaryIO

from firmware.events import SensorSample, SensorState
from firmware.profiles import MINUTE_MS
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import Receiver, ReceiverConfig
from firmware.transmitter.server import Transmitter, TransmitterConfig
from sim.links.ble import BleTransmitter, in_process_device
from sim.links.ble_receiver import BleReceiver, CoreTimer
from sim.virtual_loop import run_virtual
from sim.world import (
    SAMPLE_MS,
    Faults,
    Recorder,
    SimulationConfig,
    SimulationResult,
    session_input,
)

PASSKEY = 123_456
# Timers run this much loop time after their millisecond (which ``now_ms`` still reports), once
# what that millisecond sent over the link has arrived: transmitter first, then receiver, as
# ``sim.world`` orders them after its pump.
TX_TIMER_LAG_S = 0.000_1
RX_TIMER_LAG_S = 0.000_2


class _TimedBleTransmitter(BleTransmitter):
    """A ``BleTransmitter`` whose core timer is kept armed on the loop after every input."""

    timer: CoreTimer | None = None

    def _feed(self, event: Any = None) -> None:
        super()._feed(event)
        if self.timer is not None:
            self.timer.arm()


def run_ble(
    config: SimulationConfig,
    capture: pathlib.Path | None = None,
    *,
    link_drops_min: Sequence[tuple[float, float]] = (),
    stats: dict[str, int] | None = None,
) -> SimulationResult:
    """Simulate the session over bumble. ``capture``, when given, is where the receiver's HCI
    traffic is written as a btsnoop log (``bumble.snoop.BtSnooper``): pairing, encryption, the
    GATT discovery (which a decoder such as tshark needs to map handles to CGM UUIDs) and every
    notification and indication. ``link_drops_min``: (from, to) minutes at which the
    transmitter drops the BLE connection and the receiver stays away until ``to`` (then
    reconnects and backfills with RACP) — a test hook until ``--faults`` comes to this link.
    ``stats``, when given, gets the connections made, pairings done and values sent over the air."""
    if config.faults != Faults():
        raise ValueError("run_ble: faults are not supported on the BLE link yet")
    if config.acknowledge_after_min is not None:
        raise ValueError("run_ble: acknowledge_after_min is not supported on the BLE link yet")
    if capture is None:
        return run_virtual(_session(config, tuple(link_drops_min), stats, None))
    with pathlib.Path(capture).open("wb") as output:
        return run_virtual(_session(config, tuple(link_drops_min), stats, output))


async def _session(
    config: SimulationConfig,
    drops: tuple[tuple[float, float], ...],
    stats: dict[str, int] | None,
    capture: BinaryIO | None,
) -> SimulationResult:
    from bumble.link import LocalLink

    loop = asyncio.get_running_loop()
    profile = config.profile
    session = session_input(config)
    end_ms, samples, chunk = session.end_ms, session.samples, session.chunk

    epoch: list[float] = []  # loop seconds at simulation time 0

    def now_ms() -> int:
        return round((loop.time() - epoch[0]) * 1000) if epoch else 0

    def to_loop(t_ms: int) -> float:
        return (epoch[0] if epoch else loop.time()) + t_ms / 1000

    recorder = Recorder(session)

    link = LocalLink()
    tx_device = in_process_device(link, "transmitter", "F0:F0:F0:F0:F0:F1")
    rx_device = in_process_device(link, "receiver", "F0:F0:F0:F0:F0:F0")
    if capture is not None:
        from bumble.snoop import BtSnooper

        rx_device.host.snooper = BtSnooper(capture)
    core = Transmitter(TransmitterConfig(profile, e2e_crc=config.e2e_crc), session.calibration, 0)
    tx = _TimedBleTransmitter(tx_device, core, now_ms, passkey=PASSKEY, name="cgmsim")
    tx.timer = CoreTimer(core.get_timer, tx.handle_timer, to_loop, TX_TIMER_LAG_S)
    receiver = Receiver(
        ReceiverConfig(profile, CollectorConfig(config.clock_at_zero), config.alerts), 0
    )
    await tx_device.power_on()
    await rx_device.power_on()
    await tx.start()

    started = loop.create_future()

    def established() -> None:
        if not epoch:
            epoch.append(loop.time())
            started.set_result(None)

    rx = BleReceiver(
        rx_device,
        receiver,
        tx_device.random_address,
        now_ms,
        to_loop,
        passkey=PASSKEY,
        on_event=recorder.event,
        on_established=established,
        timer_lag_s=RX_TIMER_LAG_S,
    )
    runner = asyncio.ensure_future(rx.run())
    await started

    def take_sample(k: int) -> None:
        before = core.store.latest()
        tx.sample(SensorSample(int(chunk.raw_counts[0, k]), SensorState(int(chunk.state[0, k]))))
        recorder.made(before, core.store.latest())

    for k in range(1, samples):
        if k * SAMPLE_MS <= end_ms:
            loop.call_at(to_loop(k * SAMPLE_MS), take_sample, k)

    dropping: set[asyncio.Task[None]] = set()

    async def out_of_range(until_ms: int) -> None:
        """The transmitter goes out of range: the link drops, and nothing is heard of it
        (no advertising) until ``until_ms``, when the receiver may connect again."""
        rx.hold_until_ms = until_ms
        await tx.stop()
        if tx.connection is not None:
            await tx.connection.disconnect()
        await asyncio.sleep(max(to_loop(until_ms) - loop.time(), 0))
        await tx.start()

    def drop(until_ms: int) -> None:
        task = asyncio.ensure_future(out_of_range(until_ms))
        dropping.add(task)
        task.add_done_callback(dropping.discard)

    for start_min, end_min in drops:
        loop.call_at(to_loop(round(start_min * MINUTE_MS)), drop, round(end_min * MINUTE_MS))

    await asyncio.sleep(max(to_loop(end_ms + 1) - loop.time(), 0))
    rx.stop()
    runner.cancel()
    tx.timer.cancel()
    await tx.stop()
    rx_device.host.snooper = None  # run_ble closes the capture file after this

    recorder.finish()
    result = SimulationResult(
        config=config,
        rows=recorder.rows,
        events=recorder.events,
        duplicates=recorder.duplicates,
        notifications_lost=0,
        frame_errors=receiver.collector.frame_errors,
        end_min=end_ms / MINUTE_MS,
    )
    if stats is not None:
        stats.update(connections=rx.connections, pairings=rx.pairings, sent_over_air=tx.sent)
    return result
