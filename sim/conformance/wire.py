"""What the tester knows of CGMS frames, written from the spec for the tester alone.

Our transmitter builds its frames with ``protocol.cgms``; judging them with the same codecs
would let a misreading vouch for itself. So the record layout (CGMS §3.1.1) and the expected
control-point answers are spelled out here again, from the spec; only the E2E-CRC arithmetic
(CRC-16/MCRF4XX, CGMS §3.11, checked against the spec's own example in the tests) and SFLOAT
are shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import sfloat
from protocol.crc import crc16

# CGM Measurement Flags (CGMS §3.1.1.2)
TREND = 0x01
QUALITY = 0x02
RESERVED_FLAGS = 0x1C
WARNING_OCTET = 0x20
CAL_TEMP_OCTET = 0x40
STATUS_OCTET = 0x80

# ATT error codes (Core Vol 3 Part F 3.4.1.1; CSS Part B 1.2; CGMS §1.8)
INSUFFICIENT_AUTHENTICATION = 0x05
INSUFFICIENT_ENCRYPTION = 0x0F
MISSING_CRC = 0x80
INVALID_CRC = 0x81
CCCD_IMPROPERLY_CONFIGURED = 0xFD
PROCEDURE_ALREADY_IN_PROGRESS = 0xFE
OUT_OF_RANGE = 0xFF


@dataclass(frozen=True)
class Record:
    """One CGM Measurement record as the tester reads it."""

    size: int
    flags: int
    glucose: float | object
    time_offset: int
    annunciation: bool
    trend: bool
    quality: bool
    crc_ok: bool | None  # None: no CRC field
    raw: bytes


def crc_ok(data: bytes) -> bool:
    """Whether the last two bytes of ``data`` are the E2E-CRC of the rest (little-endian)."""
    return len(data) >= 2 and crc16(data[:-2]) == int.from_bytes(data[-2:], "little")


def with_crc(data: bytes) -> bytes:
    return data + crc16(data).to_bytes(2, "little")


def expected_size(flags: int, e2e: bool) -> int:
    """Size of a record with these flags (CGMS §3.1.1.1): 6 mandatory octets, one per
    annunciation octet flagged, 2 for trend and for quality, 2 for the E2E-CRC."""
    size = 6
    size += sum(1 for bit in (STATUS_OCTET, CAL_TEMP_OCTET, WARNING_OCTET) if flags & bit)
    size += 2 * bool(flags & TREND) + 2 * bool(flags & QUALITY)
    return size + (2 if e2e else 0)


def records(value: bytes, e2e: bool) -> list[Record]:
    """The records of one notification, back to back; raises ValueError naming what is
    wrong (a size that disagrees with the flags, a truncated record, a bad CRC)."""
    found: list[Record] = []
    at = 0
    while at < len(value):
        if len(value) - at < 6:
            raise ValueError(f"{len(value) - at} bytes left at offset {at}, a record has 6 or more")
        size, flags = value[at], value[at + 1]
        if size != expected_size(flags, e2e):
            raise ValueError(
                f"record at {at}: size {size}, flags 0x{flags:02X} need"
                f" {expected_size(flags, e2e)}{' with E2E-CRC' if e2e else ''}"
            )
        if at + size > len(value):
            raise ValueError(f"record at {at}: size {size} runs past the notification")
        raw = value[at : at + size]
        if flags & RESERVED_FLAGS:
            raise ValueError(f"record at {at}: reserved flag bits set (0x{flags:02X})")
        glucose = sfloat.decode(int.from_bytes(raw[2:4], "little"))
        found.append(
            Record(
                size,
                flags,
                glucose,
                int.from_bytes(raw[4:6], "little"),
                bool(flags & (STATUS_OCTET | CAL_TEMP_OCTET | WARNING_OCTET)),
                bool(flags & TREND),
                bool(flags & QUALITY),
                crc_ok(raw) if e2e else None,
                raw,
            )
        )
        at += size
    return found


def racp_response(request_opcode: int, code: int) -> bytes:
    """RACP Response Code (CGMS §3.6.1; RACP opcode 0x06, operator Null)."""
    return bytes([0x06, 0x00, request_opcode, code])


def racp_count(count: int) -> bytes:
    """RACP Number of Stored Records Response (opcode 0x05, operator Null, u16)."""
    return bytes([0x05, 0x00]) + count.to_bytes(2, "little")


def socp_response(request_opcode: int, code: int) -> bytes:
    """SOCP Response Code (CGMS §3.7.1: opcode 0x1C, request opcode, code), CRC not included."""
    return bytes([0x1C, request_opcode, code])


def sfloat_bytes(value: float) -> bytes:
    return sfloat.encode(value).to_bytes(2, "little")


def sfloat_value(data: bytes) -> float | object:
    return sfloat.decode(int.from_bytes(data[:2], "little"))


# SFLOAT 2045e7 (2.045e10), the largest finite value: too high for any alert level
TOO_HIGH = bytes.fromhex("FD77")
