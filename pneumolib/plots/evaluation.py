"""Model evaluation plots (notebooks 03-05): training curves, confusion matrices, ROC/PR curves,
metric bars, outcome grids, first-layer filters."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve


def plot_history(histories: dict, title: str = "Training curves", best_epochs: dict | None = None):
    """Loss, a validation metric and the learning rate per epoch, one colour per run.

    ``histories`` maps a label to a history DataFrame (columns epoch, phase, train_loss, val_loss,
    val_accuracy, lr and, in newer runs, val_auroc, which is shown instead of accuracy when every
    run has it). ``best_epochs`` (label -> epoch) marks the checkpoint each run kept. A dotted
    vertical line marks the end of the head-only phase when there is one.
    """
    fig, (ax_loss, ax_val, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 1, 0.7]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metric = (
        "val_auroc"
        if all("val_auroc" in h and h["val_auroc"].notna().all() for h in histories.values())
        else "val_accuracy"
    )
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
    ax_val.set(
        xlabel="epoch",
        ylabel=f"validation {name}",
        title=f"validation {name}" + (" (circle: kept checkpoint)" if best_epochs else ""),
    )
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate", yscale="log")
    ax_val.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
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


def plot_metric_bars(
    table_rows: dict, keys=("accuracy", "precision", "recall", "specificity", "f1", "auroc"), title: str = ""
):
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
