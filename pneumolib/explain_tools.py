"""Grad-CAM reporting, the companion of :mod:`pneumolib.explain` (notebook 08): how coarse a
layer's map is, where the map mass falls, which images to show, an interactive browser, and the
results file.

The Grad-CAM computation and the layer lookup (:func:`~pneumolib.explain.get_layer`,
:func:`~pneumolib.explain.layer_names`) live in :mod:`pneumolib.explain`; this module builds on
them (it imports :mod:`pneumolib.explain`, never the reverse):

* :func:`layer_info`: which layer a map comes from and how coarse it is (``feature_map_size``)
  at the input size actually used;
* :func:`border_mass`, :func:`border_mass_summary`: what fraction of a map's mass lies in the
  outer band of the image (borders, where text markers and collimation edges sit) compared
  with the band's share of the area (what a uniform map would give);
* :func:`first_examples`, :func:`three_class_cases`: which test images to show;
* :func:`cam_browser`: an ``ipywidgets`` picker (outcome type + rank) for JupyterLab;
* :func:`gradcam_file`: the content of ``results/<profile>/gradcam.json`` (notebook 08 writes it
  with ``schema.write_results``).

Ground rule: imports torch, numpy, :mod:`pneumolib.explain` and :mod:`pneumolib.profiles` at
module level; matplotlib, ipywidgets only inside :func:`cam_browser`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .explain import cam_overlay, feature_map_size, get_layer, grad_cam
from .parameters import run_by_papermill
from .profiles import Profile, profile_hash

__all__ = [
    "layer_info",
    "border_mass",
    "border_mass_summary",
    "first_examples",
    "three_class_cases",
    "cam_browser",
    "gradcam_file",
]


def layer_info(model: nn.Module, image_size: int, name: str | None = None) -> dict:
    """Where a Grad-CAM map comes from and how coarse it is at ``image_size`` px input.

    Returns ``{"layer", "map_size": [h, w], "input_size", "network_input", "is_default"}``;
    ``network_input`` is the size the backbone really sees (DenseNet121 upsamples small inputs).
    """
    layer_name, layer = get_layer(model, name)
    h, w = feature_map_size(model, image_size, layer=layer)
    adapter_size = getattr(getattr(model, "adapter", None), "size", None)
    return {
        "layer": layer_name,
        "map_size": [h, w],
        "input_size": int(image_size),
        "network_input": int(adapter_size or image_size),
        "is_default": layer is getattr(model, "target_layer", None),
    }


# --------------------------------------------------------------------------- border mass


def _band_mask(h: int, w: int, border: int) -> np.ndarray:
    if border < 1 or 2 * border >= min(h, w):
        raise ValueError(f"border must be at least 1 px and leave a central region in a {h}x{w} map; got {border}")
    mask = np.ones((h, w), dtype=bool)
    mask[border : h - border, border : w - border] = False
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
    return {
        "border_mass": mean,
        "border_mass_std": float(ok.std()) if ok.size else float("nan"),
        "area_fraction": area,
        "ratio": mean / area if ok.size else float("nan"),
        "border_px": max(1, int(round(border_frac * min(h, w)))),
        "border_frac": border_frac,
        "n_maps": int(len(frac)),
        "n_empty": int(np.isnan(frac).sum()),
    }


# --------------------------------------------------------------------------- examples


def first_examples(groups: Mapping[str, Sequence[int]]) -> dict[str, int | None]:
    """The first (most confident, see :func:`~pneumolib.explain.outcome_indices`) index of each
    outcome, ``None`` where an outcome has no image."""
    return {k: (int(v[0]) if len(v) else None) for k, v in groups.items()}


def three_class_cases(
    y_true,
    probs,
    classes: Sequence[str],
    correct: Sequence[str] = ("bacteria", "normal"),
    preferred_error: tuple[str, str] = ("normal", "virus"),
) -> tuple[list[dict], np.ndarray]:
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
        cases.append(
            dict(
                case=f"error {classes[t]} -> {classes[q]}",
                index=i,
                true=classes[t],
                pred=classes[q],
                prob=float(conf[i]),
                count=int(cm[t, q]),
                most_frequent=bool(cm[t, q] == off.max()),
            )
        )
    return cases, cm


# --------------------------------------------------------------------------- interactive


def cam_browser(
    model: nn.Module,
    images,
    y_true,
    probs,
    threshold: float,
    groups: Mapping[str, Sequence[int]],
    layer: str | None = None,
    class_names: Sequence[str] = ("normal", "pneumonia"),
    alpha: float = 0.45,
):
    """An ``ipywidgets`` browser: a Dropdown for the outcome (TP/TN/FP/FN) and an IntSlider over the
    images of that outcome (most confident first); shows truth, prediction, P(pneumonia) and the
    Grad-CAM overlay of the *predicted* class. Returns the widget (a ``VBox``; display it as a cell's
    last expression). ``box.render()`` draws the current selection into the widget's output area
    and returns the image index; it runs once on creation. In a papermill run
    (:func:`~pneumolib.parameters.run_by_papermill`) no widget is made: the first view is drawn as a plain
    figure and None is returned.

    ``images``: float ``(N, 1, H, W)`` in [0, 1]; ``probs``: P(pneumonia) ``(N,)``; ``groups``:
    :func:`~pneumolib.explain.outcome_indices` of the same images.
    """
    x = torch.as_tensor(images).float()
    y, p = np.asarray(y_true).astype(int), np.asarray(probs, dtype=float)
    options = [k for k, v in groups.items() if len(v)]
    if not options:
        raise ValueError("every outcome group is empty: nothing to browse")
    _, module = get_layer(model, layer)

    def draw(idx: int) -> None:
        pred = int(p[idx] >= threshold)
        cam = grad_cam(model, x[idx : idx + 1], target_class=pred, layer=module)[0]
        fig, axes = plt.subplots(1, 2, figsize=(5.2, 2.9))
        axes[0].imshow(x[idx, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1].imshow(cam_overlay(x[idx, 0].numpy(), cam, alpha=alpha))
        for ax in axes:
            ax.axis("off")
        axes[0].set_title(f"test #{idx}: true {class_names[y[idx]]}", fontsize=9)
        axes[1].set_title(f"pred {class_names[pred]}, P(pneumonia)={p[idx]:.2f}\n(t={threshold:.2f})", fontsize=9)
        fig.tight_layout()
        plt.show()

    if run_by_papermill():  # a batch run: no widgets (nobody to move them; they can stall nbclient), one static view
        print(f"batch run: the picker's first view ({options[0]}, rank 0); open the notebook in JupyterLab to browse")
        draw(int(groups[options[0]][0]))
        return None
    outcome = widgets.Dropdown(options=options, value=options[0], description="outcome")
    rank = widgets.IntSlider(value=0, min=0, max=len(groups[options[0]]) - 1, description="rank")
    out = widgets.Output()

    def render(*_):
        idx = int(groups[outcome.value][min(rank.value, len(groups[outcome.value]) - 1)])
        out.clear_output(wait=True)
        with out:
            draw(idx)
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


# --------------------------------------------------------------------------- the results file


def gradcam_file(
    profile: Profile,
    layers: Mapping[str, dict],
    sanity: Mapping[str, Any],
    border_mass: Mapping[str, dict],
    examples: Mapping[str, int | None],
    best_key: str,
    best: Mapping[str, Any],
    best_run,
    best_layer: str,
    threshold: float,
    three_class_run=None,
    classes: Sequence[str] = (),
    confusion=None,
    cases: Sequence[dict] = (),
    chosen_on: str = "highest mean validation AUROC",
) -> dict:
    """Content of ``results/<profile>/gradcam.json`` (without ``schema_version``, which
    ``schema.write_results`` adds): see :class:`pneumolib.schema.GradcamResults`.

    ``layers``: ``{key: layer_info}``; ``sanity``: ``{key: sanity_check DataFrame}``;
    ``border_mass``: ``{key: border_mass_summary}``; ``examples``: :func:`first_examples`.
    ``best_key``/``best``: the best binary model's key and entry in ``binary.json``, ``best_run``
    its run (``.seed``), ``best_layer`` the layer explained and ``threshold`` the one chosen on
    validation (max F1), ``chosen_on`` how the model was picked. ``three_class_run`` (``None`` when
    that part was skipped) with its ``classes``, ``confusion`` matrix and :func:`three_class_cases` ``cases``.
    """
    out = {
        "meta": {
            "profile": profile.name,
            "profile_hash": profile_hash(profile),
            "seed": profile.seeds[0],
            "target_class": "predicted class (binary: at the validation max-F1 threshold)",
        },
        "layers": dict(layers),
        "sanity": {k: v.to_dict("records") for k, v in sanity.items()},
        "border_mass": dict(border_mass),
        "examples": dict(examples),
        "best_binary": {
            "model": best_key,
            "display_name": best["display_name"],
            "seed": best_run.seed,
            "layer": best_layer,
            "threshold": threshold,
            "threshold_rule": "max_f1 on validation",
            "chosen_on": chosen_on,
        },
    }
    if three_class_run is not None:
        model = three_class_run.model
        out["three_class"] = {
            "model": f"{model.name}-{model.weights}",
            "seed": three_class_run.seed,
            "classes": list(classes),
            "confusion_matrix": confusion,
            "examples": list(cases),
        }
    return out
