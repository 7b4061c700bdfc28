"""scripts/targets.py reads issue 17's targets from the results files and keeps a first run's time over reruns."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from fakes import write_fake_results

from pneumolib.profiles import get_profile
from pneumolib.schema import read_results, update_results

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("targets", ROOT / "scripts" / "targets.py")
targets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(targets)

CPU = get_profile("cpu")
MACHINE = {"cpu_count": 2, "torch": "2.14.1", "cpu_capability": "AVX512", "bf16_native": True, "amx": False}


def _run(loaded: int) -> None:
    """Fake cpu results whose run_metadata says notebooks 03-05 trained (loaded=0) or loaded their runs."""
    meta = read_results(CPU, "run_metadata")
    notebooks = {
        k: {**v, "runs_trained": 0 if loaded else 3, "runs_loaded": loaded} for k, v in meta["notebooks"].items()
    }
    update_results(CPU, "run_metadata", machine=MACHINE, notebooks=notebooks)


def _record(root: Path) -> dict:
    return json.loads((root / "benchmarks" / "targets.json").read_text())


def test_values_come_from_the_results_and_decide_met(isolated_root):
    write_fake_results(CPU)
    (isolated_root / "README.md").write_text("x\n<!-- targets:start -->\nSTALE\n<!-- targets:end -->\n")
    _run(loaded=0)
    assert targets.main() == 0
    rows = {r["key"]: r for r in _record(isolated_root)["quality"]["rows"]}
    three = read_results(CPU, "three_class")["ensemble"]["test"]
    assert rows["three_class_ensemble_macro_f1"]["value"] == pytest.approx(three["macro_f1"])
    assert rows["three_class_ensemble_macro_f1"]["met"] == (three["macro_f1"] >= 0.80)
    binary = read_results(CPU, "binary")["models"]
    best = max(e["summary"]["at_05"]["auroc"]["mean"] for e in binary.values())
    assert rows["binary_best_mean_auroc"]["value"] == pytest.approx(best)
    text = (isolated_root / "benchmarks" / "TARGETS.md").read_text()
    assert "| 1.9 min | yes" in text  # 9 notebooks x 12.5 s, under the 35-minute goal
    assert "AVX2-only cores | <= 90 min | not measured" in text
    readme = (isolated_root / "README.md").read_text()
    assert "STALE" not in readme and "| 1.9 min | yes" in readme and "# Targets" not in readme


def test_a_rerun_keeps_the_first_runs_time_and_a_rerun_alone_records_none(isolated_root):
    write_fake_results(CPU)
    _run(loaded=3)  # a rerun only: no time
    targets.main()
    assert _record(isolated_root)["first_runs"] == {}
    _run(loaded=0)
    targets.main()
    _run(loaded=3)
    targets.main()  # the rerun keeps the first run's record
    (kind,) = _record(isolated_root)["first_runs"]
    assert kind == "AVX512 + native bf16, no AMX"


def test_results_of_other_settings_are_refused(isolated_root):
    write_fake_results(CPU)
    update_results(CPU, "run_metadata", profile_hash="000000000000")
    with pytest.raises(SystemExit, match="other cpu settings"):
        targets.main()


def test_a_projection_from_this_reference_run_fills_the_unmeasured_row(isolated_root):
    write_fake_results(CPU)
    _run(loaded=0)
    commit = read_results(CPU, "run_metadata")["git"]["commit"]
    folder = isolated_root / "benchmarks" / "avx2-emulated"
    folder.mkdir(parents=True)
    machine = {"cores": 2, "cpu_capability": "AVX2", "isa_limits": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    record = {"reference_commit": commit, "target_mode": "fp32+channels_last", "projected_total_s": 7200.0}
    (folder / "projection.json").write_text(json.dumps({**record, "target_machine": machine}))
    (isolated_root / "benchmarks" / "old").mkdir()  # projected from another reference run: ignored
    (isolated_root / "benchmarks" / "old" / "projection.json").write_text(
        json.dumps({**record, "reference_commit": "0" * 40, "projected_total_s": 60.0, "target_machine": machine})
    )
    targets.main()
    text = (isolated_root / "benchmarks" / "TARGETS.md").read_text()
    assert "AVX2-only cores | <= 90 min | not measured; **projected** 120 min | no (projected over by 30 min)" in text
    assert "emulated: ONEDNN_MAX_CPU_ISA=AVX2" in text and "projected** 1 min" not in text
