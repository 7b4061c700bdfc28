"""Committed notebooks are clean (no outputs, no counts, one smoke ``parameters`` cell, no
``sys.path`` hacks, the ``python3`` kernelspec): the checks live in ``scripts/check_notebooks_clean.py``;
fix with ``make strip``. Checked as git would commit them: with the clean filter of ``make setup``
installed, outputs that JupyterLab saved into the working copy never reach a commit, so they do not
fail this test."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_notebooks_clean", ROOT / "scripts" / "check_notebooks_clean.py")
checker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checker)

NOTEBOOKS = checker.notebook_paths(ROOT)


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {ROOT / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean(path):
    problems = checker.check_notebook(path, as_committed=True)
    assert not problems, f"{path.name} is not clean (run `make strip`):\n  " + "\n  ".join(problems)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_clean_filter_is_what_counts(tmp_path):
    """A notebook saved with outputs is clean as committed once a clean filter strips them, and
    not clean (as committed or on disk) without one."""
    ran = nbformat.v4.new_code_cell("x = 1\nx", execution_count=1)
    ran.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)]
    path = _write(tmp_path, [_params(), ran])
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert checker.committed_text(path) is None  # no attribute, no filter: the file itself is checked
    assert any("output" in p for p in checker.check_notebook(path, as_committed=True))

    (tmp_path / ".gitattributes").write_text("*.ipynb filter=strip\n")
    stripper = tmp_path / "strip.py"
    stripper.write_text(
        "import json, sys\n"
        "nb = json.load(sys.stdin)\n"
        "for c in nb['cells']:\n"
        "    c.update(outputs=[], execution_count=None) if c['cell_type'] == 'code' else None\n"
        "json.dump(nb, sys.stdout)\n"
    )
    clean = f'"{sys.executable}" "{stripper}"'
    subprocess.run(["git", "config", "filter.strip.clean", clean], cwd=tmp_path, check=True)
    assert checker.check_notebook(path, as_committed=True) == []
    assert any("output" in p for p in checker.check_notebook(path))  # on disk it still has them

    subprocess.run(["git", "config", "filter.strip.clean", "false"], cwd=tmp_path, check=True)
    assert any("clean filter 'strip' failed" in p for p in checker.check_notebook(path, as_committed=True))


# ---------------------------------------------------------------- the checker itself
def _write(tmp_path, cells, name="nb.ipynb", kernelspec=checker.KERNELSPEC):
    nb = nbformat.v4.new_notebook(cells=cells)
    if kernelspec is not None:
        nb.metadata["kernelspec"] = dict(kernelspec)
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _params(source='profile = "smoke"'):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def test_checker_accepts_a_clean_notebook(tmp_path):
    path = _write(
        tmp_path,
        [
            nbformat.v4.new_markdown_cell("# Title"),
            _params('profile = "smoke"  # smoke | cpu | gpu\nseed = 0'),
            nbformat.v4.new_code_cell("%matplotlib inline\nimport sys\nprint(sys.path)"),
        ],
    )
    assert checker.check_notebook(path) == []
    assert checker.main([str(path)]) == 0


def test_checker_flags_each_problem(tmp_path):
    ran = nbformat.v4.new_code_cell(
        "x = 1\nx",
        execution_count=3,
        outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=3)],
    )
    hack = nbformat.v4.new_code_cell("import sys\nsys.path.insert(0, '..')")
    path = _write(tmp_path, [_params('profile = "cpu"'), _params(), ran, hack])
    text = "\n".join(checker.check_notebook(path))
    assert "cell 2: has 1 output(s)" in text
    assert "cell 2: execution count 3" in text
    assert "cell 3: changes sys.path" in text
    assert "2 cells tagged 'parameters'" in text
    assert checker.main([str(path)]) == 1

    no_params = _write(tmp_path, [nbformat.v4.new_code_cell('profile = "smoke"')], "b.ipynb")
    assert any("0 cells tagged 'parameters'" in p for p in checker.check_notebook(no_params))
    wrong = _write(tmp_path, [_params('profile = "gpu"')], "c.ipynb")
    assert any('does not assign profile = "smoke"' in p for p in checker.check_notebook(wrong))
    for source in (
        "sys.path.append('../')",
        "sys.path = ['..'] + sys.path",
        "sys.path[:0] = ['..']",
        "site.addsitedir('..')",
    ):
        path = _write(tmp_path, [_params(), nbformat.v4.new_code_cell(source)], "d.ipynb")
        assert any("sys.path" in p for p in checker.check_notebook(path)), source


def test_checker_requires_the_kernelspec(tmp_path):
    """Without it plain papermill fails with "No kernel name found" (issue 18)."""
    cells = [_params()]
    missing = _write(tmp_path, cells, "e.ipynb", kernelspec=None)
    assert any("metadata.kernelspec is missing" in p for p in checker.check_notebook(missing))
    other = _write(tmp_path, cells, "f.ipynb", kernelspec={"name": "julia-1.9", "language": "julia"})
    assert any("julia" in p for p in checker.check_notebook(other))
    assert checker.check_notebook(_write(tmp_path, cells, "g.ipynb")) == []
