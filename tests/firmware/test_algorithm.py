import numpy as np
import pytest

from firmware.transmitter import algorithm
from firmware.transmitter.algorithm import AlertLevels, FactoryCalibration
from protocol.cgms.annunciation import WarningFlags as W
from protocol.cgms.socp import CalibrationStatus


def test_counts_to_mgdl_inverts_the_factory_code():
    cal = FactoryCalibration(800.0, 20_000.0)
    assert algorithm.counts_to_mgdl(20_000 + 800 * 123, cal) == 123.0
    out = algorithm.counts_to_mgdl(np.array([20_000.0, 20_800.0]), cal)
    np.testing.assert_array_equal(out, [0.0, 1.0])


@pytest.mark.parametrize(
    ("value", "reported"),
    [(39.4, 40.0), (-5.0, 40.0), (120.5, 120.0), (121.5, 122.0), (399.6, 400.0), (1e4, 400.0)],
)
def test_reported_value_is_rounded_half_to_even_and_limited(value, reported):
    assert algorithm.reported_mgdl(value) == reported
    assert algorithm.reported_mgdl(np.array([value]))[0] == reported  # same for arrays


def test_trend_is_the_least_squares_slope_of_a_full_15_minute_window():
    # Points (0, 100), (5, 104), (10, 106), (15, 112): mean t 7.5, mean g 105.5,
    # Sxy = (-7.5)(-5.5) + (-2.5)(-1.5) + (2.5)(0.5) + (7.5)(6.5) = 41.25+3.75+1.25+48.75 = 95,
    # Sxx = 56.25 + 6.25 + 6.25 + 56.25 = 125 -> slope 0.76 mg/dL/min.
    readings = [(0, 100.0), (5, 104.0), (10, 106.0), (15, 112.0)]
    assert algorithm.trend_mgdl_per_min(readings) == pytest.approx(0.76)
    assert algorithm.trend_mgdl_per_min(readings[1:]) is None  # only 10 minutes
    assert algorithm.trend_mgdl_per_min([(0, 100.0), (5, 104.0), (15, 112.0)]) is None  # a gap
    assert algorithm.trend_mgdl_per_min([]) is None
    older = [(-5, 90.0), *readings]  # older readings outside the window do not count
    assert algorithm.trend_mgdl_per_min(older) == pytest.approx(0.76)


def test_quality_falls_with_the_scatter_around_the_trend():
    straight = [(0, 100.0), (5, 110.0), (10, 120.0), (15, 130.0)]
    assert algorithm.quality_percent(straight, algorithm.trend_mgdl_per_min(straight)) == 100.0
    # Scattered points: the figure is 100 - 5 x the RMS residual around the fitted line
    # (mean t 7.5, mean g 105.5), recomputed here independently.
    zigzag = [(0, 103.0), (5, 102.0), (10, 105.0), (15, 112.0)]
    trend = algorithm.trend_mgdl_per_min(zigzag)
    fitted = [105.5 + trend * (t - 7.5) for t, _ in zigzag]
    rms = (sum((g - f) ** 2 for (_, g), f in zip(zigzag, fitted, strict=True)) / 4) ** 0.5
    assert algorithm.quality_percent(zigzag, trend) == round(100 - 5 * rms, 1)
    assert algorithm.quality_percent(zigzag, None) == 100.0


@pytest.mark.parametrize(
    ("glucose", "trend", "bits"),
    [
        (120.0, 0.0, 0),
        (69.0, None, W.RESULT_LOWER_THAN_PATIENT_LOW),
        (54.0, None, W.RESULT_LOWER_THAN_PATIENT_LOW | W.RESULT_LOWER_THAN_HYPO),
        (
            39.0,
            None,
            W.RESULT_LOWER_THAN_PATIENT_LOW
            | W.RESULT_LOWER_THAN_HYPO
            | W.RESULT_LOWER_THAN_DEVICE_CAN_PROCESS,
        ),
        (251.0, None, W.RESULT_HIGHER_THAN_PATIENT_HIGH),
        (301.0, None, W.RESULT_HIGHER_THAN_PATIENT_HIGH | W.RESULT_HIGHER_THAN_HYPER),
        (
            401.0,
            None,
            W.RESULT_HIGHER_THAN_PATIENT_HIGH
            | W.RESULT_HIGHER_THAN_HYPER
            | W.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS,
        ),
        (120.0, -2.1, W.RATE_OF_DECREASE_EXCEEDED),
        (120.0, -2.0, 0),  # at the level is not beyond it
        (120.0, 2.1, W.RATE_OF_INCREASE_EXCEEDED),
    ],
)
def test_warning_octet_follows_the_levels(glucose, trend, bits):
    assert algorithm.warning_octet(glucose, trend, AlertLevels()) == bits


def test_warning_octet_uses_the_levels_it_is_given():
    levels = AlertLevels(patient_low=90.0, rate_of_increase=1.0)
    assert (
        algorithm.warning_octet(85.0, 1.5, levels)
        == W.RESULT_LOWER_THAN_PATIENT_LOW | W.RATE_OF_INCREASE_EXCEEDED
    )


@pytest.mark.parametrize(
    ("reference", "reading", "factor", "status"),
    [
        (110.0, 100.0, 1.1, 0),
        (130.0, 100.0, 1.3, 0),  # the edge of the allowed correction
        (131.0, 100.0, None, CalibrationStatus.REJECTED),
        (65.0, 100.0, None, CalibrationStatus.REJECTED),
        (110.0, None, None, CalibrationStatus.REJECTED),  # no reading near the calibration time
        (39.0, 40.0, None, CalibrationStatus.OUT_OF_RANGE),
        (401.0, 400.0, None, CalibrationStatus.OUT_OF_RANGE),
    ],
)
def test_calibration_rules(reference, reading, factor, status):
    got_factor, got_status = algorithm.calibration_factor(reference, reading)
    assert got_status == status
    assert got_factor == (None if factor is None else pytest.approx(factor))
