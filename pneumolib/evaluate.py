"""From trained runs to the numbers the notebooks, the report and the tests read.

A *results file* is ``results/<profile>/<task>.json``. For each model it stores every seed's
test metrics at threshold 0.5 (comparable with published tables) and at a threshold chosen on
the validation split (max F1), their mean ± std over seeds, and a bootstrap 95% CI of the
seed-averaged test AUROC. Test probabilities of every run are kept in the run folder
(``predictions.csv``) so any metric can be recomputed.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd

from .metrics import _fast_bootstrap_auroc, binary_metrics, format_mean_std, multiclass_metrics, select_threshold, summarize_runs
from .profiles import get_profile, profile_hash
from .results import read_json, results_dir, update_json, write_json
from .train import describe_config

DISPLAY_NAMES = {"simple_cnn": "Custom CNN", "resnet18": "ResNet18", "densenet121": "DenseNet121"}
BINARY_KEYS = ("accuracy", "precision", "recall", "specificity", "f1", "auroc", "average_precision")
MULTI_KEYS = ("accuracy", "macro_f1", "macro_auroc")


def display_name(model_name: str, weights: str) -> str:
    return f"{DISPLAY_NAMES.get(model_name, model_name)} ({weights})"


def binary_run_record(run, threshold_rule: str = "max_f1") -> dict:
    """Metrics of one binary run: at 0.5 and at a threshold chosen on validation only."""
    y_val, _, p_val = run.split_arrays("val")
    y_test, _, p_test = run.split_arrays("test")
    t_val = select_threshold(y_val, p_val, threshold_rule)
    return dict(seed=run.seed, best_epoch=run.info["best_epoch"], epochs_run=run.info["epochs_run"],
                train_time_s=run.info["train_time_s"], img_per_s_train=run.info["img_per_s_train"],
                ms_per_img=run.info["ms_per_img"], val_threshold=t_val, threshold_rule=threshold_rule,
                at_05=binary_metrics(y_test, p_test, 0.5), at_val_threshold=binary_metrics(y_test, p_test, t_val))


def multiclass_run_record(run, classes) -> dict:
    y_test, _, p_test = run.split_arrays("test")
    return dict(seed=run.seed, best_epoch=run.info["best_epoch"], epochs_run=run.info["epochs_run"],
                train_time_s=run.info["train_time_s"], ms_per_img=run.info["ms_per_img"],
                test=multiclass_metrics(y_test, p_test, classes))


def seed_averaged_auroc_ci(runs, n_boot: int = 1000, seed: int = 0) -> list[float]:
    """Bootstrap 95% CI (over test images) of the mean-over-seeds test AUROC.

    All resamples are drawn at once and scored with the exact rank formula of
    :func:`pneumolib.metrics.bootstrap_ci` (equal to ``roc_auc_score``); resamples with one class are skipped.
    """
    y = runs[0].split_arrays("test")[0]
    probs = np.stack([r.split_arrays("test")[2] for r in runs])
    idx = np.random.default_rng(seed).integers(0, len(y), (n_boot, len(y)))
    stats = np.mean([_fast_bootstrap_auroc(y[idx], p[idx]) for p in probs], axis=0)
    stats = stats[~np.isnan(stats)]
    return [float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))] if len(stats) else [float("nan")] * 2


def _meta(profile, dataset: str, splits) -> dict:
    prof = get_profile(profile)
    return dict(profile=prof.name, profile_hash=profile_hash(prof), dataset=dataset,
                image_size=int(splits["test"].images.shape[-1]), seeds=list(prof.seeds),
                n={s: len(d) for s, d in splits.items()},
                class_counts={s: d.class_counts() for s, d in splits.items()},
                updated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def save_binary_results(profile, runs, splits, dataset: str, file: str = "binary", note: str = "") -> dict:
    """Summarise the runs of one model (all seeds) and store them under ``models/<name>-<weights>``."""
    records = [binary_run_record(r) for r in runs]
    first = runs[0]
    entry = dict(model=first.model_name, weights=first.info["weights"],
                 display_name=display_name(first.model_name, first.info["weights"]),
                 parameters=first.info["parameters"], image_size=first.info["image_size"], note=note,
                 protocol=_protocol(first), runs=records,
                 summary=dict(at_05=summarize_runs([r["at_05"] for r in records], BINARY_KEYS),
                              at_val_threshold=summarize_runs([r["at_val_threshold"] for r in records], BINARY_KEYS),
                              ms_per_img=summarize_runs([{"ms": r["ms_per_img"]} for r in records])["ms"],
                              train_time_s=float(sum(r["train_time_s"] for r in records))),
                 auroc_ci95=seed_averaged_auroc_ci(runs))
    return _store(profile, file, dataset, splits, f"{first.model_name}-{first.info['weights']}", entry)


def save_multiclass_results(profile, runs, splits, dataset: str, file: str = "three_class", extra: dict | None = None) -> dict:
    classes = splits["test"].classes
    records = [multiclass_run_record(r, classes) for r in runs]
    first = runs[0]
    per_class = {c: summarize_runs([r["test"]["per_class"][c] for r in records], ("precision", "recall", "f1"))
                 for c in classes}
    entry = dict(model=first.model_name, weights=first.info["weights"],
                 display_name=display_name(first.model_name, first.info["weights"]),
                 parameters=first.info["parameters"], image_size=first.info["image_size"],
                 protocol=_protocol(first), runs=records,
                 summary=dict(test=summarize_runs([r["test"] for r in records], MULTI_KEYS), per_class=per_class,
                              ms_per_img=summarize_runs([{"ms": r["ms_per_img"]} for r in records])["ms"],
                              train_time_s=float(sum(r["train_time_s"] for r in records))), **(extra or {}))
    return _store(profile, file, dataset, splits, f"{first.model_name}-{first.info['weights']}", entry)


def _protocol(run) -> dict:
    """How the runs of one model were trained, read from the run itself (not from today's profile)."""
    config = run.info["config"]
    return dict(max_epochs=config["max_epochs"], text=describe_config(config, epochs=False), config=config)


def _store(profile, file, dataset, splits, key, entry) -> dict:
    path = results_dir(get_profile(profile).name) / f"{file}.json"
    data = read_json(path) if path.exists() else {}
    data["meta"] = _meta(profile, dataset, splits)
    data.setdefault("models", {})[key] = entry
    write_json(path, data)  # one atomic write: other keys (e.g. "skipped") are kept
    return entry


def record_skip(profile, file: str, model_key: str, reason: str) -> None:
    """Note in the results file that an arm was skipped, and why (e.g. ImageNet weights absent)."""
    path = results_dir(get_profile(profile).name) / f"{file}.json"
    skipped = (read_json(path).get("skipped", {}) if path.exists() else {})
    skipped[model_key] = reason
    update_json(path, "skipped", skipped)


def load_results(profile, file: str, notebook: str) -> dict:
    """Read ``results/<profile>/<file>.json`` or fail saying which notebook writes it."""
    path = results_dir(get_profile(profile).name) / f"{file}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run notebook {notebook} with profile {get_profile(profile).name!r} first "
                                f"(python -m pneumolib.run --profile {get_profile(profile).name} --only {notebook[:2]}).")
    return read_json(path)


def results_table(results: dict, threshold: str = "at_05", keys=BINARY_KEYS, digits: int = 3) -> pd.DataFrame:
    """The deck's table: one row per model, ``mean ± std`` over seeds for each metric."""
    rows = {}
    for entry in results["models"].values():
        summ = entry["summary"][threshold] if threshold in entry["summary"] else entry["summary"]["test"]
        row = {k: format_mean_std(summ[k]["mean"], summ[k]["std"], digits) for k in keys if k in summ}
        ms = entry["summary"]["ms_per_img"]
        row["ms/img"] = format_mean_std(ms["mean"], ms["std"], 2)
        row["seeds"] = len(entry["runs"])
        rows[entry["display_name"]] = row
    return pd.DataFrame(rows).T
