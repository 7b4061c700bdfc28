"""Deep ensembles: members, ensembles of them, and their test metrics side by side.

The building block is a :class:`Member`: the labels, logits and probabilities of one model (or of
an ensemble) on the **validation** and **test** splits, taken from a finished run
(``Run.split_arrays``). From there:

* :func:`collect_members` turns training runs into members (checking that they were all evaluated
  on the same images in the same order), labelled with :func:`member_label`;
* :func:`build_ensemble` averages member probabilities, and turns the average back into logits
  (log-odds for binary, log-probabilities for K classes) so it can be temperature-scaled like a
  single model; :func:`ensemble_name` and :func:`ensemble_arms` build one named ensemble per arm;
* :func:`member_metrics` and :func:`comparison_table` compare ensembles with their members on the
  same test images.

Temperature scaling of members, calibration reports and validation-chosen operating points work
on these members and live in :mod:`pneumolib.calibration` (which does not import this module).

Conventions as in :mod:`pneumolib.metrics`: binary probabilities are 1-D P(pneumonia); multiclass
probabilities are ``(N, K)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .calibration import ensemble_probabilities, logit
from .metrics import MULTI_KEYS, binary_metrics, multiclass_metrics
from .models import DISPLAY_NAMES, display_name

__all__ = [
    "ENSEMBLE_MODELS",
    "SplitArrays",
    "Member",
    "member_label",
    "collect_members",
    "build_ensemble",
    "ensemble_name",
    "ensemble_arms",
    "member_metrics",
    "comparison_table",
]

BINARY_TABLE_KEYS = ("accuracy", "recall", "specificity", "f1", "auroc")

#: The project's ensemble, one definition for every task, notebook and the report: every seed of these
#: architectures, probabilities averaged. The custom CNN stays out (it is the weakest model and a
#: separate teaching arm); any other ensemble shown is labelled with its members.
ENSEMBLE_MODELS = ("resnet18", "densenet121")


# --------------------------------------------------------------------------- members
@dataclass(frozen=True)
class SplitArrays:
    """Labels, logits and probabilities of one model on one split (same images, same order)."""

    y: np.ndarray
    logits: np.ndarray
    probs: np.ndarray

    def __post_init__(self) -> None:
        y, logits, probs = (np.asarray(a) for a in (self.y, self.logits, self.probs))
        if y.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {y.shape}")
        if logits.shape != probs.shape or logits.shape[:1] != y.shape:
            raise ValueError(
                f"labels {y.shape}, logits {logits.shape} and probabilities {probs.shape} "
                "must describe the same images (same first dimension; logits and "
                "probabilities the same shape)"
            )
        object.__setattr__(self, "y", y.astype(int))
        object.__setattr__(self, "logits", logits.astype(float))
        object.__setattr__(self, "probs", probs.astype(float))


@dataclass(frozen=True)
class Member:
    """One model (or ensemble) with its validation and test predictions."""

    label: str
    val: SplitArrays
    test: SplitArrays
    members: tuple[str, ...] = field(default=())  # labels of the averaged models (ensembles only)

    @property
    def is_binary(self) -> bool:
        return self.val.probs.ndim == 1

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)


def member_label(run) -> str:
    """``"ResNet18 (scratch) seed 0"``: display name with the weights the run really used."""
    return f"{display_name(run.model_name, run.info['weights'])} seed {run.seed}"


def _check_same_images(members: Sequence[Member]) -> None:
    """All members must hold predictions for the same images (labels equal, same shape)."""
    first = members[0]
    for m in members[1:]:
        for split in ("val", "test"):
            a, b = getattr(first, split), getattr(m, split)
            if a.probs.shape != b.probs.shape or not np.array_equal(a.y, b.y):
                raise ValueError(
                    f"{m.label!r} and {first.label!r} were evaluated on different {split} images "
                    f"(shapes {b.probs.shape} vs {a.probs.shape} or different labels): ensemble and compare "
                    "only runs of the same task trained with the same profile and splits."
                )


def collect_members(runs: Iterable) -> dict[str, Member]:
    """``{label: Member}`` from finished runs (anything with ``split_arrays``, ``model_name``,
    ``seed`` and ``info["weights"]``, e.g. :class:`pneumolib.train.Run`)."""
    members: dict[str, Member] = {}
    for run in runs:
        label = member_label(run)
        if label in members:
            raise ValueError(f"two runs are both labelled {label!r}: pass every (model, weights, seed) once")
        members[label] = Member(label, SplitArrays(*run.split_arrays("val")), SplitArrays(*run.split_arrays("test")))
    if not members:
        raise ValueError("collect_members got no runs: train or load them first with train_seeds(...)")
    _check_same_images(list(members.values()))
    return members


def _as_list(members: Mapping[str, Member] | Sequence[Member]) -> list[Member]:
    return list(members.values()) if isinstance(members, Mapping) else list(members)


def build_ensemble(members: Mapping[str, Member] | Sequence[Member], label: str) -> Member:
    """Average the members' probabilities (val and test separately) into one ensemble member.

    The ensemble's logits are ``calibration.logit`` of the averaged probabilities: the log-odds
    for binary, the log-probabilities for K classes. Fitting one temperature on them (on
    validation) is how the ensemble is temperature-scaled.
    """
    members = _as_list(members)
    if not members:
        raise ValueError(f"ensemble {label!r} has no members")
    _check_same_images(members)
    splits = {}
    for split in ("val", "test"):
        probs = ensemble_probabilities([getattr(m, split).probs for m in members])
        splits[split] = SplitArrays(getattr(members[0], split).y, logit(probs), probs)
    return Member(label, splits["val"], splits["test"], tuple(m.label for m in members))


def ensemble_name(runs: Sequence) -> str:
    """``"Ensemble: ResNet18 + DenseNet121 (scratch), 6 runs"``: what was averaged, labelled with
    the weights the runs really used (each model gets its own label when the weights differ)."""
    pairs = list(dict.fromkeys((r.model_name, r.info["weights"]) for r in runs))
    weights = {w for _, w in pairs}
    if len(weights) == 1:
        models = " + ".join(DISPLAY_NAMES.get(name, name) for name, _ in pairs)
        what = f"{models} ({weights.pop()})"
    else:
        what = " + ".join(display_name(name, w) for name, w in pairs)
    return f"Ensemble: {what}, {len(runs)} run{'s' if len(runs) != 1 else ''}"


def ensemble_arms(arms: Mapping[str, Sequence]) -> tuple[dict[str, Member], dict[str, Member]]:
    """Members of all runs, and one ensemble per arm.

    ``arms`` maps an arm name to its runs, e.g. ``{"transfer": resnet_runs + densenet_runs,
    "custom_cnn": cnn_runs}``. Returns ``(members, ensembles)``: ``{label: Member}`` for every
    run and ``{arm: Member}`` for every ensemble (named with :func:`ensemble_name`).
    """
    empty = [arm for arm, runs in arms.items() if not runs]
    if empty:
        raise ValueError(f"ensemble arm(s) {empty} have no runs: train or load them with train_seeds(...) first")
    members = collect_members([r for runs in arms.values() for r in runs])
    ensembles = {
        arm: build_ensemble([members[member_label(r)] for r in runs], ensemble_name(runs)) for arm, runs in arms.items()
    }
    return members, ensembles


# --------------------------------------------------------------------------- comparison
def member_metrics(member: Member, classes: Sequence[str] | None = None) -> dict:
    """Test metrics: binary at threshold 0.5 (accuracy, recall, specificity, F1, AUROC, and the
    confusion counts); multiclass at the arg-max (accuracy, macro-F1, macro AUROC, confusion)."""
    y, p = member.test.y, member.test.probs
    if member.is_binary:
        m = binary_metrics(y, p, 0.5)
        return {k: m[k] for k in (*BINARY_TABLE_KEYS, "precision", "tp", "tn", "fp", "fn", "n")}
    if classes is None:
        raise ValueError(f"{member.label!r} is multiclass: pass classes=(...) naming its labels")
    m = multiclass_metrics(y, p, classes)
    return {k: m[k] for k in (*MULTI_KEYS, "per_class", "confusion")}


def comparison_table(metrics: Mapping[str, dict], digits: int = 3) -> pd.DataFrame:
    """Rows = models/ensembles, columns = the headline metrics present in ``metrics``."""
    rows = {}
    for label, m in metrics.items():
        keys = BINARY_TABLE_KEYS if "recall" in m else MULTI_KEYS
        rows[label] = {k: round(float(m[k]), digits) for k in keys}
    return pd.DataFrame(rows).T
