"""Model evaluation plots (notebooks 03-05): training curves, confusion matrices, ROC/PR curves,
metric bars, outcome grids, first-layer filters."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

SEED_LABEL = re.compile(r"^(?P<model>.+?)\s+(?:s|seed\s*)(?P<seed>\d+)$")


def group_by_model(labels) -> dict[str, list[str]]:
    """``{"ResNet18 (scratch)": ["ResNet18 (scratch) s0", ...]}`` from run labels ``"<model> s<n>"`` or
    ``"<model> seed <n>"``; a label without a seed is its own group."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        m = SEED_LABEL.match(str(label))
        groups.setdefault(m["model"] if m and m["model"].strip() else str(label), []).append(label)
    return groups


def _mean_band(frames, column: str):
    """Epochs, mean, std of ``column`` over the runs still training at each epoch."""
    table = pd.concat([f.set_index("epoch")[column].rename(i) for i, f in enumerate(frames)], axis=1).sort_index()
    return table.index.to_numpy(), table.mean(axis=1).to_numpy(), table.std(axis=1, ddof=0).fillna(0).to_numpy()


def plot_history(
    histories: dict,
    title: str = "Training curves",
    best_epochs: dict | None = None,
    bands: bool | None = None,
):
    """Loss, a validation metric and the learning rate per epoch.

    ``histories`` maps a label to a history DataFrame (columns epoch, phase, train_loss, val_loss,
    val_accuracy, lr and, in newer runs, val_auroc, which is shown instead of accuracy when every
    run has it). With ``bands`` (default: when the labels name several models, ``"<model> s<seed>"``,
    one of them with several seeds) each model is one colour: the mean over its seeds as a line and
    mean ± std as a shaded band (over the seeds still training at that epoch; early stopping ends some
    runs sooner), and the kept epochs as ticks along the bottom of the metric panel. Without bands each
    run is one colour and ``best_epochs`` (label -> epoch) circles the checkpoint each run kept. A dotted
    vertical line marks the end of the head-only phase when there is one. Legends sit below the panels.
    """
    groups = group_by_model(histories)
    if bands is None:
        bands = len(groups) > 1 and any(len(v) > 1 for v in groups.values())
    fig, (ax_loss, ax_val, ax_lr) = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1, 0.7]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metric = (
        "val_auroc"
        if all("val_auroc" in h and h["val_auroc"].notna().all() for h in histories.values())
        else "val_accuracy"
    )
    series = groups if bands else {label: [label] for label in histories}
    for i, (name, labels) in enumerate(series.items()):
        c = colors[i % len(colors)]
        frames = [histories[lb] for lb in labels]
        if bands:
            n = f" (n = {len(frames)})" if len(frames) > 1 else ""
            for ax, col, ls, lab in (
                (ax_loss, "train_loss", "--", None),
                (ax_loss, "val_loss", "-", name + n),
                (ax_val, metric, "-", name + n),
            ):
                x, mean, std = _mean_band(frames, col)
                ax.plot(x, mean, color=c, ls=ls, label=lab)
                if len(frames) > 1:
                    ax.fill_between(x, mean - std, mean + std, color=c, alpha=0.18 if ls == "-" else 0.08, lw=0)
            x, mean, _ = _mean_band(frames, "lr")
            ax_lr.plot(x, mean, color=c, marker=".", label=name)
            kept = [(best_epochs or {}).get(lb) for lb in labels]
            kept = [k for k in kept if k is not None]
            if kept:
                ax_val.plot(
                    kept, [0.02] * len(kept), "|", color=c, ms=12, mew=2, transform=ax_val.get_xaxis_transform()
                )
        else:
            h = frames[0]
            ax_loss.plot(h["epoch"], h["train_loss"], color=c, ls="--", alpha=0.8)
            ax_loss.plot(h["epoch"], h["val_loss"], color=c, label=name)
            ax_val.plot(h["epoch"], h[metric], color=c, label=name)
            ax_lr.plot(h["epoch"], h["lr"], color=c, marker=".", label=name)
            best = (best_epochs or {}).get(name)
            if best is not None and best in set(h["epoch"]):
                ax_val.plot(best, h.loc[h["epoch"] == best, metric].iloc[0], "o", color=c, ms=8, mfc="none", mew=2)
        heads = [f.loc[f["phase"] == "head", "epoch"] for f in frames]
        ends = {float(hd.max()) for hd in heads if len(hd)}
        for end in ends:
            for ax in (ax_loss, ax_val, ax_lr):
                ax.axvline(end + 0.5, color=c, ls=":", alpha=0.7)
    name = "AUROC" if metric == "val_auroc" else "accuracy"
    band_note = " (mean ± std over seeds)" if bands else ""
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (dashed: train, solid: validation)")
    if bands and best_epochs:
        kept_note = " (ticks: kept epochs)"
    elif best_epochs:
        kept_note = " (circle: kept checkpoint)"
    else:
        kept_note = ""
    ax_val.set(xlabel="epoch", ylabel=f"validation {name}", title=f"validation {name}{kept_note}")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate", yscale="log")
    handles, labels = ax_val.get_legend_handles_labels()
    fig.suptitle(title + band_note)
    fig.tight_layout()
    if handles:
        fig.subplots_adjust(bottom=0.27)
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=9, frameon=False)
    return fig


def plot_confusion_matrix(cm, classes, normalize: bool = False, title: str = "Confusion matrix", ax=None):
    """Counts (or row-normalised rates) with the numbers written in each cell; rows = true class."""
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    fig, ax = (
        (ax.figure, ax)
        if ax is not None
        else plt.subplots(figsize=(3.2 + 0.6 * len(classes), 2.8 + 0.5 * len(classes)))
    )
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    for i in range(len(classes)):
        for j in range(len(classes)):
            text = f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=11,
                color="white" if shown[i, j] > (0.5 if normalize else shown.max() / 2) else "black",
            )
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
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
    for name, t in points.items():
        pred = y_prob >= t
        tp, fp = np.sum(pred & (y_true == 1)), np.sum(pred & (y_true == 0))
        r, f = tp / max((y_true == 1).sum(), 1), fp / max((y_true == 0).sum(), 1)
        p = tp / max(tp + fp, 1)
        marker = "o" if name.startswith("t=") else "*"
        size = 40 if marker == "o" else 160
        sc = ax_roc.scatter(
            f, r, s=size, marker=marker, zorder=3, label=f"{name}" + (f" (t={t:.2f})" if marker == "*" else "")
        )
        ax_pr.scatter(r, p, s=size, marker=marker, zorder=3, color=sc.get_facecolor())
    ax_roc.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (recall)", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    ax_roc.legend(fontsize=7, loc="lower right")
    ax_pr.legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_axis_floor(lows, step: float = 0.05, pad: float = 0.03) -> float:
    """Where a zoomed bar axis starts: a multiple of ``step`` at least ``pad`` below the lowest bar (or
    error-bar end), never below 0."""
    lows = [v for v in lows if np.isfinite(v)]
    if not lows:
        return 0.0
    return max(0.0, float(np.floor((min(lows) - pad) / step) * step))


def plot_metric_bars(
    table_rows: dict,
    keys=("accuracy", "precision", "recall", "specificity", "f1", "auroc"),
    title: str = "",
    zoom: bool = True,
):
    """Grouped bars (mean ± std over seeds): ``table_rows[model][metric] = {"mean", "std"}``.

    Every bar carries its value; the legend sits above the axes, outside the data. With ``zoom`` the
    y axis starts just below the lowest bar (a multiple of 0.05, see :func:`bar_axis_floor`) so that
    differences of a hundredth are visible; the axis label states where it starts.
    """
    n = max(len(table_rows), 1)
    fig, ax = plt.subplots(figsize=(10, 4.4))
    width = 0.8 / n
    x = np.arange(len(keys))
    lows = []
    for i, (model, summ) in enumerate(table_rows.items()):
        means = np.array([summ[k]["mean"] for k in keys], dtype=float)
        stds = np.nan_to_num(np.array([summ[k].get("std") or 0.0 for k in keys], dtype=float))
        lows += list(means - stds)
        bars = ax.bar(x + i * width, means, width, yerr=stds, capsize=3, label=model, error_kw={"lw": 0.8})
        for bar, m, sd in zip(bars, means, stds):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                m + sd,
                f"{m:.3f}",
                ha="center",
                va="bottom",
                fontsize=7.5,
                rotation=90,
            )
    lo = bar_axis_floor(lows) if zoom else 0.0
    ax.set_xticks(x + width * (n - 1) / 2, keys)
    ylabel = "test score (mean ± std over seeds)" + (f"\naxis starts at {lo:.2f}, not 0" if lo > 0 else "")
    ax.set(ylim=(lo, 1.0 + 0.16 * (1.0 - lo)), ylabel=ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(n, 4), frameon=False)
    if title:
        fig.suptitle(title)
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
        axes[r, 0].text(
            -0.15,
            0.5,
            f"{name}\n(n={len(groups[name])})",
            transform=axes[r, 0].transAxes,
            ha="right",
            va="center",
            fontsize=10,
        )
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
