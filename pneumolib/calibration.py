"""Calibration: do the predicted probabilities mean what they say?

A model is calibrated when, among all images it gives "80 % pneumonia",
about 80 % really have pneumonia. This module measures calibration (ECE,
MCE, reliability tables, Brier score, negative log-likelihood) and fixes it
with temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural
Networks").

Conventions: binary probabilities are a 1-D array of P(pneumonia) with labels
0/1; multiclass probabilities are an (N, K) array with labels 0..K-1.

Ground floor module: it imports nothing from ``pneumolib``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, logsumexp, softmax

__all__ = [
    "expected_calibration_error",
    "maximum_calibration_error",
    "reliability_table",
    "brier_score",
    "negative_log_likelihood",
    "calibration_summary",
    "fit_temperature",
    "temperature_at_bound",
    "apply_temperature",
    "logit",
    "ensemble_probabilities",
]

# Temperature search range for fit_temperature: T in [exp(-4), exp(4)] ~ [0.018, 54.6].
_LOG_T_BOUNDS = (-4.0, 4.0)


# --------------------------------------------------------------------------- #
# Input handling
# --------------------------------------------------------------------------- #
def _check_inputs(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels/probabilities; return (int labels, float probs)."""
    y_true = np.asarray(y_true).ravel()
    y_prob = np.asarray(y_prob, dtype=float)
    if y_prob.ndim not in (1, 2):
        raise ValueError(f"y_prob must be 1-D (binary) or 2-D (N, K), got shape {y_prob.shape}")
    if y_true.shape[0] != y_prob.shape[0]:
        raise ValueError(
            f"y_true and y_prob have different lengths: {y_true.shape[0]} vs {y_prob.shape[0]}"
        )
    if y_true.size == 0:
        raise ValueError("empty input: y_true and y_prob contain no samples")
    n_classes = 2 if y_prob.ndim == 1 else y_prob.shape[1]
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(f"labels must be in 0..{n_classes - 1}, got values {np.unique(y_true)}")
    return y_true.astype(int), y_prob


def _confidence_and_correct(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence and whether the top label is right, per sample.

    Binary (1-D P(pneumonia)): prediction is ``p >= 0.5`` and the confidence
    is the probability of the predicted label, ``max(p, 1 - p)``.
    Multiclass (N, K): prediction is the arg-max and confidence its probability.
    """
    y_true, y_prob = _check_inputs(y_true, y_prob)
    if y_prob.ndim == 1:
        y_pred = (y_prob >= 0.5).astype(int)
        confidence = np.maximum(y_prob, 1.0 - y_prob)
    else:
        y_pred = y_prob.argmax(axis=1)
        confidence = y_prob.max(axis=1)
    return confidence, (y_pred == y_true).astype(float)


def _bin_statistics(y_true, y_prob, n_bins: int):
    """Per-bin count, mean confidence and accuracy for equal-width confidence bins.

    Bin ``b`` (0-based) is the interval ``(b / n_bins, (b + 1) / n_bins]``, so a
    confidence ``c`` falls in bin ``ceil(c * n_bins) - 1``, clipped to
    ``[0, n_bins - 1]`` (``c = 0`` goes to the first bin). We find the bin by
    comparing ``c`` with the edges ``b / n_bins`` rather than computing
    ``c * n_bins``, so that e.g. ``c = 0.7`` with 10 bins lands in ``(0.6, 0.7]``
    despite floating-point rounding (``0.7 * 10 = 7.000000000000001``).
    Empty bins have NaN confidence and accuracy.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    n_bins = int(n_bins)
    confidence, correct = _confidence_and_correct(y_true, y_prob)
    edges = np.arange(n_bins + 1) / n_bins
    bin_index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)

    counts = np.bincount(bin_index, minlength=n_bins)
    conf_sums = np.bincount(bin_index, weights=confidence, minlength=n_bins)
    correct_sums = np.bincount(bin_index, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, conf_sums / counts, np.nan)
        accuracy = np.where(counts > 0, correct_sums / counts, np.nan)
    return edges, counts, mean_conf, accuracy


# --------------------------------------------------------------------------- #
# Calibration measures
# --------------------------------------------------------------------------- #
def expected_calibration_error(y_true, y_prob, n_bins: int = 15) -> float:
    """Expected calibration error (ECE) of the top-label confidence.

    Predictions are grouped into ``n_bins`` equal-width confidence bins; ECE is
    the average gap between accuracy and confidence, weighted by bin size:
    ``sum_b (n_b / N) * |acc_b - conf_b|``. 0 means perfectly calibrated.
    Binary 1-D probabilities use confidence ``max(p, 1 - p)`` with prediction
    ``p >= 0.5``; (N, K) probabilities use the arg-max. Bin ``b`` is
    ``(b / n_bins, (b + 1) / n_bins]`` (see ``_bin_statistics``).
    """
    _, counts, mean_conf, accuracy = _bin_statistics(y_true, y_prob, n_bins)
    filled = counts > 0
    gaps = np.abs(accuracy[filled] - mean_conf[filled])
    return float(np.sum(counts[filled] / counts.sum() * gaps))


def maximum_calibration_error(y_true, y_prob, n_bins: int = 15) -> float:
    """Maximum calibration error (MCE): the worst ``|acc_b - conf_b|`` over non-empty bins.

    Same bins as ``expected_calibration_error``; it is always >= the ECE.
    """
    _, counts, mean_conf, accuracy = _bin_statistics(y_true, y_prob, n_bins)
    filled = counts > 0
    return float(np.max(np.abs(accuracy[filled] - mean_conf[filled])))


def reliability_table(y_true, y_prob, n_bins: int = 15) -> pd.DataFrame:
    """One row per confidence bin, the data behind a reliability diagram.

    Columns: ``bin_lower, bin_upper`` (the bin is ``(lower, upper]``),
    ``count``, ``confidence`` (mean confidence in the bin) and ``accuracy``
    (fraction correct). Both are NaN for empty bins. A calibrated model has
    accuracy close to confidence in every bin.
    """
    edges, counts, mean_conf, accuracy = _bin_statistics(y_true, y_prob, n_bins)
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": counts.astype(int),
            "confidence": mean_conf,
            "accuracy": accuracy,
        }
    )


def brier_score(y_true, y_prob) -> float:
    """Brier score: mean squared error between probabilities and the true outcome.

    Binary: ``mean((p - y)^2)`` (same as ``sklearn.metrics.brier_score_loss``).
    Multiclass: ``mean_i sum_k (p_ik - onehot_ik)^2``. Lower is better.
    """
    y_true, y_prob = _check_inputs(y_true, y_prob)
    if y_prob.ndim == 1:
        return float(np.mean((y_prob - y_true) ** 2))
    onehot = np.eye(y_prob.shape[1])[y_true]
    return float(np.mean(np.sum((y_prob - onehot) ** 2, axis=1)))


def negative_log_likelihood(y_true, y_prob, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood (cross-entropy) of the true labels.

    Binary: ``-mean(y log p + (1 - y) log(1 - p))``; multiclass:
    ``-mean(log p[true class])``. Probabilities are clipped to ``[eps, 1 - eps]``
    so a confidently wrong prediction costs a lot but not infinity.
    """
    y_true, y_prob = _check_inputs(y_true, y_prob)
    p = np.clip(y_prob, eps, 1.0 - eps)
    if p.ndim == 1:
        return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1.0 - p)))
    return float(-np.mean(np.log(p[np.arange(p.shape[0]), y_true])))


def calibration_summary(y_true, y_prob) -> dict:
    """All calibration numbers used in the report: ece_10, ece_15, mce_15, brier, nll."""
    return {
        "ece_10": expected_calibration_error(y_true, y_prob, n_bins=10),
        "ece_15": expected_calibration_error(y_true, y_prob, n_bins=15),
        "mce_15": maximum_calibration_error(y_true, y_prob, n_bins=15),
        "brier": brier_score(y_true, y_prob),
        "nll": negative_log_likelihood(y_true, y_prob),
    }


# --------------------------------------------------------------------------- #
# Temperature scaling
# --------------------------------------------------------------------------- #
def _check_logits(logits, y_true) -> tuple[np.ndarray, np.ndarray]:
    """Validate logits (1-D binary or (N, K)) against integer labels."""
    logits = np.asarray(logits, dtype=float)
    y_true = np.asarray(y_true).ravel()
    if logits.size == 0 or y_true.size == 0:
        raise ValueError("empty input: logits and y_true must contain samples")
    if logits.ndim not in (1, 2):
        raise ValueError(f"logits must be 1-D (binary) or 2-D (N, K), got shape {logits.shape}")
    if logits.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"shape mismatch: {logits.shape[0]} logits but {y_true.shape[0]} labels"
        )
    if not np.all(np.isfinite(logits)):
        raise ValueError("logits contain NaN or infinite values")
    n_classes = 2 if logits.ndim == 1 else logits.shape[1]
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(f"labels must be in 0..{n_classes - 1}, got values {np.unique(y_true)}")
    return logits, y_true.astype(int)


def _nll_of_logits(logits: np.ndarray, y_true: np.ndarray, temperature: float) -> float:
    """Mean NLL of ``logits / temperature``, computed stably (no explicit probabilities)."""
    z = logits / temperature
    if z.ndim == 1:
        # -log sigmoid(z) for y=1 and -log(1 - sigmoid(z)) for y=0, i.e. softplus(z) - y*z
        return float(np.mean(np.logaddexp(0.0, z) - y_true * z))
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(z.shape[0]), y_true]))


def fit_temperature(logits, y_true, max_iter: int = 200) -> float:
    """Fit the temperature T > 0 that minimises the NLL of ``logits / T``.

    Temperature scaling (Guo et al., 2017) divides all logits by one number:
    T > 1 softens an over-confident model, T < 1 sharpens an under-confident
    one, and the arg-max (hence accuracy) never changes. Binary: 1-D logits,
    ``p = sigmoid(logit / T)``; multiclass: (N, K) logits, ``softmax(logits / T)``.

    Fit it on the VALIDATION split only, then apply the same T to test data;
    fitting on test would make the reported calibration optimistic.

    We minimise over ``log T`` (so T stays positive) with a bounded scalar
    search, T in about [0.018, 54.6]. Raises ``ValueError`` on empty input or
    mismatched shapes.
    """
    logits, y_true = _check_logits(logits, y_true)
    result = minimize_scalar(
        lambda log_t: _nll_of_logits(logits, y_true, float(np.exp(log_t))),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
        options={"maxiter": int(max_iter), "xatol": 1e-6},
    )
    return float(np.exp(result.x))


def temperature_at_bound(temperature: float, tol: float = 1e-3) -> bool:
    """True when :func:`fit_temperature` stopped at the edge of its search range (T ~ 0.018 or ~ 54.6):
    the validation data did not pin T down (e.g. an untrained model, or very few images)."""
    lo, hi = _LOG_T_BOUNDS
    log_t = float(np.log(temperature))
    return log_t <= lo + tol or log_t >= hi - tol


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Turn logits into probabilities after dividing by ``temperature``.

    1-D logits give P(pneumonia) = ``sigmoid(logit / T)``; (N, K) logits give
    ``softmax(logits / T)`` row by row.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = np.asarray(logits, dtype=float)
    if logits.ndim == 1:
        return expit(logits / temperature)
    if logits.ndim == 2:
        return softmax(logits / temperature, axis=1)
    raise ValueError(f"logits must be 1-D (binary) or 2-D (N, K), got shape {logits.shape}")


def logit(p, eps: float = 1e-7) -> np.ndarray:
    """Convert probabilities back to logits (after clipping to ``[eps, 1 - eps]``).

    Binary 1-D P(pneumonia): the log-odds ``log(p / (1 - p))``. (N, K)
    probabilities: ``log p``, which is a valid set of logits because softmax
    ignores a constant added to a row.

    Use it for ensembles: average the member probabilities
    (``ensemble_probabilities``), convert that average to a logit with this
    function, and fit ONE temperature on it on the validation split
    (``fit_temperature``), then apply it to the averaged test probabilities.
    """
    p = np.clip(np.asarray(p, dtype=float), eps, 1.0 - eps)
    if p.ndim == 2:
        return np.log(p)
    return np.log(p) - np.log1p(-p)


def ensemble_probabilities(prob_arrays: Sequence) -> np.ndarray:
    """Average the probability arrays of several models (a deep ensemble).

    All arrays must have the same shape (same images in the same order).
    """
    arrays = [np.asarray(a, dtype=float) for a in prob_arrays]
    if not arrays:
        raise ValueError("ensemble_probabilities needs at least one probability array")
    shapes = [a.shape for a in arrays]
    if len(set(shapes)) != 1:
        raise ValueError(f"all ensemble members must have the same shape, got {shapes}")
    return np.mean(np.stack(arrays), axis=0)
