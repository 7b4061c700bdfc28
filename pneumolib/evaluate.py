"""From trained runs to the entries stored in the results files.

For each model, :func:`binary_model_entry` keeps every seed's test metrics at threshold 0.5
(comparable with published tables) and at a threshold chosen on the validation split (max F1),
their mean ± std over seeds, and a bootstrap 95% CI of the seed-averaged test AUROC;
:func:`multiclass_model_entry` does the same for K classes. The entries are written with
:func:`pneumolib.schema.add_model`. Test probabilities of every run stay in the run folder
(``predictions.csv``) so any metric can be recomputed.
"""

import numpy as np
import pandas as pd

from .loop import describe_config
from .metrics import (
    BINARY_KEYS,
    MULTI_KEYS,
    binary_metrics,
    fast_bootstrap_auroc,
    format_mean_std,
    multiclass_metrics,
    select_threshold,
    summarize_runs,
)
from .models import display_name


def binary_run_record(run, threshold_rule: str = "max_f1") -> dict:
    """Metrics of one binary run: at 0.5 and at a threshold chosen on validation only."""
    y_val, _, p_val = run.split_arrays("val")
    y_test, _, p_test = run.split_arrays("test")
    t_val = select_threshold(y_val, p_val, threshold_rule)
    return dict(
        **_run_fields(run, "img_per_s_train"),
        val_threshold=t_val,
        threshold_rule=threshold_rule,
        at_05=binary_metrics(y_test, p_test, 0.5),
        at_val_threshold=binary_metrics(y_test, p_test, t_val),
    )


def multiclass_run_record(run, classes) -> dict:
    y_test, _, p_test = run.split_arrays("test")
    return dict(**_run_fields(run), test=multiclass_metrics(y_test, p_test, classes))


def tta_table(runs) -> pd.DataFrame:
    """What test-time augmentation did in each run (``tta`` in its ``done.json``): one row per run with the mode,
    the validation metric without and with the mirror image (``tta="auto"`` only), and whether the stored
    predictions are the mirrored ones. Runs trained before the option existed show mode ``"none"``."""
    rows = []
    for run in runs:
        tta = run.info.get("tta") or {"mode": "none", "used": False}
        rows.append(
            {
                "model": display_name(run.model_name, run.info["weights"]),
                "seed": run.seed,
                "mode": tta["mode"],
                "val (plain)": tta.get("val_plain", np.nan),
                "val (hflip)": tta.get("val_hflip", np.nan),
                "hflip kept": bool(tta["used"]),
            }
        )
    return pd.DataFrame(rows, columns=["model", "seed", "mode", "val (plain)", "val (hflip)", "hflip kept"])


def study_run_scores(run, classes) -> dict:
    """One multi-class run as a study row (``scripts/framing_study.py``, ``scripts/resolution_study.py``): seed,
    validation and test macro-F1, test recall of the first class (normal), and the kept / trained epochs."""
    y_val, _, p_val = run.split_arrays("val")
    y_test, _, p_test = run.split_arrays("test")
    val, test = multiclass_metrics(y_val, p_val, classes), multiclass_metrics(y_test, p_test, classes)
    return dict(
        seed=run.seed,
        val_macro_f1=val["macro_f1"],
        test_macro_f1=test["macro_f1"],
        test_normal_recall=test["per_class"][classes[0]]["recall"],
        best_epoch=run.info["best_epoch"],
        epochs_run=run.info["epochs_run"],
    )


def _run_fields(run, *extra: str) -> dict:
    """How one run was trained, from its marker: seed, epochs, time, speed (plus ``extra`` fields), and the
    latency at batch 1, weights source and device for runs that recorded them (older runs have none)."""
    keys = ("best_epoch", "epochs_run", "train_time_s", *extra, "ms_per_img")
    optional = ("latency_ms_b1", "weights_source", "device")
    return {"seed": run.seed, **{k: run.info[k] for k in keys}, **{k: run.info[k] for k in optional if k in run.info}}


def _speed_summary(records: list[dict]) -> dict:
    """``ms_per_img`` (throughput at batch 32) and, when every run has it, ``latency_ms_b1`` (batch 1)."""
    out = {"ms_per_img": summarize_runs([{"ms": r["ms_per_img"]} for r in records])["ms"]}
    if all("latency_ms_b1" in r for r in records):
        out["latency_ms_b1"] = summarize_runs([{"ms": r["latency_ms_b1"]} for r in records])["ms"]
    return out


def seed_averaged_auroc_ci(runs, n_boot: int = 1000, seed: int = 0) -> list[float]:
    """Bootstrap 95% CI (over test images) of the mean-over-seeds test AUROC.

    All resamples are drawn at once and scored with the exact rank formula of
    :func:`pneumolib.metrics.bootstrap_ci` (equal to ``roc_auc_score``); resamples with one class are skipped.
    """
    y = runs[0].split_arrays("test")[0]
    probs = np.stack([r.split_arrays("test")[2] for r in runs])
    idx = np.random.default_rng(seed).integers(0, len(y), (n_boot, len(y)))
    stats = np.mean([fast_bootstrap_auroc(y[idx], p[idx]) for p in probs], axis=0)
    stats = stats[~np.isnan(stats)]
    return [float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))] if len(stats) else [float("nan")] * 2


def binary_model_entry(runs, note: str = "") -> dict:
    """One model's entry (all seeds) for ``binary.json``: per-seed records, mean ± std, AUROC CI."""
    records = [binary_run_record(r) for r in runs]
    first = runs[0]
    return dict(
        model=first.model_name,
        weights=first.info["weights"],
        display_name=display_name(first.model_name, first.info["weights"]),
        parameters=first.info["parameters"],
        image_size=first.info["image_size"],
        note=note,
        protocol=run_protocol(first),
        runs=records,
        summary=dict(
            at_05=summarize_runs([r["at_05"] for r in records], BINARY_KEYS),
            at_val_threshold=summarize_runs([r["at_val_threshold"] for r in records], BINARY_KEYS),
            **_speed_summary(records),
            train_time_s=float(sum(r["train_time_s"] for r in records)),
        ),
        auroc_ci95=seed_averaged_auroc_ci(runs),
    )


def multiclass_model_entry(runs, classes) -> dict:
    """One model's entry (all seeds) for ``three_class.json``: per-seed records, mean ± std, per class."""
    records = [multiclass_run_record(r, classes) for r in runs]
    first = runs[0]
    per_class = {
        c: summarize_runs([r["test"]["per_class"][c] for r in records], ("precision", "recall", "f1")) for c in classes
    }
    return dict(
        model=first.model_name,
        weights=first.info["weights"],
        display_name=display_name(first.model_name, first.info["weights"]),
        parameters=first.info["parameters"],
        image_size=first.info["image_size"],
        protocol=run_protocol(first),
        runs=records,
        summary=dict(
            test=summarize_runs([r["test"] for r in records], MULTI_KEYS),
            per_class=per_class,
            **_speed_summary(records),
            train_time_s=float(sum(r["train_time_s"] for r in records)),
        ),
    )


def run_protocol(run) -> dict:
    """How the runs of one model were trained, read from the run itself (not from today's profile)."""
    config = run.info["config"]
    return dict(max_epochs=config["max_epochs"], text=describe_config(config, epochs=False), config=config)


def results_table(results: dict, threshold: str = "at_05", keys=BINARY_KEYS, digits: int = 3) -> pd.DataFrame:
    """The deck's table: one row per model, ``mean ± std`` over seeds for each metric."""
    rows = {}
    for entry in results["models"].values():
        summ = entry["summary"][threshold] if threshold in entry["summary"] else entry["summary"]["test"]
        row = {k: format_mean_std(summ[k]["mean"], summ[k]["std"], digits) for k in keys if k in summ}
        ms = entry["summary"]["ms_per_img"]
        row["ms/img (batch 32)"] = format_mean_std(ms["mean"], ms["std"], 2)
        if "latency_ms_b1" in entry["summary"]:
            lat = entry["summary"]["latency_ms_b1"]
            row["latency ms (batch 1)"] = format_mean_std(lat["mean"], lat["std"], 2)
        row["seeds"] = len(entry["runs"])
        rows[entry["display_name"]] = row
    return pd.DataFrame(rows).T
