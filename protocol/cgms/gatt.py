"""The CGM service's GATT layout as data (CGMS v1.0.1 §3, Table 3.1; CGMP §5.2.2, §6)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

CGM_SERVICE = 0x181F
DEVICE_INFORMATION_SERVICE = 0x180A
CCCD = 0x2902


class Property(enum.Flag):
    READ = enum.auto()
    WRITE = enum.auto()
    NOTIFY = enum.auto()
    INDICATE = enum.auto()


@dataclass(frozen=True, slots=True)
class Characteristic:
    uuid: int
    name: str  # the short name the CLI uses
    title: str  # the spec's name, used in error messages
    properties: Property
    encrypted: bool = True  # every CGMS value requires LE Security Mode 1 Level 2 or 3


MEASUREMENT = Characteristic(0x2AA7, "measurement", "CGM Measurement", Property.NOTIFY)
FEATURE = Characteristic(0x2AA8, "feature", "CGM Feature", Property.READ)
STATUS = Characteristic(0x2AA9, "status", "CGM Status", Property.READ)
SESSION_START_TIME = Characteristic(
    0x2AAA, "session-start-time", "CGM Session Start Time", Property.READ | Property.WRITE
)
SESSION_RUN_TIME = Characteristic(0x2AAB, "session-run-time", "CGM Session Run Time", Property.READ)
RACP = Characteristic(
    0x2A52, "racp", "Record Access Control Point", Property.WRITE | Property.INDICATE
)
SOCP = Characteristic(
    0x2AAC, "socp", "CGM Specific Ops Control Point", Property.WRITE | Property.INDICATE
)

CHARACTERISTICS: tuple[Characteristic, ...] = (
    MEASUREMENT,
    FEATURE,
    STATUS,
    SESSION_START_TIME,
    SESSION_RUN_TIME,
    RACP,
    SOCP,
)
