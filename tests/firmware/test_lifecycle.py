import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.lifecycle import Phase, next_change_ms, phase
from firmware.profiles import DAY_MS, G6, G7, HOUR_MS, MINUTE_MS

START = 5 * MINUTE_MS  # sessions need not start at 0


@pytest.mark.parametrize(
    ("profile", "elapsed", "expected"),
    [
        (G7, 0, Phase.WARMUP),
        (G7, 27 * MINUTE_MS - 1, Phase.WARMUP),
        (G7, 27 * MINUTE_MS, Phase.ACTIVE),
        (G7, 10 * DAY_MS - 1, Phase.ACTIVE),
        (G7, 10 * DAY_MS, Phase.GRACE),
        (G7, 10 * DAY_MS + 12 * HOUR_MS - 1, Phase.GRACE),
        (G7, 10 * DAY_MS + 12 * HOUR_MS, Phase.ENDED),
        (G6, 2 * HOUR_MS - 1, Phase.WARMUP),
        (G6, 2 * HOUR_MS, Phase.ACTIVE),
        (G6, 10 * DAY_MS - 1, Phase.ACTIVE),
        (G6, 10 * DAY_MS, Phase.ENDED),  # no grace period
    ],
)
def test_phases_by_elapsed_time(profile, elapsed, expected):
    assert phase(profile, START, START + elapsed) is expected


def test_failure_and_stop():
    assert phase(G7, 0, DAY_MS, failed_at_ms=DAY_MS) is Phase.FAILED
    assert phase(G7, 0, DAY_MS - 1, failed_at_ms=DAY_MS) is Phase.ACTIVE
    assert phase(G7, 0, 10 * MINUTE_MS, failed_at_ms=0) is Phase.WARMUP  # warm-up wins
    assert phase(G7, 0, 11 * DAY_MS, failed_at_ms=DAY_MS) is Phase.ENDED  # ended wins
    assert phase(G7, 0, 3 * DAY_MS, failed_at_ms=DAY_MS, stopped_at_ms=2 * DAY_MS) is Phase.ENDED
    assert phase(G7, 0, MINUTE_MS, stopped_at_ms=MINUTE_MS) is Phase.ENDED


def test_time_before_the_session_is_a_misuse():
    with pytest.raises(ValueError, match="before the session start"):
        phase(G7, DAY_MS, 0)


@given(
    profile=st.sampled_from([G7, G6]),
    now=st.integers(0, 12 * DAY_MS),
    failed=st.none() | st.integers(0, 12 * DAY_MS),
    stopped=st.none() | st.integers(0, 12 * DAY_MS),
)
def test_next_change_is_exactly_where_the_phase_changes(profile, now, failed, stopped):
    kw = {"failed_at_ms": failed, "stopped_at_ms": stopped}
    change = next_change_ms(profile, 0, now, **kw)
    current = phase(profile, 0, now, **kw)
    if change is None:
        # Nothing changes any more: check far in the future.
        assert phase(profile, 0, 100 * DAY_MS, **kw) is current
    else:
        assert change > now
        assert phase(profile, 0, change - 1, **kw) is current
        assert phase(profile, 0, change, **kw) is not current
