"""The collector cases against our receiver served in this process: the scripted sensor on one
bumble device, ``cgmsim receiver``'s adapter (``sim.links.ble_receiver.BleReceiver``) and core on
another, over bumble's in-process link, on the running loop (the virtual-time loop in tests:
the 30 s timeout case then costs no wall time). ``make_receiver`` may plant a defect in the
collector, which must FAIL the case that catches it (``insecure``: the adapter's lab-only
override, which must FAIL the rogue-sensor cases). A receiver that refuses a rogue sensor ends
(``InsecureSensor``, as ``cgmsim receiver`` exits 2) and is started again, with the same core,
as a user would start it again; ``refusals`` collects what each said. ``cgmsim conformance
--role collector`` against ``cgmsim receiver`` is the same sensor over a real or virtual
controller."""

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
from sim.clock.live import LiveClock, clock_tolerance_ms, session_ms
from sim.conformance.collector_runner import SENSOR_ADDRESS, CollectorOptions, serve
from sim.conformance.registry import Case, Result
from sim.links.ble import in_process_device
from sim.links.ble_receiver import BleReceiver
from sim.links.gatt_client import InsecureSensor

PASSKEY = 123_456
COLLECTOR_ADDRESS = "C0:CA:FE:00:00:C0"
SPEED = 1500.0
RESTART_S = 1.0  # a receiver that refused a sensor is started again this much later


def receiver_core(speed: float = SPEED) -> Receiver:
    """The receiver core as ``cgmsim receiver --speed`` makes it."""
    collector = CollectorConfig(
        datetime.datetime(2024, 1, 1),
        procedure_timeout_ms=session_ms(PROCEDURE_TIMEOUT_MS, speed),
        clock_tolerance_ms=clock_tolerance_ms(speed),
    )
    return Receiver(ReceiverConfig(G7, collector), 0)


async def run_collector_local(
    make_receiver: Callable[[float], Receiver] = receiver_core,
    *,
    speed: float = SPEED,
    only: Callable[[Case], bool] | None = None,
    options: CollectorOptions | None = None,
    insecure: bool = False,
    refusals: list[str] | None = None,
    e2e_crc: bool = False,
) -> list[Result]:
    options = options or CollectorOptions(speed=speed, connect_wait_s=30.0, step_s=20.0)
    link = LocalLink()
    sensor_device = in_process_device(link, "cgmsim", SENSOR_ADDRESS)
    collector_device = in_process_device(link, "collector", COLLECTOR_ADDRESS)
    await sensor_device.power_on()
    await collector_device.power_on()
    clock = LiveClock(speed)
    core = make_receiver(speed)

    def adapter() -> BleReceiver:
        made = BleReceiver(
            collector_device,
            core,
            sensor_device.random_address,
            clock.now_ms,
            clock.to_loop,
            passkey=PASSKEY,
            reconnect_delay_ms=RECONNECT_MS,
        )
        made.insecure = insecure
        return made

    receiver = adapter()
    runner: asyncio.Task[None] | None = None

    async def keep_running() -> None:
        nonlocal receiver
        while True:
            try:
                await receiver.run()
                return
            except InsecureSensor as refused:
                if refusals is not None:
                    refusals.append(str(refused))
                await asyncio.sleep(RESTART_S)
                receiver = adapter()

    def start_collector(address: str) -> None:
        nonlocal runner
        runner = asyncio.ensure_future(keep_running())

    try:
        results, _ = await serve(
            sensor_device,
            options,
            passkey=PASSKEY,
            e2e_crc=e2e_crc,
            only=only,
            on_ready=start_collector,
        )
    finally:
        receiver.stop()
        if runner is not None:
            runner.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(receiver.close("run over"), 5.0)
    return results
