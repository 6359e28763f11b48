"""The sensor chain, vectorised over many sensors: BG -> interstitial -> raw counts.

Per sample (5-min grid), for sensor ``i`` at ``t`` days since insertion
(shared/spec/sensor-model.md):

    IG       first-order lag of BG, time constant tau_i (Rebrin 1999), exact for BG linear
             between samples
    mg/dL    a_i(t)·c_i(t)·IG + b_i(t) + v_i + cc_i + w_i(t)·IG
               a, b   calibration error, quadratic drift in t (Padova model family:
                      Facchinetti 2014, Vettoretti 2019), per-sensor spread of a0 and b0
               v, cc  AR(2) noise streams on the 5-min grid
               c      compression lows at night (sensitivity drop, Baysal 2014)
               w      first-day gain error decaying as exp(-t/tau_wu) (Marak 2023 anchor)
    raw      round(S_i·mg/dL + B_i): the counts the transmitter sees; (S_i, B_i) is the
             sensor's factory calibration code, which the transmitter applies
             (``firmware.transmitter.algorithm``)

and a state per sample: ``OK``, ``DROPOUT`` (Gilbert two-state chain: no reading produced),
``ISSUE`` (brief sensor issue: readings withheld) or ``FAILED`` (Weibull time to failure).

Chunks: ``SensorArray.chunks(size)`` yields the run in pieces; every random draw is
time-major and every filter carries its state, so the numbers do not depend on ``size``.
Randomness: one ``SeedSequence`` spawned into one generator per component.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from firmware.events import SensorState
from firmware.transmitter.algorithm import FactoryCalibration
from sim.signal.grid import MINUTES_PER_DAY, SAMPLE_MIN, Filter, Normals
from sim.signal.scenarios import GlucoseSource


@dataclass(frozen=True, slots=True)
class Artefacts:
    """Which departures from the ideal sensor are on. ``Artefacts.none()`` is the ideal sensor."""

    lag: bool = True
    calibration_error: bool = True
    noise: bool = True
    first_day: bool = True
    dropouts: bool = True
    failures: bool = True
    compression: bool = True
    sensor_issues: bool = True

    @classmethod
    def none(cls) -> Artefacts:
        return cls(**{name: False for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class AR2:
    """``x[k] = alpha1·x[k-1] + alpha2·x[k-2] + e[k]``, ``e ~ N(0, variance)``, mg/dL."""

    alpha1: float
    alpha2: float
    variance: float

    @property
    def stationary_sd(self) -> float:
        a1, a2 = self.alpha1, self.alpha2
        return float(np.sqrt(self.variance * (1 - a2) / ((1 + a2) * ((1 - a2) ** 2 - a1 * a1))))


@dataclass(frozen=True, slots=True)
class SensorModel:
    """Parameters of one sensor type. See PROFILE_MODELS for the published values used."""

    name: str
    # BG -> IG (Basu 2013: 5-6 min in healthy adults; truncated normal)
    tau_min: float = 6.0
    tau_sd_min: float = 1.5
    tau_range_min: tuple[float, float] = (2.0, 15.0)
    # calibration error a(t) = a0 + a1 t + a2 t^2, b(t) = b0 + b1 t + b2 t^2, t in days
    a: tuple[float, float, float] = (1.0, 0.0, 0.0)
    b: tuple[float, float, float] = (0.0, 0.0, 0.0)
    a0_sd: float = 0.0  # per-sensor spread (tuning; not published)
    b0_sd_mgdl: float = 0.0
    v: AR2 = AR2(0.0, 0.0, 0.0)  # sensor-specific noise
    cc: AR2 = AR2(0.0, 0.0, 0.0)  # common-component noise
    # first day: gain error w0·exp(-t/tau), w0 ~ N(mean, sd)
    first_day_gain_mean: float = 0.0
    first_day_gain_sd: float = 0.0
    first_day_tau_h: float = 8.0
    # Gilbert dropouts: P(good -> bad), P(bad -> good) per sample; x factor on day 1
    dropout_start: float = 0.0105
    dropout_end: float = 0.25
    dropout_day1_factor: float = 2.0
    # failures: Weibull shape; scale set by the share of sensors alive at 10 days
    failure_shape: float = 1.5
    survival_10_days: float = 0.87
    # compression lows, nights 23:00-07:00
    compression_per_night: float = 0.3
    compression_depth: tuple[float, float] = (0.2, 0.5)
    compression_onset_min: tuple[float, float] = (5.0, 15.0)
    compression_hold_min: tuple[float, float] = (15.0, 60.0)  # spec: 15-90; 60 gives ~3 %
    compression_recovery_min: float = 10.0
    # brief sensor issues: Poisson events, lognormal duration
    issues_per_day: float = 0.1
    issue_median_min: float = 40.0
    issue_sigma: float = 0.8
    # factory calibration code (counts): sensitivity and background, per sensor
    sensitivity_counts: tuple[float, float] = (770.0, 60.0)  # mean, sd
    background_counts: tuple[float, float] = (25_700.0, 1_500.0)
    artefacts: Artefacts = field(default_factory=Artefacts)


@dataclass(frozen=True, slots=True)
class SensorChunk:
    """Samples ``[start, start + length)`` of every sensor; arrays are ``(n, length)``."""

    start: int
    reference_mgdl: np.ndarray  # blood glucose (the truth)
    interstitial_mgdl: np.ndarray
    sensor_mgdl: np.ndarray  # what the sensor measures, before the transmitter (NaN: none)
    raw_counts: np.ndarray  # int64; 0 where there is no reading
    state: np.ndarray  # SensorState codes, uint8

    @property
    def time_min(self) -> np.ndarray:
        return (self.start + np.arange(self.reference_mgdl.shape[1])) * SAMPLE_MIN


COMPONENTS = ("glucose", "parameters", "noise", "dropouts", "failures", "compression", "issues")


class SensorArray:
    """``n`` sensors inserted at time 0, each on its own patient, over ``samples`` samples."""

    def __init__(
        self,
        model: SensorModel,
        source: GlucoseSource,
        n: int,
        samples: int,
        seed: int | np.random.SeedSequence,
    ) -> None:
        sequence = (
            seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        )
        rngs = dict(
            zip(
                COMPONENTS, map(np.random.default_rng, sequence.spawn(len(COMPONENTS))), strict=True
            )
        )
        self.model, self.n, self.samples, self.position = model, n, samples, 0
        on = model.artefacts
        self.glucose = source.start(n, samples, rngs["glucose"])

        p = rngs["parameters"]
        low, high = model.tau_range_min
        tau = np.clip(model.tau_min + model.tau_sd_min * p.standard_normal(n), low, high)
        self.lag_a = np.exp(-SAMPLE_MIN / tau)
        self.lag_c = 1.0 - tau / SAMPLE_MIN * (1.0 - self.lag_a)
        self.ig: np.ndarray | None = None  # IG and BG at the previous sample
        self.bg: np.ndarray | None = None
        self.a0 = model.a[0] + model.a0_sd * p.standard_normal(n)
        self.b0 = model.b[0] + model.b0_sd_mgdl * p.standard_normal(n)
        self.first_day = model.first_day_gain_mean + model.first_day_gain_sd * p.standard_normal(n)
        mean, sd = model.sensitivity_counts
        sensitivity = mean + sd * p.standard_normal(n)
        mean, sd = model.background_counts
        background = mean + sd * p.standard_normal(n)
        self.calibrations = tuple(
            FactoryCalibration(float(s), float(b))
            for s, b in zip(sensitivity, background, strict=True)
        )
        self.sensitivity, self.background = sensitivity, background

        self.noise = _NoiseStream(model.v, model.cc, n, rngs["noise"]) if on.noise else None
        self.dropout_rng = rngs["dropouts"]
        self.in_dropout = np.zeros(n, bool)

        scale_days = 10.0 / (-np.log(model.survival_10_days)) ** (1 / model.failure_shape)
        life_days = scale_days * (-np.log(rngs["failures"].random(n))) ** (1 / model.failure_shape)
        self.failure_sample = np.where(
            on.failures, life_days * MINUTES_PER_DAY / SAMPLE_MIN, np.inf
        )
        self.compressions = (
            _compressions(model, n, samples, source.clock_start_min, rngs["compression"])
            if on.compression
            else []
        )
        self.issues = _issues(model, n, samples, rngs["issues"]) if on.sensor_issues else []

    def chunks(self, size: int) -> Iterator[SensorChunk]:
        """The whole run, ``size`` samples at a time."""
        while self.position < self.samples:
            yield self.next(min(size, self.samples - self.position))

    def next(self, length: int) -> SensorChunk:
        model, on, n = self.model, self.model.artefacts, self.n
        start = self.position
        self.position += length
        bg = self.glucose.next(length)
        ig = self._lag(bg) if on.lag else bg
        days = (start + np.arange(length)) * (SAMPLE_MIN / MINUTES_PER_DAY)
        gain = np.ones(n)[:, None]  # (n, 1) or (n, length): broadcast until something varies
        offset = np.zeros(n)[:, None]
        if on.calibration_error:
            gain = self.a0[:, None] + (model.a[1] * days + model.a[2] * days**2)
            offset = self.b0[:, None] + (model.b[1] * days + model.b[2] * days**2)
        if on.first_day:
            gain = gain + self.first_day[:, None] * np.exp(-days * 24.0 / model.first_day_tau_h)
        if self.compressions:
            gain = gain * self._compression(start, length)
        measured = gain * ig + offset
        if self.noise is not None:
            measured += self.noise(length)

        state = np.zeros((n, length), np.uint8)
        if on.dropouts:
            state[self._dropouts(start, length)] = SensorState.DROPOUT
        for sensor, first, last in self.issues:
            if last > start and first < start + length:
                state[sensor, max(first - start, 0) : min(last - start, length)] = SensorState.ISSUE
        state[np.isnan(bg)] = SensorState.DROPOUT  # no reference glucose, no reading
        failed = (start + np.arange(length))[None, :] >= self.failure_sample[:, None]
        state[failed] = SensorState.FAILED

        reading = state == SensorState.OK
        measured = np.where(reading, measured, np.nan)
        counts = self.sensitivity[:, None] * measured + self.background[:, None]
        return SensorChunk(
            start=start,
            reference_mgdl=bg,
            interstitial_mgdl=ig,
            sensor_mgdl=measured,
            raw_counts=np.rint(np.where(reading, counts, 0.0)).astype(np.int64),
            state=state,
        )

    def _lag(self, bg: np.ndarray) -> np.ndarray:
        """IG[k+1] = a·IG[k] + (1-a)·BG[k] + c·(BG[k+1] - BG[k]): exact for piecewise-linear BG."""
        ig = np.empty_like(bg)
        a, c = self.lag_a, self.lag_c
        previous_ig = bg[:, 0] if self.ig is None else self.ig  # start in equilibrium
        previous_bg = bg[:, 0] if self.bg is None else self.bg
        for k in range(bg.shape[1]):
            current = bg[:, k]
            previous_ig = a * previous_ig + (1.0 - a) * previous_bg + c * (current - previous_bg)
            # No reference (a gap in a recorded trace): IG is unknown; restart in equilibrium.
            previous_ig = np.where(np.isnan(previous_ig), current, previous_ig)
            previous_bg = current
            ig[:, k] = previous_ig
        self.ig, self.bg = previous_ig, previous_bg
        return ig

    def _dropouts(self, start: int, length: int) -> np.ndarray:
        """Gilbert chain: good -> bad with p (x factor on day 1), bad -> good with r."""
        model = self.model
        draws = self.dropout_rng.random((length, self.n))
        out = np.empty((self.n, length), bool)
        bad = self.in_dropout
        day1_end = MINUTES_PER_DAY / SAMPLE_MIN
        for k in range(length):
            p = model.dropout_start * (model.dropout_day1_factor if start + k < day1_end else 1.0)
            u = draws[k]
            bad = np.where(bad, u >= model.dropout_end, u < p)
            out[:, k] = bad
        self.in_dropout = bad
        return out

    def _compression(self, start: int, length: int) -> np.ndarray:
        """Sensitivity factor: ramps down by ``depth`` over ``onset``, holds, recovers with time
        constant ``recovery`` and ends (exactly 1 again) six time constants later."""
        factor = np.ones((self.n, length))
        for sensor, begin, depth, onset, hold, recovery in self.compressions:
            end = begin + onset + hold + 6 * recovery
            first = max(start, int(np.ceil(begin / SAMPLE_MIN)))
            last = min(start + length, int(np.ceil(end / SAMPLE_MIN)))
            if first >= last:
                continue
            t = np.arange(first, last) * SAMPLE_MIN - begin
            ramp = np.minimum(t / onset, 1.0)
            decay = np.exp(-np.maximum(t - onset - hold, 0.0) / recovery)
            # Overlapping lows do not compound: the deepest one holds.
            window = factor[sensor, first - start : last - start]
            np.minimum(window, 1.0 - depth * ramp * decay, out=window)
        return factor


def noise_filter(v: AR2, cc: AR2) -> tuple[np.ndarray, np.ndarray]:
    """One ARMA(4, 2) filter for white N(0, 1) input whose output has the distribution of
    ``v + cc`` (two independent AR(2) processes): the same spectrum, by spectral factorization.

    With ``A(z) = 1 - alpha1 z^-1 - alpha2 z^-2``, ``v + cc`` has spectrum
    ``N(z) / |A_v A_cc|^2``, ``N = var_v |A_cc|^2 + var_cc |A_v|^2``; ``N = g^2 |B|^2`` with
    ``B`` monic and minimum-phase (the roots of ``z^2 N(z)`` inside the unit circle).
    """

    def poly(p: AR2) -> np.ndarray:
        return np.array([1.0, -p.alpha1, -p.alpha2])

    def autocorrelation(c: np.ndarray) -> np.ndarray:  # lags 0, 1, 2
        return np.array([c @ c, c[:-1] @ c[1:], c[0] * c[2]])

    a_v, a_cc = poly(v), poly(cc)
    n0, n1, n2 = v.variance * autocorrelation(a_cc) + cc.variance * autocorrelation(a_v)
    roots = np.roots([n2, n1, n0, n1, n2])
    inside = roots[np.argsort(np.abs(roots))][:2] if len(roots) >= 2 else np.zeros(2)
    monic = np.real(np.poly(inside))
    gain = np.sqrt(n0 / (monic @ monic))
    return gain * monic, np.convolve(a_v, a_cc)


class _NoiseStream:
    """``v + cc`` for every sensor, from the stationary distribution on (after a burn-in of
    400 samples drawn before time 0)."""

    BURN_IN = 400

    def __init__(self, v: AR2, cc: AR2, n: int, rng: np.random.Generator) -> None:
        self.filter = Filter.create(*noise_filter(v, cc), n)
        self.normals = Normals(rng, n)
        self(self.BURN_IN)

    def __call__(self, length: int) -> np.ndarray:
        return self.filter(self.normals.draw(length))


def _compressions(
    model: SensorModel, n: int, samples: int, clock_start_min: float, rng: np.random.Generator
) -> list[tuple[int, float, float, float, float, float]]:
    """(sensor, start minute, depth, onset, hold, recovery) for every compression low, in
    session minutes; nights are 23:00-07:00 on the clock."""
    nights = int(np.ceil((samples * SAMPLE_MIN + clock_start_min) / MINUTES_PER_DAY)) + 1
    counts = rng.poisson(model.compression_per_night, (n, nights))
    events = []
    for sensor, night in zip(*np.nonzero(counts), strict=True):
        for _ in range(counts[sensor, night]):
            begin = (
                (night - 1) * MINUTES_PER_DAY + 23 * 60 + rng.uniform(0, 8 * 60) - clock_start_min
            )
            if begin < 0:
                continue
            events.append(
                (
                    int(sensor),
                    float(begin),
                    float(rng.uniform(*model.compression_depth)),
                    float(rng.uniform(*model.compression_onset_min)),
                    float(rng.uniform(*model.compression_hold_min)),
                    model.compression_recovery_min,
                )
            )
    return events


def _issues(
    model: SensorModel, n: int, samples: int, rng: np.random.Generator
) -> list[tuple[int, int, int]]:
    """(sensor, first sample, end sample) of every brief sensor issue."""
    days = samples * SAMPLE_MIN / MINUTES_PER_DAY
    counts = rng.poisson(model.issues_per_day * days, n)
    events = []
    for sensor in np.nonzero(counts)[0]:
        for _ in range(counts[sensor]):
            first = int(rng.integers(0, samples))
            minutes = model.issue_median_min * np.exp(model.issue_sigma * rng.standard_normal())
            events.append((int(sensor), first, first + max(1, round(minutes / SAMPLE_MIN))))
    return events
