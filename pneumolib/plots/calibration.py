"""Calibration plots (notebook 07): reliability diagrams before and after temperature scaling."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_reliability(tables: Mapping, title: str = "", ncols: int = 3) -> Figure:
    """Reliability diagrams, one panel per label, with the number of images in every bin.

    ``tables`` maps a label to a ``calibration.reliability_table`` DataFrame (columns
    ``bin_lower, bin_upper, count, confidence, accuracy``). Top of each panel: the accuracy of each
    confidence bin as a bar, the diagonal (perfect calibration) and the gap to each bin's mean
    confidence in red (one legend above the panels,
    outside the data); the ECE of the same bins is written in the corner. Bottom: how many images
    fall in each bin (empty bins show nothing). Binary confidences are ``max(p, 1 - p) >= 0.5``;
    when every panel's bins lie above 0.5 the x axis starts at 0.5.
    """

    if not tables:
        raise ValueError("plot_reliability needs at least one reliability table")
    required = {"bin_lower", "bin_upper", "count", "confidence", "accuracy"}
    for label, table in tables.items():
        missing = required - set(table.columns)
        if missing:
            raise ValueError(
                f"table {label!r} lacks columns {sorted(missing)}: pass calibration.reliability_table(...)"
            )
    filled_lows = [float(t.loc[t["count"] > 0, "bin_lower"].min()) for t in tables.values() if (t["count"] > 0).any()]
    x_lo = 0.5 if filled_lows and min(filled_lows) >= 0.5 - 1e-9 else 0.0
    n = len(tables)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    height = 4.3 * nrows + 0.7
    fig = plt.figure(figsize=(3.6 * ncols, height))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.5, wspace=0.3, top=1 - 1.45 / height, bottom=0.45 / height)
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
        ax.bar(
            centres[filled],
            (conf - acc)[filled],
            width[filled],
            bottom=acc[filled],
            color="none",
            edgecolor="C3",
            hatch="//",
            lw=0.8,
            label="gap to confidence",
        )
        ax.plot([x_lo, 1], [x_lo, 1], color="grey", ls="--", lw=1, label="perfect calibration")
        ece = float(np.sum(counts[filled] / max(counts.sum(), 1) * np.abs(acc[filled] - conf[filled])))
        ax.text(
            0.03,
            0.95,
            f"ECE ({len(table)} bins) {ece:.3f}",
            transform=ax.transAxes,
            va="top",
            fontsize=10,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5},
        )
        ax.set(xlim=(x_lo, 1), ylim=(0, 1.02))
        ax.set_title(textwrap.fill(str(label), 34), fontsize=10.5)
        ax.tick_params(labelsize=9)
        ax_n.tick_params(labelsize=9)
        ax.set_ylabel("accuracy" if c == 0 else "", fontsize=10)
        ax.tick_params(labelbottom=False)
        bars = ax_n.bar(centres[filled], counts[filled], width[filled], color="grey")
        ax_n.bar_label(bars, labels=[str(int(v)) for v in counts[filled]], fontsize=7.5, padding=1)
        ax_n.set_ylim(0, max(int(counts.max()), 1) * 1.35)
        ax_n.set_xlabel("confidence", fontsize=10)
        ax_n.set_ylabel("images" if c == 0 else "", fontsize=10)
        ax_n.spines[["top", "right"]].set_visible(False)
        if k == 0:
            handles, names = ax.get_legend_handles_labels()
    fig.legend(
        handles, names, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.38 / height), ncol=3, fontsize=10, frameon=False
    )
    if title:
        fig.suptitle(title, y=1 - 0.1 / height, fontsize=13)
    return fig
