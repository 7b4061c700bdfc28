"""Tests for pneumolib.ensemble and the member-level half of pneumolib.calibration (and
plots.plot_reliability): averaging, validation-only fitting of temperatures and thresholds,
calibration improving on an over-confident ensemble, and the calibration.json builder."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.special import expit, softmax  # noqa: E402

from pneumolib import schema  # noqa: E402
from pneumolib.calibration import (  # noqa: E402
    calibration_file,
    calibration_report,
    calibration_results,
    calibration_table,
    choose_thresholds,
    describe_operating_point,
    expected_calibration_error,
    fit_temperature,
    fit_temperatures,
    operating_point_table,
    operating_points,
    reliability_pairs,
    reliability_table,
    scale_member,
    temperature_at_bound,
)
from pneumolib.ensemble import (  # noqa: E402
    Member,
    SplitArrays,
    build_ensemble,
    collect_members,
    comparison_table,
    ensemble_arms,
    ensemble_name,
    member_metrics,
)
from pneumolib.metrics import select_threshold  # noqa: E402
from pneumolib.plots import plot_reliability  # noqa: E402
from pneumolib.profiles import get_profile  # noqa: E402
from pneumolib.results import jsonable  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _binary_split(y, z):
    z = np.asarray(z, dtype=float)
    return SplitArrays(np.asarray(y), z, expit(z))


def _overconfident_member(label, seed, n=600, scale=6.0):
    """Scores whose true log-odds are z, reported as scale * z: badly over-confident."""
    rng = np.random.default_rng(seed)
    splits = []
    for _ in ("val", "test"):
        z = rng.normal(0.0, 1.5, n)
        y = (rng.random(n) < expit(z)).astype(int)
        splits.append(_binary_split(y, scale * z))
    return Member(label, *splits)


class FakeRun:
    """Just what collect_members reads from a pneumolib.train.Run."""

    def __init__(self, model_name, seed, arrays, weights="scratch"):
        self.model_name, self.seed, self.info, self._arrays = model_name, seed, {"weights": weights}, arrays

    def split_arrays(self, split):
        return self._arrays[split]


# --------------------------------------------------------------------------- ensembles
def test_ensemble_averages_known_probabilities_and_keeps_labels():
    y = np.array([0, 1, 1])
    a = Member("a", _binary_split(y, [0.0, 0.0, 0.0]), _binary_split(y, [0.0, 0.0, 0.0]))  # p = 0.5
    p_b = np.array([0.1, 0.7, 0.9])
    z_b = np.log(p_b / (1 - p_b))
    b = Member("b", _binary_split(y, z_b), _binary_split(y, z_b))
    ens = build_ensemble({"a": a, "b": b}, "ens")
    np.testing.assert_allclose(ens.test.probs, [0.3, 0.6, 0.7])
    np.testing.assert_allclose(expit(ens.test.logits), [0.3, 0.6, 0.7], atol=1e-9)  # logits = log-odds
    np.testing.assert_array_equal(ens.val.y, y)
    assert ens.members == ("a", "b") and ens.is_ensemble and ens.is_binary


def test_multiclass_ensemble_average_and_log_probability_logits():
    y = np.array([0, 2])
    p1 = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    p2 = np.array([[0.2, 0.4, 0.4], [0.0, 0.2, 0.8]])
    m1 = Member("m1", SplitArrays(y, np.log(p1), p1), SplitArrays(y, np.log(p1), p1))
    m2 = Member("m2", SplitArrays(y, np.log(p2 + 1e-9), p2), SplitArrays(y, np.log(p2 + 1e-9), p2))
    ens = build_ensemble([m1, m2], "ens")
    expected = np.array([[0.4, 0.35, 0.25], [0.1, 0.2, 0.7]])
    np.testing.assert_allclose(ens.test.probs, expected)
    np.testing.assert_allclose(softmax(ens.test.logits, axis=1), expected, atol=1e-6)
    assert member_metrics(ens, ("normal", "bacteria", "virus"))["accuracy"] == 1.0


def test_ensemble_refuses_members_on_different_images():
    a = _overconfident_member("a", 0, n=50)
    b = _overconfident_member("b", 1, n=50)  # different labels: different images
    with pytest.raises(ValueError, match="different val images"):
        build_ensemble([a, b], "bad")


def test_collect_members_labels_by_real_weights_and_rejects_duplicates():
    y, z = np.array([0, 1, 1, 0]), np.array([-1.0, 2.0, 0.5, 0.2])
    arrays = {s: (y, z, expit(z)) for s in ("val", "test")}
    members = collect_members([FakeRun("resnet18", 0, arrays), FakeRun("resnet18", 0, arrays, "imagenet")])
    assert list(members) == ["ResNet18 (scratch) seed 0", "ResNet18 (imagenet) seed 0"]
    with pytest.raises(ValueError, match="both labelled"):
        collect_members([FakeRun("resnet18", 0, arrays), FakeRun("resnet18", 0, arrays)])
    with pytest.raises(ValueError, match="no runs"):
        collect_members([])


def test_ensemble_arms_build_one_ensemble_per_arm_with_honest_names():
    y, z = np.array([0, 1, 1, 0]), np.array([-1.0, 2.0, 0.5, 0.2])
    arrays = {s: (y, z, expit(z)) for s in ("val", "test")}
    shifted = {s: (y, z + 1, expit(z + 1)) for s in ("val", "test")}
    transfer = [FakeRun("resnet18", 0, arrays), FakeRun("densenet121", 0, shifted)]
    cnn = [FakeRun("simple_cnn", 0, arrays)]
    members, ensembles = ensemble_arms({"transfer": transfer, "custom_cnn": cnn})
    assert len(members) == 3
    assert ensembles["transfer"].label == "Ensemble: ResNet18 + DenseNet121 (scratch), 2 runs"
    assert ensembles["custom_cnn"].label == "Ensemble: Custom CNN (scratch), 1 run"
    np.testing.assert_allclose(ensembles["transfer"].test.probs, (expit(z) + expit(z + 1)) / 2)
    mixed = ensemble_name([FakeRun("resnet18", 0, arrays, "imagenet"), FakeRun("densenet121", 0, arrays)])
    assert mixed == "Ensemble: ResNet18 (imagenet) + DenseNet121 (scratch), 2 runs"
    with pytest.raises(ValueError, match="no runs"):
        ensemble_arms({"transfer": transfer, "custom_cnn": []})


# --------------------------------------------------------------------------- temperature scaling
def test_temperature_fit_never_reads_test_data():
    clean = _overconfident_member("m", 3)
    poisoned = Member(
        "m",
        clean.val,
        SplitArrays(clean.test.y, np.full_like(clean.test.logits, np.nan), np.full_like(clean.test.probs, np.nan)),
    )
    t_clean = fit_temperatures([clean])["m"]
    t_poisoned = fit_temperatures([poisoned])["m"]
    assert np.isfinite(t_poisoned)
    assert t_poisoned == pytest.approx(t_clean)
    assert t_clean == pytest.approx(fit_temperature(clean.val.logits, clean.val.y))
    assert t_clean != pytest.approx(fit_temperature(clean.test.logits, clean.test.y), rel=1e-3)


def test_temperature_scaling_lowers_ece_of_overconfident_ensemble():
    members = [_overconfident_member(f"m{i}", 10 + i) for i in range(3)]
    # same images for all members: reuse labels of the first, perturb the scores
    base = members[0]
    rng = np.random.default_rng(0)
    members = [
        Member(f"m{i}", *(_binary_split(s.y, s.logits + rng.normal(0, 0.3, s.y.size)) for s in (base.val, base.test)))
        for i in range(3)
    ]
    ens = build_ensemble(members, "ens")
    temps = fit_temperatures([ens])
    assert temps["ens"] > 1.5  # over-confident: the fitted temperature softens it
    report = calibration_report([ens], temps)["ens"]
    assert report["after"]["ece_15"] <= report["before"]["ece_15"]
    assert report["after"]["ece_10"] <= report["before"]["ece_10"]
    assert report["after"]["nll"] < report["before"]["nll"]
    assert report["members"] == ["m0", "m1", "m2"]
    scaled = scale_member(ens, temps["ens"])
    assert expected_calibration_error(scaled.test.y, scaled.test.probs) == pytest.approx(report["after"]["ece_15"])
    table = calibration_table(calibration_report([ens], temps))
    assert {"T (val)", "ece_10 before", "ece_15 after", "nll after"} <= set(table.columns)


def test_calibration_results_shape_and_bound_flag():
    a, b = _overconfident_member("a", 1, n=100), _overconfident_member("b", 2, n=100)
    ens_a = build_ensemble([a], "ens a")
    ens_b = build_ensemble([b], "ens b")
    everything = [a, b, ens_a, ens_b]
    temps = fit_temperatures(everything)
    report = calibration_report(everything, temps)
    out = calibration_results(report, {"transfer": ens_a, "cnn": ens_b}, primary="transfer")
    assert set(out["members"]) == {"a", "b"}
    assert out["ensemble"]["label"] == "ens a" and out["ensemble"]["members"] == ["a"]
    assert set(out["ensemble"]) >= {"before", "after", "temperature"}
    assert out["other_ensembles"]["cnn"]["label"] == "ens b"
    assert temperature_at_bound(np.exp(4.0)) and temperature_at_bound(np.exp(-4.0))
    assert not temperature_at_bound(1.7)
    tables = reliability_pairs([a], temps, n_bins=10)
    assert list(tables) == ["a: before", f"a: after (T = {temps['a']:.2f})"]
    assert all(len(t) == 10 for t in tables.values())


def test_calibration_report_requires_a_temperature_per_member():
    with pytest.raises(KeyError, match="no temperature"):
        calibration_report([_overconfident_member("m", 0, n=20)], {})


# --------------------------------------------------------------------------- operating points
def test_thresholds_are_chosen_on_validation_not_test():
    # Validation: positives score 0.6-0.9, negatives 0.1-0.4 -> max-F1 threshold 0.6.
    y_val = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p_val = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    # Test: positives score lower (0.35-0.5); choosing on test would give 0.35.
    y_test = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p_test = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5])
    assert select_threshold(y_test, p_test, "max_f1") == pytest.approx(0.35)  # what cheating would pick
    chosen = choose_thresholds(y_val, p_val)
    assert chosen["max_f1"] == pytest.approx(0.6)
    assert chosen["screening"] == pytest.approx(0.6)  # highest with val recall >= 0.99
    points = operating_points(y_val, p_val, y_test, p_test)
    assert points["max_f1"]["threshold"] == pytest.approx(0.6)
    assert points["max_f1"]["val_recall"] == 1.0
    assert points["max_f1"]["test"]["recall"] == 0.0  # honest (bad) test result at the val threshold
    assert points["0.5"]["threshold"] == 0.5 and points["0.5"]["test"]["tp"] == 1
    table = operating_point_table(points)
    assert list(table.index) == ["0.5", "screening", "max_f1"]
    assert table.loc["max_f1", "missed pneumonia (FN)"] == 4


def test_describe_operating_point_counts_from_metrics():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.7, 0.2, 0.8, 0.9, 0.95])
    entry = operating_points(y, p, y, p)["0.5"]
    text = describe_operating_point("Threshold 0.5", entry)
    assert "misses 1 of 4" in text and "flags 2 of 3" in text


def test_member_metrics_and_comparison_table():
    m = _overconfident_member("m", 5, n=200)
    metrics = member_metrics(m)
    assert set(comparison_table({"m": metrics}).columns) == {"accuracy", "recall", "specificity", "f1", "auroc"}
    assert metrics["tp"] + metrics["fn"] == int(m.test.y.sum())
    p3 = softmax(np.random.default_rng(0).normal(size=(6, 3)), axis=1)
    m3 = Member("m3", SplitArrays(np.arange(6) % 3, np.log(p3), p3), SplitArrays(np.arange(6) % 3, np.log(p3), p3))
    with pytest.raises(ValueError, match="pass classes"):
        member_metrics(m3)


# --------------------------------------------------------------------------- the results file
def _multiclass_member(label, seed, n=90, k=3):
    """Three-class logits 4x too confident for labels drawn from softmax(z)."""
    rng = np.random.default_rng(seed)
    splits = []
    for _ in ("val", "test"):
        z = rng.normal(0.0, 1.0, (n, k))
        y = np.array([rng.choice(k, p=p) for p in softmax(z, axis=1)])
        splits.append(SplitArrays(y, 4.0 * z, softmax(4.0 * z, axis=1)))
    return Member(label, *splits)


def _runs_of(base, prefix, n_runs=4):
    """``n_runs`` members on ``base``'s images: its logits plus run-specific noise."""
    rng = np.random.default_rng(len(prefix))

    def noisy(s):
        z = s.logits + rng.normal(0.0, 0.5, s.logits.shape)
        return SplitArrays(s.y, z, expit(z) if z.ndim == 1 else softmax(z, axis=1))

    return [Member(f"{prefix}{i}", noisy(base.val), noisy(base.test)) for i in range(n_runs)]


def _as_written(data):
    """What ``schema.write_results`` checks: the JSON form, with the schema version it adds."""
    return json.loads(json.dumps(jsonable({"schema_version": schema.results_file("calibration").version, **data})))


def _calibration_inputs(members, classes=None):
    ensembles = {"transfer": build_ensemble(members[:2], "ens t"), "custom_cnn": build_ensemble(members[2:], "ens c")}
    everything = [*ensembles.values(), *members]
    temps = fit_temperatures(everything)
    report = calibration_report(everything, temps)
    comparison = {m.label: member_metrics(m, classes) for m in everything}
    return ensembles, temps, report, comparison


def test_calibration_file_matches_its_schema_with_and_without_three_classes():
    P = get_profile("smoke")
    members = _runs_of(_overconfident_member("base", 0, n=120), "m")
    ensembles, temps, report, comparison = _calibration_inputs(members)
    ens = ensembles["transfer"]
    scaled = scale_member(ens, temps[ens.label])
    points = operating_points(scaled.val.y, scaled.val.probs, scaled.test.y, scaled.test.probs)
    target = {
        "profile": P.name,
        "metric": "ece_15 after temperature scaling",
        "limit": 0.05,
        "value": report[ens.label]["after"]["ece_15"],
        "met": False,
    }

    skipped = calibration_file(P, report, ensembles, points, comparison, target, skipped3="no Kermany")
    schema.validate("calibration", _as_written(skipped))
    assert list(skipped) == ["meta", "binary", "three_class", "operating_points", "ensemble_vs_members", "target"]
    assert skipped["three_class"] == {"skipped": "no Kermany"}
    assert skipped["ensemble_vs_members"]["three_class"] == {"skipped": "no Kermany"}
    assert skipped["meta"]["three_class_data"] is None and skipped["meta"]["seeds"] == list(P.seeds)
    assert skipped["binary"] == calibration_results(report, ensembles, primary="transfer")
    ops = skipped["operating_points"]
    assert ops["ensemble"] == "ens t" and ops["temperature"] == temps["ens t"] and ops["thresholds"] == points
    assert ops["test_counts"] == {"pneumonia": int(ens.test.y.sum()), "normal": int((ens.test.y == 0).sum())}
    assert skipped["target"] == target

    classes = ("normal", "bacteria", "virus")
    members3 = _runs_of(_multiclass_member("base", 1), "k")
    ensembles3, _, report3, comparison3 = _calibration_inputs(members3, classes)
    full = calibration_file(
        P,
        report,
        ensembles,
        points,
        comparison,
        target,
        report3=report3,
        ensembles3=ensembles3,
        comparison3=comparison3,
    )
    schema.validate("calibration", _as_written(full))
    assert full["three_class"] == calibration_results(report3, ensembles3, primary="transfer")
    assert full["ensemble_vs_members"]["three_class"] == comparison3
    assert full["meta"]["three_class_data"] == f"Kermany {P.kermany_size} px"
    with pytest.raises(ValueError, match="skipped3"):
        calibration_file(P, report, ensembles, points, comparison, target, report3=report3)


# --------------------------------------------------------------------------- reliability plot
def test_plot_reliability_panels_and_counts():
    m = _overconfident_member("m", 7, n=300)
    tables = {
        "before": reliability_table(m.test.y, m.test.probs, 10),
        "after": reliability_table(m.test.y, expit(m.test.logits / 6.0), 10),
    }
    fig = plot_reliability(tables, "test")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4  # reliability + counts per label
    count_axis = fig.axes[1]
    labels = [t.get_text() for t in count_axis.texts]
    filled = tables["before"].query("count > 0")["count"].astype(str).tolist()
    assert labels == filled
    assert fig.axes[0].get_xlim() == (0.5, 1.0)  # binary confidences start at 0.5


def test_plot_reliability_rejects_wrong_tables():
    with pytest.raises(ValueError, match="reliability_table"):
        plot_reliability({"x": pd.DataFrame({"count": [1]})})
    with pytest.raises(ValueError, match="at least one"):
        plot_reliability({})
