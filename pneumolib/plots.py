"""Figures for the notebooks: matplotlib only, every function returns the ``Figure``.

A notebook shows the figure inline and keeps a copy for the report with :func:`save_figure`::

    fig = plot_class_distribution(counts, "PneumoniaMNIST")
    save_figure(fig, profile, "01_pneumoniamnist_classes")   # figures/<profile>/01_....png

Data plots: :func:`plot_class_distribution`, :func:`plot_image_grid`,
:func:`plot_augmentations`, :func:`plot_size_histogram`.
Model plots: :func:`plot_history`, :func:`plot_confusion_matrix`, :func:`plot_roc_pr`,
:func:`plot_metric_bars`, :func:`plot_outcome_grid`, :func:`plot_filters`.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from .explain import cam_overlay
from .hierarchical import argmax_normal_cutoff
from .profiles import Profile
from .results import atomic_write_bytes, figures_dir
from .transforms import Augment

DPI = 150


# --------------------------------------------------------------------------- saving
def save_figure(fig: Figure, profile: str | Profile, name: str) -> Path:
    """Save ``fig`` as ``figures/<profile>/<name>.png`` (dpi 150, tight box), atomically.

    Returns the path written. ``name`` may end in ``.png``; it is not added twice.
    """
    profile_name = profile.name if isinstance(profile, Profile) else str(profile)
    name = name[:-4] if name.endswith(".png") else name
    path = figures_dir(profile_name) / f"{name}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


# --------------------------------------------------------------------------- helpers
def _to_numpy(images) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    return np.asarray(images)


def _as_image_list(images) -> list[np.ndarray]:
    """A batch ``(N, H, W)`` / ``(N, 1, H, W)`` (numpy or torch) or a list of 2-D arrays -> list of 2-D arrays."""
    if isinstance(images, (list, tuple)):
        out = [_to_numpy(im) for im in images]
    else:
        arr = _to_numpy(images)
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 3:
            raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got shape {arr.shape}")
        out = list(arr)
    out = [im[0] if im.ndim == 3 and im.shape[0] == 1 else im for im in out]
    for im in out:
        if im.ndim != 2:
            raise ValueError(f"every image must be 2-D (grayscale), got shape {im.shape}")
    return out


def _value_range(image: np.ndarray) -> tuple[float, float]:
    """Display range: 0-255 for integer images, 0-1 for float images (no per-image rescaling)."""
    return (0.0, 255.0) if np.issubdtype(image.dtype, np.integer) else (0.0, 1.0)


def _show(ax, image: np.ndarray, cmap: str, title: str | None = None) -> None:
    vmin, vmax = _value_range(image)
    ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest" if max(image.shape) <= 64 else "antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


# --------------------------------------------------------------------------- data plots
def plot_class_distribution(counts: Mapping[str, Mapping[str, int]], title: str = "") -> Figure:
    """Grouped bars: one group per dataset/split (the outer keys), one bar per class, counts on top.

    ``counts`` is ``{"train": {"normal": 1214, "pneumonia": 3494}, "test": {...}}``; classes missing
    from a group count as 0.
    """
    groups = list(counts)
    classes: list[str] = []
    for group in groups:
        classes += [c for c in counts[group] if c not in classes]
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(classes))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(groups) * max(1, len(classes)) ** 0.5 + 2), 3.6))
    top = max([int(n) for group in groups for n in counts[group].values()] + [1])
    for i, cls in enumerate(classes):
        values = [int(counts[g].get(cls, 0)) for g in groups]
        bars = ax.bar(x + (i - (len(classes) - 1) / 2) * width, values, width, label=cls, color=f"C{i}")
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8, padding=2)
    ax.set_xticks(x, groups)
    ax.set_ylabel("images")
    ax.set_ylim(0, top * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=9, ncols=len(classes), loc="upper left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_image_grid(images, titles: Sequence[str] | None = None, ncols: int = 8, cmap: str = "gray",
                    size: float = 1.6, suptitle: str | None = None) -> Figure:
    """Images in a grid, one axis per image (unused grid cells are removed).

    ``images``: ``(N, H, W)`` or ``(N, 1, H, W)`` uint8 (shown on 0-255) or float (shown on 0-1),
    numpy or torch, or a list of 2-D arrays of different sizes (each keeps its aspect ratio).
    """
    ims = _as_image_list(images)
    if titles is not None and len(titles) != len(ims):
        raise ValueError(f"{len(ims)} images but {len(titles)} titles")
    ncols = max(1, min(ncols, len(ims)))
    nrows = max(1, math.ceil(len(ims) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if titles else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(ims):
            _show(ax, ims[k], cmap, titles[k] if titles is not None else None)
        else:
            ax.remove()
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_augmentations(images, augment_list: Mapping[str, Augment], seed: int = 0, cmap: str = "gray",
                       size: float = 1.6) -> Figure:
    """Rows = images, columns = the original, then each augmentation applied to the *same* images.

    ``images``: ``(N, H, W)`` / ``(N, 1, H, W)``, uint8 or float in [0, 1]. Every augmentation gets
    its own generator seeded with ``seed``, so the figure is reproducible and columns do not depend
    on each other's random draws.
    """
    x = torch.as_tensor(_to_numpy(images))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got shape {tuple(x.shape)}")
    x = x.float().div(255) if not torch.is_floating_point(x) else x.float()
    columns = {"original": x}
    for name, augment in augment_list.items():
        columns[name] = augment(x, generator=torch.Generator().manual_seed(seed))
    n, k = len(x), len(columns)
    fig, axes = plt.subplots(n, k, figsize=(size * k, size * n + 0.4), squeeze=False)
    for col, (name, batch) in enumerate(columns.items()):
        for row in range(n):
            _show(axes[row, col], batch[row, 0].numpy(), cmap, name if row == 0 else None)
    fig.tight_layout()
    return fig


def plot_size_histogram(widths, heights, title: str = "", bins: int = 30) -> Figure:
    """Two histograms side by side, width and height in pixels, with the median marked."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, values, label, color in zip(axes, (widths, heights), ("width", "height"), ("C0", "C1")):
        values = np.asarray(values, dtype=float)
        ax.hist(values, bins=bins, color=color, alpha=0.85)
        median = float(np.median(values))
        ax.axvline(median, color="k", lw=1, ls="--")
        ax.text(median, 0.97, f" median {median:.0f}", fontsize=8, va="top", transform=ax.get_xaxis_transform())
        ax.set_xlabel(f"{label} (px)")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("images")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- model evaluation plots
def plot_history(histories: dict, title: str = "Training curves", best_epochs: dict | None = None):
    """Loss, a validation metric and the learning rate per epoch, one colour per run.

    ``histories`` maps a label to a history DataFrame (columns epoch, phase, train_loss, val_loss,
    val_accuracy, lr and, in newer runs, val_auroc, which is shown instead of accuracy when every
    run has it). ``best_epochs`` (label -> epoch) marks the checkpoint each run kept. A dotted
    vertical line marks the end of the head-only phase when there is one.
    """
    fig, (ax_loss, ax_val, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 1, 0.7]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metric = "val_auroc" if all("val_auroc" in h and h["val_auroc"].notna().all() for h in histories.values()) else "val_accuracy"
    for i, (label, h) in enumerate(histories.items()):
        c = colors[i % len(colors)]
        ax_loss.plot(h["epoch"], h["train_loss"], color=c, ls="--", alpha=0.8)
        ax_loss.plot(h["epoch"], h["val_loss"], color=c, label=label)
        ax_val.plot(h["epoch"], h[metric], color=c, label=label)
        ax_lr.plot(h["epoch"], h["lr"], color=c, marker=".", label=label)
        best = (best_epochs or {}).get(label)
        if best is not None and best in set(h["epoch"]):
            ax_val.plot(best, h.loc[h["epoch"] == best, metric].iloc[0], "o", color=c, ms=8, mfc="none", mew=2)
        head = h.loc[h["phase"] == "head", "epoch"]
        if len(head):
            for ax in (ax_loss, ax_val, ax_lr):
                ax.axvline(head.max() + 0.5, color=c, ls=":", alpha=0.7)
    name = "AUROC" if metric == "val_auroc" else "accuracy"
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (dashed: train, solid: validation)")
    ax_val.set(xlabel="epoch", ylabel=f"validation {name}",
               title=f"validation {name}" + (" (circle: kept checkpoint)" if best_epochs else ""))
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate", yscale="log")
    ax_val.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm, classes, normalize: bool = False, title: str = "Confusion matrix", ax=None):
    """Counts (or row-normalised rates) with the numbers written in each cell; rows = true class."""
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(3.2 + 0.6 * len(classes), 2.8 + 0.5 * len(classes)))
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    for i in range(len(classes)):
        for j in range(len(classes)):
            text = f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=11,
                    color="white" if shown[i, j] > (0.5 if normalize else shown.max() / 2) else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def plot_roc_pr(y_true, y_prob, thresholds=(0.1, 0.3, 0.5, 0.7, 0.9), named: dict | None = None, title: str = ""):
    """ROC and precision-recall curves with operating points marked at several thresholds.

    ``named`` adds labelled points, e.g. ``{"screening (val)": 0.12, "max F1 (val)": 0.41}``.
    """

    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    fpr, tpr, _ = roc_curve(y_true, y_prob)
    prec, rec, _ = precision_recall_curve(y_true, y_prob)
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax_roc.plot(fpr, tpr, color="k", label=f"AUROC {auc(fpr, tpr):.3f}")
    ax_roc.plot([0, 1], [0, 1], color="grey", ls=":")
    ax_pr.plot(rec, prec, color="k", label=f"AP {average_precision_score(y_true, y_prob):.3f}")
    ax_pr.axhline(y_true.mean(), color="grey", ls=":", label=f"prevalence {y_true.mean():.2f}")
    points = {f"t={t:g}": t for t in thresholds} | (named or {})
    for i, (name, t) in enumerate(points.items()):
        pred = y_prob >= t
        tp, fp = np.sum(pred & (y_true == 1)), np.sum(pred & (y_true == 0))
        r, f = tp / max((y_true == 1).sum(), 1), fp / max((y_true == 0).sum(), 1)
        p = tp / max(tp + fp, 1)
        marker = "o" if name.startswith("t=") else "*"
        size = 40 if marker == "o" else 160
        sc = ax_roc.scatter(f, r, s=size, marker=marker, zorder=3, label=f"{name}" + (f" (t={t:.2f})" if marker == "*" else ""))
        ax_pr.scatter(r, p, s=size, marker=marker, zorder=3, color=sc.get_facecolor())
    ax_roc.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (recall)", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    ax_roc.legend(fontsize=7, loc="lower right")
    ax_pr.legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_metric_bars(table_rows: dict, keys=("accuracy", "precision", "recall", "specificity", "f1", "auroc"), title: str = ""):
    """Grouped bars (mean ± std over seeds): ``table_rows[model][metric] = {"mean", "std"}``."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    width = 0.8 / max(len(table_rows), 1)
    x = np.arange(len(keys))
    for i, (model, summ) in enumerate(table_rows.items()):
        means = [summ[k]["mean"] for k in keys]
        stds = [summ[k]["std"] for k in keys]
        ax.bar(x + i * width, means, width, yerr=stds, capsize=3, label=model)
    ax.set_xticks(x + width * (len(table_rows) - 1) / 2, keys)
    ax.set(ylim=(0, 1.05), ylabel="test score (mean ± std over seeds)", title=title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_outcome_grid(images, groups: dict, probs, per_row: int = 6, title: str = ""):
    """One row per outcome (e.g. TP/TN/FP/FN) showing ``per_row`` images with their P(pneumonia)."""
    rows = [(name, idx[:per_row]) for name, idx in groups.items()]
    fig, axes = plt.subplots(len(rows), per_row, figsize=(1.6 * per_row, 1.8 * len(rows)), squeeze=False)
    for r, (name, idx) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(idx):
                ax.imshow(np.asarray(images[idx[c]]), cmap="gray")
                ax.set_title(f"p={probs[idx[c]]:.2f}", fontsize=8)
        axes[r, 0].text(-0.15, 0.5, f"{name}\n(n={len(groups[name])})", transform=axes[r, 0].transAxes,
                        ha="right", va="center", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_filters(weight, title: str = "First-layer filters"):
    """Show convolution kernels ``(out, in, k, k)`` (first input channel) as small images."""
    w = np.asarray(weight.detach().cpu() if hasattr(weight, "detach") else weight)[:, 0]
    n = len(w)
    ncols = min(16, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.6, nrows * 0.6 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(w[i], cmap="RdBu_r", vmin=-np.abs(w[i]).max(), vmax=np.abs(w[i]).max())
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- calibration plots
def plot_reliability(tables: Mapping, title: str = "", ncols: int = 3) -> Figure:
    """Reliability diagrams, one panel per label, with the number of images in every bin.

    ``tables`` maps a label to a ``calibration.reliability_table`` DataFrame (columns
    ``bin_lower, bin_upper, count, confidence, accuracy``). Top of each panel: the accuracy of each
    confidence bin as a bar, the diagonal (perfect calibration) and the gap to each bin's mean
    confidence in red; the ECE of the same bins is written in the corner. Bottom: how many images
    fall in each bin (empty bins show nothing). Binary confidences are ``max(p, 1 - p) >= 0.5``;
    when every panel's bins lie above 0.5 the x axis starts at 0.5.
    """

    if not tables:
        raise ValueError("plot_reliability needs at least one reliability table")
    required = {"bin_lower", "bin_upper", "count", "confidence", "accuracy"}
    for label, table in tables.items():
        missing = required - set(table.columns)
        if missing:
            raise ValueError(f"table {label!r} lacks columns {sorted(missing)}: pass calibration.reliability_table(...)")
    filled_lows = [float(t.loc[t["count"] > 0, "bin_lower"].min()) for t in tables.values() if (t["count"] > 0).any()]
    x_lo = 0.5 if filled_lows and min(filled_lows) >= 0.5 - 1e-9 else 0.0
    n = len(tables)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    height = 4.3 * nrows
    fig = plt.figure(figsize=(3.6 * ncols, height))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.5, wspace=0.3, top=1 - 0.75 / height, bottom=0.45 / height)
    for k, (label, table) in enumerate(tables.items()):
        r, c = divmod(k, ncols)
        inner = outer[r, c].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
        ax = fig.add_subplot(inner[0])
        ax_n = fig.add_subplot(inner[1], sharex=ax)
        counts = table["count"].to_numpy()
        filled = counts > 0
        lower, upper = table["bin_lower"].to_numpy(), table["bin_upper"].to_numpy()
        centres, width = (lower + upper) / 2, upper - lower
        acc, conf = table["accuracy"].to_numpy(), table["confidence"].to_numpy()
        ax.bar(centres[filled], acc[filled], width[filled], color="C0", edgecolor="white", label="accuracy")
        ax.bar(centres[filled], (conf - acc)[filled], width[filled], bottom=acc[filled], color="none",
               edgecolor="C3", hatch="//", lw=0.8, label="gap to confidence")
        ax.plot([x_lo, 1], [x_lo, 1], color="grey", ls="--", lw=1, label="perfect calibration")
        ece = float(np.sum(counts[filled] / max(counts.sum(), 1) * np.abs(acc[filled] - conf[filled])))
        ax.text(0.03, 0.95, f"ECE ({len(table)} bins) {ece:.3f}", transform=ax.transAxes, va="top", fontsize=8)
        ax.set(xlim=(x_lo, 1), ylim=(0, 1.02))
        ax.set_title(textwrap.fill(str(label), 42), fontsize=8)
        ax.set_ylabel("accuracy" if c == 0 else "")
        ax.tick_params(labelbottom=False)
        bars = ax_n.bar(centres[filled], counts[filled], width[filled], color="grey")
        ax_n.bar_label(bars, labels=[str(int(v)) for v in counts[filled]], fontsize=6, padding=1)
        ax_n.set_ylim(0, max(int(counts.max()), 1) * 1.35)
        ax_n.set_xlabel("confidence")
        ax_n.set_ylabel("images" if c == 0 else "")
        ax_n.spines[["top", "right"]].set_visible(False)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, 0.9), frameon=False)
    if title:
        fig.suptitle(title, y=1 - 0.15 / height)
    return fig


# --------------------------------------------------------------------------- Grad-CAM plots
def plot_gradcam_grid(images, cams: Mapping, row_labels: Sequence[str] | None = None,
                      notes: Mapping | None = None, heatmap: bool = False, alpha: float = 0.45,
                      cmap: str = "jet", size: float = 1.8, title: str = "") -> Figure:
    """Rows = images; columns = the original, then for each entry of ``cams`` its overlay
    (preceded by the bare heat map when ``heatmap=True``).

    ``images``: ``(N, H, W)`` / ``(N, 1, H, W)`` uint8 or float in [0, 1]. ``cams`` maps a column
    title (e.g. ``"ResNet18 · layer4 (4×4)"``) to maps ``(N, H, W)`` in [0, 1] of the same images.
    ``row_labels``: one label per row, written left of it. ``notes``: optional ``{column title:
    [one short text per row]}`` written under each overlay (e.g. that model's probability).
    """

    ims = _as_image_list(images)
    if not cams:
        raise ValueError("plot_gradcam_grid needs at least one column of maps in `cams`")
    maps = {k: np.asarray(_to_numpy(v), dtype=float) for k, v in cams.items()}
    for k, v in maps.items():
        if v.ndim != 3 or len(v) != len(ims):
            raise ValueError(f"cams[{k!r}] must be (N, H, W) with N = {len(ims)} images; got shape {v.shape}")
    if row_labels is not None and len(row_labels) != len(ims):
        raise ValueError(f"{len(ims)} images but {len(row_labels)} row labels")
    notes = notes or {}
    for k, v in notes.items():
        if k not in maps or len(v) != len(ims):
            raise ValueError(f"notes[{k!r}] must name a column of `cams` and hold one text per image")
    columns = [("original", None, None, None)]
    for k, v in maps.items():
        if heatmap:
            columns.append((f"{k}\nheat map", k, v, "heat"))
        columns.append((f"{k}\noverlay" if heatmap else k, k, v, "overlay"))
    fig, axes = plt.subplots(len(ims), len(columns), figsize=(size * len(columns) + (1.2 if row_labels else 0),
                                                             size * len(ims) + 0.6), squeeze=False)
    for r, im in enumerate(ims):
        lo, hi = _value_range(im)
        gray = (im.astype(float) - lo) / (hi - lo)
        for c, (name, key, v, kind) in enumerate(columns):
            ax = axes[r, c]
            if kind is None:
                ax.imshow(gray, cmap="gray", vmin=0, vmax=1)
            elif kind == "heat":
                ax.imshow(v[r], cmap=cmap, vmin=0, vmax=1)
            else:
                ax.imshow(cam_overlay(gray, v[r], alpha=alpha, cmap=cmap))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
            if kind == "overlay" and key in notes:
                ax.set_xlabel(notes[key][r], fontsize=7)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_sanity_curves(tables: Mapping, title: str = "") -> Figure:
    """Cascading-randomisation sanity check: mean Spearman rank correlation (solid, ± std band) and
    mean |rho| (dashed) between the trained model's Grad-CAM maps and those of copies with the top
    ``n_top`` blocks re-initialised; one panel per label.

    ``tables`` maps a label to a :func:`pneumolib.explain.sanity_check` DataFrame (columns
    ``n_top, block, spearman, spearman_std, spearman_abs``). The x ticks name the deepest block
    randomised at each step.
    """
    if not tables:
        raise ValueError("plot_sanity_curves needs at least one sanity_check table")
    for label, t in tables.items():
        missing = {"n_top", "block", "spearman", "spearman_std", "spearman_abs"} - set(t.columns)
        if missing:
            raise ValueError(f"table {label!r} lacks columns {sorted(missing)}: pass explain.sanity_check(...)")
    fig, axes = plt.subplots(1, len(tables), figsize=(4.4 * len(tables), 3.9), squeeze=False, sharey=True)
    for k, (ax, (label, t)) in enumerate(zip(axes[0], tables.items())):
        x, m, s = t["n_top"].to_numpy(), t["spearman"].to_numpy(float), t["spearman_std"].to_numpy(float)
        ax.plot(x, m, "o-", color=f"C{k}", label="Spearman rho (mean ± std)")
        ax.fill_between(x, m - s, m + s, color=f"C{k}", alpha=0.15)
        ax.plot(x, t["spearman_abs"].to_numpy(float), "s--", color=f"C{k}", alpha=0.7, ms=4, label="mean |rho|")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, [f"{n} {b}" for n, b in zip(x, t["block"])], fontsize=7, rotation=60, ha="right")
        ax.set(title=label, xlabel="randomised top blocks (deepest one named)", ylim=(-1.05, 1.05))
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel("rank correlation with the trained map")
    axes[0, 0].legend(fontsize=7, loc="lower left", frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- three-class / hierarchical (notebooks 05-06)
def plot_distribution_shift(groups: Mapping, columns: Sequence[str] | None = None, bins: int = 30,
                            title: str = "") -> Figure:
    """One panel per statistic, overlaid density histograms of each group.

    ``groups`` maps a label (e.g. ``"normal train"``) to a DataFrame with one row per image (e.g.
    from :func:`pneumolib.audits.image_statistics`); ``columns`` picks the statistics
    (default: all columns of the first group). Each group's mean is marked with a dashed line.
    """
    if not groups:
        raise ValueError("plot_distribution_shift needs at least one group")
    first = next(iter(groups.values()))
    columns = list(columns or first.columns)
    fig, axes = plt.subplots(1, len(columns), figsize=(3.4 * len(columns), 3.0), squeeze=False)
    for ax, col in zip(axes[0], columns):
        values = [np.asarray(df[col], dtype=float) for df in groups.values()]
        lo, hi = min(v.min() for v in values), max(v.max() for v in values)
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
        for i, (label, v) in enumerate(zip(groups, values)):
            ax.hist(v, bins=edges, density=True, histtype="step", lw=1.6, color=f"C{i}", label=f"{label} (n={len(v)})")
            ax.axvline(v.mean(), color=f"C{i}", ls="--", lw=1)
        ax.set(xlabel=col, yticks=[])
        ax.spines[["top", "right", "left"]].set_visible(False)
    axes[0, 0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_error_sources(counts: Mapping, parts: Mapping | None = None, title: str = "") -> Figure:
    """Stacked horizontal bars: one bar per model, one segment per error source, count in each segment.

    ``counts[model]`` is a dict such as :func:`pneumolib.hierarchical.error_breakdown` returns;
    ``parts`` maps its keys to legend labels (default: missed pneumonia, false pneumonia, wrong subtype).
    """
    parts = dict(parts or {"missed_pneumonia": "pneumonia called normal (A)",
                           "false_pneumonia": "normal called pneumonia (A)",
                           "stage_b": "wrong subtype (B)"})
    models = list(counts)
    fig, ax = plt.subplots(figsize=(8, 0.7 * len(models) + 1.4))
    left = np.zeros(len(models))
    for i, (key, label) in enumerate(parts.items()):
        values = np.array([float(counts[m][key]) for m in models])
        bars = ax.barh(models, values, left=left, color=f"C{i}", label=label)
        ax.bar_label(bars, labels=[f"{v:.3g}" if v else "" for v in values], label_type="center", fontsize=8)
        left += values
    ax.invert_yaxis()
    ax.set_xlabel("test errors")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(parts))
    if title:
        ax.set_title(title, pad=28)
    fig.tight_layout()
    return fig


def plot_two_stage_rules(p_a, p_b, y_true, classes: Sequence[str] = ("normal", "bacteria", "virus"),
                         threshold: float = 0.5, title: str = "") -> Figure:
    """Test images in the (P(pneumonia), P(virus | pneumonia)) plane, coloured by true class, with the
    decision boundaries of the sequential rule (``pA = threshold``) and of argmax over the combined
    probabilities (``pA = 1 / (1 + max(pB, 1 - pB))``); the band between them is where the rules differ.
    """

    p_a, p_b, y_true = np.asarray(p_a, float), np.asarray(p_b, float), np.asarray(y_true, int)
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    for k, name in enumerate(classes):
        sel = y_true == k
        ax.scatter(p_a[sel], p_b[sel], s=10, alpha=0.6, color=f"C{k}", label=f"true {name}")
    grid = np.linspace(0, 1, 201)
    cut = argmax_normal_cutoff(grid)
    ax.plot(cut, grid, color="k", lw=1.5, label="argmax: normal to the left")
    ax.axvline(threshold, color="k", ls="--", lw=1.2, label=f"sequential: pA = {threshold:g}")
    ax.fill_betweenx(grid, np.minimum(cut, threshold), np.maximum(cut, threshold), color="grey", alpha=0.2,
                     label="rules disagree")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Stage A: P(pneumonia)", ylabel="Stage B: P(virus | pneumonia)",
           title=title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig
