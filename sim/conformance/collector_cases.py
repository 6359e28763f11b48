"""The collector-role cases: cgmsim plays the sensor (``scripted_sensor``) and judges what the
collector under test does on the air.

The SIG's collector cases are in the CGM Profile test suite (CGMP.TS), which is not public and
could not be found in the tool library, so the ids are ours: ``CGMSIM/COL/<group>/<BV|BI>-nn-C``,
each resting on the section of the service (CGMS), profile (CGMP) or Core specification named
in ``spec``. The cases run in order, as one script: each starts where the previous one left the
collector (connected, paired, subscribed), and the later ones first make the sensor go away for
a while (``Script.outage``: the link dropped, readings made meanwhile, advertising again).

A case is ``async def(script) -> str`` raising ``CaseFailed`` / ``Inconclusive`` /
``NotApplicable``, as the sensor role's; its verdict comes only from ``script.sensor.events``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bumble.gatt import GATT_CHARACTERISTIC_ATTRIBUTE_TYPE, GATT_PRIMARY_SERVICE_ATTRIBUTE_TYPE

from protocol.cgms import gatt
from protocol.cgms.racp import RacpResponseCode
from sim.conformance import wire
from sim.conformance.registry import Case, CaseFailed, Inconclusive, NotApplicable, Phase
from sim.conformance.scripted_sensor import BONDING, SC, AirEvent

if TYPE_CHECKING:
    from sim.conformance.collector_script import Script

MEASUREMENT, RACP, SOCP = gatt.MEASUREMENT.uuid, gatt.RACP.uuid, gatt.SOCP.uuid
FEATURE, STATUS, SST = gatt.FEATURE.uuid, gatt.STATUS.uuid, gatt.SESSION_START_TIME.uuid
PROCEDURE_TIMEOUT_S = 30.0  # CGMS §3.6 / Core Vol 3 Part F 3.3.3: a procedure times out
TIMEOUT_TOLERANCE_S = 3.0  # the collector's clock and ours
RECOVERY_S = 60.0  # after an error answer, the collector asks again within this
TIMEOUT_SPEC = (
    "CGMS §3.6 (a RACP procedure times out after 30 s without progress); Core Vol 3 Part F "
    "3.3.3 (the 30 s transaction timeout)"
)

COLLECTOR_CASES: list[Case] = []


def _outage_budget(options: Any) -> float:
    """The time an outage takes: readings made at the sensor's speed, then reconnecting."""
    return options.outage_s + options.connect_wait_s


def case(
    id: str, title: str, spec: str, timeout_s: float = 120.0, outage: bool = False
) -> Callable[[Any], Any]:
    """Register a collector case; ``outage``: it starts with one (its timeout grows by it)."""

    def register(run: Callable[[Script], Awaitable[str]]) -> Any:
        if any(known.id == id for known in COLLECTOR_CASES):
            raise ValueError(f"case {id} registered twice")
        budget = _outage_budget if outage else None
        COLLECTOR_CASES.append(
            Case(id, title, spec, run, timeout_s=timeout_s, phase=Phase.PAIRED, budget=budget)
        )
        return run

    return register


# --- helpers ---------------------------------------------------------------------------------


def _is_report(event: AirEvent) -> bool:
    return event.kind == "write" and event.uuid == RACP and event.value[:1] == b"\x01"


def _delivered(script: Script, after: int) -> set[int]:
    """Time offsets of the records notified since event index ``after``."""
    e2e = script.sensor.core.config.e2e_crc
    found: set[int] = set()
    for event in script.sensor.events[after:]:
        if event.kind == "notify" and event.uuid == MEASUREMENT:
            try:
                found.update(r.time_offset for r in wire.records(event.value, e2e))
            except ValueError:
                continue
    return found


async def _backfilled(script: Script, after: int, missed: list[int], within_s: float) -> str:
    """Wait until every record in ``missed`` was notified after event ``after``; say which
    Report Stored Records requests brought them."""
    if not missed:
        raise Inconclusive("the sensor made no readings while the link was down")

    def done() -> bool:
        return set(missed) <= _delivered(script, after)

    if not await script.until(done, within_s):
        got = sorted(set(missed) & _delivered(script, after))
        raise CaseFailed(
            f"of the {len(missed)} records made while the link was down (offsets {missed[0]}.."
            f"{missed[-1]} min) the collector got {len(got)} in {within_s:g} s"
        )
    reports = [e.value.hex() for e in script.sensor.events[after:] if _is_report(e)]
    return (
        f"all {len(missed)} records made while the link was down (offsets {missed[0]}.."
        f"{missed[-1]} min) retrieved with RACP {', '.join(reports) or '(no report?)'}"
    )


def _on_link(script: Script, link: int, kind: str, uuid: int | None = None) -> list[AirEvent]:
    return [
        e
        for e in script.sensor.events
        if e.link == link and e.kind == kind and (uuid is None or e.uuid == uuid)
    ]


# --- first connection ------------------------------------------------------------------------


@case(
    "CGMSIM/COL/SD/BV-01-C",
    "Discovers the CGM service and its characteristics",
    "CGMP §5.2 (the collector discovers the CGM service); Core Vol 3 Part G 4.4 (primary "
    "service discovery), 4.6 (characteristic discovery)",
)
async def discovers(script: Script) -> str:
    connected = await script.until_event("connected", script.options.connect_wait_s)
    if connected is None:
        raise CaseFailed(f"no collector connected in {script.options.connect_wait_s:g} s")
    script.link = connected.link
    first, last = script.sensor_handles()

    def service() -> AirEvent | None:
        for e in _on_link(script, script.link, "att"):
            pdu = e.detail["pdu"]
            if pdu == "ATT_READ_BY_GROUP_TYPE_REQUEST" and (
                e.detail.get("attribute_group_type") == GATT_PRIMARY_SERVICE_ATTRIBUTE_TYPE
            ):
                return e
            if pdu == "ATT_FIND_BY_TYPE_VALUE_REQUEST" and bytes(
                e.detail.get("attribute_value", b"")
            ) == gatt.CGM_SERVICE.to_bytes(2, "little"):
                return e
        return None

    def characteristics() -> AirEvent | None:
        for e in _on_link(script, script.link, "att"):
            if (
                e.detail["pdu"] == "ATT_READ_BY_TYPE_REQUEST"
                and e.detail.get("attribute_type") == GATT_CHARACTERISTIC_ATTRIBUTE_TYPE
                and e.detail["starting_handle"] <= first <= e.detail["ending_handle"]
            ):
                return e
        return None

    found = await script.until(service, script.options.step_s)
    if found is None:
        raise CaseFailed(
            "no primary service discovery (Read By Group Type 0x2800 or Find By "
            "Type Value 0x181F) on the first link"
        )
    chars = await script.until(characteristics, script.options.step_s)
    if chars is None:
        raise CaseFailed(
            f"no characteristic discovery (Read By Type 0x2803) over the CGM "
            f"service's handles 0x{first:04X}-0x{last:04X}"
        )
    return (
        f"{found.detail['pdu'].removeprefix('ATT_').lower()} then read_by_type 0x2803 over "
        f"0x{chars.detail['starting_handle']:04X}-0x{chars.detail['ending_handle']:04X}"
    )


@case(
    "CGMSIM/COL/SEC/BV-01-C",
    "Pairs and bonds with authenticated LE Secure Connections",
    "CGMP §5.2.2, §6.1 (the collector bonds; LE Security Mode 1); Core Vol 3 Part H 2.3.5.1 "
    "(SC passkey entry: authenticated)",
)
async def pairs(script: Script) -> str:
    def outcome() -> AirEvent | None:
        for e in script.sensor.events:
            if e.kind in ("paired", "pairing-failed"):
                return e
        return None

    done = await script.until(outcome, script.options.connect_wait_s)
    if done is None:
        raise CaseFailed(f"no pairing in {script.options.connect_wait_s:g} s")
    if done.kind == "pairing-failed":
        raise CaseFailed(f"pairing failed: {done.detail.get('reason')}")
    script.link = done.link
    script.identity = done.detail.get("identity")
    requests = [e for e in _on_link(script, done.link, "smp") if "auth" in e.detail]
    auth = requests[-1].detail["auth"] if requests else None
    if auth is not None and not auth & BONDING:
        raise CaseFailed(f"the Pairing Request did not ask to bond (AuthReq 0x{auth:02X})")
    if auth is not None and not auth & SC:
        raise CaseFailed(f"the Pairing Request did not ask for Secure Connections (0x{auth:02X})")
    if not done.detail.get("authenticated"):
        raise CaseFailed("the keys are not authenticated (Just Works, no MITM protection)")
    how = f"AuthReq 0x{auth:02X}" if auth is not None else "pairing started by the sensor"
    return f"paired with passkey entry, LE Secure Connections, bonding ({how})"


@case(
    "CGMSIM/COL/CR/BV-01-C",
    "Reads CGM Feature before using the service",
    "CGMS §3.2 (the features tell how to read the values: E2E-CRC, trend, quality); CGMP §4",
)
async def reads_feature(script: Script) -> str:
    def feature_read() -> AirEvent | None:
        for e in _on_link(script, script.link, "read", FEATURE):
            if e.error is None:
                return e
        return None

    read = await script.until(feature_read, script.options.step_s)
    if read is None:
        raise CaseFailed(f"CGM Feature not read on the paired link in {script.options.step_s:g} s")
    events = script.sensor.events
    before = events[: events.index(read)]
    used = [
        e
        for e in before
        if e.link == script.link and e.kind in ("subscribe", "write") and e.error is None
    ]
    if used:
        raise CaseFailed(f"{used[0].frame()} came before CGM Feature was read")
    return f"read CGM Feature ({read.value.hex()}) before any other use of the service"


def _subscribes(uuid: int, bit: int, what: str) -> Callable[[Script], Awaitable[str]]:
    async def run(script: Script) -> str:
        def written() -> AirEvent | None:
            for e in _on_link(script, script.link, "subscribe", uuid):
                return e
            return None

        cccd = await script.until(written, script.options.step_s)
        if cccd is None:
            raise CaseFailed(f"the {what} CCCD was not written in {script.options.step_s:g} s")
        if cccd.error is not None:
            raise CaseFailed(f"{cccd.frame()}")
        if not cccd.value[0] & bit:
            raise CaseFailed(f"{cccd.frame()}: {what} not enabled")
        return cccd.frame().split(" ", 1)[1]

    return run


case(
    "CGMSIM/COL/CON/BV-01-C",
    "Enables CGM Measurement notifications",
    "CGMS §3.1 (CGM Measurement: notify); CGMS §3.6.3.6 (a report needs them: ATT 0xFD)",
)(_subscribes(MEASUREMENT, 0x01, "notifications"))
case(
    "CGMSIM/COL/CON/BV-02-C",
    "Enables Record Access Control Point indications",
    "CGMS §3.6, §3.8.2 (a RACP write with indications off: ATT 0xFD)",
)(_subscribes(RACP, 0x02, "indications"))


@case(
    "CGMSIM/COL/CON/BV-03-C",
    "Enables CGM Specific Ops Control Point indications before using it",
    "CGMS §3.7, §3.8.2 (a SOCP write with indications off: ATT 0xFD)",
)
async def subscribes_socp(script: Script) -> str:
    def settled() -> bool:  # subscribed, or moved on to the records without
        link = script.link
        return bool(_on_link(script, link, "subscribe", SOCP)) or any(
            e.uuid in (RACP, SST) for e in _on_link(script, link, "write")
        )

    await script.until(settled, script.options.step_s)
    cccds = _on_link(script, script.link, "subscribe", SOCP)
    if not cccds:
        if _on_link(script, script.link, "write", SOCP):
            raise CaseFailed("wrote the SOCP without enabling its indications")
        raise NotApplicable("the collector does not use the SOCP (no CCCD write, no SOCP write)")
    if cccds[0].error is not None or not cccds[0].value[0] & 0x02:
        raise CaseFailed(cccds[0].frame())
    return cccds[0].frame().split(" ", 1)[1]


@case(
    "CGMSIM/COL/SST/BV-01-C",
    "Writes Session Start Time when the sensor asks for time synchronization",
    "CGMS §3.4.1 (the collector writes its current time), §3.3 (Cal/Temp bit 8: time "
    "synchronization required); CGMP §4.7",
)
async def writes_start_time(script: Script) -> str:
    def status() -> AirEvent | None:
        for e in _on_link(script, script.link, "read", STATUS):
            if e.error is None:
                return e
        return None

    def written() -> AirEvent | None:
        return next(iter(_on_link(script, script.link, "write", SST)), None)

    write = await script.until(written, script.options.step_s)
    read = status()
    if write is None:
        if read is None or len(read.value) < 4 or not read.value[3] & 0x01:
            raise Inconclusive("the collector did not read CGM Status saying time sync required")
        raise CaseFailed(
            f"CGM Status said time sync required ({read.value.hex()}), and no "
            f"Session Start Time written in {script.options.step_s:g} s"
        )
    if write.error is not None:
        raise CaseFailed(write.frame())
    year = int.from_bytes(write.value[:2], "little") if len(write.value) >= 2 else 0
    if year == 0:
        raise CaseFailed(f"{write.frame()}: year 0 (unknown), not the collector's time")
    return f"wrote {write.value.hex()} (year {year})"


# --- after the sensor went away --------------------------------------------------------------


@case(
    "CGMSIM/COL/SEC/BV-02-C",
    "Reconnects and re-encrypts with the bond, without pairing again",
    "CGMP §5.2.2, §6.1 (a bonded collector encrypts with the stored keys on each connection)",
    outage=True,
)
async def reencrypts(script: Script) -> str:
    mark = await script.outage()
    found = await script.until_event("encrypted", script.options.connect_wait_s, after=mark)
    if found is None:
        raise CaseFailed(
            f"no encrypted link within {script.options.connect_wait_s:g} s of the "
            "sensor advertising again"
        )
    script.link = found.link
    paired = _on_link(script, found.link, "paired")
    if paired or not found.detail.get("bond"):
        raise CaseFailed("paired again instead of encrypting with the bond")
    if not found.detail.get("secure"):
        raise CaseFailed("the link is not encrypted with the authenticated bond")
    return f"link #{found.link} encrypted with the bond, no pairing"


@case(
    "CGMSIM/COL/RAR/BV-01-C",
    "Backfills with RACP after a reconnection: every record made meanwhile",
    "CGMS §3.6.3.1 (Report Stored Records); CGMP §4 (the collector retrieves the stored "
    "records it missed)",
)
async def backfills(script: Script) -> str:
    if script.outage_mark is None:
        raise Inconclusive("the reconnection case did not run")
    return await _backfilled(
        script, script.outage_mark, script.missed, script.options.connect_wait_s
    )


async def _answered(script: Script, how: str, code: int | None) -> tuple[int, AirEvent]:
    """An outage, the next RACP request (a report, or for ``att`` any) answered as ``how``
    says; returns the outage's event mark and the answered write."""
    mark = await script.outage()
    script.sensor.racp_script.append((how, code))

    def answered() -> AirEvent | None:
        for e in script.sensor.events[mark:]:
            if e.kind == "write" and e.uuid == RACP and e.detail.get("scripted"):
                return e
        return None

    write = await script.until(answered, script.options.connect_wait_s + script.options.step_s)
    if write is None:
        script.sensor.racp_script.clear()
        raise CaseFailed("no RACP request after the reconnection")
    return mark, write


def _after(script: Script, event: AirEvent) -> int:
    return script.sensor.events.index(event)


@case(
    "CGMSIM/COL/RAE/BI-01-C",
    "RACP 'Procedure Not Completed': the collector goes on and asks again",
    "CGMS §3.6.3.6 (response code 0x08); CGMP §4 (the collector retrieves the stored records)",
    outage=True,
)
async def not_completed(script: Script) -> str:
    return await answered_with(script, RacpResponseCode.PROCEDURE_NOT_COMPLETED)


async def answered_with(script: Script, code: int) -> str:
    """After an outage, the collector's report answered with response ``code``: it must go
    on (write RACP again or drop the link) and still get every record made meanwhile."""
    mark, write = await _answered(script, "code", code)
    how = await _recovery(script, write)
    got = await _backfilled(script, mark, script.missed, RECOVERY_S + script.options.connect_wait_s)
    return f"{write.value.hex()} answered 06 00 01 {code:02x}; {how}; {got}"


@case(
    "CGMSIM/COL/RAE/BI-02-C",
    "RACP write refused 'Procedure Already In Progress' (ATT 0xFE): it waits and retries",
    "CGMS §3.6.3.6 (ATT 0xFE); shared/spec/cgms.md collector procedure (on 0xFE, wait, retry)",
    outage=True,
)
async def busy(script: Script) -> str:
    mark, write = await _answered(script, "att", wire.PROCEDURE_ALREADY_IN_PROGRESS)
    how = await _recovery(script, write)
    got = await _backfilled(script, mark, script.missed, RECOVERY_S + script.options.connect_wait_s)
    return f"{write.value.hex()} refused with 0xFE; {how}; {got}"


@case(
    "CGMSIM/COL/RAE/BI-03-C",
    "No answer to Report Stored Records: the collector times out after 30 s and recovers",
    TIMEOUT_SPEC,
    timeout_s=240.0,
    outage=True,
)
async def times_out(script: Script) -> str:
    mark, write = await _answered(script, "silent", None)
    how = await _recovery(script, write, at_least_s=PROCEDURE_TIMEOUT_S - TIMEOUT_TOLERANCE_S)
    got = await _backfilled(script, mark, script.missed, RECOVERY_S + script.options.connect_wait_s)
    return f"{write.value.hex()} never answered; {how}; {got}"


async def _recovery(script: Script, write: AirEvent, at_least_s: float = 0.0) -> str:
    """How the collector went on after ``write`` was answered wrongly: it dropped the link or
    wrote RACP again; FAIL when it did neither within ``RECOVERY_S`` (30 s more than the
    procedure timeout), or before ``at_least_s``."""
    index = _after(script, write)

    def next_move() -> AirEvent | None:
        for e in script.sensor.events[index + 1 :]:
            if e.kind == "disconnected" or (e.kind == "write" and e.uuid == RACP):
                return e
        return None

    limit = max(at_least_s, 0) + RECOVERY_S
    move = await script.until(next_move, limit)
    if move is None:
        raise CaseFailed(
            f"the collector neither wrote RACP again nor dropped the link in {limit:g} s: it hangs"
        )
    waited = move.t - write.t
    if waited < at_least_s:
        raise CaseFailed(
            f"gave up after {waited:.1f} s, before the {PROCEDURE_TIMEOUT_S:g} s "
            f"a sensor has to answer"
        )
    if move.kind == "disconnected":
        return f"dropped the link after {waited:.1f} s"
    return f"wrote RACP {move.value.hex()} after {waited:.1f} s"


@case(
    "CGMSIM/COL/SEC/BV-03-C",
    "The sensor lost the bond: the collector pairs again and rewrites its CCCDs",
    "Core Vol 3 Part G 3.3.3.3 (CCCD values are kept only for bonded clients); CGMP §6.1 "
    "(the collector bonds)",
    timeout_s=180.0,
    outage=True,
)
async def lost_bond(script: Script) -> str:
    if script.identity is None:
        raise Inconclusive("the collector never bonded")
    before = {e.uuid for e in script.sensor.events if e.kind == "subscribe" and e.error is None} & {
        MEASUREMENT,
        RACP,
        SOCP,
    }
    mark = await script.outage(forget=True, readings=0)
    paired = await script.until_event("paired", script.options.connect_wait_s, after=mark)
    if paired is None:
        failures = [e for e in script.sensor.events[mark:] if e.kind == "pairing-failed"]
        why = f" ({failures[-1].detail.get('reason')})" if failures else ""
        raise CaseFailed(
            f"did not pair again in {script.options.connect_wait_s:g} s after the sensor lost "
            f"the bond{why}"
        )
    if not paired.detail.get("authenticated"):
        raise CaseFailed("paired again without authentication (Just Works)")
    index = _after(script, paired)

    def rewritten() -> bool:
        return before <= {
            e.uuid
            for e in script.sensor.events[index:]
            if e.kind == "subscribe" and e.error is None and e.link == paired.link
        }

    if not await script.until(rewritten, script.options.step_s):
        raise CaseFailed(
            f"after pairing again, not every CCCD it had written before "
            f"({', '.join(f'{u:04X}' for u in sorted(before))}) was written again"
        )
    return (
        f"paired again on link #{paired.link} and wrote the CCCDs of "
        f"{', '.join(f'{u:04X}' for u in sorted(before))} again"
    )
