"""Calibration: do the predicted probabilities mean what they say? And where to put the threshold.

A model is calibrated when, among all images it gives "80 % pneumonia",
about 80 % really have pneumonia. This module

* measures calibration (ECE, MCE, reliability tables, Brier score, negative
  log-likelihood) and fixes it with temperature scaling (Guo et al., 2017,
  "On Calibration of Modern Neural Networks"): :func:`fit_temperature`,
  :func:`apply_temperature`, plus :func:`logit` and :func:`ensemble_probabilities`
  for deep ensembles;
* does the same for many models at once, on *members* (anything with ``.label``,
  ``.val`` and ``.test`` holding ``y``, ``logits`` and ``probs``, such as
  :class:`pneumolib.ensemble.Member`): :func:`fit_temperatures` fits one
  temperature per member on its **validation** split only (it never reads
  ``member.test``); :func:`calibration_report` measures the test set before and
  after; :func:`calibration_table`, :func:`reliability_pairs` and
  :func:`calibration_results` shape the report for tables, figures and the
  results file;
* picks operating points on **validation** data only (:func:`choose_thresholds`:
  screening = recall >= 0.99, assisted diagnosis = maximum F1) and reports their
  test metrics next to threshold 0.5 (:func:`operating_points`);
* builds the content of ``results/<profile>/calibration.json``
  (:func:`calibration_file`; notebook 07 writes it with
  ``schema.write_results``).

Conventions: binary probabilities are a 1-D array of P(pneumonia) with labels
0/1; multiclass probabilities are an (N, K) array with labels 0..K-1.

Imports from ``pneumolib`` only :mod:`pneumolib.metrics` and
:mod:`pneumolib.profiles`; :mod:`pneumolib.ensemble` builds on this module,
never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, logsumexp, softmax

from .data import kermany_label
from .metrics import binary_metrics, select_threshold
from .profiles import Profile, profile_hash

if TYPE_CHECKING:  # annotations only: ensemble imports this module, so importing it at run time would be a cycle
    from .ensemble import Member

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
    "fit_temperatures",
    "scale_member",
    "calibration_report",
    "calibration_table",
    "reliability_pairs",
    "calibration_results",
    "OPERATING_RULES",
    "choose_thresholds",
    "operating_points",
    "operating_point_table",
    "describe_operating_point",
    "calibration_file",
]

#: Operating points chosen on validation: name -> rule understood by ``metrics.select_threshold``.
OPERATING_RULES = {"screening": "recall>=0.99", "max_f1": "max_f1"}

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
        raise ValueError(f"y_true and y_prob have different lengths: {y_true.shape[0]} vs {y_prob.shape[0]}")
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
        raise ValueError(f"shape mismatch: {logits.shape[0]} logits but {y_true.shape[0]} labels")
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


# --------------------------------------------------------------------------- #
# Many models at once: members (see pneumolib.ensemble.Member)
# --------------------------------------------------------------------------- #
def _as_list(members: Mapping[str, Member] | Sequence[Member]) -> list[Member]:
    return list(members.values()) if isinstance(members, Mapping) else list(members)


def fit_temperatures(members: Mapping[str, Member] | Sequence[Member]) -> dict[str, float]:
    """One temperature per member, fitted on its VALIDATION logits only.

    ``member.test`` is never read here, so test data cannot leak into the fit.
    """
    return {m.label: fit_temperature(m.val.logits, m.val.y) for m in _as_list(members)}


def scale_member(member: Member, temperature: float, label: str | None = None) -> Member:
    """The same member with probabilities ``sigmoid/softmax(logits / T)`` on both splits."""

    def scaled(s):
        return replace(s, logits=s.logits / temperature, probs=apply_temperature(s.logits, temperature))

    return replace(member, label=label or member.label, val=scaled(member.val), test=scaled(member.test))


def calibration_report(
    members: Mapping[str, Member] | Sequence[Member], temperatures: Mapping[str, float]
) -> dict[str, dict]:
    """Test-set calibration of every member before and after its (validation-fitted) temperature.

    Returns ``{label: {"before": calibration_summary, "after": calibration_summary,
    "temperature": T}}`` (plus ``"members"`` for ensembles); summaries hold ``ece_10, ece_15,
    mce_15, brier, nll``.
    """
    report = {}
    for m in _as_list(members):
        if m.label not in temperatures:
            raise KeyError(f"no temperature for {m.label!r}: fit it with fit_temperatures(...) on validation")
        t = float(temperatures[m.label])
        entry = {
            "before": calibration_summary(m.test.y, m.test.probs),
            "after": calibration_summary(m.test.y, apply_temperature(m.test.logits, t)),
            "temperature": t,
            "temperature_at_bound": temperature_at_bound(t),
        }
        if getattr(m, "members", ()):  # an ensemble: the labels of its averaged models
            entry["members"] = list(m.members)
        report[m.label] = entry
    return report


def calibration_table(report: Mapping[str, dict], digits: int = 3) -> pd.DataFrame:
    """One row per model: T, then ECE (10 / 15 bins), MCE, Brier and NLL before -> after."""
    rows = {}
    for label, entry in report.items():
        row = {"T (val)": round(entry["temperature"], digits), "T at search bound": bool(entry["temperature_at_bound"])}
        for key in ("ece_10", "ece_15", "mce_15", "brier", "nll"):
            row[f"{key} before"] = round(entry["before"][key], digits)
            row[f"{key} after"] = round(entry["after"][key], digits)
        rows[label] = row
    return pd.DataFrame(rows).T


def reliability_pairs(
    members: Sequence[Member], temperatures: Mapping[str, float], n_bins: int = 15
) -> dict[str, pd.DataFrame]:
    """Test reliability tables before and after temperature scaling, for ``plot_reliability``."""
    tables = {}
    for m in members:
        t = temperatures[m.label]
        tables[f"{m.label}: before"] = reliability_table(m.test.y, m.test.probs, n_bins)
        tables[f"{m.label}: after (T = {t:.2f})"] = reliability_table(
            m.test.y, apply_temperature(m.test.logits, t), n_bins
        )
    return tables


def calibration_results(report: Mapping[str, dict], ensembles: Mapping[str, Member], primary: str) -> dict:
    """Shape a :func:`calibration_report` for the results file.

    ``{"members": {label: entry}, "ensemble": entry of ensembles[primary] (with "label" and
    "members"), "other_ensembles": {arm: entry}}``.
    """
    if primary not in ensembles:
        raise KeyError(f"primary ensemble {primary!r} not among {sorted(ensembles)}")
    ens_labels = {e.label for e in ensembles.values()}
    return {
        "members": {k: v for k, v in report.items() if k not in ens_labels},
        "ensemble": {"label": ensembles[primary].label, **report[ensembles[primary].label]},
        "other_ensembles": {
            arm: {"label": e.label, **report[e.label]} for arm, e in ensembles.items() if arm != primary
        },
    }


# --------------------------------------------------------------------------- #
# Operating points
# --------------------------------------------------------------------------- #
def choose_thresholds(y_val, p_val, rules: Mapping[str, str] = OPERATING_RULES) -> dict[str, float]:
    """Thresholds chosen on VALIDATION data only: ``{name: threshold}`` for each rule.

    There is deliberately no test input: whatever you report on test was fixed before looking at it.
    """
    return {name: select_threshold(y_val, p_val, rule) for name, rule in rules.items()}


def operating_points(y_val, p_val, y_test, p_test, rules: Mapping[str, str] = OPERATING_RULES) -> dict:
    """Test metrics at 0.5 and at every validation-chosen threshold.

    Returns ``{"0.5": entry, name: entry, ...}`` with ``entry = {"threshold", "rule",
    "chosen_on", "val_recall", "val_specificity", "test": binary_metrics}``.
    """
    chosen = choose_thresholds(y_val, p_val, rules)
    points = {"0.5": (0.5, "fixed", "fixed (not chosen)")}
    points |= {name: (t, rules[name], "validation") for name, t in chosen.items()}
    out = {}
    for name, (t, rule, how) in points.items():
        val = binary_metrics(y_val, p_val, t)
        out[name] = {
            "threshold": float(t),
            "rule": rule,
            "chosen_on": how,
            "val_recall": val["recall"],
            "val_specificity": val["specificity"],
            "test": binary_metrics(y_test, p_test, t),
        }
    return out


def operating_point_table(points: Mapping[str, dict], digits: int = 3) -> pd.DataFrame:
    """One row per operating point: threshold, validation recall, test metrics and error counts."""
    rows = {}
    for name, e in points.items():
        t = e["test"]
        rows[name] = {
            "rule": e["rule"],
            "threshold": round(e["threshold"], digits),
            "val recall": round(e["val_recall"], digits),
            **{f"test {k}": round(t[k], digits) for k in ("recall", "specificity", "precision", "f1")},
            "missed pneumonia (FN)": t["fn"],
            "healthy flagged (FP)": t["fp"],
        }
    return pd.DataFrame(rows).T


def describe_operating_point(name: str, entry: Mapping) -> str:
    """One sentence, every number from ``entry``: misses out of the pneumonia cases, flags out of
    the normal children, on the test set."""
    t = entry["test"]
    n_pos, n_neg = t["tp"] + t["fn"], t["tn"] + t["fp"]
    chosen = "fixed" if entry["chosen_on"].startswith("fixed") else f"chosen on validation by {entry['rule']}"
    return (
        f"{name} (threshold {entry['threshold']:.3f}, {chosen}): misses {t['fn']} of {n_pos} children "
        f"with pneumonia ({t['fn'] / max(n_pos, 1):.1%}) and flags {t['fp']} of {n_neg} healthy "
        f"children ({t['fp'] / max(n_neg, 1):.1%}) on the test set."
    )


# --------------------------------------------------------------------------- #
# The results file
# --------------------------------------------------------------------------- #
def calibration_file(
    profile: Profile,
    report: Mapping[str, dict],
    ensembles: Mapping[str, Member],
    points: Mapping[str, dict],
    comparison: Mapping[str, dict],
    target: Mapping[str, Any],
    report3: Mapping[str, dict] | None = None,
    ensembles3: Mapping[str, Member] | None = None,
    comparison3: Mapping[str, dict] | None = None,
    skipped3: str | None = None,
    primary: str = "transfer",
) -> dict:
    """Content of ``results/<profile>/calibration.json`` (without ``schema_version``, which
    ``schema.write_results`` adds): see :class:`pneumolib.schema.CalibrationResults`.

    ``report``/``ensembles``/``comparison``: the binary :func:`calibration_report`, ensembles
    ``{arm: Member}`` and test metrics ``{label: member_metrics}``; ``points``: the
    :func:`operating_points` of the temperature-scaled ``ensembles[primary]``; ``target``: where
    its ECE stands against the profile's target. ``report3``/``ensembles3``/``comparison3``: the
    same for three classes, or ``skipped3`` = why that part was skipped.
    """
    if skipped3 is None and any(x is None for x in (report3, ensembles3, comparison3)):
        raise ValueError("pass report3, ensembles3 and comparison3 for the three-class part, or skipped3 (why not)")
    ens = ensembles[primary]
    return {
        "meta": {
            "profile": profile.name,
            "profile_hash": profile_hash(profile),
            "ece_bins": [10, 15],
            "mce_bins": 15,
            "temperature_fitted_on": "validation",
            "thresholds_chosen_on": "validation",
            "binary_data": f"PneumoniaMNIST {profile.mnist_size} px",
            "three_class_data": None if skipped3 else kermany_label(profile),
            "seeds": list(profile.seeds),
        },
        "binary": calibration_results(report, ensembles, primary=primary),
        "three_class": (
            {"skipped": skipped3} if skipped3 else calibration_results(report3, ensembles3, primary=primary)
        ),
        "operating_points": {
            "ensemble": ens.label,
            "temperature": report[ens.label]["temperature"],
            "thresholds": dict(points),
            "test_counts": {"pneumonia": int(ens.test.y.sum()), "normal": int((ens.test.y == 0).sum())},
        },
        "ensemble_vs_members": {
            "binary": dict(comparison),
            "three_class": dict(comparison3) if skipped3 is None else {"skipped": skipped3},
        },
        "target": dict(target),
    }
