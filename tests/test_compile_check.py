"""scripts/compile_check.py: what it measures (the cpu profile's own settings) and how it reads the numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pneumolib.profiles import get_profile
from pneumolib.train import config_for

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compile_check", ROOT / "scripts" / "compile_check.py")
compile_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compile_check)


def test_grid_is_every_model_at_both_cpu_input_sizes():
    cpu = get_profile("cpu")
    grid = compile_check.grid()
    assert len(grid) == len(set(grid)) == 6
    assert {(t, s) for t, _, s in grid} == {("binary", cpu.mnist_size), ("three_class", cpu.kermany_size)}
    assert {m for _, m, _ in grid} == {"simple_cnn", "resnet18", "densenet121"}


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_setting_is_what_the_cpu_profile_trains_with(monkeypatch, precision):
    monkeypatch.setenv("PNEUMOLAB_PRECISION", precision)
    for task, model, _ in compile_check.grid():
        chosen = compile_check.setting(task, model)
        config = config_for(get_profile("cpu"), model, num_classes=2 if task == "binary" else 3, task=task)
        assert chosen == dict(bf16=config.bf16, channels_last=config.channels_last)
        assert chosen["bf16"] is (precision == "bf16")
    # DenseNet121 trains channels_last in both cpu tasks (the old check measured it without)
    assert compile_check.setting("three_class", "densenet121")["channels_last"] is True


def test_break_even_is_compile_time_over_time_saved_per_image():
    # 100 img/s eager -> 200 img/s compiled saves 5 ms per image: 10 s of compiling pays off after 2,000 images
    assert compile_check.break_even_images(100.0, 200.0, 10.0) == pytest.approx(2000.0)
    assert compile_check.break_even_images(100.0, 100.0, 10.0) is None
    assert compile_check.break_even_images(100.0, 80.0, 10.0) is None


def test_verdict_applies_the_issues_threshold():
    assert compile_check.verdict(dict(speedup=1.19)).startswith("no: 1.19x is below 1.2x")
    assert compile_check.verdict(dict(speedup=1.2)).startswith("candidate: 1.2x")


def test_render_shows_failures_and_rows_that_never_pay_off():
    row = dict(
        task="binary",
        model="resnet18",
        size=28,
        precision="bf16+channels_last",
        eager_img_s=86.5,
        compiled_img_s=75.9,
        speedup=0.88,
        compile_and_warmup_s=50.2,
        max_abs_logit_diff=0.016,
        cpu_capability="AVX512",
        bf16_native=True,
        break_even_images=None,
        verdict="no: 0.88x is below 1.2x",
    )
    failed = dict(task="three_class", model="densenet121", size=64, error="RuntimeError: out of memory")
    text = compile_check.render([row, failed], steps=20, date="2026-12-04")
    assert "| binary | resnet18 | 28 | bf16+channels_last | 86.5 | 75.9 | 0.88x | 50.2 | never |" in text
    assert "| three_class | densenet121 | 64 | failed: RuntimeError: out of memory |" in text
    assert "Measured 2026-12-04, training step at batch 32, 20 steps" in text
    assert "CPU capability AVX512, native bf16 True" in text
