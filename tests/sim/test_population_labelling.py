"""Alert-performance labelling (behavior.md: true alert within +-15 min, predictive within 30 min
after; event detected by an alert 30 min before to 15 min after) on crafted timelines whose
answers can be checked by hand."""

import numpy as np
import pytest

from sim.population.labelling import (
    AlertRule,
    Tally,
    episodes,
    label,
    reference_events,
    rules,
    warned_before,
)

LOW = AlertRule("low", 70, below=True)
ULS = AlertRule("urgent_low_soon", 55, below=True, predictive=True)
HIGH = AlertRule("high", 250, below=False)


def timeline(points, minutes=300):
    """A 5-min reference at 120 mg/dL with ``{minute: mg/dL}`` put in."""
    t = np.arange(0, minutes + 1, 5, dtype=float)
    ref = np.full(t.shape, 120.0)
    for minute, value in points.items():
        ref[minute // 5] = value
    return t, ref


def test_an_alert_within_15_min_of_the_reference_past_the_threshold_is_true():
    t, ref = timeline({100: 70, 105: 65})  # reference <= 70 at 100 and 105 min
    # raised at 85 (100 is 15 min later: true), at 121 (105 is 16 min before: false)
    result = label(t, ref, [(85, 90), (121, 130)], LOW, 0, 300)
    assert (result.alerts, result.true_alerts) == (2, 1)


def test_a_predictive_alert_is_true_only_if_the_reference_is_past_within_the_30_min_after():
    t, ref = timeline({100: 55})
    # 70: 100 is 30 min after (true); 105: 100 is 5 min *before* (false for a predictive alert)
    result = label(t, ref, [(70, 75), (105, 110)], ULS, 0, 300)
    assert (result.alerts, result.true_alerts) == (2, 1)
    # the same alert as a threshold alert would be confirmed by the sample 5 min before
    assert label(t, ref, [(105, 110)], AlertRule("x", 55, below=True), 0, 300).true_alerts == 1


def test_an_event_is_detected_by_an_alert_from_30_min_before_to_15_min_after():
    t, ref = timeline({100: 69, 200: 69})
    # event at 100: alert raised at 70 (30 min before) detects it; event at 200: the alert
    # raised at 216 (16 min after) is too late: missed
    result = label(t, ref, [(70, 72), (216, 220)], LOW, 0, 300)
    assert (result.events, result.detected) == (2, 1)
    # raised at 69 and cleared at 69.5: over before the window opened, missed
    assert label(t, ref, [(69, 69.5)], LOW, 0, 300).detected == 0


def test_an_alert_still_active_when_the_window_opens_detects_the_event():
    t, ref = timeline({100: 69})
    assert label(t, ref, [(10, 80)], LOW, 0, 300).detected == 1
    assert label(t, ref, [(10, 69)], LOW, 0, 300).detected == 0


def test_an_event_is_one_onset_however_long_it_lasts():
    t, ref = timeline({100: 60, 105: 50, 110: 60, 115: 69, 200: 70})
    events = reference_events(t, ref, LOW, 0)
    assert list(events) == [100, 200]  # 200: exactly 70 counts (<=), a new onset


def test_events_before_the_monitored_window_and_episodes_under_way_are_not_counted():
    t, ref = timeline({0: 60, 5: 60, 20: 65, 150: 60})
    # 0-5: under way from the start (no onset); 20: onset before warm-up end (30 min)
    assert list(reference_events(t, ref, LOW, 30)) == [150]


def test_high_alerts_look_upwards():
    t, ref = timeline({100: 250, 105: 260})
    result = label(t, ref, [(95, 130)], HIGH, 0, 300)
    assert (result.true_alerts, result.events, result.detected) == (1, 1, 1)


def test_false_alerts_per_day_count_the_monitored_days():
    t, ref = timeline({}, minutes=2 * 1440 + 30)
    result = label(t, ref, [(100, 110), (500, 510)], LOW, 30, 2 * 1440 + 30)
    assert result.monitored_days == 2.0
    summary = result.to_json()
    assert summary["false_alerts"] == 2 and summary["false_alerts_per_day"] == 1.0
    assert summary["true_alert_rate"] == 0.0 and summary["detection_rate"] is None


def test_tallies_add_up_and_rates_are_pooled():
    total = Tally(2, 1, 4, 3, 1.0) + Tally(2, 2, 0, 0, 1.0)
    assert total.to_json()["true_alert_rate"] == 75.0
    assert total.to_json()["detection_rate"] == 75.0
    assert total.to_json()["false_alerts_per_day"] == 0.5


def test_episodes_pair_raised_and_cleared_and_run_to_the_end():
    records = [
        {"t_min": 10.0, "kind": "alert_raised", "alert": "low"},
        {"t_min": 15.0, "kind": "alert_repeated", "alert": "low"},
        {"t_min": 12.0, "kind": "alert_raised", "alert": "high"},
        {"t_min": 40.0, "kind": "alert_cleared", "alert": "low"},
        {"t_min": 50.0, "kind": "reading"},
        {"t_min": 90.0, "kind": "alert_raised", "alert": "low"},
    ]
    assert episodes(records, "low", 300.0) == [(10.0, 40.0), (90.0, 300.0)]


def test_the_anchor_measure_counts_falls_below_70_warned_in_the_30_min_before():
    t, ref = timeline({100: 69, 200: 69.9, 250: 70})  # 250: exactly 70 is not below 70
    warned, falls = warned_before(t, ref, [(75, 80), (201, 210)], 70, 0)
    assert (warned, falls) == (1, 2)  # 100 warned at 75; 200 not (201 is after the fall)


@pytest.mark.parametrize("name, level", [("urgent_low", 55), ("low", 70), ("high", 250)])
def test_the_rules_use_the_receiver_thresholds(name, level):
    assert {r.alert: r.threshold_mgdl for r in rules()}[name] == level
