"""Benchmark: a student's first run of the course on imported runs (no training), on this machine.

In a fresh scratch project (a copy of ``notebooks/``, no ``build/``, no ``results/``; the data
stays where ``$PNEUMOLAB_DATA`` says) it times

1. ``python -m pneumolib.runs import ARCHIVE`` (verification and install),
2. ``python -m pneumolib.run --profile <the archive's profile>``: every notebook, first run after
   the import (data caches are built as on a fresh clone),

then checks that no run was trained (every finished-run marker is byte for byte the imported one,
and no executed notebook says it trained), and writes ``benchmarks/import.json`` and
``benchmarks/IMPORT.md`` with the machine (cores, CPU capability, native bf16), the commit, the
archive's size and the times against the goal (all notebooks in 2 minutes or less on 2 cores)::

    python -m pneumolib.runs export --profile cpu --out cpu-runs.tar.gz   # where the cpu runs were trained
    python scripts/benchmark_import.py cpu-runs.tar.gz                    # here
    python scripts/benchmark_import.py smoke-runs.tar.gz --only 07 08 --out /tmp/bench   # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from pneumolib.results import git_info, project_root, write_json, write_text
from pneumolib.run import machine_info

GOAL_S = 120  # all 9 notebooks on imported cpu runs, 2 cores
TRAINED = "no finished run of profile"  # what train_or_load prints before it trains


def _markers(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "build" / "runs").glob("*/*/*/done.json"))
    }


def _timed(cmd: list[str], env: dict, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "ab") as fh:
        done = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {done.returncode}); see {log}")
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive", help="an archive written by python -m pneumolib.runs export")
    ap.add_argument("--only", nargs="*", help="notebook numbers (default: all)")
    ap.add_argument("--out", default="benchmarks", help="output folder (relative to the project root)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch project (its path is printed)")
    args = ap.parse_args(argv)
    archive = Path(args.archive).resolve()
    with tarfile.open(archive, "r:gz") as tar:
        manifest = json.loads(tar.extractfile(tar.next()).read())
    profile = manifest["profile"]
    source = project_root()
    scratch = Path(tempfile.mkdtemp(prefix="pneumolab-import-bench-"))
    shutil.copytree(source / "notebooks", scratch / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (scratch / "pneumolib").mkdir()  # marks the project root; the code is the installed package
    env = {**os.environ, "PNEUMOLAB_ROOT": str(scratch)}
    log = scratch / "benchmark.log"
    print(f"scratch project {scratch}; log {log}", flush=True)
    try:
        import_s = _timed([sys.executable, "-m", "pneumolib.runs", "import", str(archive)], env, log)
        imported = _markers(scratch)
        # the exporter's notebook times travel in run_metadata.json: start it afresh so that only this run counts
        (scratch / "results" / profile / "run_metadata.json").unlink(missing_ok=True)
        only = ["--only", *args.only] if args.only else []
        run_s = _timed([sys.executable, "-m", "pneumolib.run", "--profile", profile, *only], env, log)
        meta = json.loads((scratch / "results" / profile / "run_metadata.json").read_text())
        changed = sorted(k for k, v in _markers(scratch).items() if imported.get(k) != v)
        trained = sorted(
            p.stem for p in (scratch / "build" / "executed" / profile).glob("*.ipynb") if TRAINED in p.read_text()
        )
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    notebooks = {k: v.get("wall_s") for k, v in meta["notebooks"].items()}
    machine = machine_info()
    result = dict(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=machine,
        git=git_info(source),
        archive=dict(
            name=archive.name,
            bytes=archive.stat().st_size,
            profile=profile,
            profile_hash=manifest["profile_hash"],
            runs=len(manifest["runs"]),
            exported_at_commit=manifest.get("git_commit"),
        ),
        import_s=round(import_s, 1),
        runner_s=round(run_s, 1),
        notebook_wall_s=notebooks,
        all_notebooks=not args.only,
        retrained_runs=changed,
        notebooks_that_trained=trained,
        goal_s=GOAL_S,
    )
    met = result["all_notebooks"] and not changed and not trained and run_s <= GOAL_S
    result["goal_met"] = met
    out = source / args.out
    write_json(out / "import.json", result)
    kind = f"{machine['cpu_count']} cores, {machine.get('cpu_capability')}" + (
        " with native bf16" if machine.get("bf16_native") else " without native bf16"
    )
    lines = [
        "# First run on imported runs (generated by scripts/benchmark_import.py; do not edit)",
        "",
        f"Machine: {kind}, torch {machine.get('torch')}. Date: {result['date']}. "
        f"Commit {result['git']['commit']}{' (dirty)' if result['git']['dirty'] else ''}.",
        "",
        f"Archive `{archive.name}`: {archive.stat().st_size / 2**20:.1f} MiB, {len(manifest['runs'])} runs of "
        f"profile `{profile}` (exported at commit {manifest.get('git_commit')}).",
        "",
        f"* import (verify every checksum, install): {import_s:.1f} s",
        f"* {'all notebooks' if not args.only else 'notebooks ' + ' '.join(args.only)}, first run after the "
        f"import: {run_s:.1f} s (goal: {GOAL_S} s or less for all 9 on 2 cores) -> "
        + ("**met**" if met else "**not met**" if not args.only else "a partial check, not the benchmark"),
        f"* runs retrained: {', '.join(changed + trained) or 'none'}",
        "",
        "| notebook | wall s |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in notebooks.items()],
    ]
    write_text(out / "IMPORT.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if (met or args.only) and not changed and not trained else 1


if __name__ == "__main__":
    sys.exit(main())
