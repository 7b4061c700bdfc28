"""The three model families: a custom CNN, ResNet18 and DenseNet121.

Every model takes grayscale images ``(N, 1, H, W)`` in [0, 1] and returns logits ``(N, C)``
(``C = 1`` for the binary task, 3 for normal / bacteria / virus). The first layer,
:class:`~pneumolib.transforms.InputAdapter`, does the channel copy and normalisation, so the
data pipeline is the same for every model.

Low resolution. torchvision's ResNet18 and DenseNet121 shrink the input 32x. At 28 px ResNet18's
last feature map would be 1x1 (Grad-CAM meaningless) and DenseNet121 fails outright. At low
resolution we therefore replace ResNet18's 7x7/stride-2 stem by a 3x3/stride-1 convolution and,
up to 32 px, also drop its max-pool (the standard CIFAR stem): at 28 px ``layer4`` is then 4x4,
and at 64 px (Kermany on the ``cpu`` profile, max-pool kept) also 4x4 at a quarter of the cost.
DenseNet121 keeps its ImageNet stem and its input is upsampled to 64 px
(``densenet_input``): its last dense block is then 2x2. ImageNet weights always use the
standard stem at the data's resolution (224 px on the ``gpu`` profile): a ResNet18 whose stem had
been replaced would be only partly pretrained, so ImageNet ResNet18 is not offered below 112 px.

ImageNet weights come only through torchvision's weights API and the torch hub cache
(``$TORCH_HOME/hub/checkpoints``); a missing or damaged file gets a message naming it and saying
how to fetch it again.
"""

from __future__ import annotations

import os

import torch
import torchvision.models as tvm
from torch import nn

from .transforms import InputAdapter

MODEL_NAMES = ("simple_cnn", "resnet18", "densenet121")
DISPLAY_NAMES = {"simple_cnn": "Custom CNN", "resnet18": "ResNet18", "densenet121": "DenseNet121"}


def display_name(model_name: str, weights: str) -> str:
    """Name of a model in tables and figures, e.g. ``"ResNet18 (scratch)"``."""
    return f"{DISPLAY_NAMES.get(model_name, model_name)} ({weights_label(weights)})"


def weights_label(weights: str) -> str:
    """How results name a model's starting point: ``"none"`` -> ``"scratch"``, ``"imagenet"`` stays."""
    return "scratch" if weights == "none" else weights


def model_note(model_name: str, weights: str, image_size: int, densenet_input: int = 64) -> str:
    """What a results table should say about how ``model_name`` was adapted to ``image_size`` px input."""
    notes = []
    if weights == "imagenet":
        notes.append("ImageNet weights, two-phase fine-tuning")
    if model_name == "resnet18" and image_size < 112:
        notes.append("CIFAR stem at low resolution")
    if model_name == "densenet121" and image_size < densenet_input:
        notes.append(f"input upsampled to {densenet_input} px")
    return "; ".join(notes)


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights were requested but are not in the torch hub cache and cannot be downloaded."""


class PretrainingNotOfferedError(ValueError):
    """ImageNet weights were requested for a model or input size where the network would be only partly
    pretrained (ResNet18 below 112 px, whose stem is then replaced)."""


class WeightsCorruptError(WeightsUnavailableError):
    """The weights file in the torch hub cache cannot be read (truncated, damaged, or not a state dict)."""


class SimpleCNN(nn.Module):
    """Three Conv-BatchNorm-ReLU-MaxPool blocks (32/64/128), global average pooling, dropout, linear.

    With one input channel and one output this has 93,249 parameters, like the tutorial's SimpleCNN.
    """

    def __init__(self, num_outputs: int = 1, dropout: float = 0.3) -> None:
        super().__init__()
        blocks, in_ch = [], 1
        for out_ch in (32, 64, 128):
            blocks += [
                nn.Conv2d(in_ch, out_ch, 3, padding=1),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(128, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


class Classifier(nn.Module):
    """``InputAdapter`` followed by a backbone; remembers what it is for results and Grad-CAM.

    Attributes: ``name``, ``weights`` ("imagenet" or "scratch"), ``num_outputs``, and the
    properties ``target_layer`` (the last convolutional block, used by Grad-CAM) and ``head``
    (the new classifier layer). Both are looked up by name, so the state dict holds every
    parameter exactly once (``adapter.*`` and ``backbone.*``).
    """

    def __init__(
        self,
        name: str,
        backbone: nn.Module,
        adapter: InputAdapter,
        weights: str,
        num_outputs: int,
        target_layer: str,
        head: str,
    ) -> None:
        super().__init__()
        self.adapter, self.backbone = adapter, backbone
        self.name, self.weights, self.num_outputs = name, weights, num_outputs
        self.target_layer_name, self.head_name = f"backbone.{target_layer}", f"backbone.{head}"

    @property
    def target_layer(self) -> nn.Module:
        return self.get_submodule(self.target_layer_name)

    @property
    def head(self) -> nn.Module:
        return self.get_submodule(self.head_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.adapter(x))

    def set_backbone_trainable(self, trainable: bool) -> None:
        """Freeze (phase 1 of two-phase transfer learning) or unfreeze everything but the head."""
        for p in self.backbone.parameters():
            p.requires_grad = trainable
        for p in self.head.parameters():
            p.requires_grad = True

    def freeze_batchnorm_statistics(self) -> None:
        """Put the backbone's BatchNorm layers outside the head in eval mode, so that a training pass
        does not update their running statistics (phase 1 of two-phase transfer; call after ``train()``)."""
        head = set(map(id, self.head.modules()))
        for m in self.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in head:
                m.eval()


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def imagenet_weights_file(name: str) -> str:
    """Where torchvision's weights API looks for ``name``'s ImageNet weights (the torch hub cache)."""
    enum = IMAGENET_WEIGHTS[name]
    return os.path.join(torch.hub.get_dir(), "checkpoints", enum.url.rsplit("/", 1)[-1])


IMAGENET_WEIGHTS = {
    "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1,
    "densenet121": tvm.DenseNet121_Weights.IMAGENET1K_V1,
}
#: beside stand-in weights files (scripts/make_standin_weights.py): random init under torchvision's names
STANDIN_MARKER = "STAND-IN-WEIGHTS.txt"


def weights_source(weights: str) -> str:
    """Where a model's starting weights came from: ``"random init"``, ``"ImageNet (torchvision)"``, or
    ``"stand-in (random init, not ImageNet)"`` when the hub cache holds stand-in files (offline tests, CI)."""
    if weights != "imagenet":
        return "random init"
    if os.path.exists(os.path.join(torch.hub.get_dir(), "checkpoints", STANDIN_MARKER)):
        return "stand-in (random init, not ImageNet)"
    return "ImageNet (torchvision)"


def _imagenet_weights(name: str):
    """torchvision ImageNet weights enum, loaded through the torch hub cache only."""

    enum = IMAGENET_WEIGHTS[name]
    cache = torch.hub.get_dir()
    filename = enum.url.rsplit("/", 1)[-1]
    if not os.path.exists(os.path.join(cache, "checkpoints", filename)):
        try:
            enum.get_state_dict(progress=False)  # downloads into the hub cache when online
        except Exception as err:  # offline: URLError, socket errors, ...
            raise WeightsUnavailableError(
                f"ImageNet weights for {name} are not in the torch hub cache ({cache}/checkpoints/{filename}) "
                f"and could not be downloaded ({type(err).__name__}). On a machine with internet run "
                f"`python -c \"import torchvision; torchvision.models.{name}(weights='IMAGENET1K_V1')\"` "
                f"and copy {filename} into {cache}/checkpoints/ (or set TORCH_HOME), or use a profile with "
                "weights='none' to train from scratch (results are then labelled 'scratch')."
            ) from err
    return enum


def _with_weights(builder, name: str, enum):
    """``builder(weights=enum)``; an unreadable cached weights file becomes a :class:`WeightsCorruptError`
    that names the file and how to fetch it again."""
    try:
        return builder(weights=enum)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        if enum is None:
            raise
        path = imagenet_weights_file(name)
        raise WeightsCorruptError(
            f"The ImageNet weights file for {name}, {path}, cannot be used ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). It is damaged, truncated or not {name}'s weights: delete it and "
            f'fetch it again on a machine with internet (`python -c "import torchvision; '
            f"torchvision.models.{name}(weights='IMAGENET1K_V1')\"`), then copy it to {path}."
        ) from err


def build_model(
    name: str, num_outputs: int = 1, weights: str = "none", image_size: int = 28, densenet_input: int = 64
) -> Classifier:
    """Build ``simple_cnn``, ``resnet18`` or ``densenet121`` for ``image_size`` px grayscale input.

    ``weights``: ``"none"`` (random init, labelled "scratch") or ``"imagenet"`` (torchvision's
    weights API; raises :class:`WeightsUnavailableError` with instructions when offline).
    Below 112 px ResNet18 gets a CIFAR stem and DenseNet121 an upsampled input (module docstring).
    """

    if weights not in ("none", "imagenet"):
        raise ValueError(f"weights must be 'none' or 'imagenet', got {weights!r}")
    if name == "simple_cnn":
        if weights != "none":
            raise ValueError("simple_cnn has no ImageNet weights; use weights='none'")
        net = SimpleCNN(num_outputs)
        return Classifier(name, net, InputAdapter(1), "scratch", num_outputs, f"features.{len(net.features) - 2}", "fc")
    low_res = image_size < 112
    if name == "resnet18" and weights == "imagenet" and low_res:
        raise PretrainingNotOfferedError(
            f"ImageNet ResNet18 is not offered at {image_size} px: below 112 px its 7x7 stem is replaced by a "
            "randomly initialised 3x3 one, so the network would be only partly pretrained. Train it from "
            "scratch (weights='none') or use images of at least 112 px (e.g. Kermany at 224 px, profile gpu)."
        )
    enum = _imagenet_weights(name) if weights == "imagenet" else None
    if name == "resnet18":
        net = _with_weights(tvm.resnet18, name, enum)
        if low_res:  # 3x3 stride-1 stem; up to 32 px also without the max-pool (CIFAR style)
            net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            if image_size <= 32:
                net.maxpool = nn.Identity()
        net.fc = nn.Linear(net.fc.in_features, num_outputs)
        return Classifier(name, net, InputAdapter(3), "imagenet" if enum else "scratch", num_outputs, "layer4", "fc")
    if name == "densenet121":
        net = _with_weights(tvm.densenet121, name, enum)
        net.classifier = nn.Linear(net.classifier.in_features, num_outputs)
        adapter = InputAdapter(3, size=densenet_input if low_res and image_size < densenet_input else None)
        return Classifier(name, net, adapter, "imagenet" if enum else "scratch", num_outputs, "features", "classifier")
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
