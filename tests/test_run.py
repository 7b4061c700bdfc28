"""pneumolib.run: notebook discovery, --only/--from, failure report, skips and run metadata.

Everything happens in a temporary project root (``PNEUMOLAB_ROOT``) holding tiny notebooks, so
the real repository's ``results/`` and ``build/`` are never touched. Three kernel starts in all.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from pneumolib import run
from pneumolib.results import ROOT_ENV
from pneumolib.train import RUN_LOG_ENV, log_run, read_run_log


def _notebook(path: Path, *cells: str) -> None:
    """A notebook whose first cell is the tagged ``parameters`` cell, then ``cells``."""
    params = nbformat.v4.new_code_cell('profile = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, *(nbformat.v4.new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path, monkeypatch, isolated_root):
    root = isolated_root  # conftest: tmp project root with pneumolib/ and notebooks/
    nbdir = root / "notebooks"
    # writes the injected profile into the working directory: checks parameters and cwd
    _notebook(nbdir / "01_ok.ipynb", "x = 1", "open('profile_seen.txt', 'w').write(profile)")
    _notebook(nbdir / "02_fails.ipynb", "y = 2", "raise ValueError('boom from the test notebook')")
    _notebook(nbdir / "05_three_class.ipynb", "z = 3")
    (nbdir / "README.md").write_text("not a notebook")
    (nbdir / "scratch.ipynb").write_text("{}")  # not numbered: ignored
    empty_data = tmp_path / "data"
    empty_data.mkdir()
    monkeypatch.setenv(ROOT_ENV, str(root))
    monkeypatch.setenv("PNEUMOLAB_DATA", str(empty_data))
    return root


def _metadata(root: Path, profile: str) -> dict:
    return json.loads((root / "results" / profile / "run_metadata.json").read_text())


def test_discovery_and_selection(project):
    found = run.discover_notebooks()
    assert [nb.name for nb in found] == ["01_ok", "02_fails", "05_three_class"]
    assert [nb.needs_kermany for nb in found] == [False, False, True]
    pick = lambda **kw: [nb.number for nb in run.select_notebooks(found, **kw)]  # noqa: E731
    assert pick() == ["01", "02", "05"]
    assert pick(only=["05", "01"]) == ["01", "05"]  # run order stays the notebooks' order
    assert pick(only=["1"]) == ["01"]
    assert pick(start="02") == ["02", "05"]
    assert pick(only=["01", "05"], start="02") == ["05"]
    with pytest.raises(ValueError, match="07"):
        run.select_notebooks(found, only=["07"])


def test_list_and_bad_selection(project, capsys):
    assert run.main(["--list", "--only", "02"]) == 0
    out = capsys.readouterr().out
    assert "* 02_fails.ipynb" in out and "  01_ok.ipynb" in out and "needs Kermany" in out
    assert not (project / "results").exists()  # --list runs nothing and records nothing
    assert run.main(["--only", "09"]) == 2
    assert "09" in capsys.readouterr().err


def test_run_skip_ok_failure_and_metadata(project, capsys):
    # 1. Kermany notebook skipped with a reason (PNEUMOLAB_DATA is an empty folder); no kernel.
    assert run.main(["--profile", "cpu", "--only", "05"]) == 0
    out = capsys.readouterr().out
    assert "skipped 05_three_class.ipynb" in out and "Kermany" in out
    meta = _metadata(project, "cpu")
    assert meta["notebooks"]["05_three_class"]["status"] == "skipped"
    assert "Kermany" in meta["notebooks"]["05_three_class"]["reason"]

    # 2. A notebook that succeeds; the earlier entry is kept (merge, not overwrite).
    assert run.main(["--profile", "cpu", "--only", "01"]) == 0
    assert (project / "notebooks" / "profile_seen.txt").read_text() == "cpu"  # injected, cwd=notebooks/
    assert (project / "build" / "executed" / "cpu" / "01_ok.ipynb").exists()
    meta = _metadata(project, "cpu")
    assert meta["notebooks"]["01_ok"]["status"] == "ok"
    assert meta["notebooks"]["01_ok"]["wall_s"] > 0
    assert meta["notebooks"]["05_three_class"]["status"] == "skipped"
    assert meta["profile"] == "cpu" and meta["profile_hash"] == run.profile_hash(run.get_profile("cpu"))
    assert meta["machine"]["cpu_count"] >= 1 and meta["machine"]["memory_gib"] > 0
    assert {"commit", "dirty"} <= set(meta["git"]) and "date" in meta and "total_wall_s" in meta
    capsys.readouterr()

    # 3. Whole run: 01 ok, 02 fails -> stop, non-zero, message names the notebook, cell and error.
    code = run.main(["--profile", "cpu"])
    err = capsys.readouterr().err
    assert code != 0
    assert "FAILED: 02_fails.ipynb" in err
    assert "cell 2 of 02_fails.ipynb" in err  # index in the committed notebook
    assert "raise ValueError('boom from the test notebook')" in err
    assert "ValueError: boom from the test notebook" in err
    meta = _metadata(project, "cpu")
    assert meta["notebooks"]["01_ok"]["status"] == "ok"
    assert meta["notebooks"]["02_fails"]["status"] == "failed"
    assert "ValueError" in meta["notebooks"]["02_fails"]["reason"]
    assert meta["notebooks"]["05_three_class"]["status"] == "skipped"  # from step 1: not run after the failure
    assert not (project / "results" / "smoke").exists()


def test_run_log_tells_trained_from_loaded(tmp_path, monkeypatch):
    """train_seeds logs each run for the runner; the summary separates first-run training from loads."""
    log = tmp_path / "nb.runs.jsonl"
    assert read_run_log(log) == {"runs_trained": 0, "runs_loaded": 0, "train_s_trained": 0.0, "train_s_loaded": 0.0}
    monkeypatch.setenv(RUN_LOG_ENV, str(log))
    for loaded, secs in ((False, 100.0), (True, 700.0), (True, 77.0)):
        log_run(SimpleNamespace(label="m seed 0", loaded=loaded, info={"train_time_s": secs}))
    assert read_run_log(log) == {"runs_trained": 1, "runs_loaded": 2, "train_s_trained": 100.0, "train_s_loaded": 777.0}
