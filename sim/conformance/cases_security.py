"""The security suite (issue 19's audit of other devices): the attacks on a CGM sensor that
someone within radio range can make, each as a case with the spec or guidance its verdict
rests on (docs/conformance.md, "The security suite").

- Before pairing, on the main link: nothing can be written or subscribed to unencrypted.
- After every other case (``Phase.ATTACKS``), each from a separate central (``attacker``): LE
  legacy pairing, Just Works, Just Works with withheld key distribution, an idle connection,
  the sensor's address (resolvable private, resolved with the IRK the tester got at bonding,
  renewed), and passkey guessing against Repeated Attempts. Guessing leaves the sensor refusing
  new pairings for a while (that is the defence), so it runs next to last, followed only by the
  wait for the address to change, which needs no pairing.

A case that cannot reach a verdict says INCONCLUSIVE and why; none passes on what it did not see.
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
from typing import Any

from bumble.hci import Address
from bumble.keys import PairingKeys
from bumble.pairing import PairingDelegate
from bumble.smp import AddressResolver

from sim.conformance import wire
from sim.conformance.attacker import (
    AUTHENTICATION_REQUIREMENTS,
    NO_KEYS,
    PAIRING_NOT_SUPPORTED,
    REPEATED_ATTEMPTS,
    Attacker,
    Outcome,
    SecurityOptions,
    pairing,
)
from sim.conformance.registry import Phase, case
from sim.conformance.tester import (
    INDICATE_ON,
    MEASUREMENT,
    NOTIFY_ON,
    RACP,
    SOCP,
    SST,
    Tester,
)

REFUSED = (wire.INSUFFICIENT_AUTHENTICATION, wire.INSUFFICIENT_ENCRYPTION)
IO = PairingDelegate.IoCapability
IDLE_GRACE_S = 1.0  # for the disconnection to reach the tester over the air
PASSKEY_BITS = 20  # a 6-digit passkey; each failed attempt can reveal one (Part H 2.3.5.6.3)
MIN_GUESSING_S = 3600.0  # the 20 guesses must take at least this long (docs/conformance.md)
POLL_S = 0.25  # between refused guesses, as an attacker polling for the wait's end
TGAP_PRIVATE_ADDR_INT_S = 15 * 60.0  # Core Vol 3 Part C Appendix A: recommended 15 min
UNCHANGED_FAIL_S = TGAP_PRIVATE_ADDR_INT_S + 60.0  # an address kept this long FAILs
SCAN_S = 2.0  # the address watch listens this long at a time (at least once)...
WATCH_EVERY_S = 30.0  # ...and this often


def _attacker(t: Tester) -> Attacker:
    if t.attacks is None:
        raise t.inconclusive("no separate central available to this run")
    return t.attacks


def _options(t: Tester) -> SecurityOptions:
    return _attacker(t).options


# --- before pairing, on the main link -------------------------------------------------------


@case(
    "CGMSIM/SEN/SEC/BI-03-C",
    "Nothing can be written or subscribed to on an unencrypted link",
    "CGMP §6.1 (Security Mode 1 Level 2 or 3); Core Vol 3 Part G 3.3.3.3 (a CCCD write may "
    "require authentication); Core Vol 3 Part F 3.4.1.1",
    phase=Phase.UNPAIRED,
)
async def unencrypted_writes_refused(t: Tester) -> str:
    mark = t.mark()
    for uuid, on in ((MEASUREMENT, NOTIFY_ON), (RACP, INDICATE_ON), (SOCP, INDICATE_ON)):
        error = await t.write_cccd(uuid, on)
        t.expect_att_error(error, REFUSED, f"unencrypted write of the CCCD of 0x{uuid:04X}")
    now = datetime.datetime.now(datetime.UTC)
    sst = now.year.to_bytes(2, "little") + bytes(
        [now.month, now.day, now.hour, now.minute, now.second, 0, 0]
    )
    error = await t.write(SST, sst)
    t.expect_att_error(error, REFUSED, "unencrypted write of Session Start Time")
    for uuid in (MEASUREMENT, RACP, SOCP):  # no read property: any error will do
        value, _ = await t.read(uuid)
        if value is not None:
            raise t.fail(f"unencrypted read of 0x{uuid:04X} answered {value.hex()}")
    await t.settle(0.3)
    arrived = t.inbox[mark:]
    if arrived:
        first = arrived[0]
        raise t.fail(
            f"{len(arrived)} notifications/indications arrived on the unencrypted link "
            f"(first {first.kind} {first.uuid:04X} {first.value.hex()})"
        )
    return (
        "CCCD writes and the Session Start Time write refused with Insufficient "
        "Authentication/Encryption; values without a read property not readable; nothing sent"
    )


# --- attacks from separate centrals ---------------------------------------------------------


def _refusal(t: Tester, outcome: Outcome, granted: list[str], what: str) -> str:
    """The verdict on a pairing the sensor must refuse: FAIL when it completed or gave access,
    INCONCLUSIVE when refused only for earlier failures or not answered, else PASS."""
    if outcome.kind == "paired" or outcome.encrypted or granted:
        got = "; then " + ", ".join(granted) if granted else "; no CGMS access followed"
        raise t.fail(f"{what}: {outcome.describe()}, link encrypted{got}")
    if outcome.kind == "silent":
        raise t.inconclusive(f"{what}: {outcome.describe()}")
    if outcome.reason == REPEATED_ATTEMPTS and not outcome.responded:
        raise t.inconclusive(
            f"{what}: refused with Repeated Attempts (0x09), for failed pairings before it: "
            "whether it refuses this kind of pairing is untested"
        )
    note = ""
    if outcome.kind == "refused" and outcome.reason not in (
        AUTHENTICATION_REQUIREMENTS,
        PAIRING_NOT_SUPPORTED,
    ):
        note = " (Secure Connections Only mode answers 0x03)"
    return f"{what}: {outcome.describe()}{note}"


@case(
    "CGMSIM/SEN/SEC/BI-04-C",
    "LE legacy pairing is refused",
    "Core Vol 3 Part H 2.3.5.1 (Secure Connections Only mode), 2.3.5.2 (legacy passkey entry "
    "gives no protection against a passive eavesdropper); NIST SP 800-121 Rev. 2 (Secure "
    "Connections Only mode)",
    phase=Phase.ATTACKS,
    timeout_s=60.0,
)
async def legacy_pairing_refused(t: Tester) -> str:
    attacker = _attacker(t)
    if attacker.passkey is not None:
        config = pairing(IO.KEYBOARD_INPUT_ONLY, sc=False, mitm=True, passkey=attacker.passkey)
        what = "legacy passkey entry (SC bit clear) with the right passkey"
    else:
        config = pairing(IO.NO_OUTPUT_NO_INPUT, sc=False, mitm=False)
        what = "legacy Just Works (SC bit clear)"
    async with attacker.central(t, config) as attack:
        outcome = await attack.pair()
        granted = await attack.access() if outcome.encrypted else []
    return _refusal(t, outcome, granted, what)


@case(
    "CGMSIM/SEN/SEC/BI-05-C",
    "Just Works pairing is refused",
    "Core Vol 3 Part H 2.3.5.1 (Secure Connections Only mode: authenticated pairing only), "
    "Table 2.8 (NoInputNoOutput: Just Works, no MITM protection); NIST SP 800-121 Rev. 2",
    phase=Phase.ATTACKS,
    timeout_s=60.0,
)
async def just_works_refused(t: Tester) -> str:
    config = pairing(IO.NO_OUTPUT_NO_INPUT, sc=True, mitm=False)
    async with _attacker(t).central(t, config) as attack:
        outcome = await attack.pair()
        granted = await attack.access() if outcome.encrypted else []
    return _refusal(t, outcome, granted, "Just Works (NoInputNoOutput, SC, no MITM)")


@case(
    "CGMSIM/SEN/SEC/BI-06-C",
    "Just Works that withholds or declines key distribution gets no access",
    "Core Vol 3 Part H 3.6.1 (key distribution), 3.4 (an unfinished pairing has failed); CGMP "
    "§6.1 (the sensor bonds); issue 19 (the attack that stopped a session)",
    phase=Phase.ATTACKS,
    timeout_s=90.0,
)
async def withheld_keys_get_nothing(t: Tester) -> str:
    attacker = _attacker(t)
    attacks = [
        (
            "Just Works, bonding, its keys promised and withheld",
            pairing(IO.NO_OUTPUT_NO_INPUT, sc=True, mitm=False),
            True,
        ),
        (
            "Just Works, no bonding, no keys asked or given",
            pairing(IO.NO_OUTPUT_NO_INPUT, sc=True, mitm=False, bonding=False, keys=NO_KEYS),
            False,
        ),
    ]
    found: list[str] = []
    for what, config, withhold in attacks:
        async with attacker.central(t, config, withhold=withhold) as attack:
            outcome = await attack.pair()
            granted = await attack.access()
        if granted:
            raise t.fail(f"{what}: {outcome.describe()}; then " + ", ".join(granted))
        found.append(f"{what}: {outcome.describe()}, no access")
    return "; ".join(found)


@case(
    "CGMSIM/SEN/SEC/BI-07-C",
    "An idle connection is dropped",
    "CGMP §6.1 (the sensor asks for security on connection); Core Vol 3 Part H 3.4 (the SMP "
    "timer starts with the Security Request; after 30 s no SM procedure may run on that link)",
    phase=Phase.ATTACKS,
    budget=lambda options: options.idle_limit_s,
)
async def idle_connection_dropped(t: Tester) -> str:
    limit = _options(t).idle_limit_s
    loop = asyncio.get_running_loop()
    async with _attacker(t).central(t) as attack:
        connected_at = loop.time()
        await asyncio.wait([attack.gone], timeout=limit + IDLE_GRACE_S)
        if not attack.gone.done():
            raise t.fail(
                f"still connected {limit:g} s after connecting without pairing: a central that "
                "does nothing holds the sensor's link (--idle-limit)"
            )
        held = loop.time() - connected_at
    return (
        f"dropped {held:.1f} s after connecting (HCI reason 0x{attack.gone.result():02X}), "
        f"within {limit:g} s"
    )


def _resolver(keys: PairingKeys | None, identity: Address | None) -> AddressResolver | None:
    if keys is None or keys.irk is None or identity is None:
        return None
    return AddressResolver([(keys.irk.value, identity)])


async def _bond(t: Tester) -> tuple[Address | None, PairingKeys | None]:
    """The sensor's identity address and the keys the tester got when it bonded (main link)."""
    keystore = t.device.keystore
    if not t.paired or keystore is None:
        return None, None
    bonds = await keystore.get_all()
    peer = str(t.connection.peer_address)
    for name, keys in bonds:
        if name == peer or len(bonds) == 1:
            return Address(name), keys
    return None, None


def _first_address(t: Tester) -> Address:
    sightings = _attacker(t).sightings
    if not sightings:
        raise t.inconclusive("the tester never connected to the sensor: no address seen")
    return sightings[0].address


def _kind(address: Address) -> str:
    if address.is_public:
        return "its public address"
    if address.is_static:
        return "a random static address"
    if address.is_resolvable:
        return "a resolvable private address"
    return "a non-resolvable private address"


@case(
    "CGMSIM/SEN/SEC/BV-04-C",
    "The sensor advertises from a resolvable private address",
    "Core Vol 3 Part C 10.7 (privacy), Vol 6 Part B 1.3.2.2 (resolvable private address)",
    phase=Phase.ATTACKS,
)
async def private_address(t: Tester) -> str:
    address = _first_address(t)
    t.log(f"the sensor's address on the air: {address} ({_kind(address)})")
    if address.is_public or address.is_static:
        raise t.fail(
            f"it advertises and connects from {_kind(address)}, {address}: the same wherever "
            "the wearer goes, so anyone listening can follow them"
        )
    if not address.is_resolvable:
        raise t.inconclusive(
            f"{address} is a non-resolvable private address: private, but no bonded collector "
            "can recognise it; the privacy cases expect a resolvable one"
        )
    return f"{address} is {_kind(address)}"


@case(
    "CGMSIM/SEN/SEC/BV-05-C",
    "A bonded collector resolves the sensor's address with the IRK distributed at bonding",
    "Core Vol 3 Part H 3.6.4 (Identity Information), 2.4.2.1 (the IRK); Vol 3 Part C 10.7 (an "
    "all-zero IRK resolves for anyone)",
    phase=Phase.ATTACKS,
)
async def irk_resolves(t: Tester) -> str:
    address = _first_address(t)
    if not address.is_resolvable:
        raise t.not_applicable(f"the sensor uses {_kind(address)}, {address} (see SEC/BV-04-C)")
    identity, keys = await _bond(t)
    if keys is None or identity is None:
        raise t.inconclusive("the tester did not bond with the sensor (SEC/BV-03-C)")
    if keys.irk is None:
        raise t.fail(
            "bonding distributed no IRK (Identity Information): a bonded collector cannot tell "
            "that the sensor's next private address is the sensor's"
        )
    if not any(keys.irk.value):
        raise t.fail(
            "the IRK distributed at bonding is all zeros: anyone can resolve the sensor's "
            "private addresses, which makes them as trackable as a fixed one"
        )
    resolver = _resolver(keys, identity)
    assert resolver is not None
    seen = [s.address for s in _attacker(t).sightings if s.address.is_resolvable]
    wrong = [a for a in seen if resolver.resolve(a) is None]
    if wrong:
        raise t.fail(f"the IRK from bonding does not resolve {wrong[0]} to {identity}")
    t.log(f"identity {identity}; resolved {', '.join(str(a) for a in seen)}")
    return f"the IRK from bonding resolves {len(seen)} address(es) seen to the identity {identity}"


async def _watch(
    t: Tester, same: AddressResolver, identity: Address, seen: set[Any], until: float
) -> Address | None:
    """Listen until ``until`` (loop time; at least one ``SCAN_S`` burst) for an advertisement
    from an address not in ``seen`` that resolves to ``identity``: bursts of ``SCAN_S`` every
    ``WATCH_EVERY_S``, since a new address stays for minutes."""
    device = t.device
    loop = asyncio.get_running_loop()
    found: asyncio.Future[Address] = loop.create_future()

    def advertisement(adv: Any) -> None:
        address = adv.address
        if address in seen or found.done() or not address.is_resolvable:
            return
        if same.resolve(address) == identity:
            found.set_result(address)

    device.on(device.EVENT_ADVERTISEMENT, advertisement)
    try:
        while True:
            await device.start_scanning(filter_duplicates=False)
            try:
                await asyncio.wait([found], timeout=SCAN_S)
            finally:
                await device.stop_scanning()
            left = until - loop.time()
            if found.done() or left <= 0:
                break
            await asyncio.wait([found], timeout=min(WATCH_EVERY_S, left))
    finally:
        device.remove_listener(device.EVENT_ADVERTISEMENT, advertisement)
    return found.result() if found.done() else None


@case(
    "CGMSIM/SEN/SEC/BV-06-C",
    "The sensor's private address changes",
    "Core Vol 3 Part C Appendix A (TGAP(private_addr_int): 15 min recommended), 10.7 (privacy)",
    phase=Phase.ATTACKS,
    order=30,
    budget=lambda options: options.privacy_wait_s,
)
async def address_changes(t: Tester) -> str:
    attacker = _attacker(t)
    first = attacker.sightings[0] if attacker.sightings else None
    if first is None:
        raise t.inconclusive("the tester never connected to the sensor: no address seen")
    if not first.address.is_resolvable:
        raise t.not_applicable(
            f"the sensor uses {_kind(first.address)}, {first.address} (see SEC/BV-04-C)"
        )
    identity, keys = await _bond(t)
    resolver = _resolver(keys, identity)
    if resolver is None or identity is None:
        raise t.inconclusive(
            "no IRK from bonding: a later address cannot be told from another device's"
        )
    loop = asyncio.get_running_loop()
    later = [
        s
        for s in attacker.sightings
        if s.address != first.address and resolver.resolve(s.address) == identity
    ]
    if not later:
        await attacker.release(t)
        seen = {s.address for s in attacker.sightings}
        until = first.at + _options(t).privacy_wait_s
        t.log(f"watching for a new address up to {until - first.at:.0f} s after {first.address}")
        address = await _watch(t, resolver, identity, seen, until)
        if address is not None:
            attacker.saw_address(address)
            later = [attacker.sightings[-1]]
    if later:
        after = later[0].at - first.at
        return (
            f"{first.address} when first seen, {later[0].address} (the same identity) when "
            f"looked at {after:.0f} s later"
        )
    waited = loop.time() - first.at
    if waited >= UNCHANGED_FAIL_S:
        raise t.fail(
            f"still {first.address} {waited / 60:.0f} min after it was first seen: longer than "
            "the 15 min TGAP(private_addr_int) recommends, so the wearer can be followed"
        )
    raise t.inconclusive(
        f"{first.address} unchanged after {waited:.0f} s; the Core recommends a new address "
        f"every 15 min (--privacy-wait {UNCHANGED_FAIL_S:.0f} waits for it)"
    )


# --- passkey guessing -----------------------------------------------------------------------


def _projected_s(waits: list[float]) -> tuple[float, float]:
    """(growth, seconds) the 20 guesses take if the waits go on growing as measured (the
    geometric mean of the ratios), from the measured ones on."""
    growth = (waits[-1] / waits[0]) ** (1 / (len(waits) - 1)) if waits[0] > 0 else 1e9
    total, wait = sum(waits), waits[-1]
    for _ in range(PASSKEY_BITS - 1 - len(waits)):
        wait *= growth
        total += wait
        if total > 1e12:
            break
    return growth, total


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s"


@case(
    "CGMSIM/SEN/SEC/BI-08-C",
    "Wrong passkeys meet Repeated Attempts: guessing the passkey takes hours",
    "Core Vol 3 Part H 2.3.6 (Repeated Attempts: a waiting interval after each failure, "
    "increasing exponentially), 2.3.5.6.3 (a fixed passkey leaks a bit per failed attempt)",
    phase=Phase.ATTACKS,
    order=20,
    timeout_s=60.0,
    budget=lambda options: options.guesses * (options.guess_wait_s + 15.0),
)
async def passkey_guessing(t: Tester) -> str:
    attacker, options = _attacker(t), _options(t)
    if options.guesses < 3:
        raise t.inconclusive("needs --guesses 3 or more to see whether the waits grow")
    loop = asyncio.get_running_loop()
    base = attacker.passkey if attacker.passkey is not None else secrets.randbelow(1_000_000)
    tries = 0

    async def guess() -> Outcome:
        nonlocal tries
        tries += 1
        wrong = (base + tries * 7919) % 1_000_000  # never the passkey itself
        config = pairing(IO.KEYBOARD_INPUT_ONLY, sc=True, mitm=True, passkey=wrong)
        outcome = await attacker.attempt(t, config)
        if outcome.kind == "paired":
            raise t.fail(f"the wrong passkey {wrong:06d} paired: the passkey protects nothing")
        return outcome

    accepted: list[Outcome] = []
    waits: list[float] = []
    refusals: list[str] = []
    capped = False
    while len(accepted) < options.guesses:
        since = accepted[-1].ended_at if accepted else loop.time()
        at_once = True
        while True:
            outcome = await guess()
            if outcome.responded:
                break
            if accepted and at_once:
                refusals.append(outcome.describe())
            at_once = False
            if loop.time() - since > options.guess_wait_s:
                capped = True
                break
            await asyncio.sleep(POLL_S)
        if capped:
            break
        if accepted:
            if at_once:
                raise t.fail(
                    f"no waiting interval: right after wrong passkey {len(accepted)} failed, a "
                    f"new attempt from another address was accepted ({outcome.describe()})"
                )
            waits.append(outcome.sent_at - since)
        accepted.append(outcome)
    if not capped:
        outcome = await guess()  # at once after the last: must be refused too
        if outcome.responded:
            raise t.fail(
                f"no waiting interval after wrong passkey {len(accepted)}: the next attempt "
                f"was accepted at once ({outcome.describe()})"
            )
        refusals.append(outcome.describe())
    if not accepted:
        raise t.inconclusive(
            f"no pairing attempt accepted in {options.guess_wait_s:g} s ({tries} refused): "
            "nothing to measure"
        )
    seen = (
        f"{len(accepted)} wrong passkeys accepted, "
        + (" then ".join(f"{w:.1f} s" for w in waits) + " apart" if waits else "one")
        + f" (a retry at once: {refusals[0] if refusals else 'not tried'})"
    )
    if capped:
        # no acceptance within the wait: every later wait is at least as long
        least = sum(waits) + (PASSKEY_BITS - 1 - len(waits)) * options.guess_wait_s
        if least >= MIN_GUESSING_S:
            return f"{seen}; then refused for over {options.guess_wait_s:g} s: 20 guesses take " + (
                f"at least {_duration(least)}"
            )
        raise t.inconclusive(
            f"{seen}; then refused for over {options.guess_wait_s:g} s: whether 20 guesses take "
            "an hour is unknown (a longer --guess-wait measures it)"
        )
    growth, total = _projected_s(waits)
    projected = (
        f"growing x{growth:.2f}, the {PASSKEY_BITS} guesses that give the passkey away would take "
        f"{_duration(total)}, {PASSKEY_BITS / total * 60:.2g} a minute on average"
    )
    t.log(f"guessing: {seen}; {projected}")
    if total < MIN_GUESSING_S:
        raise t.fail(
            f"{seen}; {projected}: faster than {PASSKEY_BITS / MIN_GUESSING_S * 60:.2g} a minute"
            f" ({PASSKEY_BITS} in {_duration(MIN_GUESSING_S)})"
        )
    return f"{seen}; {projected}"
