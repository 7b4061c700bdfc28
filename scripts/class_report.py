"""Record a first run of the ``class`` profile: its time on this kind of CPU and its distance to ``cpu``.

Run it right after a *first* run of the whole course on ``class`` (no finished class run present)::

    rm -rf build/runs/class && python -m pneumolib.run --profile class && python scripts/class_report.py

It reads ``results/class/run_metadata.json`` (the notebooks' wall times and the machine), refuses
a run in which notebooks 03-06 loaded any finished run (that would be a rerun, not a first run) or
in which a notebook failed, and compares ``results/class`` with the committed ``results/cpu``:

* binary test AUROC of each model (class: its one seed; cpu: mean ± std over 3 seeds), with the
  goal |difference| <= 0.01;
* three-class test macro-F1 and macro-AUROC of each model;
* the temperature-scaled binary ensemble's ECE (15 bins).

The measurement is stored per kind of CPU (capability and native bf16; goals: 10 minutes with
native bf16, 20 minutes on AVX2 only) in ``benchmarks/class.json``, so a second machine adds its
row; ``benchmarks/CLASS.md`` and the README block between ``<!-- class:start -->`` and
``<!-- class:end -->`` are rendered from it. No number is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pneumolib.profiles import get_profile, profile_hash
from pneumolib.results import fill_block, project_root, write_json, write_text
from pneumolib.run import machine_kind
from pneumolib.schema import read_results

GOAL_S = {True: 600, False: 1200}  # native bf16: 10 min; AVX2 only: 20 min
AUROC_GOAL = 0.01
#: the tasks each training notebook must have trained on a first run (06 also loads 05's flat runs)
TRAINED_TASKS = {"03": ("binary",), "04": ("binary",), "05": ("three_class",), "06": ("stage_a", "stage_b")}
LOADED = "loaded finished run"  # what train_seeds prints for a run it did not train


def measurement(root: Path) -> dict:
    """The class run's times, checked to be a complete first run, and its distance to cpu."""
    cls, cpu = get_profile("class"), get_profile("cpu")
    meta = read_results(cls, "run_metadata")
    if meta["profile_hash"] != profile_hash(cls):
        sys.exit("results/class was made under other class settings: rerun the class profile first")
    notebooks = meta["notebooks"]
    bad = {k: v["status"] for k, v in notebooks.items() if v["status"] != "ok"}
    if len(notebooks) != 9 or bad:
        sys.exit(f"not a complete class run (notebooks: {len(notebooks)}, not ok: {bad}): run all 9 notebooks")
    executed = {p.name[:2]: p.read_text() for p in (root / "build" / "executed" / "class").glob("0[3-6]_*.ipynb")}
    rerun = [
        nb
        for nb, tasks in TRAINED_TASKS.items()
        if any(f", {t}: no finished run of profile 'class'" not in executed.get(nb, "") for t in tasks)
        or (nb != "06" and LOADED in executed.get(nb, ""))
    ]
    if rerun:
        sys.exit(
            f"notebooks {', '.join(rerun)} did not train all their runs: a rerun, not a first run "
            "(rm -rf build/runs/class, then run the class profile again)"
        )
    wall = sum(v["wall_s"] for v in notebooks.values())
    binary = {}
    class_bin, cpu_bin = read_results(cls, "binary")["models"], read_results(cpu, "binary")["models"]
    for key, entry in class_bin.items():
        if key in cpu_bin:
            ours = entry["summary"]["at_05"]["auroc"]["mean"]
            ref = cpu_bin[key]["summary"]["at_05"]["auroc"]
            binary[key] = dict(class_auroc=ours, cpu_mean=ref["mean"], cpu_std=ref["std"], diff=ours - ref["mean"])
    three = {}
    class_3, cpu_3 = read_results(cls, "three_class")["models"], read_results(cpu, "three_class")["models"]
    for key, entry in class_3.items():
        if key in cpu_3:
            three[key] = {
                m: dict(class_=entry["summary"]["test"][m]["mean"], cpu_mean=cpu_3[key]["summary"]["test"][m]["mean"])
                for m in ("macro_f1", "macro_auroc")
            }
    ece = {p.name: read_results(p, "calibration")["binary"]["ensemble"]["after"]["ece_15"] for p in (cls, cpu)}
    bf16 = bool(meta["machine"].get("bf16_native"))
    return dict(
        date=meta["date"],
        machine=meta["machine"],
        commit=meta["git"].get("commit"),
        profile_hash=meta["profile_hash"],
        first_run_s=round(wall, 1),
        goal_s=GOAL_S[bf16],
        goal_met=wall <= GOAL_S[bf16],
        notebook_wall_s={k: v["wall_s"] for k, v in notebooks.items()},
        binary_auroc=binary,
        binary_auroc_goal_met=all(abs(v["diff"]) <= AUROC_GOAL for v in binary.values()),
        three_class=three,
        ensemble_ece_15=ece,
    )


def render(records: dict) -> str:
    lines = []
    for kind, r in records.items():
        m = r["machine"]
        lines += [
            f"**{kind}** ({m.get('cpu_count')} cores, torch {m.get('torch')}, {r['date'][:10]}, commit "
            f"{(r['commit'] or '?')[:7]}): first run of all 9 notebooks **{r['first_run_s'] / 60:.1f} min** "
            f"(goal {r['goal_s'] // 60} min: {'met' if r['goal_met'] else 'NOT met'}).",
            "",
            "| binary model | test AUROC `class` (1 seed) | `cpu` (mean ± std, 3 seeds) | difference |",
            "|---|---|---|---|",
            *[
                f"| {k} | {v['class_auroc']:.3f} | {v['cpu_mean']:.3f} ± {v['cpu_std']:.3f} | {v['diff']:+.3f} |"
                for k, v in r["binary_auroc"].items()
            ],
            "",
            f"Binary AUROC within {AUROC_GOAL} of cpu for every model: "
            f"{'yes' if r['binary_auroc_goal_met'] else 'no'}. Three-class test macro-F1 `class` / `cpu`: "
            + ", ".join(
                f"{k} {v['macro_f1']['class_']:.3f} / {v['macro_f1']['cpu_mean']:.3f}"
                for k, v in r["three_class"].items()
            )
            + f". Temperature-scaled binary ensemble ECE (15 bins): class {r['ensemble_ece_15']['class']:.3f}, "
            f"cpu {r['ensemble_ece_15']['cpu']:.3f}.",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    root = project_root()
    record = measurement(root)
    path = root / "benchmarks" / "class.json"
    records = json.loads(path.read_text()) if path.exists() else {}
    records[machine_kind(record["machine"])] = record
    write_json(path, records)
    text = render(records)
    write_text(
        root / "benchmarks" / "CLASS.md", "# The `class` profile (generated by scripts/class_report.py)\n\n" + text
    )
    fill_block(root / "README.md", "class", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
