"""The sensor chain (sim/signal/sensor.py): BG -> IG -> mg/dL -> raw counts, and its artefacts.

Each artefact is switched on alone and checked against its definition in the module and in
shared/spec/sensor-model.md: exact identities where the model is deterministic (ideal sensor,
lag, calibration drift, first-day gain), and statistics with tolerances of several standard
errors (worked out in the comments) where it is random. Nothing is read back from a run.
"""

import dataclasses
from dataclasses import dataclass, replace

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.signal import lfilter

from firmware.transmitter.algorithm import counts_to_mgdl
from sim.signal.grid import MINUTES_PER_DAY, SAMPLE_MIN
from sim.signal.models import G6_SENSOR, G7_SENSOR, SENSOR_MODELS, ideal
from sim.signal.scenarios import DAILY_LIFE, SCENARIOS
from sim.signal.sensor import (
    AR2,
    Artefacts,
    SensorArray,
    SensorChunk,
    SensorModel,
    SensorState,
    noise_filter,
)

SAMPLES_PER_DAY = int(MINUTES_PER_DAY / SAMPLE_MIN)  # 288
FLAT = SCENARIOS["flat"]  # 120 mg/dL, clock start 08:00
FIELDS = [f.name for f in dataclasses.fields(SensorChunk) if f.name != "start"]


def only(model: SensorModel, **on: bool) -> SensorModel:
    """``model`` with every artefact off except the named ones."""
    return replace(model, artefacts=replace(Artefacts.none(), **on))


def run(model, source, n, samples, seed, chunk=None) -> dict:
    """Every SensorChunk field over the whole run, chunks concatenated along time."""
    array = SensorArray(model, source, n, samples, seed)
    chunks = list(array.chunks(chunk or samples))
    starts = [c.start for c in chunks]
    assert starts == list(range(0, samples, chunk or samples))
    out = {name: np.concatenate([getattr(c, name) for c in chunks], axis=1) for name in FIELDS}
    out["time_min"] = np.concatenate([c.time_min for c in chunks])
    out["array"] = array
    return out


def runs_of(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, first, end) of every run of True in each row of a 2-D boolean array."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, firsts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # row-major order: pairs up with the starts
    return list(zip(rows.tolist(), firsts.tolist(), ends.tolist(), strict=True))


@dataclass
class Ramp:
    """A GlucoseSource: patient i's glucose is ``level + slope[i]·t`` (t in minutes)."""

    slope: np.ndarray
    level: float = 100.0
    name: str = "ramp"
    clock_start_min: float = 0.0

    def start(self, n, samples, rng):
        assert n == len(self.slope)
        return _TableStream(self.level + self.slope[:, None] * np.arange(samples) * SAMPLE_MIN)


@dataclass
class Table:
    """A GlucoseSource replaying a fixed (n, samples) array."""

    values: np.ndarray
    name: str = "table"
    clock_start_min: float = 0.0

    def start(self, n, samples, rng):
        assert self.values.shape == (n, samples)
        return _TableStream(self.values)


class _TableStream:
    def __init__(self, values: np.ndarray) -> None:
        self.values, self.position = values, 0

    def next(self, length):
        out = self.values[:, self.position : self.position + length].copy()
        self.position += length
        return out


# --------------------------------------------------------------------------------------------
# Chunking and seeds


def busy(model: SensorModel) -> SensorModel:
    """Every artefact on and frequent, so a short run shows each of them."""
    return replace(
        model,
        artefacts=Artefacts(),
        survival_10_days=0.02,  # ~30 % fail within 2 days
        issues_per_day=3.0,
        compression_per_night=2.0,
        dropout_start=0.03,
    )


@pytest.mark.parametrize("model", [G6_SENSOR, G7_SENSOR], ids=lambda m: m.name)
def test_every_field_is_the_same_whatever_the_chunk_size(model):
    model = busy(model)
    n, samples = 40, SAMPLES_PER_DAY + 200  # over a day (day-1 dropouts) and a night
    whole = run(model, DAILY_LIFE, n, samples, seed=11)
    states = set(np.unique(whole["state"]).tolist())
    assert states == {int(s) for s in SensorState}, "every state must occur for a fair test"
    assert (whole["array"].compressions != []) and (whole["array"].issues != [])
    for chunk in (1, 7, SAMPLES_PER_DAY, samples - 1):
        chunked = run(model, DAILY_LIFE, n, samples, seed=11, chunk=chunk)
        for name in FIELDS:
            a, b = whole[name], chunked[name]
            assert a.dtype == b.dtype, name
            assert np.array_equal(a, b, equal_nan=True), (chunk, name)
        np.testing.assert_array_equal(chunked["time_min"], np.arange(samples) * SAMPLE_MIN)


def test_same_seed_same_run_other_seed_other_run():
    model = busy(G7_SENSOR)
    a = run(model, DAILY_LIFE, 30, 300, seed=7)
    b = run(model, DAILY_LIFE, 30, 300, seed=7)
    c = run(model, DAILY_LIFE, 30, 300, seed=8)
    d = run(model, DAILY_LIFE, 30, 300, seed=np.random.SeedSequence(7))  # same as seed 7
    for name in FIELDS:
        assert np.array_equal(a[name], b[name], equal_nan=True), name
        assert np.array_equal(a[name], d[name], equal_nan=True), name
    for name in ("reference_mgdl", "interstitial_mgdl", "sensor_mgdl", "raw_counts", "state"):
        assert not np.array_equal(a[name], c[name], equal_nan=True), name


def test_each_component_has_its_own_stream():
    # One generator per component (SeedSequence.spawn): switching artefacts on or off leaves
    # the others' numbers alone -- the same reference whatever the model, and the same noise
    # with or without dropouts (compared where both have a reading).
    n, samples = 30, 300
    full = run(G6_SENSOR, DAILY_LIFE, n, samples, seed=3)
    bare = run(ideal(G6_SENSOR), DAILY_LIFE, n, samples, seed=3)
    np.testing.assert_array_equal(full["reference_mgdl"], bare["reference_mgdl"])
    noise = run(only(G6_SENSOR, noise=True), FLAT, n, samples, seed=3)
    noisy_drops = run(only(G6_SENSOR, noise=True, dropouts=True), FLAT, n, samples, seed=3)
    both = noisy_drops["state"] == SensorState.OK
    assert 0 < both.mean() < 1
    np.testing.assert_array_equal(noise["sensor_mgdl"][both], noisy_drops["sensor_mgdl"][both])


# --------------------------------------------------------------------------------------------
# Ideal sensor


@pytest.mark.parametrize("name", sorted(SENSOR_MODELS))
def test_ideal_sensor_reports_the_reference(name):
    model = ideal(SENSOR_MODELS[name])
    assert model.artefacts == Artefacts.none()
    assert not any(getattr(model.artefacts, f.name) for f in dataclasses.fields(Artefacts))
    out = run(model, DAILY_LIFE, 100, 2 * SAMPLES_PER_DAY, seed=5)
    reference = out["reference_mgdl"]
    np.testing.assert_array_equal(out["interstitial_mgdl"], reference)
    np.testing.assert_array_equal(out["sensor_mgdl"], reference)
    assert (out["state"] == SensorState.OK).all()
    assert out["raw_counts"].dtype == np.int64
    # raw = round(S·g + B): |raw - (S·g + B)| <= 1/2, so the transmitter's inverse is within
    # half a count over the sensitivity (plus float rounding of S·g + B ~ 1e-11 counts).
    for i, calibration in enumerate(out["array"].calibrations):
        recovered = counts_to_mgdl(out["raw_counts"][i], calibration)
        bound = 0.5 / calibration.sensitivity_counts_per_mgdl * (1 + 1e-9)
        assert np.abs(recovered - reference[i]).max() <= bound


# --------------------------------------------------------------------------------------------
# BG -> IG lag: dIG/dt = (BG - IG)/tau, exact for BG linear between samples


def sensor_tau(array: SensorArray) -> np.ndarray:
    return -SAMPLE_MIN / np.log(array.lag_a)


def test_lag_on_a_ramp_is_exact():
    # A ramp from equilibrium at t = 0: IG(t) = BG(t) - m·tau·(1 - exp(-t/tau)) exactly, so
    # every sample matches, and after the transient IG = BG - m·tau.
    n, samples = 60, 240
    slope = np.linspace(-2.0, 3.0, n)  # mg/dL/min
    model = only(G6_SENSOR, lag=True)
    out = run(model, Ramp(slope), n, samples, seed=2, chunk=37)
    tau = sensor_tau(out["array"])
    low, high = model.tau_range_min
    assert ((tau >= low - 1e-9) & (tau <= high + 1e-9)).all()
    assert np.std(tau) > 0.5  # drawn per sensor
    t = out["time_min"][None, :]
    bg = out["reference_mgdl"]
    expected = bg - slope[:, None] * tau[:, None] * (1 - np.exp(-t / tau[:, None]))
    np.testing.assert_allclose(out["interstitial_mgdl"], expected, rtol=0, atol=1e-9)
    settled = out["interstitial_mgdl"][:, -1] - (bg[:, -1] - slope * tau)
    np.testing.assert_allclose(settled, 0.0, atol=1e-9)
    # Lag alone: the sensor reads IG.
    np.testing.assert_array_equal(out["sensor_mgdl"], out["interstitial_mgdl"])


def test_lag_on_a_constant_is_the_identity():
    out = run(only(G7_SENSOR, lag=True), FLAT, 20, 100, seed=4, chunk=9)
    np.testing.assert_allclose(out["interstitial_mgdl"], 120.0, rtol=1e-13)


def test_lag_matches_an_ode_solver_on_piecewise_linear_glucose():
    # An independent check: integrate dIG/dt = (BG - IG)/tau over each 5-min interval (BG
    # linear inside) with a tight-tolerance Runge-Kutta solver, from IG(0) = BG(0).
    n, samples = 4, 60
    rng = np.random.default_rng(0)
    bg = 150 + np.cumsum(rng.normal(0, 8, (n, samples)), axis=1)
    out = run(only(G6_SENSOR, lag=True), Table(bg), n, samples, seed=9, chunk=13)
    tau = sensor_tau(out["array"])
    ig = np.empty_like(bg)
    ig[:, 0] = bg[:, 0]
    for k in range(1, samples):
        t0 = (k - 1) * SAMPLE_MIN
        slope = (bg[:, k] - bg[:, k - 1]) / SAMPLE_MIN

        def rhs(t, y, k=k, t0=t0, slope=slope):
            return (bg[:, k - 1] + slope * (t - t0) - y) / tau

        solution = solve_ivp(rhs, (t0, t0 + SAMPLE_MIN), ig[:, k - 1], rtol=1e-11, atol=1e-11)
        ig[:, k] = solution.y[:, -1]
    np.testing.assert_allclose(out["interstitial_mgdl"], ig, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Noise: ARMA(4, 2) filter with the distribution of v + cc


def impulse_response(b, a, taps: int = 5000) -> np.ndarray:
    impulse = np.zeros(taps)
    impulse[0] = 1.0
    return lfilter(b, a, impulse)


def autocovariance(h: np.ndarray, lags: int = 21) -> np.ndarray:
    """acov(k) = sum_n h[n]·h[n + k] of a filter driven by unit white noise."""
    return np.array([h[: len(h) - k] @ h[k:] for k in range(lags)])


def ar2_autocovariance(p: AR2, lags: int = 21) -> np.ndarray:
    h = impulse_response([np.sqrt(p.variance)], [1.0, -p.alpha1, -p.alpha2])
    return autocovariance(h, lags)


NOISE_PAIRS = {
    "g6": (G6_SENSOR.v, G6_SENSOR.cc),
    "g7": (G7_SENSOR.v, G7_SENSOR.cc),
    # Published values (spec table): Facchinetti 2014, Vettoretti 2019 (G6)
    "facchinetti_2014": (AR2(1.013, -0.2135, 14.45), AR2(1.23, -0.3995, 11.3)),
    "vettoretti_2019": (AR2(1.220, -0.331, 3.641), AR2(1.34, -0.492, 5.538)),
    "swapped": (AR2(1.34, -0.492, 5.538), AR2(1.220, -0.331, 3.641)),
}


@pytest.mark.parametrize("pair", sorted(NOISE_PAIRS))
def test_noise_filter_has_the_autocovariance_of_v_plus_cc(pair):
    v, cc = NOISE_PAIRS[pair]
    b, a = noise_filter(v, cc)
    combined = autocovariance(impulse_response(b, a))
    expected = ar2_autocovariance(v) + ar2_autocovariance(cc)
    np.testing.assert_allclose(combined, expected, rtol=1e-9, atol=1e-12 * expected[0])
    # Minimum phase: the MA part's zeros are inside the unit circle (a stable inverse).
    assert (np.abs(np.roots(b)) < 1).all()


@pytest.mark.parametrize(
    "p", [AR2(1.220, -0.331, 3.641), AR2(1.34, -0.492, 5.538), AR2(1.27, -0.42, 7.64)]
)
def test_ar2_stationary_sd_is_the_impulse_response_variance(p):
    assert p.stationary_sd**2 == pytest.approx(ar2_autocovariance(p)[0], rel=1e-10)


@pytest.mark.parametrize("cc", [AR2(0.0, 0.0, 0.0), AR2(1.34, -0.492, 0.0)])
def test_noise_filter_without_a_common_component_is_v_alone(cc):
    v = AR2(1.27, -0.42, 7.64)  # Vettoretti 2018: no common component
    b, a = noise_filter(v, cc)
    h = impulse_response(b, a, taps=300)
    expected = impulse_response([np.sqrt(v.variance)], [1.0, -v.alpha1, -v.alpha2], taps=300)
    np.testing.assert_allclose(h, expected, rtol=1e-9, atol=1e-12)


def test_sensor_noise_has_the_stationary_sd_of_v_plus_cc():
    model = only(G6_SENSOR, noise=True)
    n, samples = 300, SAMPLES_PER_DAY
    out = run(model, FLAT, n, samples, seed=12, chunk=100)
    residual = out["sensor_mgdl"] - out["reference_mgdl"]
    variance = model.v.stationary_sd**2 + model.cc.stationary_sd**2
    # Pooled mean square (the true mean is 0). Its variance for n independent Gaussian series
    # of length T is 2·sigma^4·sum_k rho(k)^2 / (n·T); rho from the exact autocovariance.
    acov = ar2_autocovariance(model.v, lags=200) + ar2_autocovariance(model.cc, lags=200)
    rho = acov / acov[0]
    se = variance * np.sqrt(2 * (2 * np.sum(rho**2) - 1) / (n * samples))
    assert np.mean(residual**2) == pytest.approx(variance, abs=5 * se)
    # The mean: variance of the mean of one series is sum_k acov(k) / T.
    se_mean = np.sqrt((2 * acov.sum() - acov[0]) / (n * samples))
    assert abs(residual.mean()) < 5 * se_mean
    # Started in the stationary distribution (burn-in): the first sample has the full SD too
    # (300 values: relative SE of the variance sqrt(2/300) = 8 %; bound 35 %).
    assert np.mean(residual[:, 0] ** 2) == pytest.approx(variance, rel=0.35)


# --------------------------------------------------------------------------------------------
# Dropouts: Gilbert chain, good -> bad with p (x factor on day 1), bad -> good with r


def test_dropout_share_and_run_length():
    model = only(G6_SENSOR, dropouts=True)
    p, r, factor = model.dropout_start, model.dropout_end, model.dropout_day1_factor
    n, days = 300, 3
    out = run(model, FLAT, n, days * SAMPLES_PER_DAY, seed=13, chunk=500)
    state = out["state"]
    assert set(np.unique(state).tolist()) == {SensorState.OK, SensorState.DROPOUT}
    dropout = state == SensorState.DROPOUT
    after = dropout[:, SAMPLES_PER_DAY:]
    # Stationary share p/(p + r). The chain's indicator has lag-1 correlation l = 1 - p - r,
    # so the variance of the mean is pi(1 - pi)(1 + l)/(1 - l)/N: N = 300·576, pi = 4 %
    # -> SE 0.0012; bound 5 SE.
    pi = p / (p + r)
    lam = 1 - p - r
    se = np.sqrt(pi * (1 - pi) * (1 + lam) / (1 - lam) / after.size)
    assert after.mean() == pytest.approx(pi, abs=5 * se)
    # Day 1: p is doubled -> 2p/(2p + r) (the chain starts good and mixes in ~4 samples).
    day1 = dropout[:, :SAMPLES_PER_DAY]
    pi1 = factor * p / (factor * p + r)
    se1 = np.sqrt(pi1 * (1 - pi1) * (1 + lam) / (1 - lam) / day1.size)
    assert day1.mean() == pytest.approx(pi1, abs=5 * se1 + 0.002)
    assert day1.mean() > after.mean() + 10 * se
    # Run lengths are geometric with mean 1/r (= 4 samples) and variance (1 - r)/r^2; only
    # runs that end inside the window count (the last ones are cut off by the end of the run).
    lengths = np.array(
        [end - first for _, first, end in runs_of(after) if end < after.shape[1] and first > 0]
    )
    se_len = np.sqrt((1 - r) / r**2 / len(lengths))
    assert lengths.mean() == pytest.approx(1 / r, abs=5 * se_len)
    # Dropouts carry no reading.
    assert np.isnan(out["sensor_mgdl"][dropout]).all()
    assert (out["raw_counts"][dropout] == 0).all()


# --------------------------------------------------------------------------------------------
# Failures: Weibull time to failure, scale set by survival at 10 days


def test_failure_times_follow_the_weibull_survival():
    model = only(G6_SENSOR, failures=True)
    n = 2000
    array = SensorArray(model, FLAT, n, 1, seed=14)
    days = array.failure_sample * SAMPLE_MIN / MINUTES_PER_DAY
    assert (days > 0).all()
    # P(fail before 10 d) = 1 - S10; before 5 d = 1 - S10^((5/10)^k). Binomial SE with
    # n = 2000 is at most sqrt(.25/2000) = 0.011; bound 4 SE from the actual p.
    for horizon in (10.0, 5.0, 20.0):
        expected = 1 - model.survival_10_days ** ((horizon / 10.0) ** model.failure_shape)
        se = np.sqrt(expected * (1 - expected) / n)
        assert (days < horizon).mean() == pytest.approx(expected, abs=4 * se), horizon
    off = SensorArray(only(G6_SENSOR), FLAT, 10, 1, seed=14)
    assert np.isinf(off.failure_sample).all()


def test_a_failed_sensor_stays_failed_and_reports_nothing():
    # Fast failures (2 % alive at 10 days -> ~30 % fail within 2 days), other artefacts on.
    model = busy(G6_SENSOR)
    n, samples = 300, 2 * SAMPLES_PER_DAY
    out = run(model, DAILY_LIFE, n, samples, seed=15, chunk=100)
    state = out["state"]
    failed = state == SensorState.FAILED
    # Share failed within the 2 days: 1 - S10^((2/10)^k) = 29 %; binomial SE 2.6 %, bound 5 SE.
    expected = 1 - model.survival_10_days ** ((2 / 10) ** model.failure_shape)
    assert failed.any(axis=1).mean() == pytest.approx(expected, abs=5 * np.sqrt(0.25 / n))
    # Once FAILED, FAILED to the end, from the first sample at or after the failure time.
    first = np.ceil(out["array"].failure_sample)
    expected = np.arange(samples)[None, :] >= first[:, None]
    np.testing.assert_array_equal(failed, expected)
    # No reading unless OK; a reading whenever OK.
    reading = state == SensorState.OK
    assert np.isnan(out["sensor_mgdl"][~reading]).all()
    assert (out["raw_counts"][~reading] == 0).all()
    assert np.isfinite(out["sensor_mgdl"][reading]).all()
    assert (out["raw_counts"][reading] > 0).all()


# --------------------------------------------------------------------------------------------
# Compression lows: a sensitivity factor at night


def compression_factor(seed: int = 16):
    """The sensitivity factor of 300 sensors over 3 days: compression alone, on a flat 120."""
    model = only(G6_SENSOR, compression=True)
    out = run(model, FLAT, 300, 3 * SAMPLES_PER_DAY, seed=seed, chunk=200)
    clock = (out["time_min"] + FLAT.clock_start_min) % MINUTES_PER_DAY
    return model, out["sensor_mgdl"] / out["reference_mgdl"], clock


def test_compression_only_lowers_readings_and_only_at_night():
    model, factor, clock = compression_factor()
    compressed = factor < 1 - 1e-12
    # 0.3 lows a night, each ~1.5 h of lowered samples: a few percent of all samples.
    assert 0.005 < compressed.mean() < 0.1
    assert (factor <= 1 + 1e-12).all()  # it only ever lowers readings
    # A low starts between 23:00 and 07:00; its first lowered sample is at most one sample
    # later (07:05). It lasts onset + hold + 6·recovery <= 15 + 60 + 60 min: never past 09:15.
    for sensor, first, _end in runs_of(compressed):
        start_clock = clock[first]
        assert start_clock > 23 * 60 or start_clock <= 7 * 60 + SAMPLE_MIN, (sensor, first)
    daytime = (clock >= 9 * 60 + 15 + SAMPLE_MIN) & (clock < 23 * 60)
    assert not compressed[:, daytime].any()
    # Single lows reach depths up to the largest (0.5); the factor gets near 1 - 0.5.
    assert factor.min() < 1 - 0.9 * model.compression_depth[1]


def test_compression_never_drops_sensitivity_beyond_the_largest_depth():
    # Spec: "sensitivity drops 20-50 %"; the model's depth range is (0.2, 0.5).
    model, factor, _ = compression_factor()
    deepest = model.compression_depth[1]
    assert factor.min() >= 1 - deepest - 1e-9, (
        f"factor {factor.min():.3f} < {1 - deepest}: overlapping lows multiply"
    )


# --------------------------------------------------------------------------------------------
# Brief sensor issues: Poisson events, lognormal duration


def test_sensor_issue_share_matches_rate_times_mean_duration():
    rate = 1.0  # per day; ten times the default for a tight estimate
    model = replace(only(G6_SENSOR, sensor_issues=True), issues_per_day=rate)
    n, days = 300, 4
    out = run(model, FLAT, n, days * SAMPLES_PER_DAY, seed=17, chunk=300)
    issue = out["state"] == SensorState.ISSUE
    assert set(np.unique(out["state"]).tolist()) == {SensorState.OK, SensorState.ISSUE}
    runs = runs_of(issue)
    assert len(runs) > 0.5 * rate * n * days  # ~1,200 events, some merged by overlap
    # Mean duration: lognormal mean median·exp(sigma^2/2) = 40·e^0.32 = 55.1 min (rounded to
    # whole samples, at least one). Issues start uniformly, so a sample is covered with
    # probability 1 - exp(-rate·duration/day) (overlaps counted once; ~rate·duration = 3.8 %).
    mean_min = model.issue_median_min * np.exp(model.issue_sigma**2 / 2)
    expected = 1 - np.exp(-rate * mean_min / MINUTES_PER_DAY)
    # SE: Poisson count (1,200) and duration CV sqrt(e^0.64 - 1) = 0.95 -> relative SE
    # sqrt((1 + 0.95^2)/1200) = 4 %; bound 16 % (4 SE).
    assert issue.mean() == pytest.approx(expected, rel=0.16)
    assert np.isnan(out["sensor_mgdl"][issue]).all()
    assert (out["raw_counts"][issue] == 0).all()


# --------------------------------------------------------------------------------------------
# Calibration error and first-day gain


def test_calibration_error_without_spread_is_the_published_polynomial():
    model = replace(only(G6_SENSOR, calibration_error=True), a0_sd=0.0, b0_sd_mgdl=0.0)
    n, samples = 20, 10 * SAMPLES_PER_DAY
    out = run(model, DAILY_LIFE, n, samples, seed=18, chunk=1000)
    t = out["time_min"] / MINUTES_PER_DAY  # days since insertion
    # Vettoretti 2019 (spec table): a(t) = 1.048 - 0.033 t + 0.002 t^2,
    # b(t) = -6.398 + 6.179 t - 0.448 t^2.
    assert model.a == (1.048, -0.033, 0.002) and model.b == (-6.398, 6.179, -0.448)
    a = 1.048 - 0.033 * t + 0.002 * t**2
    b = -6.398 + 6.179 * t - 0.448 * t**2
    expected = a * out["reference_mgdl"] + b
    np.testing.assert_allclose(out["sensor_mgdl"], expected, rtol=1e-12, atol=1e-10)


def test_calibration_spread_is_per_sensor():
    model = only(G6_SENSOR, calibration_error=True)
    array = SensorArray(model, FLAT, 2000, 1, seed=19)
    # a0 ~ N(1.048, 0.09^2), b0 ~ N(-6.398, 3^2): SE of the mean sd/sqrt(2000), of the SD
    # sd/sqrt(4000); bounds 5 SE.
    for values, mean, sd in ((array.a0, model.a[0], model.a0_sd), (array.b0, model.b[0], 3.0)):
        assert values.mean() == pytest.approx(mean, abs=5 * sd / np.sqrt(2000))
        assert values.std() == pytest.approx(sd, abs=5 * sd / np.sqrt(4000))


def test_first_day_gain_decays_with_its_time_constant():
    model = replace(only(G6_SENSOR, first_day=True), first_day_gain_mean=0.2, first_day_gain_sd=0.0)
    out = run(model, DAILY_LIFE, 10, 2 * SAMPLES_PER_DAY, seed=20, chunk=50)
    hours = out["time_min"] / 60
    gain = 1 + 0.2 * np.exp(-hours / model.first_day_tau_h)
    np.testing.assert_allclose(out["sensor_mgdl"], gain * out["reference_mgdl"], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Gaps in the reference (recorded traces)


def test_a_gap_in_the_reference_gives_no_reading_and_the_lag_restarts_after_it():
    values = np.full((2, 40), 150.0)
    values[:, 10:20] = np.nan  # a 50-min gap
    values[:, 20:] = 90.0  # glucose is different after it
    with np.errstate(all="raise"):  # no invalid casts or NaN arithmetic warnings escape
        out = run(only(G7_SENSOR, lag=True), Table(values), 2, 40, 1, chunk=7)
    state, raw, measured = out["state"], out["raw_counts"], out["sensor_mgdl"]
    assert (state[:, 10:20] == SensorState.DROPOUT).all()
    assert (raw[:, 10:20] == 0).all() and np.isnan(measured[:, 10:20]).all()
    # After the gap IG restarts in equilibrium with the new level: no NaN carried over.
    assert (state[:, 20:] == SensorState.OK).all()
    np.testing.assert_allclose(measured[:, 20:], 90.0)
    assert (raw[:, 20:] > 0).all()
