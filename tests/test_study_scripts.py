"""scripts/budget_study.py and scripts/resolution_study.py: their decision rules, on made-up rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pneumolib.profiles import get_profile
from pneumolib.train import config_for

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


budget = _script("budget_study")
resolution = _script("resolution_study")
CPU = get_profile("cpu")


def _budget_row(epochs, vals, profile_budget=False):
    runs = [dict(seed=i, val=v, train_s=50.0 * epochs, epochs_run=epochs) for i, v in enumerate(vals)]
    sd = float(np.std(vals, ddof=1))
    return dict(
        task="binary",
        model="densenet121",
        epochs=epochs,
        profile_budget=profile_budget,
        seeds=[0, 1, 2],
        runs=runs,
        val=sum(vals) / len(vals),
        val_sd=sd,
    )


def test_a_longer_budget_counts_only_if_validation_rises_beyond_the_seed_spread():
    base = _budget_row(5, [0.990, 0.991, 0.992], profile_budget=True)
    assert budget.verdict(base, _budget_row(10, [0.9905, 0.9915, 0.9925])).startswith("converged")
    assert budget.verdict(base, _budget_row(10, [0.995, 0.996, 0.997])).startswith("not converged")
    # course minutes come from the profile budget's seconds per epoch, for every seed
    assert budget.course_minutes(_budget_row(10, [0.99] * 3), [base]) == pytest.approx(50.0 * 10 * 3 / 60)


def test_a_budget_changes_one_model_of_one_task_and_the_profiles_own_budget_is_the_cpu_profile():
    epochs = config_for(CPU, "densenet121", num_classes=2, task="binary").max_epochs
    assert budget.profile_with_budget("binary", "densenet121", epochs) is CPU
    longer = budget.profile_with_budget("binary", "densenet121", 2 * epochs)
    assert longer.name == f"budget-densenet121-{2 * epochs}"
    assert config_for(longer, "densenet121", num_classes=2, task="binary").max_epochs == 2 * epochs
    for model, task, classes in (("resnet18", "binary", 2), ("densenet121", "three_class", 3)):
        assert config_for(longer, model, num_classes=classes, task=task) == config_for(
            CPU, model, num_classes=classes, task=task
        )
    assert CPU.protocol_by_task["binary"]["epochs_by_model"]["densenet121"] == epochs  # the cpu profile is untouched


def _res_row(model, size, val, seconds):
    return dict(model=model, size=size, val_macro_f1=val, test_macro_f1=val, train_s=seconds, seeds=[0], runs=[])


def test_resolution_rule_picks_the_best_validation_size_that_fits_else_the_cheapest(monkeypatch):
    monkeypatch.setattr(resolution, "reference_kermany_seconds", lambda: {"total_s": 1800.0, "train_s": {"m": 600.0}})
    rows = [_res_row("m", 64, 0.70, 100.0), _res_row("m", 96, 0.75, 150.0), _res_row("m", 128, 0.80, 400.0)]
    choice = resolution.choose(rows)
    # 96 px: 1800 + 600 * 0.5 = 2100 s = 35 min (fits); 128 px: 1800 + 600 * 3 = 3600 s (does not)
    assert choice["per_size"][96]["projected_run_min"] == pytest.approx(35.0)
    assert choice["chosen"] == 96 and choice["why"].startswith("best")
    monkeypatch.setattr(resolution, "reference_kermany_seconds", lambda: {"total_s": 6000.0, "train_s": {"m": 600.0}})
    choice = resolution.choose(rows)
    assert choice["chosen"] == 64 and choice["why"].startswith("no size")
    # a model of the course the study did not measure scales like the mean of those it did, and is named
    monkeypatch.setattr(
        resolution, "reference_kermany_seconds", lambda: {"total_s": 1800.0, "train_s": {"m": 600.0, "other": 60.0}}
    )
    per = resolution.choose(rows)["per_size"][96]
    assert per["assumed"] == ["other"] and per["projected_run_min"] == pytest.approx((1800 + 300 + 30) / 60)


def test_framing_check_script_writes_the_comparison_and_refuses_two_records_of_one_profile(tmp_path):
    check_script = _script("framing_check")

    def record(profile_hash, val):
        row = {"plain": {"val": val, "test": 0.7}, "tta": {"val": val - 0.01, "test": 0.71}, "keep_tta": False}
        return {"profile_hash": profile_hash, "tasks": {"three_class": {"metric": "macro-F1", "rows": {"m": row}}}}

    (tmp_path / "a.json").write_text(json.dumps(record("aaa", 0.80)))
    (tmp_path / "b.json").write_text(json.dumps(record("bbb", 0.75)))
    args = ["--before", str(tmp_path / "a.json"), "--after", str(tmp_path / "b.json"), "--framings", "crop", "crop80"]
    assert check_script.main([*args, "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "CHECK.md").read_text()
    assert "| m | 0.800 | 0.750 | crop | 0.700 | 0.700 |" in text and "rejects it for m" in text
    assert json.loads((tmp_path / "out" / "tta-crop80.json").read_text())["profile_hash"] == "bbb"
    (tmp_path / "b.json").write_text(json.dumps(record("aaa", 0.75)))
    with pytest.raises(SystemExit, match="same profile"):
        check_script.main([*args, "--out", str(tmp_path / "out2")])
