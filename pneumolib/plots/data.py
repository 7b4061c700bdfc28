"""Data plots (notebooks 01-02): class counts, image grids, augmentations, image sizes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..transforms import Augment
from .base import as_image_list, show_image, to_numpy


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


def plot_image_grid(
    images,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    cmap: str = "gray",
    size: float = 1.6,
    suptitle: str | None = None,
) -> Figure:
    """Images in a grid, one axis per image (unused grid cells are removed).

    ``images``: ``(N, H, W)`` or ``(N, 1, H, W)`` uint8 (shown on 0-255) or float (shown on 0-1),
    numpy or torch, or a list of 2-D arrays of different sizes (each keeps its aspect ratio).
    """
    ims = as_image_list(images)
    if titles is not None and len(titles) != len(ims):
        raise ValueError(f"{len(ims)} images but {len(titles)} titles")
    ncols = max(1, min(ncols, len(ims)))
    nrows = max(1, math.ceil(len(ims) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if titles else 0)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(ims):
            show_image(ax, ims[k], cmap, titles[k] if titles is not None else None)
        else:
            ax.remove()
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_augmentations(
    images, augment_list: Mapping[str, Augment], seed: int = 0, cmap: str = "gray", size: float = 1.6
) -> Figure:
    """Rows = images, columns = the original, then each augmentation applied to the *same* images.

    ``images``: ``(N, H, W)`` / ``(N, 1, H, W)``, uint8 or float in [0, 1]. Every augmentation gets
    its own generator seeded with ``seed``, so the figure is reproducible and columns do not depend
    on each other's random draws.
    """
    x = torch.as_tensor(to_numpy(images))
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
            show_image(axes[row, col], batch[row, 0].numpy(), cmap, name if row == 0 else None)
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
