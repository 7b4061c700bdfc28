"""The two-stage (hierarchical) classifier: label mappings, combination rule, error attribution."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from pneumolib import hierarchical as H
from pneumolib.data import CLASSES_3, ImageSet, load_kermany, parse_kermany_filename


# --------------------------------------------------------------------------- labels
@pytest.mark.parametrize(
    "filename, label, label3",
    [
        ("IM-0001-0001.jpeg", 0, 0),
        ("NORMAL2-IM-1427-0001.jpeg", 0, 0),
        ("person1_bacteria_1.jpeg", 1, 1),
        ("person1_virus_6.jpeg", 1, 2),
        ("person1001_bacteria_2932_0001.jpeg", 1, 1),
    ],
)
def test_three_class_label_from_filename(filename, label, label3):
    parsed = parse_kermany_filename(filename)
    assert (parsed.label, parsed.label3) == (label, label3)
    assert CLASSES_3[parsed.label3] == ("normal", "bacteria", "virus")[label3]


def test_stage_b_mapping_and_refuses_normal():
    assert H.stage_b_labels([1, 2, 2, 1]).tolist() == [0, 1, 1, 0]
    assert H.CLASSES_STAGE_B[H.stage_b_labels([parse_kermany_filename("person3_virus_1.jpeg").label3])[0]] == "virus"
    with pytest.raises(ValueError, match="pneumonia images only"):
        H.stage_b_labels([0, 1, 2])


def _three_class_set(label3, name="test"):
    label3 = np.asarray(label3)
    images = torch.arange(len(label3), dtype=torch.uint8).view(-1, 1, 1).expand(-1, 4, 4).contiguous()
    meta = pd.DataFrame({"label": (label3 > 0).astype(int), "label3": label3})
    return ImageSet(images, torch.as_tensor(label3, dtype=torch.long), meta, CLASSES_3, name)


def test_stage_splits_keep_images_and_relabel():
    splits = {"train": _three_class_set([0, 1, 2, 2, 0, 1]), "test": _three_class_set([2, 0, 1])}
    a = H.stage_a_splits(splits)
    assert a["train"].labels.tolist() == [0, 1, 1, 1, 0, 1]
    assert a["train"].classes == ("normal", "pneumonia")
    assert torch.equal(a["test"].images, splits["test"].images)  # same images, same order
    b = H.stage_b_splits(splits)
    assert b["train"].labels.tolist() == [0, 1, 1, 0]  # bacteria, virus, virus, bacteria
    assert b["train"].images[:, 0, 0].tolist() == [1, 2, 3, 5]  # the pneumonia images, in order
    assert b["test"].classes == ("bacteria", "virus")
    with pytest.raises(ValueError, match="no pneumonia"):
        H.stage_b_splits({"val": _three_class_set([0, 0])})


def test_stage_splits_on_kermany_folder(kermany_root):
    splits3 = load_kermany(24, root=kermany_root, three_class=True, val_fraction=0.25)
    binary = load_kermany(24, root=kermany_root, three_class=False, val_fraction=0.25)
    a = H.stage_a_splits(splits3)
    for s in ("train", "val", "test"):
        assert torch.equal(a[s].labels, binary[s].labels)
        assert torch.equal(a[s].images, binary[s].images)
    b = H.stage_b_splits(splits3)
    names = b["test"].meta["filename"].tolist()
    assert names and all("_bacteria_" in n or "_virus_" in n for n in names)
    assert [("_virus_" in n) for n in names] == b["test"].labels.bool().tolist()


# --------------------------------------------------------------------------- combination rule
def test_combine_exact_values_and_rows_sum_to_one():
    p_a, p_b = np.array([0.0, 1.0, 0.8, 0.6, 0.3]), np.array([0.9, 0.25, 0.5, 0.5, 1.0])
    probs = H.combine(p_a, p_b)
    expected = np.array([[1.0, 0.0, 0.0], [0.0, 0.75, 0.25], [0.2, 0.4, 0.4], [0.4, 0.3, 0.3], [0.7, 0.0, 0.3]])
    np.testing.assert_allclose(probs, expected, atol=1e-12)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-12)


def test_combine_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        H.combine([0.5, 0.5], [0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        H.combine([1.5], [0.5])  # a logit, not a probability


def test_argmax_and_sequential_differ_only_on_normal_vs_pneumonia():
    # pA = 0.6 with an undecided Stage B: combined = [0.4, 0.3, 0.3] -> argmax says normal,
    # the sequential rule says pneumonia (0.6 >= 0.5), then virus (pB = 0.5 >= 0.5)
    p_a, p_b = np.array([0.6, 0.6, 0.9, 0.2]), np.array([0.5, 0.05, 0.2, 0.9])
    assert H.predict(p_a, p_b, "argmax").tolist() == [0, 1, 1, 0]
    assert H.predict_sequential(p_a, p_b).tolist() == [2, 1, 1, 0]
    assert H.rule_disagreements(p_a, p_b).tolist() == [0]
    np.testing.assert_allclose(H.argmax_normal_cutoff([0.5, 0.0, 1.0]), [2 / 3, 0.5, 0.5])
    with pytest.raises(ValueError, match="rule"):
        H.predict(p_a, p_b, "vote")


def test_random_probabilities_argmax_boundary_matches_cutoff():
    rng = np.random.default_rng(0)
    p_a, p_b = rng.uniform(size=2000), rng.uniform(size=2000)
    normal = H.predict(p_a, p_b, "argmax") == 0
    np.testing.assert_array_equal(normal, p_a < H.argmax_normal_cutoff(p_b))
    both = H.predict(p_a, p_b, "argmax") > 0
    # where both rules say pneumonia they agree on the subtype
    seq = H.predict_sequential(p_a, p_b)
    np.testing.assert_array_equal(H.predict(p_a, p_b, "argmax")[both & (seq > 0)], seq[both & (seq > 0)])


# --------------------------------------------------------------------------- error sources
@pytest.mark.parametrize("rule", H.RULES)
@pytest.mark.parametrize("p_b", [0.0, 0.3, 0.5, 0.99, 1.0])
def test_stage_a_miss_cannot_be_recovered_by_stage_b(rule, p_b):
    # one viral pneumonia image that Stage A scores 0.4: whatever Stage B says, it ends up "normal"
    out = H.error_sources([2], [0.4], [p_b], rule=rule)
    assert H.predict([0.4], [p_b], rule).tolist() == [0]
    assert (out["stage_a"], out["stage_b"], out["total_errors"], out["missed_pneumonia"]) == (1, 0, 1, 1)


def test_error_sources_on_hand_example():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    p_a = np.array([0.1, 0.7, 0.9, 0.3, 0.8, 0.95, 0.2, 0.4])
    p_b = np.array([0.9, 0.9, 0.8, 0.1, 0.9, 0.1, 0.9, 0.5])
    # sequential predictions: 0, 2, 2, 0, 2, 1, 0, 0
    assert H.predict_sequential(p_a, p_b).tolist() == [0, 2, 2, 0, 2, 1, 0, 0]
    out = H.error_sources(y, p_a, p_b, threshold=0.5)
    assert out == dict(stage_a=3, stage_b=2, total_errors=5, missed_pneumonia=2, false_pneumonia=1, n=8)
    # a stricter Stage A threshold turns the false alarm (pA 0.7) into a correct "normal"
    assert H.error_sources(y, p_a, p_b, threshold=0.75)["false_pneumonia"] == 0
    assert H.error_sources(y, p_a, p_b, threshold=0.75)["missed_pneumonia"] == 2


def test_error_breakdown_parts_add_up():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    out = H.error_breakdown(y, p)
    assert out["stage_a"] + out["stage_b"] == out["total_errors"] == int((y != p).sum())
    assert out["stage_a"] == out["missed_pneumonia"] + out["false_pneumonia"]


def test_dominant_error():
    cm = [[50, 3, 20], [2, 60, 9], [4, 11, 30]]
    out = H.dominant_error(cm, CLASSES_3)
    assert (out["true"], out["pred"], out["count"], out["total_errors"]) == ("normal", "virus", 20, 49)
    assert out["share_of_errors"] == pytest.approx(20 / 49)
    assert H.dominant_error(np.eye(3, dtype=int) * 5)["true"] is None
    with pytest.raises(ValueError, match="square"):
        H.dominant_error([[1, 2]])


# --------------------------------------------------------------------------- metrics vs scikit-learn
@pytest.mark.parametrize("rule", H.RULES)
def test_macro_metrics_of_combined_probs_equal_sklearn(rule):
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], [40, 35, 25])
    p_a = np.clip(np.where(y > 0, 0.7, 0.3) + rng.normal(0, 0.25, y.size), 0, 1)
    p_b = np.clip(np.where(y == 2, 0.65, 0.35) + rng.normal(0, 0.25, y.size), 0, 1)
    m = H.hierarchical_metrics(y, p_a, p_b, rule=rule)
    pred = H.predict(p_a, p_b, rule)
    probs = H.combine(p_a, p_b)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    per_class = f1_score(y, pred, average=None)
    assert [m["per_class"][c]["f1"] for c in CLASSES_3] == pytest.approx(per_class.tolist())
    assert np.asarray(m["confusion"]).sum() == y.size


def test_summarize_multiclass_keys():
    rec = {
        "accuracy": 0.5,
        "macro_f1": 0.4,
        "macro_auroc": 0.7,
        "per_class": {c: {"f1": f} for c, f in zip(CLASSES_3, (0.6, 0.4, 0.2))},
    }
    out = H.summarize_multiclass([rec, dict(rec, accuracy=0.7)])
    assert out["accuracy"]["mean"] == pytest.approx(0.6)
    assert out["f1_virus"]["mean"] == pytest.approx(0.2) and out["f1_virus"]["std"] == 0.0


def test_plots_return_figures():
    from pneumolib.plots import plot_distribution_shift, plot_error_sources, plot_two_stage_rules

    df = pd.DataFrame({"mean": [0.1, 0.2, 0.3], "std": [0.2, 0.2, 0.3]})
    assert len(plot_distribution_shift({"train": df, "test": df + 0.1}).axes) == 2
    counts = {"flat": H.error_breakdown([0, 1, 2], [1, 0, 1]), "two-stage": H.error_breakdown([0, 1, 2], [0, 2, 2])}
    assert len(plot_error_sources(counts).axes[0].patches) == 6
    fig = plot_two_stage_rules([0.2, 0.7, 0.9], [0.1, 0.5, 0.8], [0, 1, 2])
    assert len(fig.axes[0].collections) >= 3
