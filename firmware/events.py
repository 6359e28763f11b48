"""What crosses the firmware cores' boundaries: GATT events in and out, sensor samples in.

GATT is modelled as events (shared/design/architecture.md): a server core receives
``Connected``, ``Disconnected``, ``Read``, ``Write``, ``Subscribe`` and ``Sent`` and emits
``Respond``, ``Notify`` and ``Indicate``; adapters translate these to a BLE stack and back.
Characteristics are named by their 16-bit UUIDs (``protocol.cgms.gatt``). Every event is a
frozen, slotted dataclass; times travel separately, as the ``now`` of each call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_ATT_MTU = 23


class AttError(enum.IntEnum):
    """ATT error codes a CGM server answers with (Core spec Vol 3 Part F 3.4.1.1; CGMS §1.8)."""

    WRITE_NOT_PERMITTED = 0x03
    INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D
    INSUFFICIENT_ENCRYPTION = 0x0F
    MISSING_CRC = 0x80
    INVALID_CRC = 0x81
    PROCEDURE_ALREADY_IN_PROGRESS = 0xFE
    CCCD_IMPROPERLY_CONFIGURED = 0xFD
    OUT_OF_RANGE = 0xFF


# --- into a server -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    mtu: int = DEFAULT_ATT_MTU


@dataclass(frozen=True, slots=True)
class MtuChanged:
    mtu: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    pass


@dataclass(frozen=True, slots=True)
class Read:
    uuid: int


@dataclass(frozen=True, slots=True)
class Write:
    uuid: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A client wrote the CCCD of ``uuid``."""

    uuid: int
    notify: bool = False
    indicate: bool = False


@dataclass(frozen=True, slots=True)
class Sent:
    """The last ``Notify`` left the device, or the last ``Indicate`` was confirmed.

    A server has one notification or indication in flight at a time and sends the next on
    ``Sent``: this is how a transfer's progress (and its 30 s timeout) is seen.
    """


# --- out of a server ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Respond:
    """The answer to the last ``Read`` or ``Write`` (or ``Subscribe``): a value for a read,
    nothing for a successful write, or an ATT error."""

    uuid: int
    value: bytes | None = None
    error: AttError | None = None


@dataclass(frozen=True, slots=True)
class Notify:
    uuid: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Indicate:
    uuid: int
    value: bytes


GattInput = Connected | MtuChanged | Disconnected | Read | Write | Subscribe | Sent
GattOutput = Respond | Notify | Indicate


# --- from the sensor into the transmitter -----------------------------------------------------


class SensorState(enum.IntEnum):
    """What the sensor electronics report with each sample."""

    OK = 0
    DROPOUT = 1  # no reading produced for this sample
    ISSUE = 2  # brief sensor issue: readings withheld
    FAILED = 3  # the sensor failed


@dataclass(frozen=True, slots=True)
class SensorSample:
    """One sample from the sensor: raw counts (meaningful when ``state`` is OK)."""

    raw_counts: int
    state: SensorState = SensorState.OK
