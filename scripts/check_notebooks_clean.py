#!/usr/bin/env python3
"""Check that committed notebooks are clean: fix problems with ``make strip``.

Every notebook in ``notebooks/`` (or the paths given) must

* be valid nbformat 4,
* carry the kernelspec ``{"name": "python3", "language": "python", ...}`` in its metadata, so
  plain ``papermill nb.ipynb out.ipynb -p profile cpu`` finds its kernel (``make setup``
  registers ``python3``; ``make strip`` keeps it),
* have no outputs and no execution counts (``make strip`` removes them),
* have exactly one cell tagged ``parameters``, a code cell that assigns ``profile = "smoke"``
  (papermill injects the real profile after it; nbval runs the notebook as committed),
* not touch ``sys.path`` (or ``site.addsitedir``): notebooks import the *installed* package
  (``pip install -e .``), never a path relative to where they happen to run,
* hold no cell papermill adds (``injected-parameters``, ``papermill-error-cell-tag``): a notebook
  executed in place by mistake.

Usage::

    python scripts/check_notebooks_clean.py              # all notebooks/*.ipynb
    python scripts/check_notebooks_clean.py path.ipynb   # only these
    python scripts/check_notebooks_clean.py --as-committed   # what `git add` would store

``--as-committed`` checks each notebook as git's clean filter (nbstripout, installed by
``make setup`` through ``.gitattributes``) would commit it, so outputs JupyterLab saved into
the working copy do not count; without an installed filter it checks the file itself.

Exit status 1 (and one line per problem) when a notebook is not clean. Needs only ``nbformat``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

# sys.path.append(...), sys.path.insert(...), sys.path = ..., sys.path += ..., sys.path[0:0] = ...
_SYS_PATH = re.compile(
    r"\bsys\s*\.\s*path\s*(?:\.\s*(?:append|insert|extend|remove|pop|clear)\b|\+?=(?!=)|\[[^\]]*\]\s*=(?!=))"
)
_ADDSITEDIR = re.compile(r"\baddsitedir\s*\(")


def notebook_paths(root: Path = ROOT) -> list[Path]:
    """The committed notebooks: ``notebooks/*.ipynb`` (checkpoints excluded), sorted."""
    return sorted(p for p in (root / "notebooks").glob("*.ipynb") if p.is_file())


def _assigns_smoke_profile(source: str) -> bool:
    """True if ``source`` has a top-level ``profile = "smoke"`` (or ``profile: str = "smoke"``)."""
    # IPython magics/shell lines are not Python; blank them before parsing
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if (
            any(isinstance(t, ast.Name) and t.id == "profile" for t in targets)
            and isinstance(value, ast.Constant)
            and value.value == "smoke"
        ):
            return True
    return False


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError:  # no git
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def committed_text(path: str | Path) -> str | None:
    """What ``git add`` would store for ``path``: the output of the clean filter git applies to it.
    None when none applies (not a git checkout, no ``filter`` attribute, or the filter not installed).
    A filter that fails raises RuntimeError: git would refuse the commit as well."""
    path = Path(path).resolve()
    attr = _git(["check-attr", "filter", "--", str(path)], path.parent)
    name = attr.rsplit(": ", 1)[-1] if attr else "unspecified"
    command = _git(["config", "--get", f"filter.{name}.clean"], path.parent)
    top = _git(["rev-parse", "--show-toplevel"], path.parent)
    if name in ("unspecified", "unset", "set") or not command or not top:
        return None
    with open(path, "rb") as fh:  # git runs the filter through the shell, in the top folder, file on stdin
        done = subprocess.run(command, shell=True, stdin=fh, cwd=top, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git clean filter {name!r} failed on {path}: {done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout.decode("utf-8")


def check_notebook(path: str | Path, as_committed: bool = False) -> list[str]:
    """Problems found in the notebook at ``path`` (empty list: clean); with ``as_committed``, in
    what git's clean filter makes of it (:func:`committed_text`), if one is installed."""
    path = Path(path)
    try:
        text = committed_text(path) if as_committed else None
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT) if text is not None else None
        nb = nb or nbformat.read(path, as_version=nbformat.NO_CONVERT)
    except Exception as err:  # unreadable JSON, not a notebook, a failing filter
        return [f"cannot read notebook: {type(err).__name__}: {err}"]
    if nb.get("nbformat") != 4:
        return [f"nbformat {nb.get('nbformat')}; expected 4"]
    problems: list[str] = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        problems.append(f"invalid nbformat: {str(err).splitlines()[0]}")

    kernelspec = nb.metadata.get("kernelspec") or {}
    if (kernelspec.get("name"), kernelspec.get("language")) != (KERNELSPEC["name"], KERNELSPEC["language"]):
        problems.append(
            f"metadata.kernelspec is {dict(kernelspec) or 'missing'}; expected {KERNELSPEC} "
            "(papermill needs it to find the kernel)"
        )

    params = []
    for i, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags:
            params.append(i)
        for tag in ("injected-parameters", "papermill-error-cell-tag"):
            if tag in tags:
                problems.append(f"cell {i}: papermill {tag!r} cell (notebook was executed in place)")
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i}: has {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i}: execution count {cell['execution_count']}")
        source = cell.get("source", "")
        if _SYS_PATH.search(source) or _ADDSITEDIR.search(source):
            problems.append(f"cell {i}: changes sys.path; import the installed package instead (pip install -e .)")

    if len(params) != 1:
        where = f" (cells {', '.join(map(str, params))})" if params else ""
        problems.append(f"{len(params)} cells tagged 'parameters'{where}; expected exactly one")
    else:
        cell = nb.cells[params[0]]
        if cell.get("cell_type") != "code":
            problems.append(f"cell {params[0]}: the 'parameters' cell is not a code cell")
        elif not _assigns_smoke_profile(cell.get("source", "")):
            problems.append(f"cell {params[0]}: the 'parameters' cell does not assign profile = \"smoke\"")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    as_committed = "--as-committed" in args
    paths = [Path(a) for a in args if a != "--as-committed"] or notebook_paths()
    if not paths:
        print(f"no notebooks found in {ROOT / 'notebooks'}", file=sys.stderr)
        return 1
    bad = 0
    for path in paths:
        problems = check_notebook(path, as_committed)
        bad += bool(problems)
        for problem in problems:
            print(f"{path}: {problem}", file=sys.stderr)
    if bad:
        print(
            f"{bad} of {len(paths)} notebook(s) not clean; run `make strip` and fix the rest by hand.", file=sys.stderr
        )
        return 1
    print(f"{len(paths)} notebook(s) clean.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
