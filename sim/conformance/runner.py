"""Runs the sensor-role cases against a CGM sensor on an HCI transport.

The tester is a bumble central: it finds the sensor (``address``, else the first advertiser
whose name is ``name``, else the first advertising the CGM service 0x181F), connects, discovers
and runs the cases that need no pairing; then pairs (passkey entry with ``passkey``, else Just
Works) and runs the rest. Every case runs under its own timeout; a case that hangs is ended
and the run goes on (on a new link if the old one went). A destructive case runs only when
``allow_destructive``; otherwise it is reported NOT RUN. Last come the security attacks
(``Phase.ATTACKS``, ``cases_security``), each from separate centrals made on the same
controller (``attacker``) once the main link is ended; ``security.attacks`` False reports them
NOT RUN.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bumble.core import BaseBumbleError
from bumble.device import Connection, Device, Peer
from bumble.hci import Address
from bumble.pairing import PairingConfig, PairingDelegate

from protocol.cgms import gatt
from sim import hil
from sim.conformance.attacker import Attacker, SecurityOptions
from sim.conformance.registry import (
    Case,
    Phase,
    Result,
    Verdict,
    judge,
)
from sim.conformance.suite import sensor_cases
from sim.conformance.tester import Tester
from sim.hil import TransportProblem, scan_for_cgm
from sim.links.ble import receiver_pairing

TESTER_ADDRESS = "C0:CA:FE:00:00:0C"  # random static
CONNECT_TIMEOUT_S = 15.0
SETUP_TIMEOUT_S = 30.0


@dataclass
class Run:
    """What a conformance run found."""

    peer: str
    results: list[Result]
    features: dict[str, Any] | None
    wall_seconds: float


def _pairing(passkey: int | None) -> PairingConfig:
    if passkey is not None:
        return receiver_pairing(passkey)
    return PairingConfig(  # Just Works, for a sensor that allows it
        sc=True,
        mitm=False,
        bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
    )


class SensorRun:
    """One run of the sensor cases over ``device`` against the sensor at ``target``."""

    def __init__(
        self,
        device: Device,
        target: Address,
        *,
        passkey: int | None,
        allow_destructive: bool,
        only: Callable[[Case], bool] | None = None,
        on_result: Callable[[Result], None] | None = None,
        security: SecurityOptions | None = None,
    ) -> None:
        self.device, self.target = device, target
        self.security = security or SecurityOptions()
        self.attacks = Attacker(device, lambda: self.target, self.security, passkey)
        self.passkey, self.allow_destructive = passkey, allow_destructive
        self.only = only or (lambda case: True)
        self.on_result = on_result or (lambda result: None)
        self.tester: Tester | None = None
        self._security_requests: dict[int, list[int]] = {}
        device.pairing_config_factory = lambda connection: _pairing(passkey)
        device.on(device.EVENT_CONNECTION, self._on_connection)

    def _on_connection(self, connection: Connection) -> None:
        """A sensor may send its SM Security Request as soon as the link exists, before
        ``connect()`` returns: listen from the connection's creation on."""
        requests: list[int] = []
        self._security_requests[connection.handle] = requests
        connection.on(connection.EVENT_SECURITY_REQUEST, requests.append)

    async def _connect(self) -> Tester:
        connection: Connection = await asyncio.wait_for(  # by identity: bumble scans first
            self.device.connect(self.target, timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S + 5
        )
        requests = self._security_requests.pop(connection.handle, None)
        tester = Tester(self.device, connection, Peer(connection), requests)
        tester.attacks = self.attacks
        self.attacks.saw(connection)
        await asyncio.wait_for(tester.peer.discover_all(), SETUP_TIMEOUT_S)
        tester.attach()
        return tester

    def _connected(self) -> bool:
        tester = self.tester
        return tester is not None and tester.connection.handle in self.device.connections

    async def _relink(self) -> Tester:
        """A new link, paired again (the old one went during a case)."""
        tester = await self._connect()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(tester.connection.pair(), SETUP_TIMEOUT_S)
            tester.paired = tester.connection.is_encrypted
        if self.tester is not None:
            tester.features, tester.cache = self.tester.features, self.tester.cache
        self.tester = tester
        return tester

    async def run(self) -> list[Result]:
        results: list[Result] = []
        self.tester = await self._connect()
        for case in sensor_cases():
            if not self.only(case):
                continue
            result = await self._one(case)
            results.append(result)
            self.on_result(result)
            if case.phase is Phase.PAIRING and self.tester is not None and self.tester.paired:
                await self._read_features()
                self._follow_identity()
        with contextlib.suppress(BaseBumbleError, TimeoutError, asyncio.CancelledError):
            if self._connected():
                assert self.tester is not None
                await asyncio.wait_for(self.tester.connection.disconnect(), 5)
        return results

    def _follow_identity(self) -> None:
        """Reconnect by the identity address the sensor gave at bonding when its IRK came too:
        bumble then finds the private address it advertises from now."""
        assert self.tester is not None
        identity = self.tester.connection.peer_address
        resolver = self.device.address_resolver
        if resolver is not None and resolver.can_resolve_to(identity):
            self.target = identity

    async def _read_features(self) -> None:
        from sim.conformance.cases_gatt import parse_features

        tester = self.tester
        assert tester is not None
        tester.frames = []
        with contextlib.suppress(Exception):
            value, _ = await asyncio.wait_for(tester.read(gatt.FEATURE.uuid), 10)
            if value is not None:
                tester.features = parse_features(value)

    async def _one(self, case: Case) -> Result:
        start = time.perf_counter()

        def result(verdict: Verdict, reason: str, frames: list[str] | None = None) -> Result:
            return Result(case, verdict, reason, frames or [], time.perf_counter() - start)

        tester = self.tester
        if case.phase is Phase.PAIRED:
            why_not = case.applies(tester.features if tester else None)
            if why_not is not None:
                return result(Verdict.NOT_APPLICABLE, why_not)
        if case.destructive and not self.allow_destructive:
            return result(Verdict.NOT_RUN, "destructive: not run without --allow-destructive")
        if case.phase is Phase.ATTACKS and not self.security.attacks:
            return result(Verdict.NOT_RUN, "security attack: not run with --no-attacks")
        if case.phase is Phase.PAIRED and (tester is None or not tester.paired):
            why = tester.pairing_error if tester is not None else None
            return result(Verdict.INCONCLUSIVE, f"not paired ({why or 'pairing did not run'})")
        if case.phase is not Phase.ATTACKS and not self._connected():  # attacks link themselves
            try:
                tester = await self._relink()
            except Exception as error:
                return result(Verdict.INCONCLUSIVE, f"link lost, reconnecting failed: {error}")
        assert tester is not None
        tester.frames = []
        timeout = case.timeout_s + (case.budget(self.security) if case.budget else 0.0)
        verdict, reason = await judge(case.run(tester), timeout)
        return result(verdict, reason, list(tester.frames))


async def run_sensor(
    transport: str,
    *,
    address: str | None = None,
    name: str | None = None,
    passkey: int | None = None,
    allow_destructive: bool = False,
    only: Callable[[Case], bool] | None = None,
    on_result: Callable[[Result], None] | None = None,
    security: SecurityOptions | None = None,
) -> Run:
    """Open ``transport``, find the sensor, run the sensor cases; raises ``TransportProblem``
    when the transport cannot be opened and ``TimeoutError`` when no sensor is found."""
    started = time.perf_counter()
    async with await hil._open(transport) as hci:  # raises TransportProblem
        device = Device.with_hci(
            "cgmsim-conformance", Address(TESTER_ADDRESS), hci.source, hci.sink
        )
        await device.power_on()
        if address is not None:
            target = Address(address)
        else:
            target = await scan_for_cgm(device, name=name)
        sensor = SensorRun(
            device,
            target,
            passkey=passkey,
            allow_destructive=allow_destructive,
            only=only,
            on_result=on_result,
            security=security,
        )
        try:
            results = await sensor.run()
        except (BaseBumbleError, ConnectionError) as error:
            raise TransportProblem(f"cannot reach the sensor at {target}: {error}") from error
        features = None
        if sensor.tester is not None and sensor.tester.features is not None:
            found = sensor.tester.features
            features = {
                "features": found.bits,
                "type": found.type,
                "location": found.location,
                "crc": found.crc,
                "e2e_crc": found.e2e_crc,
            }
    return Run(str(target), results, features, time.perf_counter() - started)
