"""The transmitter's LE security on bumble: Security Mode 1 Level 4 and nothing less.

What the sensor enforces (issue 19), each against an attack tried with bumble scripts:

- **Secure Connections Only** (Core Vol 3 Part H 2.3.5.1, 3.5.1; NIST SP 800-121 Rev. 2): a
  Pairing Request without the SC bit, or whose IO capabilities can only give Just Works (or
  that would use OOB data we never published), or that offers less than a 128-bit key, is
  answered with Pairing Failed: Authentication Requirements (0x03) / Encryption Key Size (0x06).
- **Repeated Attempts** (Core Vol 3 Part H 2.3.6): after a failed or abandoned pairing, further
  Pairing Requests from that device — and, since an attacker can change address, from any
  device — are answered with Pairing Failed: Repeated Attempts (0x09) for a waiting interval
  that doubles with each failure (``RepeatedAttempts``). With a fixed passkey every attempt can
  give away one of its 20 bits, so this is what makes guessing cost hours.
- **SMP's 30 s procedure timeout** (Core Vol 3 Part H 3.4): a pairing with no SMP traffic for
  30 s has failed, and the link is ended (a new procedure needs a new link).
- **The key in use** (``KeyInUse``): bumble marks every encrypted link "authenticated", even
  after Just Works or with an old unauthenticated bond, and reports pairing only when it
  completes (a central that withholds its key distribution never completes it). So the LTK
  handed to the controller for each link is classified where it is handed over: an SC key
  from passkey entry (this pairing's, or a bond's with ``authenticated``) or not.

Waits run on the asyncio loop's clock (``loop.time()``): the radio's time, not the session's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bumble import crypto, smp
from bumble.device import Connection, Device
from bumble.hci import HCI_AUTHENTICATION_FAILURE_ERROR, Address
from bumble.smp import AuthReq, ErrorCode, PairingMethod

logger = logging.getLogger(__name__)

SMP_TIMEOUT_S = 30.0  # Core Vol 3 Part H 3.4: Security Manager procedure timeout
ENCRYPTION_KEY_SIZE = 16  # octets: Level 4 needs a 128-bit key (Core Vol 3 Part C 10.2.1)
# A link must be encrypted with an authenticated SC key this soon after connecting, or it is
# dropped: an idle central must not hold the sensor's only connection (issue 19, finding 4).
ENCRYPTION_DEADLINE_S = 10.0
# ... unless it is pairing, which needs a person to type six digits: then this long.
PAIRING_DEADLINE_S = 60.0
# A new resolvable private address this often: TGAP(private_addr_int), 15 minutes recommended
# (Core Vol 3 Part C, Appendix A, Table A.1; the privacy feature of Part C 10.7).
RPA_INTERVAL_S = 15 * 60.0


@dataclass(frozen=True, slots=True)
class RepeatedAttempts:
    """The waiting interval after failed pairings (Core Vol 3 Part H 2.3.6 "Repeated Attempts":
    after a failure the verifier waits before permitting another attempt, and the interval
    "shall increase exponentially" with each further failure).

    ``first_wait_s * growth ** (failures - 1)``, capped at ``max_wait_s``: 5 s, 10 s, 20 s, ...,
    4 h from the 13th failure on. Twenty failed attempts (one per passkey bit) then cost about
    38 hours; a person who mistypes waits 5 s, then 10 s. A successful pairing resets the
    count for its device and the overall count.
    """

    first_wait_s: float = 5.0
    growth: float = 2.0
    max_wait_s: float = 4 * 3600.0
    # Claimants remembered at most (the least recently failed are forgotten first; the overall
    # count still holds them back): an attacker changing address cannot grow the table.
    claimants_kept: int = 64

    def wait_s(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.first_wait_s * self.growth ** (failures - 1), self.max_wait_s)


class AttemptGuard:
    """Failed pairing attempts, per claimant (the address it connected from) and overall.

    The overall count catches an attacker who changes address between attempts; the
    per-claimant one keeps an attacker waiting after someone else pairs successfully (which
    resets the overall count).
    """

    def __init__(self, policy: RepeatedAttempts, clock: Callable[[], float]) -> None:
        self.policy, self.clock = policy, clock
        self.failures: dict[str, int] = {}
        self.last_failure_s: dict[str, float] = {}
        self.overall = 0
        self.overall_last_s = 0.0
        self.refusals = 0

    def wait_left_s(self, claimant: str) -> float:
        """How long ``claimant`` must still wait before it may try to pair again."""
        now = self.clock()
        mine = self.last_failure_s.get(claimant, 0.0) + self.policy.wait_s(
            self.failures.get(claimant, 0)
        )
        anyone = self.overall_last_s + self.policy.wait_s(self.overall)
        return max(mine - now, anyone - now, 0.0)

    def failed(self, claimant: str) -> None:
        now = self.clock()
        self.failures[claimant] = self.failures.get(claimant, 0) + 1
        self.last_failure_s.pop(claimant, None)
        self.last_failure_s[claimant] = now  # dicts keep insertion order: oldest first
        while len(self.last_failure_s) > self.policy.claimants_kept:
            oldest = next(iter(self.last_failure_s))
            del self.last_failure_s[oldest], self.failures[oldest]
        self.overall += 1
        self.overall_last_s = now
        logger.warning(
            "pairing failed (%d from %s, %d overall): the next attempt waits %.0f s",
            self.failures[claimant],
            claimant,
            self.overall,
            self.wait_left_s(claimant),
        )

    def succeeded(self, claimant: str) -> None:
        self.failures.pop(claimant, None)
        self.last_failure_s.pop(claimant, None)
        self.overall = 0


def secure_session_class(guard: AttemptGuard) -> type[smp.Session]:
    """An SMP session class (``Device.smp_session_proxy``) enforcing SC Only mode, Repeated
    Attempts against ``guard`` and SMP's procedure timeout, as the responder."""

    class Session(SecureSession):
        attempts = guard

    return Session


class SecureSession(smp.Session):
    """bumble's SMP session, refusing what Level 4 cannot come from (see the module doc)."""

    attempts: AttemptGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claimant = str(self.connection.peer_address)
        self.attempted = False  # a pairing we accepted is under way (or was)
        self._timer: asyncio.TimerHandle | None = None

    # --- refusing ---

    def refusal(self, command: smp.SMP_Pairing_Request_Command) -> ErrorCode | None:
        """Why a Pairing Request is refused, or None to go ahead."""
        if self.attempts.wait_left_s(self.claimant) > 0:
            return ErrorCode.REPEATED_ATTEMPTS  # Core Vol 3 Part H 2.3.6
        if not command.auth_req & AuthReq.SC:
            return ErrorCode.AUTHENTICATION_REQUIREMENTS  # SC Only mode: no legacy pairing
        if command.oob_data_flag:
            return ErrorCode.AUTHENTICATION_REQUIREMENTS  # we publish no OOB data
        method = self.PAIRING_METHODS[command.io_capability][self.io_capability]
        if isinstance(method, tuple) and len(method) == 2:
            method = method[1]  # (legacy, secure connections)
        if isinstance(method, tuple):
            method = method[0]  # (PASSKEY, who displays, ...)
        if method is not PairingMethod.PASSKEY:  # Just Works: no MITM protection
            return ErrorCode.AUTHENTICATION_REQUIREMENTS
        if command.maximum_encryption_key_size < ENCRYPTION_KEY_SIZE:
            return ErrorCode.ENCRYPTION_KEY_SIZE
        return None

    def on_smp_pairing_request_command(self, command: smp.SMP_Pairing_Request_Command) -> None:
        reason = self.refusal(command)
        if reason is not None:
            logger.warning("pairing request from %s refused: %s", self.claimant, reason.name)
            self.attempts.refusals += 1
            # Not an attempt (nothing about the passkey was at stake): not counted, and the
            # session stays open for a request that may be accepted later on this link.
            self.send_command(smp.SMP_Pairing_Failed_Command(reason=reason))
            self._stop_timer()
            return
        self.attempted = True
        super().on_smp_pairing_request_command(command)

    def get_long_term_key(self, rand: bytes, ediv: int) -> bytes | None:
        """This pairing's key, if it made one: a refused or unfinished session has none (bumble
        would raise on its missing ``ltk``), so a bond's key is looked up instead."""
        if not self.attempted:
            return None
        try:
            return super().get_long_term_key(rand, ediv)
        except AttributeError:  # no key derived yet
            return None

    # --- outcomes ---

    async def on_pairing(self) -> None:
        if not self.completed:
            self._stop_timer()
            self.attempts.succeeded(self.claimant)
        await super().on_pairing()

    def on_pairing_failure(self, reason: ErrorCode) -> None:
        if not self.completed and self.attempted:
            self.attempts.failed(self.claimant)
        self._stop_timer()
        super().on_pairing_failure(reason)

    def on_disconnection(self, reason: int) -> None:
        if not self.completed and self.attempted:  # abandoned midway: a failed attempt too
            self.completed = True
            self.attempts.failed(self.claimant)
        self._stop_timer()
        super().on_disconnection(reason)

    # --- the 30 s procedure timeout (Core Vol 3 Part H 3.4) ---

    def on_smp_command(self, command: smp.SMP_Command) -> None:
        self._restart_timer()
        super().on_smp_command(command)

    def send_command(self, command: smp.SMP_Command) -> None:
        super().send_command(command)
        self._restart_timer()

    def _restart_timer(self) -> None:
        self._stop_timer()
        if not self.completed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(SMP_TIMEOUT_S, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.completed:
            return
        logger.warning("pairing with %s: no SMP progress for %.0f s", self.claimant, SMP_TIMEOUT_S)
        self.on_pairing_failure(ErrorCode.UNSPECIFIED_REASON)
        self.connection.cancel_on_disconnection(
            self.connection.disconnect(HCI_AUTHENTICATION_FAILURE_ERROR)
        )


class KeyInUse:
    """Which links are encrypted with an authenticated LE Secure Connections key.

    Wraps the host's long-term-key provider (what answers the controller's LE Long Term Key
    Request when a link is encrypted) and classifies the key it hands over: this pairing's
    key (authenticated when the session used SC and passkey entry), or a bond's from the key
    store (authenticated when its SC ``ltk`` says so; legacy ``ltk_central``/``ltk_peripheral``
    keys never are).
    """

    def __init__(self, device: Device) -> None:
        self.device = device
        self.level4: dict[int, bool] = {}  # connection handle -> the key in use is
        self.bonded: dict[int, bool] = {}  # connection handle -> the key is a stored bond's
        host = device.host
        provider = host.long_term_key_provider
        assert provider is not None, "the device has no long-term-key provider"
        self._provider: Callable[[int, bytes, int], Awaitable[bytes | None]] = provider
        host.long_term_key_provider = self._provide

    async def _provide(self, handle: int, rand: bytes, ediv: int) -> bytes | None:
        key = await self._provider(handle, rand, ediv)
        self.level4[handle], self.bonded[handle] = await self._classify(handle, rand, ediv, key)
        return key

    async def _classify(
        self, handle: int, rand: bytes, ediv: int, key: bytes | None
    ) -> tuple[bool, bool]:
        connection = self.device.lookup_connection(handle)
        if key is None or connection is None:
            return False, False
        session = self.device.smp_manager.sessions.get(handle)
        if session is not None and session.get_long_term_key(rand, ediv) == key:
            authenticated = session.sc and session.pairing_method is not PairingMethod.JUST_WORKS
            return authenticated, False
        keystore = self.device.keystore
        keys = None if keystore is None else await keystore.get(str(connection.peer_address))
        if keys is not None and keys.ltk is not None and keys.ltk.value == key:
            return bool(keys.ltk.authenticated), True
        return False, False

    def secure(self, connection: Connection) -> bool:
        """Security Mode 1 Level 4 on ``connection``: encrypted with an authenticated SC key."""
        return connection.is_encrypted and self.level4.get(connection.handle, False)

    def forget(self, connection: Connection) -> None:
        self.level4.pop(connection.handle, None)
        self.bonded.pop(connection.handle, None)


def resolvable_private_address(irk: bytes, prand: bytes) -> Address:
    """A resolvable private address (Core Vol 6 Part B 1.3.2.2): ``hash = ah(irk, prand)``,
    prand's two most significant bits 0b01; three random bytes in, six address bytes out."""
    if len(irk) != 16 or len(prand) != 3:
        raise ValueError("an IRK has 16 bytes and prand 3")
    prand = prand[:2] + bytes([(prand[2] & 0b0011_1111) | 0b0100_0000])
    return Address(crypto.ah(irk, prand) + prand, Address.RANDOM_DEVICE_ADDRESS)


@dataclass(frozen=True, slots=True)
class Privacy:
    """LE privacy for the sensor (Core Vol 3 Part C 10.7; Vol 6 Part B 1.3.2.2): it advertises
    and connects from resolvable private addresses made with ``irk``, a new one every
    ``rotate_s``; bonded collectors, given the IRK and the identity address at pairing,
    resolve them. ``prand``: three random bytes per address (a seeded generator in a
    simulation, ``secrets`` on a real controller)."""

    irk: bytes
    prand: Callable[[], bytes]
    rotate_s: float = RPA_INTERVAL_S

    def __post_init__(self) -> None:
        if len(self.irk) != 16 or not any(self.irk):
            raise ValueError("an IRK has 16 bytes, not all zero")

    def address(self) -> Address:
        return resolvable_private_address(self.irk, self.prand())
