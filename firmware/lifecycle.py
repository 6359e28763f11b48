"""Session phase as a pure function of time (shared/spec/behavior.md, "Session lifecycle").

No timers: the phase at any moment follows from the session start, the profile and what is
known about the sensor (failed or stopped, and when). Checked in the order G7SensorKit uses:
ended -> warm-up -> failed -> grace -> active.
"""

from __future__ import annotations

import enum

from firmware.profiles import DeviceProfile


class Phase(enum.Enum):
    WARMUP = "warmup"
    ACTIVE = "active"
    GRACE = "grace"
    ENDED = "ended"
    FAILED = "failed"


def phase(
    profile: DeviceProfile,
    session_start_ms: int,
    now_ms: int,
    *,
    failed_at_ms: int | None = None,
    stopped_at_ms: int | None = None,
) -> Phase:
    """The phase at ``now_ms``. ``stopped_at_ms``: the user stopped the session (SOCP 1B);
    ``failed_at_ms``: the sensor failed. Times are on the session time axis, in ms."""
    if now_ms < session_start_ms:
        raise ValueError(f"now ({now_ms} ms) is before the session start ({session_start_ms} ms)")
    elapsed = now_ms - session_start_ms
    if elapsed >= profile.end_ms or (stopped_at_ms is not None and now_ms >= stopped_at_ms):
        return Phase.ENDED
    if elapsed < profile.warmup_ms:
        return Phase.WARMUP
    if failed_at_ms is not None and now_ms >= failed_at_ms:
        return Phase.FAILED
    if elapsed >= profile.session_ms:
        return Phase.GRACE
    return Phase.ACTIVE


def next_change_ms(
    profile: DeviceProfile,
    session_start_ms: int,
    now_ms: int,
    *,
    failed_at_ms: int | None = None,
    stopped_at_ms: int | None = None,
) -> int | None:
    """The first time after ``now_ms`` at which :func:`phase` gives another answer, or None."""
    current = phase(
        profile, session_start_ms, now_ms, failed_at_ms=failed_at_ms, stopped_at_ms=stopped_at_ms
    )
    boundaries = sorted(
        t
        for t in (
            session_start_ms + profile.warmup_ms,
            session_start_ms + profile.session_ms,
            session_start_ms + profile.end_ms,
            failed_at_ms,
            stopped_at_ms,
        )
        if t is not None and t > now_ms
    )
    for t in boundaries:
        if (
            phase(
                profile, session_start_ms, t, failed_at_ms=failed_at_ms, stopped_at_ms=stopped_at_ms
            )
            != current
        ):
            return t
    return None
