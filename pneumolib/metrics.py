"""Classification metrics for the binary (normal/pneumonia) and three-class tasks.

Conventions used throughout PneumoLab:

* Binary labels are 0 (normal) and 1 (pneumonia); binary probabilities are a
  1-D array holding P(pneumonia) for every image.
* Multiclass labels are integers 0..K-1 and probabilities are an (N, K) array
  whose rows sum to one.

Every number returned here matches scikit-learn (this is checked in
``tests/test_metrics.py``); we compute some of them by hand from the confusion
counts because seeing the formula is the point of a teaching project.

This module is on the ground floor: it imports nothing from ``pneumolib``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

__all__ = [
    "binary_metrics",
    "decision_score",
    "bootstrap_ci",
    "select_threshold",
    "multiclass_metrics",
    "summarize_runs",
    "format_mean_std",
]


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #
#: the binary metrics summarised over seeds in results tables, and the three-class ones
BINARY_KEYS = ("accuracy", "precision", "recall", "specificity", "f1", "auroc", "average_precision")
MULTI_KEYS = ("accuracy", "macro_f1", "macro_auroc")


def _safe_divide(numerator: float, denominator: float) -> float:
    """Return numerator / denominator, or 0.0 when the denominator is 0.

    This is scikit-learn's ``zero_division=0`` convention (e.g. precision when
    the model never predicts pneumonia).
    """
    return float(numerator) / float(denominator) if denominator else 0.0


def _check_binary(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    """Validate binary inputs and return them as 1-D numpy arrays."""
    y_true = np.asarray(y_true).ravel()
    y_prob = np.asarray(y_prob, dtype=float)
    if y_prob.ndim != 1:
        raise ValueError(f"binary y_prob must be 1-D (P(pneumonia) per sample), got shape {y_prob.shape}")
    if y_true.shape[0] != y_prob.shape[0]:
        raise ValueError(f"y_true and y_prob have different lengths: {y_true.shape[0]} vs {y_prob.shape[0]}")
    if y_true.size == 0:
        raise ValueError("empty input: y_true and y_prob contain no samples")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"binary labels must be 0/1, got values {np.unique(y_true)}")
    return y_true.astype(int), y_prob


def auroc_or_nan(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present (AUROC is undefined then)."""
    if np.unique(y_true).size < 2:
        return float("nan")
    return float(roc_auc_score(y_true, y_score))


def decision_score(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """The one validation number that decides between two ways of predicting (e.g. with or without test-time
    augmentation): AUROC for one output, macro-F1 at the arg-max for several classes."""
    if y_prob.ndim == 1:
        return auroc_or_nan(y_true, y_prob)
    labels = list(range(y_prob.shape[1]))
    return float(f1_score(y_true, y_prob.argmax(1), average="macro", labels=labels, zero_division=0))


def macro_auroc_or_nan(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """One-vs-rest AUROC averaged over the ``y_prob.shape[1]`` classes, or NaN when a class is absent."""
    n_classes = y_prob.shape[1]
    if np.unique(y_true).size < n_classes:
        return float("nan")
    return float(roc_auc_score(y_true, y_prob, multi_class="ovr", average="macro", labels=list(range(n_classes))))


def average_precision_or_nan(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision, or NaN when only one class is present."""
    if np.unique(y_true).size < 2:
        return float("nan")
    return float(average_precision_score(y_true, y_score))


# --------------------------------------------------------------------------- #
# Binary task
# --------------------------------------------------------------------------- #
def binary_metrics(y_true, y_prob, threshold: float = 0.5) -> dict:
    """Threshold-based and ranking metrics for the normal (0) / pneumonia (1) task.

    An image is predicted "pneumonia" when ``y_prob >= threshold``. Accuracy,
    precision, recall (= sensitivity), specificity and F1 depend on that
    threshold; AUROC and average precision look only at the ranking of the
    probabilities, so they do not. Ratios with a zero denominator are reported
    as 0.0 (scikit-learn's ``zero_division=0``); AUROC and average precision
    are NaN when only one class is present.

    Returns a dict with keys ``accuracy, precision, recall, specificity, f1,
    auroc, average_precision, tp, tn, fp, fn, threshold, n``.
    """
    y_true, y_prob = _check_binary(y_true, y_prob)
    y_pred = (y_prob >= threshold).astype(int)

    tp = int(np.sum((y_pred == 1) & (y_true == 1)))
    tn = int(np.sum((y_pred == 0) & (y_true == 0)))
    fp = int(np.sum((y_pred == 1) & (y_true == 0)))
    fn = int(np.sum((y_pred == 0) & (y_true == 1)))
    n = int(y_true.size)

    return {
        "accuracy": (tp + tn) / n,
        "precision": _safe_divide(tp, tp + fp),  # of predicted pneumonia, how many are
        "recall": _safe_divide(tp, tp + fn),  # sensitivity: pneumonia cases caught
        "specificity": _safe_divide(tn, tn + fp),  # normals correctly cleared
        "f1": _safe_divide(2 * tp, 2 * tp + fp + fn),  # harmonic mean of precision/recall
        "auroc": auroc_or_nan(y_true, y_prob),
        "average_precision": average_precision_or_nan(y_true, y_prob),
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "threshold": float(threshold),
        "n": n,
    }


def fast_bootstrap_auroc(y_boot: np.ndarray, p_boot: np.ndarray) -> np.ndarray:
    """AUROC of every row of (B, n) resampled labels/scores at once.

    Uses the Mann-Whitney identity AUROC = (R_pos - n_pos (n_pos + 1) / 2) /
    (n_pos * n_neg), where R_pos is the sum of the (tie-averaged) ranks of the
    positive samples. This equals ``roc_auc_score`` exactly, including ties.
    Rows with only one class get NaN.
    """
    ranks = rankdata(p_boot, axis=1)  # average ranks, handles ties like sklearn
    n_pos = y_boot.sum(axis=1).astype(float)
    n_neg = y_boot.shape[1] - n_pos
    rank_sum_pos = (ranks * y_boot).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def bootstrap_ci(
    y_true,
    y_prob,
    metric: Callable = roc_auc_score,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for a metric on one test set.

    We resample the test images with replacement ``n_boot`` times, recompute
    ``metric(y_true, y_prob)`` on every resample and report the ``alpha/2`` and
    ``1 - alpha/2`` quantiles. Resamples containing a single class are skipped
    (AUROC is undefined on them). For the default ``roc_auc_score`` a
    vectorised rank formula is used, so 1000 resamples take milliseconds; any
    other callable ``metric(y_true, y_prob) -> float`` is evaluated in a loop.

    Returns ``(low, high)``; ``(nan, nan)`` if no resample had both classes.
    """
    y_true = np.asarray(y_true).ravel()
    y_prob = np.asarray(y_prob, dtype=float)
    if y_true.shape[0] != y_prob.shape[0]:
        raise ValueError(f"y_true and y_prob have different lengths: {y_true.shape[0]} vs {y_prob.shape[0]}")
    if y_true.size == 0:
        raise ValueError("empty input: y_true and y_prob contain no samples")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, y_true.shape[0], size=(n_boot, y_true.shape[0]))

    if metric is roc_auc_score and y_prob.ndim == 1 and np.isin(y_true, (0, 1)).all():
        stats = fast_bootstrap_auroc(y_true[idx].astype(int), y_prob[idx])
    else:
        stats = np.full(n_boot, np.nan)
        for b in range(n_boot):
            y_b = y_true[idx[b]]
            if np.unique(y_b).size < 2:
                continue  # skip one-class resamples
            stats[b] = metric(y_b, y_prob[idx[b]])

    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


_RECALL_RULE = re.compile(r"^\s*recall\s*>=\s*([0-9]*\.?[0-9]+)\s*$")


def select_threshold(y_true, y_prob, rule: str) -> float:
    """Choose a decision threshold on VALIDATION data according to ``rule``.

    IMPORTANT: call this on the validation split only, never on the test set.
    A threshold tuned on test data makes every test metric optimistically
    biased; tune here, then report test metrics at the returned threshold.

    Candidate thresholds are the unique values of ``y_prob`` (predict
    pneumonia when ``y_prob >= threshold``). Rules:

    * ``"max_f1"``: the threshold with the highest F1 (ties: the highest such
      threshold, i.e. the more specific one).
    * ``"recall>=x"`` (e.g. ``"recall>=0.99"``): the HIGHEST threshold whose
      recall is still ``>= x``. Recall can only drop as the threshold rises, so
      this is the most specific operating point that meets the sensitivity
      floor - the usual choice for a screening tool.

    Raises ``ValueError`` for an unknown rule.
    """
    y_true, y_prob = _check_binary(y_true, y_prob)

    # Sorted candidates and, for each, the confusion counts of "predict y_prob >= t".
    candidates = np.unique(y_prob)  # ascending
    pos_scores = np.sort(y_prob[y_true == 1])
    neg_scores = np.sort(y_prob[y_true == 0])
    tp = pos_scores.size - np.searchsorted(pos_scores, candidates, side="left")
    fp = neg_scores.size - np.searchsorted(neg_scores, candidates, side="left")
    fn = pos_scores.size - tp

    rule_clean = rule.strip().lower() if isinstance(rule, str) else rule
    if rule_clean == "max_f1":
        denom = 2 * tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.zeros(candidates.size), where=denom > 0)
        best = np.flatnonzero(f1 == f1.max())[-1]  # highest threshold among ties
        return float(candidates[best])

    match = _RECALL_RULE.match(rule_clean) if isinstance(rule_clean, str) else None
    if match:
        target = float(match.group(1))
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"recall target must be in [0, 1], got {target} in rule {rule!r}")
        if pos_scores.size == 0:
            raise ValueError("rule 'recall>=x' needs at least one positive (pneumonia) sample")
        recall = tp / pos_scores.size
        ok = np.flatnonzero(recall >= target)  # never empty: lowest candidate has recall 1
        return float(candidates[ok[-1]])

    raise ValueError(f"unknown threshold rule {rule!r}; use 'max_f1' or 'recall>=x' (e.g. 'recall>=0.99')")


# --------------------------------------------------------------------------- #
# Multiclass task
# --------------------------------------------------------------------------- #
def multiclass_metrics(y_true, y_prob, classes: Sequence[str], y_pred=None) -> dict:
    """Metrics for the K-class task (e.g. normal / bacteria / virus).

    The prediction is the arg-max class, unless ``y_pred`` gives the predicted labels of another
    decision rule (label metrics then follow ``y_pred``; ``macro_auroc`` still ranks ``y_prob``).
    ``classes[k]`` names label ``k``.
    Macro averages give every class the same weight regardless of its size,
    which matters because the viral class is small. ``macro_auroc`` is the
    one-vs-rest AUROC averaged over classes (NaN if some class is absent).
    Per-class ratios with a zero denominator are 0.0; rows of
    ``confusion_normalized`` with no samples are all zeros.

    Returns ``accuracy, macro_f1, macro_auroc, per_class`` ({name:
    {precision, recall, f1, support}}), ``confusion`` (counts, rows = true
    class, columns = predicted) and ``confusion_normalized`` (each row divided
    by its total).
    """
    classes = list(classes)
    n_classes = len(classes)
    y_true = np.asarray(y_true).ravel().astype(int)
    y_prob = np.asarray(y_prob, dtype=float)
    if y_prob.ndim != 2 or y_prob.shape[1] != n_classes:
        raise ValueError(f"y_prob must have shape (N, {n_classes}) for classes {classes}, got {y_prob.shape}")
    if y_true.shape[0] != y_prob.shape[0]:
        raise ValueError(f"y_true and y_prob have different lengths: {y_true.shape[0]} vs {y_prob.shape[0]}")
    if y_true.size == 0:
        raise ValueError("empty input: y_true and y_prob contain no samples")
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(f"labels must be in 0..{n_classes - 1}, got values {np.unique(y_true)}")

    if y_pred is None:
        y_pred = y_prob.argmax(axis=1)
    else:
        y_pred = np.asarray(y_pred).astype(int).ravel()
        if y_pred.shape != y_true.shape or y_pred.min() < 0 or y_pred.max() >= n_classes:
            raise ValueError(
                f"y_pred must hold {y_true.size} labels in 0..{n_classes - 1}, "
                f"got shape {y_pred.shape} and values {np.unique(y_pred)}"
            )
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(confusion, (y_true, y_pred), 1)

    per_class = {}
    f1s = []
    for k, name in enumerate(classes):
        tp = confusion[k, k]
        fp = confusion[:, k].sum() - tp  # predicted k, truly something else
        fn = confusion[k, :].sum() - tp  # truly k, predicted something else
        f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
        f1s.append(f1)
        per_class[name] = {
            "precision": _safe_divide(tp, tp + fp),
            "recall": _safe_divide(tp, tp + fn),
            "f1": f1,
            "support": int(confusion[k, :].sum()),
        }

    macro_auroc = macro_auroc_or_nan(y_true, y_prob)

    row_totals = confusion.sum(axis=1, keepdims=True)
    normalized = np.divide(confusion, row_totals, out=np.zeros(confusion.shape, dtype=float), where=row_totals > 0)

    return {
        "accuracy": float(np.trace(confusion) / y_true.size),
        "macro_f1": float(np.mean(f1s)),
        "macro_auroc": macro_auroc,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "confusion_normalized": normalized.tolist(),
    }


# --------------------------------------------------------------------------- #
# Summaries over repeated runs (seeds)
# --------------------------------------------------------------------------- #
def _is_number(value) -> bool:
    """True for ints/floats (including numpy scalars), False for bools and others."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def summarize_runs(runs: Iterable[Mapping], keys: Sequence[str] | None = None) -> dict:
    """Mean and spread of each metric over several runs (e.g. different seeds).

    ``runs`` is a list of metric dicts such as those from ``binary_metrics``.
    With ``keys=None`` every key whose value is a number in all runs is
    summarised (nested dicts, lists and strings are skipped). NaN values
    (e.g. an undefined AUROC) are left out, and ``n`` says how many runs
    were actually used.

    Returns ``{key: {"mean": ..., "std": ..., "n": ...}}`` where ``std`` is the
    sample standard deviation (ddof=1), 0.0 for a single run.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("summarize_runs needs at least one run")

    if keys is None:
        keys = [k for k in runs[0] if all(k in r and _is_number(r[k]) for r in runs)]
    else:
        for key in keys:
            for i, run in enumerate(runs):
                if key not in run:
                    raise KeyError(f"key {key!r} missing from run {i}")
                if not _is_number(run[key]):
                    raise ValueError(f"key {key!r} in run {i} is not numeric: {run[key]!r}")

    summary = {}
    for key in keys:
        values = np.array([float(r[key]) for r in runs])
        values = values[~np.isnan(values)]
        n = int(values.size)
        summary[key] = {
            "mean": float(values.mean()) if n else float("nan"),
            "std": float(values.std(ddof=1)) if n > 1 else (0.0 if n == 1 else float("nan")),
            "n": n,
        }
    return summary


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """Format a mean and standard deviation for tables, e.g. ``"0.912 ± 0.012"``."""
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
