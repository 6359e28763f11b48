"""Built-in reference-glucose scenarios (sim/signal/scenarios.py) and the grid's peak kernel.

Expectations come from the definitions in the module docstrings (soft floor, gamma-shaped
kernel, the documented shape of each scenario), never from numbers read back from a run.
Statistical checks use a fixed seed and a margin of several standard errors, worked out in the
comment next to each bound, so they also hold for other seeds.
"""

from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import lfilter

from sim.signal.grid import MINUTES_PER_DAY, SAMPLE_MIN, peak_kernel
from sim.signal.scenarios import DAILY_LIFE, SCENARIOS, Scenario, soft_floor

SAMPLES_PER_DAY = int(MINUTES_PER_DAY / SAMPLE_MIN)  # 288


def generate(scenario: Scenario, n: int, samples: int, seed: int, chunk: int | None = None):
    """The whole run as one (n, samples) array, pulled ``chunk`` samples at a time."""
    stream = scenario.start(n, samples, np.random.default_rng(seed))
    chunk = chunk or samples
    parts = [stream.next(min(chunk, samples - at)) for at in range(0, samples, chunk)]
    return np.concatenate(parts, axis=1)


def clock_min(scenario: Scenario, samples: int) -> np.ndarray:
    """Time of day (minutes after midnight) of every sample."""
    return (np.arange(samples) * SAMPLE_MIN + scenario.clock_start_min) % MINUTES_PER_DAY


def full_days(scenario: Scenario, samples: int) -> np.ndarray:
    """Mask of the samples from the first midnight after the start to the last midnight."""
    to_midnight = (MINUTES_PER_DAY - scenario.clock_start_min) % MINUTES_PER_DAY
    first = int(np.ceil(to_midnight / SAMPLE_MIN))
    days = (samples - first) // SAMPLES_PER_DAY
    mask = np.zeros(samples, bool)
    mask[first : first + days * SAMPLES_PER_DAY] = True
    return mask


# --------------------------------------------------------------------------------------------
# Determinism and chunking


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_seed_same_numbers_whatever_the_chunk_size(name):
    # 2 days + 24 samples: 7 does not divide it, so the last chunk is a short one.
    scenario, n, samples = SCENARIOS[name], 40, 2 * SAMPLES_PER_DAY + 24
    whole = generate(scenario, n, samples, seed=5)
    assert whole.shape == (n, samples)
    assert np.isfinite(whole).all()
    for chunk in (1, 7, SAMPLES_PER_DAY):
        np.testing.assert_array_equal(generate(scenario, n, samples, seed=5, chunk=chunk), whole)
    np.testing.assert_array_equal(generate(scenario, n, samples, seed=5), whole)


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - {"flat"}))
def test_different_seeds_and_patients_differ(name):
    scenario = SCENARIOS[name]
    a = generate(scenario, 20, SAMPLES_PER_DAY, seed=1)
    b = generate(scenario, 20, SAMPLES_PER_DAY, seed=2)
    assert not np.array_equal(a, b)
    # Patients have their own basal level, drift and meals: no two rows are alike.
    assert len({row.tobytes() for row in a}) == len(a)


def test_flat_is_exactly_120_for_every_patient():
    glucose = generate(SCENARIOS["flat"], 30, 3 * SAMPLES_PER_DAY, seed=3, chunk=100)
    assert (glucose == 120.0).all()


# --------------------------------------------------------------------------------------------
# Soft floor: identity above 70; below, floor + (70 - floor)·exp((g - 70)/(70 - floor))


def test_soft_floor_formula_at_hand_computed_points():
    floor = 40.0
    g = np.array([400.0, 180.0, 70.0, 69.0, 55.0, 40.0, 10.0, -100.0])
    expected = [
        400.0,
        180.0,
        70.0,  # identity from 70 up
        40.0 + 30.0 * np.exp(-1.0 / 30.0),  # 69.0165...
        40.0 + 30.0 * np.exp(-15.0 / 30.0),  # 58.1959...
        40.0 + 30.0 * np.exp(-1.0),  # 51.0364...
        40.0 + 30.0 * np.exp(-2.0),  # 44.0601...
        40.0 + 30.0 * np.exp(-170.0 / 30.0),  # 40.1036...
    ]
    np.testing.assert_allclose(soft_floor(g, floor), expected, rtol=1e-14)
    # Another floor: span 70 - 50 = 20; at 60: 50 + 20·exp(-0.5)
    assert soft_floor(np.array([60.0]), 50.0)[0] == pytest.approx(50.0 + 20.0 * np.exp(-0.5))


def test_soft_floor_continuous_with_slope_one_at_70_and_never_reaching_the_floor():
    h = 1e-6
    left, at, right = soft_floor(np.array([70.0 - h, 70.0, 70.0 + h]), 40.0)
    assert at == 70.0
    # One-sided slopes: left (70 - f(70 - h))/h = exp(-h/30)·... -> 1 - O(h); right exactly 1.
    assert (at - left) / h == pytest.approx(1.0, abs=1e-5)
    assert (right - at) / h == pytest.approx(1.0, abs=1e-5)
    g = np.linspace(-400.0, 300.0, 70_001)
    out = soft_floor(g, 40.0)
    assert (out > 40.0).all()  # approaches 40 but never reaches it
    assert (np.diff(out) > 0).all()  # strictly increasing: no fold-back below 70
    assert (out >= np.minimum(g, 70.0)).all()  # it only ever lifts values
    assert (out <= np.maximum(g, 70.0)).all()  # and never lifts anything above 70


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_no_scenario_reaches_its_floor(name):
    scenario = SCENARIOS[name]
    glucose = generate(scenario, 100, 2 * SAMPLES_PER_DAY, seed=4)
    assert glucose.min() > scenario.floor_mgdl


# --------------------------------------------------------------------------------------------
# grid.peak_kernel: impulse response (t/tp)^2·exp(2(1 - t/tp)) on the 5-min grid


@pytest.mark.parametrize("peak_min", [50.0, 55.0, 60.0, 100.0, 210.0, 37.0])
def test_peak_kernel_impulse_response(peak_min):
    b, a = peak_kernel(peak_min)
    impulse = np.zeros(400)
    impulse[0] = 1.0
    response = lfilter(b, a, impulse)
    x = np.arange(400) * SAMPLE_MIN / peak_min
    np.testing.assert_allclose(response, x**2 * np.exp(2 * (1 - x)), rtol=1e-9, atol=1e-12)
    assert response[0] == 0.0  # starts flat: nothing in the sample of the event itself
    if peak_min % SAMPLE_MIN == 0:  # the peak is on the grid: exactly 1 at t = tp
        k = int(peak_min / SAMPLE_MIN)
        assert response[k] == pytest.approx(1.0, rel=1e-12)
        assert np.argmax(response) == k
    assert response.max() <= 1.0 + 1e-12


def test_peak_kernel_steepest_slope_is_about_1_70_over_tp():
    # d/dx x^2 e^{2(1-x)} = 2x(1-x) e^{2(1-x)}, largest at x = 1 - 1/sqrt 2:
    # (sqrt 2 - 1)·e^{sqrt 2} = 1.7038. On a fine grid (tp = 300 min, dt/tp = 1/60) the
    # steepest 5-min difference is within 0.1 % of it.
    peak_min = 300.0
    impulse = np.zeros(600)
    impulse[0] = 1.0
    response = lfilter(*peak_kernel(peak_min), impulse)
    steepest = np.diff(response).max() / SAMPLE_MIN
    exact = (np.sqrt(2) - 1) * np.exp(np.sqrt(2)) / peak_min
    assert steepest == pytest.approx(exact, rel=1e-3)


# --------------------------------------------------------------------------------------------
# Slow drift: white noise through a double pole at exp(-dt/tau), stationary SD drift_sd_mgdl


def test_drift_has_the_stated_sd_and_time_constant():
    # Drift alone, far above the soft floor: glucose = basal + drift.
    scenario = Scenario(
        "drift_only",
        basal_mgdl=1000.0,
        basal_sd_mgdl=0.0,
        meals=(),
        exercise_probability=0.0,
        dawn_mgdl=0.0,
    )
    n, samples = 400, 2 * SAMPLES_PER_DAY
    drift = generate(scenario, n, samples, seed=8) - 1000.0
    # The drift starts from N(0, sd^2) at rest and stays stationary: pooled over patients and
    # time, E[drift^2] = sd^2. Effective sample size: the drift decorrelates over ~2 tau
    # (300 min = 60 samples), so each patient gives about 576/60 ~ 10 independent values;
    # 400·10 = 4,000 -> relative SE of the variance sqrt(2/4000) = 2.2 %, of the SD 1.1 %.
    # Bound: 6 % (about 5 SE).
    sd = scenario.drift_sd_mgdl
    assert np.sqrt(np.mean(drift**2)) == pytest.approx(sd, rel=0.06)
    # Time constant: a critically damped pair of poles has autocorrelation
    # (1 + s/tau)·exp(-s/tau); at s = tau: 2/e = 0.736, at s = 3 tau: 4 e^-3 = 0.199.
    lag = round(scenario.drift_tau_min / SAMPLE_MIN)
    for multiple, expected in ((1, 2 / np.e), (3, 4 * np.exp(-3))):
        k = multiple * lag
        rho = np.mean(drift[:, k:] * drift[:, :-k]) / np.mean(drift**2)
        assert rho == pytest.approx(expected, abs=0.05)


# --------------------------------------------------------------------------------------------
# Documented scenario shapes


def test_daily_life_time_in_ranges():
    # Docstring: mean about 150 mg/dL, a few percent of time below 70; brief: 20-35 % above 180.
    # 300 patients x 3 days; patients differ in basal (SD 30), so the patient mean has SD
    # ~35 mg/dL -> SE of the mean ~2 mg/dL; of a time share ~0.2/sqrt(300) ~ 1.2 points.
    glucose = generate(DAILY_LIFE, 300, 3 * SAMPLES_PER_DAY, seed=21)
    assert 130.0 <= glucose.mean() <= 170.0
    below_70 = (glucose < 70).mean()
    # "A few percent": some time below 70 (boluses overshoot) but well under a tenth.
    assert 0.005 <= below_70 <= 0.10
    assert (glucose < 54).mean() < below_70
    assert 0.20 <= (glucose > 180).mean() <= 0.35


def test_meals_raise_the_average_at_the_documented_clock_times():
    # Breakfast 07:30, lunch 12:30, dinner 19:00. A meal with its bolus (ratio 1, peak 100 min)
    # adds meal(t) - 0.6·bolus(t) (equal areas: 60/100); that net curve peaks a little before
    # the meal kernel's 60 min. The mean over many patients at each clock time is that curve
    # smeared by the meal-time SD (45-60 min), so it rises after the meal time and peaks within
    # 15-90 min of it; a wrong clock offset would move it by hours.
    scenario = DAILY_LIFE
    impulse = np.zeros(200)
    impulse[0] = 1.0
    net = lfilter(*peak_kernel(scenario.meal_peak_min), impulse) - scenario.bolus_ratio * (
        scenario.meal_peak_min / scenario.bolus_peak_min
    ) * lfilter(*peak_kernel(scenario.bolus_peak_min), impulse)
    net_peak_min = np.argmax(net) * SAMPLE_MIN
    assert 30.0 <= net_peak_min <= 60.0

    n, samples = 400, 4 * SAMPLES_PER_DAY
    glucose = generate(scenario, n, samples, seed=22)
    clock = clock_min(scenario, samples)
    days = full_days(scenario, samples)
    grid = np.arange(0.0, MINUTES_PER_DAY, SAMPLE_MIN)
    profile = np.array([glucose[:, days & (clock == c)].mean() for c in grid])
    # SE of one profile point: SD across patient-days ~50 mg/dL / sqrt(400·3) ~ 1.5 mg/dL.
    for meal in scenario.meals[:3]:
        window = (grid >= meal.time_of_day_min - 60) & (grid <= meal.time_of_day_min + 180)
        peak = grid[window][np.argmax(profile[window])]
        assert meal.time_of_day_min + 15 <= peak <= meal.time_of_day_min + 90, (meal, peak)
        # A mean meal (75·e^{0.08} = 81 mg/dL) adds about 0.56·81 = 45 mg/dL at the net peak;
        # smeared over the meal-time SD still well over 8 mg/dL above the hour before.
        before = profile[grid == meal.time_of_day_min - 60][0]
        assert profile[grid == peak][0] - before > 8.0, meal


def test_nocturnal_hypo_goes_low_at_night():
    # A session starting at 13:00 (not the default 08:00), so the clock mapping matters.
    night = replace(SCENARIOS["nocturnal_hypo"], clock_start_min=13 * 60.0)
    day = replace(DAILY_LIFE, clock_start_min=13 * 60.0)
    n, samples = 300, 3 * SAMPLES_PER_DAY
    hypo = generate(night, n, samples, seed=23)
    normal = generate(day, n, samples, seed=24)
    clock = clock_min(night, samples)
    low = hypo < 70
    assert low.mean() > (normal < 70).mean() + 0.05
    # 00:00-06:00 is a quarter of the day; "mostly at night": over half the time below 70
    # lies there (daily life alone puts ~20 % of its lows there).
    assert low[:, clock < 360].sum() / low.sum() > 0.5
    # "to 45-60 mg/dL around 03:00": the dip's depth is basal - 52 (±8) and it peaks at 03:00
    # on average; its ±30-min timing costs ~2 % of the depth (1 - (30/210)^2), so before the
    # floor the median is ~52 + 2 + dawn (~1) = 55 and after it 40 + 30·exp(-15/30) = 58.
    # Median over 900 patient-nights; the drift (SD 40) spreads them, so its SE is ~1 mg/dL:
    # bound 45-63.
    at_3am = hypo[:, clock == 180]
    assert at_3am.shape[1] == 3  # 3 nights, all inside the run
    assert 45.0 <= np.median(at_3am) <= 63.0
    # "recovering by breakfast": at 07:00 the median is back above 70.
    assert np.median(hypo[:, clock == 420]) > 70.0


def steepest_per_patient_day(scenario: Scenario, seed: int, n: int = 300):
    """Largest rise and largest fall (mg/dL/min over one 5-min step) in each full day."""
    samples = 3 * SAMPLES_PER_DAY
    glucose = generate(scenario, n, samples, seed=seed)
    days = glucose[:, full_days(scenario, samples)].reshape(n, -1, SAMPLES_PER_DAY)
    rate = np.diff(days, axis=2) / SAMPLE_MIN
    return rate.max(axis=2), rate.min(axis=2)


def steepest_meal_rate(scenario: Scenario) -> tuple[float, float]:
    """Steepest rise and fall (mg/dL/min over one 5-min step) of a median-sized meal with its
    bolus, from the scenario's parameters and ``peak_kernel`` alone (no drift, no floor)."""
    impulse = np.zeros(400)
    impulse[0] = 1.0
    meal = lfilter(*peak_kernel(scenario.meal_peak_min), impulse)
    delay = round(scenario.bolus_delay_min / SAMPLE_MIN)
    bolus = np.roll(lfilter(*peak_kernel(scenario.bolus_peak_min), impulse), delay)
    bolus[:delay] = 0.0
    # Equal areas for a ratio of 1: the bolus amplitude is meal·ratio·meal_peak/bolus_peak.
    ratio = scenario.bolus_ratio * scenario.meal_peak_min / scenario.bolus_peak_min
    curve = scenario.meal_mgdl * (meal - ratio * bolus)
    rate = np.diff(curve) / SAMPLE_MIN
    return float(rate.max()), float(rate.min())


def test_fast_rise_rises_at_3_or_more_mgdl_per_min():
    # Docstring: "rises of 3-4.5 mg/dL/min". A median meal (140 mg/dL, 60-min peak, bolus 20
    # min late) rises at most 1.70·140/60 = 3.97 mg/dL/min.
    rise, _ = steepest_meal_rate(SCENARIOS["fast_rise"])
    assert 3.0 <= rise <= 4.5
    # Sizes spread by e^{0.15 Z}: a meal falls short of 3 only for Z < -1.85 (3 %), and there
    # are 3-4 meals a day, so nearly every day has a rise >= 3; the typical day's steepest
    # rise (the largest of several meals) is 3-6 mg/dL/min.
    rise, _ = steepest_per_patient_day(SCENARIOS["fast_rise"], seed=31)
    assert (rise >= 3.0).mean() > 0.9
    assert 3.0 <= np.median(rise) <= 6.0
    daily_rise, _ = steepest_per_patient_day(DAILY_LIFE, seed=31)
    assert (daily_rise >= 3.0).mean() < 0.5  # the stress scenario is what makes them common


def test_rapid_fall_falls_at_3_or_more_mgdl_per_min():
    # Docstring: "high glucose corrected by large, fast boluses: falls of 3-4 mg/dL/min" -- the
    # mirror image of fast_rise, and checked the same way: a median meal with its bolus falls
    # at 3-4.5 mg/dL/min at its steepest, and on a typical day the steepest fall is 3-6.
    scenario = SCENARIOS["rapid_fall"]
    _, fall = steepest_meal_rate(scenario)
    _, day_fall = steepest_per_patient_day(scenario, seed=32)
    assert (day_fall <= -3.0).any()
    _, daily_fall = steepest_per_patient_day(DAILY_LIFE, seed=32)
    assert (daily_fall <= -3.0).mean() < 0.1
    assert -4.5 <= fall <= -3.0, f"median meal falls at only {fall:.2f} mg/dL/min"
    assert -6.0 <= np.median(day_fall) <= -3.0, (
        f"steepest fall of the median day {np.median(day_fall):.2f} mg/dL/min; "
        f"days with a fall <= -3: {(day_fall <= -3.0).mean():.0%}"
    )


def test_prolonged_high_is_mostly_above_250():
    glucose = generate(SCENARIOS["prolonged_high"], 200, 2 * SAMPLES_PER_DAY, seed=33)
    # Basal 260 (SD 20) with under-dosed meals: "most of the time above 250".
    assert (glucose > 250).mean() > 0.5
    assert (glucose > 180).mean() > 0.9
