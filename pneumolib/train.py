"""The run cache: one trained (task, model, seed, profile) per folder, trained once, then loaded.

:func:`train_or_load` keeps each run in its own folder under ``build/runs``. A finished run is
loaded in seconds instead of retrained; an interrupted one continues from its last completed epoch
(or not at all, if early stopping had already decided to stop). Every file is written atomically
and checkpoints are loaded with ``weights_only=True``. :func:`config_for` builds a run's
:class:`~pneumolib.loop.TrainConfig` from the profile; :func:`train_seeds` trains or loads a list
of seeds.

Validated. The finished-run marker ``done.json`` records the byte size, sha256 and row count of
``predictions.csv``, ``history.csv`` and ``best.pt``; a file that does not match, a damaged marker
or ``last.pt``, or (under an older marker without checksums) a CSV with the wrong rows is set aside
as ``<name>.corrupt-<time>`` with a note naming it, and the run is retrained. Nothing is computed
from a partial file.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import ImageSet, load_binary_splits, load_three_class_splits
from .loop import (
    TrainConfig,
    fit,
    latency_ms,
    logits_to_proba,
    precision_info,
    predict_logits,
    resolve_device,
    same_recipe,
    seed_everything,
    use_bf16,
)
from .metrics import decision_score
from .models import MODEL_NAMES, Classifier, build_model, weights_source
from .profiles import PROFILES, Profile, get_profile, profile_hash, require_profile
from .results import (
    CorruptArtefactError,
    build_dir,
    file_record,
    load_checkpoint,
    locked,
    read_csv,
    read_json_object,
    set_aside,
    verify_file,
    write_json,
    write_text,
)
from .transforms import Augment


# --------------------------------------------------------------------------- runs
@dataclass
class Run:
    """One trained (task, model, seed, profile): the model, its history and saved predictions."""

    task: str
    model_name: str
    seed: int
    profile: str
    model: Classifier
    history: pd.DataFrame
    predictions: pd.DataFrame  # columns: split, index, y_true, logit(s) ..., prob(s) ...
    info: dict
    loaded: bool

    @property
    def label(self) -> str:
        return f"{self.model_name} ({self.info['weights']}) seed {self.seed}"

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(y_true, logits, probabilities)`` for ``split`` ("val" or "test")."""
        df = self.predictions[self.predictions["split"] == split]
        logit_cols = [c for c in df.columns if c.startswith("logit")]
        prob_cols = [c for c in df.columns if c.startswith("prob")]
        squeeze = (lambda a: a[:, 0]) if len(logit_cols) == 1 else (lambda a: a)
        return df["y_true"].to_numpy(), squeeze(df[logit_cols].to_numpy()), squeeze(df[prob_cols].to_numpy())


def _predictions_frame(
    model, splits: dict[str, ImageSet], bf16: bool, device, tta: str = "none"
) -> tuple[pd.DataFrame, float, dict]:
    """Predictions on val and test, the test throughput in ms per image at batch 32 (without TTA), and what
    test-time augmentation did: ``{"mode", "used", "val_plain", "val_hflip"}`` (scores only for ``"auto"``)."""
    logits, ms_per_img = {}, float("nan")
    for split in ("val", "test"):
        t0 = time.perf_counter()
        logits[split] = predict_logits(model, splits[split], batch_size=32, bf16=bf16, device=device)
        if split == "test":
            ms_per_img = 1000 * (time.perf_counter() - t0) / max(len(splits[split]), 1)
    tta_info = {"mode": tta, "used": tta == "hflip"}
    if tta != "none":
        flipped = {
            s: predict_logits(model, splits[s], batch_size=32, bf16=bf16, device=device, hflip=True) for s in logits
        }
        if tta == "auto":
            y = splits["val"].labels.numpy()
            plain = decision_score(y, logits_to_proba(logits["val"]))
            mirrored = decision_score(y, logits_to_proba(flipped["val"]))
            tta_info.update(used=bool(mirrored > plain), val_plain=plain, val_hflip=mirrored)
        if tta_info["used"]:
            logits = flipped
    frames = []
    for split in ("val", "test"):
        probs = logits_to_proba(logits[split])
        df = pd.DataFrame(
            {"split": split, "index": np.arange(len(logits[split])), "y_true": splits[split].labels.numpy()}
        )
        if logits[split].ndim == 1:
            df["logit"], df["prob"] = logits[split], probs
        else:
            for k in range(logits[split].shape[1]):
                df[f"logit_{k}"] = logits[split][:, k]
            for k in range(logits[split].shape[1]):
                df[f"prob_{k}"] = probs[:, k]
        frames.append(df)
    return pd.concat(frames, ignore_index=True), ms_per_img, tta_info


MARKER_KEYS = ("config_key", "data", "weights", "best_epoch", "epochs_run", "train_time_s", "ms_per_img")


def _check_run_tables(
    run_dir: Path, history: pd.DataFrame, preds: pd.DataFrame, splits: dict[str, ImageSet], epochs_run: int
) -> None:
    """Row counts and labels of a finished run's CSVs against its marker and the data: catches a
    truncated or foreign file even under an old marker without checksums."""
    if len(history) != epochs_run or history["epoch"].tolist() != list(range(1, epochs_run + 1)):
        raise CorruptArtefactError(
            run_dir / "history.csv",
            f"has {len(history)} epoch rows, but the run trained {epochs_run} epochs (truncated or changed)",
        )
    for split in ("val", "test"):
        part = preds[preds["split"] == split]
        labels = splits[split].labels.numpy()
        if len(part) != len(labels) or not (
            np.array_equal(part["index"], np.arange(len(labels))) and np.array_equal(part["y_true"], labels)
        ):
            raise CorruptArtefactError(
                run_dir / "predictions.csv",
                f"has {len(part)} {split} rows for the "
                f"{len(labels)} {split} images, or other labels (truncated or changed)",
            )
    if len(preds) != sum(len(splits[s]) for s in ("val", "test")):
        raise CorruptArtefactError(run_dir / "predictions.csv", "has rows of splits other than val and test")


def _load_finished(
    run_dir: Path, model: Classifier, splits: dict[str, ImageSet], config: TrainConfig, fingerprint: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict] | None:
    """``(history, predictions, info)`` of the finished run in ``run_dir``, with the best weights loaded
    into ``model``; None if it must be retrained: another config or data, an older model definition,
    or a damaged file (set aside with a note naming it). A run that differs from ``config`` only in its
    precision (bf16 / channels_last, chosen per machine) is the same recipe and is loaded: a run trained
    with native bf16 and shared with an fp32 machine is not retrained there; its marker says how it was trained.

    Every file is checked against the sha256 and row count ``done.json`` records for it; a marker of
    an earlier version (no ``files``) gets the checks that need no checksum: a readable checkpoint,
    complete CSVs, one prediction per val/test image with the right label, one history row per epoch.
    """
    done_path = run_dir / "done.json"
    try:
        info = read_json_object(done_path, fix="Delete it and rerun: the run is retrained.")
        missing = [k for k in MARKER_KEYS if k not in info]
        if missing:
            raise CorruptArtefactError(done_path, f"is not a finished-run marker (lacks {', '.join(missing)})")
        if info["data"] != fingerprint or not (
            info["config_key"] == config.key() or same_recipe(info.get("config"), config)
        ):
            return None
        for name, record in (info.get("files") or {}).items():
            verify_file(run_dir / name, record)
        model.load_state_dict(load_checkpoint(run_dir / "best.pt"))
        history = read_csv(run_dir / "history.csv", ("epoch", "train_loss", "val_loss"))
        preds = read_csv(run_dir / "predictions.csv", ("split", "index", "y_true"))
        _check_run_tables(run_dir, history, preds, splits, info["epochs_run"])
    except CorruptArtefactError as err:
        set_aside(err.path, f"{err.problem}; the run is retrained")
        return None
    except (RuntimeError, OSError) as err:  # checkpoint of an older model definition, or a file missing
        print(
            f"{run_dir}: cannot load the finished run ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
            "retraining."
        )
        return None
    return history, preds, info


def train_or_load(
    task: str,
    model_name: str,
    splits: dict[str, ImageSet],
    profile: Profile,
    seed: int,
    config: TrainConfig | None = None,
    image_size: int | None = None,
    weights: str | None = None,
    progress: bool = True,
    retrain: bool = False,
) -> Run:
    """Train ``model_name`` on ``splits["train"]`` (early stopping on ``splits["val"]``) or load the
    finished run, then return it with predictions on val and test.

    The run folder is ``build/runs/<profile>/<task>/<model>-<weights>-seed<seed>``. A finished run is
    reused only if its training config and data fingerprint match; otherwise it is retrained. The run
    folder is locked while a process trains or loads it, so that several processes (one per GPU, a job
    array) can fill one cache. ``weights`` defaults to what the profile gives the model
    (:meth:`~pneumolib.profiles.Profile.weights_for`). The returned model is on the CPU.
    """
    prof = require_profile(profile)
    weights = weights or prof.weights_for(model_name)
    num_outputs = 1 if len(splits["train"].classes) == 2 else len(splits["train"].classes)
    config = dataclasses.replace(
        config or config_for(prof, model_name, num_classes=len(splits["train"].classes), task=task), seed=seed
    )
    image_size = image_size or splits["train"].images.shape[-1]
    fingerprint = hashlib.sha256(
        b"".join(
            splits[s].images.numpy().tobytes()[::97] + splits[s].labels.numpy().tobytes()
            for s in ("train", "val", "test")
        )
    ).hexdigest()[:12]
    seed_everything(seed)
    model = build_model(model_name, num_outputs, weights, image_size)  # raises first if weights are missing
    run_dir = build_dir("runs", prof.name, task, f"{model_name}-{weights}-seed{seed}")
    with locked(run_dir / "done.json"):  # one process per run folder; others wait, then load it
        done_path = run_dir / "done.json"
        if weights == "imagenet" and model_name != "simple_cnn" and config.head_epochs == 0:
            config = dataclasses.replace(config, head_epochs=prof.head_epochs)
        finished = done_path.exists()
        if finished and not retrain:
            loaded = _load_finished(run_dir, model, splits, config, fingerprint)
            if loaded is not None:
                return Run(task, model_name, seed, prof.name, model, *loaded, loaded=True)
            seed_everything(seed)  # the failed load may have changed the weights: start as a fresh run does
            model = build_model(model_name, num_outputs, weights, image_size)
        if retrain or finished:
            for f in ("last.pt", "best.pt", "done.json"):
                (run_dir / f).unlink(missing_ok=True)
        device = resolve_device(prof.device)  # only training needs the profile's device; loading a run does not
        if progress:  # never silently: switching a notebook to cpu can start a long training
            print(
                f"{model_name} ({weights}) seed {seed}, {task}: no finished run of profile {prof.name!r} to load; "
                f"training up to {config.max_epochs} epochs. (Trained runs can be imported instead: "
                "python -m pneumolib.runs import FILE_OR_URL)",
                flush=True,
            )
        result = fit(model, splits["train"], splits["val"], config, run_dir, progress, device=device)
        preds, ms, tta_info = _predictions_frame(result.model, splits, config.bf16, device, config.tta)
        latency = latency_ms(result.model, splits["test"], config.bf16, device)
        result.model.to("cpu")
        info = dict(
            task=task,
            model=model_name,
            seed=seed,
            profile=prof.name,
            profile_hash=profile_hash(prof),
            weights=model.weights,
            weights_source=weights_source(weights),
            image_size=image_size,
            config=dataclasses.asdict(config),
            config_key=config.key(),
            data=fingerprint,
            best_epoch=result.best_epoch,
            epochs_run=len(result.history),
            train_time_s=result.train_time_s,
            ms_per_img=ms,
            tta=tta_info,
            latency_ms_b1=latency,
            device=str(device),
            **precision_info(),
            train_images=len(splits["train"]),
            img_per_s_train=len(splits["train"]) * len(result.history) / max(result.train_time_s, 1e-9),
            parameters=sum(p.numel() for p in model.parameters()),
        )
        write_text(run_dir / "history.csv", result.history.to_csv(index=False))
        write_text(run_dir / "predictions.csv", preds.to_csv(index=False))
        info["files"] = {
            "predictions.csv": file_record(run_dir / "predictions.csv", len(preds)),
            "history.csv": file_record(run_dir / "history.csv", len(result.history)),
            **({"best.pt": file_record(run_dir / "best.pt")} if (run_dir / "best.pt").exists() else {}),
        }
        write_json(done_path, info)  # written last: its presence means the run is complete
        (run_dir / "last.pt").unlink(missing_ok=True)
        return Run(task, model_name, seed, prof.name, result.model, result.history, preds, info, loaded=False)


def config_for(
    profile: Profile, model_name: str, seed: int = 0, num_classes: int = 2, task: str | None = None, **overrides
) -> TrainConfig:
    """The :class:`TrainConfig` a profile prescribes for ``model_name`` (epochs, loss, precision).

    ``task`` ("binary", "three_class", ...) applies the profile's ``protocol_by_task`` changes for
    that task; keyword ``overrides`` win over everything.
    """
    prof = require_profile(profile)
    task_changes = dict(prof.protocol_by_task.get(task, {})) if task else {}
    epochs = {**prof.epochs_by_model, **task_changes.pop("epochs_by_model", {})}
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = set(task_changes) - set(fields)
    if unknown:
        raise ValueError(
            f"profile {prof.name!r}: protocol_by_task[{task!r}] sets {sorted(unknown)}, which are not "
            f"TrainConfig fields; use {fields} or 'epochs_by_model'"
        )
    base = TrainConfig(
        lr=prof.lr,
        batch_size=prof.batch_size,
        max_epochs=epochs.get(model_name, prof.max_epochs),
        patience=prof.patience,
        loss=prof.loss if num_classes == 2 else prof.multiclass_loss,
        # channels_last stays off for DenseNet121 by default because the three-class runs were
        # trained so (an early measurement under load said slower); benchmarks/BENCHMARK.md now
        # measures it 1.27x faster, and the cpu profile turns it on for the binary task
        bf16=use_bf16(prof.bf16, prof.device),  # only where the machine does bf16 natively; else fp32
        channels_last=prof.bf16 and model_name != "densenet121",
        augment=Augment(**prof.augment),
        seed=seed,
    )
    return dataclasses.replace(base, **{**task_changes, **overrides})


#: set by the notebook runner: a file to which :func:`train_seeds` appends one JSON line per run
#: (trained or loaded, and its recorded training seconds), so the runner can tell first runs from reruns
RUN_LOG_ENV = "PNEUMOLAB_RUN_LOG"


def log_run(run: Run) -> None:
    """Append ``{"run", "loaded", "train_time_s"}`` to the runner's log (no-op outside the runner)."""
    path = os.environ.get(RUN_LOG_ENV)
    if path:
        line = {"run": run.label, "loaded": bool(run.loaded), "train_time_s": float(run.info["train_time_s"])}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def read_run_log(path) -> dict:
    """Summary of a runner log: runs trained/loaded and their training seconds (zeros if no log)."""
    out = {"runs_trained": 0, "runs_loaded": 0, "train_s_trained": 0.0, "train_s_loaded": 0.0}
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for raw in f:
            if raw.strip():
                entry = json.loads(raw)
                kind = "loaded" if entry["loaded"] else "trained"
                out[f"runs_{kind}"] += 1
                out[f"train_s_{kind}"] = round(out[f"train_s_{kind}"] + entry["train_time_s"], 1)
    return out


def train_seeds(
    task: str, model_name: str, splits: dict[str, ImageSet], profile: Profile, progress: bool = True, **kwargs
) -> list[Run]:
    """:func:`train_or_load` for every seed of the profile; prints one line per run."""
    prof = require_profile(profile)
    runs = []
    for seed in prof.seeds:
        run = train_or_load(task, model_name, splits, prof, seed, progress=progress, **kwargs)
        how = "loaded finished run" if run.loaded else f"trained {run.info['epochs_run']} epochs"
        print(f"{run.label}: {how} (best epoch {run.info['best_epoch']}, {run.info['train_time_s']:.0f} s of training)")
        if run.info.get("weights_source", "").startswith("stand-in"):
            print("  WARNING: started from STAND-IN weights (random init, not ImageNet): its numbers mean nothing")
        log_run(run)
        runs.append(run)
    return runs


# --------------------------------------------------------------------------- one run per command
CLI_TASKS = ("binary", "three_class")


def main(argv: list[str] | None = None) -> int:
    """``python -m pneumolib.train --task binary --model resnet18 --seed 0 --profile gpu``: train (or load)
    one run into the shared run cache, so that a scheduler can spread the grid over GPUs or machines;
    the notebooks then load the finished runs."""
    parser = argparse.ArgumentParser(prog="python -m pneumolib.train", description=main.__doc__)
    parser.add_argument("--task", required=True, choices=CLI_TASKS)
    parser.add_argument("--model", required=True, choices=MODEL_NAMES)
    parser.add_argument("--seed", type=int, action="append", help="repeatable; default: every seed of the profile")
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES))
    parser.add_argument("--retrain", action="store_true", help="train again even if a finished run exists")
    args = parser.parse_args(argv)
    prof = get_profile(args.profile)
    unknown = sorted(set(args.seed or ()) - set(prof.seeds))
    if unknown:
        parser.error(f"seed(s) {unknown} are not seeds of profile {prof.name!r} {list(prof.seeds)}: the notebooks "
                     "would never load them")  # fmt: skip
    splits = load_binary_splits(prof) if args.task == "binary" else load_three_class_splits(prof)
    for seed in args.seed or prof.seeds:
        run = train_or_load(args.task, args.model, splits, prof, seed, retrain=args.retrain)
        how = "loaded (already finished)" if run.loaded else f"trained {run.info['epochs_run']} epochs"
        print(f"{prof.name} {args.task} {run.label}: {how}, best epoch {run.info['best_epoch']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
