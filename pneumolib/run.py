"""Execute the numbered notebooks with papermill, in order, under one run profile.

Usage (from the project root, or anywhere with ``PNEUMOLAB_ROOT`` set)::

    python -m pneumolib.run                          # every notebook, profile "smoke"
    python -m pneumolib.run --profile cpu --only 03 04
    python -m pneumolib.run --profile cpu --from 05  # 05, 06, ... to the end
    python -m pneumolib.run --list                   # what would run, then exit
    python -m pneumolib.run -p NAME VALUE            # another parameter, as papermill -p

Before any kernel starts, every parameter name is checked against each selected notebook's
``parameters`` cell (:func:`check_parameters`): an unknown name is an error (exit status 2), not
papermill's warning. So is a set but empty or missing ``$PNEUMOLAB_DATA``.

Each ``notebooks/NN_*.ipynb`` is executed with the parameter ``profile`` injected into its
``parameters`` cell, in ``notebooks/`` as working directory, and the executed copy (outputs
included, also when it fails) goes to ``build/executed/<profile>/``. The committed notebooks are
never modified.

Notebooks that need the Kermany folder (:data:`KERMANY_NOTEBOOKS`) are skipped, with the reason
printed and recorded, when :func:`pneumolib.data.kermany_available` is false.

The first failing notebook stops the run (exit status 1) with its name, the failing cell and the
error. Status and wall time of every notebook, the git commit, the profile hash and the machine go
to ``results/<profile>/run_metadata.json``; entries of notebooks that were not run this time are
kept. The file is updated under its lock; a damaged one is set aside (renamed
``run_metadata.json.corrupt-<time>``, with a note) and started afresh.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import papermill
import torch
from papermill.exceptions import PapermillExecutionError
from tqdm.auto import tqdm

from .data import DATA_ENV, DataNotFoundError, data_root, kermany_available
from .loop import cpu_flags, precision_info
from .profiles import DEFAULT_PROFILE, PROFILES, get_profile, profile_hash
from .results import (
    CorruptArtefactError,
    build_dir,
    edit_json,
    git_info,
    project_root,
    read_json_object,
    results_dir,
    set_aside,
)
from .schema import FILES as RESULTS_FILES
from .train import RUN_LOG_ENV, read_run_log

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
#: Number prefixes of the notebooks that cannot run without the Kermany ``chest_xray`` folder.
#: (Notebook 01 uses Kermany for one section only and handles its absence itself.)
KERMANY_NOTEBOOKS = ("05", "06")
METADATA_FILE = "run_metadata.json"


@dataclass(frozen=True)
class Notebook:
    path: Path

    @property
    def name(self) -> str:  # "03_baseline_cnn"
        return self.path.stem

    @property
    def number(self) -> str:  # "03"
        return self.path.name[:2]

    @property
    def needs_kermany(self) -> bool:
        return self.number in KERMANY_NOTEBOOKS


# --------------------------------------------------------------------------- discovery
def notebooks_dir(root: Path | None = None) -> Path:
    return (root or project_root()) / "notebooks"


def discover_notebooks(root: Path | None = None) -> list[Notebook]:
    """All ``notebooks/NN_*.ipynb`` under the project root, sorted by name."""
    return [Notebook(p) for p in sorted(notebooks_dir(root).glob(NOTEBOOK_GLOB)) if p.is_file()]


def _number(text: str) -> str:
    """``"3"``, ``"03"``, ``"03_baseline"`` or ``"03_baseline.ipynb"`` -> ``"03"``."""
    m = re.match(r"^(\d{1,2})(?:_|\.|$)", Path(text).name)
    if not m:
        raise ValueError(f"{text!r} is not a notebook number (expected e.g. 03)")
    return m.group(1).zfill(2)


def select_notebooks(
    notebooks: list[Notebook], only: list[str] | None = None, start: str | None = None
) -> list[Notebook]:
    """Keep the notebooks whose number is in ``only`` (all if empty) and is at least ``start``."""
    chosen = list(notebooks)
    if only:
        wanted = {_number(o) for o in only}
        missing = wanted - {nb.number for nb in notebooks}
        if missing:
            raise ValueError(
                f"no notebook numbered {', '.join(sorted(missing))} in {notebooks_dir()} "
                f"(have: {', '.join(nb.number for nb in notebooks) or 'none'})"
            )
        chosen = [nb for nb in chosen if nb.number in wanted]
    if start is not None:
        first = _number(start)
        chosen = [nb for nb in chosen if nb.number >= first]
    return chosen


def skip_reason(nb: Notebook) -> str | None:
    """Why ``nb`` cannot run on this machine, or None if it can."""
    if nb.needs_kermany:
        if not kermany_available():
            where = data_root(must_exist=False) / "kermany" / "chest_xray"
            source = f"${DATA_ENV}" if os.environ.get(DATA_ENV) else f"${DATA_ENV} is not set"
            return (
                f"needs the Kermany chest_xray folder, not found at {where} ({source}); "
                "see pneumolib/data.py for where to get it"
            )
    return None


def data_config_problem() -> str | None:
    """What is wrong with a set ``$PNEUMOLAB_DATA`` (empty, or not a folder), or None."""
    if DATA_ENV not in os.environ:
        return None
    try:
        data_root()
    except DataNotFoundError as err:
        return str(err)
    return None


# --------------------------------------------------------------------------- parameters
def parse_parameters(pairs: list[list[str]]) -> dict:
    """``[["seed", "3"], ...]`` from ``-p NAME VALUE`` to ``{"seed": 3}`` (Python literals, else strings)."""
    out = {}
    for name, text in pairs:
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


def check_parameters(notebooks: list[Notebook], parameters: dict) -> None:
    """Raise ValueError naming each notebook whose ``parameters`` cell does not define one of
    ``parameters`` (papermill itself would only log a warning and run with the default)."""
    problems = []
    for nb in notebooks:
        try:
            known = set(papermill.inspect_notebook(str(nb.path)))
        except ValueError as err:  # e.g. "No kernel name found": metadata.kernelspec missing
            raise ValueError(
                f"{nb.path}: cannot read its parameters ({err}); it needs metadata.kernelspec "
                "(see scripts/check_notebooks_clean.py)"
            ) from err
        unknown = sorted(set(parameters) - known)
        if unknown:
            problems.append(
                f"{nb.path.name} has no parameter {', '.join(map(repr, unknown))} "
                f"(its parameters cell defines: {', '.join(sorted(known)) or 'nothing'})"
            )
    if problems:
        raise ValueError("unknown notebook parameter(s):\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------- provenance
def total_memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) * 1024 / 2**30, 1)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "memory_gib": total_memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": None,
        "cuda_device": None,
        "cpu_capability": None,  # "AVX512", "AVX2", ...: with bf16_native, which kind of CPU a time was measured on
        "amx": "amx_bf16" in (cpu_flags() or ()),
    }
    try:
        info["torch"] = torch.__version__
        info.update(precision_info())  # which CPU features the timings relied on (bf16 only where native)
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    except Exception:  # torch missing or broken: metadata must not stop a run
        pass
    return info


def machine_kind(machine: dict) -> str:
    """A short name for the kind of CPU a time was measured on, e.g. "AVX512 + native bf16, no AMX"
    (from :func:`machine_info`'s record): times are only comparable within one kind."""
    kind = machine.get("cpu_capability") or "unknown CPU"
    kind += " + native bf16" if machine.get("bf16_native") else ""
    if machine.get("isa_limits"):  # a newer CPU limited to an older instruction set: an emulation, said so
        kind += " (emulated: " + ", ".join(f"{k}={v}" for k, v in machine["isa_limits"].items()) + ")"
    if "amx" in machine:  # AMX roughly doubles bf16 training speed on CPU: a machine with it is another kind
        kind += " + AMX" if machine["amx"] else ", no AMX"
    return kind


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- failure report
def _source_cell_index(executed: Path, cell_index: int) -> int | None:
    """Index of the failing cell in the *committed* notebook (papermill inserts one cell)."""
    try:
        cells = nbformat.read(executed, as_version=4).cells
        injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    except Exception:
        return None
    return cell_index - 1 if injected and cell_index > injected[0] else cell_index


def describe_failure(nb: Notebook, err: BaseException, executed: Path, max_lines: int = 15) -> str:
    """Multi-line message naming the notebook, the failing cell, its source and the error."""
    lines = [f"FAILED: {nb.path.name}"]
    if isinstance(err, PapermillExecutionError):
        src_index = _source_cell_index(executed, err.cell_index)
        where = f"cell index {err.cell_index} of the executed notebook, In [{err.exec_count}]"
        if src_index is not None:
            where = f"cell {src_index} of {nb.path.name} ({where})"
        lines.append(f"  failing cell: {where}")
        source = (err.source or "").splitlines()
        for line in source[:max_lines]:
            lines.append(f"    | {line}")
        if len(source) > max_lines:
            lines.append(f"    | ... ({len(source) - max_lines} more lines)")
        lines.append(f"  error: {err.ename}: {err.evalue}")
    else:
        lines.append(f"  error: {type(err).__name__}: {err}")
    if executed.exists():
        lines.append(f"  executed copy with the full traceback: {executed}")
    return "\n".join(lines)


def _error_summary(err: BaseException) -> str:
    if isinstance(err, PapermillExecutionError):
        return f"cell {err.cell_index} (In [{err.exec_count}]): {err.ename}: {err.evalue}"
    return f"{type(err).__name__}: {err}"


# --------------------------------------------------------------------------- running
def open_metadata(meta_path: Path) -> None:
    """Check the run metadata file before a run: a damaged one is set aside (with a note) and
    started afresh, so the runner never stops on it and never merges into a partial table."""
    if meta_path.exists():
        try:
            read_json_object(meta_path)
        except CorruptArtefactError as err:
            set_aside(
                meta_path, f"{err.problem}; a new one is started (earlier notebooks' entries are in the set-aside copy)"
            )


def _record(meta_path: Path, nb: Notebook, entry: dict) -> None:
    """Merge one notebook's entry into the ``notebooks`` table of the metadata file (under its lock)."""
    with edit_json(meta_path) as meta:
        table = dict(meta.get("notebooks") or {})
        table[nb.name] = entry
        meta["notebooks"] = dict(sorted(table.items()))


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pneumolib.run",
        description="Execute notebooks/NN_*.ipynb with papermill under a run profile "
        "(executed copies go to build/executed/<profile>/).",
    )
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        help=f"run profile from pneumolib/profiles.py (default: {DEFAULT_PROFILE})",
    )
    p.add_argument(
        "--only", nargs="*", default=[], metavar="NN", help="run only these notebook numbers, e.g. --only 03 04"
    )
    p.add_argument(
        "--from", dest="start", metavar="NN", default=None, help="start at this notebook number, e.g. --from 05"
    )
    p.add_argument("--list", action="store_true", help="list the notebooks that would run, then exit")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="inject another notebook parameter (as papermill -p); a name that a selected notebook's "
        "parameters cell does not define is an error",
    )
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    p.add_argument(
        "--cell-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail a notebook whose cell runs longer than this (default: no limit; make test uses one, so a hung "
        "kernel fails CI instead of stalling it)",
    )
    p.add_argument(
        "--cell-progress", action="store_true", help="also show papermill's per-cell progress bar inside each notebook"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = project_root()
    found = discover_notebooks(root)
    if not found:
        print(f"No notebooks matching notebooks/{NOTEBOOK_GLOB} under {root}.", file=sys.stderr)
        return 1
    try:
        selected = select_notebooks(found, args.only, args.start)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not selected:
        print("No notebook selected (check --only / --from).", file=sys.stderr)
        return 2

    if args.list:
        chosen = {nb.path for nb in selected}
        for nb in found:
            mark = "*" if nb.path in chosen else " "
            note = "  [needs Kermany]" if nb.needs_kermany else ""
            print(f"{mark} {nb.path.name}{note}")
        print(f"({len(selected)} of {len(found)} selected, profile {args.profile})")
        return 0

    profile = args.profile
    parameters = {**parse_parameters(args.parameter), "profile": profile}
    if any(name == "profile" for name, _ in args.parameter):
        print("error: set the profile with --profile, not -p profile", file=sys.stderr)
        return 2
    try:
        check_parameters(selected, parameters)
        problem = data_config_problem()
    except ValueError as err:
        problem = str(err)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out_dir = build_dir("executed", profile)
    meta_path = results_dir(profile) / METADATA_FILE
    git = git_info(root)
    p_hash = profile_hash(get_profile(profile))
    run_date = utc_now()
    open_metadata(meta_path)
    with edit_json(meta_path) as meta:
        meta.update(
            schema_version=RESULTS_FILES["run_metadata"].version,
            profile=profile,
            profile_hash=p_hash,
            git=git,
            date=run_date,
            machine=machine_info(),
        )

    print(
        f"PneumoLab run: profile {profile} ({p_hash}), {len(selected)} notebook(s), "
        f"commit {git['commit'] or 'unknown'}{' (dirty)' if git['dirty'] else ''}",
        flush=True,
    )
    t_run = time.perf_counter()
    skipped: list[tuple[Notebook, str]] = []
    ran: list[Notebook] = []
    exit_code = 0
    bar = tqdm(selected, desc=f"notebooks ({profile})", unit="nb", file=sys.stderr)
    for nb in bar:
        bar.set_postfix_str(nb.name)
        executed = out_dir / nb.path.name
        entry = {
            "status": None,
            "wall_s": 0.0,
            "reason": None,
            "date": utc_now(),
            "git_commit": git["commit"],
            "profile_hash": p_hash,
            "output": str(executed.relative_to(root)) if executed.is_relative_to(root) else str(executed),
        }
        reason = skip_reason(nb)
        if reason:
            tqdm.write(f"SKIP  {nb.path.name}: {reason}")
            skipped.append((nb, reason))
            _record(meta_path, nb, {**entry, "status": "skipped", "reason": reason, "output": None})
            continue
        tqdm.write(f"START {nb.path.name}")
        run_log = out_dir / f"{nb.path.stem}.runs.jsonl"
        run_log.unlink(missing_ok=True)
        os.environ[RUN_LOG_ENV] = str(run_log)  # the kernel inherits it: train_seeds logs trained vs loaded
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb.path),
                str(executed),
                parameters=parameters,
                cwd=str(nb.path.parent),
                kernel_name=args.kernel,
                language="python",
                progress_bar=args.cell_progress,
                execution_timeout=args.cell_timeout,
            )
        except KeyboardInterrupt:
            wall = time.perf_counter() - t0
            _record(meta_path, nb, {**entry, "status": "failed", "wall_s": round(wall, 2), "reason": "interrupted"})
            bar.close()
            print(f"\nINTERRUPTED: {nb.path.name} after {_fmt_s(wall)}", file=sys.stderr)
            exit_code = 130
            break
        except Exception as err:  # PapermillExecutionError, dead kernel, missing kernel, ...
            wall = time.perf_counter() - t0
            _record(
                meta_path, nb, {**entry, "status": "failed", "wall_s": round(wall, 2), "reason": _error_summary(err)}
            )
            bar.close()
            print(
                f"\n{describe_failure(nb, err, executed)}\n  after {_fmt_s(wall)}; "
                "stopping (later notebooks were not run).",
                file=sys.stderr,
                flush=True,
            )
            exit_code = 1
            break
        wall = time.perf_counter() - t0
        ran.append(nb)
        _record(meta_path, nb, {**entry, "status": "ok", "wall_s": round(wall, 2), **read_run_log(run_log)})
        tqdm.write(f"DONE  {nb.path.name} in {_fmt_s(wall)}")
    bar.close()

    total = time.perf_counter() - t_run
    with edit_json(meta_path) as meta:
        meta["total_wall_s"] = round(total, 2)
    print(
        f"\n{len(ran)} ok, {len(skipped)} skipped"
        f"{', 1 failed' if exit_code else ''} in {_fmt_s(total)}; metadata: {meta_path}"
    )
    for nb, reason in skipped:
        print(f"  skipped {nb.path.name}: {reason}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
