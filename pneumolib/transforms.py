"""Augmentation and input preparation on batches of tensors.

Images stay in memory as uint8 and are augmented *per batch* with one vectorised affine warp
(flip, rotation, translation) plus an optional brightness jitter, so augmentation costs
milliseconds per batch instead of a PIL call per image. Training only: validation and test
images are never augmented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Augment:
    """Light, clinically plausible augmentation (the seeds' choice: flip + rotation ±10°).

    Parameters
    ----------
    hflip: probability of a horizontal flip.
    rotation: maximum rotation in degrees (uniform in ``[-rotation, rotation]``).
    translate: maximum shift as a fraction of the image side.
    brightness: maximum relative brightness change (``x * (1 + U(-b, b))``).
    """

    hflip: float = 0.5
    rotation: float = 10.0
    translate: float = 0.0
    brightness: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a float batch ``(N, C, H, W)`` in [0, 1]; returns a new tensor."""
        n = x.shape[0]

        def uniform(scale: float) -> torch.Tensor:  # drawn on the CPU (the generator's device), same on CUDA
            return (torch.rand(n, generator=generator) * 2 - 1).to(x.device) * scale

        angle = uniform(math.radians(self.rotation))
        flip = torch.where(torch.rand(n, generator=generator) < self.hflip, -1.0, 1.0).to(x.device)
        tx, ty = uniform(2 * self.translate), uniform(2 * self.translate)  # grid units span 2
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1).to(
            x.dtype
        )
        if self.rotation or self.translate or self.hflip:
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.brightness:
            x = (x * (1 + uniform(self.brightness)).view(n, 1, 1, 1)).clamp_(0, 1)
        return x


NO_AUGMENT = Augment(hflip=0.0, rotation=0.0)


class InputAdapter(torch.nn.Module):
    """First layer of every model: grayscale [0, 1] in, what the backbone expects out.

    ImageNet-style backbones get the gray channel copied to 3 channels and ImageNet
    normalisation; the custom CNN gets one channel centred at 0.5. ``size`` optionally resizes.
    """

    def __init__(self, channels: int = 3, size: int | None = None) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        mean = IMAGENET_MEAN if channels == 3 else (0.5,)
        std = IMAGENET_STD if channels == 3 else (0.5,)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}"
