"""Three-class and hierarchical plots (notebooks 05-06): distribution shift, error sources, two-stage rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..hierarchical import argmax_normal_cutoff


def plot_distribution_shift(
    groups: Mapping, columns: Sequence[str] | None = None, bins: int = 30, title: str = ""
) -> Figure:
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
    parts = dict(
        parts
        or {
            "missed_pneumonia": "pneumonia called normal (A)",
            "false_pneumonia": "normal called pneumonia (A)",
            "stage_b": "wrong subtype (B)",
        }
    )
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


def plot_two_stage_rules(
    p_a, p_b, y_true, classes: Sequence[str] = ("normal", "bacteria", "virus"), threshold: float = 0.5, title: str = ""
) -> Figure:
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
    ax.fill_betweenx(
        grid, np.minimum(cut, threshold), np.maximum(cut, threshold), color="grey", alpha=0.2, label="rules disagree"
    )
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set(
        xlim=(0, 1), ylim=(0, 1), xlabel="Stage A: P(pneumonia)", ylabel="Stage B: P(virus | pneumonia)", title=title
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def plot_framing_study(study: Mapping, title: str = "") -> Figure:
    """The framing study (``benchmarks/framing.json``): validation and test macro-F1 per framing (left; the one
    validation chose is marked), and the error rate on normal test images by aspect-ratio third of the
    original file (right: a rising staircase is a model using the framing cue)."""
    framings = study.get("framings") or {}
    if not framings:
        raise ValueError("plot_framing_study needs a study with framings (run python scripts/framing_study.py)")
    names = list(framings)
    x = np.arange(len(names))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, (split, key) in enumerate((("validation", "val_macro_f1"), ("test", "test_macro_f1"))):
        left.bar(x + (i - 0.5) * 0.38, [framings[n][key] for n in names], 0.38, label=split, color=f"C{i}")
    chosen = study.get("chosen_on_validation")
    left.set_xticks(x, [f"{n}\n(chosen)" if n == chosen else n for n in names])
    lows = [min(framings[n]["val_macro_f1"], framings[n]["test_macro_f1"]) for n in names]
    left.set(ylabel="macro-F1", ylim=(max(0.0, min(lows) - 0.1), 1.0), title="Chosen on validation; test only reported")
    left.legend(frameon=False, fontsize=8)
    thirds = ("narrow", "middle", "wide")
    for i, third in enumerate(thirds):
        errors = [(framings[n].get("normal_error_by_aspect") or {}).get(third, np.nan) for n in names]
        right.bar(x + (i - 1) * 0.26, errors, 0.26, label=f"{third} third", color=plt.cm.Greys(0.35 + 0.25 * i))
    right.set_xticks(x, names)
    right.set(ylabel="error rate (normal test images)", ylim=(0, 1), title="Error by aspect ratio of the original")
    right.legend(frameon=False, fontsize=8)
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_resolution_study(study: Mapping, title: str = "") -> Figure:
    """The resolution study (``benchmarks/resolution.json``): validation macro-F1 against input size per model
    (left: each seed a dot, the mean a line; test as a dashed line, reported only), and the training seconds per
    run (right: what each extra pixel costs on this machine). The size the rule chose is marked."""
    rows = study.get("rows") or []
    if not rows:
        raise ValueError("plot_resolution_study needs a study with rows (run python scripts/resolution_study.py)")
    models = sorted({r["model"] for r in rows})
    chosen = (study.get("choice") or {}).get("chosen")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, model in enumerate(models):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["size"])
        sizes = [r["size"] for r in mine]
        seeds = f"{len(mine[0]['seeds'])} seed{'s' if len(mine[0]['seeds']) > 1 else ''}"
        left.plot(sizes, [r["val_macro_f1"] for r in mine], "-o", color=f"C{i}", label=f"{model}, val ({seeds})")
        left.plot(sizes, [r["test_macro_f1"] for r in mine], "--", color=f"C{i}", alpha=0.6, label=f"{model}, test")
        for r in mine:
            left.scatter([r["size"]] * len(r["runs"]), [x["val_macro_f1"] for x in r["runs"]], s=10, color=f"C{i}")
        right.plot(sizes, [r["train_s"] / 60 for r in mine], "-o", color=f"C{i}", label=model)
    for ax in (left, right):
        if chosen is not None:
            ax.axvline(chosen, color="0.6", lw=1, ls=":")
        ax.set_xticks(sorted({r["size"] for r in rows}))
        ax.spines[["top", "right"]].set_visible(False)
    left.set(xlabel="input px", ylabel="macro-F1", title="Validation decides; test only reported")
    left.legend(frameon=False, fontsize=7)
    right.set(xlabel="input px", ylabel="minutes per training run", title="What the pixels cost (this machine)")
    right.set_ylim(bottom=0)
    right.legend(frameon=False, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
