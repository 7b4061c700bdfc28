"""The ``class`` profile is the ``cpu`` course cut short: same data and test images, one seed, fewer epochs."""

import dataclasses
from pathlib import Path

import nbformat
import pytest

from pneumolib.models import MODEL_NAMES
from pneumolib.profiles import PROFILES, get_profile
from pneumolib.train import config_for

CPU, CLASS = get_profile("cpu"), get_profile("class")
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_class_uses_the_cpu_data_and_recipe():
    """Same images (so the same test set) and the same loss, augmentation and precision as cpu."""
    for name in ("mnist_size", "mnist_subset", "kermany_size", "kermany_subset", "lr", "loss", "multiclass_loss"):
        assert getattr(CLASS, name) == getattr(CPU, name), name
    assert (CLASS.weights, CLASS.bf16, CLASS.augment) == (CPU.weights, CPU.bf16, CPU.augment)
    assert CLASS.seeds == (0,) and CLASS.seeds[0] in CPU.seeds


@pytest.mark.parametrize("task", ["binary", "three_class", None])  # None: notebook 06's stages
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_class_trains_each_model_the_cpu_way_for_fewer_epochs(model, task):
    ours, theirs = config_for(CLASS, model, task=task), config_for(CPU, model, task=task)
    assert ours.max_epochs < theirs.max_epochs
    same = {f.name for f in dataclasses.fields(ours)} - {"max_epochs"}
    assert {k: getattr(ours, k) for k in same} == {k: getattr(theirs, k) for k in same}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_each_parameters_cell_explains_every_profile(path):
    """A student switching profile reads there what each one is and what this notebook costs on it."""
    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assert [name for name in PROFILES if f'"{name}"' not in cell.source] == []
    assert "python -m pneumolib.runs import" in cell.source and " on smoke" in cell.source
