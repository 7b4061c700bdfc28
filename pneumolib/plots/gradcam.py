"""Grad-CAM plots (notebook 08): map grids and the randomisation sanity check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..explain import cam_overlay
from .base import as_image_list, to_numpy, value_range


def plot_gradcam_grid(
    images,
    cams: Mapping,
    row_labels: Sequence[str] | None = None,
    notes: Mapping | None = None,
    heatmap: bool = False,
    alpha: float = 0.45,
    cmap: str = "jet",
    size: float = 1.8,
    title: str = "",
) -> Figure:
    """Rows = images; columns = the original, then for each entry of ``cams`` its overlay
    (preceded by the bare heat map when ``heatmap=True``).

    ``images``: ``(N, H, W)`` / ``(N, 1, H, W)`` uint8 or float in [0, 1]. ``cams`` maps a column
    title (e.g. ``"ResNet18 · layer4 (4×4)"``) to maps ``(N, H, W)`` in [0, 1] of the same images.
    ``row_labels``: one label per row, written left of it. ``notes``: optional ``{column title:
    [one short text per row]}`` written under each overlay (e.g. that model's probability).
    """

    ims = as_image_list(images)
    if not cams:
        raise ValueError("plot_gradcam_grid needs at least one column of maps in `cams`")
    maps = {k: np.asarray(to_numpy(v), dtype=float) for k, v in cams.items()}
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
    fig, axes = plt.subplots(
        len(ims),
        len(columns),
        figsize=(size * len(columns) + (1.2 if row_labels else 0), size * len(ims) + 0.6),
        squeeze=False,
    )
    for r, im in enumerate(ims):
        lo, hi = value_range(im)
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
