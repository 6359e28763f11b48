"""The collector cases for every other RACP response code to Report Stored Records (issue 13):
after an outage the collector's report is answered with the code instead of the records, and it
must go on — write RACP again or drop the link — and still get every record made meanwhile
(``collector_cases.answered_with``, as ``CGMSIM/COL/RAE/BI-01-C`` does for Procedure Not
Completed). Abort Unsuccessful (0x07) answers only an Abort Operation, which a collector writes
only to end its own report; it is not scripted here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from protocol.cgms.racp import RacpResponseCode as Code
from sim.conformance.collector_cases import answered_with, case
from sim.conformance.collector_script import Script

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
