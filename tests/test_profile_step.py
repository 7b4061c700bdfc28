"""scripts/profile_step.py groups profiler operators by kind of work."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("profile_step", ROOT / "scripts" / "profile_step.py")
profile_step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile_step)


@pytest.mark.parametrize(
    ("op", "group"),
    [
        ("aten::mkldnn_convolution", "convolution"),
        ("aten::convolution_backward", "convolution"),
        ("aten::native_batch_norm_backward", "BatchNorm"),
        ("aten::cat", "concatenation (+ backward slices)"),
        ("aten::slice_backward", "concatenation (+ backward slices)"),
        ("aten::threshold_backward", "activation"),
        ("aten::max_pool2d_with_indices", "pooling"),
        ("aten::_foreach_addcdiv_", "optimizer (Adam)"),
        ("aten::copy_", "copies and casts"),
        ("aten::sum", "other"),
    ],
)
def test_operators_fall_into_their_group(op, group):
    assert profile_step.group_of(op) == group


def test_a_profiled_step_accounts_for_all_its_time():
    row = profile_step.measure("simple_cnn", 28, steps=1)
    assert sum(row["groups"].values()) == pytest.approx(1.0, abs=1e-3)
    assert row["groups"]["convolution"] > 0 and row["step_ms"] > 0
