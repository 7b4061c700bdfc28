"""Explainability: Grad-CAM, overlays, a weight-randomisation sanity check, and outcome picking.

Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization"). For a target score ``y`` and the activations ``A`` (``K``
channels, ``h x w``) of a convolutional layer::

    alpha_k = mean_{i,j} dy / dA_k[i, j]            (one weight per channel)
    cam     = ReLU( sum_k alpha_k * A_k )            (h x w)

The map is upsampled bilinearly to the input size and divided by its maximum, so it lies in
[0, 1]. We do *not* subtract the minimum: 0 keeps its meaning "no positive evidence", a map
that is zero everywhere (the target class has no positive evidence anywhere) stays zero,
and a uniform map stays uniform instead of becoming zero. The map is only as fine as the
layer: see :func:`feature_map_size` (e.g. 4x4 for ResNet18's ``layer4`` at 28 px), so a CAM
shows *which part* of the image, never which pixels.

Target score. Binary models have a single logit ``z`` (positive = "pneumonia"):
class 1 (default) uses ``z``, class 0 uses ``-z`` (the logit of "normal" relative to
"pneumonia", which is what a two-logit softmax model would give). Multiclass models use the
logit of ``target_class``, by default each image's predicted class.

Implementation. A forward hook on the layer replaces its output by ``A.clone()``, where ``A``
is a detached copy that requires gradients; the score's gradient with respect to ``A`` is
taken with :func:`torch.autograd.grad`. Consequences: in-place operations after the layer
(DenseNet applies ``F.relu(features, inplace=True)`` to ``features``' output; SimpleCNN's
target layer is itself an in-place ReLU) modify the clone, never ``A``; no parameter
``.grad`` is written and no ``requires_grad`` flag is touched, so frozen backbones work;
only the part of the network after the layer is back-propagated through. The hook is
removed and the model's train/eval mode restored in a ``finally`` block.

Sanity check (Adebayo et al., 2018, "Sanity Checks for Saliency Maps"): see
:func:`randomize_layers` and :func:`sanity_check`.

Layers by name: :func:`get_layer` (the one lookup of a model's Grad-CAM layer, default its
``target_layer``), :func:`layer_names` (the default plus :data:`ALTERNATIVE_LAYERS`, finer
ones worth trying) and :func:`module_name`. Reporting helpers built on this module (layer
sizes, border mass, example picking, the results file) live in :mod:`pneumolib.explain_tools`.

"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from scipy.stats import spearmanr
from torch import nn

from .models import SimpleCNN

__all__ = [
    "ALTERNATIVE_LAYERS",
    "module_name",
    "layer_names",
    "get_layer",
    "grad_cam",
    "feature_map_size",
    "cam_overlay",
    "randomization_blocks",
    "randomize_layers",
    "sanity_check",
    "outcome_indices",
]


# --------------------------------------------------------------------------- layers by name


#: Finer (earlier) layers worth trying when the default target layer's map is tiny.
#: Names are ``model.named_modules()`` paths of a :class:`~pneumolib.models.Classifier`.
ALTERNATIVE_LAYERS: dict[str, tuple[str, ...]] = {
    "simple_cnn": (),
    "resnet18": ("backbone.layer3",),
    "densenet121": ("backbone.features.denseblock3", "backbone.features.denseblock2"),
}


def module_name(model: nn.Module, layer: nn.Module) -> str:
    """Dotted name of ``layer`` inside ``model`` (e.g. ``backbone.layer4``)."""
    for name, m in model.named_modules(remove_duplicate=False):
        if m is layer:
            return name
    raise ValueError("layer is not a submodule of model")


def _has(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


def layer_names(model: nn.Module) -> list[str]:
    """Names usable with :func:`get_layer`: the default target layer first, then the alternatives."""
    default = get_layer(model)[0] if getattr(model, "target_layer", None) is not None else None
    alts = [n for n in ALTERNATIVE_LAYERS.get(getattr(model, "name", ""), ()) if _has(model, n)]
    return ([default] if default else []) + [n for n in alts if n != default]


def get_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """``(name, module)`` of the layer called ``name`` (default: the model's ``target_layer``).

    Raises ``ValueError`` listing the suggested names when ``name`` does not exist in ``model``,
    or when ``name`` is None and the model has no ``target_layer``.
    """
    if name is None:
        layer = getattr(model, "target_layer", None)
        if layer is None:
            raise ValueError(
                "model has no `target_layer`; pass a layer (or its name), e.g. one of "
                f"{[n for n, _ in model.named_modules() if n][:8]}"
            )
        return getattr(model, "target_layer_name", None) or module_name(model, layer), layer
    try:
        return name, model.get_submodule(name)
    except AttributeError:
        raise ValueError(
            f"{type(model).__name__} {getattr(model, 'name', '')!r} has no layer {name!r}; "
            f"suggested layers: {layer_names(model)} "
            "(any name from model.named_modules() works)"
        ) from None


# --------------------------------------------------------------------------- helpers


def _as_batch(images) -> torch.Tensor:
    """(N, 1, H, W) float tensor from a tensor/array of shape (N, 1, H, W), (N, H, W) or (H, W)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N, 1, H, W), (N, H, W) or (H, W); got shape {tuple(x.shape)}")
    return x.float()


def _target_layer(model: nn.Module, layer: nn.Module | None) -> nn.Module:
    """``layer``, or the model's default target layer (:func:`get_layer`) when it is None."""
    return layer if layer is not None else get_layer(model)[1]


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _resolve_targets(target_class, logits: torch.Tensor) -> np.ndarray:
    """Per-image class index (N,) for the target score (see module docstring)."""
    n, c = logits.shape
    if target_class is None:
        t = np.ones(n, dtype=int) if c == 1 else logits.argmax(1).cpu().numpy()
    else:
        t = np.asarray(target_class, dtype=int).reshape(-1)
        if t.size == 1:
            t = np.full(n, int(t[0]))
        if t.size != n:
            raise ValueError(f"target_class has {t.size} entries for {n} images")
    n_classes = 2 if c == 1 else c
    if t.min() < 0 or t.max() >= n_classes:
        raise ValueError(f"target_class must be in 0..{n_classes - 1}; got {sorted(set(t.tolist()))}")
    return t


def _scores(logits: torch.Tensor, targets: np.ndarray) -> torch.Tensor:
    """Target score per image: binary single logit -> z (class 1) or -z (class 0); else logit[c]."""
    if logits.shape[1] == 1:
        sign = torch.as_tensor(np.where(targets == 1, 1.0, -1.0), dtype=logits.dtype, device=logits.device)
        return logits[:, 0] * sign
    idx = torch.as_tensor(targets, device=logits.device)
    return logits.gather(1, idx[:, None])[:, 0]


# --------------------------------------------------------------------------- Grad-CAM


def _grad_cam_batch(model, layer, x, target_class, return_targets=False):
    store: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"Grad-CAM layer must output a tensor, got {type(output).__name__}")
        a = output.detach().clone().requires_grad_(True)
        store["A"] = a
        return a.clone()  # later in-place ops (DenseNet's F.relu(inplace=True)) modify this copy, not `a`

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            if "A" not in store:
                raise RuntimeError("the Grad-CAM layer was not called in the model's forward pass")
            if logits.ndim != 2:
                raise ValueError(f"model must return logits (N, C); got shape {tuple(logits.shape)}")
            targets = _resolve_targets(target_class, logits.detach())
            a = store["A"]
            if a.ndim != 4:
                raise ValueError(f"Grad-CAM layer output must be (N, K, h, w); got {tuple(a.shape)}")
            (grads,) = torch.autograd.grad(_scores(logits, targets).sum(), a)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)  # alpha_k, (N, K, 1, 1)
    cam = F.relu((weights * a.detach()).sum(1, keepdim=True))  # (N, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    cam = (cam / peak).clamp_(0, 1)  # all-zero map stays 0, never NaN
    return (cam, targets) if return_targets else cam


def grad_cam(
    model: nn.Module,
    images,
    target_class=None,
    layer: nn.Module | None = None,
    batch_size: int = 64,
    return_targets: bool = False,
):
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] (float32 numpy) for grayscale ``images`` ``(N, 1, H, W)``.

    Parameters
    ----------
    model: a :class:`~pneumolib.models.Classifier` (or any module returning logits ``(N, C)``).
    images: tensor or array ``(N, 1, H, W)`` in [0, 1] (``(N, H, W)`` and ``(H, W)`` accepted).
    target_class: ``None`` (binary: class 1 "pneumonia"; multiclass: each image's predicted
        class), an int, or one int per image. Binary single-logit models: 1 -> score ``z``,
        0 -> score ``-z``. Multiclass: the logit of that class.
    layer: the convolutional layer to explain; default ``model.target_layer``.
    batch_size: images per forward/backward pass.
    return_targets: also return the ``(N,)`` class indices that were explained.

    The model is put in eval mode for the computation and its previous mode restored; no hook
    is left behind and no parameter gradient or ``requires_grad`` flag is changed.
    """
    layer = _target_layer(model, layer)
    x = _as_batch(images).to(_device(model))
    t_all = None if target_class is None else np.asarray(target_class, dtype=int).reshape(-1)
    was_training = model.training
    model.eval()
    cams, targets = [], []
    try:
        for s in range(0, x.shape[0], batch_size):
            tc = None if t_all is None else (t_all if t_all.size == 1 else t_all[s : s + batch_size])
            cam, t = _grad_cam_batch(model, layer, x[s : s + batch_size], tc, return_targets=True)
            cams.append(cam.cpu())
            targets.append(t)
    finally:
        model.train(was_training)
    cam = torch.cat(cams).numpy().astype(np.float32) if cams else np.zeros((0, *x.shape[-2:]), np.float32)
    if return_targets:
        return cam, (np.concatenate(targets) if targets else np.zeros(0, int))
    return cam


def feature_map_size(
    model: nn.Module, image_size: int | Sequence[int], layer: nn.Module | None = None
) -> tuple[int, int]:
    """Spatial size ``(h, w)`` of the Grad-CAM layer's activations for ``image_size`` px input.

    This is the true resolution of a Grad-CAM map; everything finer is bilinear interpolation.
    """
    layer = _target_layer(model, layer)
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    shape: dict[str, tuple] = {}

    def hook(module, inputs, output):  # returns None: the output is left alone
        shape["s"] = tuple(output.shape)

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, *hw, device=_device(model)))
    finally:
        handle.remove()
        model.train(was_training)
    return int(shape["s"][-2]), int(shape["s"][-1])


def cam_overlay(image, cam, alpha: float = 0.45, cmap="jet") -> np.ndarray:
    """RGB float array ``(H, W, 3)`` in [0, 1]: the gray image blended with the colour-mapped CAM.

    ``image``: ``(H, W)`` (or ``(1, H, W)``) in [0, 1]; other ranges are min-max scaled.
    ``cam``: ``(H, W)`` in [0, 1]. ``alpha``: weight of the heat map (0 = image only).
    ``cmap``: a matplotlib colormap name or a callable mapping [0, 1] values to RGB(A).
    """
    img = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float64)
    c = np.asarray(cam.detach().cpu() if isinstance(cam, torch.Tensor) else cam, dtype=np.float64)
    img, c = np.squeeze(img), np.squeeze(c)
    if img.shape != c.shape or img.ndim != 2:
        raise ValueError(f"image and cam must both be (H, W); got {img.shape} and {c.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if img.min() < 0 or img.max() > 1:
        img = (img - img.min()) / max(img.max() - img.min(), 1e-12)
    if isinstance(cmap, str):
        cmap = matplotlib.colormaps[cmap]
    heat = np.asarray(cmap(np.clip(c, 0, 1)), dtype=np.float64)[..., :3]
    return np.clip((1 - alpha) * img[..., None] + alpha * heat, 0, 1)


# --------------------------------------------------------------------------- randomisation


def randomization_blocks(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """Parameterised blocks in cascade order, from the output side: ``[(name, modules), ...]``.

    * ``simple_cnn``: ``fc``, ``block3``, ``block2``, ``block1`` (block = Conv + BatchNorm).
    * ``resnet18``: ``fc``, ``layer4``, ``layer3``, ``layer2``, ``layer1``, ``stem`` (conv1 + bn1).
    * ``densenet121``: ``classifier``, ``denseblock4+norm5``, ``transition3``, ``denseblock3``,
      ``transition2``, ``denseblock2``, ``transition1``, ``denseblock1``, ``stem`` (conv0 + norm0).
    * any other module: each leaf module with its own parameters, last registered first.

    The :class:`~pneumolib.transforms.InputAdapter` has no learnable parameters and is never
    randomised.
    """

    net = getattr(model, "backbone", model)
    if isinstance(net, SimpleCNN):
        f = net.features
        convs = [i for i, m in enumerate(f) if isinstance(m, nn.Conv2d)]
        blocks = [("fc", [net.fc])]
        for b, i in reversed(list(enumerate(convs, 1))):
            blocks.append((f"block{b}", [m for m in f[i : i + 2]]))
        return blocks
    if isinstance(net, tvm.ResNet):
        return (
            [("fc", [net.fc])]
            + [(n, [getattr(net, n)]) for n in ("layer4", "layer3", "layer2", "layer1")]
            + [("stem", [net.conv1, net.bn1])]
        )
    if isinstance(net, tvm.DenseNet):
        f = net.features
        blocks = [("classifier", [net.classifier]), ("denseblock4+norm5", [f.denseblock4, f.norm5])]
        for i in (3, 2, 1):
            blocks += [
                (f"transition{i}", [getattr(f, f"transition{i}")]),
                (f"denseblock{i}", [getattr(f, f"denseblock{i}")]),
            ]
        return blocks + [("stem", [f.conv0, f.norm0])]
    leaves = [(n, m) for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    return [(n, [m]) for n, m in reversed(leaves)]


def _reinit(module: nn.Module) -> None:
    for m in module.modules():
        if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
            m.reset_parameters()  # BatchNorm: weight 1, bias 0, running stats reset too


def randomize_layers(model: nn.Module, n_top: int, seed: int = 0) -> nn.Module:
    """Deep copy of ``model`` with its top ``n_top`` blocks re-initialised (cascading randomisation).

    Blocks are listed by :func:`randomization_blocks` (head first, then the last blocks). Each
    module is re-initialised with its own ``reset_parameters`` (PyTorch's default init; BatchNorm
    back to identity with fresh running statistics). Block ``i`` always gets the random state
    ``seed * 1000 + i``, so step ``n_top + 1`` keeps step ``n_top``'s random weights and only
    adds one block: a true cascade. The global RNG state and the original model are untouched.
    """
    n_blocks = len(randomization_blocks(model))
    if not 0 <= n_top <= n_blocks:
        raise ValueError(f"n_top must be in 0..{n_blocks} for this model, got {n_top}")
    clone = copy.deepcopy(model)
    dev = _device(model)
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        for i, (_, modules) in enumerate(randomization_blocks(clone)[:n_top]):
            torch.manual_seed(seed * 1000 + i)
            for m in modules:
                _reinit(m)
    return clone


def sanity_check(
    model: nn.Module,
    images,
    n_tops: Sequence[int] | None = None,
    target_class=None,
    layer: nn.Module | None = None,
    seed: int = 0,
):
    """Model-parameter randomisation test (Adebayo et al., 2018) for Grad-CAM.

    For each ``n_top`` in ``n_tops`` (default ``1 .. number of blocks``; 0 is allowed as a
    control and gives rho = 1), the top ``n_top`` blocks are re-initialised
    (:func:`randomize_layers`, cascading from the head) and the Grad-CAM maps of the
    randomised copy are compared with the trained model's maps for the *same* target class
    (the trained model's prediction when ``target_class`` is None).

    Returns a ``pandas.DataFrame``, one row per step, with columns ``n_top``, ``block`` (the
    deepest block randomised at that step), ``spearman`` (mean over images of the Spearman
    rank correlation of the flattened maps, ``scipy.stats.spearmanr``), ``spearman_std``,
    ``spearman_abs`` (mean of ``|rho|``; Adebayo et al. plot both: a randomised head can
    *invert* a map, rho < 0, which is just as unfaithful as rho ~ 0), ``n_undefined``
    (images where rho is undefined because one map is constant, e.g. all zero; excluded
    from the means), and ``abs_diff`` (mean absolute difference of the [0, 1]
    maps over pixels and images).

    Reading it: an explanation that is faithful to the model must depend on the learned
    weights, so its maps should decorrelate (rho -> ~0, abs_diff up) as more of the network
    is randomised. Maps that stay similar after randomisation (rho high) reflect the
    architecture or the input (edge-detector-like behaviour), not what the model learned.
    Some residual correlation is expected when the input itself dominates (a random conv net
    also responds to a very bright structure), so compare with the ``n_top=0`` control and
    look at the trend rather than demanding rho = 0 exactly.
    """

    blocks = randomization_blocks(model)
    n_tops = list(range(1, len(blocks) + 1)) if n_tops is None else [int(n) for n in n_tops]
    layer_name = module_name(model, _target_layer(model, layer))
    x = _as_batch(images)
    ref, targets = grad_cam(model, x, target_class, layer=layer, return_targets=True)
    rows = []
    for n in n_tops:
        rnd = randomize_layers(model, n, seed=seed)
        cams = grad_cam(rnd, x, targets, layer=rnd.get_submodule(layer_name))
        rhos = []
        for a, b in zip(ref.reshape(len(ref), -1), cams.reshape(len(cams), -1)):
            if np.ptp(a) == 0 or np.ptp(b) == 0:
                rhos.append(np.nan)
            else:
                rhos.append(float(spearmanr(a, b).statistic))
        rhos = np.asarray(rhos, dtype=float)
        ok = rhos[~np.isnan(rhos)]
        rows.append(
            {
                "n_top": n,
                "block": blocks[n - 1][0] if n > 0 else "(none)",
                "spearman": float(ok.mean()) if ok.size else float("nan"),
                "spearman_std": float(ok.std()) if ok.size else float("nan"),
                "spearman_abs": float(np.abs(ok).mean()) if ok.size else float("nan"),
                "n_undefined": int(np.isnan(rhos).sum()),
                "abs_diff": float(np.abs(ref - cams).mean()),
            }
        )
    return pd.DataFrame(
        rows, columns=["n_top", "block", "spearman", "spearman_std", "spearman_abs", "n_undefined", "abs_diff"]
    )


# --------------------------------------------------------------------------- picking examples


def outcome_indices(y_true, y_prob, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Indices of true/false positives/negatives, most confident first.

    ``y_prob`` is P(pneumonia) (1-D; an ``(N, 1)`` or ``(N, 2)`` array is reduced to it); an image
    is predicted positive when ``y_prob >= threshold`` (as in :func:`pneumolib.metrics.binary_metrics`).
    Returns ``{"TP", "TN", "FP", "FN"}`` -> int arrays that partition ``0 .. N-1``. Order: predicted
    positives (TP, FP) by decreasing ``y_prob``, predicted negatives (TN, FN) by increasing
    ``y_prob``; ties keep index order. FP/FN thus start with the most confident mistakes.
    """
    y_true = np.asarray(y_true).reshape(-1).astype(int)
    p = np.asarray(y_prob, dtype=float)
    if p.ndim == 2 and p.shape[1] in (1, 2):
        p = p[:, -1]
    p = p.reshape(-1)
    if p.shape != y_true.shape:
        raise ValueError(f"y_true and y_prob have different lengths: {y_true.shape} vs {p.shape}")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must be binary 0/1")
    pred = p >= threshold
    out = {}
    cells = (
        ("TP", pred & (y_true == 1), True),
        ("TN", ~pred & (y_true == 0), False),
        ("FP", pred & (y_true == 0), True),
        ("FN", ~pred & (y_true == 1), False),
    )
    for key, mask, descending in cells:
        idx = np.flatnonzero(mask)
        order = np.argsort(-p[idx] if descending else p[idx], kind="stable")
        out[key] = idx[order]
    return out
