"""The receiver's alert engine over crafted reading sequences in virtual time.

Rules from shared/spec/behavior.md ("Alerts", "Predicting Urgent Low Soon"); the choices the
spec leaves open are listed in firmware/receiver/alerts.py's docstring.
"""

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from firmware.lifecycle import Phase, phase
from firmware.profiles import DAY_MS, G6, G7, HOUR_MS, MINUTE_MS
from firmware.receiver.alerts import (
    GLUCOSE_ALERTS,
    AlertCleared,
    AlertEngine,
    AlertName,
    AlertRaised,
    AlertRepeated,
    AlertSettings,
    ar2_forecast,
    recent_slope,
)

A = AlertName
START = 7 * MINUTE_MS  # sessions need not start at 0
NO_SIGNAL_LOSS = AlertSettings(signal_loss_enabled=False)
KIND = {AlertRaised: "raised", AlertRepeated: "repeated", AlertCleared: "cleared"}


def at(minutes, profile=G7):
    """Session time ``minutes`` after warm-up ended."""
    return START + profile.warmup_ms + round(minutes * MINUTE_MS)


def minutes_of(t_ms, profile=G7):
    return (t_ms - START - profile.warmup_ms) / MINUTE_MS


def engine(settings=None, profile=G7):
    return AlertEngine(settings or AlertSettings(), profile, START)


def drain(eng):
    out = []
    while (event := eng.next_event()) is not None:
        out.append(event)
    return out


def run_until(eng, t_end):
    """Fire every timer up to and including ``t_end``; the events, in order."""
    out, last = [], None
    while (t := eng.get_timer()) is not None and t <= t_end:
        assert last is None or t > last, f"timer does not advance: {t} after {last}"
        eng.handle_timer(t)
        out += drain(eng)
        last = t
    return out


def play(eng, script, until, profile=G7):
    """Run a script of ``(minute, glucose)`` live readings, ``(minute, "ack", alert)``,
    ``(minute, "sensor", issue, failed)`` and ``(minute, "trend", glucose, trend)`` steps, with
    the timers in between (a step and a timer at the same moment: the step first); events as
    ``(kind, alert, minute)`` tuples."""
    events = []
    for minute, *step in sorted(script, key=lambda s: s[0]):
        t = at(minute, profile)
        events += run_until(eng, t - 1)  # timers due at t fire inside the input at t
        if step[0] == "ack":
            eng.acknowledge(step[1], t)
        elif step[0] == "sensor":
            eng.sensor_state(t, issue=step[1], failed=step[2])
        elif step[0] == "trend":
            eng.reading(t, step[1], step[2], t)
        else:
            eng.reading(t, step[0], None, t)
        events += drain(eng)
    events += run_until(eng, at(until, profile))
    return [(KIND[type(e)], e.alert.value, minutes_of(e.t_ms, profile)) for e in events]


def only(events, alert):
    return [(kind, minute) for kind, name, minute in events if name == alert.value]


def every_5(start_minute, values):
    return [(start_minute + 5 * i, g) for i, g in enumerate(values)]


# --- settings -------------------------------------------------------------------------------


def test_default_settings_follow_behavior_md():
    s = AlertSettings()
    assert (s.urgent_low_enabled, s.urgent_low_mgdl) == (True, 55)
    assert s.urgent_low_soon_enabled and s.urgent_low_soon_reack_min == 30
    assert (s.low_enabled, s.low_mgdl, s.low_repeat_min) == (True, 70, 15)
    assert (s.high_enabled, s.high_mgdl, s.high_repeat_min) == (True, 250, 120)
    assert not s.rising_fast_enabled and not s.falling_fast_enabled
    assert (s.signal_loss_enabled, s.signal_loss_min) == (True, 20)
    assert s.session_ending_min == (24 * 60, 6 * 60, 2 * 60, 30)
    assert s.grace_ending_min == (2 * 60, 30)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"urgent_low_enabled": False},
        {"urgent_low_mgdl": 60},
        {"low_mgdl": 59},
        {"low_mgdl": 101},
        {"high_mgdl": 119},
        {"high_mgdl": 401},
        {"rising_fast_mgdl_min": 1},
        {"falling_fast_mgdl_min": 4},
        {"signal_loss_min": 0},
        {"low_repeat_min": 0},
        {"urgent_low_soon_reack_min": -5},
        {"session_ending_min": (30, 30)},
        {"grace_ending_min": (0,)},
    ],
)
def test_invalid_settings_raise(kwargs):
    with pytest.raises(ValueError, match="alert settings"):
        AlertSettings(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"low_mgdl": 60},
        {"low_mgdl": 100},
        {"high_mgdl": 120},
        {"high_mgdl": 400},
        {"rising_fast_mgdl_min": 3, "falling_fast_mgdl_min": 3},
        {"low_enabled": False, "high_enabled": False},
    ],
)
def test_settings_at_the_limits_are_accepted(kwargs):
    assert AlertSettings(**kwargs)


def test_events_are_frozen_and_slotted():
    event = AlertRaised(A.LOW, 0, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.t_ms = 1
    assert not hasattr(event, "__dict__")
    assert [a.value for a in AlertName] == [
        "urgent_low", "urgent_low_soon", "low", "high", "rising_fast", "falling_fast",
        "signal_loss", "sensor_issue", "sensor_failed", "session_ending", "grace_period",
        "replace_sensor",
    ]  # fmt: skip


# --- AR2 and the slope ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prev", "curr", "expected"),
    [
        (105, 100, [97, 95, 94, 93, 93, 93]),
        (80, 70, [64, 60, 58, 57, 56, 56]),
        (140, 140, [140] * 6),
    ],
)
def test_ar2_check_values(prev, curr, expected):
    assert [round(g) for g in ar2_forecast(prev, curr)] == expected


def test_ar2_steps_and_bad_input():
    assert len(ar2_forecast(100, 90, steps=3)) == 3
    with pytest.raises(ValueError):
        ar2_forecast(0, 90)


def test_slope_needs_three_readings_without_gaps_and_is_limited():
    five = 5 * MINUTE_MS
    assert recent_slope([(0, 100.0), (five, 90.0)], five) is None
    assert recent_slope([(0, 100.0), (five, 90.0), (2 * five, 80.0)], five) == pytest.approx(-2)
    gap = [(0, 100.0), (five, 90.0), (3 * five, 70.0), (4 * five, 60.0)]
    assert recent_slope(gap, five) is None
    steep = [(0, 250.0), (five, 200.0), (2 * five, 150.0)]
    assert recent_slope(steep, five) == -4.0
    # only the newest four readings count: an old rise does not dilute a fall
    long = [(i * five, 100.0 + 10 * i) for i in range(3)] + [
        ((3 + i) * five, 120.0 - 10 * i) for i in range(1, 5)
    ]
    assert recent_slope(long, five) == pytest.approx(-2)


# --- glucose alerts at the first qualifying reading -----------------------------------------


def test_low_raised_at_the_first_reading_at_or_below_the_level_and_cleared_above():
    events = play(engine(), every_5(0, [74, 72, 71, 70, 69, 71]), until=26)
    assert only(events, A.LOW) == [("raised", 15), ("cleared", 25)]
    assert [e for e in events if e[1] != "low"] == []


def test_low_level_follows_the_setting():
    events = play(engine(AlertSettings(low_mgdl=90)), every_5(0, [95, 91, 90]), until=11)
    assert only(events, A.LOW) == [("raised", 10)]
    assert play(engine(AlertSettings(low_enabled=False)), [(0, 60)], until=1) == []


def test_high_raised_at_the_first_reading_at_or_above_the_level():
    events = play(engine(), every_5(0, [240, 249, 250, 260, 249]), until=21)
    assert only(events, A.HIGH) == [("raised", 10), ("cleared", 20)]


def test_urgent_low_at_55_not_56():
    events = play(engine(), every_5(0, [57, 56, 55]), until=11)
    assert only(events, A.URGENT_LOW) == [("raised", 10)]
    assert only(events, A.LOW) == [("raised", 0)]  # low and urgent low are independent


def test_reading_below_the_display_range_counts_as_low():
    eng = engine()
    eng.reading(at(0), 39, None, at(0))  # LOW on the display
    assert {e.alert for e in drain(eng)} == {A.URGENT_LOW, A.LOW}


# --- repeats and acknowledgement --------------------------------------------------------------


def test_urgent_low_repeats_every_5_min_until_acknowledged_then_after_30_min():
    script = [*every_5(0, [50] * 19), (12, "ack", A.URGENT_LOW), (53, "ack", A.URGENT_LOW)]
    events = play(engine(), script, until=90)
    assert only(events, A.URGENT_LOW) == [
        ("raised", 0), ("repeated", 5), ("repeated", 10),  # acknowledged at 12
        ("repeated", 42), ("repeated", 47), ("repeated", 52),  # acknowledged at 53
        ("repeated", 83), ("repeated", 88),
    ]  # fmt: skip


def test_urgent_low_not_repeated_after_acknowledgement_when_glucose_recovered():
    script = [*every_5(0, [50, 52, 54, 60, 80, 90, 100]), (1, "ack", A.URGENT_LOW)]
    events = play(engine(), script, until=60)
    assert only(events, A.URGENT_LOW) == [("raised", 0), ("cleared", 15)]


def test_low_repeats_every_15_min_and_acknowledgement_restarts_the_interval():
    script = [*every_5(0, [65] * 14), (33, "ack", A.LOW)]
    events = play(engine(), script, until=66)
    assert only(events, A.LOW) == [
        ("raised", 0), ("repeated", 15), ("repeated", 30), ("repeated", 48), ("repeated", 63),
    ]  # fmt: skip


def test_high_repeats_every_2_h():
    events = play(engine(), every_5(0, [300] * 60), until=299)
    assert only(events, A.HIGH) == [("raised", 0), ("repeated", 120), ("repeated", 240)]


def test_acknowledging_an_alert_that_is_not_raised_does_nothing():
    eng = engine()
    eng.acknowledge(A.LOW, at(0))
    eng.reading(at(1), 60, None, at(1))
    assert [type(e) for e in drain(eng) if e.alert is A.LOW] == [AlertRaised]
    assert not eng.acknowledged(A.LOW)
    assert eng.get_timer() == at(16)


def test_rate_alerts_sound_once_and_an_acknowledgement_keeps_them_quiet():
    s = AlertSettings(falling_fast_enabled=True)
    script = [(5 * i, "trend", 200 - 15 * i, -3.0) for i in range(10)]
    events = play(engine(s), [*script, (7, "ack", A.FALLING_FAST)], until=60)
    assert only(events, A.FALLING_FAST) == [("raised", 0)]


# --- Urgent Low Soon --------------------------------------------------------------------------


def test_urgent_low_soon_comes_20_min_before_urgent_low_on_a_steady_fall():
    # -2 mg/dL/min from 120: 120, 110, 100, 90 (predicted 50), ..., 50
    events = play(engine(), every_5(0, [120, 110, 100, 90, 80, 70, 60, 50]), until=36)
    assert only(events, A.URGENT_LOW_SOON) == [
        ("raised", 15), ("repeated", 20), ("repeated", 25), ("repeated", 30),  # unacknowledged
        ("cleared", 35),  # glucose <= 55: now it is Urgent Low
    ]  # fmt: skip
    assert only(events, A.URGENT_LOW) == [("raised", 35)]
    assert events.index(("cleared", "urgent_low_soon", 35)) < events.index(
        ("raised", "urgent_low", 35)
    )


def test_urgent_low_soon_keeps_its_state_when_a_gap_hides_the_slope():
    script = [*every_5(0, [90, 80, 70]), (25, 66), (30, 80), (35, 90)]
    events = play(engine(), script, until=36)
    # 66 after a gap and 80: too few readings for a slope, state kept; 66, 80, 90: rising, cleared
    assert only(events, A.URGENT_LOW_SOON) == [
        ("raised", 10), ("repeated", 15), ("repeated", 20), ("repeated", 25), ("repeated", 30),
        ("cleared", 35),
    ]  # fmt: skip


def test_a_second_acknowledgement_does_not_postpone_the_re_alert():
    script = [*every_5(0, [50] * 10), (12, "ack", A.URGENT_LOW), (20, "ack", A.URGENT_LOW)]
    events = play(engine(), script, until=43)
    assert only(events, A.URGENT_LOW)[-1] == ("repeated", 42)


def test_urgent_low_soon_needs_three_readings():
    events = play(engine(), every_5(0, [90, 80, 70]), until=11)
    assert only(events, A.URGENT_LOW_SOON) == [("raised", 10)]  # not at 5 with two readings


def test_urgent_low_soon_not_raised_across_a_gap():
    # 100, 90, (missing), 70: a fit across the gap would predict 30 mg/dL at minute 15
    events = play(engine(), [(0, 100), (5, 90), (15, 70), (20, 68), (25, 66)], until=26)
    assert only(events, A.URGENT_LOW_SOON) == []


def test_urgent_low_soon_slope_is_limited_to_plausible_rates():
    # -10 mg/dL/min (an artefact) limited to -4: 150 - 80 = 70 > 55, so no alert
    events = play(engine(), every_5(0, [250, 200, 150]), until=11)
    assert only(events, A.URGENT_LOW_SOON) == []


def test_urgent_low_soon_re_alerts_30_min_after_acknowledgement_while_predicted_low():
    # 55 + 20 exp(-t / 20 min) approaches 55 from above, always predicted below 55 in 20 min
    values = [55 + 20 * math.exp(-m / 20) for m in range(0, 45, 5)]
    script = [*every_5(0, values), (12, "ack", A.URGENT_LOW_SOON), (45, 62), (50, 66)]
    events = play(engine(), script, until=60)
    assert only(events, A.URGENT_LOW_SOON) == [("raised", 10), ("repeated", 42), ("cleared", 45)]


def test_urgent_low_soon_can_be_turned_off_but_urgent_low_cannot():
    s = AlertSettings(urgent_low_soon_enabled=False)
    events = play(engine(s), every_5(0, [120, 110, 100, 90, 80, 70, 60, 50]), until=36)
    assert only(events, A.URGENT_LOW_SOON) == []
    assert only(events, A.URGENT_LOW) == [("raised", 35)]


# --- rate alerts ------------------------------------------------------------------------------


def test_rate_alerts_are_off_by_default():
    events = play(engine(), [(0, "trend", 150, 3.5), (5, "trend", 120, -3.5)], until=6)
    assert events == []


def test_rising_fast_at_its_level_and_falling_fast_at_minus_its_level():
    s = AlertSettings(rising_fast_enabled=True, falling_fast_enabled=True, falling_fast_mgdl_min=3)
    script = [
        (0, "trend", 150, 1.9),
        (5, "trend", 160, 2.0),
        (10, "trend", 170, 2.5),
        (15, "trend", 175, 1.0),
        (20, "trend", 170, -2.9),
        (25, "trend", 160, -3.0),
        (30, "trend", 150, None),  # no trend: state kept
        (35, "trend", 145, -1.0),
    ]
    events = play(engine(s), script, until=36)
    assert only(events, A.RISING_FAST) == [("raised", 5), ("cleared", 15)]
    assert only(events, A.FALLING_FAST) == [("raised", 25), ("cleared", 35)]


# --- phases: nothing from readings outside active and grace ---------------------------------


@pytest.mark.parametrize("profile", [G7, G6])
def test_no_glucose_alerts_during_warmup_then_the_first_active_reading_alerts(profile):
    eng = engine(profile=profile)
    for t in (START + 10 * MINUTE_MS, START + profile.warmup_ms - MINUTE_MS):
        eng.reading(t, 40, -3.0, t)
    assert drain(eng) == []
    first = START + profile.warmup_ms
    eng.reading(first, 40, None, first)
    assert {(e.alert, e.t_ms) for e in drain(eng)} == {(A.URGENT_LOW, first), (A.LOW, first)}


def test_glucose_alerts_clear_at_session_end_and_nothing_is_alerted_after():
    eng = engine(NO_SIGNAL_LOSS, profile=G6)
    end = START + G6.end_ms
    eng.reading(end - 5 * MINUTE_MS, 65, None, end - 5 * MINUTE_MS)
    assert [(type(e), e.alert) for e in drain(eng)] == [
        (AlertRaised, A.SESSION_ENDING),  # only the latest overdue reminder (30 min)
        (AlertRaised, A.LOW),
    ]
    events = run_until(eng, end)
    assert [(type(e), e.alert, e.t_ms) for e in events] == [
        (AlertCleared, A.LOW, end),
        (AlertCleared, A.SESSION_ENDING, end),
        (AlertRaised, A.REPLACE_SENSOR, end),
    ]
    eng.reading(end + MINUTE_MS, 40, None, end + MINUTE_MS)  # a stray reading after the end
    eng.sensor_state(end + 2 * MINUTE_MS, issue=True, failed=False)
    assert drain(eng) == []
    assert eng.get_timer() is None
    assert eng.active == {A.REPLACE_SENSOR}


# --- backfill ---------------------------------------------------------------------------------


def test_backfilled_lows_raise_nothing_and_clear_signal_loss():
    eng = engine()
    events = play(eng, [(0, 120)], until=39)
    t = at(40)
    for minute, g in zip(range(5, 40, 5), [110, 95, 80, 65, 55, 50, 50], strict=True):
        eng.reading(t, g, -3.0, at(minute))  # taken in the past, delivered now
    eng.reading(t, 100, None, t)  # the live reading: fine
    events += [(KIND[type(e)], e.alert.value, minutes_of(e.t_ms)) for e in drain(eng)]
    assert events == [("raised", "signal_loss", 20), ("cleared", "signal_loss", 40)]


def test_a_reading_delayed_by_less_than_an_interval_is_current():
    eng = engine()
    eng.reading(at(14), 50, None, at(10))
    assert {(e.alert, e.t_ms) for e in drain(eng)} == {(A.URGENT_LOW, at(14)), (A.LOW, at(14))}


def test_backfill_fills_the_urgent_low_soon_history():
    eng = engine()
    eng.reading(at(0), 130, None, at(0))
    eng.reading(at(15), 110, None, at(5))
    eng.reading(at(15), 100, None, at(10))
    assert drain(eng) == []
    eng.reading(at(15), 90, None, at(15))  # with 110 and 100: -2 mg/dL/min, predicted 50
    assert [(type(e), e.alert) for e in drain(eng)] == [(AlertRaised, A.URGENT_LOW_SOON)]


def test_a_duplicate_reading_changes_nothing():
    eng = engine()
    eng.reading(at(0), 60, None, at(0))
    drain(eng)
    eng.reading(at(3), 200, None, at(0))  # same time taken: a duplicate, ignored
    assert drain(eng) == []
    assert eng.active == {A.LOW}
    assert eng.to_state()["history"] == [[at(0), 60.0]]


def test_only_the_last_half_hour_of_readings_is_kept():
    eng = engine()
    play(eng, every_5(0, [120] * 100), until=495)
    assert [t for t, _ in eng.to_state()["history"]] == [at(m) for m in range(465, 500, 5)]


# --- signal loss ------------------------------------------------------------------------------


def test_signal_loss_exactly_20_min_after_the_last_reading():
    eng = engine()
    eng.reading(at(0), 120, None, at(0))
    assert eng.get_timer() == at(20)
    eng.handle_timer(at(20) - 1)
    assert drain(eng) == []
    eng.handle_timer(at(20))
    assert [(type(e), e.alert, e.t_ms) for e in drain(eng)] == [
        (AlertRaised, A.SIGNAL_LOSS, at(20))
    ]
    eng.reading(at(30), 120, None, at(10))  # backfill
    assert [(type(e), e.alert, e.t_ms) for e in drain(eng)] == [
        (AlertCleared, A.SIGNAL_LOSS, at(30))
    ]
    assert eng.get_timer() == at(50)


@pytest.mark.parametrize("profile", [G7, G6])
def test_signal_loss_counts_from_warmup_end_when_no_reading_came(profile):
    eng = engine(profile=profile)
    events = run_until(eng, START + profile.warmup_ms + HOUR_MS)
    assert [(type(e), e.alert, e.t_ms) for e in events] == [
        (AlertRaised, A.SIGNAL_LOSS, START + profile.warmup_ms + 20 * MINUTE_MS)
    ]


def test_signal_loss_follows_its_setting():
    assert play(engine(NO_SIGNAL_LOSS), [(0, 120)], until=120) == []
    events = play(engine(AlertSettings(signal_loss_min=45)), [(0, 120)], until=120)
    assert events == [("raised", "signal_loss", 45)]


def test_glucose_repeats_pause_during_signal_loss():
    events = play(engine(), [(0, 50), (40, 50)], until=41)
    assert only(events, A.URGENT_LOW) == [
        ("raised", 0), ("repeated", 5), ("repeated", 10), ("repeated", 15), ("repeated", 20),
        ("repeated", 40),  # overdue since 25, sounded once when readings resume
    ]  # fmt: skip
    assert only(events, A.SIGNAL_LOSS) == [("raised", 20), ("cleared", 40)]


# --- sensor issue and failure -----------------------------------------------------------------


def test_sensor_issue_explains_missing_readings_and_a_failure_is_final():
    eng = engine()
    script = [
        (0, 120),
        (3, "sensor", True, False),
        (60, "sensor", False, False),
        (85, 65),
        (90, "sensor", False, True),
        (95, 40),
        (96, "sensor", True, False),
    ]
    events = play(eng, script, until=100)
    assert events == [
        ("raised", "sensor_issue", 3),
        ("cleared", "sensor_issue", 60),
        ("raised", "signal_loss", 80),  # 20 min after the issue ended
        ("cleared", "signal_loss", 85),
        ("raised", "low", 85),
        ("cleared", "low", 90),
        ("raised", "sensor_failed", 90),
    ]
    assert eng.get_timer() is None  # no reminders, no signal loss after a failure
    assert run_until(eng, START + G7.end_ms + DAY_MS) == []


def test_a_sensor_issue_learnt_during_signal_loss_explains_it_and_a_reading_ends_it():
    """The sensor answered (its Status says it withholds readings): the signal is not lost.
    A current reading means the sensor measures again: the issue is over (issue 13, defect 7)."""
    eng = engine()
    script = [(0, 120), (30, "sensor", True, False), (50, 118)]
    assert play(eng, script, until=80) == [
        ("raised", "signal_loss", 20),
        ("cleared", "signal_loss", 30),
        ("raised", "sensor_issue", 30),
        ("cleared", "sensor_issue", 50),  # the reading at 50 (no Status said so)
        ("raised", "signal_loss", 70),  # 20 min after it, as ever
    ]
    assert not eng.sensor_issue


def test_a_backfilled_reading_does_not_end_a_sensor_issue():
    eng = engine()
    play(eng, [(0, 120), (8, "sensor", True, False)], until=10)
    eng.reading(at(12), 121, None, at(5))  # taken before the issue, fetched late
    assert drain(eng) == []
    assert eng.sensor_issue and eng.active == {A.SENSOR_ISSUE}


def test_a_session_stopped_before_its_end_is_over_at_once():
    """Stop Session (by another collector, or the user on the sensor): replace sensor now;
    glucose alerts, signal loss and a sensor issue clear; no reminders follow; the state
    survives a restart."""
    eng = engine()
    play(eng, [(0, 60), (5, "sensor", True, False)], until=10)
    assert eng.active == {A.LOW, A.SENSOR_ISSUE}
    eng.session_stopped(at(12))
    events = [(KIND[type(e)], e.alert.value, minutes_of(e.t_ms)) for e in drain(eng)]
    assert sorted(events) == [
        ("cleared", "low", 12),
        ("cleared", "sensor_issue", 12),
        ("raised", "replace_sensor", 12),
    ]
    assert eng.get_timer() is None  # no signal loss, no reminders, no repeats
    restored = AlertEngine.from_state(AlertSettings(), G7, json.loads(json.dumps(eng.to_state())))
    assert run_until(restored, START + G7.end_ms + DAY_MS) == []
    eng.sensor_state(at(20), issue=False, failed=True)  # too late to matter
    assert drain(eng) == []


def test_alert_state_saved_before_stopped_sessions_were_kept_still_loads():
    eng = engine()
    state = eng.to_state()
    del state["stopped_at_ms"]
    assert AlertEngine.from_state(AlertSettings(), G7, state).to_state() == eng.to_state()


# --- session reminders ------------------------------------------------------------------------

G7_REMINDERS = [
    ("raised", "session_ending", -24 * 60, "session ends in 24 h"),
    ("raised", "session_ending", -6 * 60, "session ends in 6 h"),
    ("raised", "session_ending", -2 * 60, "session ends in 2 h"),
    ("raised", "session_ending", -30, "session ends in 30 min"),
    ("cleared", "session_ending", 0, None),
    ("raised", "grace_period", 0, "grace period started: sensor stops in 12 h"),
    ("raised", "grace_period", 12 * 60 - 120, "grace period ends in 2 h"),
    ("raised", "grace_period", 12 * 60 - 30, "grace period ends in 30 min"),
    ("cleared", "grace_period", 12 * 60, None),
    ("raised", "replace_sensor", 12 * 60, "replace sensor now"),
]
G6_REMINDERS = [*G7_REMINDERS[:5], ("raised", "replace_sensor", 0, "replace sensor now")]


@pytest.mark.parametrize(("profile", "expected"), [(G7, G7_REMINDERS), (G6, G6_REMINDERS)])
def test_session_reminders_at_the_listed_offsets(profile, expected):
    eng = engine(NO_SIGNAL_LOSS, profile=profile)
    expiry = START + profile.session_ms
    events = run_until(eng, START + profile.end_ms + DAY_MS)
    got = [
        (KIND[type(e)], e.alert.value, (e.t_ms - expiry) / MINUTE_MS, getattr(e, "reason", None))
        for e in events
    ]
    assert got == expected
    assert eng.get_timer() is None


def test_acknowledging_a_reminder_does_not_skip_the_next():
    eng = engine(NO_SIGNAL_LOSS, profile=G6)
    expiry = START + G6.session_ms
    run_until(eng, expiry - DAY_MS)
    eng.acknowledge(A.SESSION_ENDING, expiry - DAY_MS + MINUTE_MS)
    assert eng.acknowledged(A.SESSION_ENDING)
    events = run_until(eng, expiry - 6 * HOUR_MS)
    assert [(type(e), e.alert) for e in events] == [(AlertRaised, A.SESSION_ENDING)]
    assert not eng.acknowledged(A.SESSION_ENDING)


@pytest.mark.parametrize("offsets", [(24 * 60, 6 * 60, 2 * 60, 30), (30, 2 * 60, 24 * 60, 6 * 60)])
def test_only_the_latest_of_several_overdue_reminders_is_raised(offsets):
    eng = engine(AlertSettings(signal_loss_enabled=False, session_ending_min=offsets))
    expiry = START + G7.session_ms
    eng.handle_timer(expiry - HOUR_MS)  # 24 h, 6 h and 2 h reminders are all overdue
    assert [e.reason for e in drain(eng)] == ["session ends in 2 h"]
    assert eng.get_timer() == expiry - 30 * MINUTE_MS


@pytest.mark.parametrize(
    ("profile", "expected"),
    [(G7, ["grace period started: sensor stops in 12 h"]), (G6, ["replace sensor now"])],
)
def test_reminders_past_their_window_are_not_raised(profile, expected):
    eng = engine(NO_SIGNAL_LOSS, profile=profile)
    eng.handle_timer(START + profile.session_ms + HOUR_MS)  # first seen an hour after expiry
    assert [e.reason for e in drain(eng)] == expected
    assert A.SESSION_ENDING not in eng.active


# --- persistence ------------------------------------------------------------------------------

RESTART_SCRIPT = [
    *every_5(0, [120, 110, 100, 90, 80, 70, 60, 50, 50, 50, 50, 50, 50, 50, 52, 54]),
    (42, "ack", A.URGENT_LOW),
    (44, "ack", A.LOW),
    *every_5(80, [60, 80, 120, 200, 260, 300]),
    (106, "ack", A.HIGH),
    *every_5(150, [300, 240]),
]


def restarted(eng, profile=G7, settings=None):
    state = json.loads(json.dumps(eng.to_state()))
    return AlertEngine.from_state(settings or AlertSettings(), profile, state)


@pytest.mark.parametrize("cut", [1, 17, 36, 43, 58, 77, 104, 107, 125, 149, 151])
def test_a_restart_anywhere_gives_the_same_alerts(cut):
    expected = play(engine(), RESTART_SCRIPT, until=200)
    assert only(expected, A.URGENT_LOW_SOON)[0] == ("raised", 15)  # the script does its job
    assert ("raised", "signal_loss", 125) in expected
    eng = engine()
    events = play(eng, [s for s in RESTART_SCRIPT if s[0] < cut], until=cut)
    eng = restarted(eng)
    events += play(eng, [s for s in RESTART_SCRIPT if s[0] >= cut], until=200)
    assert events == expected


def test_a_restart_keeps_an_acknowledged_urgent_low_acknowledged():
    eng = engine()
    play(eng, [(0, 50), (2, "ack", A.URGENT_LOW), (5, 50)], until=6)
    eng = restarted(eng)
    assert eng.acknowledged(A.URGENT_LOW)
    events = play(eng, every_5(10, [50] * 5), until=33)
    assert only(events, A.URGENT_LOW) == [("repeated", 32)]


def test_a_restart_keeps_an_unacknowledged_urgent_low_repeating():
    eng = engine()
    play(eng, [(0, 50)], until=7)
    eng = restarted(eng)
    assert eng.active == {A.URGENT_LOW, A.LOW} and not eng.acknowledged(A.URGENT_LOW)
    assert eng.get_timer() == at(10)


def test_a_restart_does_not_repeat_reminders_already_given():
    eng = engine(NO_SIGNAL_LOSS)
    expiry = START + G7.session_ms
    first = run_until(eng, expiry - 5 * HOUR_MS)
    eng = restarted(eng, settings=NO_SIGNAL_LOSS)
    rest = run_until(eng, START + G7.end_ms)
    assert len([e for e in first + rest if e.alert is A.SESSION_ENDING]) == 5  # 4 raised, 1 cleared


def test_a_receiver_down_past_the_signal_loss_deadline_raises_it_on_restart():
    eng = engine()
    play(eng, [(0, 120)], until=10)
    eng = restarted(eng)
    eng.handle_timer(at(45))
    assert [(type(e), e.alert, e.t_ms) for e in drain(eng)] == [
        (AlertRaised, A.SIGNAL_LOSS, at(45))
    ]


def test_foreign_or_malformed_state_is_rejected():
    state = engine().to_state()
    with pytest.raises(ValueError, match="g7"):
        AlertEngine.from_state(AlertSettings(), G6, state)
    with pytest.raises(ValueError, match="alert state"):
        AlertEngine.from_state(AlertSettings(), G7, {**state, "active": {"low": {}}})
    with pytest.raises(ValueError):
        AlertEngine.from_state(AlertSettings(), G7, {**state, "active": {"nope": {}}})
    with pytest.raises(ValueError, match="version"):
        AlertEngine.from_state(AlertSettings(), G7, {**state, "version": 99})


# --- misuse -----------------------------------------------------------------------------------


def test_misuse_raises():
    eng = engine()
    eng.handle_timer(at(10))
    with pytest.raises(ValueError, match="backwards"):
        eng.handle_timer(at(5))
    with pytest.raises(ValueError, match="taken at"):
        eng.reading(at(20), 100, None, at(30))  # taken in the future
    with pytest.raises(ValueError, match="not a number"):
        eng.reading(at(20), float("nan"), None, at(20))


# --- properties -------------------------------------------------------------------------------

CONDITION_ALERTS = {*GLUCOSE_ALERTS, A.SIGNAL_LOSS, A.SENSOR_ISSUE, A.SENSOR_FAILED}


@hsettings(max_examples=60)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([1, 5, 5, 5, 10, 25, 40]),  # minutes since the previous step
            st.integers(40, 400),
            st.sampled_from([None, *AlertName]),  # acknowledge this first
        ),
        max_size=40,
    )
)
def test_alerts_alternate_and_follow_the_current_reading(steps):
    s = AlertSettings(rising_fast_enabled=True, falling_fast_enabled=True)
    eng = engine(s, profile=G6)
    t, raised, last_t = START + G6.warmup_ms - HOUR_MS, set(), 0
    for gap, g, ack in steps:
        t += gap * MINUTE_MS
        events = run_until(eng, t)
        if ack is not None:
            eng.acknowledge(ack, t)
        eng.reading(t, g, None, t)
        events += drain(eng)
        for e in events:
            assert e.t_ms >= last_t
            last_t = e.t_ms
            if e.alert not in CONDITION_ALERTS:
                continue
            if isinstance(e, AlertRaised):
                assert e.alert not in raised
                assert phase(G6, START, e.t_ms) in (Phase.ACTIVE, Phase.GRACE)
                raised.add(e.alert)
            else:
                assert e.alert in raised
                if isinstance(e, AlertCleared):
                    raised.discard(e.alert)
        live = phase(G6, START, t) is Phase.ACTIVE
        assert (A.URGENT_LOW in eng.active) == (live and g <= 55)
        assert (A.LOW in eng.active) == (live and g <= 70)
        assert (A.HIGH in eng.active) == (live and g >= 250)
        assert A.SIGNAL_LOSS not in eng.active
        assert raised == eng.active & CONDITION_ALERTS
        timer = eng.get_timer()
        assert timer is None or timer > t
