"""Accuracy and session metrics (shared/spec/sensor-model.md) on hand-computed cases.

Every expected number is worked out in the comment next to it, from the spec's definitions,
not read back from the code.
"""

import json

import numpy as np
import pytest

from sim.metrics import (
    ZONES,
    accuracy,
    clarke_zones,
    parkes_zones,
    session_metrics,
    wald_lower_bound,
)

# --------------------------------------------------------------------------------------------
# MARD, MAD, %X/X, bias


def test_hand_computed_pairs():
    ref = [50, 100, 200, 80]
    cgm = [60, 90, 250, 80]
    # |d| = 10, 10, 50, 0; |d|/ref = 20 %, 10 %, 25 %, 0 % -> MARD = 55 / 4 = 13.75 %
    # d = +10, -10, +50, 0 -> bias = 50 / 4 = 12.5 mg/dL
    # ref < 70: only 50 -> MAD = 10
    # cut-point 100: ref 50 and 80 use mg/dL (10 and 0), ref 100 and 200 use % (10 %, 25 %)
    #   15/15: ok, ok, 25 % > 15 % no, ok -> 3/4; 20/20: same -> 3/4; 30/30 and 40/40: 4/4
    result = accuracy(ref, cgm)
    assert result.pairs == 4
    assert result.mard == pytest.approx(13.75)
    assert result.bias_mgdl == pytest.approx(12.5)
    assert result.mad_below_70 == pytest.approx(10.0)
    assert result.within_15_15 == pytest.approx(75.0)
    assert result.within_20_20 == pytest.approx(75.0)
    assert result.within_30_30 == pytest.approx(100.0)
    assert result.within_40_40 == pytest.approx(100.0)


def test_mad_below_70_selects_by_reference():
    # (ref 65, cgm 75): ref < 70, |d| = 10 -> counted; (ref 80, cgm 60): CGM < 70 but ref is
    # not -> not counted. MAD = 10 (selecting by CGM value would give 20).
    assert accuracy([65, 80], [75, 60]).mad_below_70 == pytest.approx(10.0)


def test_mad_is_none_without_reference_below_70():
    assert accuracy([70, 150], [75, 140]).mad_below_70 is None


def test_within_uses_mgdl_below_cut_point_and_percent_at_or_above():
    # ref 90, cgm 105: |d| = 15.
    #   cut 100 -> 90 < 100, mg/dL rule: 15 <= 15 within (edge is inclusive)
    #   cut 80  -> 90 >= 80, % rule: 15 / 90 = 16.7 % > 15 % not within
    assert accuracy([90], [105]).within_15_15 == 100.0
    assert accuracy([90], [105], cut_point_mgdl=80).within_15_15 == 0.0
    # ref 120, cgm 138: |d| = 18.
    #   cut 100 -> % rule: 18 / 120 = 15 % exactly, within
    #   cut 150 -> mg/dL rule: 18 > 15, not within
    assert accuracy([120], [138]).within_15_15 == 100.0
    assert accuracy([120], [138], cut_point_mgdl=150).within_15_15 == 0.0
    # ref exactly at the cut-point uses the % rule: ref 200, cgm 245 -> |d| = 45 > 30 mg/dL,
    # but 45 / 200 = 22.5 % <= 30 % -> within at cut 200; at cut 201 the mg/dL rule applies.
    assert accuracy([200], [245], cut_point_mgdl=200).within_30_30 == 100.0
    assert accuracy([200], [245], cut_point_mgdl=201).within_30_30 == 0.0


def test_nan_pairs_are_dropped():
    # Pair 2 misses the sensor, pair 3 the reference: only (100, 110) and (200, 180) remain.
    # MARD = (10 % + 10 %) / 2 = 10 %; bias = (10 - 20) / 2 = -5
    result = accuracy([100, 150, np.nan, 200], [110, np.nan, 90, 180])
    assert result.pairs == 2
    assert result.mard == pytest.approx(10.0)
    assert result.bias_mgdl == pytest.approx(-5.0)


def test_matrices_are_flattened():
    ref = np.array([[100.0, 200.0], [50.0, 80.0]])
    cgm = np.array([[110.0, 180.0], [60.0, 80.0]])
    # ARD = 10 %, 10 %, 20 %, 0 % -> 10 %
    assert accuracy(ref, cgm).mard == pytest.approx(10.0)
    assert accuracy(ref, cgm).pairs == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": [100, 110], "sensor": [100]}, "differ"),
        ({"reference": [np.nan], "sensor": [100]}, "no .* pair"),
        ({"reference": [], "sensor": []}, "no .* pair"),
        ({"reference": [0, 100], "sensor": [10, 100]}, "positive"),
        ({"reference": [np.inf], "sensor": [100]}, "infinite"),
        ({"reference": [100], "sensor": [100], "sensor_rate": [1.0]}, "both"),
        (
            {"reference": [100], "sensor": [100], "sensor_rate": [1, 2], "reference_rate": [1]},
            "differ",
        ),
        ({"reference": [100], "sensor": [100], "cut_point_mgdl": 0}, "cut_point"),
    ],
)
def test_bad_input_is_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        accuracy(**kwargs)


def test_to_json_keys_and_plain_types():
    rate = [0.0, 1.5, -1.5, np.nan]
    result = accuracy(
        [60, 100, 200, 300], [60, 110, 190, 300], sensor_rate=rate, reference_rate=rate
    )
    data = result.to_json()
    assert set(data) == {
        "mard",
        "mad_below_70",
        "within_15_15",
        "within_20_20",
        "within_30_30",
        "within_40_40",
        "pairs",
        "bias_mgdl",
        "icgm",
        "clarke",
        "parkes",
    }
    assert set(data["icgm"]) == set("ABCDEFGHIJK")
    assert all(set(entry) == {"pass", "value", "bound", "n"} for entry in data["icgm"].values())
    assert list(data["clarke"]) == list(ZONES) == list(data["parkes"])
    # Round trip through strict JSON: numpy scalars or NaN would fail here.
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert type(data["icgm"]["A"]["pass"]) is bool
    assert type(data["pairs"]) is int


# --------------------------------------------------------------------------------------------
# iCGM special controls


def test_wald_lower_bound_by_hand():
    # 88 of 100: 0.88 - 1.645 * sqrt(0.88 * 0.12 / 100) = 0.88 - 1.645 * 0.0324962
    #          = 0.88 - 0.0534562 = 0.8265438
    assert wald_lower_bound(88, 100) == pytest.approx(0.8265438, abs=1e-6)
    # 880 of 1000: 0.88 - 1.645 * sqrt(0.0001056) = 0.88 - 1.645 * 0.0102762 = 0.8630957
    assert wald_lower_bound(880, 1000) == pytest.approx(0.8630957, abs=1e-6)
    # p = 1 or 0: the Wald interval collapses onto p
    assert wald_lower_bound(5, 5) == 1.0
    assert wald_lower_bound(0, 5) == 0.0
    with pytest.raises(ValueError):
        wald_lower_bound(1, 0)


def _low_range_pairs(n_within: int, n_outside: int) -> tuple[list[int], list[int]]:
    # CGM 60 (< 70, criteria A/D). Within 15 mg/dL: ref 60. Outside: ref 80 (|d| = 20).
    return [60] * n_within + [80] * n_outside, [60] * (n_within + n_outside)


def test_icgm_a_proportion_passes_but_bound_fails():
    ref, cgm = _low_range_pairs(88, 12)
    icgm = accuracy(ref, cgm).icgm
    # p = 88 % > 85 %, but the lower bound 82.65 % (see above) does not exceed 85 %
    assert icgm["A"].value == pytest.approx(88.0)
    assert icgm["A"].bound == pytest.approx(82.65438, abs=1e-4)
    assert icgm["A"].n == 100
    assert icgm["A"].passed is False
    # D: |d| <= 40 for all 100 -> p = 1, bound 100 % > 98 %
    assert icgm["D"].passed is True
    assert icgm["D"].value == 100.0
    # G (±20 % everywhere): 60 vs 80 is 25 % off -> 88 %, bound 82.65 % < 87 %
    assert icgm["G"].passed is False
    assert icgm["G"].value == pytest.approx(88.0)
    # No CGM value in 70-180 or > 180: nothing to demonstrate -> not evaluated
    for letter in "BCEF":
        assert icgm[letter].passed is None
        assert icgm[letter].value is None
        assert icgm[letter].bound is None
        assert icgm[letter].n == 0


def test_icgm_a_passes_with_ten_times_the_pairs():
    ref, cgm = _low_range_pairs(880, 120)
    a = accuracy(ref, cgm).icgm["A"]
    # same p = 88 %, bound 86.31 % > 85 %
    assert a.bound == pytest.approx(86.30957, abs=1e-4)
    assert a.passed is True


def test_icgm_ranges_go_by_cgm_value():
    # CGM 69 -> A/D (ref 75 would be 70-180); CGM 70 and 180 -> B/E; CGM 181 -> C/F
    icgm = accuracy([75, 70, 180, 181], [69, 70, 180, 181]).icgm
    assert (icgm["A"].n, icgm["B"].n, icgm["C"].n) == (1, 2, 1)
    assert (icgm["D"].n, icgm["E"].n, icgm["F"].n) == (1, 2, 1)
    assert icgm["G"].n == 4


def test_icgm_within_percent_is_inclusive_and_relative_to_reference():
    # CGM 115 vs ref 100: 15 % exactly -> within for B; CGM 116 -> 16 % -> not
    assert accuracy([100], [115]).icgm["B"].value == 100.0
    assert accuracy([100], [116]).icgm["B"].value == 0.0
    # CGM 200 vs ref 250: |d| = 50 = 20 % of ref (25 % of CGM) -> within 20 % for G
    assert accuracy([250], [200]).icgm["G"].value == 100.0
    # CGM 60 vs ref 75: 15 mg/dL -> within for A; ref 76 -> 16 mg/dL -> not
    assert accuracy([75], [60]).icgm["A"].value == 100.0
    assert accuracy([76], [60]).icgm["A"].value == 0.0


def test_icgm_h_and_i_count_dangerous_pairs():
    # H: CGM < 70 with ref > 180 (181 counts, 180 does not)
    h = accuracy([181, 180, 100], [65, 65, 100]).icgm["H"]
    assert (h.passed, h.value, h.n) == (False, 1.0, 2)
    # I: CGM > 180 with ref < 70 (69 counts, 70 does not)
    i = accuracy([69, 70, 100], [181, 181, 100]).icgm["I"]
    assert (i.passed, i.value, i.n) == (False, 1.0, 2)
    clean = accuracy([100, 200], [100, 200]).icgm
    # no CGM value < 70: H has nothing to judge -> n/a, not a pass (issue 18)
    assert (clean["H"].passed, clean["H"].value, clean["H"].n) == (None, None, 0)
    assert clean["I"].passed is True and clean["I"].n == 1


def _rates(n: int, cgm_rate: float, contrary: int, true_rate: float):
    return [cgm_rate] * n, [true_rate] * contrary + [0.0] * (n - contrary)


@pytest.mark.parametrize(("contrary", "share", "passed"), [(2, 1.0, True), (3, 1.5, False)])
def test_icgm_j_share_of_rising_cgm_with_falling_truth(contrary, share, passed):
    # 200 pairs with CGM rate +1.5; `contrary` of them with true rate -2.5
    sensor_rate, reference_rate = _rates(200, 1.5, contrary, -2.5)
    glucose = [120] * 200
    icgm = accuracy(glucose, glucose, sensor_rate=sensor_rate, reference_rate=reference_rate).icgm
    # 2 / 200 = 1 % (<= 1 % passes), 3 / 200 = 1.5 %
    assert icgm["J"].value == pytest.approx(share)
    assert icgm["J"].passed is passed
    assert icgm["J"].n == 200
    # K sees no CGM rate < -1: nothing to judge -> n/a, not a pass (issue 18)
    assert (icgm["K"].passed, icgm["K"].value, icgm["K"].n) == (None, None, 0)


def test_icgm_k_mirror_and_denominator_is_cgm_rate_bin():
    # 100 pairs: 10 with CGM rate -1.5 (one of them with true rate +3), 90 with CGM rate 0.
    # K = 1 / 10 = 10 % (fails); a denominator of all pairs would give 1 % and pass.
    sensor_rate = [-1.5] * 10 + [0.0] * 90
    reference_rate = [3.0] + [0.0] * 99
    glucose = [150] * 100
    k = accuracy(glucose, glucose, sensor_rate=sensor_rate, reference_rate=reference_rate).icgm["K"]
    assert k.n == 10
    assert k.value == pytest.approx(10.0)
    assert k.passed is False


def test_icgm_rate_edges_and_missing_rates():
    glucose = [120] * 4
    # CGM rate exactly +1 is not "> 1"; true rate exactly -2 is not "< -2"; a NaN rate is
    # left out of J/K: only pair 2 (CGM +1.01) counts, with true rate -2 -> 0 %
    sensor_rate = [1.0, 1.01, np.nan, 5.0]
    reference_rate = [-3.0, -2.0, -3.0, np.nan]
    result = accuracy(glucose, glucose, sensor_rate=sensor_rate, reference_rate=reference_rate)
    assert result.pairs == 4
    assert (result.icgm["J"].n, result.icgm["J"].value) == (1, 0.0)
    # Rates of a pair whose glucose is missing go with it
    result = accuracy([120, np.nan], [120, 120], sensor_rate=[1.5, 1.5], reference_rate=[0.0, -3.0])
    assert (result.icgm["J"].n, result.icgm["J"].value) == (1, 0.0)


def test_icgm_j_k_not_evaluated_without_rates():
    icgm = accuracy([100], [100]).icgm
    for letter in "JK":
        assert icgm[letter].passed is None
        assert icgm[letter].value is None


# --------------------------------------------------------------------------------------------
# Clarke error grid (x = reference, y = CGM)

CLARKE_CASES = [
    # A: 0.8x <= y <= 1.2x, both lines inclusive
    (100, 80, "A"),
    (100, 120, "A"),
    (100, 79, "B"),
    (100, 121, "B"),
    # A: the lower-left square x <= 70 and y <= 70, corners included
    (70, 70, "A"),
    (50, 69, "A"),
    (71, 50, "B"),  # x > 70, y = 50 < 0.8 * 71 = 56.8
    (60, 71, "A"),  # 71 <= 1.2 * 60 = 72
    (70, 84, "A"),  # 84 = 1.2 * 70
    (70, 85, "D"),  # 85 > 1.2 * 70, x in [175/3, 70]
    (59, 71, "D"),  # 71 >= 1.2 * 59 = 70.8
    (58, 71, "D"),  # x <= 175/3 = 58.33 and 70 <= y <= 180
    (50, 179, "D"),
    # E
    (50, 180, "E"),
    (70, 180, "E"),
    (71, 180, "B"),  # x > 70, and 180 < 71 + 110
    (180, 70, "E"),
    (179, 70, "B"),  # 1.4 * 179 - 182 = 68.6 < 70, so not C either
    (240, 70, "E"),  # E is tested before D
    # C
    (100, 210, "C"),  # y = x + 110
    (100, 209, "B"),
    (290, 400, "C"),
    (150, 28, "C"),  # 1.4 * 150 - 182 = 28
    (150, 29, "B"),
    (180, 71, "B"),  # 1.4 * 180 - 182 = 70 < 71
    # D
    (240, 71, "D"),
    (240, 180, "D"),
    (239, 100, "B"),
    (240, 181, "B"),
]


@pytest.mark.parametrize(("ref", "cgm", "zone"), CLARKE_CASES)
def test_clarke_zone(ref, cgm, zone):
    assert clarke_zones([ref], [cgm])[0] == zone


def test_clarke_vectorised_matches_single_points():
    ref = [c[0] for c in CLARKE_CASES]
    cgm = [c[1] for c in CLARKE_CASES]
    assert list(clarke_zones(ref, cgm)) == [c[2] for c in CLARKE_CASES]


# --------------------------------------------------------------------------------------------
# Parkes error grid, type 1

PARKES_CASES = [
    # A|B upper: flat (0,50)-(30,50); vertex (140,170); segment slope 210/140 = 1.5
    (20, 50, "A"),
    (20, 51, "B"),  # B|C upper at 20 is 60
    (140, 170, "A"),
    (140, 171, "B"),
    (210, 275, "A"),  # 170 + 1.5 * 70 = 275
    (210, 276, "B"),  # B|C upper at 210: 110 + 440/190 * 140 = 434
    (500, 549, "A"),  # past (430, 550) nothing is above; A|B lower at 500 = 404.5
    # A|B lower: vertical (50,0)-(50,30) then (170,145), slope 115/120
    (45, 0, "A"),  # left of the vertical segment nothing is below
    (50, 0, "A"),  # on it
    (50, 30, "A"),
    (50.5, 30, "B"),  # 30 + 115/120 * 0.5 = 30.48
    (170, 145, "A"),
    (170, 144, "B"),
    # ... extended past (550, 450) with slope 150/165: at 605 -> 450 + 55 * 10/11 = 500
    (605, 500.5, "A"),
    (605, 499.5, "B"),  # B|C lower at 605: 250 + 12/29 * 55 = 272.8
    # B|C upper: segment (30,60)-(50,80), slope 1; vertex (70,110)
    (40, 70, "B"),  # A|B upper at 40: 50 + 120/110 * 10 = 60.9
    (40, 71, "C"),  # C|D upper at 40: 115
    (70, 110, "B"),
    (70, 111, "C"),
    # B|C lower: vertical at 120, then (260,130)
    (120, 10, "B"),
    (121, 10, "C"),  # 30 + 100/140 * 1 = 30.7
    (260, 130, "B"),
    (260, 129, "C"),
    # C|D upper: flat (0,100)-(25,100); steep (80,215)-(125,550), slope 335/45 = 7.444
    (20, 100, "C"),
    (20, 101, "D"),
    (80, 215, "C"),
    (80, 216, "D"),
    (100, 363, "C"),  # 215 + 7.444 * 20 = 363.9
    (100, 364, "D"),
    (130, 400, "C"),  # past (125, 550) nothing is above; B|C upper at 130 = 248.9
    # C|D lower: vertical at 250, then (550,150), slope 110/300
    (250, 10, "C"),  # B|C lower at 250 = 122.9
    (251, 10, "D"),  # 40 + 110/300 = 40.37
    (400, 94, "D"),  # 40 + 110/300 * 150 = 95
    (400, 96, "C"),
    (550, 150, "C"),
    (550, 149, "D"),
    (610, 171, "D"),  # extended: 150 + 110/300 * 60 = 172
    (610, 173, "C"),
    # D|E upper: flat-ish (0,150)-(35,155), slope 1/7; steep (35,155)-(50,550), slope 79/3
    (14, 151.5, "D"),  # 150 + 14/7 = 152
    (14, 152.5, "E"),
    (35, 155, "D"),
    (35, 156, "E"),
    (40, 286, "D"),  # 155 + 79/3 * 5 = 286.67
    (40, 287, "E"),
    (50, 400, "D"),  # at x = 50 the boundary is at 550
    (51, 540, "D"),  # past (50, 550) nothing is above
]


@pytest.mark.parametrize(("ref", "cgm", "zone"), PARKES_CASES)
def test_parkes_zone(ref, cgm, zone):
    assert parkes_zones([ref], [cgm])[0] == zone


def test_parkes_vectorised_matches_single_points():
    ref = [c[0] for c in PARKES_CASES]
    cgm = [c[1] for c in PARKES_CASES]
    assert list(parkes_zones(ref, cgm)) == [c[2] for c in PARKES_CASES]


def test_zone_percentages_in_accuracy():
    # Clarke: (100,100) A, (100,130) B, (100,210) C, (250,100) D -> 25 % each, E 0 %
    # Parkes: (100,100) A; (100,130) B (A|B upper at 100: 50 + 120/110 * 70 = 126.4, B|C upper
    #         110 + 440/190 * 30 = 179.5); (100,210) C (C|D upper 363.9); (250,100) C (B|C lower
    #         at 250: 30 + 100/140 * 130 = 122.9 > 100; on the C|D vertical, so not D)
    result = accuracy([100, 100, 100, 250], [100, 130, 210, 100])
    assert result.clarke == {"A": 25.0, "B": 25.0, "C": 25.0, "D": 25.0, "E": 0.0}
    assert result.parkes == {"A": 25.0, "B": 25.0, "C": 50.0, "D": 0.0, "E": 0.0}


def test_zones_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        clarke_zones([100, 120], [100])
    with pytest.raises(ValueError, match="differ"):
        parkes_zones([100], [100, 120])


# --------------------------------------------------------------------------------------------
# Session metrics


def test_time_in_ranges_edges():
    readings = [53, 54, 69, 70, 180, 181, 250, 251, 120, np.nan]
    # 9 valid readings (NaN dropped)
    # < 54: 53 -> 1; < 70: 53, 54, 69 -> 3; 70-180: 70, 180, 120 -> 3;
    # > 180: 181, 250, 251 -> 3; > 250: 251 -> 1
    result = session_metrics(readings)
    assert result.readings == 9
    assert result.time_below_54 == pytest.approx(100 / 9)
    assert result.time_below_70 == pytest.approx(300 / 9)
    assert result.time_in_range_70_180 == pytest.approx(300 / 9)
    assert result.time_above_180 == pytest.approx(300 / 9)
    assert result.time_above_250 == pytest.approx(100 / 9)


def test_mean_sd_cv_gmi():
    # mean 150; deviations ±50 -> population SD 50 (sample SD would be 70.7); CV = 33.33 %
    # GMI = 3.31 + 0.02392 * 150 = 3.31 + 3.588 = 6.898 %
    result = session_metrics([100, 200])
    assert result.mean_mgdl == 150.0
    assert result.sd_mgdl == pytest.approx(50.0)
    assert result.cv_percent == pytest.approx(100 / 3)
    assert result.gmi_percent == pytest.approx(6.898)
    # GMI at mean 154: 3.31 + 0.02392 * 154 = 3.31 + 3.68368 = 6.99368 %
    assert session_metrics([154]).gmi_percent == pytest.approx(6.99368)


def test_risk_index_symmetric_anchors():
    # Kovatchev's transform maps 20 and 600 mg/dL to about -/+sqrt(10), so r is about 100:
    #   ln 20 = 2.995732; 2.995732^1.084 = exp(1.084 * 1.097189) = 3.284954
    #   f = 1.509 * (3.284954 - 5.381) = -3.162934; r = 10 * 10.00415 = 100.04
    #   ln 600 = 6.396930; ^1.084 = exp(1.084 * 1.855818) = 7.476067
    #   f = 1.509 * 2.095067 = 3.161456; r = 99.948
    low = session_metrics([20])
    high = session_metrics([600])
    assert low.lbgi == pytest.approx(100.04, abs=0.01)
    assert low.hbgi == 0.0
    assert high.hbgi == pytest.approx(99.95, abs=0.01)
    assert high.lbgi == 0.0


def test_lbgi_hbgi_averaged_over_all_readings():
    # 50:  ln = 3.912023, ^1.084 = 4.386954, f = 1.509 * (-0.994046) = -1.500015, r = 22.5004
    # 300: ln = 5.703782, ^1.084 = 6.602078, f = 1.509 * 1.221078 = 1.842607, r = 33.9520
    # 112: ln = 4.718499, ^1.084 = 5.375308, f = 1.509 * (-0.005692) = -0.008589, r = 0.000738
    # LBGI = (22.5004 + 0.000738) / 3 = 7.50039; HBGI = 33.9520 / 3 = 11.3173
    result = session_metrics([50, 300, 112, np.nan])
    assert result.lbgi == pytest.approx(7.50039, abs=1e-4)
    assert result.hbgi == pytest.approx(11.3173, abs=1e-4)


def test_session_metrics_bad_input():
    with pytest.raises(ValueError, match="no glucose"):
        session_metrics([np.nan, np.nan])
    with pytest.raises(ValueError, match="at least 1"):
        session_metrics([0.5, 100])


def test_session_to_json_is_plain():
    data = session_metrics([80, 120, 250]).to_json()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["readings"] == 3
    assert {"lbgi", "hbgi", "gmi_percent", "cv_percent", "time_in_range_70_180"} <= set(data)


def test_icgm_controls_with_no_pairs_are_not_evaluated():
    """Issue 18: a control with 0 pairs in its range is n/a (passed None), never a pass."""
    # every CGM value 70-180 and flat: A, C, D, F, H, I, J and K have no pairs
    glucose = [120.0] * 50
    icgm = accuracy(glucose, glucose, sensor_rate=[0.0] * 50, reference_rate=[0.0] * 50).icgm
    for letter in "ACDFHIJK":
        assert (icgm[letter].passed, icgm[letter].value, icgm[letter].n) == (None, None, 0), letter
    for letter in "BEG":
        assert icgm[letter].passed is True and icgm[letter].n == 50, letter
