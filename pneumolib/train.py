"""Training with the seeds' protocol, resumable runs, and predictions for evaluation.

Protocol (``TrainConfig`` defaults): Adam lr 1e-4, ``ReduceLROnPlateau`` (factor 0.5, patience 3)
on the validation loss, batch 32, early stopping with patience 5 on the validation loss, at most
30 epochs. With ImageNet weights, two-phase transfer: ``head_epochs`` with the backbone frozen,
then full fine-tuning.

Resumable. :func:`train_or_load` keeps each (task, model, seed, profile) run in its own folder
under ``build/runs``. A finished run is loaded in seconds instead of retrained; an interrupted
one continues from its last completed epoch. Every file is written atomically and checkpoints
are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageSet
from .models import Classifier, build_model
from .results import build_dir, load_checkpoint, read_json, save_checkpoint, write_json, write_text
from .transforms import NO_AUGMENT, Augment


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 5  # early stopping on validation loss
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    head_epochs: int = 0  # > 0 only for pretrained backbones (two-phase transfer)
    loss: str = "bce"  # "bce" | "weighted_bce" | "focal" (binary); "ce" | "weighted_ce" (multiclass)
    focal_gamma: float = 2.0
    augment: Augment = field(default_factory=Augment)
    bf16: bool = False  # bfloat16 autocast (CPU): faster on CPUs with AVX-512 BF16 / AMX
    channels_last: bool = False
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:12]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU runs are then bit-for-bit repeatable)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- losses
def make_loss(name: str, train_labels: torch.Tensor, num_outputs: int, gamma: float = 2.0):
    """Loss function ``f(logits, labels)``. Weighted variants use inverse class frequency."""
    counts = torch.bincount(train_labels, minlength=max(2, num_outputs)).float().clamp(min=1)
    if num_outputs == 1:
        pos_weight = counts[0] / counts[1] if name == "weighted_bce" else None
        if name in ("bce", "weighted_bce"):
            return lambda logits, y: F.binary_cross_entropy_with_logits(logits.squeeze(1), y.float(), pos_weight=pos_weight)
        if name == "focal":
            def focal(logits, y):
                logits, y = logits.squeeze(1), y.float()
                bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
                p_t = torch.exp(-bce)
                return ((1 - p_t) ** gamma * bce).mean()
            return focal
    else:
        weight = counts.sum() / (len(counts) * counts) if name == "weighted_ce" else None
        if name in ("ce", "weighted_ce"):
            return lambda logits, y: F.cross_entropy(logits, y, weight=weight)
    raise ValueError(f"loss {name!r} does not fit a model with {num_outputs} output(s): binary takes "
                     "'bce', 'weighted_bce' or 'focal'; multiclass 'ce' or 'weighted_ce'")


# --------------------------------------------------------------------------- batches
def iterate_batches(data: ImageSet, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
    """Yield ``(x, y)`` with ``x`` float ``(B, 1, H, W)`` in [0, 1]; images stay uint8 until here."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield data.images[idx].unsqueeze(1).float().div_(255), data.labels[idx]


@torch.no_grad()
def predict_logits(model: nn.Module, data: ImageSet, batch_size: int = 128, bf16: bool = False) -> np.ndarray:
    """Logits for every image of ``data``: shape ``(N,)`` for one output, else ``(N, C)``."""
    model.eval()
    outs = []
    for x, _ in iterate_batches(data, batch_size):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outs.append(model(x).float())
    logits = torch.cat(outs).numpy() if outs else np.zeros((0, 1), dtype=np.float32)
    return logits[:, 0] if logits.shape[1] == 1 else logits


def logits_to_proba(logits: np.ndarray) -> np.ndarray:
    """Sigmoid for binary ``(N,)`` logits, softmax for ``(N, C)``."""
    t = torch.as_tensor(logits, dtype=torch.float64)
    return (torch.sigmoid(t) if t.ndim == 1 else torch.softmax(t, 1)).numpy()


# --------------------------------------------------------------------------- fit
@dataclass
class FitResult:
    model: Classifier
    history: pd.DataFrame
    best_epoch: int
    train_time_s: float
    resumed: bool = False


def _evaluate_loss(model, data, loss_fn, config) -> tuple[float, float]:
    """Mean loss and accuracy on ``data`` (no augmentation)."""
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in iterate_batches(data, 256):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits = model(x).float()
            total += loss_fn(logits, y).item() * len(y)
            pred = (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)
            correct += int((pred == y).sum())
            n += len(y)
    return total / max(n, 1), correct / max(n, 1)


def fit(model: Classifier, train: ImageSet, val: ImageSet, config: TrainConfig, run_dir: Path | None = None,
        progress: bool = True) -> FitResult:
    """Train ``model`` with early stopping on ``val``; resumes from ``run_dir/last.pt`` if present.

    After each epoch the full training state is checkpointed (atomically) to ``run_dir/last.pt``
    and the best weights so far to ``run_dir/best.pt``; on return ``model`` holds the best weights.
    """
    from tqdm.auto import tqdm

    loss_fn = make_loss(config.loss, train.labels, model.num_outputs, config.focal_gamma)
    generator = torch.Generator().manual_seed(config.seed)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.plateau_factor,
                                                           patience=config.plateau_patience)
    history: list[dict] = []
    best = {"loss": float("inf"), "epoch": -1, "state": None}
    start_epoch, elapsed = 0, 0.0
    last_path = run_dir / "last.pt" if run_dir else None
    if last_path is not None and last_path.exists():
        state = load_checkpoint(last_path)
        if state.get("config_key") == config.key():
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
            history, start_epoch, elapsed = state["history"], state["epoch"] + 1, state["elapsed"]
            best_state = load_checkpoint(run_dir / "best.pt") if state["best_epoch"] > 0 else None
            best = {"loss": state["best_loss"], "epoch": state["best_epoch"], "state": best_state}
    bar = tqdm(range(start_epoch, config.max_epochs), desc=f"{model.name} seed {config.seed}",
               disable=not progress, initial=start_epoch, total=config.max_epochs, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        frozen = epoch < config.head_epochs
        model.set_backbone_trainable(not frozen)
        model.train()
        total, n = 0.0, 0
        for x, y in iterate_batches(train, config.batch_size, shuffle=True, generator=generator):
            x = config.augment(x, generator)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits = model(x).float()
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            n += len(y)
        val_loss, val_acc = _evaluate_loss(model, val, loss_fn, config)
        if not frozen:
            scheduler.step(val_loss)
        elapsed += time.perf_counter() - t0
        history.append(dict(epoch=epoch + 1, phase="head" if frozen else "full", train_loss=total / max(n, 1),
                            val_loss=val_loss, val_accuracy=val_acc, lr=optimizer.param_groups[0]["lr"],
                            seconds=time.perf_counter() - t0))
        if val_loss < best["loss"]:
            best = {"loss": val_loss, "epoch": epoch + 1,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            if run_dir:
                save_checkpoint(run_dir / "best.pt", best["state"])
        bar.set_postfix(train_loss=f"{history[-1]['train_loss']:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        stop = epoch + 1 - best["epoch"] >= config.patience and epoch >= config.head_epochs
        if last_path is not None:
            save_checkpoint(last_path, dict(config_key=config.key(), model=model.state_dict(),
                                            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                            generator=generator.get_state(), torch_rng=torch.get_rng_state(),
                                            history=history, epoch=epoch,
                                            elapsed=elapsed, best_loss=best["loss"], best_epoch=best["epoch"]))
        if stop:
            break
    bar.close()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    return FitResult(model, pd.DataFrame(history), best["epoch"], elapsed)


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


def _predictions_frame(model, splits: dict[str, ImageSet], bf16: bool) -> tuple[pd.DataFrame, float]:
    frames, ms_per_img = [], float("nan")
    for split in ("val", "test"):
        t0 = time.perf_counter()
        logits = predict_logits(model, splits[split], batch_size=32, bf16=bf16)
        if split == "test":
            ms_per_img = 1000 * (time.perf_counter() - t0) / max(len(splits[split]), 1)
        probs = logits_to_proba(logits)
        df = pd.DataFrame({"split": split, "index": np.arange(len(logits)), "y_true": splits[split].labels.numpy()})
        if logits.ndim == 1:
            df["logit"], df["prob"] = logits, probs
        else:
            for k in range(logits.shape[1]):
                df[f"logit_{k}"] = logits[:, k]
            for k in range(logits.shape[1]):
                df[f"prob_{k}"] = probs[:, k]
        frames.append(df)
    return pd.concat(frames, ignore_index=True), ms_per_img


def train_or_load(task: str, model_name: str, splits: dict[str, ImageSet], profile, seed: int,
                  config: TrainConfig | None = None, image_size: int | None = None, weights: str | None = None,
                  progress: bool = True, retrain: bool = False) -> Run:
    """Train ``model_name`` on ``splits["train"]`` (early stopping on ``splits["val"]``) or load the
    finished run, then return it with predictions on val and test.

    The run folder is ``build/runs/<profile>/<task>/<model>-<weights>-seed<seed>``. A finished run is
    reused only if its training config and data fingerprint match; otherwise it is retrained.
    """
    from .profiles import get_profile, profile_hash

    prof = get_profile(profile)
    weights = weights or prof.weights
    num_outputs = 1 if len(splits["train"].classes) == 2 else len(splits["train"].classes)
    config = dataclasses.replace(config or config_for(prof, model_name, num_classes=len(splits["train"].classes)), seed=seed)
    image_size = image_size or splits["train"].images.shape[-1]
    fingerprint = hashlib.sha256(b"".join(splits[s].images.numpy().tobytes()[:: 97] + splits[s].labels.numpy().tobytes()
                                          for s in ("train", "val", "test"))).hexdigest()[:12]
    seed_everything(seed)
    model = build_model(model_name, num_outputs, weights, image_size)  # raises first if weights are missing
    run_dir = build_dir("runs", prof.name, task, f"{model_name}-{weights}-seed{seed}")
    done_path = run_dir / "done.json"
    if weights == "imagenet" and model_name != "simple_cnn" and config.head_epochs == 0:
        config = dataclasses.replace(config, head_epochs=prof.head_epochs)
    if not retrain and done_path.exists():
        info = read_json(done_path)
        try:
            matches = info.get("config_key") == config.key() and info.get("data") == fingerprint
            if matches:
                model.load_state_dict(load_checkpoint(run_dir / "best.pt"))
        except (RuntimeError, OSError) as err:  # checkpoint of an older model definition
            print(f"{run_dir}: cannot load the finished run ({type(err).__name__}); retraining.")
            matches = False
        if matches:
            return Run(task, model_name, seed, prof.name, model, pd.read_csv(run_dir / "history.csv"),
                       pd.read_csv(run_dir / "predictions.csv"), info, loaded=True)
    if retrain or (done_path.exists()):
        for f in ("last.pt", "best.pt", "done.json"):
            (run_dir / f).unlink(missing_ok=True)
    result = fit(model, splits["train"], splits["val"], config, run_dir, progress)
    preds, ms = _predictions_frame(result.model, splits, config.bf16)
    info = dict(task=task, model=model_name, seed=seed, profile=prof.name, profile_hash=profile_hash(prof),
                weights=model.weights, image_size=image_size, config=dataclasses.asdict(config),
                config_key=config.key(), data=fingerprint, best_epoch=result.best_epoch,
                epochs_run=len(result.history), train_time_s=result.train_time_s, ms_per_img=ms,
                train_images=len(splits["train"]), img_per_s_train=len(splits["train"]) * len(result.history) / max(result.train_time_s, 1e-9),
                parameters=sum(p.numel() for p in model.parameters()))
    write_text(run_dir / "history.csv", result.history.to_csv(index=False))
    write_text(run_dir / "predictions.csv", preds.to_csv(index=False))
    write_json(done_path, info)  # written last: its presence means the run is complete
    (run_dir / "last.pt").unlink(missing_ok=True)
    return Run(task, model_name, seed, prof.name, result.model, result.history, preds, info, loaded=False)


def config_for(profile, model_name: str, seed: int = 0, num_classes: int = 2, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` a profile prescribes for ``model_name`` (epochs, loss, precision)."""
    from .profiles import get_profile

    prof = get_profile(profile)
    base = TrainConfig(lr=prof.lr, batch_size=prof.batch_size, max_epochs=prof.epochs_for(model_name),
                       patience=prof.patience, loss=prof.loss if num_classes == 2 else prof.multiclass_loss,
                       bf16=prof.bf16, channels_last=prof.bf16 and model_name != "densenet121",  # measured slower there
                       augment=Augment(**prof.augment), seed=seed)
    return dataclasses.replace(base, **overrides)


def train_seeds(task: str, model_name: str, splits: dict[str, ImageSet], profile, progress: bool = True,
                **kwargs) -> list[Run]:
    """:func:`train_or_load` for every seed of the profile; prints one line per run."""
    from .profiles import get_profile

    prof = get_profile(profile)
    runs = []
    for seed in prof.seeds:
        run = train_or_load(task, model_name, splits, prof, seed, progress=progress, **kwargs)
        how = "loaded finished run" if run.loaded else f"trained {run.info['epochs_run']} epochs"
        print(f"{run.label}: {how} (best epoch {run.info['best_epoch']}, {run.info['train_time_s']:.0f} s of training)")
        runs.append(run)
    return runs
