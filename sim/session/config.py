"""What configures one simulated session: the device profile, the sensor's input, the faults
on the link, the receiver's alert settings and the simulated user (``SimulationConfig``). Shared
by every driver and by what reads a run (reports, the durable store's fingerprint)."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field

from firmware.profiles import PROFILES, DeviceProfile
from firmware.receiver.alerts import AlertSettings
from sim.signal.scenarios import DAILY_LIFE, GlucoseSource

# the allowed form of each ``--faults`` item, as a bad one is told
FAULT_FORMS = {
    "loss": "loss=R with 0 <= R < 1 (the share of notifications lost)",
    "outage": "outage=START:END in minutes with 0 <= START < END",
    "receiver_restart": "receiver_restart=N with N a whole number >= 0",
}


@dataclass(frozen=True, slots=True)
class Faults:
    """``--faults``: loss ratio of notifications, outage windows (minutes), receiver restarts."""

    loss: float = 0.0
    outages_min: tuple[tuple[float, float], ...] = ()
    receiver_restarts: int = 0

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """``loss=0.3,outage=120:480,outage=2000:2100,receiver_restart=3``. A bad item raises
        ``ValueError`` with one line naming ``--faults``, the item and the allowed form."""
        loss, outages, restarts = 0.0, [], 0
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, _, value = item.partition("=")
            key = key.strip()
            name = "receiver_restart" if key == "receiver_restarts" else key
            if name not in FAULT_FORMS:
                raise ValueError(
                    f"--faults: unknown fault {key!r} in {item!r}; one of {', '.join(FAULT_FORMS)}"
                )
            try:
                if name == "loss":
                    loss = float(value)
                    if not 0 <= loss < 1:
                        raise ValueError
                elif name == "outage":
                    start, end = (float(x) for x in value.split(":"))
                    if not (math.isfinite(end) and 0 <= start < end):
                        raise ValueError
                    outages.append((start, end))
                else:
                    restarts = int(value)
                    if restarts < 0:
                        raise ValueError
            except ValueError:
                raise ValueError(f"--faults: bad value in {item!r}: {FAULT_FORMS[name]}") from None
        return cls(loss, tuple(sorted(outages)), restarts)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    profile: DeviceProfile = PROFILES["g7"]
    days: float | None = None  # default: the whole session, grace included
    seed: int = 1
    source: GlucoseSource = DAILY_LIFE
    ideal_sensor: bool = False
    faults: Faults = field(default_factory=Faults)
    e2e_crc: bool = False
    clock_at_zero: datetime.datetime = datetime.datetime(2026, 1, 5, 8, 0, 0)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    # The simulated user acknowledges every alert raised or repeated this many minutes after it
    # sounded (if it is still active and unacknowledged then). None: nobody acknowledges.
    acknowledge_after_min: float | None = None

    def __post_init__(self) -> None:
        ack = self.acknowledge_after_min
        if ack is not None and not (math.isfinite(ack) and ack >= 0):
            raise ValueError(f"acknowledge_after_min must be a finite number >= 0, not {ack}")
