"""Notebook parameters under plain papermill: an unknown ``-p NAME`` is an error, not a warning.

papermill inserts its cell (tagged ``injected-parameters``, first line ``# Parameters``) right
after the notebook's ``parameters`` cell. For a name that cell does not define it only logs
"Passed unknown parameter", so ``papermill nb.ipynb out.ipynb -p profil cpu`` would run the default
profile and exit 0. ``import pneumolib`` (the first code cell after the parameters in every
notebook) calls :func:`check_injected_parameters`, which makes that run fail in its first cell.
``python -m pneumolib.run`` checks its parameters before starting a kernel (``run.check_parameters``).
"""

from __future__ import annotations

import ast
import sys

PAPERMILL_COMMENT = "# Parameters"  # first line of the cell papermill injects (tagged injected-parameters)


def _assigned_names(source: str) -> set[str]:
    """Names a cell assigns at top level (IPython magic and shell lines ignored)."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {
        t.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }


def _history() -> list[str]:
    """The cells this kernel has executed so far (IPython's ``In``); empty outside a kernel."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return list(shell.user_ns.get("In", [])) if shell is not None else []


def run_by_papermill(history: list[str] | None = None) -> bool:
    """True when papermill runs this notebook (it injected a ``# Parameters`` cell, as ``python -m pneumolib.run``
    always makes it do): a batch run with nobody to move a widget. Interactive widgets are then better left out:
    nbclient can wait forever on a cell that displays one (jupyter/nbclient#312), which stalls the whole run."""
    return any(cell.startswith(PAPERMILL_COMMENT + "\n") for cell in (_history() if history is None else history))


def check_injected_parameters(history: list[str] | None = None) -> None:
    """Raise ValueError if papermill injected a name that the notebook's parameters cell does not assign.

    Reads the cells executed so far (IPython's ``In``, or ``history``): each papermill cell is
    compared with the cell run just before it, the ``parameters`` cell. Does nothing outside a
    kernel or without a papermill cell (nbval, Jupyter).
    """
    if history is None:
        history = _history()
    for before, cell in zip(history, history[1:]):
        if cell.startswith(PAPERMILL_COMMENT + "\n"):
            unknown = sorted(_assigned_names(cell) - _assigned_names(before))
            if unknown:
                raise ValueError(
                    f"unknown notebook parameter(s) {', '.join(map(repr, unknown))}: this notebook's "
                    f"parameters cell defines {', '.join(sorted(_assigned_names(before))) or 'nothing'}. "
                    "Check the spelling of papermill's -p option (e.g. -p profile cpu)."
                )
