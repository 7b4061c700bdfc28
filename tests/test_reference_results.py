"""The committed reference run (profile ``cpu``) must match the committed code and be complete.

``results/cpu/`` and ``report/report.pdf`` are committed so a reader sees real results without
running anything. These tests fail when a profile definition changes without a rerun (the stored
profile hash no longer matches), when a notebook of the run failed, or when a results file is
missing or records an error.
"""

from pathlib import Path

import pytest

from pneumolib import schema
from pneumolib.profiles import get_profile, profile_hash

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "cpu"
FILES = ["data", "binary", "three_class", "hierarchical", "calibration", "gradcam"]


CPU = get_profile("cpu")


def load(name):
    """The committed file, read through the schema (so it must validate)."""
    path = RESULTS / f"{name}.json"
    assert path.exists(), f"{path} missing: rerun `python -m pneumolib.run --profile cpu` and commit results/cpu"
    return schema.validate(name, schema.read_json(path), path)


def test_run_metadata_complete_and_current():
    meta = load("run_metadata")
    assert meta["profile"] == "cpu"
    assert meta["profile_hash"] == profile_hash(CPU), "profiles.py changed since the reference run: rerun it"
    notebooks = meta["notebooks"]
    assert len(notebooks) == len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    assert all(nb["status"] == "ok" for nb in notebooks.values()), {k: v["status"] for k, v in notebooks.items()}


@pytest.mark.parametrize("name", FILES[1:])
def test_results_come_from_the_committed_profile(name):
    data = load(name)
    assert data["meta"]["profile"] == "cpu"
    assert data["meta"]["profile_hash"] == profile_hash(CPU)
    assert not list(_errors(data)), list(_errors(data))


def _errors(obj, path=""):
    """Places in a results tree that record a failure: an "error"/"exception" key or a traceback."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.lower() in ("error", "exception", "traceback"):
                yield f"{path}/{k}"
            yield from _errors(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _errors(v, f"{path}[{i}]")
    elif isinstance(obj, str) and "Traceback (most recent call last)" in obj:
        yield path


def test_binary_results_have_three_seeds_and_full_test_set():
    binary = load("binary")
    assert binary["meta"]["n"]["test"] == 624
    for entry in binary["models"].values():
        assert len(entry["runs"]) == 3 and entry["weights"] in ("scratch", "imagenet")


def test_reference_report_exists():
    pdf = REPO / "report" / "report.pdf"
    assert pdf.exists() and pdf.read_bytes()[:4] == b"%PDF"
