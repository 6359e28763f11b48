"""E2E-CRC of the CGM service (CGMS v1.0.1 §3.11): CRC-16/MCRF4XX.

Polynomial 0x1021 processed reflected (0x8408), seed 0xFFFF, no final XOR, appended
little-endian. ASCII ``123456789`` gives 0x6F91 (the unreflected CCITT-FALSE variant gives
0x29B1 and is wrong here).
"""

from __future__ import annotations


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _table()


def crc16(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/MCRF4XX of ``data``; pass a previous result as ``crc`` to continue it."""
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def append_crc(data: bytes) -> bytes:
    """``data`` followed by its E2E-CRC, little-endian."""
    return data + crc16(data).to_bytes(2, "little")
