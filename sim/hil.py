"""Hardware-in-the-loop: the transmitter and the receiver firmwares, each on its own HCI
transport (a USB or serial dongle, a TCP bridge, a virtual controller on a pseudo-terminal) in
real time or compressed time. Edge code only: it opens the transport, keeps the clock and hands
everything to the adapters (``sim.links.ble``, ``sim.links.ble_receiver``), which hand it to the
cores.

Time. Session time runs at ``speed`` times the loop's clock (``sim.clock.live.LiveClock``;
1 = real time). Both sides of a lab run should use the same speed: the receiver's alerts
(signal loss after 20 minutes without a reading, ...) are timed on its own clock. The
protocol's own timers (RACP's 30 s without progress) run on the link's clock, at 1x whatever
the speed (``sim.clock.live.session_ms``).

Keys. Both commands keep their bonds in a bumble JSON key store file when given one (``--keys``),
so that a receiver started again re-encrypts with the bond instead of pairing (shared/spec/
ble-stack.md: the transmitter's identity address is random static).

Privacy. The transmitter advertises from resolvable private addresses made with its own random
IRK (``sim.links.ble_security.Privacy``), a new one every 15 minutes; its identity address
(``--address``) goes to collectors only at pairing. With ``--keys FILE`` the IRK is kept next to
the bonds, in ``FILE.irk`` (created 0600), so bonded collectors still resolve the sensor after a
restart; without, each run has a new IRK.

The receiver's store. ``cgmsim receiver --out DIR`` commits its readings, events and state to
``DIR/receiver.sqlite`` after every batch of events (``sim.durable``), with the session clock it
had reached and the wall time then; started again on that store it resumes: the clock goes on
from where it stopped (plus the time it was away), and the collector backfills the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import pathlib
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bumble.core import UUID, BaseBumbleError
from bumble.device import Device
from bumble.hci import Address
from bumble.transport import open_transport

from firmware.profiles import MINUTE_MS, DeviceProfile
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import ReadingShown, Receiver, ReceiverConfig
from protocol.cgms import gatt
from protocol.cgms.racp import PROCEDURE_TIMEOUT_MS
from sim import durable
from sim.clock.live import LiveClock, clock_tolerance_ms, session_ms
from sim.links.ble import BleTransmitter
from sim.links.ble_receiver import BleReceiver
from sim.links.ble_security import RPA_INTERVAL_S, Privacy
from sim.links.bleak_receiver import (
    BleakReceiver,
    ClientFactory,
    bleak_client_factory,
    bleak_uuid,
)
from sim.links.hci import HciTransmitterLink
from sim.links.keystore import MAX_BONDS, HostBonds, SecureKeyStore, attach
from sim.private_files import create_private, private_dir
from sim.recording import RecordingReceiver, RecordingWriter, header
from sim.rundir.receiver_folder import ReceiverFolder
from sim.session.bookkeeping import Bookkeeper, acknowledge, event_json
from sim.session.config import SimulationConfig
from sim.session.engine import Engine
from sim.store import ReceiverStore

logger = logging.getLogger(__name__)

RECEIVER_ADDRESS = "C0:CA:FE:00:00:02"
SCAN_TIMEOUT_S = 30.0
FRAME_S = 0.2  # the live screen's redraw


class TransportProblem(Exception):
    """The HCI transport could not be opened (no such device, busy, bad transport string)."""


async def _open(spec: str) -> Any:
    try:
        return await open_transport(spec)
    except Exception as error:  # each transport fails its own way (OSError, ValueError, ...)
        raise TransportProblem(f"cannot open transport {spec!r}: {error}") from error


def _stopper() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: the runs below end cleanly on either."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _until(
    stop: asyncio.Event, clock: LiveClock, end_ms: int | None, *tasks: asyncio.Task[Any]
) -> None:
    """Until ``stop`` is set, the clock reaches ``end_ms`` or one of ``tasks`` ends."""
    waiter = asyncio.ensure_future(stop.wait())
    timeout = None if end_ms is None else max(clock.to_loop(end_ms) - clock.loop.time(), 0)
    try:
        await asyncio.wait([waiter, *tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def _device(
    name: str,
    address: str,
    transport: Any,
    keys: pathlib.Path | None,
    *,
    max_bonds: int = MAX_BONDS,
    accept_insecure: bool = False,
) -> Device:
    """A device on ``transport`` whose bonds live in the key store file ``keys``
    (``sim.links.keystore``: 0600, SC-only unless ``accept_insecure``, at most ``max_bonds``,
    each bond's last use recorded when a link is encrypted with it)."""
    device = Device.with_hci(name, Address(address), transport.source, transport.sink)
    if keys is not None:
        store = SecureKeyStore(
            keys, namespace=address, max_bonds=max_bonds, accept_insecure=accept_insecure
        )
        store.check()  # a file that is not a key store is bad input, before any radio work
        attach(device, store)
    return device


def sensor_privacy(keys: pathlib.Path | None, rotate_s: float = RPA_INTERVAL_S) -> Privacy:
    """A real random IRK for the sensor (kept in ``KEYS.irk`` beside the key store, so that
    bonds survive a restart) and random addresses made with it, a new one every ``rotate_s``
    (of the radio's clock, whatever the session's speed)."""
    irk = secrets.token_bytes(16)
    if keys is not None:
        path = keys.with_name(keys.name + ".irk")
        try:
            irk = bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            private_dir(path.parent)  # as the key store's own folder
            with os.fdopen(create_private(path), "w") as file:
                file.write(irk.hex() + "\n")
        except ValueError:
            irk = b""
    try:
        return Privacy(irk=irk, prand=lambda: secrets.token_bytes(3), rotate_s=rotate_s)
    except ValueError as error:  # a key file edited by hand: one line, not a traceback
        raise TransportProblem(f"{keys}.irk: {error}") from None


async def run_transmitter(
    transport_spec: str,
    config: SimulationConfig,
    *,
    speed: float,
    passkey: int,
    address: str,
    keys: pathlib.Path | None = None,
    name: str = "cgmsim",
    on_ready: Callable[[str], None] | None = None,
    record: pathlib.Path | None = None,
    privacy: bool = True,
    rpa_interval_s: float = RPA_INTERVAL_S,
    bonded_only: bool = False,
    max_bonds: int = MAX_BONDS,
    on_line: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Serve the simulated sensor's session on ``transport_spec`` until it ends (or the
    ``config.days`` run, or SIGINT/SIGTERM). Returns what happened: the readings made
    (time offset, value), the values sent over the air, connections. ``record``: where the
    core's inputs and outputs are written for ``cgmsim replay``. ``privacy``: advertise from
    resolvable private addresses (else from ``address``), a new one every ``rpa_interval_s``;
    ``bonded_only``: once there is a bond, drop connections from collectors without one.
    ``on_line``: one line per connection, pairing, disconnection and at the end. The session
    runs on the engine (``sim.session.engine``) over the ``hci:<transport>`` link
    (``sim.links.hci``), on a live clock."""
    async with await _open(transport_spec) as transport:
        device = _device(name, address, transport, keys, max_bonds=max_bonds)
        await device.power_on()
        writer = _recording(record, config.profile.name, config.seed, "transmitter", transport_spec)
        books = Bookkeeper(config, recording=writer)
        core = books.transmitter(session_ms(PROCEDURE_TIMEOUT_MS, speed))
        clock = LiveClock(speed)
        tx = BleTransmitter(
            device,
            core,
            clock.now_ms,
            passkey=passkey,
            name=name,
            to_loop=clock.to_loop,
            privacy=sensor_privacy(keys, rpa_interval_s) if privacy else None,
            bonded_only=bonded_only,
        )
        link = HciTransmitterLink(tx, on_line)
        engine = Engine(books, core, clock)
        engine.attach(link)
        await link.open()
        if on_ready is not None:
            on_ready(str(device.random_address))
        stop = _stopper()
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: engine.stop())
        try:
            result = await engine.run()
        finally:
            stopping.cancel()
            if writer is not None:
                writer.close()
    lag_min = engine.lag_ms / MINUTE_MS
    if on_line is not None:
        if engine.lag_ms > config.profile.reading_interval_ms:
            on_line(
                f"warning: samples came up to {lag_min:.0f} session min late: --speed {speed:g}"
                " is more than this host and link carry (docs/hil.md, Speed)"
            )
        on_line(f"session ended at {result.end_min:.0f} min")
    return {
        "role": "transmitter",
        "transport": transport_spec,
        "link": f"hci:{transport_spec}",
        "address": address,
        "profile": config.profile.name,
        "seed": config.seed,
        "speed": speed,
        "session_min": result.end_min,
        "max_sample_lag_min": lag_min,  # how late the busiest moment fed a sample
        **link.stats(),
        "readings": [
            {"time_offset_min": row.time_offset_min, "glucose_mgdl": row.sensor_mgdl}
            for row in result.rows
            if row.made
        ],
    }


async def scan_for_cgm(
    device: Device, timeout_s: float = SCAN_TIMEOUT_S, *, name: str | None = None
) -> Address:
    """The address of the first advertiser of the CGM service (0x181F), or with ``name``, of
    the first advertiser of that (complete or shortened) local name."""
    service = UUID.from_16_bits(gatt.CGM_SERVICE)
    found: asyncio.Future[Address] = asyncio.get_running_loop().create_future()

    def advertisement(adv: Any) -> None:
        if name is not None:
            names = [adv.data.get(adv.data.COMPLETE_LOCAL_NAME)]
            names.append(adv.data.get(adv.data.SHORTENED_LOCAL_NAME))
            wanted = name in names
        else:
            uuids = adv.data.get_all(adv.data.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS)
            wanted = any(service in group for group in uuids)
        if wanted and not found.done():
            found.set_result(adv.address)

    device.on(device.EVENT_ADVERTISEMENT, advertisement)
    await device.start_scanning(filter_duplicates=True)
    try:
        return await asyncio.wait_for(found, timeout_s)
    except TimeoutError:
        what = f"device named {name!r}" if name is not None else "CGM sensor (service 0x181F)"
        raise TimeoutError(f"no {what} heard in {timeout_s:g} s") from None
    finally:
        device.remove_listener(device.EVENT_ADVERTISEMENT, advertisement)
        await device.stop_scanning()


async def _bleak_target(
    device: Device | None, peer: str | None, passkey: int
) -> tuple[str, ClientFactory]:
    """Find the sensor with ``BleakScanner`` (at ``peer``, or the first CGM advertiser) on the
    bleak backend over bumble when there is a bumble ``device``, else on the host's Bluetooth
    stack; and how to make clients towards it."""
    from bleak import BleakClient, BleakScanner
    from bleak.exc import BleakError

    from sim.links.bleak_bumble import BumbleScanner

    backend: dict[str, Any] = (
        {} if device is None else {"backend": BumbleScanner, "bumble_device": device}
    )

    service = bleak_uuid(gatt.CGM_SERVICE)
    try:
        if peer:
            found = await BleakScanner.find_device_by_address(peer, SCAN_TIMEOUT_S, **backend)
        else:
            found = await BleakScanner.find_device_by_filter(
                lambda _, adv: service in adv.service_uuids, SCAN_TIMEOUT_S, **backend
            )
    except (BleakError, OSError) as error:
        if device is not None:
            raise
        raise TransportProblem(
            f"bleak cannot reach this host's Bluetooth stack ({type(error).__name__}: {error});"
            " give --transport T to use a controller through bumble"
        ) from None
    if found is None:
        raise TimeoutError(f"no CGM sensor (service 0x181F) heard in {SCAN_TIMEOUT_S:g} s")
    if device is not None:
        return found.address, bleak_client_factory(device, found.details, passkey)

    def native(disconnected: Callable[[BleakClient], None]) -> BleakClient:
        # The host's stack pairs through its own agent, which asks for the passkey.
        return BleakClient(found, disconnected_callback=disconnected, timeout=SCAN_TIMEOUT_S)

    return found.address, native


async def run_receiver(
    transport_spec: str | None,
    profile: DeviceProfile,
    out: pathlib.Path,
    *,
    speed: float,
    passkey: int,
    peer: str | None = None,
    days: float | None = None,
    until_ended: bool = False,
    keys: pathlib.Path | None = None,
    address: str = RECEIVER_ADDRESS,
    bleak: bool = False,
    record: pathlib.Path | None = None,
    insecure: bool = False,
    max_bonds: int = MAX_BONDS,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    display: bool = False,
) -> dict[str, Any]:
    """Connect to the sensor at ``peer`` (or the first CGM advertiser), pair or re-encrypt,
    and run the receiver for ``days`` of session time, or ``until_ended`` (the sensor's session
    is over and the receiver holds all it made), or until SIGINT/SIGTERM, committing to
    ``out/receiver.sqlite`` and keeping ``out``'s run files (``sim.rundir.receiver_folder``)
    up to date as it goes; returns the summary. ``bleak``: through the bleak API
    (``BleakScanner``/``BleakClient``), on the bleak backend over bumble on ``transport_spec``,
    or with no transport on the host's own stack. ``record``: where the core's inputs and
    outputs are written for ``cgmsim replay``. ``insecure`` (lab only): go on with a sensor that
    fails the security checks (``sim.links.gatt_client.InsecureSensor``); the summary says so.
    ``on_record``: called with each events.jsonl record as it is committed (the readings of a
    backfill together, as one ``backfill`` record). ``display``: the live receiver screen on
    this terminal (``sim.screen``), whose acknowledge key acknowledges the most urgent alert.
    ``out`` is made private (0700), as are the store and the keys in it."""
    private_dir(out)
    host_bonds = HostBonds(keys) if keys is not None and bleak and transport_spec is None else None
    stop = _stopper()
    async with contextlib.AsyncExitStack() as stack:
        device: Device | None = None
        if transport_spec is not None:
            transport = await stack.enter_async_context(await _open(transport_spec))
            device = _device(
                "cgmsim-receiver",
                address,
                transport,
                keys,
                max_bonds=max_bonds,
                accept_insecure=insecure,
            )
            await device.power_on()
        make_client: ClientFactory | None = None
        if on_record is not None:
            on_record({"kind": "scanning", "peer": peer})
        if bleak:
            target, make_client = await _bleak_target(device, peer, passkey)
        else:
            assert device is not None, "the bumble receiver needs a transport"
            target = str(Address(peer) if peer else await scan_for_cgm(device))
        fingerprint = {"peer": str(target), "profile": profile.name}
        with ReceiverStore.open(out / "receiver.sqlite") as store:
            keeper = durable.DurableReceiver(store, f"receiver-{target}", fingerprint)
            collector = CollectorConfig(
                _clock_at_zero(keeper),
                procedure_timeout_ms=session_ms(PROCEDURE_TIMEOUT_MS, speed),
                clock_tolerance_ms=clock_tolerance_ms(speed),
            )
            config = ReceiverConfig(profile, collector)
            resumed = keeper.resumed
            start_ms = 0
            if resumed is not None:  # the clock goes on, with the time it was away
                away_s = max(time.time() - float(resumed["wall_s"]), 0.0)
                start_ms = int(resumed["now_ms"]) + round(away_s * 1000 * speed)
                keeper.seq = len(keeper.history())
            clock = LiveClock(speed, start_ms)
            state = keeper.receiver_state()
            core: Receiver = (
                Receiver.restore(config, state, start_ms)
                if state is not None
                else Receiver(config, start_ms)
            )
            where = transport_spec or "bleak"
            writer = _recording(record, profile.name, None, "receiver", where)
            if writer is not None:
                core = RecordingReceiver(core, writer, restored_from=state)  # type: ignore[assignment]
            folder = ReceiverFolder(
                out,
                keeper,
                profile,
                collector.clock_at_zero,
                {
                    "days": days,
                    "until_ended": until_ended,
                    "speed": speed,
                    "insecure": insecure,
                },
            )
            shown: Counter[str] = Counter()
            seen = {r.time_offset_min for r in keeper.readings()}
            pending: list[bool] = []
            batch: list[dict[str, Any]] = []
            paired = [0]  # pairings told so far
            shown_records: list[dict[str, Any]] = (
                keeper.history() if display else []
            )  # for the screen: its graph starts with the last 3 hours
            ended = asyncio.Event()

            def counters() -> dict[str, Any]:
                return {
                    "wall_s": time.time(),
                    "speed": speed,
                    "clock_at_zero": config.collector.clock_at_zero.isoformat(),
                }

            def extra() -> dict[str, Any]:
                return {
                    "role": "receiver",
                    "link": f"hci:{transport_spec}" if transport_spec else "bleak",
                    "transport": transport_spec,
                    "api": "bleak" if bleak else "bumble",
                    "peer": str(target),
                    "speed": speed,
                    "session_min": clock.now_ms() / MINUTE_MS,
                    "connections": rx.connections,
                    "pairings": rx.pairings,
                    "duplicates": shown["duplicate"],
                    "this_run": {
                        "live_this_run": shown["live"],
                        "backfilled_this_run": shown["backfill"],
                    },
                    "insecure": insecure,
                    "weaknesses": rx.weaknesses,  # what --insecure let through
                }

            def commit() -> None:
                pending.clear()
                now = clock.now_ms()
                keeper.commit(core, now, counters)
                folder.maybe_write(core, now, extra())
                if on_record is not None:
                    if rx.pairings > paired[0]:  # told before the link's own record
                        paired[0] = rx.pairings
                        batch.insert(
                            0, {"t_min": now / MINUTE_MS, "kind": "paired", "peer": str(target)}
                        )
                    for record_ in _told(batch, core.session_start_ms or 0):
                        on_record(record_)
                batch.clear()
                if until_ended and core.all_fetched():
                    ended.set()

            def on_event(event: object) -> None:
                record_ = event_json(event)
                keeper.add(event, record_)
                if record_ is not None:
                    batch.append(record_)
                    if display:
                        shown_records.append(record_)
                if isinstance(event, ReadingShown):
                    shown["backfill" if event.backfill else "live"] += 1
                    shown["duplicate"] += event.time_offset in seen
                    seen.add(event.time_offset)
                if not pending:
                    pending.append(True)
                    clock.loop.call_soon(commit)

            rx: BleReceiver | BleakReceiver
            if make_client is not None:
                rx = BleakReceiver(
                    core,
                    make_client,
                    clock.now_ms,
                    clock.to_loop,
                    on_event=on_event,
                    host_bonds=host_bonds,
                )
            else:
                assert device is not None
                rx = BleReceiver(
                    device,
                    core,
                    Address(target),
                    clock.now_ms,
                    clock.to_loop,
                    passkey=passkey,
                    on_event=on_event,
                )
            rx.insecure = insecure
            runner = asyncio.ensure_future(rx.run())
            if display:
                watcher = asyncio.ensure_future(
                    _watch(stack, core, rx, clock, where, str(target), shown_records, on_event)
                )
                runner.add_done_callback(lambda _: watcher.cancel())
            end_ms = None if days is None else start_ms + round(days * 1440 * MINUTE_MS)
            waiter = asyncio.ensure_future(ended.wait())
            try:
                await _until(stop, clock, end_ms, runner, waiter)
            finally:
                waiter.cancel()
            if not runner.done():  # a connection under way ends before the transport does
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            with contextlib.suppress(BaseBumbleError, OSError, asyncio.InvalidStateError):
                await rx.close("receiver stopped")  # the sensor, or the transport, may be gone
            keeper.finish(core, clock.now_ms(), counters)
            if writer is not None:
                writer.close()
            if runner.done() and not runner.cancelled() and runner.exception() is not None:
                raise runner.exception()  # type: ignore[misc]  # e.g. PairingRefused
            summary = folder.write(core, clock.now_ms(), extra())
    return summary


async def _watch(
    stack: contextlib.AsyncExitStack,
    core: Receiver,
    rx: BleReceiver | BleakReceiver,
    clock: LiveClock,
    where: str,
    peer: str,
    records: list[dict[str, Any]],
    on_event: Callable[[object], None],
) -> None:
    """The live screen (``sim.screen``) until cancelled: redrawn every ``FRAME_S`` with the
    core's new events; an acknowledgement asked for on the keyboard goes to the core as the
    simulated user's does (an ``alert_acknowledged`` event, then the core's answer)."""
    import sys

    from sim.screen import Keys, LinkState, Screen

    keys = stack.enter_context(Keys(sys.stdin.fileno()))
    screen = stack.enter_context(Screen(sys.stdout, keys, title="cgmsim receiver"))
    while True:
        now = clock.now_ms()
        link = LinkState(where, rx.established, rx.established, peer)
        acks = screen.update(now, core, link, records[:])
        records.clear()
        for alert in acks:
            if acknowledge(core, alert, now, on_event):
                rx.drain()
        if not acks:
            await asyncio.sleep(FRAME_S)


def _told(batch: list[dict[str, Any]], shift_ms: int) -> list[dict[str, Any]]:
    """What a batch of events.jsonl records tells a person watching (``on_record``): the
    readings of a backfill as one ``backfill`` record (how many, which offsets), the rest as
    they are; ``t_min`` in the sensor's session time."""
    told: list[dict[str, Any]] = []
    backfill = [r for r in batch if r["kind"] == "reading" and r["backfill"]]
    for record in batch:
        if record["kind"] == "reading" and record["backfill"]:
            if record is backfill[-1]:
                offsets = [r["time_offset_min"] for r in backfill]
                told.append(
                    {
                        "t_min": record["t_min"],
                        "kind": "backfill",
                        "readings": len(offsets),
                        "first_offset_min": min(offsets),
                        "last_offset_min": max(offsets),
                    }
                )
            continue
        told.append(record)
    return [{**r, "t_min": r["t_min"] - shift_ms / MINUTE_MS} for r in told]


def _recording(
    path: pathlib.Path | None, profile: str, seed: int | None, role: str, transport: str
) -> RecordingWriter | None:
    """A recording of a hardware run (``sim.recording``): its header names the role and the
    transport; the core's first line holds its configuration and starting state."""
    if path is None:
        return None
    settings = {"role": role, "transport": transport}
    return RecordingWriter.create(path, header("hil", profile, seed, settings))


def _clock_at_zero(keeper: durable.DurableReceiver) -> datetime.datetime:
    """The calendar time at session-clock 0: kept in the store, so a resumed receiver writes
    the same Session Start Time."""
    resumed = keeper.resumed
    if resumed is not None and "clock_at_zero" in resumed:
        return datetime.datetime.fromisoformat(resumed["clock_at_zero"])
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
