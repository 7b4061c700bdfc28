"""Transfer learning (issue 13): per-model weights, the real hub-cache loading path with stand-in weights,
two-phase fine-tuning (phase 1 changes only the head), the gpu profiles, one run per command."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from test_models_train import toy_splits  # noqa: E402

from pneumolib import data as D  # noqa: E402
from pneumolib import loop  # noqa: E402
from pneumolib import models as M  # noqa: E402
from pneumolib.loop import TrainConfig, fit  # noqa: E402
from pneumolib.plots import plot_history  # noqa: E402
from pneumolib.profiles import PROFILES, get_profile, profile_hash  # noqa: E402
from pneumolib.report.context import expected_arms  # noqa: E402
from pneumolib.results import load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _standin_module():
    spec = importlib.util.spec_from_file_location("make_standin_weights", ROOT / "scripts" / "make_standin_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def standin_hub(tmp_path, monkeypatch):
    """A temporary TORCH_HOME holding stand-in weights under torchvision's file names (never committed)."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    paths = _standin_module().write_standin_weights(home)
    return {p.name: p for p in paths}


# --------------------------------------------------------------------------- weights per model
def test_profiles_choose_weights_per_model():
    gpu, cpu = get_profile("gpu"), get_profile("cpu")
    assert gpu.weights_for("simple_cnn") == "none"  # the custom CNN has no pretrained weights
    assert gpu.weights_for("resnet18") == gpu.weights_for("densenet121") == "imagenet"
    assert {cpu.weights_for(m) for m in M.MODEL_NAMES} == {"none"}
    assert expected_arms(gpu, "binary") == (
        "simple_cnn-scratch",
        "resnet18-imagenet",
        "densenet121-imagenet",
        "resnet18-scratch",
    )
    assert expected_arms(cpu, "binary")[-1] == "resnet18-imagenet"  # the comparison arm (skipped offline)


def test_gpu_profiles_are_the_decks_setting_and_share_its_code_path():
    gpu, gs = get_profile("gpu"), get_profile("gpu-smoke")
    assert (gpu.binary_data, gpu.binary_size, gpu.kermany_size) == ("kermany", 224, 224)
    assert (gpu.lr, gpu.batch_size, gpu.max_epochs, gpu.patience, gpu.head_epochs) == (1e-4, 32, 30, 5, 5)
    assert len(gpu.seeds) == 3 and gpu.device == "cuda" and gpu.full_kermany
    for name in (
        "binary_data",
        "kermany_size",
        "weights",
        "bf16",
        "loss",
        "multiclass_loss",
        "augment",
        "protocol_by_task",
    ):
        assert getattr(gs, name) == getattr(gpu, name), name
    assert (gs.seeds, gs.head_epochs, gs.max_epochs, gs.device) == ((0,), 1, 2, "cpu")


def test_new_settings_leave_older_profile_hashes_unchanged():
    committed = json.loads((ROOT / "results" / "cpu" / "binary.json").read_text())["meta"]["profile_hash"]
    assert profile_hash(get_profile("cpu")) == committed
    assert len({profile_hash(p) for p in PROFILES.values()}) == len(PROFILES)


def test_bad_profile_settings_are_refused():
    with pytest.raises(ValueError, match="binary_data"):
        dataclasses.replace(get_profile("cpu"), binary_data="mnist")
    with pytest.raises(ValueError, match="device"):
        dataclasses.replace(get_profile("cpu"), device="tpu")


# --------------------------------------------------------------------------- the hub cache
def test_standin_weights_load_through_torchvisions_weights_api(standin_hub):
    expected = torch.load(standin_hub["resnet18-f37072fd.pth"], weights_only=True)
    model = M.build_model("resnet18", weights="imagenet", image_size=224)
    assert model.weights == "imagenet"
    assert torch.equal(model.backbone.conv1.weight, expected["conv1.weight"])  # loaded from the hub cache
    assert model.backbone.fc.out_features == 1  # the new head
    dense = M.build_model("densenet121", num_outputs=3, weights="imagenet", image_size=224)
    assert dense.backbone.classifier.out_features == 3
    assert M.weights_source("imagenet").startswith("stand-in")  # and never "ImageNet"


def test_truncated_weights_file_names_the_file_and_the_fix(standin_hub):
    path = standin_hub["resnet18-f37072fd.pth"]
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(M.WeightsCorruptError) as err:
        M.build_model("resnet18", weights="imagenet", image_size=224)
    assert str(path) in str(err.value) and "delete it" in str(err.value)


def test_weights_of_another_network_are_refused(standin_hub):
    torch.save({"conv1.weight": torch.zeros(1)}, standin_hub["densenet121-a639ec97.pth"])
    with pytest.raises(M.WeightsCorruptError, match="densenet121"):
        M.build_model("densenet121", weights="imagenet", image_size=224)


def test_partly_pretrained_resnet_is_not_offered(standin_hub):
    with pytest.raises(M.PretrainingNotOfferedError, match="112 px"):
        M.build_model("resnet18", weights="imagenet", image_size=28)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        M.build_model("simple_cnn", weights="imagenet")


# --------------------------------------------------------------------------- two-phase fine-tuning
def _pretrained_like(seed=0):
    torch.manual_seed(seed)
    model = M.build_model("resnet18", image_size=28)  # scratch weights stand in for pretrained ones here
    return model


def _backbone_state(model):
    head = {k for k in model.state_dict() if k.startswith(model.head_name + ".")}
    return {k: v.clone() for k, v in model.state_dict().items() if k not in head}, head


CFG2 = TrainConfig(max_epochs=1, head_epochs=1, patience=5, batch_size=16, lr=1e-2)


def test_phase_1_changes_only_the_head():
    splits = toy_splits(32)
    model = _pretrained_like()
    before, head = _backbone_state(model)
    head_before = {k: model.state_dict()[k].clone() for k in head}
    result = fit(model, splits["train"], splits["val"], CFG2, progress=False)
    after = result.model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert changed == []  # weights and BatchNorm running statistics, bit for bit
    assert any("running_mean" in k for k in before)  # the check covered BatchNorm statistics
    assert any(not torch.equal(head_before[k], after[k]) for k in head)  # the head did learn
    assert list(result.history["phase"]) == ["head"]


def test_phase_2_changes_the_backbone():
    splits = toy_splits(32)
    model = _pretrained_like()
    before, _ = _backbone_state(model)
    cfg = dataclasses.replace(CFG2, max_epochs=2)
    result = fit(model, splits["train"], splits["val"], cfg, progress=False)
    after = result.model.state_dict()
    assert list(result.history["phase"]) == ["head", "full"]
    if result.best_epoch == 2:  # the kept checkpoint is from phase 2
        assert not torch.equal(before["backbone.conv1.weight"], after["backbone.conv1.weight"])
        assert not torch.equal(before["backbone.bn1.running_mean"], after["backbone.bn1.running_mean"])
    assert all(p.requires_grad for p in result.model.parameters())  # unfrozen after phase 1


def test_phase_2_trains_the_backbone_each_step(monkeypatch, tmp_path):
    """Independent of which epoch is kept: the state after the full epoch differs in the backbone."""
    splits = toy_splits(32)
    seen = {}
    real = loop.save_checkpoint

    def spy(path, obj):
        if Path(path).name == "last.pt":
            seen[obj["epoch"]] = {k: v.clone() for k, v in obj["model"].items()}
        return real(path, obj)

    monkeypatch.setattr(loop, "save_checkpoint", spy)
    model = _pretrained_like()
    before, _ = _backbone_state(model)
    fit(model, splits["train"], splits["val"], dataclasses.replace(CFG2, max_epochs=2), tmp_path, progress=False)
    assert torch.equal(seen[0]["backbone.layer1.0.conv1.weight"], before["backbone.layer1.0.conv1.weight"])
    assert not torch.equal(seen[1]["backbone.layer1.0.conv1.weight"], before["backbone.layer1.0.conv1.weight"])


def test_curves_mark_the_phase_boundary():
    history = {
        "a": __import__("pandas").DataFrame(
            dict(
                epoch=[1, 2, 3],
                phase=["head", "head", "full"],
                train_loss=[1.0, 0.8, 0.5],
                val_loss=[1.1, 0.9, 0.6],
                val_auroc=[0.6, 0.7, 0.8],
                lr=[1e-4] * 3,
            )
        )
    }
    fig = plot_history(history)
    xs = [line.get_xdata()[0] for ax in fig.axes for line in ax.lines if len(set(line.get_xdata())) == 1]
    assert 2.5 in xs  # a vertical line between the last head epoch and the first full one
    history["a"]["phase"] = "full"
    fig = plot_history(history)
    assert not [ln for ax in fig.axes for ln in ax.lines if len(set(ln.get_xdata())) == 1 and ln.get_xdata()[0] == 2.5]


def test_a_run_interrupted_in_phase_1_resumes_correctly(isolated_root, monkeypatch):
    splits = toy_splits(32)
    cfg = dataclasses.replace(CFG2, head_epochs=2, max_epochs=3)
    full = fit(_pretrained_like(), splits["train"], splits["val"], cfg, isolated_root / "a", progress=False)

    real, calls = loop.iterate_batches, {"n": 0}

    def crash_in_second_epoch(data, batch_size, shuffle=False, generator=None, **kwargs):
        calls["n"] += shuffle
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(data, batch_size, shuffle, generator, **kwargs)

    run_dir = isolated_root / "b"
    monkeypatch.setattr(loop, "iterate_batches", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(_pretrained_like(), splits["train"], splits["val"], cfg, run_dir, progress=False)
    monkeypatch.setattr(loop, "iterate_batches", real)
    state = load_checkpoint(run_dir / "last.pt")
    assert state["epoch"] == 0 and state["history"][0]["phase"] == "head"  # interrupted inside phase 1
    resumed = fit(_pretrained_like(seed=9), splits["train"], splits["val"], cfg, run_dir, progress=False)
    assert list(resumed.history["phase"]) == ["head", "head", "full"]
    np.testing.assert_allclose(resumed.history["val_loss"], full.history["val_loss"], rtol=1e-6)
    for k, v in full.model.state_dict().items():
        assert torch.allclose(v.float(), resumed.model.state_dict()[k].float(), atol=1e-6), k


# --------------------------------------------------------------------------- bad input
def test_cuda_profile_without_a_gpu_stops_unless_allowed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(loop.ALLOW_CPU_ENV, raising=False)
    with pytest.raises(loop.DeviceUnavailableError, match="PNEUMOLAB_ALLOW_CPU=1"):
        loop.resolve_device("cuda")
    monkeypatch.setenv(loop.ALLOW_CPU_ENV, "1")
    assert loop.resolve_device("cuda") == torch.device("cpu")


def test_the_gpu_profile_needs_the_full_kermany_folder(kermany_root, monkeypatch):
    monkeypatch.delenv(D.ALLOW_PARTIAL_ENV, raising=False)
    with pytest.raises(D.DataNotFoundError, match="full Kermany train folder") as err:
        D.require_full_kermany(get_profile("gpu"), kermany_root)
    assert D.ALLOW_PARTIAL_ENV in str(err.value)
    D.require_full_kermany(get_profile("gpu-smoke"), kermany_root)  # subsets: no such need
    monkeypatch.setenv(D.ALLOW_PARTIAL_ENV, "1")
    D.require_full_kermany(get_profile("gpu"), kermany_root)


def test_binary_kermany_subset_decodes_only_the_chosen_images(kermany_root):
    gs = dataclasses.replace(get_profile("gpu-smoke"), kermany_size=32, kermany_subset=6)
    splits = D.load_binary_splits(gs, kermany_root)
    assert splits["train"].classes == ("normal", "pneumonia")
    full = D.load_kermany(32, kermany_root)
    for split, data in splits.items():  # the same images as subsetting the fully decoded folder
        expected = D.stratified_subset(full[split], 6)
        assert torch.equal(data.images, expected.images) and torch.equal(data.labels, expected.labels)


# --------------------------------------------------------------------------- one run per command
@pytest.mark.skipif(
    not (Path(os.environ.get("PNEUMOLAB_DATA", "/nonexistent")) / "medmnist" / "pneumoniamnist.npz").exists(),
    reason="needs PneumoniaMNIST under $PNEUMOLAB_DATA",
)
def test_two_processes_fill_one_run_cache_at_once(isolated_root):
    env = {**os.environ, "PNEUMOLAB_ROOT": str(isolated_root), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pneumolib.train", "--task", "binary", "--profile", "smoke", "--seed", "0"]
    procs = [
        subprocess.Popen([*cmd, "--model", model], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for model in ("simple_cnn", "simple_cnn", "resnet18")  # two on the same run: one trains, one waits
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert sum("trained" in o for o in outs[:2]) == 1 and sum("loaded" in o for o in outs[:2]) == 1, outs
    runs = isolated_root / "build" / "runs" / "smoke" / "binary"
    for name in ("simple_cnn-none-seed0", "resnet18-none-seed0"):
        info = json.loads((runs / name / "done.json").read_text())
        assert info["weights_source"] == "random init" and np.isfinite(info["latency_ms_b1"])
    bad = subprocess.run([*cmd, "--model", "resnet18", "--seed", "7"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "not seeds of profile 'smoke'" in bad.stderr


# --------------------------------------------------------------------------- the GPU check script
def _gpu_check(args, env):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), *args], env=env, capture_output=True, text=True
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_check_without_cuda_says_so(isolated_root, kermany_root, tmp_path):
    env = {**os.environ, "PNEUMOLAB_ROOT": str(isolated_root), "PNEUMOLAB_DATA": str(kermany_root)}
    env.pop("PNEUMOLAB_ALLOW_CPU", None)
    done = _gpu_check(["--out", str(tmp_path / "GPU.md")], env)
    assert done.returncode == 2 and "CUDA GPU" in done.stderr and not (tmp_path / "GPU.md").exists()


def test_gpu_check_with_stand_in_weights_reports_speed_only(isolated_root, kermany_root, tmp_path):
    env = {**os.environ, "PNEUMOLAB_ROOT": str(isolated_root), "PNEUMOLAB_DATA": str(kermany_root)}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = tmp_path / "GPU.md"
    args = ["--allow-cpu", "--stand-in-weights", "--subset", "6", "--models", "simple_cnn", "resnet18", "--out"]
    done = _gpu_check([*args, str(out)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text()
    assert "Stand-in weights" in text and "Not a GPU measurement" in text and "AUROC" not in text
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["model"] for r in report["models"]] == ["simple_cnn", "resnet18"]
    assert report["models"][1]["weights_source"].startswith("stand-in") and report["models"][1]["auroc"] is None
    assert report["models"][1]["head_epochs"] == 1 and report["models"][0]["head_epochs"] == 0
    assert report["projection"]["30_epochs_h"] > report["projection"]["15_epochs_h"] > 0


# --------------------------------------------------------------------------- precision per machine
def test_bf16_only_where_the_cpu_does_it_natively(monkeypatch):
    from pneumolib.train import config_for

    monkeypatch.delenv(loop.PRECISION_ENV, raising=False)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)  # an AVX2-only laptop
    assert not loop.use_bf16(True) and not config_for(get_profile("cpu"), "resnet18", task="binary").bf16
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)  # AVX-512 BF16 / AMX
    assert loop.use_bf16(True) and config_for(get_profile("cpu"), "resnet18", task="binary").bf16
    assert not loop.use_bf16(False)  # a profile that asks for fp32 gets fp32
    monkeypatch.setenv(loop.PRECISION_ENV, "fp32")
    assert not loop.use_bf16(True)
    monkeypatch.setenv(loop.PRECISION_ENV, "fp16")
    with pytest.raises(ValueError, match="PNEUMOLAB_PRECISION"):
        loop.use_bf16(True)


def test_native_bf16_is_read_from_the_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else None
    if flags is None:
        pytest.skip("no /proc/cpuinfo: decided by measurement")
    loop.cpu_has_native_bf16.cache_clear()
    assert loop.cpu_has_native_bf16() == any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))
    assert loop.precision_info()["bf16_native"] == loop.cpu_has_native_bf16()


def test_a_run_trained_in_bf16_is_loaded_on_an_fp32_machine(isolated_root, monkeypatch):
    """Shared runs (pneumolib.runs) must not be retrained because the importing CPU lacks native bf16."""
    from pneumolib.train import config_for, train_or_load

    monkeypatch.delenv(loop.PRECISION_ENV, raising=False)
    splits = toy_splits(32)
    prof = dataclasses.replace(get_profile("smoke"), bf16=True, max_epochs=1)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    first = train_or_load("binary", "simple_cnn", splits, prof, 0, progress=False)
    assert first.info["config"]["bf16"] and not first.loaded
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)  # the student's AVX2 laptop
    assert not config_for(prof, "simple_cnn", task="binary").bf16
    again = train_or_load("binary", "simple_cnn", splits, prof, 0, progress=False)
    assert again.loaded and again.info["config"]["bf16"]  # loaded, and its marker says how it was trained
    other = dataclasses.replace(prof, lr=0.5)  # another recipe is retrained
    assert not train_or_load("binary", "simple_cnn", splits, other, 0, progress=False).loaded
    assert not loop.same_recipe({**first.info["config"], "unknown_field": 1}, config_for(prof, "simple_cnn"))


def test_a_finished_gpu_run_loads_on_a_machine_without_cuda(isolated_root, monkeypatch):
    """Only training needs the profile's device: runs trained on a GPU (shared with pneumolib.runs) load anywhere."""
    from pneumolib.train import train_or_load

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(loop.ALLOW_CPU_ENV, raising=False)
    splits = toy_splits(32)
    cuda_prof = dataclasses.replace(get_profile("smoke"), device="cuda")
    with pytest.raises(loop.DeviceUnavailableError):
        train_or_load("binary", "simple_cnn", splits, cuda_prof, 0, progress=False)
    monkeypatch.setenv(loop.ALLOW_CPU_ENV, "1")  # stands in for the GPU machine that trained it
    train_or_load("binary", "simple_cnn", splits, cuda_prof, 0, progress=False)
    monkeypatch.delenv(loop.ALLOW_CPU_ENV)
    assert train_or_load("binary", "simple_cnn", splits, cuda_prof, 0, progress=False).loaded


@pytest.mark.parametrize(
    "env, limited",
    [
        ({}, False),
        ({"ATEN_CPU_CAPABILITY": "avx2"}, True),
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, True),
        ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, True),  # AVX-512 without its bf16 extension
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, False),
        ({"ONEDNN_MAX_CPU_ISA": "ALL", "ATEN_CPU_CAPABILITY": "avx512"}, False),
    ],
)
def test_a_process_limited_to_an_older_instruction_set_trains_in_fp32(monkeypatch, env, limited):
    from pneumolib.run import machine_kind

    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", loop.PRECISION_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert loop.isa_limited() is limited
    loop.cpu_has_native_bf16.cache_clear()
    try:
        if limited:  # whatever the CPU flags say, and the record says so
            assert not loop.cpu_has_native_bf16() and not loop.use_bf16(True)
            assert loop.precision_info()["isa_limits"] == env
            assert "emulated" in machine_kind({**loop.precision_info(), "amx": False})
        else:
            assert "isa_limits" not in loop.precision_info()
    finally:
        loop.cpu_has_native_bf16.cache_clear()
