"""Framing study (issue 17, step 1): how should a non-square X-ray become a square input?

For each framing of ``pneumolib.data.FRAMINGS`` (centre crop, a tighter 80% centre crop, letterbox,
plain resize) it trains the three-class custom CNN with the ``cpu`` profile's three-class protocol
(fixed epoch budget, cosine schedule, best validation macro AUROC kept; Kermany at 64 px,
patient-grouped validation split, every seed of the profile), chooses the framing
on **validation** macro-F1 (mean over seeds), and reports every framing on test: macro-F1, normal-class
recall, and the error rate on normal test images by aspect-ratio tercile of the original file (narrow,
middle, wide), the shortcut notebook 05 found. Only the custom CNN, to keep the study within minutes on
a laptop; the rows say so. Output: ``benchmarks/framing.json`` and ``benchmarks/FRAMING.md``.

    python scripts/framing_study.py                 # ~10-20 minutes on 2 cores
    python scripts/framing_study.py --seeds 0       # quicker, one seed
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pneumolib.audits import aspect_ratios, train_share
from pneumolib.data import CLASSES_3, FRAMINGS, full_manifest, load_three_class_splits, scan_kermany
from pneumolib.evaluate import study_run_scores
from pneumolib.loop import describe_config
from pneumolib.profiles import get_profile, profile_hash
from pneumolib.results import write_json, write_text
from pneumolib.train import config_for, train_or_load

ROOT = Path(__file__).resolve().parents[1]
MODEL = "simple_cnn"


def _mean(runs: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def study(seeds: tuple[int, ...]) -> dict:
    cpu = get_profile("cpu")
    rows = {}
    for framing in FRAMINGS:
        prof = dataclasses.replace(cpu, name=f"framing-{framing}", framing=framing, seeds=seeds)
        splits = load_three_class_splits(prof)
        test = splits["test"]
        normal = np.flatnonzero(test.labels.numpy() == 0)
        aspect = aspect_ratios(test.meta["path"].iloc[normal].tolist())
        terciles = pd.qcut(aspect, 3, labels=["narrow", "middle", "wide"])
        per_seed = []
        for seed in seeds:
            t0 = time.perf_counter()
            run = train_or_load("three_class", MODEL, splits, prof, seed, progress=False)
            _, _, pt = run.split_arrays("test")
            wrong = pt[normal].argmax(1) != 0
            per_seed.append(
                dict(
                    **study_run_scores(run, CLASSES_3),
                    normal_error_by_aspect=pd.Series(wrong).groupby(terciles, observed=True).mean().to_dict(),
                    seconds=round(time.perf_counter() - t0, 1),
                )
            )
            print(framing, per_seed[-1], flush=True)
        rows[framing] = dict(
            runs=per_seed,
            **{k: _mean(per_seed, k) for k in ("val_macro_f1", "test_macro_f1", "test_normal_recall")},
            normal_error_by_aspect={
                t: float(np.mean([r["normal_error_by_aspect"][t] for r in per_seed]))
                for t in ("narrow", "middle", "wide")
            },
        )
    chosen = max(rows, key=lambda f: rows[f]["val_macro_f1"])
    share = train_share(scan_kermany(), full_manifest())
    return dict(
        date=time.strftime("%Y-%m-%d"),
        model=MODEL,
        protocol="cpu profile's three-class protocol: "
        + describe_config(config_for(cpu, MODEL, num_classes=3, task="three_class")),
        profile_hash=profile_hash(cpu),
        size=cpu.kermany_size,
        seeds=list(seeds),
        train_share=share,
        chosen_on_validation=chosen,
        framings=rows,
    )


def markdown(result: dict) -> str:
    share = result["train_share"]
    lines = [
        "# Framing study (`scripts/framing_study.py`)",
        "",
        f"Three classes, custom CNN only, Kermany {result['size']} px"
        + (f" ({share:.0%} of the official train folder)" if share else "")
        + f", seeds {', '.join(map(str, result['seeds']))} (mean over seeds), argmax. Measured {result['date']}. "
        + f"Protocol: the {result['protocol']} (`cpu` profile {result.get('profile_hash', '?')}).",
        f"Chosen on validation macro-F1: **{result['chosen_on_validation']}**. "
        "The test columns are reported, never used to choose.",
        "",
        "| framing | val macro-F1 | test macro-F1 | test normal recall | normal test error: narrow / middle / wide |",
        "|---|---|---|---|---|",
    ]
    for f, r in result["framings"].items():
        e = r["normal_error_by_aspect"]
        mark = " (chosen)" if f == result["chosen_on_validation"] else ""
        lines.append(
            f"| {f}{mark} | {r['val_macro_f1']:.3f} | {r['test_macro_f1']:.3f} | {r['test_normal_recall']:.3f} | "
            f"{e['narrow']:.0%} / {e['middle']:.0%} / {e['wide']:.0%} |"
        )
    lines += [
        "",
        "Framings: `crop` centre square (the default), `crop80` centre square of 80% of the short side, "
        "`letterbox` whole image padded with black to a square, `resize` whole image squeezed to a square. "
        "Aspect-ratio terciles are of the original files' width/height among normal test images.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(get_profile("cpu").seeds))
    args = parser.parse_args(argv)
    result = study(tuple(args.seeds))
    write_json(ROOT / "benchmarks" / "framing.json", result)
    write_text(ROOT / "benchmarks" / "FRAMING.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
