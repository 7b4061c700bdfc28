"""pneumolib.report: the PDF and the model card are built from the results files, and only from them.

Every test writes a tiny fake results set into the temporary project root of ``conftest.py``
(``PNEUMOLAB_ROOT``); the real ``results/`` and ``report/`` are never touched. Distinctive
numbers (0.8771, 0.4321, ...) let us check that what the report shows comes from the files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumolib import report
from pneumolib.profiles import profile_hash
from pneumolib.results import project_root, write_json

PROFILE = "smoke"
REPO_TEMPLATE = Path(report.__file__).resolve().parent.parent / "report" / "report.typ"


def _stat(mean, std=0.01, n=3):
    return {"mean": mean, "std": std, "n": n}


def _binary_entry(name, weights, auroc, seed_values):
    at = {k: _stat(v) for k, v in dict(accuracy=0.8771, precision=0.85, recall=0.97, specificity=0.61, f1=0.9,
                                        auroc=auroc, average_precision=0.95).items()}
    return {"model": name, "weights": weights, "display_name": f"{name} ({weights})", "parameters": 93249,
            "image_size": 28, "note": "", "runs": [{"seed": s, "val_threshold": t} for s, t in seed_values],
            "summary": {"at_05": at, "at_val_threshold": at, "ms_per_img": _stat(1.5, 0.1),
                        "train_time_s": 123.0},
            "auroc_ci95": [0.9, 0.95]}


def _meta(dataset, n_test=624):
    return {"profile": PROFILE, "profile_hash": profile_hash(PROFILE), "dataset": dataset, "image_size": 28,
            "seeds": [0, 1, 2], "n": {"train": 4708, "val": 524, "test": n_test}, "class_counts": {}}


def write_fake_results(root: Path, skip_three_class: bool = False) -> Path:
    res = root / "results" / PROFILE
    write_json(res / "data.json", {
        "pneumoniamnist_counts": {"train": {"normal": 1214, "pneumonia": 3494},
                                  "val": {"normal": 135, "pneumonia": 389},
                                  "test": {"normal": 234, "pneumonia": 390}},
        "majority_baseline_accuracy": {"test": {"correct": 390, "n": 624, "accuracy": 0.625}},
        "kermany_coverage": {"table": [{"split": "train", "label3": "virus", "present": 402, "full_dataset": 1345,
                                        "share": 0.299}], "train_share": 0.3123},
        "overlap_full": {"images": {"train": 5216, "val": 16, "test": 624}, "patients": {"train": 2846, "test": 427},
                         "shared_patient_ids_train_test": 4242, "test_images_of_shared_patients": 320,
                         "duplicate_files_train_test": 0, "duplicate_pairs_any_split": 32},
    })
    write_json(res / "binary.json", {
        "meta": _meta("PneumoniaMNIST 28 px"),
        "models": {"simple_cnn-scratch": _binary_entry("simple_cnn", "scratch", 0.4321,
                                                       [(0, 0.3), (1, 0.5), (2, 0.4)])},
        "skipped": {"resnet18-imagenet": "ImageNet weights unavailable offline"}})
    if not skip_three_class:
        per_class = {c: {"precision": _stat(0.7), "recall": _stat(0.6), "f1": _stat(f1)}
                     for c, f1 in (("normal", 0.81), ("bacteria", 0.79), ("virus", 0.5678))}
        write_json(res / "three_class.json", {
            "meta": _meta("Kermany 32 px"),
            "models": {"resnet18-scratch": {"model": "resnet18", "weights": "scratch",
                                            "display_name": "ResNet18 (scratch)",
                                            "parameters": 11169345, "image_size": 32, "runs": [{}, {}, {}],
                                            "summary": {"test": {"accuracy": _stat(0.7), "macro_f1": _stat(0.65),
                                                                 "macro_auroc": _stat(0.85)},
                                                        "per_class": per_class, "ms_per_img": _stat(2.0)}}},
            "ensemble": {"accuracy": 0.72, "macro_f1": 0.68}})
    write_json(res / "hierarchical.json", {"meta": _meta("Kermany 32 px"), "stage1": {"auroc": 0.9}, "accuracy": 0.66})
    cal_entry = {"before": {"ece_10": 0.12, "ece_15": 0.1357, "mce_15": 0.3, "brier": 0.1, "nll": 0.4},
                 "after": {"ece_10": 0.04, "ece_15": 0.05, "mce_15": 0.2, "brier": 0.09, "nll": 0.3},
                 "temperature": 1.7}
    point = {"threshold": 0.2, "rule": "recall>=0.99", "chosen_on": "validation", "val_recall": 0.99,
             "val_specificity": 0.5, "test": {"recall": 0.98, "specificity": 0.55, "precision": 0.8, "f1": 0.88,
                                              "tp": 382, "fn": 8, "tn": 129, "fp": 105}}
    write_json(res / "calibration.json", {
        "meta": {"profile": PROFILE, "profile_hash": profile_hash(PROFILE), "binary_data": "PneumoniaMNIST 28 px",
                 "three_class_data": None, "seeds": [0, 1, 2], "temperature_fitted_on": "validation",
                 "thresholds_chosen_on": "validation"},
        "binary": {"members": {"Custom CNN (scratch) seed 0": cal_entry},
                   "ensemble": {"label": "Ensemble A", **cal_entry, "members": ["a", "b"]}, "other_ensembles": {}},
        "three_class": {"skipped": "no Kermany folder"},
        "operating_points": {"ensemble": "Ensemble A", "temperature": 1.7, "thresholds": {"screening": point}},
        "ensemble_vs_members": {"binary": {"Ensemble A": {"accuracy": 0.8, "recall": 0.97, "specificity": 0.5,
                                                          "f1": 0.86, "auroc": 0.93}},
                                "three_class": {"skipped": "no Kermany folder"}},
        "target": {"profile": PROFILE, "metric": "ece_15 after temperature scaling", "limit": 0.05, "met": True}})
    write_json(res / "gradcam.json", {
        "meta": {"profile": PROFILE, "profile_hash": profile_hash(PROFILE), "seed": 0, "target_class": "predicted"},
        "layers": {"binary:resnet18-scratch:layer4": {"layer": "backbone.layer4", "map_size": [4, 4], "input_size": 28,
                                                      "network_input": 28, "is_default": True}},
        "sanity": {"binary:resnet18-scratch:layer4": [{"n_top": 1, "block": "fc", "spearman": 0.9, "abs_diff": 0.1},
                                                      {"n_top": 5, "block": "conv1", "spearman": 0.02,
                                                       "abs_diff": 0.4}]},
        "border_mass": {"binary:resnet18-scratch:layer4": {"border_mass": 0.5, "area_fraction": 0.44, "ratio": 1.1,
                                                           "n_maps": 96}}})
    nbs = {name: {"status": "ok", "wall_s": 12.5, "reason": None, "profile_hash": profile_hash(PROFILE)}
           for name in ("01_data_exploration", "03_custom_cnn", "04_transfer_learning", "06_hierarchical")}
    nbs["05_three_class"] = ({"status": "skipped", "wall_s": 0.0, "reason": "needs the Kermany chest_xray folder"}
                             if skip_three_class else {"status": "ok", "wall_s": 3.0})
    write_json(res / "run_metadata.json", {"profile": PROFILE, "profile_hash": profile_hash(PROFILE),
                                           "git": {"commit": "abc1234", "dirty": False}, "date": "2026-01-01T00:00:00",
                                           "machine": {"cpu_count": 2, "memory_gib": 8.0}, "notebooks": nbs})
    fig = root / "figures" / PROFILE
    fig.mkdir(parents=True)
    Image.fromarray(np.full((20, 40), 128, dtype=np.uint8)).save(fig / "03_custom_cnn_curves.png")
    return res


@pytest.fixture
def fake(isolated_root):
    """The fake results, and the repository's template copied into the temporary project root."""
    (isolated_root / "report").mkdir()
    shutil.copyfile(REPO_TEMPLATE, isolated_root / "report" / "report.typ")
    return write_fake_results(isolated_root)


def test_context_holds_formatted_numbers_from_the_results(fake):
    ctx = report.build_context(PROFILE)
    text = json.dumps(ctx, ensure_ascii=False)
    assert "0.877 ± 0.010" in text  # binary accuracy mean ± std, formatted
    assert "0.432 ± 0.010" in text  # the fake AUROC
    assert "0.400 ± 0.100" in text  # mean ± std of the per-seed validation thresholds 0.3/0.5/0.4
    assert "4,242" in text  # shared patient ids from data.json
    assert "ImageNet weights unavailable offline" in text  # a skipped arm says why
    assert [s["number"] for s in ctx["sections"]] == ["01", "02", "03", "05", "06", "07", "08", "09"]
    figures = [b for s in ctx["sections"] for b in s["blocks"] if b["kind"] == "figure"]
    assert [f["path"] for f in figures] == [f"/figures/{PROFILE}/03_custom_cnn_curves.png"]
    assert ctx["cover"]["facts"][0][1].endswith(f"({profile_hash(PROFILE)})")


def test_anchor_rows_carry_the_same_labels_as_ours(fake):
    ctx = report.build_context(PROFILE)
    binary = next(s for s in ctx["sections"] if s["number"] == "03")
    anchors = next(b for b in binary["blocks"] if b["kind"] == "table" and b["header"][0] == "Source · model")
    assert anchors["header"][1:6] == ["Data", "Pretraining", "Threshold", "Seeds", "Split"]
    ours, theirs = anchors["rows"][0], anchors["rows"][1:]
    assert ours[1:6] == ["PneumoniaMNIST 28 px", "none", "0.5", "3", "official test (n = 624)"]
    assert theirs and all(r[5] == "official test (n = 624)" for r in theirs)


def test_build_writes_pdf_and_model_card(fake, isolated_root):
    pdf = report.build_report(PROFILE)
    assert pdf == isolated_root / "report" / PROFILE / "report.pdf"
    assert pdf.read_bytes()[:4] == b"%PDF"
    card = (isolated_root / "report" / PROFILE / "MODEL_CARD.md").read_text()
    assert "0.568 ± 0.010" in card  # virus F1 from three_class.json: per-class numbers
    assert "Educational" in card or "educational" in card


def test_model_card_has_per_class_numbers(fake):
    card = report.model_card(PROFILE)
    assert "| ResNet18 (scratch) | virus | 0.700 ± 0.010 | 0.600 ± 0.010 | 0.568 ± 0.010 |" in card
    assert "0.610 ± 0.010" in card  # binary: normal recall = specificity
    assert "0.136" in card  # calibration: ECE before temperature scaling
    assert "not a clinical device" in card


def test_missing_results_name_the_notebook(fake):
    (fake / "three_class.json").unlink()
    with pytest.raises(report.MissingResultsError) as err:
        report.build_context(PROFILE)
    msg = str(err.value)
    assert f"results/{PROFILE}/three_class.json missing" in msg
    assert f"05_three_class (python -m pneumolib.run --profile {PROFILE} --only 05)" in msg
    assert isinstance(err.value, FileNotFoundError)  # notebooks can catch it as such


def test_skipped_notebook_is_reported_not_invented(isolated_root):
    (isolated_root / "report").mkdir()
    shutil.copyfile(REPO_TEMPLATE, isolated_root / "report" / "report.typ")
    write_fake_results(isolated_root, skip_three_class=True)
    ctx = report.build_context(PROFILE)
    three = next(s for s in ctx["sections"] if s["number"] == "05")
    assert three["status"] == "skipped" and "Kermany" in three["reason"] and three["blocks"] == []
    assert "Three-class.** skipped: needs the Kermany" in report.model_card(PROFILE)


def test_stale_profile_hash_is_refused(fake):
    data = json.loads((fake / "binary.json").read_text())
    data["meta"]["profile_hash"] = "000000000000"
    write_json(fake / "binary.json", data)
    with pytest.raises(report.StaleResultsError, match=r"binary\.json is stale.*Rerun notebook 03_custom_cnn"):
        report.build_context(PROFILE)


def test_failed_notebook_is_refused(fake):
    meta = json.loads((fake / "run_metadata.json").read_text())
    meta["notebooks"]["04_transfer_learning"] = {"status": "failed", "reason": "cell 3: boom", "wall_s": 1.0}
    write_json(fake / "run_metadata.json", meta)
    with pytest.raises(report.ReportError, match=r"04_transfer_learning failed in the last run \(cell 3: boom\)"):
        report.build_context(PROFILE)


def test_missing_run_metadata_says_how_to_make_it(fake):
    (fake / "run_metadata.json").unlink()
    with pytest.raises(report.MissingResultsError, match=r"python -m pneumolib\.run --profile smoke"):
        report.build_context(PROFILE)
    assert "virus" in report.model_card(PROFILE)  # the model card alone does not need it


def test_cli_reports_errors_without_traceback(fake, capsys):
    (fake / "data.json").unlink()
    assert report.main(["--profile", PROFILE]) == 1
    assert "01_data_exploration" in capsys.readouterr().err
    assert project_root() == fake.parent.parent


def test_formatting_helpers():
    assert report.fmt_mean_std({"mean": 0.91234, "std": 0.0123, "n": 3}) == "0.912 ± 0.012"
    assert report.fmt_mean_std({"mean": 0.91234, "std": 0.0, "n": 1}) == "0.912"
    assert report.fmt_mean_std({"mean": None, "std": None, "n": 0}) == "n/a"
    assert report.fmt_num(5216) == "5,216" and report.fmt_num(float("nan")) == "n/a"


def test_unknown_results_layout_is_shown_as_stored_not_dropped(fake):
    cams = json.loads((fake / "gradcam.json").read_text())
    cams["sanity"] = 0.2468  # not the list of randomisation steps the Grad-CAM section expects
    write_json(fake / "gradcam.json", cams)
    section = next(s for s in report.build_context(PROFILE)["sections"] if s["number"] == "08")
    assert "not the one pneumolib.report knows" in section["blocks"][0]["text"]
    assert "0.247" in json.dumps(section, ensure_ascii=False)


def test_training_text_comes_from_the_protocol_stored_with_the_results():
    from pneumolib.report import _training_texts

    def entry(name, epochs, text):
        return {"display_name": name, "protocol": {"max_epochs": epochs, "text": text}}

    binary = {"models": {"a": entry("CNN", 30, "cosine"), "b": entry("ResNet18", 10, "cosine"),
                         "c": entry("Old", 8, "plateau")}}
    texts = _training_texts({"Binary": binary, "Three": {"models": {"x": {"display_name": "no protocol"}}}})
    assert texts == ["Binary: cosine; epoch budget: CNN 30, ResNet18 10.", "Binary: plateau; epoch budget: Old 8."]


def test_binary_targets_say_met_or_not_from_the_best_model(fake, monkeypatch):
    monkeypatch.setitem(report.BINARY_TARGETS, "profile", PROFILE)
    items = report._binary_target_items(report._Results(PROFILE), json.loads(
        (project_root() / "results" / PROFILE / "binary.json").read_text()))
    assert items[0] == "best mean AUROC ≥ 0.975: 0.432 (simple_cnn (scratch)), not met"
    assert items[1].startswith("best mean accuracy at 0.5 ≥ 0.9: 0.877") and items[1].endswith("not met")
    text = json.dumps(report.build_context(PROFILE), ensure_ascii=False)
    assert "Project targets (profile smoke)" in text
    monkeypatch.setitem(report.BINARY_TARGETS, "profile", "cpu")
    assert "Project targets" not in json.dumps(report.build_context(PROFILE), ensure_ascii=False)
