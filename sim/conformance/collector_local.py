"""The collector cases against our receiver served in this process: the scripted sensor on one
bumble device, ``cgmsim receiver``'s adapter (``sim.links.ble_receiver.BleReceiver``) and core on
another, over bumble's in-process link, on the running loop (the virtual-time loop in tests:
the 30 s timeout case then costs no wall time). ``make_receiver`` may plant a defect in the
collector, which must FAIL the case that catches it; ``cgmsim conformance --role collector``
against ``cgmsim receiver`` is the same sensor over a real or virtual controller."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable

from bumble.link import LocalLink

from firmware.profiles import G7
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import RECONNECT_MS, Receiver, ReceiverConfig
from protocol.cgms.racp import PROCEDURE_TIMEOUT_MS
from sim.clock.live import LiveClock, session_ms
from sim.conformance.collector_runner import SENSOR_ADDRESS, CollectorOptions, serve
from sim.conformance.registry import Case, Result
from sim.links.ble import in_process_device
from sim.links.ble_receiver import BleReceiver

PASSKEY = 123_456
COLLECTOR_ADDRESS = "C0:CA:FE:00:00:C0"
SPEED = 1500.0


def receiver_core(speed: float = SPEED) -> Receiver:
    """The receiver core as ``cgmsim receiver --speed`` makes it."""
    collector = CollectorConfig(
        datetime.datetime(2024, 1, 1),
        procedure_timeout_ms=session_ms(PROCEDURE_TIMEOUT_MS, speed),
    )
    return Receiver(ReceiverConfig(G7, collector), 0)


async def run_collector_local(
    make_receiver: Callable[[float], Receiver] = receiver_core,
    *,
    speed: float = SPEED,
    only: Callable[[Case], bool] | None = None,
    options: CollectorOptions | None = None,
) -> list[Result]:
    options = options or CollectorOptions(speed=speed, connect_wait_s=30.0, step_s=20.0)
    link = LocalLink()
    sensor_device = in_process_device(link, "cgmsim", SENSOR_ADDRESS)
    collector_device = in_process_device(link, "collector", COLLECTOR_ADDRESS)
    await sensor_device.power_on()
    await collector_device.power_on()
    clock = LiveClock(speed)
    receiver = BleReceiver(
        collector_device,
        make_receiver(speed),
        sensor_device.random_address,
        clock.now_ms,
        clock.to_loop,
        passkey=PASSKEY,
        reconnect_delay_ms=RECONNECT_MS,
    )
    runner: asyncio.Task[None] | None = None

    def start_collector(address: str) -> None:
        nonlocal runner
        runner = asyncio.ensure_future(receiver.run())

    try:
        results, _ = await serve(
            sensor_device, options, passkey=PASSKEY, only=only, on_ready=start_collector
        )
    finally:
        receiver.stop()
        if runner is not None:
            runner.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(receiver.close("run over"), 5.0)
    return results
