"""scripts/loop_check.py: real epochs of fit against the bare step, and how the table reads it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from pneumolib.data import ImageSet

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("loop_check", ROOT / "scripts" / "loop_check.py")
loop_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loop_check)


def _splits(n_train=96, n_val=32, size=28):
    g = torch.Generator().manual_seed(0)
    out = {}
    for split, n in (("train", n_train), ("val", n_val)):
        x = torch.randint(0, 255, (n, size, size), dtype=torch.uint8, generator=g)
        y = torch.arange(n) % 2
        out[split] = ImageSet(x, y, name=split)
    return out


def test_measure_trains_two_real_epochs_and_compares_it_with_the_bare_step(one_thread):
    row = loop_check.measure("binary", "simple_cnn", _splits(), bare_s=0.05)
    assert (row["task"], row["model"], row["size"], row["train_images"], row["val_images"]) == (
        "binary",
        "simple_cnn",
        28,
        96,
        32,
    )
    assert row["precision"].endswith("+channels_last")  # the cpu profile's binary task trains channels_last
    rates = ("step_img_s_before", "step_img_s_after", "loop_img_s", "epoch_img_s", "first_epoch_img_s", "wall_img_s")
    for key in rates:
        assert row[key] > 0, key
    # validation only adds time: the training batches alone are the fastest view of the epoch
    assert row["loop_img_s"] >= row["epoch_img_s"]
    assert row["loop_vs_step"] == round(row["loop_img_s"] / row["step_img_s"], 3)
    assert row["data_s"] > 0 and 0 < row["data_share"] < 1
    assert abs(row["step_img_s"] - (row["step_img_s_before"] + row["step_img_s_after"]) / 2) <= 0.1


def test_render_flags_rows_below_the_target():
    base = dict(
        task="binary",
        model="simple_cnn",
        size=28,
        precision="bf16+channels_last",
        train_images=4708,
        step_img_s=3000.0,
        step_img_s_before=2990.0,
        step_img_s_after=3010.0,
        loop_img_s=2700.0,
        epoch_img_s=2500.0,
        first_epoch_img_s=2000.0,
        wall_img_s=2400.0,
        data_s=0.11,
        data_share=0.063,
        cpu_capability="AVX512",
        bf16_native=True,
    )
    text = loop_check.render([base | dict(loop_vs_step=0.9), base | dict(model="resnet18", loop_vs_step=0.97)], "now")
    assert (
        "| binary | simple_cnn | 28 | bf16+channels_last | 4,708 | 3000.0 (2990.0 / 3010.0) | 2700.0 | 0.9 (below"
        in text
    )
    assert "| 0.97 | 0.11 (6.3%) |" in text and "0.97 (below" not in text
    assert "CPU capability AVX512, native bf16 True" in text
