"""Device profiles: what differs between the G7-class and G6-class sensors, as frozen data.

Sources (shared/spec/behavior.md): Dexcom G7 and G6 user guides; LoopKit G7SensorKit
(warm-up constant, lifetime + grace); xDrip ``SensorDays``. Values marked *project default*
are not published and are kept configurable.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    name: str
    warmup_ms: int  # no glucose until then
    session_ms: int  # expiry, measured from session start
    grace_ms: int  # readings continue this long after expiry (0: none)
    reading_interval_ms: int = 5 * MINUTE_MS
    sensor_issue_limit_ms: int = 3 * HOUR_MS  # project default: a longer issue fails the sensor
    backfill_ms: int = DAY_MS  # how far back the transmitter keeps records

    @property
    def end_ms(self) -> int:
        """When the sensor stops measuring: expiry plus grace."""
        return self.session_ms + self.grace_ms


G7 = DeviceProfile(
    name="g7",
    warmup_ms=27 * MINUTE_MS,  # G7SensorKit's constant; the user guide says "up to 30 minutes"
    session_ms=10 * DAY_MS,
    grace_ms=12 * HOUR_MS,
    backfill_ms=DAY_MS,  # "fills in up to 24 hours"
)
G6 = DeviceProfile(
    name="g6",
    warmup_ms=2 * HOUR_MS,
    session_ms=10 * DAY_MS,
    grace_ms=0,
    backfill_ms=3 * HOUR_MS,  # "about 3 hours" of backfill on the G6 itself
)
PROFILES = {profile.name: profile for profile in (G7, G6)}
