"""What a conformance case can conclude, and what it reads the device by: the verdicts, the
exceptions a case raises with its reason, the phases of a run and the device's CGM Feature.
Below the tester and the registry (both use them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_APPLICABLE = "NOT APPLICABLE"
    NOT_RUN = "NOT RUN"  # destructive without --allow-destructive; an attack with --no-attacks


class CaseFailed(Exception):
    """The device did not do what the spec asks."""


class Inconclusive(Exception):
    """The case could not reach a verdict (precondition not met, a race the tester lost)."""


class NotApplicable(Exception):
    """The device does not claim the feature the case tests."""


class Phase(enum.IntEnum):
    UNPAIRED = 0  # on the first connection, before pairing
    PAIRING = 1
    PAIRED = 2
    ATTACKS = 3  # the security attacks, each on links of its own (cases_security)


@dataclass(frozen=True)
class Features:
    """What the device's CGM Feature characteristic said (CGMS §3.2)."""

    bits: int
    type: int
    location: int
    crc: int
    raw: bytes

    def has(self, bit: int) -> bool:
        return bool(self.bits >> bit & 1)

    @property
    def e2e_crc(self) -> bool:
        return self.has(12)
