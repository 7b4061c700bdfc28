"""scripts/project_first_run.py scales the reference run's training by measured step throughputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pneumolib.profiles import get_profile
from pneumolib.schema import read_results

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("project_first_run", ROOT / "scripts" / "project_first_run.py")
proj = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(proj)

CPU = get_profile("cpu")
SIZES = [("simple_cnn", 28), ("resnet18", 28), ("densenet121", 28), ("simple_cnn", 64), ("resnet18", 64)]
SIZES.append(("densenet121", 64))
NATIVE = {"cores": 2, "cpu_capability": "AVX512", "avx512_bf16": True, "amx": False}
AVX2 = {"cores": 2, "cpu_capability": "AVX2", "avx512_bf16": False, "amx": False}


def bench(machine: dict, mode: str, rate: float, slower: str | None = None) -> dict:
    rows = [dict(model=m, size=s, mode=mode, step_img_s=rate / (4 if m == slower else 1)) for m, s in SIZES]
    return {"machine": machine, "rows": rows}


@pytest.fixture(autouse=True)
def committed_results(monkeypatch):
    """Project from the committed reference run (results/cpu), not the tests' empty project root."""
    monkeypatch.setenv("PNEUMOLAB_ROOT", str(ROOT))


def test_same_speed_projects_the_measured_time_and_slower_steps_scale_training_only():
    meta = read_results(CPU, "run_metadata")
    same = proj.project(bench(NATIVE, "bf16+channels_last", 100.0), bench(AVX2, "fp32+channels_last", 100.0), CPU)
    assert same["reference_mode"] == "bf16+channels_last" and same["target_mode"] == "fp32+channels_last"
    assert same["projected_total_s"] == pytest.approx(meta["total_wall_s"], rel=0.01)
    half = proj.project(bench(NATIVE, "bf16+channels_last", 100.0), bench(AVX2, "fp32+channels_last", 50.0), CPU)
    train = sum(nb["train_s"] for nb in half["notebooks"].values())
    assert half["projected_total_s"] == pytest.approx(same["projected_total_s"] + train, rel=1e-6)
    # a model 4x slower on the target changes only the notebooks that train it
    dn = proj.project(
        bench(NATIVE, "bf16+channels_last", 100.0), bench(AVX2, "fp32+channels_last", 100.0, slower="densenet121"), CPU
    )
    assert dn["notebooks"]["03_custom_cnn"]["projected_s"] == pytest.approx(
        same["notebooks"]["03_custom_cnn"]["projected_s"]
    )
    assert (
        dn["notebooks"]["04_transfer_learning"]["projected_s"]
        > same["notebooks"]["04_transfer_learning"]["projected_s"]
    )


def test_an_isa_limited_machine_is_not_native_bf16_and_missing_rows_stop_with_a_message():
    assert proj.native_bf16(NATIVE) and not proj.native_bf16(AVX2)
    assert not proj.native_bf16({**NATIVE, "isa_limits": {"ONEDNN_MAX_CPU_ISA": "AVX2"}})
    partial = bench(AVX2, "fp32+channels_last", 50.0)
    partial["rows"] = [r for r in partial["rows"] if r["model"] != "densenet121"]
    with pytest.raises(SystemExit, match="densenet121"):
        proj.project(bench(NATIVE, "bf16+channels_last", 100.0), partial, CPU)
