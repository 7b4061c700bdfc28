"""Checks on what the notebooks really wrote: run after `python -m pneumolib.run --profile smoke`.

Not collected by `pytest tests` (the file name does not start with ``test_``): `make test` runs it
explicitly, once the runner has executed every notebook, so each notebook runs once per
`make test`. Every file is read through the schema, so a notebook that writes something the
report cannot read fails here. The same pattern as computervision-recipes' smoke tests on the
notebooks' recorded outputs (scrapbook).

    pytest tests/smoke/check_outputs.py                               # PNEUMOLAB_PROFILE=smoke by default
    PNEUMOLAB_PROFILE=gpu-smoke pytest tests/smoke/check_outputs.py   # after a gpu-smoke run
"""

import json
import os

import nbformat
import pandas as pd
import pytest

from pneumolib import schema
from pneumolib.data import data_root, kermany_available
from pneumolib.models import MODEL_NAMES
from pneumolib.profiles import get_profile, profile_hash
from pneumolib.report.context import expected_arms
from pneumolib.results import build_dir, project_root

P = get_profile(os.environ.get("PNEUMOLAB_PROFILE", "smoke"))
KERMANY = kermany_available()
FILES = [name for name in schema.FILES if KERMANY or name not in ("three_class", "hierarchical")]
RATES = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "auroc",
    "average_precision",
    "macro_f1",
    "macro_auroc",
)


@pytest.fixture(autouse=True)
def real_project_root(monkeypatch):
    """The checks read the run's real outputs, not the unit tests' isolated temporary root."""
    monkeypatch.delenv("PNEUMOLAB_ROOT", raising=False)


@pytest.mark.parametrize("name", FILES)
def test_every_results_file_validates_and_comes_from_this_profile(name):
    data = schema.read_results(P, name)
    meta = data if name == "run_metadata" else data.get("meta", {})
    if meta:
        assert meta["profile"] == P.name and meta["profile_hash"] == profile_hash(P)


def test_every_notebook_ran():
    notebooks = schema.read_results(P, "run_metadata")["notebooks"]
    assert len(notebooks) == 9
    assert {k: v["status"] for k, v in notebooks.items()} == {k: "ok" for k in notebooks}


def _rates(tree, path=""):
    """Every rate-like metric (name in RATES; a number or the mean of a mean ± std) anywhere in a results tree."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k in RATES and isinstance(v, dict) and isinstance(v.get("mean"), (int, float)):
                yield f"{path}.{k}.mean", v["mean"]
            elif k in RATES and isinstance(v, (int, float)):
                yield f"{path}.{k}", v
            else:
                yield from _rates(v, f"{path}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _rates(v, f"{path}[{i}]")


@pytest.mark.parametrize("name", [n for n in FILES if n not in ("data", "run_metadata", "gradcam")])
def test_metrics_are_rates(name):
    rates = dict(_rates(schema.read_results(P, name)))
    assert rates, f"no metric found in {name}.json"
    assert {k: v for k, v in rates.items() if not 0 <= v <= 1} == {}


def test_binary_models_all_seeds_and_confusions_add_up():
    binary = schema.read_results(P, "binary")
    n_test = binary["meta"]["n"]["test"]
    *main_arms, comparison = expected_arms(P, "binary")  # the profile's weights per model, then 04's other ResNet18
    assert set(main_arms) <= set(binary["models"])
    assert comparison in binary["models"] or comparison in binary.get("skipped", {})
    for key, entry in binary["models"].items():
        assert [r["seed"] for r in entry["runs"]] == list(P.seeds), key
        for run in entry["runs"]:
            for at in ("at_05", "at_val_threshold"):
                m = run[at]
                assert m["tp"] + m["tn"] + m["fp"] + m["fn"] == m["n"] == n_test, (key, at)


@pytest.mark.skipif(not KERMANY, reason="no Kermany folder: notebooks 05-06 were skipped")
def test_three_class_models_and_confusions_add_up():
    three = schema.read_results(P, "three_class", require=("model_selection", "ensemble", "shift"))
    n_test = three["meta"]["n"]["test"]
    assert set(expected_arms(P, "three_class")) <= set(three["models"])
    for key, entry in three["models"].items():
        for run in entry["runs"]:
            assert sum(map(sum, run["test"]["confusion"])) == n_test, key
    assert sum(map(sum, three["ensemble"]["test"]["confusion"])) == n_test
    assert three["model_selection"]["best"] in MODEL_NAMES


def test_operating_points_count_every_test_image():
    cal = schema.read_results(P, "calibration")
    counts = cal["operating_points"]["test_counts"]
    for name, point in cal["operating_points"]["thresholds"].items():
        t = point["test"]
        assert t["tp"] + t["fn"] == counts["pneumonia"] and t["tn"] + t["fp"] == counts["normal"], name


def test_saved_probabilities_lie_in_0_1_and_cover_val_and_test():
    files = sorted(build_dir("runs", P.name).glob("*/*/predictions.csv"))
    assert files, f"no finished runs under {build_dir('runs', P.name)}"
    for path in files:
        preds = pd.read_csv(path)
        probs = preds[[c for c in preds.columns if c.startswith("prob")]]
        assert set(preds["split"]) == {"val", "test"}, path
        assert probs.notna().all().all() and ((probs >= 0) & (probs <= 1)).all().all(), path
        if probs.shape[1] > 1:  # softmax rows sum to 1
            assert (probs.sum(axis=1) - 1).abs().max() < 1e-4, path


def test_no_cell_shows_a_local_path():
    """Executed notebooks (what HTML exports and shared copies contain) never show where the project
    or the data live on this machine: no absolute path, no ``PosixPath(...)`` repr."""
    executed = sorted(build_dir("executed", P.name).glob("*.ipynb"))
    assert executed, f"no executed notebooks under {build_dir('executed', P.name)}"
    local = {str(project_root()), str(data_root(must_exist=False)), "PosixPath(", "WindowsPath("}
    found = []
    for path in executed:
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            text = json.dumps(cell.get("outputs", []))
            found += [f"{path.name} cell {i}: {s}" for s in local if s in text]
    assert found == []
