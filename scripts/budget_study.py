"""Budget study (issue 17, step 3): is a model's epoch budget long enough to converge?

Under a cosine schedule the best epoch is nearly always one of the last (the learning rate reaches 0
there), so "the best epoch is the last" alone cannot tell an unfinished model from a finished one. This
study asks the direct question instead: does a **longer budget** (default: twice the profile's) raise the
**validation** metric by more than the seed-to-seed spread? If yes, the profile's budget stops the model
before it has converged; if not, the budget is enough. Test numbers are reported, never used to decide.

Binary task (PneumoniaMNIST, 28 px) or three classes, the ``cpu`` profile's protocol, every seed of the
profile. The profile's own budget is loaded from ``build/runs/cpu`` (trained if missing); longer budgets
train into ``build/runs/budget-<model>-<epochs>/`` and are reused on a rerun.
Output: ``benchmarks/budget.json`` and ``benchmarks/BUDGET.md`` (rows of other models/tasks are kept).

    python scripts/budget_study.py                                     # DenseNet121, binary, 5 vs 10 epochs
    python scripts/budget_study.py --model resnet18 --factor 2 --seeds 0
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from pneumolib.data import CLASSES_3, load_binary_splits, load_three_class_splits
from pneumolib.metrics import binary_metrics, multiclass_metrics
from pneumolib.profiles import get_profile, profile_hash
from pneumolib.results import write_json, write_text
from pneumolib.train import config_for, train_or_load

ROOT = Path(__file__).resolve().parents[1]
OUT_JSON = ROOT / "benchmarks" / "budget.json"


def profile_with_budget(task: str, model: str, epochs: int):
    cpu = get_profile("cpu")
    if config_for(cpu, model, num_classes=2 if task == "binary" else 3, task=task).max_epochs == epochs:
        return cpu
    protocol = copy.deepcopy(cpu.protocol_by_task)
    protocol[task]["epochs_by_model"] = {**protocol[task].get("epochs_by_model", {}), model: epochs}
    return dataclasses.replace(cpu, name=f"budget-{model}-{epochs}", protocol_by_task=protocol)


def _scores(task: str, run) -> dict:
    yv, _, pv = run.split_arrays("val")
    yt, _, pt = run.split_arrays("test")
    if task == "binary":
        val, tst = binary_metrics(yv, pv), binary_metrics(yt, pt)
        return dict(val=val["auroc"], test=tst["auroc"], test_accuracy=tst["accuracy"])
    val, tst = multiclass_metrics(yv, pv, CLASSES_3), multiclass_metrics(yt, pt, CLASSES_3)
    return dict(val=val["macro_auroc"], test=tst["macro_auroc"], test_macro_f1=tst["macro_f1"])


def measure(task: str, model: str, epochs: int, seeds: tuple[int, ...]) -> dict:
    prof = profile_with_budget(task, model, epochs)
    splits = load_binary_splits(prof) if task == "binary" else load_three_class_splits(prof)
    runs = []
    for seed in seeds:
        run = train_or_load(task, model, splits, prof, seed, progress=False)
        runs.append(
            dict(
                seed=seed,
                **_scores(task, run),
                best_epoch=run.info["best_epoch"],
                epochs_run=run.info["epochs_run"],
                train_s=round(run.info["train_time_s"], 1),
            )
        )
        print(task, model, epochs, runs[-1], flush=True)
    vals = [r["val"] for r in runs]
    return dict(
        task=task,
        model=model,
        epochs=epochs,
        profile_budget=prof.name == "cpu",
        seeds=list(seeds),
        runs=runs,
        val=float(np.mean(vals)),
        val_sd=float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
        test=float(np.mean([r["test"] for r in runs])),
        train_s=float(np.mean([r["train_s"] for r in runs])),
    )


def verdict(base: dict, longer: dict) -> str:
    gain = longer["val"] - base["val"]
    spread = max(base["val_sd"], longer["val_sd"])
    if gain > spread:
        return f"not converged: {longer['epochs']} epochs raise validation by {gain:+.4f} (> seed SD {spread:.4f})"
    return f"converged: {longer['epochs']} epochs change validation by {gain:+.4f} (within seed SD {spread:.4f})"


def course_minutes(row: dict, rows: list[dict]) -> float:
    """Minutes of training a budget adds to a first course run, at the profile budget's seconds per epoch."""
    base = next(
        (r for r in rows if r["task"] == row["task"] and r["model"] == row["model"] and r["profile_budget"]), row
    )
    per_epoch = float(np.mean([x["train_s"] / x["epochs_run"] for x in base["runs"]]))
    return per_epoch * row["epochs"] * len(row["seeds"]) / 60


def markdown(result: dict) -> str:
    lines = [
        "# Budget study: does a longer epoch budget help? (`scripts/budget_study.py`)",
        "",
        f"`cpu` profile ({result['profile_hash']}) protocol, trained from scratch, official test sets. Measured "
        f"{result['date']}. Metric: AUROC (binary) or macro AUROC (three classes), the metric the best epoch is "
        "kept by. A budget counts as converged when the longer budget's mean **validation** gain is within the "
        "seed-to-seed standard deviation; test is reported, never used to decide.",
        "",
        "| task | model | epochs | seeds | val (mean +- SD) | test | best epochs | course minutes | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sorted(result["rows"], key=lambda r: (r["task"], r["model"], r["epochs"]))
    for r in rows:
        best = ", ".join(f"{x['best_epoch']}/{x['epochs_run']}" for x in r["runs"])
        label = f"{r['epochs']}" + (" (profile)" if r["profile_budget"] else "")
        lines.append(
            f"| {r['task']} | {r['model']} | {label} | {len(r['seeds'])} | {r['val']:.4f} +- {r['val_sd']:.4f} | "
            f"{r['test']:.4f} | {best} | {course_minutes(r, rows):.0f} | {r.get('verdict', '')} |"
        )
    lines += [
        "",
        "Course minutes: what the model's training adds to a first `cpu` run (all seeds), from the seconds per "
        "epoch of the profile's own runs (the reference run, on an otherwise idle machine) times the budget; the "
        "longer budgets' own wall times are in budget.json (`train_s`; measured while other work shared the "
        "machine, so not used).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["binary", "three_class"], default="binary")
    parser.add_argument("--model", default="densenet121")
    parser.add_argument("--factor", type=float, default=2.0, help="longer budget = factor x the profile's")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(get_profile("cpu").seeds))
    args = parser.parse_args(argv)
    if args.factor <= 1:
        parser.error(f"--factor must be above 1 (the longer budget is factor x the profile's), got {args.factor}")
    cpu = get_profile("cpu")
    base_epochs = config_for(cpu, args.model, num_classes=2 if args.task == "binary" else 3, task=args.task).max_epochs
    longer_epochs = int(round(base_epochs * args.factor))
    base = measure(args.task, args.model, base_epochs, tuple(args.seeds))
    longer = measure(args.task, args.model, longer_epochs, tuple(args.seeds))
    longer["verdict"] = verdict(base, longer)
    old = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
    new = {(r["task"], r["model"], r["epochs"]) for r in (base, longer)}
    rows = [r for r in old.get("rows", []) if (r["task"], r["model"], r["epochs"]) not in new] + [base, longer]
    result = dict(date=time.strftime("%Y-%m-%d"), profile_hash=profile_hash(cpu), rows=rows)
    write_json(OUT_JSON, result)
    write_text(ROOT / "benchmarks" / "BUDGET.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
