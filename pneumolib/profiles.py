"""Run profiles (``smoke``, ``class``, ``cpu``, ``gpu``, ``gpu-smoke``) defined in one place.

A profile fixes every knob that changes how long a run takes: image sizes, subset sizes,
epochs, seeds, which weights to use, which device. Notebooks receive only the profile *name* as a
papermill parameter and look the rest up here, so a result file can always be traced back to the
exact settings through :func:`profile_hash`.

Weights are chosen per model: the custom CNN always trains from scratch; ResNet18 and DenseNet121
use ``Profile.weights`` (``"imagenet"`` on ``gpu`` and ``gpu-smoke``), see :meth:`Profile.weights_for`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    """Settings of one run profile. Change them here, never in a notebook."""

    name: str
    description: str
    # PneumoniaMNIST (the binary task's data on smoke and cpu, notebooks 01-04, 07-08)
    mnist_size: int = 28
    mnist_subset: int | None = None  # images per split (stratified); None = all
    # Kermany chest_xray folder (three-class task, notebooks 01, 05-06; the binary task too on gpu)
    kermany_size: int = 64
    kermany_subset: int | None = None  # images per split (stratified); None = all
    binary_data: str = "pneumoniamnist"  # the binary task's data: "pneumoniamnist" or "kermany"
    full_kermany: bool = False  # needs the whole official Kermany train folder (data.require_full_kermany)
    framing: str = "crop"  # how a Kermany X-ray becomes square: one of FRAMINGS
    # training protocol (the seeds' protocol: Adam 1e-4, plateau 0.5/3, batch 32, patience 5, 30 epochs)
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 32
    lr: float = 1e-4  # the deck's rate, meant for fine-tuning pretrained weights
    max_epochs: int = 30
    patience: int = 5
    loss: str = "bce"  # binary loss: "bce", "weighted_bce" (inverse class frequency) or "focal"
    multiclass_loss: str = "weighted_ce"  # three-class loss: "ce" or "weighted_ce" (virus is the minority)
    head_epochs: int = 5  # phase 1 of two-phase transfer learning (only with pretrained weights)
    # per-model overrides of max_epochs (e.g. DenseNet121 is 4x slower than ResNet18 on CPU)
    epochs_by_model: dict[str, int] = field(default_factory=dict)
    # per-task changes to the protocol: {task: {TrainConfig field: value, "epochs_by_model": {...}}}
    protocol_by_task: dict[str, dict] = field(default_factory=dict)
    weights: str = "none"  # ResNet18 and DenseNet121: "none" (from scratch) or "imagenet"; see weights_for
    # bfloat16 autocast (+ channels_last) where the machine does bf16 natively (AVX-512 BF16/AMX CPUs, recent GPUs);
    # fp32 elsewhere: pneumolib.loop.use_bf16 decides per machine, benchmarks/BENCHMARK.md has the speeds
    bf16: bool = False
    augment: dict = field(default_factory=dict)  # overrides of transforms.Augment (flip 0.5, rotation 10)
    device: str = "cpu"  # "cpu" or "cuda" (needs a GPU: see pneumolib.loop.resolve_device)

    def __post_init__(self) -> None:
        if self.binary_data not in BINARY_DATA:
            raise ValueError(
                f"profile {self.name!r}: binary_data must be one of {BINARY_DATA}, got {self.binary_data!r}"
            )
        if self.weights not in ("none", "imagenet"):
            raise ValueError(f"profile {self.name!r}: weights must be 'none' or 'imagenet', got {self.weights!r}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"profile {self.name!r}: framing must be one of {FRAMINGS}, got {self.framing!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"profile {self.name!r}: device must be 'cpu' or 'cuda', got {self.device!r}")

    def weights_for(self, model_name: str) -> str:
        """The weights ``model_name`` starts from: the custom CNN has no pretrained weights, so it is always
        trained from scratch; ResNet18 and DenseNet121 use the profile's ``weights``."""
        return "none" if model_name in SCRATCH_ONLY else self.weights

    @property
    def binary_size(self) -> int:
        """Input size of the binary task (PneumoniaMNIST's or Kermany's, see ``binary_data``)."""
        return self.kermany_size if self.binary_data == "kermany" else self.mnist_size

    @property
    def binary_subset(self) -> int | None:
        return self.kermany_subset if self.binary_data == "kermany" else self.mnist_subset

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BINARY_DATA = ("pneumoniamnist", "kermany")
#: how a non-square X-ray becomes a square input (pneumolib.data._decode), in words: "crop" is the default (as MedMNIST
#: does), "crop80" cuts off more of the patient's framing
FRAMING_DESCRIPTIONS = {
    "crop": "the centre square of the whole short side",
    "crop80": "the centre square of 80% of the short side",
    "letterbox": "the whole image padded with black to a square",
    "resize": "the whole image squeezed to a square",
}
FRAMINGS = tuple(FRAMING_DESCRIPTIONS)
SCRATCH_ONLY = ("simple_cnn",)  # models without ImageNet weights
# settings added after results were first committed: at their default they stay out of profile_hash,
# so the results of profiles that do not use them keep their hash
ADDED_SETTINGS = {"binary_data": "pneumoniamnist", "device": "cpu", "full_kermany": False, "framing": "crop"}


_CPU = Profile(
    name="cpu",
    description=(
        "Full PneumoniaMNIST at 28 px and Kermany at 64 px, 3 seeds, from scratch, on a laptop CPU. "
        "Scratch training uses lr 1e-3 (1e-4 is a fine-tuning rate), class-weighted losses, "
        "flip/rotation plus small shifts and brightness changes, and bf16 autocast. The binary task "
        "trains a fixed epoch budget per model with a cosine schedule, keeping the epoch with the best "
        "validation AUROC, so that notebooks 03-04 fit in about 30 minutes; the three-class task (and "
        "notebook 06's stage models) does the same with its own budgets, keeping the best validation macro AUROC. "
        "Each run keeps horizontal-flip test-time augmentation only if it raises that run's validation metric."
    ),
    kermany_size=64,
    seeds=(0, 1, 2),
    lr=1e-3,
    max_epochs=30,
    epochs_by_model={"resnet18": 12, "densenet121": 8},
    protocol_by_task={
        "binary": {
            "scheduler": "cosine",
            "monitor": "val_auroc",
            "patience": 30,  # patience >= epochs: no early stop
            "channels_last": True,  # faster for DenseNet121 too (benchmarks/BENCHMARK.md, benchmarks/avx512-bf16-amx)
            "epochs_by_model": {"simple_cnn": 30, "resnet18": 10, "densenet121": 5},
            # hflip test-time augmentation, kept per run only where it raises that run's validation metric
            # (benchmarks/TTA.md: it raised three-class validation macro-F1 for every model)
            "tta": "auto",
        },
        # The same protocol for three classes (and notebook 06's stage models): the deck's plateau
        # schedule with early stopping stopped at noisy validation-loss minima (ResNet18 seed 0 kept
        # epoch 2 of 7), so every model now trains its whole budget and keeps the best epoch.
        "three_class": {
            "scheduler": "cosine",
            "monitor": "val_auroc",  # macro AUROC over the three classes
            "patience": 30,  # patience >= epochs: no early stop
            "channels_last": True,
            "epochs_by_model": {"simple_cnn": 30, "resnet18": 12, "densenet121": 10},
            "tta": "auto",
        },
    },
    loss="weighted_bce",
    bf16=True,
    augment={"translate": 0.1, "brightness": 0.2},
)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="Tiny stratified subsets, one seed, one epoch: checks that every cell runs (nbval, CI).",
        mnist_subset=96,
        kermany_size=32,
        kermany_subset=48,
        seeds=(0,),
        lr=1e-3,
        max_epochs=1,
        patience=1,
        head_epochs=0,
        loss="weighted_bce",
        # as on cpu: hflip test-time augmentation where each run's validation says it helps (benchmarks/TTA.md)
        protocol_by_task={
            "binary": {"scheduler": "cosine", "monitor": "val_auroc", "tta": "auto"},
            "three_class": {"scheduler": "cosine", "monitor": "val_auroc", "channels_last": True, "tta": "auto"},
        },
    ),
    "cpu": _CPU,
    # the cpu course cut short: the same data (so the same test images), models, loss, augmentation and precision,
    # one seed and short epoch budgets (tests/test_profiles.py checks that nothing else differs)
    "class": dataclasses.replace(
        _CPU,
        name="class",
        description=(
            "The cpu course cut to fit a lesson: the same data (full PneumoniaMNIST at 28 px, the Kermany folder "
            "at 64 px, so the same test images), models, loss, augmentation and bf16 autocast, but one seed and "
            "short epoch budgets. Aimed at a first run of 10 minutes or less on 2 cores with native bf16; its "
            "numbers are compared with cpu's in the README."
        ),
        seeds=(0,),
        # Budgets sized from the cpu runs' seconds per epoch (2 bf16 cores: binary ResNet18 ~54 s, DenseNet121 ~57 s;
        # three classes ~20 s each; custom CNN ~2 s) so that the first run fits about 10 minutes. The cpu histories
        # show binary validation AUROC at 0.94-0.99 after one or two epochs, so the binary task gets the minimum and
        # the three-class task (far behind cpu with 3 and 2 epochs: benchmarks/CLASS.md of commit 9adfcec) gets more.
        # Notebook 06's stage models train the three-class budget of whichever model wins on validation in 05.
        max_epochs=16,
        epochs_by_model={"resnet18": 4, "densenet121": 2},
        protocol_by_task={
            "binary": {
                **_CPU.protocol_by_task["binary"],
                "epochs_by_model": {"simple_cnn": 10, "resnet18": 2, "densenet121": 1},
            },
            "three_class": {
                **_CPU.protocol_by_task["three_class"],
                "epochs_by_model": {"simple_cnn": 16, "resnet18": 4, "densenet121": 2},
            },
        },
    ),
    "gpu": Profile(
        name="gpu",
        description=(
            "The deck's setting, on a GPU: Kermany at 224 px for both tasks, ImageNet weights for ResNet18 "
            "and DenseNet121 (the custom CNN from scratch) with ImageNet normalisation, two-phase fine-tuning "
            "(5 head epochs with the backbone frozen, then all layers), Adam 1e-4, plateau 0.5/3, early "
            "stopping 5, at most 30 epochs, batch 32, 3 seeds, bf16 AMP."
        ),
        kermany_size=224,
        binary_data="kermany",
        full_kermany=True,
        weights="imagenet",
        bf16=True,
        device="cuda",
    ),
    "gpu-smoke": Profile(
        name="gpu-smoke",
        description=(
            "The gpu profile's code path on a CPU, on tiny subsets: Kermany 224 px for both tasks, ImageNet "
            "weights per model, two-phase fine-tuning with 1 head epoch plus 1 full epoch, 1 seed. Checks "
            "that every cell runs (CI uses stand-in weights); its numbers mean nothing."
        ),
        kermany_size=224,
        kermany_subset=24,
        binary_data="kermany",
        weights="imagenet",
        seeds=(0,),
        max_epochs=2,
        head_epochs=1,
        patience=2,
        bf16=True,  # as on gpu; on a CPU only where bf16 is native (pneumolib.loop.use_bf16)
    ),
}

DEFAULT_PROFILE = "smoke"


def get_profile(name: str | Profile) -> Profile:
    """Return the profile called ``name`` (a :class:`Profile` passes through unchanged)."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"Unknown profile {name!r}. Choose one of {sorted(PROFILES)} (defined in pneumolib/profiles.py)."
        ) from None


def require_profile(profile: Profile) -> Profile:
    """``profile`` itself; a name is refused, because the profile is resolved once, at the entry point."""
    if not isinstance(profile, Profile):
        raise TypeError(
            f"expected a Profile, got {profile!r}: resolve the name once with "
            f"pneumolib.profiles.get_profile({profile!r}) and pass the Profile on."
        )
    return profile


def profile_hash(profile: Profile) -> str:
    """Short, stable hash of a profile's settings; stored with every result it produced."""
    settings = require_profile(profile).to_dict()
    for name, default in ADDED_SETTINGS.items():
        if settings[name] == default:
            del settings[name]
    payload = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
