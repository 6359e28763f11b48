"""The collector-role suite: every collector case module, registered, in running order (the
rogue-sensor cases last: each leaves the sensor rogue)."""

from __future__ import annotations

from sim.conformance import collector_cases, collector_codes, collector_rogue
from sim.conformance.registry import Case

CASE_MODULES = (
    collector_cases,
    collector_codes,
    collector_rogue,
)  # importing them registers, in this order


def collector_suite() -> list[Case]:
    """Every collector-role case in running order."""
    return list(collector_cases.COLLECTOR_CASES)
