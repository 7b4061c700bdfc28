"""The training loop with the seeds' protocol: the loss, the batches, :func:`fit` and predictions.

Protocol (``TrainConfig`` defaults): Adam lr 1e-4, ``ReduceLROnPlateau`` (factor 0.5, patience 3)
on the validation loss, batch 32, early stopping with patience 5 on the validation loss, at most
30 epochs. With ImageNet weights, two-phase transfer: ``head_epochs`` with the backbone frozen,
then full fine-tuning; in the head phase the frozen backbone also keeps its BatchNorm statistics
(its BatchNorm layers run in eval mode), so phase 1 changes nothing but the head. Options:
``scheduler="cosine"`` anneals the rate to 0 over a fixed epoch budget, and ``monitor="val_auroc"``
keeps (and early-stops on) the best validation AUROC instead of the lowest validation loss. A profile
sets them per task (``Profile.protocol_by_task``).

:func:`fit` checkpoints every epoch into a run folder and resumes from its last completed epoch.
The run cache around it (one folder per task, model, seed and profile) is :mod:`pneumolib.train`.

Devices. :func:`resolve_device` turns a profile's ``device`` into a ``torch.device``. On CUDA the
model and batches live on the GPU, ``bf16`` means bf16 autocast (AMP, no loss scaling needed), and
``cudnn.benchmark`` is on. The images are already decoded in memory as one uint8 tensor, so batches
are gathered by indexing, copied from pinned memory with ``non_blocking=True`` and augmented on the
GPU: a DataLoader with worker processes would only add copies between processes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import ImageSet
from .metrics import auroc_or_nan, macro_auroc_or_nan
from .models import Classifier
from .results import (
    CorruptArtefactError,
    load_checkpoint,
    save_checkpoint,
    set_aside,
)
from .transforms import Augment

PRECISION_ENV = "PNEUMOLAB_PRECISION"  # "bf16" or "fp32" forces the choice; unset: decided per machine


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from Linux ``/proc/cpuinfo``; None where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(
                (frozenset(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), frozenset()
            )
    except OSError:
        return None


#: oneDNN instruction-set limits (``ONEDNN_MAX_CPU_ISA``) that still include native bf16 convolutions
BF16_ISAS = ("ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10")


def _isa_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if os.environ.get(k)}


def isa_limited() -> bool:
    """True when this process is told to use an instruction set without native bf16: ``ATEN_CPU_CAPABILITY`` set
    to ``avx2`` or ``default`` (PyTorch's own kernels) or ``ONEDNN_MAX_CPU_ISA`` below ``AVX512_CORE_BF16`` (its
    convolutions), e.g. to make a newer machine behave like an AVX2-only laptop."""
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return aten in ("avx2", "default") or (bool(onednn) and not onednn.startswith(BF16_ISAS))


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX-512 BF16 or AMX): bf16 autocast then trains about 2x faster
    than fp32. Without it (e.g. AVX2 only) PyTorch emulates bf16 and trains 9-20x *slower* than fp32.

    Read from the CPU flags on Linux (``avx512_bf16``, ``amx_bf16``); elsewhere a short measurement decides
    (a bf16 matrix product must be at least 1.2x faster than the fp32 one). A process limited to an older
    instruction set (:func:`isa_limited`) has no native bf16 whatever the CPU has.
    """
    if isa_limited():
        return False
    flags = cpu_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    a = torch.randn(512, 512)

    def best_of(dtype) -> float:
        x = a.to(dtype)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(4):
                x @ x
            times.append(time.perf_counter() - t0)
        return min(times)

    return best_of(torch.bfloat16) * 1.2 <= best_of(torch.float32)


def use_bf16(requested: bool, device: str = "cpu") -> bool:
    """Whether to train with bf16 autocast: what the profile asks for (``requested``), where the machine does
    bf16 natively: on a CPU only with native bf16 (:func:`cpu_has_native_bf16`; fp32 otherwise), on CUDA only if
    the GPU supports it. ``PNEUMOLAB_PRECISION=bf16`` or ``=fp32`` overrides the choice."""
    forced = os.environ.get(PRECISION_ENV)
    if forced:
        if forced not in ("bf16", "fp32"):
            raise ValueError(f"{PRECISION_ENV}={forced!r}: use 'bf16' or 'fp32', or unset it to decide per machine")
        return forced == "bf16"
    if not requested:
        return False
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def precision_info() -> dict:
    """What the precision choice relied on, for results metadata."""
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": cpu_has_native_bf16(),
        "precision_override": os.environ.get(PRECISION_ENV),
        # only when set: a run made to behave like an older CPU must never pass for one measured on it
        **({"isa_limits": _isa_env()} if isa_limited() else {}),
    }


class DeviceUnavailableError(RuntimeError):
    """A profile asks for CUDA on a machine without a usable GPU."""


ALLOW_CPU_ENV = "PNEUMOLAB_ALLOW_CPU"


def resolve_device(device: str = "cpu") -> torch.device:
    """``torch.device`` for a profile's ``device``. ``"cuda"`` without a GPU stops with a message, unless
    the environment variable ``PNEUMOLAB_ALLOW_CPU=1`` explicitly allows the (much slower) CPU."""
    if device == "cuda" and not torch.cuda.is_available():
        if os.environ.get(ALLOW_CPU_ENV) == "1":
            print(f"NOTE: no CUDA GPU; {ALLOW_CPU_ENV}=1, so this runs on the CPU (much slower).", flush=True)
            return torch.device("cpu")
        raise DeviceUnavailableError(
            "This profile trains on a CUDA GPU, and torch sees none "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). Run it on a machine with an "
            f"NVIDIA GPU, use --profile cpu or gpu-smoke here, or set {ALLOW_CPU_ENV}=1 to run it on the CPU anyway."
        )
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    return torch.device(device)


TTA_MODES = ("none", "hflip", "auto")


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 5  # early stopping on validation loss
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    head_epochs: int = 0  # > 0 only for pretrained backbones (two-phase transfer)
    scheduler: str = "plateau"  # "plateau" (halve lr when val loss stalls) or "cosine" (anneal to 0 over max_epochs)
    monitor: str = "val_loss"  # what early stopping and the best checkpoint follow: "val_loss" or "val_auroc"
    loss: str = "bce"  # "bce" | "weighted_bce" | "focal" (binary); "ce" | "weighted_ce" (multiclass)
    focal_gamma: float = 2.0
    augment: Augment = field(default_factory=Augment)
    bf16: bool = False  # bfloat16 autocast (CPU): faster on CPUs with AVX-512 BF16 / AMX
    channels_last: bool = False
    seed: int = 0
    # test-time augmentation of the run's stored predictions: "none"; "hflip" (each image's logits averaged with
    # its mirror image's); "auto" (hflip only if it raises this run's validation metric: AUROC, or macro-F1 for
    # several classes). It changes what is predicted, not how the model is trained.
    tta: str = "none"

    def __post_init__(self):
        if self.scheduler not in ("plateau", "cosine"):
            raise ValueError(f"scheduler {self.scheduler!r} is not known: use 'plateau' or 'cosine'")
        if self.monitor not in ("val_loss", "val_auroc"):
            raise ValueError(f"monitor {self.monitor!r} is not known: use 'val_loss' or 'val_auroc'")
        if self.tta not in TTA_MODES:
            raise ValueError(f"tta {self.tta!r} is not known: use one of {TTA_MODES}")

    def key(self) -> str:
        """Short hash identifying this configuration (a finished run is reused only if it matches)."""
        d = dataclasses.asdict(self)
        for name in ("scheduler", "monitor", "tta"):  # options added later: at their default the key is unchanged
            if d[name] == getattr(TrainConfig, name):
                del d[name]
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


PRECISION_FIELDS = ("bf16", "channels_last")  # how a run was computed, chosen per machine: not its recipe


def precision_mode(bf16: bool, channels_last: bool) -> str:
    """How benchmarks name a precision and memory format: ``fp32``, ``bf16``, ``fp32+channels_last``, ..."""
    return ("bf16" if bf16 else "fp32") + ("+channels_last" if channels_last else "")


def same_recipe(stored: dict | None, config: TrainConfig) -> bool:
    """True when a stored config (a run marker's ``config``) trains the same recipe as ``config``, whatever
    precision and memory format each machine chose (fields a marker predates count at their defaults)."""
    if not isinstance(stored, dict):
        return False
    ours, defaults = dataclasses.asdict(config), dataclasses.asdict(TrainConfig())
    if set(stored) - set(ours):
        return False
    return all(stored.get(k, defaults[k]) == v for k, v in ours.items() if k not in PRECISION_FIELDS)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU runs are then bit-for-bit repeatable)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- losses
def make_loss(
    name: str, train_labels: torch.Tensor, num_outputs: int, gamma: float = 2.0, device: torch.device | str = "cpu"
):
    """Loss function ``f(logits, labels)``. Weighted variants use inverse class frequency."""
    counts = torch.bincount(train_labels, minlength=max(2, num_outputs)).float().clamp(min=1).to(device)
    if num_outputs == 1:
        pos_weight = counts[0] / counts[1] if name == "weighted_bce" else None
        if name in ("bce", "weighted_bce"):
            return lambda logits, y: F.binary_cross_entropy_with_logits(
                logits.squeeze(1), y.float(), pos_weight=pos_weight
            )
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
    raise ValueError(
        f"loss {name!r} does not fit a model with {num_outputs} output(s): binary takes "
        "'bce', 'weighted_bce' or 'focal'; multiclass 'ce' or 'weighted_ce'"
    )


# --------------------------------------------------------------------------- batches
def iterate_batches(
    data: ImageSet,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
):
    """Yield ``(x, y)`` with ``x`` float ``(B, 1, H, W)`` in [0, 1] on ``device``; images stay uint8 until
    here (on CUDA they cross to the GPU as uint8, from pinned memory, and become float there)."""
    n = len(data)
    cuda = torch.device(device).type == "cuda"
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x, y = data.images[idx], data.labels[idx]
        if cuda:
            x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        yield x.unsqueeze(1).float().div_(255), y


def _autocast(device: torch.device | str, enabled: bool):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    data: ImageSet,
    batch_size: int = 128,
    bf16: bool = False,
    device: torch.device | str = "cpu",
    hflip: bool = False,
) -> np.ndarray:
    """Logits for every image of ``data``: shape ``(N,)`` for one output, else ``(N, C)``.

    ``hflip=True`` is test-time augmentation: each image's logits are averaged with those of its mirror image.
    """
    model.eval().to(device)
    outs = []
    for x, _ in iterate_batches(data, batch_size, device=device):
        with _autocast(device, bf16):
            out = model(x).float()
            if hflip:
                out = (out + model(torch.flip(x, dims=[-1])).float()) / 2
            outs.append(out.cpu())
    logits = torch.cat(outs).numpy() if outs else np.zeros((0, 1), dtype=np.float32)
    return logits[:, 0] if logits.shape[1] == 1 else logits


@torch.no_grad()
def latency_ms(model: nn.Module, data: ImageSet, bf16: bool = False, device: torch.device | str = "cpu", n: int = 32):
    """Median wall time in ms to classify one image at batch size 1 (the deck's "ms/img"), after 3 warm-up
    images; the first ``n`` test images are timed. Throughput at larger batches is reported separately."""
    model.eval().to(device)
    times = []
    cuda = torch.device(device).type == "cuda"
    for i, (x, _) in enumerate(iterate_batches(data.subset(np.arange(min(n + 3, len(data)))), 1, device=device)):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with _autocast(device, bf16):
            model(x)
        if cuda:
            torch.cuda.synchronize()
        if i >= 3:
            times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times)) if times else float("nan")


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


def validation_scores(model, data, loss_fn, config, device) -> dict[str, float]:
    """Mean loss, accuracy and AUROC (macro one-vs-rest for several classes) on ``data``, no augmentation."""

    model.eval()
    total, outs = 0.0, []
    with torch.no_grad():
        for x, y in iterate_batches(data, 256, device=device):
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, config.bf16):
                logits = model(x).float()
            total += loss_fn(logits, y).item() * len(y)
            outs.append(logits.cpu())
    n = len(data)
    if n == 0:
        return dict(loss=float("nan"), accuracy=float("nan"), auroc=float("nan"))
    logits, y = torch.cat(outs), data.labels.numpy()
    if logits.shape[1] == 1:
        pred, score = (logits[:, 0] > 0).long().numpy(), logits[:, 0].numpy()
    else:
        pred, score = logits.argmax(1).numpy(), torch.softmax(logits, 1).numpy()
    # NaN when a class is missing from a tiny validation subset
    auroc = macro_auroc_or_nan(y, score) if score.ndim == 2 else auroc_or_nan(y, score)
    return dict(loss=total / n, accuracy=float((pred == y).mean()), auroc=auroc)


def _early_stop(epoch: int, best_epoch: int, config: TrainConfig) -> bool:
    """True when training ends after (0-based) ``epoch``: ``patience`` epochs without a new best,
    outside the head-only phase."""
    return epoch + 1 - best_epoch >= config.patience and epoch >= config.head_epochs


RESUME_KEYS = ("model", "optimizer", "scheduler", "generator", "torch_rng", "history", "epoch", "elapsed", "best_epoch")


def _resume_state(run_dir: Path, config: TrainConfig) -> tuple[dict, dict | None] | None:
    """``(last.pt state, best weights or None)`` to resume from, or None to start afresh: a state of
    another config, or a damaged ``last.pt``/``best.pt`` (set aside with a note; the run restarts)."""
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    try:
        state = load_checkpoint(last_path)
        if state.get("config_key") != config.key():
            return None
        missing = [k for k in RESUME_KEYS if k not in state]
        if missing:
            raise CorruptArtefactError(last_path, f"lacks {', '.join(missing)}")
        if state["best_epoch"] > 0 and not best_path.exists():
            raise CorruptArtefactError(last_path, f"needs {best_path.name}, which is missing")
        return state, load_checkpoint(best_path) if state["best_epoch"] > 0 else None
    except CorruptArtefactError as err:
        set_aside(err.path, f"cannot be resumed from ({err.problem}); training restarts from epoch 1")
        for path in (last_path, best_path):  # one is useless without the other
            path.unlink(missing_ok=True)
        return None


def fit(
    model: Classifier,
    train: ImageSet,
    val_set: ImageSet,
    config: TrainConfig,
    run_dir: Path | None = None,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> FitResult:
    """Train ``model`` on ``device``, choosing the checkpoint on ``val_set``; resumes from ``run_dir/last.pt``.

    After each epoch the full training state is checkpointed (atomically) to ``run_dir/last.pt``
    and the best weights so far to ``run_dir/best.pt``; on return ``model`` holds the best weights.
    With ``config.head_epochs > 0`` the first epochs train the head only (phase 1: the backbone's
    weights and BatchNorm statistics do not change), then every layer (phase 2); ``history.phase``
    says which.
    """
    loss_fn = make_loss(config.loss, train.labels, model.num_outputs, config.focal_gamma, device)
    generator = torch.Generator().manual_seed(config.seed)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(config.max_epochs - config.head_epochs, 1)
        )
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.plateau_factor, patience=config.plateau_patience
        )
    # early stopping and the best checkpoint follow one validation number; "score" is always "lower is better"
    sign = -1.0 if config.monitor == "val_auroc" else 1.0
    history: list[dict] = []
    best = {"score": float("inf"), "epoch": -1, "state": None}
    start_epoch, elapsed = 0, 0.0
    last_path = run_dir / "last.pt" if run_dir else None
    resume = _resume_state(run_dir, config) if last_path is not None and last_path.exists() else None
    if resume is not None:
        state, best_state = resume
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])  # its state follows the parameters' device
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
        history, start_epoch, elapsed = state["history"], state["epoch"] + 1, state["elapsed"]
        best = {
            "score": state.get("best_score", state.get("best_loss")),
            "epoch": state["best_epoch"],
            "state": best_state,
        }
        if state.get("stopped", _early_stop(state["epoch"], state["best_epoch"], config)):
            start_epoch = config.max_epochs  # early stopping had decided before the interruption
    bar = tqdm(
        range(start_epoch, config.max_epochs),
        desc=f"{model.name} seed {config.seed}",
        disable=not progress,
        initial=start_epoch,
        total=config.max_epochs,
        leave=False,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        frozen = epoch < config.head_epochs
        model.set_backbone_trainable(not frozen)
        model.train()
        if frozen:  # phase 1: a frozen backbone keeps its BatchNorm running statistics too
            model.freeze_batchnorm_statistics()
        total, n = 0.0, 0
        for x, y in iterate_batches(train, config.batch_size, shuffle=True, generator=generator, device=device):
            x = config.augment(x, generator)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, config.bf16):
                logits = model(x).float()
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            n += len(y)
        val = validation_scores(model, val_set, loss_fn, config, device)
        lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
        if not frozen:
            scheduler.step() if config.scheduler == "cosine" else scheduler.step(val["loss"])
        elapsed += time.perf_counter() - t0
        history.append(
            dict(
                epoch=epoch + 1,
                phase="head" if frozen else "full",
                train_loss=total / max(n, 1),
                val_loss=val["loss"],
                val_accuracy=val["accuracy"],
                val_auroc=val["auroc"],
                lr=lr,
                seconds=time.perf_counter() - t0,
            )
        )
        score = sign * val[config.monitor.removeprefix("val_")]
        if score < best["score"]:
            best = {
                "score": score,
                "epoch": epoch + 1,
                "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
            }
            if run_dir:
                save_checkpoint(run_dir / "best.pt", best["state"])
        bar.set_postfix(
            train_loss=f"{history[-1]['train_loss']:.3f}",
            val_loss=f"{val['loss']:.3f}",
            val_auroc=f"{val['auroc']:.3f}",
        )
        stop = _early_stop(epoch, best["epoch"], config)
        if last_path is not None:
            save_checkpoint(
                last_path,
                dict(
                    config_key=config.key(),
                    model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(),
                    generator=generator.get_state(),
                    torch_rng=torch.get_rng_state(),
                    history=history,
                    epoch=epoch,
                    stopped=stop,
                    elapsed=elapsed,
                    best_score=best["score"],
                    best_epoch=best["epoch"],
                ),
            )
        if stop:
            break
    bar.close()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    return FitResult(model, pd.DataFrame(history), best["epoch"], elapsed)


def describe_config(config: TrainConfig | dict, epochs: bool = True) -> str:
    """One sentence describing a training protocol, e.g. for a report; accepts a config or its dict
    (as stored in a run's ``done.json``; fields added later take their defaults)."""
    c = dataclasses.asdict(config) if isinstance(config, TrainConfig) else config
    get = lambda k: c.get(k, getattr(TrainConfig, k, None))  # noqa: E731
    if get("scheduler") == "cosine":
        sched = "learning rate annealed to 0 with a cosine schedule"
    else:
        sched = (
            f"learning rate x{get('plateau_factor')} when the validation loss stalls for "
            f"{get('plateau_patience')} epochs"
        )
    macro = "macro " if get("loss") in ("ce", "weighted_ce") else ""  # three classes: AUROC averaged over them
    monitor = f"validation {macro}AUROC" if get("monitor") == "val_auroc" else "validation loss"
    stop = (
        f"early stopping after {get('patience')} epochs without improvement in {monitor}"
        if get("patience") < get("max_epochs")
        else f"no early stopping (the epoch with the best {monitor} is kept)"
    )
    parts = [f"Adam (lr {get('lr'):g}), batch {get('batch_size')}", sched, stop, f"loss {get('loss')}"]
    if epochs:
        parts.insert(1, f"at most {get('max_epochs')} epochs")
    if get("head_epochs"):
        parts.append(f"{get('head_epochs')} head-only epochs first")
    if get("bf16"):
        parts.append("bf16 autocast" + (" + channels_last" if get("channels_last") else ""))
    if get("tta") == "hflip":
        parts.append("predictions averaged with the mirror image's (hflip TTA)")
    elif get("tta") == "auto":
        parts.append("hflip TTA where it raises the run's validation metric")
    return "; ".join(parts)
