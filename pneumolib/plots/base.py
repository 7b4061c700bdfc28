"""Saving figures for the report, and the image helpers every plot module shares."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..profiles import Profile
from ..results import atomic_write_bytes, figures_dir

DPI = 150


class SavedFigure(type(Path())):
    """The path :func:`save_figure` wrote. A notebook cell ending in ``save_figure(...)`` shows only
    the figure: IPython displays nothing for this value (a local absolute path would otherwise
    appear above the figure and in every HTML export). ``str()`` and ``print()`` still give the path."""

    def _ipython_display_(self) -> None:
        pass


def save_figure(fig: Figure, profile: str | Profile, name: str) -> SavedFigure:
    """Save ``fig`` as ``figures/<profile>/<name>.png`` (dpi 150, tight box), atomically.

    Returns the path written, as a :class:`SavedFigure` (a path a notebook does not display).
    ``name`` may end in ``.png``; it is not added twice.
    """
    profile_name = profile.name if isinstance(profile, Profile) else str(profile)
    name = name[:-4] if name.endswith(".png") else name
    path = figures_dir(profile_name) / f"{name}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return SavedFigure(path)


# --------------------------------------------------------------------------- helpers
def to_numpy(images) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    return np.asarray(images)


def as_image_list(images) -> list[np.ndarray]:
    """A batch ``(N, H, W)`` / ``(N, 1, H, W)`` (numpy or torch) or a list of 2-D arrays -> list of 2-D arrays."""
    if isinstance(images, (list, tuple)):
        out = [to_numpy(im) for im in images]
    else:
        arr = to_numpy(images)
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


def value_range(image: np.ndarray) -> tuple[float, float]:
    """Display range: 0-255 for integer images, 0-1 for float images (no per-image rescaling)."""
    return (0.0, 255.0) if np.issubdtype(image.dtype, np.integer) else (0.0, 1.0)


def show_image(ax, image: np.ndarray, cmap: str, title: str | None = None) -> None:
    vmin, vmax = value_range(image)
    ax.imshow(
        image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest" if max(image.shape) <= 64 else "antialiased"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
