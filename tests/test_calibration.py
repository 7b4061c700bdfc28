"""Tests for pneumolib.calibration: hand-computed ECE values and temperature scaling."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, softmax
from sklearn.metrics import brier_score_loss, log_loss

from pneumolib.calibration import (
    apply_temperature,
    brier_score,
    calibration_summary,
    ensemble_probabilities,
    expected_calibration_error,
    fit_temperature,
    logit,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_table,
)


# --------------------------------------------------------------------------- #
# ECE / MCE on hand examples
# --------------------------------------------------------------------------- #
def test_ece_zero_for_perfectly_calibrated_hand_case():
    # 10 images at p=0.8, 8 of them pneumonia: predicted 1 with confidence 0.8, accuracy 0.8.
    # 5 images at p=0.2, 1 of them pneumonia: predicted 0 with confidence 0.8, accuracy 4/5.
    y = np.array([1] * 8 + [0] * 2 + [1] * 1 + [0] * 4)
    p = np.array([0.8] * 10 + [0.2] * 5)
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    assert maximum_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_ece_known_miscalibrated_binary():
    # All probabilities 0.9, half positive: one bin with confidence 0.9 and accuracy 0.5,
    # so ECE = MCE = |0.5 - 0.9| = 0.4.
    y = np.array([1, 0] * 5)
    p = np.full(10, 0.9)
    assert expected_calibration_error(y, p) == pytest.approx(0.4)
    assert maximum_calibration_error(y, p) == pytest.approx(0.4)


def test_ece_two_bins_binary():
    # Bin (0.6, 0.7]: 4 images with p=0.3 -> predicted 0, confidence 0.7; 1 of them positive,
    #   so accuracy 3/4 = 0.75, gap 0.05.
    # Bin (0.9, 1.0]: 6 images with p=1.0 -> confidence 1.0; 3 positive, accuracy 0.5, gap 0.5.
    # ECE (10 bins) = 0.4 * 0.05 + 0.6 * 0.5 = 0.32; MCE = 0.5.
    y = np.array([1, 0, 0, 0] + [1, 1, 1, 0, 0, 0])
    p = np.array([0.3] * 4 + [1.0] * 6)
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.32)
    assert maximum_calibration_error(y, p, n_bins=10) == pytest.approx(0.5)


def test_ece_multiclass_hand_case():
    # 4 rows with top prob 0.6 (class 0), 2 correct: bin (0.5, 0.6], gap |0.5 - 0.6| = 0.1.
    # 4 rows with top prob 0.8 (class 2), 3 correct: bin (0.7, 0.8], gap |0.75 - 0.8| = 0.05.
    # ECE (10 bins) = 0.5 * 0.1 + 0.5 * 0.05 = 0.075; MCE = 0.1.
    p = np.array([[0.6, 0.3, 0.1]] * 4 + [[0.1, 0.1, 0.8]] * 4)
    y = np.array([0, 0, 1, 2] + [2, 2, 2, 0])
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.075)
    assert maximum_calibration_error(y, p, n_bins=10) == pytest.approx(0.1)


def test_bin_convention_right_closed_intervals():
    # Confidence exactly 0.7 belongs to (0.6, 0.7] (bin 6 of 10), even though
    # 0.7 * 10 = 7.000000000000001 in floating point.
    table = reliability_table([0], [0.3], n_bins=10)
    assert table["count"].tolist() == [0] * 6 + [1] + [0] * 3
    # Confidence 1.0 goes to the last bin.
    table = reliability_table([1], [1.0], n_bins=10)
    assert table["count"].iloc[-1] == 1


def test_mce_at_least_ece_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.uniform(size=500)
        y = rng.integers(0, 2, size=500)
        assert maximum_calibration_error(y, p) >= expected_calibration_error(y, p)
    p3 = rng.dirichlet(np.ones(3), size=500)
    y3 = rng.integers(0, 3, size=500)
    assert maximum_calibration_error(y3, p3) >= expected_calibration_error(y3, p3) > 0


def test_reliability_table_columns_and_empty_bins():
    y = np.array([1, 0] * 5)
    p = np.full(10, 0.9)
    table = reliability_table(y, p, n_bins=15)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["bin_lower", "bin_upper", "count", "confidence", "accuracy"]
    assert len(table) == 15
    assert table["count"].sum() == 10
    filled = table[table["count"] > 0]
    assert len(filled) == 1
    assert filled["confidence"].iloc[0] == pytest.approx(0.9)
    assert filled["accuracy"].iloc[0] == pytest.approx(0.5)
    assert table.loc[table["count"] == 0, ["confidence", "accuracy"]].isna().all().all()
    np.testing.assert_allclose(table["bin_upper"] - table["bin_lower"], 1 / 15)


# --------------------------------------------------------------------------- #
# Brier score and NLL
# --------------------------------------------------------------------------- #
def test_brier_and_nll_binary_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=200)
    p = rng.uniform(0.01, 0.99, size=200)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p))
    assert negative_log_likelihood(y, p) == pytest.approx(log_loss(y, p))


def test_brier_and_nll_multiclass():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    y = np.array([0, 1])
    # row 1: 0.3^2 + 0.2^2 + 0.1^2 = 0.14; row 2: 0.1^2 + 0.7^2 + 0.6^2 = 0.86; mean 0.5
    assert brier_score(y, p) == pytest.approx(0.5)
    assert negative_log_likelihood(y, p) == pytest.approx(-(np.log(0.7) + np.log(0.3)) / 2)
    assert negative_log_likelihood(y, p) == pytest.approx(log_loss(y, p, labels=[0, 1, 2]))


def test_nll_is_finite_for_confidently_wrong():
    nll = negative_log_likelihood([0], [1.0])
    assert np.isfinite(nll) and nll == pytest.approx(-np.log(1e-12))


def test_calibration_summary_keys_and_values():
    y = np.array([1, 0] * 5)
    p = np.full(10, 0.9)
    s = calibration_summary(y, p)
    assert set(s) == {"ece_10", "ece_15", "mce_15", "brier", "nll"}
    assert s["ece_10"] == pytest.approx(0.4) and s["ece_15"] == pytest.approx(0.4)
    assert s["brier"] == pytest.approx((0.01 + 0.81) / 2)


# --------------------------------------------------------------------------- #
# Temperature scaling
# --------------------------------------------------------------------------- #
def _binary_calibrated(n, seed):
    """Logits whose sigmoid is the true probability of the label (calibrated by construction)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=n)
    y = (rng.uniform(size=n) < expit(z)).astype(int)
    return z, y


def _multiclass_calibrated(n, k, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, k))
    prob = softmax(z, axis=1)
    y = (rng.uniform(size=(n, 1)) > np.cumsum(prob, axis=1)).sum(axis=1)
    return z, y


def test_temperature_fixes_overconfident_binary():
    z, y = _binary_calibrated(5000, seed=0)
    overconfident = 5.0 * z
    t = fit_temperature(overconfident, y)
    assert t > 1.0
    assert t == pytest.approx(5.0, rel=0.2)
    before = negative_log_likelihood(y, apply_temperature(overconfident, 1.0))
    after = negative_log_likelihood(y, apply_temperature(overconfident, t))
    assert after < before
    assert expected_calibration_error(y, apply_temperature(overconfident, t)) < (
        expected_calibration_error(y, apply_temperature(overconfident, 1.0))
    )


def test_temperature_fixes_overconfident_multiclass():
    z, y = _multiclass_calibrated(5000, 3, seed=1)
    overconfident = 5.0 * z
    t = fit_temperature(overconfident, y)
    assert t > 1.0
    before = negative_log_likelihood(y, apply_temperature(overconfident, 1.0))
    after = negative_log_likelihood(y, apply_temperature(overconfident, t))
    assert after < before


@pytest.mark.parametrize("multiclass", [False, True])
def test_temperature_near_one_when_calibrated(multiclass):
    if multiclass:
        z, y = _multiclass_calibrated(20000, 3, seed=2)
    else:
        z, y = _binary_calibrated(20000, seed=2)
    assert abs(fit_temperature(z, y) - 1.0) < 0.15


def test_temperature_sharpens_underconfident():
    z, y = _binary_calibrated(5000, seed=3)
    assert fit_temperature(0.25 * z, y) < 1.0


def test_apply_temperature_keeps_argmax_and_sums_to_one():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(50, 3))
    p = apply_temperature(z, 2.5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(p.argmax(axis=1), z.argmax(axis=1))
    np.testing.assert_allclose(apply_temperature(np.array([0.0, 2.0]), 2.0), expit([0.0, 1.0]))
    with pytest.raises(ValueError):
        apply_temperature(z, 0.0)


def test_fit_temperature_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_temperature(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        fit_temperature(np.zeros(5), np.zeros(4, dtype=int))
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((5, 3)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((2, 3)), np.array([0, 3]))  # label out of range


# --------------------------------------------------------------------------- #
# logit and ensembles
# --------------------------------------------------------------------------- #
def test_logit_inverts_sigmoid_and_softmax():
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(logit(p), np.log(p / (1 - p)))
    np.testing.assert_allclose(apply_temperature(logit(p), 1.0), p)
    p3 = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(apply_temperature(logit(p3), 1.0), p3)
    assert np.all(np.isfinite(logit(np.array([0.0, 1.0]))))  # clipped, no infinities


def test_ensemble_probabilities_mean():
    a = np.array([0.2, 0.4, 0.9])
    b = np.array([0.4, 0.8, 0.7])
    c = np.array([0.0, 0.6, 0.5])
    np.testing.assert_allclose(ensemble_probabilities([a, b, c]), [0.2, 0.6, 0.7])
    m1 = np.array([[0.5, 0.5], [1.0, 0.0]])
    m2 = np.array([[0.7, 0.3], [0.0, 1.0]])
    np.testing.assert_allclose(ensemble_probabilities([m1, m2]), [[0.6, 0.4], [0.5, 0.5]])


def test_ensemble_probabilities_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        ensemble_probabilities([np.zeros(3), np.zeros(4)])
    with pytest.raises(ValueError):
        ensemble_probabilities([])


def test_ensemble_then_temperature_workflow():
    # Average members, convert to logits, fit one temperature: an over-confident
    # ensemble gets T > 1 and a lower NLL.
    z, y = _binary_calibrated(4000, seed=5)
    members = [expit(4.0 * z + d) for d in (-0.2, 0.0, 0.2)]
    avg = ensemble_probabilities(members)
    t = fit_temperature(logit(avg), y)
    assert t > 1.0
    assert negative_log_likelihood(y, apply_temperature(logit(avg), t)) < negative_log_likelihood(y, avg)
