"""Byte mutation for the fuzz engine: fast, seeded, and aware of the two things that stop
random bytes at the door of a CGMS decoder (a measurement's size byte and the E2E-CRC).

All randomness comes from the ``random.Random`` the caller seeds, so a campaign's seed fixes
every input it tries.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from protocol.crc import crc16

INTERESTING = (0x00, 0x01, 0x02, 0x05, 0x06, 0x07, 0x08, 0x0F, 0x1A, 0x1C, 0x7F, 0x80, 0xFE, 0xFF)
MAX_LENGTH = 64


def mutate(rng: random.Random, data: bytes, others: Sequence[bytes] = ()) -> bytes:
    """``data`` changed by one to three edits: bit flips, interesting bytes, insertions,
    deletions, truncation, appended or spliced bytes from ``others``; then, half the time, the
    size byte and/or the trailing CRC are made consistent again so the edit reaches the
    fields behind them."""
    buffer = bytearray(data)
    draw = rng.random
    for _ in range(1 + int(draw() * 3)):
        choice = int(draw() * 9)
        size = len(buffer)
        at = int(draw() * size) if size else 0
        if choice == 0 and size:
            buffer[at] ^= 1 << int(draw() * 8)
        elif choice == 1 and size:
            buffer[at] = INTERESTING[int(draw() * len(INTERESTING))]
        elif choice == 2 and size:
            buffer[at] = int(draw() * 256)
        elif choice == 3 and size < MAX_LENGTH:
            buffer.insert(at, int(draw() * 256))
        elif choice == 4 and size:
            del buffer[at]
        elif choice == 5 and size:
            del buffer[at:]
        elif choice == 6 and others:
            other = others[int(draw() * len(others))]
            buffer[at:] = other[int(draw() * (len(other) + 1)) :]
        elif choice == 7 and size >= 2:
            buffer[at:at] = buffer[: 1 + int(draw() * min(size, 8))]
        else:
            buffer.append(int(draw() * 256))
    del buffer[MAX_LENGTH:]
    fix = draw()
    if fix < 0.25 and buffer:
        buffer[0] = len(buffer)  # a measurement record's size byte
    if 0.15 < fix < 0.5 and len(buffer) > 2:
        buffer[-2:] = crc16(buffer[:-2]).to_bytes(2, "little")
    return bytes(buffer)


def pick(rng: random.Random, items: Sequence[bytes]) -> bytes:
    return items[int(rng.random() * len(items))]
