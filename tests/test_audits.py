"""Data audits (pneumolib.audits): coverage, train/test overlap, image statistics and the shift audit."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pneumolib import audits as A
from pneumolib.data import CLASSES_3, ImageSet


def test_overlap_report_counts_shared_patients_and_duplicates():
    df = pd.DataFrame(
        {
            "split": ["train", "train", "test", "test", "test"],
            "patient_id": ["p1", "p2", "p1", "p3", "p3"],
            "filename": list("abcde"),
            "sha256": ["h1", "h2", "h2", "h3", "h3"],
        }
    )
    rep = A.overlap_report(df)
    assert rep["shared_patient_ids_train_test"] == 1
    assert rep["duplicate_files_train_test"] == 1
    assert rep["duplicate_pairs_any_split"] == 2


def test_coverage_and_train_share():
    present = pd.DataFrame({"split": ["train", "train", "test"], "label3": [0, 2, 1]})
    listed = pd.DataFrame({"split": ["train"] * 4 + ["test"], "label3": [0, 0, 2, 1, 1]})
    table = A.coverage(present, listed)
    assert table.loc[("train", "normal"), "present"] == 1 and table.loc[("train", "normal"), "full_dataset"] == 2
    assert A.train_share(present, listed) == pytest.approx(2 / 4)
    assert A.train_share(present, None) is None


def test_image_statistics_border_and_contrast():
    img = np.full((2, 16, 16), 200, dtype=np.uint8)
    img[:, :2, :] = 0  # dark top border
    img[1, 8:, :] = 100
    stats = A.image_statistics(img, border_fraction=0.125)
    assert stats.loc[0, "border"] < stats.loc[0, "centre"] == pytest.approx(200 / 255)
    assert stats.loc[1, "mean"] < stats.loc[0, "mean"]
    assert stats.loc[0, "std"] > 0
    with pytest.raises(ValueError, match="border_fraction"):
        A.image_statistics(img, border_fraction=0.6)


def test_aspect_ratios_and_compare(tmp_path):
    paths = []
    for i, (w, h) in enumerate([(60, 40), (30, 30)]):
        p = tmp_path / f"{i}.jpeg"
        Image.new("L", (w, h)).save(p)
        paths.append(str(p))
    np.testing.assert_allclose(A.aspect_ratios(paths), [1.5, 1.0])
    a = pd.DataFrame({"x": np.arange(50.0)})
    table = A.compare_distributions(a, a + 25, ("train", "test"))
    assert table.loc["x", "difference"] == pytest.approx(25)
    assert table.loc["x", "cohen_d"] > 1 and table.loc["x", "ks_p"] < 0.01


def _shift_splits(tmp_path):
    """Normal train images square, normal test images wide; pneumonia images wide in both."""
    rng = np.random.default_rng(0)
    splits = {}
    for split in ("train", "val", "test"):
        labels = np.repeat([0, 1, 2], 6)
        paths = []
        for i, label in enumerate(labels):
            path = tmp_path / f"{split}{i}.jpeg"
            normal_width = 40 + 5 * i if split == "test" else 40  # test normals 1.0-1.625 wide, train ones square
            Image.new("L", (normal_width, 40) if label == 0 else (70, 40)).save(path)
            paths.append(str(path))
        images = torch.as_tensor(rng.integers(0, 255, (len(labels), 16, 16), dtype=np.uint8))
        splits[split] = ImageSet(images, torch.as_tensor(labels), meta=pd.DataFrame({"path": paths}), classes=CLASSES_3)
    return splits


def test_shift_audit_reports_recall_aspect_and_errors(tmp_path):
    splits = _shift_splits(tmp_path)
    y_val, y_test = splits["val"].labels.numpy(), splits["test"].labels.numpy()
    p_val = np.eye(3)[y_val] * 0.9 + 0.05  # every val image right
    p_test = np.eye(3)[y_test] * 0.9 + 0.05
    p_test[:3] = [0.05, 0.05, 0.9]  # the three narrowest normal test images called virus
    audit = A.shift_audit(splits, p_val, p_test)
    assert audit.normal_recall == {"val (official train folder)": 1.0, "test (official test folder)": 0.5}
    assert audit.aspect_auroc == {"train": pytest.approx(1.0), "test": pytest.approx(1.0)}
    assert audit.largest_shift == "aspect"
    assert audit.error_by_aspect_tercile.to_dict() == {"narrow": 1.0, "middle": 0.5, "wide": 0.0}
    assert audit.spearman["aspect"] < 0  # wider normal test images got less P(pneumonia) here
    entry = audit.to_results()
    assert entry["aspect_ratio"]["mean"]["normal test"] == pytest.approx(1.3125)
    assert set(entry) == {
        "normal_recall",
        "normal_train_vs_test",
        "aspect_ratio",
        "spearman_with_p_pneumonia_on_normal_test",
        "normal_test_error_rate_by_aspect_tercile",
        "largest_shift",
    }
    assert len(audit.aspect_table()) == 6
