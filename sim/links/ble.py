"""The transmitter core served as a real GATT server on the bumble BLE host stack.

An adapter (shared/design/architecture.md, Links): GATT reads, writes and CCCD writes become
``Read`` / ``Write`` / ``Subscribe`` events into the ``Transmitter`` core and its ``Respond``
goes back as the attribute value or an ATT error; the core's ``Notify`` / ``Indicate`` go out
with bumble's notify/indicate and a ``Sent`` goes back once each has left (a notification) or
been confirmed (an indication). The adapter decides nothing about CGMS.

Events reach the core in the order their PDUs arrived: an indication's ``Sent`` is given the
moment bumble's GATT server takes its Handle Value Confirmation, not when the task awaiting
``indicate_subscriber`` resumes, loop turns later. A collector may write its next request right
behind the confirmation (often in the same connection event, so the same HCI read); bumble
hands that write to our handler synchronously, and the core must already know its indication
was confirmed (issue 13 defect 5: it refused the write with 0xFE, a procedure in progress).

Security (CGMP §5.2.2; shared/spec/ble-stack.md): LE Secure Connections with bonding and
passkey entry, the transmitter displaying a configured passkey (display-only I/O) and asking
for security as soon as a collector connects (an SM Security Request, CGMP §6.1). Every CGMS
value, and every CCCD write, requires encryption; a CCCD can be read by anyone (Core Vol 3 Part
G 3.3.3.3). bumble adds a CCCD that anyone may write to every notifying characteristic unless
the characteristic already has one, so each gets its own CCCD here, forwarding to bumble's
subscription table only after the permission check.

Security Mode 1 Level 4 (``sim.links.ble_security``): Secure Connections Only with passkey entry,
Repeated Attempts, SMP's 30 s timeout. bumble marks every encrypted link "authenticated", even
after Just Works pairing, so every access to a CGMS value and every CCCD write checks the key in
use on that link: encrypted with anything but an authenticated SC key, it is answered
Insufficient Authentication (0x05) and dropped. A link not so encrypted within
``ENCRYPTION_DEADLINE_S`` is dropped too. CCCD values are per client (Core Vol 3 Part G
3.3.3.3): a bonded collector's are kept under its identity address and given back to the core,
as ``Subscribe`` events, when its next link reaches Level 4; an unbonded client's end with its
link.

Time comes from a callable (``now_ms``), so the loop clock, a virtual clock or the monotonic
clock can drive the core.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bumble import att
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData, ProtocolError
from bumble.device import Connection, Device
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    Characteristic,
    CharacteristicValue,
    Descriptor,
    Service,
)
from bumble.hci import (
    HCI_AUTHENTICATION_FAILURE_ERROR,
    Address,
    HCI_LE_Set_Random_Address_Command,
)
from bumble.host import Host
from bumble.keys import PairingKeys
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.profiles.device_information_service import DeviceInformationService
from bumble.transport.common import AsyncPipeSink

from firmware.events import (
    Connected,
    Disconnected,
    GattInput,
    Indicate,
    MtuChanged,
    Notify,
    Read,
    Respond,
    SensorSample,
    Sent,
    Subscribe,
    Write,
)
from firmware.transmitter.server import Transmitter
from protocol.cgms import gatt
from sim.links.ble_security import (
    ENCRYPTION_DEADLINE_S,
    PAIRING_DEADLINE_S,
    AttemptGuard,
    KeyInUse,
    Privacy,
    RepeatedAttempts,
    secure_session_class,
)
from sim.links.core_timer import CoreTimer, Schedule, on_loop

logger = logging.getLogger(__name__)

_P = Characteristic.Properties
_PERMS = att.Attribute.Permissions
_READ_SECURE = (
    _PERMS.READABLE | _PERMS.READ_REQUIRES_ENCRYPTION | _PERMS.READ_REQUIRES_AUTHENTICATION
)
_WRITE_SECURE = (
    _PERMS.WRITEABLE | _PERMS.WRITE_REQUIRES_ENCRYPTION | _PERMS.WRITE_REQUIRES_AUTHENTICATION
)
_PROPERTIES = {
    gatt.Property.READ: _P.READ,
    gatt.Property.WRITE: _P.WRITE,
    gatt.Property.NOTIFY: _P.NOTIFY,
    gatt.Property.INDICATE: _P.INDICATE,
}
ADVERTISING_INTERVAL_MS = 20.0  # a connection completes on the next advertising PDU


def uuid16(value: int) -> UUID:
    return UUID.from_16_bits(value)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the Device Information service (0x180A) tells."""

    manufacturer: str = "cgmsim"
    model: str = "cgmsim-g7"
    system_id: tuple[int, int] = (0x00CA_FE00, 0x0000_0001)  # (OUI, manufacturer-defined id)


class DisplayPasskey(PairingDelegate):
    """The transmitter's side: display-only I/O, "showing" the passkey printed on the sensor."""

    def __init__(self, passkey: int) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.DISPLAY_OUTPUT_ONLY)
        if not 0 <= passkey <= 999_999:
            raise ValueError(f"a passkey has 6 digits, got {passkey}")
        self.passkey = passkey

    async def generate_passkey(self) -> int:
        return self.passkey

    async def display_number(self, number: int, digits: int) -> None:
        logger.info("passkey: %0*d", digits, number)


class EnterPasskey(PairingDelegate):
    """The receiving side: keyboard-only I/O, typing a given passkey."""

    def __init__(self, passkey: int) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY)
        self.passkey = passkey

    async def get_number(self) -> int | None:
        return self.passkey


def transmitter_pairing(passkey: int) -> PairingConfig:
    """Secure Connections, bonding, MITM via the displayed passkey. A random identity address
    is what lets a bonded receiver re-encrypt on reconnection (shared/spec/ble-stack.md)."""
    return PairingConfig(
        sc=True,
        mitm=True,
        bonding=True,
        delegate=DisplayPasskey(passkey),
        identity_address_type=PairingConfig.AddressType.RANDOM,
    )


def receiver_pairing(passkey: int) -> PairingConfig:
    """For a receiver (or a test client) that enters ``passkey`` when asked."""
    return PairingConfig(sc=True, mitm=True, bonding=True, delegate=EnterPasskey(passkey))


def mitm_protected(keys: PairingKeys) -> bool:
    """Whether pairing produced MITM-authenticated keys (not Just Works)."""
    found = [k for k in (keys.ltk, keys.ltk_central, keys.ltk_peripheral) if k is not None]
    return bool(found) and all(k.authenticated for k in found)


class LossyLink(LocalLink):
    """bumble's in-process link losing each ATT notification with probability ``loss`` (one
    draw from ``rng`` per notification, as ``sim.links.memory`` draws): the receiver misses
    it and finds the gap. Only notifications: a lost request, response or indication would
    stall ATT until its 30 s timeout, which is a different fault (an outage)."""

    def __init__(self, loss: float = 0.0, rng: Any = None) -> None:
        super().__init__()
        self.loss, self.rng = loss, rng
        self.lost = 0

    def send_acl_data(
        self, sender_controller: Any, destination_address: Any, transport: Any, data: bytes
    ) -> None:
        # ``data`` is one whole L2CAP PDU: length (2), channel id (2), payload; ATT is on 0x0004
        if (
            self.loss
            and len(data) > 4
            and data[2:4] == _ATT_CID
            and data[4] == att.Opcode.ATT_HANDLE_VALUE_NOTIFICATION
            and self.rng.random() < self.loss
        ):
            self.lost += 1
            return
        super().send_acl_data(sender_controller, destination_address, transport, data)


_ATT_CID = (0x0004).to_bytes(2, "little")


def _connection_of(bearer: att.Bearer) -> Connection:
    return bearer if isinstance(bearer, Connection) else bearer.connection


def in_process_device(link: LocalLink, name: str, address: str) -> Device:
    """A bumble device on a virtual controller attached to an in-process ``LocalLink``."""
    controller = Controller(name, link=link, public_address=address)
    host = Host(controller, AsyncPipeSink(controller))
    return Device(name=name, address=Address(address), host=host)


def advertising_data(name: str) -> bytes:
    return bytes(
        AdvertisingData(
            [
                (AdvertisingData.FLAGS, bytes([0x06])),  # LE general discoverable, no BR/EDR
                (
                    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                    bytes(uuid16(gatt.CGM_SERVICE)),
                ),
                (AdvertisingData.COMPLETE_LOCAL_NAME, name.encode()),
            ]
        )
    )


class BleTransmitter:
    """Serves ``core`` on ``device`` (one connected collector at a time).

    Call ``start()`` once the device is powered on; feed samples and timers through
    ``sample()`` / ``handle_timer()`` so that what they produce goes out on the air.
    """

    def __init__(
        self,
        device: Device,
        core: Transmitter,
        now_ms: Callable[[], int],
        *,
        passkey: int,
        name: str = "cgmsim",
        info: DeviceInfo | None = None,
        to_loop: Callable[[int], float] | None = None,
        schedule_timer: Schedule | None = None,
        attempts: RepeatedAttempts | None = None,
        privacy: Privacy | None = None,
        bonded_only: bool = False,
    ) -> None:
        self.device, self.core, self.now_ms, self.name = device, core, now_ms, name
        # The core's timer runs by itself: where ``schedule_timer`` keeps it (a session's
        # scheduler), else on the loop with ``to_loop`` (core milliseconds -> loop seconds).
        # With neither, the caller calls ``handle_timer()`` when it is due.
        if schedule_timer is None and to_loop is not None:
            schedule_timer = on_loop(to_loop)
        self.timer = (
            None
            if schedule_timer is None
            else CoreTimer(core.get_timer, self.handle_timer, schedule_timer)
        )
        self.connection: Connection | None = None
        self.characteristics: dict[int, Characteristic[bytes]] = {}
        self._outgoing: deque[Notify | Indicate] = deque()
        self._answers: deque[Respond] = deque()
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        # the link whose indication ``_send_loop`` awaits, until its confirmation is taken
        self._confirming: Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done
        self._serving = False
        self._mitm_failed = False  # this link paired without MITM: refuse it everything
        self._deadline: asyncio.TimerHandle | None = None  # for this link to reach Level 4
        self._connected_s = 0.0  # when (loop time) this link was made
        self._bonded = False  # this link's collector has a bond (its CCCDs outlive the link)
        self.cccds: dict[str, dict[int, tuple[bool, bool]]] = {}  # bonded identity -> CCCDs
        self.sent = 0
        device.name = name
        device.pairing_config_factory = lambda connection: transmitter_pairing(passkey)
        self.attempts = AttemptGuard(
            attempts or RepeatedAttempts(), lambda: asyncio.get_running_loop().time()
        )
        device.smp_session_proxy = secure_session_class(self.attempts)
        self.keys = KeyInUse(device)
        self.privacy, self.bonded_only = privacy, bonded_only
        self._rotation: asyncio.Task[None] | None = None
        if privacy is not None:
            device.irk = privacy.irk  # given to collectors at pairing, with the identity address
        info = info or DeviceInfo()
        device.add_services(
            [
                self._cgm_service(),
                DeviceInformationService(
                    manufacturer_name=info.manufacturer,
                    model_number=info.model,
                    system_id=info.system_id,
                ),
            ]
        )
        device.on(device.EVENT_CONNECTION, self._on_connection)
        self._watch_confirmations()

    # --- GATT database ---

    def _cgm_service(self) -> Service:
        for char in gatt.CHARACTERISTICS:
            properties = _P(0)
            for ours, theirs in _PROPERTIES.items():
                if ours in char.properties:
                    properties |= theirs
            value = CharacteristicValue(
                read=lambda connection, uuid=char.uuid: self._read(connection, uuid),
                write=lambda connection, value, uuid=char.uuid: self._write(
                    connection, uuid, value
                ),
            )
            characteristic = Characteristic(
                uuid16(char.uuid), properties, _READ_SECURE | _WRITE_SECURE, value
            )
            if char.properties & (gatt.Property.NOTIFY | gatt.Property.INDICATE):
                characteristic.descriptors = [self._cccd(characteristic, char.uuid)]
            self.characteristics[char.uuid] = characteristic
        return Service(uuid16(gatt.CGM_SERVICE), list(self.characteristics.values()))

    def _cccd(self, characteristic: Characteristic[bytes], uuid: int) -> Descriptor:
        """Our own CCCD, so that bumble does not add its open one; its write requires an
        encrypted link, and reaches bumble's subscription table only once the core agreed.
        Anyone may read it (Core Vol 3 Part G 3.3.3.3: only writing may require
        authentication): a client sees its own configuration, which is off until it secures
        the link and subscribes."""
        server = self.device.gatt_server

        def read(bearer: att.Bearer) -> bytes:
            return server.read_cccd(bearer, characteristic)

        def write(bearer: att.Bearer, value: bytes) -> None:
            if len(value) != 2:
                raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH)
            subscribe = Subscribe(uuid, notify=bool(value[0] & 1), indicate=bool(value[0] & 2))
            self._check_level4(_connection_of(bearer))
            self._respond(subscribe)
            server.write_cccd(bearer, characteristic, value)

        return Descriptor(
            GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
            _PERMS.READABLE | _WRITE_SECURE,
            att.AttributeValueV2(read=read, write=write),
        )

    def _read(self, connection: Connection, uuid: int) -> bytes:
        self._check_level4(connection)
        return self._respond(Read(uuid)).value or b""

    def _write(self, connection: Connection, uuid: int, value: bytes) -> None:
        self._check_level4(connection)
        self._respond(Write(uuid, bytes(value)))

    def _check_level4(self, connection: Connection) -> None:
        """Security Mode 1 Level 4 on every access to a protected attribute (Core Vol 3 Part C
        10.2.1; Part F 3.4.1.1 Insufficient Authentication): the served collector's link,
        encrypted with an authenticated LE Secure Connections key. bumble's own permission check
        has already answered Insufficient Encryption (0x0F) to an unencrypted link."""
        if connection is self.connection and self.keys.secure(connection):
            return
        if connection is self.connection and not self._mitm_failed:
            logger.warning("access with a key that is not authenticated SC: disconnecting")
            self._mitm_failed = True
            self._spawn(self._refuse(connection))
        raise att.ATT_Error(att.ErrorCode.INSUFFICIENT_AUTHENTICATION)

    def _respond(self, request: Read | Write | Subscribe) -> Respond:
        """Give the core a request (from a link that passed ``_check_level4``) and return its
        answer, raising its ATT error."""
        self._answers.clear()
        self._feed(request)
        answer = self._answers.popleft() if self._answers else None
        if answer is None:
            raise RuntimeError(f"the transmitter core did not answer {request}")
        if answer.error is not None:
            raise att.ATT_Error(int(answer.error))
        return answer

    def _watch_confirmations(self) -> None:
        """See each Handle Value Confirmation where bumble's GATT server completes the
        indication with it (its handler for the PDU, looked up on the server instance), and give
        the core its ``Sent`` there and then: before any PDU that came after it. Only a
        confirmation bumble accepts counts, one for the indication it had pending; one arriving
        when none is pending (unexpected, or after the indication timed out) gives nothing."""
        server = self.device.gatt_server
        complete = server.on_att_handle_value_confirmation

        def on_confirmation(
            bearer: att.Bearer, confirmation: att.ATT_Handle_Value_Confirmation
        ) -> None:
            pending = server.pending_confirmations.get(bearer)
            if pending is not None and pending.done():
                return  # its indication already ended (timed out, link going): bumble would raise
            ours = bearer is self._confirming and pending is not None
            complete(bearer, confirmation)
            if ours:
                self._confirming = None
                self._delivered(_connection_of(bearer))

        server.on_att_handle_value_confirmation = on_confirmation  # type: ignore[method-assign]

    # --- the core ---

    def _feed(self, event: GattInput | None = None) -> None:
        """One input into the core (or none, after a sample or timer), then take what it has
        to say: answers for the request in hand, notifications and indications for the air."""
        if event is not None:
            self.core.receive(event, self.now_ms())
        while (output := self.core.next_event()) is not None:
            if isinstance(output, Respond):
                self._answers.append(output)
            elif self.connection is not None:
                self._outgoing.append(output)
                self._wakeup.set()
        if self.timer is not None:
            self.timer.arm()

    def sample(self, sample: SensorSample, t_ms: int | None = None) -> None:
        """A sensor sample taken at ``t_ms`` (default: ``now_ms()``)."""
        self.core.sample(sample, self.now_ms() if t_ms is None else t_ms)
        self._feed()

    def handle_timer(self) -> None:
        self.core.handle_timer(self.now_ms())
        self._feed()

    # --- advertising and connections ---

    async def start(self) -> None:
        """Connectable advertising with the CGM service UUID and the name (again after
        each disconnection, until ``stop()``)."""
        self._serving = True
        if self.privacy is not None and self._rotation is None:
            await self._new_address()
            self._rotation = asyncio.ensure_future(self._rotate(self.privacy.rotate_s))
        await self._advertise()

    async def _advertise(self) -> None:
        await self.device.start_advertising(
            advertising_data=advertising_data(self.name),
            scan_response_data=advertising_data(self.name),
            advertising_interval_min=ADVERTISING_INTERVAL_MS,
            advertising_interval_max=ADVERTISING_INTERVAL_MS,
        )

    async def stop(self) -> None:
        """Stop advertising (the core and its timer go on: the sensor keeps sampling)."""
        self._serving = False
        if self._rotation is not None:
            self._rotation.cancel()
            self._rotation = None
        if self._sender is not None:
            self._sender.cancel()
        if self.device.is_advertising:
            await self.device.stop_advertising()

    async def _rotate(self, every_s: float) -> None:
        """A new resolvable private address every ``every_s`` of loop time."""
        while True:
            await asyncio.sleep(every_s)
            await self._new_address()

    async def _new_address(self) -> None:
        """Take a new resolvable private address (advertising stops meanwhile: a controller
        refuses a new random address while it advertises, Core Vol 4 Part E 7.8.4); a link
        keeps the address it was made on, the next advertising uses the new one."""
        assert self.privacy is not None
        address = self.privacy.address()
        advertising = self.device.is_advertising
        if advertising:
            await self.device.stop_advertising()
        await self.device.send_sync_command(
            HCI_LE_Set_Random_Address_Command(random_address=address)
        )
        self.device.random_address = address
        logger.info("resolvable private address: %s", address)
        if advertising and self._serving and self.connection is None:
            await self._advertise()

    def _on_connection(self, connection: Connection) -> None:
        if self.connection is not None:  # the core serves one collector
            self._spawn(connection.disconnect())
            return
        self.connection, self._mitm_failed, self._bonded = connection, False, False
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        connection.on(connection.EVENT_CONNECTION_ATT_MTU_UPDATE, self._on_mtu)
        connection.on(connection.EVENT_PAIRING_START, self._on_pairing_start)
        connection.on(connection.EVENT_PAIRING, self._on_pairing)
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, self._on_encryption)
        self._connected_s = asyncio.get_running_loop().time()
        self._arm_deadline(connection, ENCRYPTION_DEADLINE_S)
        if self.bonded_only:
            self._spawn(self._admit(connection))
        self._feed(Connected(connection.att_mtu))
        self._sender = asyncio.ensure_future(self._send_loop(connection))
        # The sensor asks for security at once (CGMP §6.1: the SM Slave Security Request
        # procedure), bonding with MITM and Secure Connections; a bonded collector answers by
        # encrypting, a new one by pairing.
        connection.request_pairing()

    async def _admit(self, connection: Connection) -> None:
        """``bonded_only``: once the sensor has a bond, a collector without one is dropped
        (in the host: bumble's legacy advertising has no filter policy, and its virtual
        controller ignores the filter accept list)."""
        keystore = self.device.keystore
        if keystore is None or not await keystore.get_all():
            return
        if await keystore.get(str(connection.peer_address)) is None:
            logger.warning("%s has no bond: disconnecting", connection.peer_address)
            await connection.disconnect(HCI_AUTHENTICATION_FAILURE_ERROR)

    def _arm_deadline(self, connection: Connection, after_s: float) -> None:
        """Drop ``connection`` ``after_s`` after it was made unless it reaches Level 4 first
        (only unsecured links have a deadline: a simulation's virtual loop is not held up)."""
        self._cancel_deadline()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_at(self._connected_s + after_s, self._too_slow, connection)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, connection: Connection) -> None:
        self._deadline = None
        if self.connection is connection and not self.keys.secure(connection):
            logger.warning("link not secured in time: disconnecting")
            self._spawn(connection.disconnect(HCI_AUTHENTICATION_FAILURE_ERROR))

    def _on_pairing_start(self) -> None:
        """A pairing we accepted: a person types the passkey, give them longer."""
        connection = self.connection
        if connection is not None and not self.keys.secure(connection):
            self._arm_deadline(connection, PAIRING_DEADLINE_S)

    def _on_mtu(self) -> None:
        if self.connection is not None:
            self._feed(MtuChanged(self.connection.att_mtu))

    def _on_encryption(self) -> None:
        """Level 4 reached: the deadline is off. A bonded collector's subscriptions outlive
        its links (Core Vol 3 Part G 3.3.3.3): once its new link is encrypted with its bond
        (not before: notifications would leave in clear), its own CCCD values go back to the
        core and to bumble's server — and nobody else's."""
        connection = self.connection
        if connection is None or not self.keys.secure(connection) or self._mitm_failed:
            return
        self._cancel_deadline()
        if not self.keys.bonded.get(connection.handle, False):
            return  # a link just paired: its client subscribes itself
        self._bonded = True
        server = self.device.gatt_server
        for uuid, (notify, indicate) in self.cccds.get(str(connection.peer_address), {}).items():
            characteristic = self.characteristics.get(uuid)
            if characteristic is not None and (notify or indicate):
                self._feed(Subscribe(uuid, notify=notify, indicate=indicate))
                server.write_cccd(connection, characteristic, bytes([notify | indicate << 1, 0]))
        self._answers.clear()

    def _on_pairing(self, keys: PairingKeys) -> None:
        # bumble stores the keys whatever the Bonding flags said; the CCCDs outlive the link
        # only for a collector that asked to bond (and that the sensor agreed to bond with)
        connection = self.connection
        session = (
            None if connection is None else self.device.smp_manager.sessions.get(connection.handle)
        )
        self._bonded = self.device.keystore is not None and bool(session and session.bonding)
        if not mitm_protected(keys) and self.connection is not None:
            logger.warning("pairing without MITM protection: keys dropped, disconnecting")
            self._mitm_failed = True
            self._spawn(self._refuse(self.connection))

    async def _refuse(self, connection: Connection) -> None:
        """Forget the unauthenticated keys (bumble stored them before telling us, and would
        re-encrypt with them on reconnection) and drop the link."""
        if self.device.keystore is not None:
            await self.device.keystore.delete(str(connection.peer_address))
        await connection.disconnect(HCI_AUTHENTICATION_FAILURE_ERROR)

    def _on_disconnection(self, reason: int) -> None:
        connection = self.connection
        if connection is not None:
            if self._bonded and self.keys.secure(connection) and not self._mitm_failed:
                self.cccds[str(connection.peer_address)] = dict(self.core.subscriptions)
            self.keys.forget(connection)
        self._cancel_deadline()
        self.connection = None
        self._outgoing.clear()
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        self._feed(Disconnected())
        if self._serving:
            self._spawn(self.start())  # link loss: advertise again

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_loop(self, connection: Connection) -> None:
        """Send what the core queued, one at a time, and tell it ``Sent`` after each: after a
        notification once it has left, after an indication once it is confirmed (given by
        ``_watch_confirmations`` as the confirmation arrives; here only when bumble sent
        nothing, no client having enabled it)."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._outgoing:
                output = self._outgoing.popleft()
                characteristic = self.characteristics[output.uuid]
                try:
                    if isinstance(output, Notify):
                        await self.device.notify_subscriber(
                            connection, characteristic, output.value
                        )
                    else:
                        self._confirming = connection
                        await self.device.indicate_subscriber(
                            connection, characteristic, output.value
                        )
                        if self._confirming is not connection:
                            continue  # confirmed: its Sent is given
                except (TimeoutError, ProtocolError) as error:  # unconfirmed, or the link went
                    logger.warning("0x%04X not delivered: %s", output.uuid, error)
                    return  # no Sent: the core's procedure timeout or Disconnected follows
                finally:
                    if self._confirming is connection:
                        self._confirming = None
                self._delivered(connection)

    def _delivered(self, connection: Connection) -> None:
        """One notification or indication has left or been confirmed on ``connection``."""
        self.sent += 1
        if self.connection is connection:
            self._feed(Sent())
