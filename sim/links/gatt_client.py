"""What every GATT-client adapter of the receiver core does, whatever API is underneath
(bumble in ``sim.links.ble_receiver``, bleak in ``sim.links.bleak_receiver``).

The connection cycle: connect (not before ``hold_until_ms``), and again ``reconnect_delay_ms``
after each link loss, until ``stop()``; a ``PairingRefused`` (wrong passkey) ends it instead.
The core's requests go out one at a time, each answer back into the core before the next; a
notification or indication that arrives while a request is in flight is handed over after that
request's answer (as the in-memory link orders them). ``DisconnectRequest`` ends the link with
the core's reason; a link lost otherwise is reported with the adapter's. What the core says for
the app (``ReadingShown``, ``PhaseChanged``, ...) goes to ``on_event``. The core's timer is kept
armed on the asyncio loop, or on a session's scheduler (``sim.links.core_timer``), so this runs on
the virtual-time loop as on a real one.

Security: a subclass refuses a sensor that does not require authenticated LE Secure Connections
(``_refuse``: ``InsecureSensor`` ends ``run()``), unless ``insecure`` (lab use only): then it goes
on and the weakness is listed in ``weaknesses``.

A subclass says how to connect (``_connect``: connect, secure, discover; set ``self._link`` to the
new link as soon as it exists and call ``_lost`` when it goes), how to carry out one request
(``_execute``) and how to end a link (``_end_link``), and which exceptions are link failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from firmware.receiver.collector import (
    DisconnectRequest,
    ReadRequest,
    SubscribeRequest,
    WriteRequest,
)
from firmware.receiver.receiver import RECONNECT_MS, Receiver
from sim.links.core_timer import CoreTimer, Schedule, on_loop

logger = logging.getLogger(__name__)

Request = ReadRequest | WriteRequest | SubscribeRequest


class PairingRefused(Exception):
    """The sensor refused pairing because the passkey did not match (SMP Confirm Value
    Failed): ``run()`` ends with it instead of trying again."""


WEAKNESSES = {  # what a sensor may fail of the receiver's security checks, by code
    "open": "its CGM Feature can be read without encryption",
    "just-works": "it paired with Just Works (no passkey: no MITM protection)",
    "legacy": "it paired with LE legacy pairing, not LE Secure Connections",
    "unverified": "its CGM Feature could be read before this receiver paired with it, and the"
    " host's Bluetooth stack does not tell whether that link was encrypted (if the host already"
    " holds a bond with it, remove that bond there and run again)",
}


class InsecureSensor(PairingRefused):
    """The receiver refuses the sensor: it serves CGM data without encryption, or paired
    without authenticated LE Secure Connections (Just Works, legacy). ``run()`` ends with it,
    the link dropped and the bond forgotten, before the core heard of the sensor."""

    def __init__(self, address: object, weakness: str) -> None:
        super().__init__(
            f"refused sensor {address}: {WEAKNESSES[weakness]} (only a sensor that requires"
            " encryption and pairs with LE Secure Connections and its passkey is trusted)"
        )
        self.weakness = weakness


class CollectorLink:
    """Drives ``receiver`` over some GATT client API (see the module docstring).

    ``await run()`` keeps it connected until ``stop()``; ``close(reason)`` also ends the link.
    ``on_established`` is called once a link is secured and discovered, just before the core
    hears ``connected``. A driver that decides itself when to connect (the session engine) calls
    ``connect_once()`` instead of ``run()``, and hears of each link loss through ``on_lost``.
    ``connections`` and ``pairings`` count what happened.
    """

    link_errors: tuple[type[BaseException], ...] = (TimeoutError,)

    def __init__(
        self,
        receiver: Receiver,
        now_ms: Callable[[], int],
        to_loop: Callable[[int], float],
        *,
        on_event: Callable[[object], None] | None = None,
        on_established: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        reconnect_delay_ms: int = RECONNECT_MS,
        schedule_timer: Schedule | None = None,
    ) -> None:
        self.receiver, self.now_ms, self.to_loop = receiver, now_ms, to_loop
        self.on_event = on_event or (lambda event: None)
        self.on_established, self.on_lost = on_established, on_lost
        self.reconnect_delay_ms = reconnect_delay_ms
        self.timer = CoreTimer(
            receiver.get_timer, self._on_timer, schedule_timer or on_loop(to_loop)
        )
        self.connections = 0
        self.pairings = 0
        self.insecure = False  # lab only: go on with a sensor that fails the security checks
        self.weaknesses: list[str] = []  # what was let through because of ``insecure``
        self.hold_until_ms: int | None = None  # no connection before then (outages, restarts)
        self._link: Any = None  # the current connection, whatever the API calls it
        self._established = False
        self._requests: deque[Request] = deque()
        self._held: deque[tuple[bool, int, bytes]] = deque()  # (indication?, uuid, value)
        self._in_flight = False
        self._wakeup = asyncio.Event()
        self._gone = asyncio.Event()
        self._running = False
        self._wanted_reason: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- what a subclass provides ---

    async def _connect(self) -> Any:
        raise NotImplementedError

    async def _execute(self, link: Any, request: Request) -> tuple[bytes | None, int | None]:
        raise NotImplementedError

    async def _end_link(self, link: Any) -> None:
        raise NotImplementedError

    def _refuse(self, address: object, weakness: str) -> None:
        """Refuse the sensor at ``address`` for ``weakness`` (``InsecureSensor``), or with
        ``insecure`` only warn and note it."""
        if not self.insecure:
            raise InsecureSensor(address, weakness)
        logger.warning("insecure: going on with sensor %s: %s", address, WEAKNESSES[weakness])
        if weakness not in self.weaknesses:
            self.weaknesses.append(weakness)

    # --- the connection cycle ---

    async def run(self) -> None:
        """Connect (not before ``hold_until_ms``), and again after each link loss."""
        self._running = True
        delay = 0
        while self._running:
            if self.hold_until_ms is not None:
                delay = max(delay, self.hold_until_ms - self.now_ms())
            await asyncio.sleep(max(delay, 0) / 1000)
            if not self._running:
                break
            delay = self.reconnect_delay_ms
            try:
                await self._establish()
            except PairingRefused:
                self.stop()
                await self._drop()
                raise  # the same passkey would fail again: the caller must know
            except Exception as error:  # any failure: try again later
                logger.warning("connection failed: %s", error)
                await self._drop()
                continue
            await self._gone.wait()

    @property
    def established(self) -> bool:
        return self._established

    async def connect_once(self) -> bool:
        """One attempt to connect, secure and discover; True when the link is up. A
        ``PairingRefused`` (wrong passkey, insecure sensor) ends the adapter and is raised."""
        self._running = True
        try:
            await self._establish()
        except PairingRefused:
            self.stop()
            await self._drop()
            raise
        except Exception as error:  # any other failure: the driver tries again later
            logger.warning("connection failed: %s", error)
            await self._drop()
            return False
        return True

    def stop(self) -> None:
        self._running = False
        self.timer.cancel()
        for task in list(self._tasks):
            task.cancel()

    async def close(self, reason: str) -> None:
        """Stop, and end the link with ``reason`` (the core hears it as its disconnection)."""
        self.stop()
        await self._disconnect(reason)

    async def _establish(self) -> None:
        self._gone.clear()
        link = await self._connect()
        if self._link is not link:
            raise ConnectionError("link lost while setting up")
        self._established = True
        self.connections += 1
        if self.on_established is not None:
            self.on_established()
        self._spawn(self._worker(link))
        self.receiver.connected(self.now_ms())
        self.drain()

    async def _drop(self) -> None:
        """After a failed attempt: end whatever link it left."""
        link, self._link, self._established = self._link, None, False
        if link is not None:
            with contextlib.suppress(*self.link_errors):
                await self._end_link(link)

    def _lost(self, link: Any, reason: str) -> None:
        """``link`` is gone (the subclass calls this from its API's disconnection event)."""
        if link is None or self._link is not link:
            return
        self._link = None
        established, self._established = self._established, False
        self._requests.clear()
        self._held.clear()
        self._in_flight = False
        for task in list(self._tasks):
            task.cancel()
        wanted, self._wanted_reason = self._wanted_reason, None
        if established:
            self.receiver.disconnected(self.now_ms(), wanted or reason)
            self.drain()
        self._gone.set()
        if established and self.on_lost is not None and self._running:
            self.on_lost()

    async def _disconnect(self, reason: str) -> None:
        link = self._link
        if link is None:
            return
        self._wanted_reason = reason
        with contextlib.suppress(*self.link_errors):
            await self._end_link(link)
        self._lost(link, reason)  # if the API did not report a disconnection it was asked for

    # --- the core ---

    def drain(self) -> None:
        """Take what the core has to say: requests for the link, app events for the caller."""
        while (event := self.receiver.next_event()) is not None:
            match event:
                case ReadRequest() | WriteRequest() | SubscribeRequest():
                    if self._established:
                        self._requests.append(event)
                        self._wakeup.set()
                case DisconnectRequest(reason=reason):
                    self._spawn(self._disconnect(reason))
                case _:
                    self.on_event(event)
        if self._running:  # a closed receiver's core runs no more timers
            self.timer.arm()

    def _on_timer(self) -> None:
        self.receiver.handle_timer(self.now_ms())
        self.drain()

    def _value(self, indication: bool, uuid: int, value: bytes) -> None:
        if self._in_flight:  # after the answer to the request in flight
            self._held.append((indication, uuid, value))
            return
        self._deliver(indication, uuid, value)

    def _deliver(self, indication: bool, uuid: int, value: bytes) -> None:
        if indication:
            self.receiver.indication(uuid, value, self.now_ms())
        else:
            self.receiver.notification(uuid, value, self.now_ms())
        self.drain()

    async def _worker(self, link: Any) -> None:
        """The requests, one at a time, each answer into the core before the next."""
        while self._link is link:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._requests and self._link is link:
                request = self._requests.popleft()
                self._in_flight = True
                try:
                    value, error = await self._execute(link, request)
                except self.link_errors as problem:
                    logger.warning("%s failed: %s", request, problem)
                    self._in_flight = False
                    await self._disconnect(f"{type(request).__name__}: {problem}")
                    return
                self._in_flight = False
                if self._link is not link:
                    return
                self.receiver.response(request.uuid, value, error, self.now_ms())
                self.drain()
                while self._held and not self._in_flight:
                    self._deliver(*self._held.popleft())

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
