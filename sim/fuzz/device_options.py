"""Where a device under test is, and how hard it may be pushed (``cgmsim fuzz --transport``)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

DEFAULT_PASSKEY = 123_456
DEFAULT_RATE = 20.0  # ATT requests (or rogue sensor answers) a second at most
DEFAULT_NOTIFY_WITHIN_S = 330.0  # a 5-minute reading interval and a margin


@dataclass(frozen=True)
class DeviceOptions:
    transport: str
    address: str | None = None
    passkey: int = DEFAULT_PASSKEY
    rate: float = DEFAULT_RATE
    notify_within_s: float = DEFAULT_NOTIFY_WITHIN_S
    capture: pathlib.Path | None = None
