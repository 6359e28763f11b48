"""The virtual-time event loop: exact timer semantics, no wall-clock sleeping, bumble on top."""

from __future__ import annotations

import asyncio
import heapq
import time

import pytest
from bumble.core import UUID
from bumble.device import Connection, Device, Peer
from bumble.gatt import Characteristic, Service
from bumble.link import LocalLink

from sim.links.ble import in_process_device
from sim.virtual_loop import VirtualTimeEventLoop, run_virtual

DAY = 86_400.0


def test_long_sleeps_take_no_wall_time_and_exact_virtual_time():
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = [loop.time()]
        await asyncio.sleep(3600)
        seen.append(loop.time())
        await asyncio.sleep(10.5 * DAY)  # longer than asyncio's 1-day maximum select timeout
        seen.append(loop.time())
        await asyncio.sleep(0)
        seen.append(loop.time())
        return seen

    wall = time.perf_counter()
    seen = run_virtual(main(), start=1000.0)
    assert time.perf_counter() - wall < 0.5
    assert seen == [1000.0, 4600.0, 4600.0 + 10.5 * DAY, 4600.0 + 10.5 * DAY]


def test_run_virtual_returns_the_result_and_propagates_exceptions():
    async def answer() -> int:
        await asyncio.sleep(5)
        return 42

    async def fail() -> None:
        await asyncio.sleep(5)
        raise LookupError("boom")

    assert run_virtual(answer()) == 42
    with pytest.raises(LookupError, match="boom"):
        run_virtual(fail())


def test_call_later_runs_in_time_order_and_ties_in_insertion_order():
    async def main() -> list[tuple[float, str]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[float, str]] = []
        done = loop.create_future()

        def record(label: str) -> None:
            fired.append((loop.time(), label))

        loop.call_later(30, record, "c")
        loop.call_later(10, record, "a")
        for i in range(40):  # a plain heap would pop these 40 exact ties out of order
            loop.call_later(20, record, f"tie{i}")
        loop.call_at(loop.time() + 20, record, "tie-at")
        cancelled = loop.call_later(15, record, "cancelled")
        cancelled.cancel()
        loop.call_later(40, done.set_result, None)
        await done
        return fired

    fired = run_virtual(main())
    ties = [(20.0, f"tie{i}") for i in range(40)] + [(20.0, "tie-at")]
    assert fired == [(10.0, "a"), *ties, (30.0, "c")]


def test_wait_for_times_out_at_the_right_virtual_time():
    async def main() -> tuple[float, float, str]:
        loop = asyncio.get_running_loop()
        never: asyncio.Future[None] = loop.create_future()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(never, timeout=30)
        timed_out_at = loop.time()
        result = await asyncio.wait_for(asyncio.sleep(5, result="slept"), timeout=30)
        return timed_out_at, loop.time(), result

    assert run_virtual(main(), start=100.0) == (130.0, 135.0, "slept")


def test_future_resolved_from_a_timer_callback():
    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        loop.call_later(42, lambda: loop.call_soon(future.set_result, "value"))
        value = await future
        return value, loop.time()

    assert run_virtual(main()) == ("value", 42.0)


def test_executor_work_takes_no_virtual_time_and_is_not_overtaken_by_timeouts():
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        # The worker really takes 50 ms; a virtual 1 ms timeout must not fire meanwhile.
        await asyncio.wait_for(asyncio.to_thread(time.sleep, 0.05), timeout=0.001)
        after_thread = loop.time()
        await asyncio.sleep(1)
        return after_thread, loop.time()

    assert run_virtual(main()) == (0.0, 1.0)


def test_relies_on_cpython_internals_that_still_exist():
    # call_at is a copy of CPython 3.11's; these are the private names it and the selector hook
    # depend on. If an upgrade changes them, this fails before the behaviour tests get confusing.
    loop = VirtualTimeEventLoop(start=7.0)
    try:
        assert isinstance(loop._scheduled, list)  # type: ignore[attr-defined]
        handle = loop.call_later(1, lambda: None)
        assert loop._scheduled == [handle]  # type: ignore[attr-defined]
        assert heapq.nsmallest(1, loop._scheduled)[0].when() == 8.0  # type: ignore[attr-defined]
        assert loop.time() == 7.0
        loop.advance(3.0)
        assert loop.time() == 10.0
        with pytest.raises(ValueError):
            loop.advance(-1.0)
    finally:
        loop.close()


# --- bumble: two devices on the in-process LocalLink (pattern of tests/support/gatt_capture.py)

_SERVICE = UUID.from_16_bits(0x181F)
_MEASUREMENT = UUID.from_16_bits(0x2AA7)
_INTERVAL = 300.0  # 5 minutes
_READINGS = 288  # one day


def _make_device(link: LocalLink, index: int) -> Device:
    return in_process_device(link, f"vt-{index}", ":".join([f"F{index}"] * 6))


async def _simulated_day() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    link = LocalLink()
    central, peripheral = _make_device(link, 0), _make_device(link, 1)
    measurement = Characteristic(
        _MEASUREMENT,
        Characteristic.Properties.NOTIFY | Characteristic.Properties.READ,
        Characteristic.Permissions.READABLE,
        b"\x00",
    )
    peripheral.add_service(Service(_SERVICE, [measurement]))

    await central.power_on()
    await peripheral.power_on()
    server_side: asyncio.Future[Connection] = loop.create_future()
    peripheral.once(peripheral.EVENT_CONNECTION, server_side.set_result)
    # A 1 s advertising interval costs ~1 s of *loop* time: free here.
    await peripheral.start_advertising(advertising_interval_min=1000.0)
    t_start = loop.time()
    connection = await central.connect(peripheral.random_address)
    server_connection = await server_side
    connected_after = loop.time() - t_start

    disconnections: list[object] = []
    connection.on(connection.EVENT_DISCONNECTION, disconnections.append)
    server_connection.on(server_connection.EVENT_DISCONNECTION, disconnections.append)

    peer = Peer(connection)
    await peer.discover_all()
    [client_char] = peer.get_characteristics_by_uuid(_MEASUREMENT, _SERVICE)
    received: list[tuple[float, bytes]] = []
    all_received: asyncio.Future[None] = loop.create_future()

    def on_value(value: bytes) -> None:
        received.append((loop.time(), bytes(value)))
        if len(received) == _READINGS:
            all_received.set_result(None)

    await peer.subscribe(client_char, on_value)

    t0 = loop.time()
    wall = time.perf_counter()
    for k in range(_READINGS):
        await asyncio.sleep(t0 + k * _INTERVAL - loop.time())
        measurement.value = k.to_bytes(2, "little")
        await peripheral.notify_subscriber(server_connection, measurement, measurement.value)
    await asyncio.wait_for(all_received, timeout=60)
    notify_wall = time.perf_counter() - wall
    # A GATT request after a long idle: ATT's 30 s transaction timer must not have fired.
    await asyncio.sleep(_INTERVAL)
    last_read = bytes(await asyncio.wait_for(peer.read_value(client_char), timeout=30))
    return {
        "connected_after": connected_after,
        "t0": t0,
        "received": received,
        "disconnections": disconnections,
        "notify_wall": notify_wall,
        "last_read": last_read,
        "end": loop.time(),
    }


def test_bumble_day_of_notifications_over_local_link_in_virtual_time():
    wall = time.perf_counter()
    result = run_virtual(_simulated_day())
    elapsed = time.perf_counter() - wall

    t0 = result["t0"]
    assert isinstance(t0, float)
    received = result["received"]
    # Every notification arrives in the same virtual instant it was sent, in order.
    assert received == [(t0 + k * _INTERVAL, k.to_bytes(2, "little")) for k in range(_READINGS)]
    assert result["disconnections"] == []
    assert result["last_read"] == (_READINGS - 1).to_bytes(2, "little")
    assert result["end"] == t0 + _READINGS * _INTERVAL
    connected_after = result["connected_after"]
    assert isinstance(connected_after, float)
    assert connected_after <= 1.0  # next advertising PDU, in virtual seconds
    assert elapsed < 2.0
    notify_wall = result["notify_wall"]
    assert isinstance(notify_wall, float)
    print(
        f"\nsimulated day: {_READINGS} notifications, whole run {elapsed:.3f} s wall "
        f"(notify phase {notify_wall:.3f} s, {_READINGS / notify_wall:,.0f} notifications/s wall, "
        f"{(_READINGS * _INTERVAL) / notify_wall:,.0f}x real time); connect took "
        f"{connected_after:.3f} virtual s"
    )
