"""Tests for pneumolib.metrics: every number is checked against scikit-learn."""

import math
import time

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
)

from pneumolib.metrics import (
    binary_metrics,
    bootstrap_ci,
    format_mean_std,
    multiclass_metrics,
    select_threshold,
    summarize_runs,
)


@pytest.fixture
def binary_data():
    """Seeded, informative but imperfect binary scores (size of the test split)."""
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, size=624)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, size=624), 0, 1)
    p = np.round(p, 2)  # creates ties, which thresholds and AUROC must handle
    return y, p


@pytest.fixture
def multiclass_data():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, size=300)
    logits = rng.normal(size=(300, 3))
    logits[np.arange(300), y] += 1.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p


# --------------------------------------------------------------------------- #
# binary_metrics
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_binary_metrics_match_sklearn(binary_data, threshold):
    y, p = binary_data
    pred = (p >= threshold).astype(int)
    m = binary_metrics(y, p, threshold=threshold)

    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p))
    # specificity is the recall of the negative (normal) class
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))

    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert (m["tp"], m["tn"], m["fp"], m["fn"]) == (tp, tn, fp, fn)
    assert m["threshold"] == threshold
    assert m["n"] == len(y)


def test_binary_metrics_threshold_changes_predictions(binary_data):
    y, p = binary_data
    low, high = binary_metrics(y, p, 0.3), binary_metrics(y, p, 0.5)
    assert low["recall"] >= high["recall"]
    assert low["tp"] + low["fp"] > high["tp"] + high["fp"]
    assert low["auroc"] == high["auroc"]  # ranking metric: independent of the threshold


def test_binary_metrics_threshold_is_inclusive():
    m = binary_metrics([0, 1], [0.5, 0.5], threshold=0.5)
    assert (m["tp"], m["fp"]) == (1, 1)


def test_binary_metrics_one_class_gives_nan_not_crash():
    m = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert math.isnan(m["auroc"]) and math.isnan(m["average_precision"])
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["specificity"] == 0.0  # no negatives: zero_division=0 convention
    m0 = binary_metrics([0, 0], [0.1, 0.2])
    assert m0["precision"] == 0.0 and m0["f1"] == 0.0 and m0["specificity"] == 1.0


def test_binary_metrics_rejects_bad_input():
    with pytest.raises(ValueError):
        binary_metrics([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError):
        binary_metrics([0, 2], [0.1, 0.2])


# --------------------------------------------------------------------------- #
# bootstrap_ci
# --------------------------------------------------------------------------- #
def test_bootstrap_ci_contains_point_auroc(binary_data):
    y, p = binary_data
    low, high = bootstrap_ci(y, p, n_boot=1000, seed=0)
    assert low < roc_auc_score(y, p) < high
    assert 0.0 <= low < high <= 1.0


def test_bootstrap_fast_auroc_matches_generic_loop(binary_data):
    y, p = binary_data
    fast = bootstrap_ci(y, p, n_boot=200, seed=3)
    slow = bootstrap_ci(y, p, metric=lambda a, b: roc_auc_score(a, b), n_boot=200, seed=3)
    assert fast == pytest.approx(slow, abs=1e-12)


def test_bootstrap_ci_is_fast_and_reproducible(binary_data):
    y, p = binary_data
    start = time.perf_counter()
    first = bootstrap_ci(y, p, n_boot=1000, seed=0)
    assert time.perf_counter() - start < 1.0
    assert bootstrap_ci(y, p, n_boot=1000, seed=0) == first


def test_bootstrap_ci_skips_one_class_resamples():
    # 1 positive among 20: many resamples have no positive and must be skipped
    y = np.array([1] + [0] * 19)
    p = np.linspace(0.05, 1.0, 20)[::-1]  # the positive has the highest score
    low, high = bootstrap_ci(y, p, n_boot=300, seed=0)
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)


def test_bootstrap_ci_custom_metric(binary_data):
    y, p = binary_data
    low, high = bootstrap_ci(y, p, metric=average_precision_score, n_boot=100, seed=1)
    assert low < average_precision_score(y, p) < high


# --------------------------------------------------------------------------- #
# select_threshold
# --------------------------------------------------------------------------- #
def _f1_at(y, p, t):
    return f1_score(y, (p >= t).astype(int), zero_division=0)


def test_select_threshold_max_f1_is_best_candidate(binary_data):
    y, p = binary_data
    t = select_threshold(y, p, "max_f1")
    assert t in set(np.unique(p))
    best = _f1_at(y, p, t)
    for candidate in np.unique(p):
        assert best >= _f1_at(y, p, candidate) - 1e-12


@pytest.mark.parametrize("target", [0.99, 0.9])
def test_select_threshold_recall_floor(binary_data, target):
    y, p = binary_data
    t = select_threshold(y, p, f"recall>={target}")
    assert recall_score(y, (p >= t).astype(int)) >= target
    higher = np.unique(p)[np.unique(p) > t]
    for candidate in higher:  # no higher threshold keeps the recall floor
        assert recall_score(y, (p >= candidate).astype(int)) < target


def test_select_threshold_recall_hand_example():
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    assert select_threshold(y, p, "recall>=1.0") == 0.3  # must keep the 0.3 positive
    assert select_threshold(y, p, "recall>=0.6") == 0.8  # 2 of 3 is enough
    assert select_threshold(y, p, "max_f1") == 0.3  # F1 = 6/7 at 0.3 beats 4/5 at 0.8


@pytest.mark.parametrize("rule", ["max_auc", "recall>0.9", "precision>=0.9", "recall>=1.5", ""])
def test_select_threshold_unknown_rule_raises(binary_data, rule):
    y, p = binary_data
    with pytest.raises(ValueError):
        select_threshold(y, p, rule)


# --------------------------------------------------------------------------- #
# multiclass_metrics
# --------------------------------------------------------------------------- #
CLASSES = ["normal", "bacteria", "virus"]


def test_multiclass_metrics_match_sklearn(multiclass_data):
    y, p = multiclass_data
    pred = p.argmax(axis=1)
    m = multiclass_metrics(y, p, CLASSES)

    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=[0, 1, 2])
    for k, name in enumerate(CLASSES):
        assert m["per_class"][name]["precision"] == pytest.approx(precision[k])
        assert m["per_class"][name]["recall"] == pytest.approx(recall[k])
        assert m["per_class"][name]["f1"] == pytest.approx(f1[k])
        assert m["per_class"][name]["support"] == support[k]

    cm = confusion_matrix(y, pred, labels=[0, 1, 2])
    assert m["confusion"] == cm.tolist()
    np.testing.assert_allclose(m["confusion_normalized"], cm / cm.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(np.sum(m["confusion_normalized"], axis=1), 1.0)


def test_multiclass_metrics_missing_class():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    m = multiclass_metrics(y, p, CLASSES)
    assert math.isnan(m["macro_auroc"])  # class 2 absent: OvR AUROC undefined
    assert m["per_class"]["virus"]["support"] == 0
    assert m["confusion_normalized"][2] == [0.0, 0.0, 0.0]
    assert m["macro_f1"] == pytest.approx(f1_score(y, p.argmax(1), labels=[0, 1, 2], average="macro", zero_division=0))


def test_multiclass_metrics_shape_errors():
    with pytest.raises(ValueError):
        multiclass_metrics([0, 1], np.full((2, 2), 0.5), CLASSES)
    with pytest.raises(ValueError):
        multiclass_metrics([0, 1, 2], np.full((2, 3), 1 / 3), CLASSES)


# --------------------------------------------------------------------------- #
# summarize_runs / format_mean_std
# --------------------------------------------------------------------------- #
def test_summarize_runs_mean_and_sample_std():
    runs = [
        {"auroc": 0.90, "f1": 0.80, "model": "resnet", "tp": 10, "per_class": {}},
        {"auroc": 0.92, "f1": 0.84, "model": "resnet", "tp": 12, "per_class": {}},
        {"auroc": 0.94, "f1": 0.82, "model": "resnet", "tp": 14, "per_class": {}},
    ]
    s = summarize_runs(runs)
    assert set(s) == {"auroc", "f1", "tp"}  # non-numeric keys skipped
    assert s["auroc"]["mean"] == pytest.approx(0.92)
    assert s["auroc"]["std"] == pytest.approx(np.std([0.90, 0.92, 0.94], ddof=1))
    assert s["tp"] == {"mean": 12.0, "std": pytest.approx(2.0), "n": 3}
    only = summarize_runs(runs, keys=["f1"])
    assert list(only) == ["f1"]


def test_summarize_runs_single_run_and_nan():
    s = summarize_runs([{"auroc": 0.9}])
    assert s["auroc"] == {"mean": 0.9, "std": 0.0, "n": 1}
    s = summarize_runs([{"auroc": 0.9}, {"auroc": float("nan")}, {"auroc": 0.8}])
    assert s["auroc"]["n"] == 2 and s["auroc"]["mean"] == pytest.approx(0.85)
    with pytest.raises(KeyError):
        summarize_runs([{"a": 1.0}, {"b": 2.0}], keys=["a"])
    with pytest.raises(ValueError):
        summarize_runs([])


def test_format_mean_std():
    assert format_mean_std(0.91234, 0.01161) == "0.912 ± 0.012"
    assert format_mean_std(0.5, 0.26, digits=1) == "0.5 ± 0.3"


def test_seed_averaged_auroc_ci_equals_the_plain_bootstrap_loop():
    from sklearn.metrics import roc_auc_score

    from pneumolib.evaluate import seed_averaged_auroc_ci

    rng = np.random.default_rng(1)
    y = (rng.random(60) < 0.6).astype(int)
    probs = [np.clip(y * 0.3 + rng.random(60) * 0.7, 0, 1).round(2) for _ in range(3)]  # rounding makes ties

    class FakeRun:
        def __init__(self, p):
            self.p = p

        def split_arrays(self, split):
            return y, None, self.p

    draws = np.random.default_rng(0)
    stats = []
    for _ in range(200):
        idx = draws.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) == 2:
            stats.append(np.mean([roc_auc_score(y[idx], p[idx]) for p in probs]))
    expected = np.percentile(stats, [2.5, 97.5])
    np.testing.assert_allclose(seed_averaged_auroc_ci([FakeRun(p) for p in probs], n_boot=200), expected, rtol=1e-12)


def test_decision_score_is_auroc_for_one_output_and_macro_f1_for_several():
    from pneumolib.metrics import decision_score

    rng = np.random.default_rng(0)
    y2, p2 = rng.integers(0, 2, 50), rng.random(50)
    assert decision_score(y2, p2) == pytest.approx(binary_metrics(y2, p2)["auroc"])
    y3, p3 = rng.integers(0, 3, 60), rng.dirichlet(np.ones(3), 60)
    assert decision_score(y3, p3) == pytest.approx(multiclass_metrics(y3, p3, ["a", "b", "c"])["macro_f1"])
