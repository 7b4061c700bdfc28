"""Three-class task (normal / bacteria / virus): a two-stage classifier and its error analysis.

Notebook 05 trains *flat* three-class models (one softmax); notebook 06 builds a *hierarchical*
one from two binary models:

* **Stage A** normal vs pneumonia, on every image: ``p_a = P(pneumonia | x)``;
* **Stage B** bacteria vs virus, trained on pneumonia images only:
  ``p_b = P(virus | x, pneumonia)``.

:func:`combine` turns them into three-class probabilities with the chain rule::

    P(normal) = 1 - p_a      P(bacteria) = p_a (1 - p_b)      P(virus) = p_a p_b

Two decision rules turn those into a class (:data:`RULES`):

* ``"argmax"``: the class with the largest combined probability, the rule a flat softmax model
  uses and the one :func:`pneumolib.metrics.multiclass_metrics` applies;
* ``"sequential"``: "A then B": normal if ``p_a < threshold``, else virus if ``p_b >= 0.5``,
  else bacteria.

They always agree on the subtype but can disagree on normal vs pneumonia: argmax says normal when
``1 - p_a > p_a * max(p_b, 1 - p_b)``, i.e. when ``p_a`` is below
``1 / (1 + max(p_b, 1 - p_b))`` (:func:`argmax_normal_cutoff`), a cut that moves from 1/2 (Stage B
certain) to 2/3 (Stage B undecided). An undecided Stage B therefore pulls argmax towards
"normal".

:func:`error_sources` splits the final errors into those of the normal/pneumonia decision
(Stage A: no Stage B can repair a pneumonia image sent to "normal") and those of the subtype
(Stage B: pneumonia detected, wrong subtype).

:func:`hierarchical_results` gathers notebook 06's comparison into the ``hierarchical.json`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .data import CLASSES_3, CLASSES_BINARY, ImageSet
from .loop import logits_to_proba, predict_logits
from .metrics import multiclass_metrics, summarize_runs

CLASSES_STAGE_A = CLASSES_BINARY  # ("normal", "pneumonia")
CLASSES_STAGE_B = ("bacteria", "virus")
RULES = ("argmax", "sequential")


# --------------------------------------------------------------------------- labels and splits
def stage_b_labels(label3) -> np.ndarray:
    """Three-class labels of pneumonia images (1 bacteria, 2 virus) -> Stage B labels (0 bacteria, 1 virus)."""
    label3 = np.asarray(label3).astype(int).ravel()
    bad = np.setdiff1d(np.unique(label3), (1, 2))
    if bad.size:
        raise ValueError(
            f"Stage B takes pneumonia images only (label3 1 = bacteria, 2 = virus), got label3 values "
            f"{bad.tolist()} ({', '.join(CLASSES_3[b] if 0 <= b < 3 else str(b) for b in bad)}). "
            "Select them first with stage_b_splits() or a mask label3 > 0."
        )
    return label3 - 1


def _label3(data: ImageSet) -> np.ndarray:
    if "label3" in data.meta.columns:
        return data.meta["label3"].to_numpy().astype(int)
    if tuple(data.classes) == CLASSES_3:
        return data.labels.numpy()
    raise ValueError(
        f"{data.name!r} has no three-class labels (no meta column 'label3' and classes "
        f"{data.classes}); load it with load_kermany(..., three_class=True)."
    )


def stage_a_splits(splits: Mapping[str, ImageSet]) -> dict[str, ImageSet]:
    """The same images (same order) labelled normal (0) / pneumonia (1), for Stage A.

    Deriving them from the three-class splits guarantees that Stage A, Stage B and the flat model
    see the same patient-grouped train/val split and the same test images, also under a profile's
    stratified subsets (which would differ if drawn with binary labels).
    """
    out = {}
    for name, data in splits.items():
        label3 = _label3(data)
        binary = (label3 > 0).astype(np.int64)
        meta = data.meta.assign(label=binary)
        out[name] = ImageSet(data.images, torch.from_numpy(binary), meta, CLASSES_STAGE_A, data.name)
    return out


def stage_b_splits(splits: Mapping[str, ImageSet]) -> dict[str, ImageSet]:
    """Pneumonia images only, relabelled 0 = bacteria, 1 = virus, for Stage B."""
    out = {}
    for name, data in splits.items():
        label3 = _label3(data)
        idx = np.flatnonzero(label3 > 0)
        if idx.size == 0:
            raise ValueError(f"split {name!r} holds no pneumonia image: Stage B cannot be trained or tested on it")
        sub = data.subset(idx)
        labels = torch.from_numpy(stage_b_labels(label3[idx]).astype(np.int64))
        out[name] = ImageSet(sub.images, labels, sub.meta, CLASSES_STAGE_B, f"{data.name} (pneumonia only)")
    return out


# --------------------------------------------------------------------------- combination rule
def _check_pair(p_a, p_b) -> tuple[np.ndarray, np.ndarray]:
    p_a = np.asarray(p_a, dtype=float)
    p_b = np.asarray(p_b, dtype=float)
    for name, p in (("p_pneumonia", p_a), ("p_virus_given_pneumonia", p_b)):
        if p.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one probability per image), got shape {p.shape}")
        if p.size and (np.isnan(p).any() or p.min() < 0 or p.max() > 1):
            raise ValueError(f"{name} must hold probabilities in [0, 1] (apply a sigmoid to logits first)")
    if p_a.shape != p_b.shape:
        raise ValueError(
            f"p_pneumonia and p_virus_given_pneumonia differ in length: {p_a.size} vs {p_b.size} "
            "(Stage B must score every image, not only the pneumonia ones)"
        )
    return p_a, p_b


def combine(p_pneumonia, p_virus_given_pneumonia) -> np.ndarray:
    """``(N, 3)`` probabilities ``[1 - pA, pA (1 - pB), pA pB]`` for normal, bacteria, virus."""
    p_a, p_b = _check_pair(p_pneumonia, p_virus_given_pneumonia)
    return np.stack([1 - p_a, p_a * (1 - p_b), p_a * p_b], axis=1)


def argmax_normal_cutoff(p_virus_given_pneumonia) -> np.ndarray:
    """The ``p_a`` below which the argmax rule says "normal": ``1 / (1 + max(pB, 1 - pB))``."""
    p_b = np.asarray(p_virus_given_pneumonia, dtype=float)
    return 1 / (1 + np.maximum(p_b, 1 - p_b))


def predict_sequential(
    p_pneumonia, p_virus_given_pneumonia, threshold: float = 0.5, threshold_b: float = 0.5
) -> np.ndarray:
    """ "A then B": 0 normal if ``pA < threshold``, else 2 virus if ``pB >= threshold_b``, else 1 bacteria."""
    p_a, p_b = _check_pair(p_pneumonia, p_virus_given_pneumonia)
    return np.where(p_a < threshold, 0, np.where(p_b >= threshold_b, 2, 1))


def predict(p_pneumonia, p_virus_given_pneumonia, rule: str = "argmax", threshold: float = 0.5) -> np.ndarray:
    """Three-class predictions with ``rule`` ("argmax" of :func:`combine`, or "sequential")."""
    if rule == "argmax":
        return combine(p_pneumonia, p_virus_given_pneumonia).argmax(axis=1)
    if rule == "sequential":
        return predict_sequential(p_pneumonia, p_virus_given_pneumonia, threshold)
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def rule_disagreements(p_pneumonia, p_virus_given_pneumonia, threshold: float = 0.5) -> np.ndarray:
    """Indices of the images on which the argmax and the sequential rule predict different classes."""
    a = predict(p_pneumonia, p_virus_given_pneumonia, "argmax")
    s = predict(p_pneumonia, p_virus_given_pneumonia, "sequential", threshold)
    return np.flatnonzero(a != s)


# --------------------------------------------------------------------------- metrics and errors
def hierarchical_metrics(
    y_true3, p_pneumonia, p_virus_given_pneumonia, rule: str = "argmax", threshold: float = 0.5
) -> dict:
    """Three-class metrics of the two-stage model under ``rule`` (AUROC from the combined probabilities)."""
    probs = combine(p_pneumonia, p_virus_given_pneumonia)
    y_pred = None if rule == "argmax" else predict(p_pneumonia, p_virus_given_pneumonia, rule, threshold)
    return multiclass_metrics(y_true3, probs, CLASSES_3, y_pred=y_pred)


def error_breakdown(y_true3, y_pred3) -> dict:
    """Split the errors of three-class predictions by where in the hierarchy they happen.

    ``stage_a``: the normal/pneumonia decision is wrong (``missed_pneumonia``: pneumonia called
    normal; ``false_pneumonia``: normal called bacteria or virus). ``stage_b``: pneumonia correctly
    detected, wrong subtype. ``stage_a + stage_b == total_errors``. Works for any model, so a flat
    model's errors can be split the same way.
    """
    y = np.asarray(y_true3).astype(int).ravel()
    p = np.asarray(y_pred3).astype(int).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true3 and y_pred3 differ in length: {y.size} vs {p.size}")
    missed = int(np.sum((y > 0) & (p == 0)))
    false_pos = int(np.sum((y == 0) & (p > 0)))
    subtype = int(np.sum((y > 0) & (p > 0) & (p != y)))
    return dict(
        stage_a=missed + false_pos,
        stage_b=subtype,
        total_errors=int(np.sum(p != y)),
        missed_pneumonia=missed,
        false_pneumonia=false_pos,
        n=int(y.size),
    )


def error_sources(
    y_true3, p_pneumonia, p_virus_given_pneumonia, threshold: float = 0.5, rule: str = "sequential"
) -> dict:
    """:func:`error_breakdown` of the two-stage model's final predictions under ``rule``.

    With the sequential rule the Stage A decision is exactly ``pA >= threshold``; with argmax it
    is "argmax is not normal". Either way a pneumonia image with ``pA < 0.5`` is called normal
    whatever Stage B says, and counts as a Stage A error.
    """
    return error_breakdown(y_true3, predict(p_pneumonia, p_virus_given_pneumonia, rule, threshold))


def dominant_error(confusion, classes: Sequence[str] = CLASSES_3) -> dict:
    """The largest off-diagonal cell of a confusion matrix (rows = true class).

    Returns ``{"true", "pred", "count", "share_of_errors", "total_errors"}``; ``true``/``pred`` are
    None when there is no error at all.
    """
    cm = np.asarray(confusion, dtype=int)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"confusion must be a square {len(classes)}x{len(classes)} matrix, got shape {cm.shape}")
    off = cm.copy()
    np.fill_diagonal(off, 0)
    total = int(off.sum())
    if total == 0:
        return dict(true=None, pred=None, count=0, share_of_errors=0.0, total_errors=0)
    i, j = np.unravel_index(np.argmax(off), off.shape)
    return dict(
        true=classes[i],
        pred=classes[j],
        count=int(off[i, j]),
        share_of_errors=float(off[i, j] / total),
        total_errors=total,
    )


def summarize_multiclass(records: Sequence[Mapping], classes: Sequence[str] = CLASSES_3) -> dict:
    """Mean/std over seeds of accuracy, macro-F1, macro AUROC and per-class F1 (``f1_<class>``)."""
    flat = [
        dict(
            accuracy=r["accuracy"],
            macro_f1=r["macro_f1"],
            macro_auroc=r["macro_auroc"],
            **{f"f1_{c}": r["per_class"][c]["f1"] for c in classes},
        )
        for r in records
    ]
    return summarize_runs(flat)


def two_stage_probabilities(run_a, model_b, data: ImageSet, bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(pA, pB)`` for every image of the three-class test split ``data``.

    ``pA`` is Stage A's saved test prediction (``run_a``, trained on :func:`stage_a_splits`, which
    keeps these images in this order), so it is not computed twice. Stage B trained on pneumonia
    images only; here it scores every image (its ``pB`` is then multiplied by a small ``pA`` in
    :func:`combine`).
    """
    p_a = run_a.split_arrays("test")[2]
    if len(p_a) != len(data):
        raise ValueError(
            f"Stage A's run has {len(p_a)} test predictions but the test split has {len(data)} images: "
            "train Stage A on stage_a_splits(...) of the same three-class splits"
        )
    p_b = logits_to_proba(predict_logits(model_b, data, bf16=bf16))
    if p_a.ndim != 1 or p_b.ndim != 1:
        raise ValueError("both stages must be binary models with one output (a logit)")
    return p_a, p_b


def _mean_std(summary: Mapping[str, Mapping]) -> dict:
    return {k: {"mean": v["mean"], "std": v["std"]} for k, v in summary.items()}


def _summary_entry(summary: Mapping[str, Mapping], classes: Sequence[str] = CLASSES_3) -> dict:
    """A :func:`summarize_multiclass` result as stored: three headline metrics and per-class F1."""
    return _mean_std({k: summary[k] for k in ("accuracy", "macro_f1", "macro_auroc")}) | {
        "per_class_f1": _mean_std({c: summary[f"f1_{c}"] for c in classes})
    }


def _error_summary(errors: pd.DataFrame, model: str) -> dict:
    rows = errors[errors["model"] == model]
    keys = ["stage_a", "stage_b", "total_errors", "missed_pneumonia", "false_pneumonia"]
    return {k: float(rows[k].mean()) for k in keys} | {"per_seed": rows[["seed", *keys]].to_dict(orient="records")}


def hierarchical_results(
    meta: dict,
    architecture: str,
    rule: str,
    stage_loss: str,
    summary: Mapping[str, Mapping],
    disagreements: Mapping[int, int],
    errors: pd.DataFrame,
    stage_alone: Mapping[str, Mapping],
) -> dict:
    """Notebook 06's ``hierarchical.json``: flat vs two-stage (both rules), error sources, each stage alone.

    ``summary`` maps "flat", "two-stage (argmax)" and "two-stage (sequential)" to
    :func:`summarize_multiclass` results; ``errors`` has one row per (seed, model) with the columns of
    :func:`error_sources`; ``stage_alone`` maps "Stage A..." and "Stage B..." to binary summaries.
    """
    stage_a, stage_b = (next(v for k, v in stage_alone.items() if k.startswith(s)) for s in ("Stage A", "Stage B"))
    return {
        "meta": meta,
        "architecture": architecture,
        "rule": f"{rule}: argmax of [1-pA, pA(1-pB), pA*pB]; the sequential rule (pA >= 0.5, then pB >= 0.5) "
        "is stored under 'sequential'",
        "stage_loss": stage_loss,
        "flat": _summary_entry(summary["flat"]),
        "hierarchical": _summary_entry(summary[f"two-stage ({rule})"]),
        "sequential": _summary_entry(summary["two-stage (sequential)"]),
        "rule_disagreements": {str(s): int(n) for s, n in disagreements.items()},
        "error_sources": _error_summary(errors, f"two-stage ({rule})") | {"rule": rule},
        "error_sources_flat": _error_summary(errors, "flat"),
        "stage_a_alone": _mean_std(stage_a),
        "stage_b_alone": _mean_std(stage_b),
    }
