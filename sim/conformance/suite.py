"""The sensor-role suite: every case module, registered, in running order."""

from __future__ import annotations

from sim.conformance import cases_gatt, cases_racp, cases_security, cases_socp
from sim.conformance.registry import REGISTRY, Case

CASE_MODULES = (cases_gatt, cases_racp, cases_socp, cases_security)  # importing them registers


def sensor_cases() -> list[Case]:
    """Every sensor-role case in running order: before pairing, pairing, then the rest with
    the destructive ones last (they stop the session and delete records), then the security
    attacks (each on links of its own; passkey guessing, which leaves the sensor refusing
    pairings for a while, near the end)."""
    return sorted(REGISTRY, key=lambda c: (c.phase, c.order))
