"""The collector-role security cases: cgmsim turns into a rogue sensor (``ScriptedSensor.
go_rogue``) and judges whether the collector under test trusts it (issue 19).

Each case is one attack by a device within radio range that poses as the sensor: it advertises
the CGM service from the sensor's address knowing no bond (so a bonded collector finds its
stored keys useless, as after a sensor reset, and a new collector meets it as its first
sensor), and offers weak security of one kind. The collector must not use it: no subscription,
no Session Start Time, no RACP or SOCP write, and the link ended (by a Pairing Failed, a
disconnection, or both). What it may do first is find out: discover, read CGM Feature (on the
open sensor, that read is how it learns the sensor is open), pair and look at the keys.

These cases come last: each leaves the sensor rogue, and a collector that stops after refusing
a sensor (``cgmsim receiver`` exits 2) must be started again for the next one (the CI test
does; a phone app goes on scanning by itself). A collector that never connects to a rogue is
INCONCLUSIVE, not PASS: the air does not tell a refusal from a collector that is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sim.conformance.collector_cases import MEASUREMENT, RACP, SOCP, SST, case
from sim.conformance.collector_script import Script
from sim.conformance.registry import CaseFailed, Inconclusive
from sim.conformance.scripted_sensor import AirEvent

_CONTROL = {SST: "Session Start Time", RACP: "RACP", SOCP: "SOCP"}
_CCCD = {MEASUREMENT: "CGM Measurement", RACP: "RACP", SOCP: "SOCP"}


def _use(event: AirEvent) -> str | None:
    """What trusting the rogue ``event`` shows, if it does."""
    if event.error is not None:
        return None
    if event.kind == "subscribe" and event.value[:1] != b"\x00":
        return f"subscribed to {_CCCD.get(event.uuid or 0, f'{event.uuid:04X}')} ({event.frame()})"
    if event.kind == "write" and event.uuid in _CONTROL:
        return f"wrote {_CONTROL[event.uuid]} ({event.frame()})"
    return None


def _moves(script: Script, link: int) -> str:
    """What the collector did on the rogue ``link`` before it ended it."""
    said: list[str] = []
    for e in script.sensor.events:
        if e.link != link:
            continue
        if e.kind == "read" and e.error is None:
            said.append(f"read {e.uuid:04X} in clear" if not _encrypted(script, link, e) else "")
        elif e.kind == "paired":
            how = "authenticated" if e.detail.get("authenticated") else "unauthenticated"
            said.append(f"paired ({how}, {'SC' if e.detail.get('sc') else 'legacy'})")
        elif e.kind == "smp" and e.detail.get("pdu") == "Pairing_Failed_Command":
            said.append(f"sent Pairing Failed 0x{e.detail.get('reason', 0):02X}")
        elif e.kind == "encrypted" and e.detail.get("on"):
            said.append("encrypted")
    return ", ".join(dict.fromkeys(s for s in said if s)) or "nothing"


def _encrypted(script: Script, link: int, before: AirEvent) -> bool:
    events = script.sensor.events
    return any(
        e.link == link and e.kind == "encrypted" and e.detail.get("on")
        for e in events[: events.index(before)]
    )


async def _refuses(script: Script, kind: str, what: str) -> str:
    mark = await script.outage(readings=0, rogue=kind)
    wait = script.options.connect_wait_s
    connected = await script.until_event("connected", wait, after=mark)
    if connected is None:
        raise Inconclusive(
            f"no collector connected to the {what} in {wait:g} s (one that stops after "
            "refusing a sensor is started again for each rogue case)"
        )
    link = connected.link

    def outcome() -> tuple[AirEvent, str | None] | None:
        for e in script.sensor.events[mark:]:
            if e.link != link:
                continue
            use = _use(e)
            if use is not None or e.kind == "disconnected":
                return e, use
        return None

    # the collector may take a person's time to pair, then a step to decide
    found = await script.until(outcome, wait + script.options.step_s)
    if found is None:
        raise Inconclusive(
            f"the collector kept the link with the {what} {wait + script.options.step_s:g} s "
            f"without using it ({_moves(script, link)}): the air does not tell whether it "
            "kept the keys"
        )
    end, use = found
    if use is not None:
        raise CaseFailed(f"trusted the {what}: {use} after {_moves(script, link)}")
    return (
        f"{_moves(script, link)}, then ended the link after {end.t - connected.t:.1f} s "
        "without subscribing or writing"
    )


ROGUE_CASES = (  # (kind, id, title, what the collector meets, the attack and its spec)
    (
        "just-works",
        "CGMSIM/COL/SEC/BI-01-C",
        "A rogue sensor offering only Just Works is refused",
        "rogue sensor offering only Just Works",
        "Attack: a device posing as the sensor pairs with Just Works, which authenticates "
        "nobody, and feeds glucose the collector would show and alert on. Core Vol 3 Part H "
        "2.3.5.1 (Secure Connections Only mode: authenticated pairing only), Table 2.8 "
        "(NoInputNoOutput: Just Works, no MITM protection); CGMP §5.2.2, §6.1; NIST SP 800-121 "
        "Rev. 2 (Secure Connections Only mode)",
    ),
    (
        "legacy",
        "CGMSIM/COL/SEC/BI-02-C",
        "A rogue sensor offering only LE legacy pairing is refused",
        "rogue sensor offering only LE legacy pairing",
        "Attack: LE legacy passkey pairing, which a passive eavesdropper on the pairing breaks "
        "(the passkey, then the key); a sensor that offers only that is not one to trust. Core "
        "Vol 3 Part H 2.3.5.1 (Secure Connections Only mode), 2.3.5.2 (legacy passkey entry "
        "gives no protection against a passive eavesdropper); NIST SP 800-121 Rev. 2 (Secure "
        "Connections Only mode)",
    ),
    (
        "open",
        "CGMSIM/COL/SEC/BI-03-C",
        "A rogue sensor whose CGM characteristics are open (no encryption) is refused",
        "rogue sensor with open CGM characteristics",
        "Attack: a device posing as the sensor serves readings without any security, so no "
        "pairing stands between the collector and whoever sends them. CGMP §5.2.2, §6.1 (every "
        "CGMS value requires LE security); Core Vol 3 Part C 10.2.1 (Security Mode 1 levels); "
        "NIST SP 800-121 Rev. 2 (Secure Connections Only mode)",
    ),
)


def _refuser(kind: str, what: str) -> Callable[[Script], Awaitable[str]]:
    async def run(script: Script) -> str:
        return await _refuses(script, kind, what)

    return run


for _kind, _id, _title, _what, _spec in ROGUE_CASES:
    case(_id, _title, _spec, timeout_s=150.0, outage=True)(_refuser(_kind, _what))
