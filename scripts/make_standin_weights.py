"""Write stand-in "ImageNet" weights for offline tests and CI: NOT pretrained.

ImageNet weights cannot be downloaded on an offline machine, yet the ``gpu`` profile's code path
(torchvision's weights API, the torch hub cache, two-phase fine-tuning) must run in CI. This writes
random-init state dicts of torchvision's ResNet18 and DenseNet121 under torchvision's own file names
into ``<torch_home>/hub/checkpoints/``, plus a marker file ``STAND-IN-WEIGHTS.txt``. Runs that load
them record ``weights_source: stand-in`` and say so; their numbers are never results of pretraining.

    TORCH_HOME=$(mktemp -d) python scripts/make_standin_weights.py        # uses $TORCH_HOME
    python scripts/make_standin_weights.py --torch-home /tmp/standin-hub

Refuses to write into a hub cache that already holds real weights files (no marker).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torchvision.models as tvm

from pneumolib.models import IMAGENET_WEIGHTS, STANDIN_MARKER

BUILDERS = {"resnet18": tvm.resnet18, "densenet121": tvm.densenet121}


def write_standin_weights(torch_home: str | os.PathLike, seed: int = 0) -> list[Path]:
    """Random-init state dicts under torchvision's file names in ``torch_home/hub/checkpoints``."""
    checkpoints = Path(torch_home) / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    marker = checkpoints / STANDIN_MARKER
    written = []
    for name, builder in BUILDERS.items():
        path = checkpoints / IMAGENET_WEIGHTS[name].url.rsplit("/", 1)[-1]
        if path.exists() and not marker.exists():
            raise SystemExit(f"{path} exists and is not a stand-in: refusing to overwrite real weights")
        torch.manual_seed(seed)
        tmp = path.with_suffix(".tmp")
        torch.save(builder(weights=None).state_dict(), tmp)
        os.replace(tmp, path)
        written.append(path)
    marker.write_text(
        "The weights files in this folder are random initialisations saved under torchvision's file names by\n"
        "scripts/make_standin_weights.py. They are NOT ImageNet weights: results trained from them mean nothing.\n"
    )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-home", default=os.environ.get("TORCH_HOME"), help="default: $TORCH_HOME")
    args = parser.parse_args(argv)
    if not args.torch_home:
        parser.error("set TORCH_HOME or pass --torch-home (never the real hub cache: use a temporary folder)")
    for path in write_standin_weights(args.torch_home):
        print(f"stand-in (random init, not ImageNet): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
