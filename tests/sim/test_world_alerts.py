"""Glucose alerts end to end (sensor -> transmitter -> memory link -> receiver) with an ideal
sensor and crafted traces, for both profiles: each alert raised at the first qualifying reading
and not before, repeats at their intervals (nothing acknowledges in a simulation), Urgent Low
Soon before Urgent Low on a steady fall of -2 mg/dL/min, nothing during warm-up
(shared/spec/behavior.md "Alerts", "Predicting Urgent Low Soon"; issue 5).

Every trace is a polyline through whole mg/dL values on the 5-minute grid, so the ideal sensor
reports exactly the numbers worked out in the comments. Alert levels are behavior.md's
defaults: urgent low <= 55, low <= 70, high >= 250, rising/falling fast +-2 mg/dL/min (off by
default), Urgent Low Soon when glucose + 20 min x slope <= 55. Repeats: urgent low every 5 min
(G5 guide), urgent low soon 5, low 15, high 120 (project defaults, firmware/receiver/alerts.py).
"""

import itertools
import pathlib

import pytest

from firmware.profiles import PROFILES
from firmware.receiver.alerts import AlertSettings
from sim.session.config import SimulationConfig
from sim.signal.traces import load_trace
from sim.world import run

FIRST_SHOWN = {"g7": 30, "g6": 120}  # the first 5-min sample after warm-up (27 min / 2 h)
PROFILE_NAMES = sorted(FIRST_SHOWN)

# 160 until 300, then -2 mg/dL/min to 50 at 355, held to 415, back up at +1 mg/dL/min to 120.
FALL = ((0, 160), (300, 160), (355, 50), (415, 50), (485, 120), (2000, 120))
# Slowly onto each threshold, one mg/dL per reading at the crossing: 120 until 240, down at
# 1 mg/dL/min to 80 at 280; 71 at 325, 70 at 330 (low); 56 at 400, 55 at 405 (urgent low);
# held at 55 to 450; up to 120 at 515 and 240 at 635; 249 at 680, 250 at 685 (high); held.
THRESHOLDS = (
    (0, 120),
    (240, 120),
    (280, 80),
    (330, 70),
    (405, 55),
    (450, 55),
    (515, 120),
    (635, 240),
    (685, 250),
    (2000, 250),
)
# +2.4 mg/dL/min (12 per reading) from 300 to 340, flat, -2.4 mg/dL/min from 500 to 530.
FAST = ((0, 100), (300, 100), (340, 196), (500, 196), (530, 124), (2000, 124))
LOW_FROM_START = ((0, 50), (2000, 50))

GLUCOSE_ALERTS = {"urgent_low", "urgent_low_soon", "low", "high", "rising_fast", "falling_fast"}


def polyline(points, t):
    for (t0, g0), (t1, g1) in itertools.pairwise(points):
        if t0 <= t <= t1:
            return g0 + (g1 - g0) * (t - t0) / (t1 - t0)
    raise ValueError(t)


@pytest.fixture(scope="module")
def simulate(tmp_path_factory):
    """Runs (and remembers) one session: ``simulate(profile, points, days, **settings)``."""
    folder = tmp_path_factory.mktemp("alert-traces")
    cache = {}

    def go(profile, points, days, **settings):
        key = (profile, points, days, tuple(sorted(settings.items())))
        if key not in cache:
            path = folder / f"trace-{len(cache)}.csv"
            rows = "".join(f"{t},{polyline(points, t):g}\n" for t in range(0, 2000, 5))
            path.write_text("time_offset_min,glucose_mgdl\n" + rows)
            cache[key] = run(
                SimulationConfig(
                    profile=PROFILES[profile],
                    days=days,
                    source=load_trace(pathlib.Path(path)),
                    ideal_sensor=True,
                    alerts=AlertSettings(**settings),
                )
            )
        return cache[key]

    return go


@pytest.fixture(params=PROFILE_NAMES)
def profile(request):
    return request.param


def alert_times(result, kind, alert):
    return [e["t_min"] for e in result.events if e["kind"] == kind and e["alert"] == alert]


def raised(result, alert):
    return alert_times(result, "alert_raised", alert)


def repeated(result, alert):
    return alert_times(result, "alert_repeated", alert)


def cleared(result, alert):
    return alert_times(result, "alert_cleared", alert)


def shown(result, minute):
    """The row for the sample taken at ``minute``; it must have been shown live then."""
    row = result.rows[minute // 5]
    assert row.time_offset_min == minute
    assert row.delivery == "live", row
    return row


# --------------------------------------------------------------------------------------------
# the traces arrive as written


@pytest.mark.parametrize("points", [FALL, THRESHOLDS, FAST, LOW_FROM_START])
def test_the_ideal_sensor_shows_the_trace_live_every_5_min(simulate, profile, points):
    result = simulate(profile, points, 0.6)
    first = FIRST_SHOWN[profile]
    readings = [e for e in result.events if e["kind"] == "reading"]
    assert [e["time_offset_min"] for e in readings] == list(range(first, 864, 5))
    for e in readings:
        assert e["t_min"] == e["time_offset_min"]
        assert e["glucose_mgdl"] == polyline(points, e["time_offset_min"])
    assert "signal_loss" not in {e.get("alert") for e in result.events}


# --------------------------------------------------------------------------------------------
# warm-up


def test_nothing_alerted_in_warmup_then_urgent_low_and_low_at_the_first_reading(simulate, profile):
    result = simulate(profile, LOW_FROM_START, 0.2)  # 50 mg/dL from the start; runs to 288 min
    first = FIRST_SHOWN[profile]
    alerted = [e for e in result.events if e["kind"] in ("alert_raised", "alert_repeated")]
    assert alerted and min(e["t_min"] for e in alerted) == first
    assert raised(result, "urgent_low") == [first]
    assert raised(result, "low") == [first]
    # glucose <= 55 already: nothing to predict; nothing else either
    assert {e["alert"] for e in alerted} == {"urgent_low", "low"}


def test_urgent_low_repeats_every_5_min_low_every_15_while_unacknowledged(simulate, profile):
    result = simulate(profile, LOW_FROM_START, 0.2)
    first = FIRST_SHOWN[profile]
    assert repeated(result, "urgent_low") == list(range(first + 5, 288, 5))
    assert repeated(result, "low") == list(range(first + 15, 288, 15))
    assert cleared(result, "urgent_low") == cleared(result, "low") == []


# --------------------------------------------------------------------------------------------
# thresholds: the first qualifying reading, not before


def test_low_at_the_first_reading_at_or_below_70(simulate, profile):
    result = simulate(profile, THRESHOLDS, 0.6)
    assert shown(result, 325).sensor_mgdl == 71
    assert shown(result, 330).sensor_mgdl == 70
    assert raised(result, "low") == [330]


def test_urgent_low_at_the_first_reading_at_or_below_55(simulate, profile):
    result = simulate(profile, THRESHOLDS, 0.6)
    assert shown(result, 400).sensor_mgdl == 56
    assert shown(result, 405).sensor_mgdl == 55
    assert raised(result, "urgent_low") == [405]
    # 60 mg/dL at 455: cleared by the first reading above 55
    assert shown(result, 455).sensor_mgdl == 60
    assert cleared(result, "urgent_low") == [455]


def test_high_at_the_first_reading_at_or_above_250_repeats_after_2_h(simulate, profile):
    result = simulate(profile, THRESHOLDS, 0.6)
    assert shown(result, 680).sensor_mgdl == 249
    assert shown(result, 685).sensor_mgdl == 250
    assert raised(result, "high") == [685]
    assert repeated(result, "high") == [805]  # 685 + 120; the run ends at 864


def test_low_repeats_every_15_min_until_above_70(simulate, profile):
    result = simulate(profile, THRESHOLDS, 0.6)
    # 70 at 465 (still low), 75 at 470: cleared
    assert cleared(result, "low") == [470]
    assert repeated(result, "low") == list(range(345, 470, 15))


def test_adjusted_low_and_high_levels_from_the_simulation_config(simulate, profile):
    result = simulate(profile, THRESHOLDS, 0.6, low_mgdl=80, high_mgdl=200)
    assert raised(result, "low") == [280]  # 81 at 275, 80 at 280
    assert raised(result, "high") == [595]  # 120 + (595 - 515) = 200
    assert raised(result, "urgent_low") == [405]  # fixed, whatever the other levels


def test_low_and_high_can_be_turned_off_urgent_low_cannot(simulate, profile):
    result = simulate(profile, THRESHOLDS, 0.6, low_enabled=False, high_enabled=False)
    assert raised(result, "low") == raised(result, "high") == []
    assert raised(result, "urgent_low") == [405]
    with pytest.raises(ValueError):
        AlertSettings(urgent_low_enabled=False)
    with pytest.raises(ValueError):
        AlertSettings(urgent_low_mgdl=50)


# --------------------------------------------------------------------------------------------
# a steady fall of -2 mg/dL/min: Urgent Low Soon first


def test_urgent_low_soon_before_urgent_low_on_a_steady_fall(simulate, profile):
    """160 - 2 (t - 300): at 330 (100 mg/dL) the last four readings fall at 2 mg/dL/min and
    predict 60 in 20 min (not yet); at 335 (90) they predict 50 <= 55: Urgent Low Soon.
    Low at 345 (70), Urgent Low at 355 (50), 20 min after the warning."""
    result = simulate(profile, FALL, 0.45)
    assert [shown(result, t).sensor_mgdl for t in (330, 335, 345, 350, 355)] == [
        100,
        90,
        70,
        60,
        50,
    ]
    assert raised(result, "urgent_low_soon") == [335]
    assert raised(result, "low") == [345]
    assert raised(result, "urgent_low") == [355]
    assert raised(result, "urgent_low_soon")[0] < raised(result, "urgent_low")[0]
    # Urgent Low Soon gives way to Urgent Low
    assert cleared(result, "urgent_low_soon") == [355]


def test_fall_repeats_and_clears(simulate, profile):
    """Urgent low soon repeats every 5 min until urgent low takes over; urgent low every 5 min
    while <= 55 (50 held to 415, 55 at 420, 60 at 425); low every 15 min until 75 at 440."""
    result = simulate(profile, FALL, 0.45)
    ul_cleared, low_cleared = cleared(result, "urgent_low"), cleared(result, "low")
    assert ul_cleared == [425]
    assert low_cleared == [440]
    uls_repeats = [t for t in repeated(result, "urgent_low_soon") if t < 355]
    assert uls_repeats == [340, 345, 350]
    ul_repeats = [t for t in repeated(result, "urgent_low") if t < 425]
    assert ul_repeats == list(range(360, 425, 5))
    low_repeats = [t for t in repeated(result, "low") if t < 440]
    assert low_repeats == list(range(360, 440, 15))


@pytest.mark.parametrize("points", [FALL, THRESHOLDS], ids=["fall", "thresholds"])
def test_no_alert_repeats_at_the_moment_a_reading_clears_it(simulate, profile, points):
    """An alert sounds again only while its condition holds: the reading that clears it, at
    the very moment the repeat falls due, wins (alerts.py: ``_sound`` runs "after a reading's
    evaluation, so a reading and a repeat at the same moment do not sound an alert the reading
    clears"). E.g. on FALL at 425 the reading shows 60 mg/dL: no urgent-low alarm then."""
    result = simulate(profile, points, 0.6)
    stale = [
        (e["t_min"], e["alert"])
        for e in result.events
        if e["kind"] == "alert_repeated" and e["t_min"] in cleared(result, e["alert"])
    ]
    assert stale == []


def test_urgent_low_soon_can_be_turned_off(simulate, profile):
    result = simulate(profile, FALL, 0.45, urgent_low_soon_enabled=False)
    assert raised(result, "urgent_low_soon") == []
    assert raised(result, "urgent_low") == [355]


def test_falling_fast_is_off_by_default(simulate, profile):
    result = simulate(profile, FALL, 0.45)
    assert shown(result, 315).trend_mgdl_min == pytest.approx(-2.0, abs=0.01)
    assert raised(result, "falling_fast") == raised(result, "rising_fast") == []


# --------------------------------------------------------------------------------------------
# rate alerts


def first_rate_at_least(result, level, sign):
    return next(
        r.time_offset_min
        for r in result.rows
        if r.trend_mgdl_min is not None and sign * r.trend_mgdl_min >= level
    )


def test_rising_and_falling_fast_at_the_first_reading_past_the_rate(simulate, profile):
    """The 15-min least-squares rate of a ramp of 2.4 mg/dL/min is 0.72 five minutes in, 1.68
    at ten and 2.4 at fifteen: rising fast at 315, falling fast at 515; each clears when the
    rate drops back below 2 (1.68 at 345 and -1.68 at 535) and sounds once."""
    result = simulate(profile, FAST, 0.45, rising_fast_enabled=True, falling_fast_enabled=True)
    assert shown(result, 310).trend_mgdl_min == pytest.approx(1.68, abs=0.01)
    assert shown(result, 315).trend_mgdl_min == pytest.approx(2.4, abs=0.01)
    assert first_rate_at_least(result, 2, +1) == 315
    assert first_rate_at_least(result, 2, -1) == 515
    assert raised(result, "rising_fast") == [315]
    assert cleared(result, "rising_fast") == [345]
    assert raised(result, "falling_fast") == [515]
    assert cleared(result, "falling_fast") == [535]
    assert repeated(result, "rising_fast") == repeated(result, "falling_fast") == []
    others = {e["alert"] for e in result.events if e["kind"] == "alert_raised"}
    assert others == {"rising_fast", "falling_fast"}


def test_rate_alerts_off_by_default_and_at_3_mgdl_min_not_for_2_4(simulate, profile):
    default = simulate(profile, FAST, 0.45)
    assert raised(default, "rising_fast") == raised(default, "falling_fast") == []
    steep_only = simulate(
        profile,
        FAST,
        0.45,
        rising_fast_enabled=True,
        falling_fast_enabled=True,
        rising_fast_mgdl_min=3,
        falling_fast_mgdl_min=3,
    )
    assert raised(steep_only, "rising_fast") == raised(steep_only, "falling_fast") == []


# --------------------------------------------------------------------------------------------
# every glucose alert comes from a reading shown at that moment


@pytest.mark.parametrize("points", [FALL, THRESHOLDS, FAST, LOW_FROM_START])
def test_glucose_alerts_raised_only_with_a_live_reading(simulate, profile, points):
    result = simulate(profile, points, 0.6, rising_fast_enabled=True, falling_fast_enabled=True)
    reading_times = {e["t_min"] for e in result.events if e["kind"] == "reading"}
    for e in result.events:
        if e["kind"] == "alert_raised" and e["alert"] in GLUCOSE_ALERTS:
            assert e["t_min"] in reading_times, e
            assert e["t_min"] >= FIRST_SHOWN[profile], e
