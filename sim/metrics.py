"""Accuracy and session metrics for CGM readings, vectorised with numpy.

Definitions follow ``shared/spec/sensor-model.md`` ("Metric definitions", "Session report
metrics"); sources are named where each metric is computed. All glucose values are mg/dL; x is the
reference, y the sensor (CGM) value.

Conventions the spec leaves open (kept here so callers and tests agree):

* Inputs may be any shape (e.g. sensors x samples); the two arrays must have the same shape and
  are flattened. A pair with NaN on either side is missing and dropped; +/-inf is an error.
  No valid pair at all is an error, as is a reference <= 0 (MARD divides by it).
* "Within +/-X" is inclusive (|CGM - ref| <= X mg/dL, or <= X % of ref), computed as
  ``100 * |d| <= X * ref`` so integer inputs compare exactly. (Tidepool's encoding uses a strict
  ``<``; that only differs for pairs exactly on the edge.)
* iCGM ranges go by the CGM value: < 70, 70-180 inclusive, > 180. No measuring-range (40-400)
  filter is applied: the transmitter already clips to it.
* iCGM A-G: ``value`` is the observed percent within, ``bound`` the lower one-sided 95 % bound
  in percent, ``passed`` is ``bound > threshold``. A range with no pairs cannot demonstrate a
  minimum: ``passed``, ``value`` and ``bound`` are None and ``n`` is 0.
* iCGM H and I: ``value`` is the number of offending pairs, ``n`` the pairs in the CGM range,
  ``passed`` is ``value == 0``. An empty range shows nothing (issue 18): ``passed`` and
  ``value`` are None and ``n`` is 0, reported n/a like A-G, never a pass.
* iCGM J and K (rates in mg/dL/min, aligned with the pairs): as in Tidepool's encoding, the
  denominator is the pairs whose CGM rate is > +1 (J) or < -1 (K) mg/dL/min; ``value`` is the
  percent of those whose true rate is < -2 (J) or > +2 (K), ``passed`` is ``value <= 1``. A pair
  with a NaN rate is left out of J/K only. With no such CGM rates there is nothing to judge:
  ``passed`` and ``value`` None, ``n`` 0 (n/a). Without rates J and K are reported the same way.
* Error grids: zone percentages are over all pairs; every zone A-E is present.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ICGM_THRESHOLDS",
    "ZONES",
    "Accuracy",
    "ICgmResult",
    "SessionMetrics",
    "accuracy",
    "clarke_zones",
    "parkes_zones",
    "session_metrics",
    "wald_lower_bound",
]

# A CGM reports 40-400 mg/dL (shared/spec/behavior.md, "Readings and display"); accuracy studies
# pair readings with references in that range only.
MEASURING_RANGE_MGDL = (40.0, 400.0)


def in_measuring_range(reference_mgdl: npt.ArrayLike) -> np.ndarray:
    """Where a reference value lies in the measuring range (NaN does not)."""
    reference = np.asarray(reference_mgdl, dtype=float)
    low, high = MEASURING_RANGE_MGDL
    return (reference >= low) & (reference <= high)


ZONES = ("A", "B", "C", "D", "E")

#: One-sided 95 % normal quantile as written in the spec (Tidepool uses 1.644854).
Z_ONE_SIDED_95 = 1.645

#: iCGM special controls, 21 CFR 862.1355(b)(1). A-G: percent the lower 95 % bound must exceed;
#: H, I: allowed number of offending pairs; J, K: allowed percent of pairs.
ICGM_THRESHOLDS: dict[str, float] = {
    "A": 85.0,
    "B": 70.0,
    "C": 80.0,
    "D": 98.0,
    "E": 99.0,
    "F": 99.0,
    "G": 87.0,
    "H": 0.0,
    "I": 0.0,
    "J": 1.0,
    "K": 1.0,
}

# Parkes (consensus) error grid, type 1 diabetes: Parkes et al., Diabetes Care 23:1143 (2000);
# coordinates per Pfützner et al., JDST 7:1275 (2013). Upper boundaries are y = f(x) polylines
# starting at x = 0; each lower boundary starts with a vertical segment (x0, 0)-(x0, y1).
_PARKES_T1_UPPER = {
    "AB": ((0, 50), (30, 50), (140, 170), (280, 380), (430, 550)),
    "BC": ((0, 60), (30, 60), (50, 80), (70, 110), (260, 550)),
    "CD": ((0, 100), (25, 100), (50, 125), (80, 215), (125, 550)),
    "DE": ((0, 150), (35, 155), (50, 550)),
}
_PARKES_T1_LOWER = {
    "AB": ((50, 0), (50, 30), (170, 145), (385, 300), (550, 450)),
    "BC": ((120, 0), (120, 30), (260, 130), (550, 250)),
    "CD": ((250, 0), (250, 40), (550, 150)),
}


@dataclass(frozen=True)
class ICgmResult:
    """Outcome of one FDA iCGM special control (21 CFR 862.1355; see module docstring)."""

    passed: bool | None
    value: float | None
    bound: float | None
    n: int

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict: ``pass``, ``value``, ``bound``, ``n``."""
        return {"pass": self.passed, "value": self.value, "bound": self.bound, "n": self.n}


@dataclass(frozen=True)
class Accuracy:
    """Point-accuracy statistics over matched (reference, sensor) pairs; percentages in %."""

    pairs: int
    mard: float
    mad_below_70: float | None
    within_15_15: float
    within_20_20: float
    within_30_30: float
    within_40_40: float
    bias_mgdl: float
    icgm: dict[str, ICgmResult]
    clarke: dict[str, float]
    parkes: dict[str, float]

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict with the keys of ``cgmsim accuracy --json`` (plain Python types)."""
        return {
            "mard": self.mard,
            "mad_below_70": self.mad_below_70,
            "within_15_15": self.within_15_15,
            "within_20_20": self.within_20_20,
            "within_30_30": self.within_30_30,
            "within_40_40": self.within_40_40,
            "pairs": self.pairs,
            "bias_mgdl": self.bias_mgdl,
            "icgm": {letter: result.to_json() for letter, result in self.icgm.items()},
            "clarke": dict(self.clarke),
            "parkes": dict(self.parkes),
        }


@dataclass(frozen=True)
class SessionMetrics:
    """Session report metrics (Battelino et al., Diabetes Care 42:1593, 2019); times in %."""

    readings: int
    mean_mgdl: float
    sd_mgdl: float
    cv_percent: float
    gmi_percent: float
    time_in_range_70_180: float
    time_below_70: float
    time_below_54: float
    time_above_180: float
    time_above_250: float
    lbgi: float
    hbgi: float

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict, one key per field."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def wald_lower_bound(successes: int, n: int, z: float = Z_ONE_SIDED_95) -> float:
    """Lower one-sided confidence bound ``p - z*sqrt(p(1-p)/N)`` of a proportion (a fraction).

    The normal-approximation bound the spec prescribes for iCGM criteria A-G (as encoded in
    Tidepool ``data-science-models``, ``lower_onesided_95p_CB_binomial``).
    """
    if n <= 0:
        raise ValueError(f"need at least one trial for a confidence bound, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0..n, got {successes} of {n}")
    p = successes / n
    return p - z * math.sqrt(p * (1.0 - p) / n)


def _float_array(values: npt.ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values")
    return array


def _same_shape(first: np.ndarray, second: np.ndarray, names: str) -> None:
    if first.shape != second.shape:
        raise ValueError(f"{names} differ in length/shape: {first.shape} vs {second.shape}")


def _within_percent(abs_diff: np.ndarray, ref: np.ndarray, percent: float) -> np.ndarray:
    return abs_diff * 100.0 <= percent * ref


def _percent(mask: np.ndarray) -> float:
    return 100.0 * float(np.count_nonzero(mask)) / mask.size


def clarke_zones(reference: npt.ArrayLike, sensor: npt.ArrayLike) -> np.ndarray:
    """Clarke error grid zone ('A'-'E') per pair (Clarke et al., Diabetes Care 10:622, 1987).

    Zones are tested in the spec's order A, E, C, D; anything else is B. Inequalities are
    rewritten with integer coefficients (``0.8x <= y`` as ``4x <= 5y``) so integer mg/dL
    values on a zone line compare exactly.
    """
    x = np.asarray(reference, dtype=float)
    y = np.asarray(sensor, dtype=float)
    _same_shape(x, y, "reference and sensor")
    zone_a = ((x <= 70) & (y <= 70)) | ((4 * x <= 5 * y) & (5 * y <= 6 * x))
    zone_e = ((x >= 180) & (y <= 70)) | ((x <= 70) & (y >= 180))
    zone_c = ((x >= 70) & (x <= 290) & (y >= x + 110)) | (
        (x >= 130) & (x <= 180) & (5 * y <= 7 * x - 910)  # y <= 1.4x - 182
    )
    band_70_180 = (y >= 70) & (y <= 180)
    zone_d = (
        ((x >= 240) & band_70_180)
        | ((3 * x <= 175) & band_70_180)  # x <= 175/3
        | ((3 * x >= 175) & (x <= 70) & (5 * y >= 6 * x))  # y >= 1.2x
    )
    return np.select([zone_a, zone_e, zone_c, zone_d], ["A", "E", "C", "D"], default="B")


def _polyline(x: np.ndarray, vertices: tuple[tuple[int, int], ...]) -> np.ndarray:
    """y = f(x) along the vertices, the last segment extended linearly past the last vertex."""
    xp = np.array([vx for vx, _ in vertices], dtype=float)
    fp = np.array([vy for _, vy in vertices], dtype=float)
    slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return np.where(x > xp[-1], fp[-1] + slope * (x - xp[-1]), np.interp(x, xp, fp))


def _above_upper(x: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    # Past the last vertex (y = 550) the extension lies above the grid: nothing is above it.
    return y > _polyline(x, _PARKES_T1_UPPER[name])


def _below_lower(x: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    vertices = _PARKES_T1_LOWER[name]
    x0 = vertices[0][0]
    # The vertical first segment sits at x0: left of it, and on it, nothing is below.
    return (x > x0) & (y < _polyline(x, vertices[1:]))


def parkes_zones(reference: npt.ArrayLike, sensor: npt.ArrayLike) -> np.ndarray:
    """Parkes (consensus) error grid zone ('A'-'E') per pair, type 1 diabetes.

    Boundaries are the spec's polylines (Parkes 2000; coordinates per Pfützner 2013), read as
    functions of x: a point is above an upper boundary when ``y > f(x)`` and below a lower one
    when ``y < f(x)``, so a point exactly on a line belongs to the inner (better) zone. Past its
    last vertex a polyline continues along its last segment (upper ones then lie above y = 550,
    so in the grid nothing is above them; lower ones reach x = 550 and continue for x > 550).
    Zones are taken outermost first: E, D, C, B, else A.
    """
    x = np.asarray(reference, dtype=float)
    y = np.asarray(sensor, dtype=float)
    _same_shape(x, y, "reference and sensor")
    outside = [_above_upper(x, y, "DE")]  # type 1 has no lower D|E boundary
    outside += [_above_upper(x, y, name) | _below_lower(x, y, name) for name in ("CD", "BC", "AB")]
    return np.select(outside, ["E", "D", "C", "B"], default="A")


def _zone_percentages(zones: np.ndarray) -> dict[str, float]:
    return {zone: _percent(zones == zone) for zone in ZONES}


def _proportion_control(in_range: np.ndarray, ok: np.ndarray, letter: str) -> ICgmResult:
    n = int(np.count_nonzero(in_range))
    if n == 0:
        return ICgmResult(passed=None, value=None, bound=None, n=0)
    successes = int(np.count_nonzero(in_range & ok))
    bound = 100.0 * wald_lower_bound(successes, n)
    return ICgmResult(
        passed=bound > ICGM_THRESHOLDS[letter], value=100.0 * successes / n, bound=bound, n=n
    )


_NOT_EVALUATED = ICgmResult(passed=None, value=None, bound=None, n=0)


def _count_control(in_range: np.ndarray, offending: np.ndarray) -> ICgmResult:
    n = int(np.count_nonzero(in_range))
    if n == 0:
        return _NOT_EVALUATED
    count = int(np.count_nonzero(in_range & offending))
    return ICgmResult(passed=count == 0, value=float(count), bound=None, n=n)


def _rate_control(indicated: np.ndarray, contrary: np.ndarray, letter: str) -> ICgmResult:
    n = int(np.count_nonzero(indicated))
    if n == 0:
        return _NOT_EVALUATED
    share = 100.0 * int(np.count_nonzero(indicated & contrary)) / n
    return ICgmResult(passed=share <= ICGM_THRESHOLDS[letter], value=share, bound=None, n=n)


def _icgm(
    ref: np.ndarray,
    cgm: np.ndarray,
    abs_diff: np.ndarray,
    rates: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, ICgmResult]:
    """FDA iCGM special controls A-K (21 CFR 862.1355; Tidepool ``calc_icgm_sc_table``)."""
    low, high = cgm < 70, cgm > 180
    mid = ~low & ~high
    everywhere = np.ones_like(low)
    within_15 = _within_percent(abs_diff, ref, 15)
    within_40 = _within_percent(abs_diff, ref, 40)
    results = {
        "A": _proportion_control(low, abs_diff <= 15, "A"),
        "B": _proportion_control(mid, within_15, "B"),
        "C": _proportion_control(high, within_15, "C"),
        "D": _proportion_control(low, abs_diff <= 40, "D"),
        "E": _proportion_control(mid, within_40, "E"),
        "F": _proportion_control(high, within_40, "F"),
        "G": _proportion_control(everywhere, _within_percent(abs_diff, ref, 20), "G"),
        "H": _count_control(low, ref > 180),
        "I": _count_control(high, ref < 70),
    }
    if rates is None:
        results["J"] = results["K"] = _NOT_EVALUATED
    else:
        sensor_rate, reference_rate = rates
        known = ~np.isnan(sensor_rate) & ~np.isnan(reference_rate)
        results["J"] = _rate_control(known & (sensor_rate > 1), reference_rate < -2, "J")
        results["K"] = _rate_control(known & (sensor_rate < -1), reference_rate > 2, "K")
    return results


def accuracy(
    reference: npt.ArrayLike,
    sensor: npt.ArrayLike,
    *,
    cut_point_mgdl: float = 100.0,
    sensor_rate: npt.ArrayLike | None = None,
    reference_rate: npt.ArrayLike | None = None,
) -> Accuracy:
    """Accuracy of ``sensor`` against ``reference`` (mg/dL), as sensor studies report it.

    MARD = mean |CGM - ref| / ref x 100; MAD < 70 over pairs with ref < 70; %X/X within +/-X
    mg/dL below ``cut_point_mgdl`` (100 in the G6/G7 papers: Shah 2018, Garg 2022) and +/-X %
    at or above it; bias = mean(CGM - ref); iCGM special controls A-K; Clarke and Parkes
    (type 1) zone percentages. ``sensor_rate`` / ``reference_rate`` (mg/dL/min, aligned with
    the pairs) enable iCGM J and K. See the module docstring for the edge-case conventions.
    """
    ref = _float_array(reference, "reference")
    cgm = _float_array(sensor, "sensor")
    _same_shape(ref, cgm, "reference and sensor")
    if (sensor_rate is None) != (reference_rate is None):
        raise ValueError("give both sensor_rate and reference_rate, or neither")
    if not (math.isfinite(cut_point_mgdl) and cut_point_mgdl > 0):
        raise ValueError(f"cut_point_mgdl must be a positive number, got {cut_point_mgdl}")
    keep = ~np.isnan(ref) & ~np.isnan(cgm)
    rates = None
    if sensor_rate is not None and reference_rate is not None:
        s_rate = np.asarray(sensor_rate, dtype=float)
        r_rate = np.asarray(reference_rate, dtype=float)
        _same_shape(ref, s_rate, "reference and sensor_rate")
        _same_shape(ref, r_rate, "reference and reference_rate")
        rates = (s_rate[keep], r_rate[keep])
    ref, cgm = ref[keep], cgm[keep]
    if ref.size == 0:
        raise ValueError("no (reference, sensor) pair without a missing value")
    if (ref <= 0).any():
        raise ValueError("reference glucose must be positive (MARD divides by it)")

    diff = cgm - ref
    abs_diff = np.abs(diff)
    below_cut = ref < cut_point_mgdl

    def within(x: float) -> float:
        return _percent(np.where(below_cut, abs_diff <= x, _within_percent(abs_diff, ref, x)))

    hypo = ref < 70
    return Accuracy(
        pairs=int(ref.size),
        mard=float(np.mean(abs_diff / ref)) * 100.0,
        mad_below_70=float(np.mean(abs_diff[hypo])) if hypo.any() else None,
        within_15_15=within(15),
        within_20_20=within(20),
        within_30_30=within(30),
        within_40_40=within(40),
        bias_mgdl=float(np.mean(diff)),
        icgm=_icgm(ref, cgm, abs_diff, rates),
        clarke=_zone_percentages(clarke_zones(ref, cgm)),
        parkes=_zone_percentages(parkes_zones(ref, cgm)),
    )


def session_metrics(glucose_mgdl: npt.ArrayLike) -> SessionMetrics:
    """Session report metrics over the sensor readings (NaN = missing, dropped).

    Times in ranges per the international consensus (Battelino 2019): in range 70-180
    inclusive, below 70 (includes below 54), below 54, above 180 (includes above 250), above
    250, as percent of readings. SD is the population SD (ddof = 0); CV = SD / mean x 100.
    GMI % = 3.31 + 0.02392 x mean (Bergenstal et al., Diabetes Care 41:2275, 2018).
    LBGI / HBGI (Kovatchev et al., Diabetes Care 20:1655, 1997; 2006):
    f = 1.509 (ln(G)^1.084 - 5.381), r = 10 f^2, LBGI = mean of r where f < 0 else 0 and
    HBGI = mean of r where f > 0 else 0, both averaged over all readings.
    """
    glucose = _float_array(glucose_mgdl, "glucose_mgdl").ravel()
    glucose = glucose[~np.isnan(glucose)]
    if glucose.size == 0:
        raise ValueError("no glucose readings (all missing or empty)")
    if (glucose < 1).any():
        raise ValueError("glucose readings must be at least 1 mg/dL (the risk index takes ln)")

    mean = float(np.mean(glucose))
    sd = float(np.std(glucose))
    f = 1.509 * (np.log(glucose) ** 1.084 - 5.381)
    risk = 10.0 * f**2
    return SessionMetrics(
        readings=int(glucose.size),
        mean_mgdl=mean,
        sd_mgdl=sd,
        cv_percent=100.0 * sd / mean,
        gmi_percent=3.31 + 0.02392 * mean,
        time_in_range_70_180=_percent((glucose >= 70) & (glucose <= 180)),
        time_below_70=_percent(glucose < 70),
        time_below_54=_percent(glucose < 54),
        time_above_180=_percent(glucose > 180),
        time_above_250=_percent(glucose > 250),
        lbgi=float(np.mean(np.where(f < 0, risk, 0.0))),
        hbgi=float(np.mean(np.where(f > 0, risk, 0.0))),
    )
