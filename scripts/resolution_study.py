"""Resolution study (issue 17, step 2): what do 96 or 128 px buy the three-class task, and what do they cost?

For each input size (default 64, 96, 128 px) it trains the three-class models with the ``cpu`` profile's
three-class protocol (fixed epoch budget, cosine schedule, epoch with the best validation macro AUROC kept;
Kermany, patient-grouped validation split, the profile's framing) and records, per model and size:
validation macro-F1 (mean over seeds; the only column used to choose), test macro-F1 and normal recall
(reported, never used), training img/s, seconds per epoch and per run, and best epochs. The 64 px rows are
the ``cpu`` profile's own runs (loaded from ``build/runs/cpu`` if the course has run, trained otherwise).

The choice for the ``cpu`` profile: the size with the best validation macro-F1 among those whose projected
first course run stays within the time target (``pneumolib.profiles.TIME_TARGET_MIN``); the projection
scales the minutes the reference run spent training on Kermany (notebooks 05 and 06) by each size's measured
time per run against 64 px. If no size fits, the cheapest is kept and the table says so.

Output: ``benchmarks/resolution.json`` and ``benchmarks/RESOLUTION.md``. Reruns resume: finished runs are
loaded from ``build/runs/resolution-<px>/``, and rows of other models already in the JSON are kept.

    python scripts/resolution_study.py                                   # custom CNN, 3 seeds (~25 min, 2 cores)
    python scripts/resolution_study.py --models resnet18 --seeds 0       # adds ResNet18, one seed
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from pneumolib.data import CLASSES_3, load_three_class_splits
from pneumolib.evaluate import study_run_scores
from pneumolib.loop import describe_config
from pneumolib.models import model_note
from pneumolib.plots import plot_resolution_study
from pneumolib.profiles import get_profile, profile_hash
from pneumolib.results import write_json, write_text
from pneumolib.train import config_for, train_or_load

ROOT = Path(__file__).resolve().parents[1]
OUT_JSON = ROOT / "benchmarks" / "resolution.json"
TIME_TARGET_MIN = 35.0  # issue 17: first full cpu run, empty cache, 2 cores with native bf16
KERMANY_NOTEBOOKS = ("05_three_class", "06_hierarchical")  # where the reference run trains on Kermany


def profile_at(size: int):
    cpu = get_profile("cpu")
    if size == cpu.kermany_size:
        return cpu
    return dataclasses.replace(cpu, name=f"resolution-{size}", kermany_size=size)


def measure(model: str, size: int, seeds: tuple[int, ...]) -> dict:
    prof = profile_at(size)
    splits = load_three_class_splits(prof)
    runs = []
    for seed in seeds:
        run = train_or_load("three_class", model, splits, prof, seed, progress=False)
        info = run.info
        runs.append(
            dict(
                **study_run_scores(run, CLASSES_3),
                train_s=round(info["train_time_s"], 1),
                epoch_s=round(info["train_time_s"] / info["epochs_run"], 2),
                img_per_s_train=round(info["img_per_s_train"], 1),
                cpu_capability=info.get("cpu_capability"),
                bf16=info["config"]["bf16"],
            )
        )
        print(model, size, runs[-1], flush=True)
    mean = {k: float(np.mean([r[k] for r in runs])) for k in ("val_macro_f1", "test_macro_f1", "test_normal_recall")}
    return dict(
        model=model,
        size=size,
        note=model_note(model, "none", size),
        seeds=list(seeds),
        runs=runs,
        **mean,
        train_s=float(np.median([r["train_s"] for r in runs])),
        epoch_s=float(np.median([r["epoch_s"] for r in runs])),
        img_per_s_train=float(np.median([r["img_per_s_train"] for r in runs])),
    )


def reference_kermany_seconds() -> dict | None:
    """What the committed reference run spent training on Kermany, per model (notebook 05's three-class runs and
    notebook 06's stage models), and its total wall time: ``{"total_s", "train_s": {model: seconds}}``."""
    from pneumolib.schema import ResultsNotFoundError, read_results

    cpu = get_profile("cpu")
    try:
        meta = read_results(cpu, "run_metadata")
        three = read_results(cpu, "three_class")["models"]
        arch = read_results(cpu, "hierarchical")["architecture"]
    except ResultsNotFoundError:
        return None
    train: dict[str, float] = {}
    for entry in three.values():
        train[entry["model"]] = train.get(entry["model"], 0.0) + sum(r["train_time_s"] for r in entry["runs"])
    stage_s = meta["notebooks"].get("06_hierarchical", {}).get("train_s_trained", 0.0)
    train[arch] = train.get(arch, 0.0) + stage_s
    return {"total_s": meta["total_wall_s"], "train_s": train}


def choose(rows: list[dict]) -> dict:
    """Project the first course run's minutes at each size and pick within the time target on validation.

    The projection replaces each model's Kermany training seconds in the reference run by those seconds times
    the model's measured time per run at that size over 64 px; a model the study did not measure is assumed to
    scale like the mean of those it did (said in ``assumed``)."""
    ref = reference_kermany_seconds()
    sizes = sorted({r["size"] for r in rows})
    base = get_profile("cpu").kermany_size
    at_base = {r["model"]: r for r in rows if r["size"] == base}
    per_size = {}
    for size in sizes:
        at = {r["model"]: r for r in rows if r["size"] == size}
        ratios = {m: at[m]["train_s"] / at_base[m]["train_s"] for m in at if m in at_base}
        mean_ratio = float(np.mean(list(ratios.values()))) if ratios else None
        projected, assumed = None, []
        if ref and mean_ratio is not None:
            extra = 0.0
            for model, seconds in ref["train_s"].items():
                if model not in ratios:
                    assumed.append(model)
                extra += seconds * (ratios.get(model, mean_ratio) - 1)
            projected = (ref["total_s"] + extra) / 60
        common = [m for m in at if m in at_base]
        per_size[size] = dict(
            time_ratio=ratios,
            projected_run_min=projected,
            assumed=assumed,
            val_macro_f1={m: at[m]["val_macro_f1"] for m in at},
            mean_val_macro_f1=float(np.mean([at[m]["val_macro_f1"] for m in common])) if common else None,
        )
    fits = [s for s in sizes if per_size[s]["projected_run_min"] is not None]
    within = [s for s in fits if per_size[s]["projected_run_min"] <= TIME_TARGET_MIN]
    if within:
        chosen, why = max(within, key=lambda s: per_size[s]["mean_val_macro_f1"]), "best validation macro-F1 within"
    else:
        chosen = min(fits or sizes, key=lambda s: per_size[s]["projected_run_min"] or 0.0)
        why = "no size keeps the first run within"
    return dict(
        per_size=per_size,
        chosen=chosen,
        why=why,
        reference_minutes=None if ref is None else ref["total_s"] / 60,
        reference_kermany_train_min=None if ref is None else {m: s / 60 for m, s in ref["train_s"].items()},
    )


def markdown(result: dict) -> str:
    c = result["choice"]
    lines = [
        "# Resolution study: three classes at 64, 96 and 128 px (`scripts/resolution_study.py`)",
        "",
        f"Kermany (the shared copy: {result['train_images']} training images after the patient-grouped validation "
        f"split), framing `{result['framing']}`, trained from scratch with the `cpu` profile's three-class protocol "
        f"({result['protocol']}; profile {result['profile_hash']}), argmax. Measured {result['date']} on "
        f"{result['machine']}. Validation macro-F1 is the only column used to choose; test columns are reported.",
        "",
        "| model | px | seeds | val macro-F1 | test macro-F1 | test normal recall | train img/s | s/epoch | "
        "s/run | best epochs | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(result["rows"], key=lambda r: (r["model"], r["size"])):
        best = ", ".join(f"{x['best_epoch']}/{x['epochs_run']}" for x in r["runs"])
        lines.append(
            f"| {r['model']} | {r['size']} | {len(r['seeds'])} | {r['val_macro_f1']:.3f} | {r['test_macro_f1']:.3f} | "
            f"{r['test_normal_recall']:.3f} | {r['img_per_s_train']:.0f} | {r['epoch_s']:.1f} | {r['train_s']:.0f} | "
            f"{best} | {r['note'] or '-'} |"
        )
    lines += [
        "",
        "| px | time per run vs 64 px | projected first `cpu` run | mean val macro-F1 (models measured at 64 px too) |",
        "|---|---|---|---|",
    ]
    for size, p in c["per_size"].items():
        ratio = ", ".join(f"{m} {r:.2f}x" for m, r in p["time_ratio"].items()) or "-"
        proj = f"{p['projected_run_min']:.0f} min" if p["projected_run_min"] is not None else "-"
        if p.get("assumed"):
            proj += f" ({', '.join(p['assumed'])} assumed to scale like the mean)"
        f1 = f"{p['mean_val_macro_f1']:.3f}" if p["mean_val_macro_f1"] is not None else "-"
        lines.append(f"| {size} | {ratio} | {proj} | {f1} |")
    ref, kermany = c["reference_minutes"], c.get("reference_kermany_train_min") or {}
    lines += [
        "",
        (
            f"Projection: the reference run's {ref:.1f} min, with each model's Kermany training in it ("
            + ", ".join(f"{m} {v:.1f} min" for m, v in kermany.items())
            + ", notebooks 05 and 06) scaled by that model's measured time per run at each size. "
            if ref
            else "No committed reference run to project from. "
        )
        + f"Rule: the best validation macro-F1 among sizes whose projected first run is within "
        f"{TIME_TARGET_MIN:.0f} min. Result: **{c['chosen']} px** "
        f"({c['why']} the {TIME_TARGET_MIN:.0f}-minute target).",
        "",
        "![Validation and test macro-F1 and minutes per run against input size](resolution.png)",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--models", nargs="+", default=["simple_cnn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(get_profile("cpu").seeds))
    args = parser.parse_args(argv)
    if min(args.sizes) < 32 or max(args.sizes) > 256:
        parser.error(f"--sizes must lie within 32-256 px (the Kermany copy has a 256 px short side), got {args.sizes}")
    old = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
    new = [measure(m, s, tuple(args.seeds)) for m in args.models for s in args.sizes]
    keep = [r for r in old.get("rows", []) if (r["model"], r["size"]) not in {(n["model"], n["size"]) for n in new}]
    rows = keep + new
    cpu = get_profile("cpu")
    import torch

    from pneumolib.loop import use_bf16

    result = dict(
        date=time.strftime("%Y-%m-%d"),
        machine=f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 {use_bf16(True, 'cpu')}",
        profile_hash=profile_hash(cpu),
        framing=cpu.framing,
        protocol=describe_config(config_for(cpu, "simple_cnn", num_classes=3, task="three_class")),
        train_images=len(load_three_class_splits(cpu)["train"].labels),
        rows=rows,
    )
    result["choice"] = choose(rows)
    write_json(OUT_JSON, result)
    write_text(ROOT / "benchmarks" / "RESOLUTION.md", markdown(result))
    fig = plot_resolution_study(result, title="Resolution study: three classes, Kermany, trained from scratch")
    fig.savefig(ROOT / "benchmarks" / "resolution.png", dpi=110, bbox_inches="tight")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
