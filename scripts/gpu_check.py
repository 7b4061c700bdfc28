"""GPU check: run the ``gpu`` profile's code path on a subset, measure it, project a full run.

For a machine with one CUDA GPU. Within about 8 minutes it trains each model once (1 seed) on a
stratified subset of Kermany at 224 px with the ``gpu`` profile's settings (ImageNet weights for
ResNet18 and DenseNet121, two-phase fine-tuning, bf16 AMP) but only ``--head-epochs`` + ``--full-epochs``
epochs, and measures:

* training throughput (img/s over the training epochs, augmentation included),
* inference throughput at batch 32 and per-image latency at batch 1 (the deck's "ms/img"),
* peak GPU memory (``torch.cuda.max_memory_allocated``),
* test metrics on the subset's test images (only with real ImageNet weights),

then prints the projected wall time of a full ``make run PROFILE=gpu`` from the measured throughput,
and writes ``benchmarks/GPU.md`` and ``benchmarks/gpu.json``.

    python scripts/gpu_check.py                       # real weights must be in the torch hub cache
    python scripts/gpu_check.py --stand-in-weights    # offline: speed only, no metrics reported
    make gpu-check                                    # the same as the first line

Without CUDA it stops with a message (``--allow-cpu`` runs it on the CPU to test this script; the
file then says so). ``PNEUMOLAB_DATA`` must hold the Kermany folder (any share of it: the subset is
drawn from what is there).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pneumolib.data import load_binary_splits
from pneumolib.loop import DeviceUnavailableError, fit, latency_ms, predict_logits, resolve_device
from pneumolib.metrics import binary_metrics
from pneumolib.models import MODEL_NAMES, build_model, weights_source
from pneumolib.profiles import get_profile
from pneumolib.train import config_for

ROOT = Path(__file__).resolve().parents[1]
KERMANY_TRAIN = 5216  # official train folder; the notebooks use a patient-grouped 85% of it for training
# runs of a full `make run PROFILE=gpu` per model: binary (03/04: + ResNet18 scratch), three-class (05), and the
# two stages of 06 for the architecture 05 selects (counted for each model, the upper bound)
RUNS_PER_SEED = {"simple_cnn": 2 + 2, "resnet18": 3 + 2, "densenet121": 2 + 2}


def _standin(torch_home: Path) -> None:
    spec = importlib.util.spec_from_file_location("standin", ROOT / "scripts" / "make_standin_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_standin_weights(torch_home)


def check_model(name: str, splits: dict, prof, device, head_epochs: int, full_epochs: int) -> dict:
    weights = prof.weights_for(name)
    torch.manual_seed(0)
    model = build_model(name, 1, weights, prof.binary_size)
    config = dataclasses.replace(
        config_for(prof, name, task="binary"),
        head_epochs=head_epochs if weights == "imagenet" else 0,
        max_epochs=(head_epochs if weights == "imagenet" else 0) + full_epochs,
        patience=100,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = fit(model, splits["train"], splits["val"], config, progress=False, device=device)
    epochs = len(result.history)
    t0 = time.perf_counter()
    logits = predict_logits(result.model, splits["test"], 32, config.bf16, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    infer_s = time.perf_counter() - t0
    y = splits["test"].labels.numpy()
    probs = 1 / (1 + np.exp(-logits))
    m = binary_metrics(y, probs, 0.5)
    return dict(
        model=name,
        weights=weights,
        weights_source=weights_source(weights),
        epochs=epochs,
        head_epochs=config.head_epochs,
        train_img_per_s=len(splits["train"]) * epochs / max(result.train_time_s, 1e-9),
        infer_img_per_s_b32=len(y) / max(infer_s, 1e-9),
        latency_ms_b1=latency_ms(result.model, splits["test"], config.bf16, device),
        peak_mib=torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan"),
        auroc=m.get("auroc"),
        accuracy=m.get("accuracy"),
    )


def projection(rows: list[dict], prof) -> dict:
    """Hours of training for a full ``make run PROFILE=gpu`` at the measured img/s: at most 30 epochs per run
    (the cap), and a typical 15 (early stopping); the training split is 85% of the official folder."""
    train = 0.85 * KERMANY_TRAIN
    out = {}
    for epochs in (prof.max_epochs, 15):
        seconds = sum(RUNS_PER_SEED[r["model"]] * len(prof.seeds) * epochs * train / r["train_img_per_s"] for r in rows)
        out[f"{epochs}_epochs_h"] = seconds / 3600
    return out


def write_markdown(path: Path, report: dict) -> None:
    standin = report["stand_in_weights"]
    lines = [
        "# GPU check (`scripts/gpu_check.py`)",
        "",
        f"Measured {report['date']} on {report['device_name']} ({report['device']}), torch {report['torch']}, "
        f"CUDA {report['cuda']}. Kermany {report['size']} px, subset of {report['subset']} images per split, "
        f"1 seed, profile `gpu` settings (bf16 AMP, batch {report['batch_size']}).",
        "",
    ]
    if standin:
        lines += [
            "**Stand-in weights:** ResNet18 and DenseNet121 started from random weights saved under torchvision's "
            "file names (no ImageNet weights on this machine). Speed and memory are real; no metrics are "
            "reported from this run.",
            "",
        ]
    if report["device"] != "cuda":
        lines += ["**Not a GPU measurement:** run with `--allow-cpu` to test this script.", ""]
    cols = ["model", "weights", "epochs (head + full)", "train img/s", "inference img/s (batch 32)"]
    cols += ["latency ms (batch 1)", "peak GPU MiB"] + ([] if standin else ["test AUROC (subset)", "test ACC (subset)"])
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in report["models"]:
        row = (
            f"| {r['model']} | {r['weights_source']} | {r['head_epochs']} + {r['epochs'] - r['head_epochs']} | "
            f"{r['train_img_per_s']:.0f} | {r['infer_img_per_s_b32']:.0f} | {r['latency_ms_b1']:.2f} | "
            f"{r['peak_mib']:.0f} |"
        )
        if not standin:
            row += f" {r['auroc']:.3f} | {r['accuracy']:.3f} |"
        lines.append(row)
    p = report["projection"]
    lines += [
        "",
        f"Projected training time of a full `make run PROFILE=gpu` (3 seeds, {KERMANY_TRAIN:,}-image train folder, "
        f"every model of notebooks 03-06) at these speeds: at most {p['30_epochs_h']:.1f} h (every run to the "
        f"30-epoch cap), about {p['15_epochs_h']:.1f} h if early stopping ends runs near epoch 15. Data decoding "
        "(once, cached) and evaluation come on top.",
        "",
        f"Check wall time: {report['wall_s']:.0f} s.",
        "",
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stand-in-weights", action="store_true", help="no real ImageNet weights: speed only")
    parser.add_argument("--subset", type=int, default=768, help="images per split (default 768)")
    parser.add_argument("--head-epochs", type=int, default=1)
    parser.add_argument("--full-epochs", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU to test this script")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "GPU.md")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    if args.allow_cpu:
        os.environ["PNEUMOLAB_ALLOW_CPU"] = "1"
    try:
        device = resolve_device("cuda")
    except DeviceUnavailableError as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    if args.stand_in_weights:
        home = Path(tempfile.mkdtemp(prefix="pneumolab-standin-"))
        os.environ["TORCH_HOME"] = str(home)
        _standin(home)
        print(f"stand-in weights (random init, NOT ImageNet) in {home}: speed only")
    prof = dataclasses.replace(get_profile("gpu"), kermany_subset=args.subset, full_kermany=False)
    splits = load_binary_splits(prof)
    print({k: len(v) for k, v in splits.items()}, "images at", prof.binary_size, "px")
    rows = []
    for name in args.models:
        row = check_model(name, splits, prof, device, args.head_epochs, args.full_epochs)
        print(json.dumps(row))
        rows.append(row)
    standin = any(r["weights_source"].startswith("stand-in") for r in rows)
    if standin:
        for r in rows:
            r["auroc"] = r["accuracy"] = None  # never report metrics of stand-in weights
    report = dict(
        date=time.strftime("%Y-%m-%d"),
        device=device.type,
        device_name=torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "CPU",
        torch=torch.__version__,
        cuda=torch.version.cuda,
        size=prof.binary_size,
        subset=args.subset,
        batch_size=prof.batch_size,
        stand_in_weights=standin,
        models=rows,
        projection=projection(rows, get_profile("gpu")),
        wall_s=time.perf_counter() - t_start,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.parent / "gpu.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(args.out, report)
    p = report["projection"]
    print(f"projected full `make run PROFILE=gpu`: at most {p['30_epochs_h']:.1f} h, ~{p['15_epochs_h']:.1f} h typical")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
