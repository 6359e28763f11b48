"""The collector cases for every other RACP response code to Report Stored Records (issue 13):
after an outage the collector's report is answered with the code instead of the records, and it
must go on — write RACP again or drop the link — and still get every record made meanwhile
(``collector_cases.answered_with``, as ``CGMSIM/COL/RAE/BI-01-C`` does for Procedure Not
Completed). Abort Unsuccessful (0x07) answers only an Abort Operation, which a collector writes
only to end its own report; it is not scripted here. And a count left unanswered, as
``CGMSIM/COL/RAE/BI-03-C`` leaves a report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from protocol.cgms.racp import RacpResponseCode as Code
from sim.conformance.collector_cases import (
    PROCEDURE_TIMEOUT_S,
    RACP,
    RECOVERY_S,
    TIMEOUT_SPEC,
    TIMEOUT_TOLERANCE_S,
    _backfilled,
    _recovery,
    answered_with,
    case,
)
from sim.conformance.collector_script import Script
from sim.conformance.registry import Inconclusive, NotApplicable
from sim.conformance.scripted_sensor import REPORT_NUMBER, AirEvent

CODE_CASES = (  # (id, response code, what the sensor says by it)
    ("CGMSIM/COL/RAE/BI-04-C", Code.OP_CODE_NOT_SUPPORTED, "it does not know the op code"),
    ("CGMSIM/COL/RAE/BI-05-C", Code.INVALID_OPERATOR, "the operator is invalid"),
    ("CGMSIM/COL/RAE/BI-06-C", Code.OPERATOR_NOT_SUPPORTED, "it does not support the operator"),
    ("CGMSIM/COL/RAE/BI-07-C", Code.INVALID_OPERAND, "the operand is invalid"),
    ("CGMSIM/COL/RAE/BI-08-C", Code.NO_RECORDS_FOUND, "no record matches (though some do)"),
    ("CGMSIM/COL/RAE/BI-09-C", Code.OPERAND_NOT_SUPPORTED, "it does not support the operand"),
)


def _answered(code: int) -> Callable[[Script], Awaitable[str]]:
    async def run(script: Script) -> str:
        return await answered_with(script, code)

    return run


for _id, _code, _says in CODE_CASES:
    _name = _code.name.replace("_", " ").title()
    case(
        _id,
        f"RACP '{_name}' (0x{_code:02X}) to a report: the collector goes on and gets the records",
        f"CGMS §3.6.3.6 (response code 0x{_code:02X}: {_says}); CGMP §4 (the collector "
        "retrieves the stored records it missed)",
        outage=True,
    )(_answered(_code))


@case(
    "CGMSIM/COL/RAE/BI-10-C",
    "No answer to Report Number of Stored Records: the collector times out after 30 s and recovers",
    f"{TIMEOUT_SPEC}; CGMP §4 (the collector retrieves the stored records)",
    timeout_s=300.0,
    outage=True,
)
async def count_times_out(script: Script) -> str:
    """After an outage the report is answered No Records Found (though records match), which
    leaves the collector short of what it missed; the count it then asks for is accepted and
    never answered."""
    mark = await script.outage()
    sensor = script.sensor
    sensor.racp_script.extend([("code", Code.NO_RECORDS_FOUND), ("silent-count", None)])

    def scripted(opcode: int | None) -> AirEvent | None:
        for e in sensor.events[mark:]:
            ours = e.kind == "write" and e.uuid == RACP and e.detail.get("scripted")
            if ours and (opcode is None or e.value[:1] == bytes([opcode])):
                return e
        return None

    wait = script.options.connect_wait_s + script.options.step_s
    count = await script.until(lambda: scripted(REPORT_NUMBER), wait + RECOVERY_S)
    if count is None:
        reported = scripted(None)
        sensor.racp_script.clear()
        if reported is None:
            raise Inconclusive("no RACP report after the reconnection to answer")
        raise NotApplicable(
            f"after {reported.value.hex()} was answered No Records Found the collector asked "
            "for no count (Report Number of Stored Records)"
        )
    how = await _recovery(script, count, at_least_s=PROCEDURE_TIMEOUT_S - TIMEOUT_TOLERANCE_S)
    got = await _backfilled(script, mark, script.missed, RECOVERY_S + script.options.connect_wait_s)
    return f"{count.value.hex()} never answered; {how}; {got}"
