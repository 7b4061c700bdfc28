"""Helpers for the Grad-CAM notebook (08): layers by name, a border-mass proxy, example picking,
and an interactive outcome browser.

The Grad-CAM computation itself lives in :mod:`pneumolib.explain`; this module only wraps it
for reporting:

* :func:`layer_names`, :func:`get_layer`, :func:`layer_info`: which layer a map comes from and
  how coarse it is (``feature_map_size``) at the input size actually used;
* :func:`border_mass`, :func:`border_mass_summary`: what fraction of a map's mass lies in the
  outer band of the image (borders, where text markers and collimation edges sit) compared
  with the band's share of the area (what a uniform map would give);
* :func:`first_examples`, :func:`three_class_cases`: which test images to show;
* :func:`cam_browser`: an ``ipywidgets`` picker (outcome type + rank) for JupyterLab.

Ground rule: imports torch, numpy and :mod:`pneumolib.explain` at module level; matplotlib,
ipywidgets only inside :func:`cam_browser`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .explain import cam_overlay, feature_map_size, grad_cam, module_name

__all__ = [
    "ALTERNATIVE_LAYERS",
    "layer_names",
    "get_layer",
    "layer_info",
    "border_mass",
    "border_mass_summary",
    "first_examples",
    "three_class_cases",
    "cam_browser",
]

# Finer (earlier) layers worth trying when the default target layer's map is tiny.
# Names are ``model.named_modules()`` paths of a :class:`~pneumolib.models.Classifier`.
ALTERNATIVE_LAYERS: dict[str, tuple[str, ...]] = {
    "simple_cnn": (),
    "resnet18": ("backbone.layer3",),
    "densenet121": ("backbone.features.denseblock3", "backbone.features.denseblock2"),
}


def _default_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    """``(name, module)`` of the model's ``target_layer``, or None when it has none."""
    layer = getattr(model, "target_layer", None)
    if layer is None:
        return None
    return getattr(model, "target_layer_name", None) or module_name(model, layer), layer


def layer_names(model: nn.Module) -> list[str]:
    """Names usable with :func:`get_layer`: the default target layer first, then the alternatives."""
    default = (_default_layer(model) or (None,))[0]
    alts = [n for n in ALTERNATIVE_LAYERS.get(getattr(model, "name", ""), ()) if _has(model, n)]
    return ([default] if default else []) + [n for n in alts if n != default]


def _has(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


def get_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """``(name, module)`` of the layer called ``name`` (default: the model's ``target_layer``).

    Raises ``ValueError`` listing the suggested names when ``name`` does not exist in ``model``.
    """
    if name is None:
        default = _default_layer(model)
        if default is None:
            raise ValueError("model has no `target_layer`; pass a layer name, e.g. one of "
                             f"{[n for n, _ in model.named_modules() if n][:8]}")
        return default
    try:
        return name, model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"{type(model).__name__} {getattr(model, 'name', '')!r} has no layer {name!r}; "
                         f"suggested layers: {layer_names(model)} (any name from model.named_modules() works)") from None


def layer_info(model: nn.Module, image_size: int, name: str | None = None) -> dict:
    """Where a Grad-CAM map comes from and how coarse it is at ``image_size`` px input.

    Returns ``{"layer", "map_size": [h, w], "input_size", "network_input", "is_default"}``;
    ``network_input`` is the size the backbone really sees (DenseNet121 upsamples small inputs).
    """
    layer_name, layer = get_layer(model, name)
    h, w = feature_map_size(model, image_size, layer=layer)
    adapter_size = getattr(getattr(model, "adapter", None), "size", None)
    return {"layer": layer_name, "map_size": [h, w], "input_size": int(image_size),
            "network_input": int(adapter_size or image_size),
            "is_default": layer is getattr(model, "target_layer", None)}


# --------------------------------------------------------------------------- border mass


def _band_mask(h: int, w: int, border: int) -> np.ndarray:
    if border < 1 or 2 * border >= min(h, w):
        raise ValueError(f"border must be at least 1 px and leave a central region in a {h}x{w} map; got {border}")
    mask = np.ones((h, w), dtype=bool)
    mask[border:h - border, border:w - border] = False
    return mask


def border_mass(cams, border_frac: float = 0.15) -> tuple[np.ndarray, float]:
    """Per-map fraction of Grad-CAM mass in the outer band, and the band's share of the area.

    ``cams``: ``(N, H, W)`` non-negative maps (e.g. from :func:`pneumolib.explain.grad_cam`).
    The band is ``round(border_frac * min(H, W))`` pixels wide (at least 1) on every side.
    Maps with zero total mass (no positive evidence anywhere) give ``nan``. A uniform map gives
    exactly the area share, so compare the mass with that number, not with 0.
    """
    c = np.asarray(cams.detach().cpu() if isinstance(cams, torch.Tensor) else cams, dtype=np.float64)
    if c.ndim == 2:
        c = c[None]
    if c.ndim != 3:
        raise ValueError(f"cams must be (N, H, W) or (H, W); got shape {c.shape}")
    if not 0 < border_frac < 0.5:
        raise ValueError(f"border_frac must be in (0, 0.5), got {border_frac}")
    if (c < 0).any():
        raise ValueError("cams must be non-negative (Grad-CAM maps are ReLU'd and lie in [0, 1])")
    h, w = c.shape[1:]
    mask = _band_mask(h, w, max(1, int(round(border_frac * min(h, w)))))
    total = c.sum(axis=(1, 2))
    band = c[:, mask].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, band / np.where(total > 0, total, 1), np.nan)
    return frac, float(mask.mean())


def border_mass_summary(cams, border_frac: float = 0.15) -> dict:
    """:func:`border_mass` averaged over maps: ``border_mass`` (mean), ``border_mass_std``,
    ``area_fraction``, ``ratio`` (mass / area: 1 = no preference, > 1 = drawn to the borders,
    < 1 = drawn to the centre), ``border_px``, ``n_maps`` and ``n_empty`` (all-zero maps, excluded)."""
    frac, area = border_mass(cams, border_frac)
    ok = frac[~np.isnan(frac)]
    h, w = np.asarray(cams).shape[-2:]
    mean = float(ok.mean()) if ok.size else float("nan")
    return {"border_mass": mean, "border_mass_std": float(ok.std()) if ok.size else float("nan"),
            "area_fraction": area, "ratio": mean / area if ok.size else float("nan"),
            "border_px": max(1, int(round(border_frac * min(h, w)))), "border_frac": border_frac,
            "n_maps": int(len(frac)), "n_empty": int(np.isnan(frac).sum())}


# --------------------------------------------------------------------------- examples


def first_examples(groups: Mapping[str, Sequence[int]]) -> dict[str, int | None]:
    """The first (most confident, see :func:`~pneumolib.explain.outcome_indices`) index of each
    outcome, ``None`` where an outcome has no image."""
    return {k: (int(v[0]) if len(v) else None) for k, v in groups.items()}


def three_class_cases(y_true, probs, classes: Sequence[str], correct: Sequence[str] = ("bacteria", "normal"),
                      preferred_error: tuple[str, str] = ("normal", "virus")) -> tuple[list[dict], np.ndarray]:
    """Pick test images to explain for a multiclass model, plus its confusion matrix (rows = true).

    ``correct``: classes for which the most confident *correct* case is picked.
    The error case is ``preferred_error`` = (true, predicted) when the confusion matrix has such
    errors, else its most frequent off-diagonal cell. Each case is a dict with ``case``, ``index``,
    ``true``, ``pred``, ``prob`` (of the predicted class), ``count`` (images in that cell) and,
    for the error, ``most_frequent`` (whether the cell is the largest off-diagonal one). Cases
    without any image are left out.
    """
    y = np.asarray(y_true).astype(int).reshape(-1)
    p = np.asarray(probs, dtype=float)
    k = len(classes)
    if p.ndim != 2 or p.shape != (len(y), k):
        raise ValueError(f"probs must be (N, {k}) for {k} classes and {len(y)} labels; got {p.shape}")
    unknown = [c for c in (*correct, *preferred_error) if c not in classes]
    if unknown:
        raise ValueError(f"unknown class names {unknown}; classes are {list(classes)}")
    pred = p.argmax(1)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y, pred), 1)
    conf = p[np.arange(len(y)), pred]

    def most_confident(t, q):
        idx = np.flatnonzero((y == t) & (pred == q))
        return int(idx[np.argmax(conf[idx])]) if idx.size else None

    cases = []
    for c in correct:
        t = classes.index(c)
        i = most_confident(t, t)
        if i is not None:
            cases.append(dict(case=f"correct {c}", index=i, true=c, pred=c, prob=float(conf[i]), count=int(cm[t, t])))
    off = cm.copy()
    np.fill_diagonal(off, -1)
    if off.max() > 0:
        t, q = classes.index(preferred_error[0]), classes.index(preferred_error[1])
        if cm[t, q] == 0:
            t, q = np.unravel_index(np.argmax(off), off.shape)
        i = most_confident(t, q)
        cases.append(dict(case=f"error {classes[t]} -> {classes[q]}", index=i, true=classes[t], pred=classes[q],
                          prob=float(conf[i]), count=int(cm[t, q]), most_frequent=bool(cm[t, q] == off.max())))
    return cases, cm


# --------------------------------------------------------------------------- interactive


def cam_browser(model: nn.Module, images, y_true, probs, threshold: float, groups: Mapping[str, Sequence[int]],
                layer: str | None = None, class_names: Sequence[str] = ("normal", "pneumonia"), alpha: float = 0.45):
    """An ``ipywidgets`` browser: a Dropdown for the outcome (TP/TN/FP/FN) and an IntSlider over the
    images of that outcome (most confident first); shows truth, prediction, P(pneumonia) and the
    Grad-CAM overlay of the *predicted* class. Returns the widget (a ``VBox``; display it as a cell's
    last expression). ``box.render()`` draws the current selection into the widget's output area
    and returns the image index; it runs once on creation, which is all a headless run does.

    ``images``: float ``(N, 1, H, W)`` in [0, 1]; ``probs``: P(pneumonia) ``(N,)``; ``groups``:
    :func:`~pneumolib.explain.outcome_indices` of the same images.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    x = torch.as_tensor(images).float()
    y, p = np.asarray(y_true).astype(int), np.asarray(probs, dtype=float)
    options = [k for k, v in groups.items() if len(v)]
    if not options:
        raise ValueError("every outcome group is empty: nothing to browse")
    _, module = get_layer(model, layer)
    outcome = widgets.Dropdown(options=options, value=options[0], description="outcome")
    rank = widgets.IntSlider(value=0, min=0, max=len(groups[options[0]]) - 1, description="rank")
    out = widgets.Output()

    def render(*_):
        idx = int(groups[outcome.value][min(rank.value, len(groups[outcome.value]) - 1)])
        pred = int(p[idx] >= threshold)
        cam = grad_cam(model, x[idx:idx + 1], target_class=pred, layer=module)[0]
        out.clear_output(wait=True)
        with out:
            fig, axes = plt.subplots(1, 2, figsize=(5.2, 2.9))
            axes[0].imshow(x[idx, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            axes[1].imshow(cam_overlay(x[idx, 0].numpy(), cam, alpha=alpha))
            for ax in axes:
                ax.axis("off")
            axes[0].set_title(f"test #{idx}: true {class_names[y[idx]]}", fontsize=9)
            axes[1].set_title(f"pred {class_names[pred]}, P(pneumonia)={p[idx]:.2f}\n(t={threshold:.2f})", fontsize=9)
            fig.tight_layout()
            plt.show()
        return idx

    busy = {"on": False}

    def on_rank(change):
        if not busy["on"]:
            render()

    def on_outcome(change):
        busy["on"] = True  # changing the slider's range must not draw the figure twice
        try:
            rank.value = 0
            rank.max = len(groups[change["new"]]) - 1
        finally:
            busy["on"] = False
        render()

    outcome.observe(on_outcome, names="value")
    rank.observe(on_rank, names="value")
    box = widgets.VBox([widgets.HBox([outcome, rank]), out])
    box.render = render
    render()
    return box
