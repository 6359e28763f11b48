"""Where a device under test is, and how hard it may be pushed (``cgmsim fuzz --transport``)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

DEFAULT_PASSKEY = 123_456
DEFAULT_RATE = 20.0  # ATT requests (or rogue sensor answers) a second at most
DEFAULT_PATIENCE_S = 330.0  # a 5-minute reading interval and a margin


@dataclass(frozen=True)
class DeviceOptions:
    transport: str
    address: str | None = None
    passkey: int = DEFAULT_PASSKEY
    rate: float = DEFAULT_RATE
    patience_s: float = DEFAULT_PATIENCE_S  # to notify when subscribed, to link again
    capture: pathlib.Path | None = None
    speed: float = 1.0  # the rogue sensor's session time, x the wall clock
