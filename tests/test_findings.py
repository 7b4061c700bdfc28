"""Findings: the direction words follow the numbers (fed both ways), and the committed results render."""

import copy
import shutil
from pathlib import Path

import pytest

from pneumolib import findings as F
from pneumolib import schema
from pneumolib.profiles import get_profile

REPO = Path(__file__).resolve().parents[1]


def scores(ece, mce, nll):
    return {"ece_10": ece, "ece_15": ece, "mce_15": mce, "brier": 0.1, "nll": nll}


def cal_file(before, after, t=0.9, spec_val=0.95, spec_test=0.6):
    op = {"threshold": 0.1, "rule": "r", "chosen_on": "validation", "val_recall": 0.99}
    test = {"specificity": spec_test, "fn": 1, "fp": 90}
    return {
        "binary": {"ensemble": {"before": before, "after": after, "temperature": t, "label": "Ens", "members": []}},
        "three_class": {"skipped": "no Kermany folder"},
        "operating_points": {
            "ensemble": "Ens",
            "thresholds": {
                "0.5": {**op, "val_specificity": 1.0, "test": {"specificity": 0.85, "fn": 9, "fp": 34}},
                "screening": {**op, "val_specificity": spec_val, "test": test},
                "max_f1": {**op, "val_specificity": spec_val, "test": test},
            },
        },
        "target": {"value": after["ece_15"], "limit": 0.05},
    }


def test_direction_uses_the_printed_rounding():
    assert F.direction(0.026, 0.033) == 1
    assert F.direction(0.033, 0.026) == -1
    assert F.direction(0.0261, 0.0259) == 0  # both print as 0.026
    assert F.direction(None, 0.1) is None
    assert F.change_phrase("the ECE", 0.026, 0.033) == "raised the ECE from 0.026 to 0.033"
    assert F.change_phrase("the ECE", 0.033, 0.026) == "lowered the ECE from 0.033 to 0.026"
    assert "unchanged" in F.change_phrase("the ECE", 0.0261, 0.0259)


def test_temperature_sentence_flips_with_the_numbers():
    worse = F.temperature_findings(cal_file(scores(0.026, 0.16, 0.21), scores(0.033, 0.19, 0.22)))
    better = F.temperature_findings(cal_file(scores(0.033, 0.19, 0.22), scores(0.026, 0.16, 0.21), t=1.3))
    mixed = F.temperature_findings(cal_file(scores(0.10, 0.20, 0.76), scores(0.05, 0.15, 0.87)))
    assert "raised the ECE (15 bins) from 0.026 to 0.033" in worse[0]
    assert "made calibration worse" in worse[0] and "sharpens" in worse[0]
    barely = F.temperature_findings(cal_file(scores(0.031, 0.231, 0.207), scores(0.031, 0.231, 0.208)))
    assert "made calibration slightly worse" in barely[0] and "unchanged at 0.031" in barely[0]
    assert "lowered the ECE (15 bins) from 0.033 to 0.026" in better[0]
    assert "it helped" in better[0] and "softens" in better[0] and "worse" not in better[0]
    assert len(better) == 1 and len(worse) == 2  # the "why" sentence only when it did not help
    assert "mixed result" in mixed[0] and "NLL got worse" in mixed[0]
    assert "not available" in F.temperature_findings(cal_file(scores(0, 0, 0), scores(0, 0, 0)), "three_class")[0]


def test_target_sentence_says_when_it_was_met_before_scaling():
    already = F.target_findings(cal_file(scores(0.026, 0.1, 0.2), scores(0.033, 0.1, 0.2)))[0]
    assert "is met" in already and "already met before scaling (0.026)" in already
    thanks = F.target_findings(cal_file(scores(0.08, 0.1, 0.2), scores(0.033, 0.1, 0.2)))[0]
    assert "is met" in thanks and "already" not in thanks and "before scaling it was 0.080" in thanks
    missed = F.target_findings(cal_file(scores(0.08, 0.1, 0.2), scores(0.07, 0.1, 0.2)))[0]
    assert "not met" in missed


def test_threshold_sentences_follow_val_and_test():
    fell = F.threshold_findings(cal_file(scores(0, 0, 0), scores(0, 0, 0), spec_val=0.93, spec_test=0.59))
    held = F.threshold_findings(cal_file(scores(0, 0, 0), scores(0, 0, 0), spec_val=0.59, spec_test=0.93))
    assert "fell from 0.93 on validation to 0.59 on test" in fell[0] and "did not carry over" in fell[0]
    assert "rose from 0.59" in held[0] and "did not carry over" not in held[0]
    binary = {"models": {"m": {"display_name": "CNN", "summary": {"at_05": {"f1": {"mean": 0.927}}}}}}
    binary["models"]["m"]["summary"]["at_val_threshold"] = {"f1": {"mean": 0.896}}
    lower = F.threshold_findings({}, binary)
    binary["models"]["m"]["summary"]["at_val_threshold"] = {"f1": {"mean": 0.95}}
    higher = F.threshold_findings({}, binary)
    assert "0.896, lower than at threshold 0.5 (0.927" in lower[0]
    assert "0.950, higher than" in higher[0]


def test_prevalence_sentence():
    meta = {"class_counts": {"val": {"normal": 135, "pneumonia": 389}, "test": {"normal": 234, "pneumonia": 390}}}
    s = F.prevalence_findings({"meta": meta})[0]
    assert "74.2%" in s and "62.5%" in s and "lower than" in s
    meta["class_counts"]["test"] = {"normal": 10, "pneumonia": 90}
    assert "higher than" in F.prevalence_findings({"meta": meta})[0]


def test_shift_sentence_flips_with_the_error_trend():
    three = {"shift": {"normal_test_error_rate_by_aspect_tercile": {"narrow": 0.09, "middle": 0.31, "wide": 0.64},
                       "aspect_ratio": {"auroc_pneumonia": {"train": 0.87, "test": 0.70}}}}  # fmt: skip
    rising = F.shift_findings(three)
    assert "centre square" in rising[0] and "squeeze" in rising[0]
    assert "rises" in rising[1] and "9%" in rising[1] and "64%" in rising[1]
    assert "strongly separates" in rising[2] and "0.87 on train" in rising[2]
    three["shift"]["normal_test_error_rate_by_aspect_tercile"] = {"narrow": 0.6, "middle": 0.3, "wide": 0.1}
    three["shift"]["aspect_ratio"]["auroc_pneumonia"]["train"] = 0.52
    falling = F.shift_findings(three)
    assert "falls" in falling[1] and "hardly separates" in falling[2]
    assert "not available" in F.shift_findings({})[0]


def budget_entry(best_epochs, budget=5, epochs_run=None):
    runs = [{"seed": i, "best_epoch": b, "epochs_run": epochs_run or budget} for i, b in enumerate(best_epochs)]
    return {"display_name": "DenseNet121 (scratch)", "protocol": {"max_epochs": budget}, "runs": runs}


def test_budget_label_counts_best_epoch_at_the_end():
    assert F.budget_label(budget_entry([5, 5, 5])) == "5-epoch budget; best epoch = last in 3/3 seeds"
    assert F.budget_label(budget_entry([2, 3, 4])) == "5-epoch budget; best epoch = last in 0/3 seeds"
    early = F.budget_findings({"models": {"a": budget_entry([2], budget=12, epochs_run=7)}}, "three-class")
    assert any("kept epoch 2 of 7" in s for s in early)
    same = F.budget_findings({"models": {"a": budget_entry([5]), "b": budget_entry([4])}})
    differ = F.budget_findings({"models": {"a": budget_entry([5]), "b": budget_entry([4], budget=30)}})
    assert not any("different epoch budgets" in s for s in same)
    assert any("different epoch budgets" in s for s in differ)


def test_coverage_sentence():
    data = {"kermany_coverage": {"train_share": 0.3123},
            "overlap_present": {"images": {"train": 1629}}, "overlap_full": {"images": {"train": 5216}}}  # fmt: skip
    assert "31% of the Kermany training folder (1,629 of 5,216 images)" in F.coverage_findings(data)[0]
    data["kermany_coverage"]["train_share"] = 1.0
    assert "full Kermany training folder" in F.coverage_findings(data)[0]
    assert "not available" in F.coverage_findings({})[0]


def cams(fn=None, last_rho=0.87, std=0.0, size=(2, 2)):
    key = "binary:densenet121-scratch:features"
    return {
        "best_binary": {
            "display_name": "ResNet18",
            "seed": 0,
            "threshold": 0.15,
            "threshold_rule": "max_f1",
            "chosen_on": "validation AUROC",
        },  # fmt: skip
        "examples": {"TP": 1, "TN": 2, "FP": 3, "FN": fn},
        "layers": {key: {"map_size": list(size)}},
        "border_mass": {key: {"border_mass_std": std}},
        "sanity": {key: [{"spearman": 1.0}, {"spearman": last_rho}]},
    }


def test_gradcam_sentences_flip():
    bad = F.gradcam_findings(cams())
    assert any("no false negative" in s and "lowest-scored pneumonia case" in s for s in bad)
    assert any("uniform 2×2 map" in s for s in bad)
    assert any("0.87" in s and "sanity check fails" in s for s in bad)
    good = F.gradcam_findings(cams(fn=7, last_rho=0.05, std=0.1, size=(7, 7)))
    assert not any("no false negative" in s or "uniform" in s for s in good)
    assert any("sanity check passes" in s for s in good)
    assert "chosen on validation AUROC" in good[0]


@pytest.fixture
def committed(isolated_root):
    """The committed cpu results, copied into the isolated project root (read through the schema)."""
    shutil.copytree(REPO / "results" / "cpu", isolated_root / "results" / "cpu")
    return get_profile("cpu")


def test_committed_cpu_findings_render(committed):
    found = F.key_findings(committed)
    text = "\n".join(s for group in found.values() for s in group)
    assert "not available" not in text
    cal = schema.read_results(committed, "calibration")
    before, after = cal["binary"]["ensemble"]["before"]["ece_15"], cal["binary"]["ensemble"]["after"]["ece_15"]
    if round(after, 3) == round(before, 3):
        assert f"left the ECE (15 bins) unchanged at {before:.3f}" in text
    else:
        word = "raised" if round(after, 3) > round(before, 3) else "lowered"
        assert f"{word} the ECE (15 bins) from {before:.3f} to {after:.3f}" in text
    assert "Kermany training folder" in text and "centre square" in text
    assert F.markdown(found["data coverage"], "Data").startswith("**Data**\n\n* ")


def test_missing_files_say_not_available(isolated_root):
    found = F.key_findings(get_profile("smoke"))
    assert all(group for group in found.values())
    assert "not available" in found["temperature scaling"][0]


def test_smoke_like_results_with_undefined_numbers_render():
    cal = cal_file(scores(None, None, None), scores(None, None, None), t=None)
    text = " ".join(F.temperature_findings(copy.deepcopy(cal)) + F.target_findings(cal) + F.threshold_findings(cal))
    assert "n/a" in text


def test_best_model_is_decided_by_the_printed_numbers():
    from pneumolib.findings import best_model_findings

    def entry(name, auroc):
        return {"display_name": name, "summary": {"at_05": {"auroc": {"mean": auroc}}}}

    binary = {"meta": {"dataset": "D", "seeds": [0, 1]}, "models": {"a": entry("A", 0.9612), "b": entry("B", 0.9704)}}
    s = best_model_findings(binary)[0]
    assert "B has the highest test AUROC, 0.970" in s and "the others: A 0.961" in s
    binary["models"]["a"] = entry("A", 0.97041)  # equal as printed: a shared first place
    assert (
        "A and B share the highest" in best_model_findings(binary)[0]
        or "B and A share the highest" in (best_model_findings(binary)[0])
    )
    assert "not available" in best_model_findings({"models": {}})[0]
