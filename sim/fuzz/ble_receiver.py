"""Fuzz target over BLE: a rogue sensor's GATT server against our receiver.

Each episode runs on a fresh virtual-time loop (``sim.virtual_loop``): the receiver core driven
by ``sim.links.ble_receiver.BleReceiver`` on one in-process bumble device, and on another a
rogue sensor: a bumble GATT server exposing the CGM service with the standard UUIDs (the
transmitter's adapter, ``sim.links.ble.BleTransmitter``, with the fuzzer's hand between the
genuine transmitter core and the air). The receiver connects and pairs with the passkey as it
would with a real sensor. The actions are the memory receiver target's
(``sim.fuzz.receiver``): ``["step"]``, ``["replace", kind, "hex:.."]``, ``["drop", kind]``,
``["repeat", kind]`` (kind: the next ``response``, ``notify`` or ``indicate``),
``["error", att_code]`` (the next response is that ATT error), ``["inject", kind, uuid,
"hex:.."]`` (a notification or indication of the rogue's own), ``["disconnect"]`` (the sensor
drops the link; the receiver reconnects after its delay), ``["connect"]`` (time for that).

Invariants after every action: no exception escapes the receiver core or the adapters (an
exception on the loop counts); a reading is never shown twice in one session, nor out of
session, nor with a glucose that is not a finite number; every value the receiver writes
decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from bumble.link import LocalLink

from firmware.events import GattInput, Indicate, Notify, Respond, SensorSample, Sent, Write
from firmware.receiver.collector import CollectorConfig
from firmware.receiver.receiver import RECONNECT_MS, ReceiverConfig
from firmware.transmitter.server import Transmitter, TransmitterConfig
from sim.fuzz import corpus
from sim.fuzz.ble_transmitter import quiet_links, witness
from sim.fuzz.engine import Action, Failure, Hang, InvariantViolated, failure_from
from sim.fuzz.receiver import ReceiverTarget, check_shown, check_written
from sim.links.ble import BleTransmitter, in_process_device
from sim.links.ble_receiver import BleReceiver
from sim.virtual_loop import run_virtual

SAMPLE_MS = corpus.SAMPLE_MS
PASSKEY = 123_456
SETTLE_S = 0.05  # virtual: the in-process link delivers at once, this lets every task run
ESTABLISH_S = 60.0  # virtual: connect, pair, discover
KIND_OF = {Respond: "response", Notify: "notify", Indicate: "indicate"}


class RogueSensor(BleTransmitter):
    """The transmitter's GATT server with the fuzzer between its core and the air: the next
    response, notification or indication replaced, dropped, repeated or made an ATT error;
    values of its own sent; and every value the receiver writes checked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tamper: dict[str, tuple[str, Any]] = {}
        self.e2e_of_receiver: Callable[[], bool] = lambda: False
        self.problems: list[BaseException] = []
        self.confirm_within_s: float | None = None
        self.requests = 0  # ATT reads and writes of the collector so far

    def tampers(self, action: Action) -> bool:
        """Take a ``replace``, ``drop``, ``repeat`` or ``error`` action: the hand on the next
        output of that kind. False for any other action."""
        kind = action[0]
        if kind == "replace":
            self.tamper[action[1]] = ("replace", bytes.fromhex(action[2][4:]))
        elif kind in ("drop", "repeat"):
            self.tamper[action[1]] = (kind, None)
        elif kind == "error":
            self.tamper["response"] = ("error", int(action[1]))
        else:
            return False
        return True

    def _respond(self, request: Any) -> Respond:
        self.requests += 1
        if isinstance(request, Write):
            try:
                check_written(request.uuid, request.value, self.e2e_of_receiver())
            except InvariantViolated as error:
                self.problems.append(error)
        return super()._respond(request)

    def _feed(self, event: GattInput | None = None) -> None:
        if event is not None:
            self.core.receive(event, self.now_ms())
        while (output := self.core.next_event()) is not None:
            rule = self.tamper.pop(KIND_OF[type(output)], None)
            if rule is not None and self.connection is not None:
                output = self._tampered(output, *rule)
                if output is None:
                    continue
            if isinstance(output, Respond):
                self._answers.append(output)
            elif self.connection is not None:
                self._outgoing.append(output)
                self._wakeup.set()

    def _tampered(self, output: Any, how: str, value: Any) -> Any:
        if how == "replace":
            if isinstance(output, Respond):
                return Respond(output.uuid, value if output.value is not None else None)
            return type(output)(output.uuid, value)
        if how == "error":
            return Respond(output.uuid, error=value)
        if how == "drop":
            if not isinstance(output, Respond):
                self.core.receive(Sent(), self.now_ms())  # as if it had left
                return None
            return output
        if how == "repeat" and not isinstance(output, Respond):
            self._spawn(self.send_own(output))
        return output

    async def send_own(self, output: Notify | Indicate) -> None:
        """A notification or indication of the rogue's own (no ``Sent`` for the core). With
        ``confirm_within_s``, an indication the collector does not confirm in that time, on a
        link that is still up, is a problem (``confirms-indications``)."""
        connection = self.connection
        characteristic = self.characteristics.get(output.uuid)
        if connection is None or characteristic is None:
            return
        send = (
            self.device.notify_subscriber
            if isinstance(output, Notify)
            else self.device.indicate_subscriber
        )
        within = self.confirm_within_s if isinstance(output, Indicate) else None
        try:
            await asyncio.wait_for(send(connection, characteristic, output.value), within)
        except TimeoutError:
            if within is not None and self.connection is connection:
                message = f"0x{output.uuid:04X} {output.value.hex()} not confirmed in {within:g} s"
                self.problems.append(InvariantViolated("confirms-indications", message))
        except Exception:  # the link may go meanwhile: not a finding
            pass


class BleReceiverTarget(ReceiverTarget):
    name = "receiver"
    link = "ble"

    def execute(self, actions: list[Action]) -> tuple[int, Failure | None]:
        e2e = bool(actions and actions[0][0] == "setup" and actions[0][1])
        with quiet_links():
            return run_virtual(_BleRun(self, e2e).play(actions))


class _BleRun:
    def __init__(self, target: BleReceiverTarget, e2e: bool) -> None:
        self.profile = target.profile
        self.escaped: list[BaseException] = []
        self.problems: list[BaseException] = []
        self.tx = Transmitter(TransmitterConfig(self.profile, e2e_crc=e2e), corpus.CALIBRATION, 0)
        config = ReceiverConfig(self.profile, CollectorConfig(corpus.CLOCK_AT_ZERO))
        self.rx = target.make_receiver(config, 0)
        inputs = ("connected", "disconnected", "response", "notification", "indication")
        witness(self.rx, (*inputs, "handle_timer"), self.escaped)
        self.shown: dict[int | None, set[int]] = {}

    def now_ms(self) -> int:
        return round(asyncio.get_running_loop().time() * 1000)

    def _event(self, event: object) -> None:
        try:
            check_shown(event, self.shown, self.rx, self.profile)
        except InvariantViolated as error:
            self.problems.append(error)

    def _loop_error(self, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, Exception) and not isinstance(error, asyncio.CancelledError):
            self.problems.append(error)

    def _raise_found(self) -> None:
        for found in (self.escaped, self.problems, self.sensor.problems):
            if found:
                raise found[0]

    async def play(self, actions: list[Action]) -> tuple[int, Failure | None]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: self._loop_error(context))
        link = LocalLink()
        tx_device = in_process_device(link, "rogue-sensor", "F1:F1:F1:F1:F1:F1")
        rx_device = in_process_device(link, "receiver", "F1:F1:F1:F1:F1:F2")
        self.sensor = RogueSensor(tx_device, self.tx, self.now_ms, passkey=PASSKEY)
        self.sensor.e2e_of_receiver = lambda: self.rx.collector.e2e_crc
        established: asyncio.Future[None] = loop.create_future()
        client = BleReceiver(
            rx_device,
            self.rx,
            tx_device.random_address,
            self.now_ms,
            lambda ms: ms / 1000,
            passkey=PASSKEY,
            on_event=self._event,
            on_established=lambda: established.done() or established.set_result(None),
            reconnect_delay_ms=RECONNECT_MS,
        )
        at = [0]
        runner: asyncio.Task[None] | None = None
        try:
            await tx_device.power_on()
            await rx_device.power_on()
            await self.sensor.start()
            runner = asyncio.ensure_future(client.run())
            await asyncio.wait_for(established, ESTABLISH_S)
            await asyncio.sleep(SETTLE_S)
            for action in actions:
                await self._apply(action)
                await asyncio.sleep(SETTLE_S)
                self._raise_found()
                at[0] += 1
        except Exception as error:
            return at[0] + 1, failure_from(error, min(at[0], max(0, len(actions) - 1)))
        finally:
            await self._close(client, runner)
        return len(actions), None

    async def _close(self, client: BleReceiver, runner: asyncio.Task[None] | None) -> None:
        logging.disable(logging.WARNING)  # the teardown's own complaints are not findings
        try:
            client.stop()
            if runner is not None:
                runner.cancel()
            await self.sensor.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close("episode over"), 5.0)
        finally:
            logging.disable(logging.NOTSET)

    async def _apply(self, action: Action) -> None:
        kind, sensor = action[0], self.sensor
        if kind == "setup":
            return
        if kind == "step":
            await self._step()
        elif sensor.tampers(action):
            pass
        elif kind == "inject":
            value = bytes.fromhex(action[3][4:])
            event = Notify if action[1] == "notify" else Indicate
            await sensor.send_own(event(int(action[2]), value))
        elif kind == "disconnect":
            connection = sensor.connection
            if connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.disconnect(), 5.0)
        elif kind == "connect":
            await asyncio.sleep(RECONNECT_MS / 1000 + 0.5)

    async def _step(self) -> None:
        until = (self.now_ms() // SAMPLE_MS + 1) * SAMPLE_MS
        for _ in range(1_000):
            timer = self.tx.get_timer()
            if timer is None or timer > until:
                break
            await asyncio.sleep(max(0, timer - self.now_ms()) / 1000)
            self.sensor.handle_timer()
            await asyncio.sleep(SETTLE_S)
        else:
            raise Hang(f"the transmitter's timers do not settle before {until} ms")
        await asyncio.sleep(max(0, until - self.now_ms()) / 1000)
        self.sensor.sample(SensorSample(corpus.counts_at(until)))
