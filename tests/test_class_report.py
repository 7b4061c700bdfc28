"""scripts/class_report.py records a class first run from the results files only, and refuses a rerun."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from fakes import write_fake_results

from pneumolib.profiles import get_profile
from pneumolib.schema import results_path, update_results

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("class_report", ROOT / "scripts" / "class_report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

CLASS = get_profile("class")


def _first_run(root: Path, trained: bool = True) -> None:
    write_fake_results(CLASS)
    shutil.copytree(ROOT / "results" / "cpu", root / "results" / "cpu")
    machine = {"cpu_count": 2, "torch": "2.14.1", "cpu_capability": "AVX512", "bf16_native": True}
    meta = json.loads(results_path(CLASS, "run_metadata").read_text())
    update_results(CLASS, "run_metadata", machine=machine, notebooks=meta["notebooks"])
    executed = root / "build" / "executed" / "class"
    executed.mkdir(parents=True)
    for nb, tasks in report.TRAINED_TASKS.items():
        said = [f"m (none) seed 0, {t}: no finished run of profile 'class' to load" for t in tasks if trained]
        (executed / f"{nb}_x.ipynb").write_text(json.dumps({"outputs": said or [report.LOADED]}))
    (root / "README.md").write_text("x\n<!-- class:start -->\nold\n<!-- class:end -->\n")


def test_a_first_run_is_recorded_per_cpu_kind(isolated_root):
    _first_run(isolated_root)
    assert report.main() == 0
    records = json.loads((isolated_root / "benchmarks" / "class.json").read_text())
    record = records["AVX512 + native bf16"]
    assert record["first_run_s"] == 9 * 12.5 and record["goal_s"] == 600 and record["goal_met"]
    assert set(record["binary_auroc"]) == {"simple_cnn-scratch", "resnet18-scratch", "densenet121-scratch"}
    assert all(abs(v["diff"]) < 1 for v in record["binary_auroc"].values())
    readme = (isolated_root / "README.md").read_text()
    assert "old" not in readme and "first run of all 9 notebooks" in readme and "difference" in readme
    assert (isolated_root / "benchmarks" / "CLASS.md").read_text().startswith("# The `class` profile")


def test_a_rerun_is_refused(isolated_root):
    _first_run(isolated_root, trained=False)
    with pytest.raises(SystemExit, match="not a first run"):
        report.main()
