"""Deep ensembles, temperature scaling of many models at once, and validation-chosen operating points.

The building block is a :class:`Member`: the labels, logits and probabilities of one model (or of
an ensemble) on the **validation** and **test** splits, taken from a finished run
(``Run.split_arrays``). From there:

* :func:`collect_members` turns training runs into members (checking that they were all evaluated
  on the same images in the same order);
* :func:`build_ensemble` averages member probabilities, and turns the average back into logits
  (log-odds for binary, log-probabilities for K classes) so it can be temperature-scaled like a
  single model;
* :func:`fit_temperatures` fits ONE temperature per member on its **validation** split only
  (it never reads ``member.test``); :func:`calibration_report` then measures ECE, MCE, Brier and
  NLL on test before and after;
* :func:`choose_thresholds` picks operating points on **validation** data only (screening:
  recall >= 0.99; assisted diagnosis: maximum F1); :func:`operating_points` reports their test
  metrics next to threshold 0.5.

Conventions as in :mod:`pneumolib.metrics`: binary probabilities are 1-D P(pneumonia); multiclass
probabilities are ``(N, K)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .calibration import (apply_temperature, calibration_summary, ensemble_probabilities, fit_temperature, logit,
                          reliability_table, temperature_at_bound)
from .evaluate import DISPLAY_NAMES, MULTI_KEYS, display_name
from .metrics import binary_metrics, multiclass_metrics, select_threshold

__all__ = [
    "SplitArrays",
    "Member",
    "member_label",
    "collect_members",
    "build_ensemble",
    "ensemble_name",
    "ensemble_arms",
    "fit_temperatures",
    "scale_member",
    "temperature_at_bound",
    "calibration_report",
    "calibration_table",
    "reliability_pairs",
    "calibration_results",
    "member_metrics",
    "comparison_table",
    "OPERATING_RULES",
    "choose_thresholds",
    "operating_points",
    "operating_point_table",
    "describe_operating_point",
]

#: Operating points chosen on validation: name -> rule understood by ``metrics.select_threshold``.
OPERATING_RULES = {"screening": "recall>=0.99", "max_f1": "max_f1"}

BINARY_TABLE_KEYS = ("accuracy", "recall", "specificity", "f1", "auroc")


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
            raise ValueError(f"labels {y.shape}, logits {logits.shape} and probabilities {probs.shape} "
                             "must describe the same images (same first dimension; logits and "
                             "probabilities the same shape)")
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
                    "only runs of the same task trained with the same profile and splits.")


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
    ensembles = {arm: build_ensemble([members[member_label(r)] for r in runs], ensemble_name(runs))
                 for arm, runs in arms.items()}
    return members, ensembles


# --------------------------------------------------------------------------- temperature scaling
def fit_temperatures(members: Mapping[str, Member] | Sequence[Member]) -> dict[str, float]:
    """One temperature per member, fitted on its VALIDATION logits only.

    ``member.test`` is never read here, so test data cannot leak into the fit.
    """
    return {m.label: fit_temperature(m.val.logits, m.val.y) for m in _as_list(members)}


def scale_member(member: Member, temperature: float, label: str | None = None) -> Member:
    """The same member with probabilities ``sigmoid/softmax(logits / T)`` on both splits."""
    def scaled(s: SplitArrays) -> SplitArrays:
        return SplitArrays(s.y, s.logits / temperature, apply_temperature(s.logits, temperature))

    return replace(member, label=label or member.label, val=scaled(member.val), test=scaled(member.test))


def calibration_report(members: Mapping[str, Member] | Sequence[Member],
                       temperatures: Mapping[str, float]) -> dict[str, dict]:
    """Test-set calibration of every member before and after its (validation-fitted) temperature.

    Returns ``{label: {"before": calibration_summary, "after": calibration_summary,
    "temperature": T}}`` (plus ``"members"`` for ensembles); summaries hold ``ece_10, ece_15,
    mce_15, brier, nll``.
    """
    report = {}
    for m in _as_list(members):
        if m.label not in temperatures:
            raise KeyError(f"no temperature for {m.label!r}: fit it with fit_temperatures(...) on validation")
        t = float(temperatures[m.label])
        entry = {"before": calibration_summary(m.test.y, m.test.probs),
                 "after": calibration_summary(m.test.y, apply_temperature(m.test.logits, t)),
                 "temperature": t, "temperature_at_bound": temperature_at_bound(t)}
        if m.is_ensemble:
            entry["members"] = list(m.members)
        report[m.label] = entry
    return report


def calibration_table(report: Mapping[str, dict], digits: int = 3) -> pd.DataFrame:
    """One row per model: T, then ECE (10 / 15 bins), MCE, Brier and NLL before -> after."""
    rows = {}
    for label, entry in report.items():
        row = {"T (val)": round(entry["temperature"], digits),
               "T at search bound": bool(entry["temperature_at_bound"])}
        for key in ("ece_10", "ece_15", "mce_15", "brier", "nll"):
            row[f"{key} before"] = round(entry["before"][key], digits)
            row[f"{key} after"] = round(entry["after"][key], digits)
        rows[label] = row
    return pd.DataFrame(rows).T


def reliability_pairs(members: Sequence[Member], temperatures: Mapping[str, float],
                      n_bins: int = 15) -> dict[str, pd.DataFrame]:
    """Test reliability tables before and after temperature scaling, for ``plot_reliability``."""
    tables = {}
    for m in members:
        t = temperatures[m.label]
        tables[f"{m.label}: before"] = reliability_table(m.test.y, m.test.probs, n_bins)
        tables[f"{m.label}: after (T = {t:.2f})"] = reliability_table(m.test.y, apply_temperature(m.test.logits, t),
                                                                      n_bins)
    return tables


def calibration_results(report: Mapping[str, dict], ensembles: Mapping[str, Member], primary: str) -> dict:
    """Shape a :func:`calibration_report` for the results file.

    ``{"members": {label: entry}, "ensemble": entry of ensembles[primary] (with "label" and
    "members"), "other_ensembles": {arm: entry}}``.
    """
    if primary not in ensembles:
        raise KeyError(f"primary ensemble {primary!r} not among {sorted(ensembles)}")
    ens_labels = {e.label for e in ensembles.values()}
    return {"members": {k: v for k, v in report.items() if k not in ens_labels},
            "ensemble": {"label": ensembles[primary].label, **report[ensembles[primary].label]},
            "other_ensembles": {arm: {"label": e.label, **report[e.label]}
                                for arm, e in ensembles.items() if arm != primary}}


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


# --------------------------------------------------------------------------- operating points
def choose_thresholds(y_val, p_val, rules: Mapping[str, str] = OPERATING_RULES) -> dict[str, float]:
    """Thresholds chosen on VALIDATION data only: ``{name: threshold}`` for each rule.

    There is deliberately no test input: whatever you report on test was fixed before looking at it.
    """
    return {name: select_threshold(y_val, p_val, rule) for name, rule in rules.items()}


def operating_points(y_val, p_val, y_test, p_test, rules: Mapping[str, str] = OPERATING_RULES) -> dict:
    """Test metrics at 0.5 and at every validation-chosen threshold.

    Returns ``{"0.5": entry, name: entry, ...}`` with ``entry = {"threshold", "rule",
    "chosen_on", "val_recall", "val_specificity", "test": binary_metrics}``.
    """
    chosen = choose_thresholds(y_val, p_val, rules)
    points = {"0.5": (0.5, "fixed", "fixed (not chosen)")}
    points |= {name: (t, rules[name], "validation") for name, t in chosen.items()}
    out = {}
    for name, (t, rule, how) in points.items():
        val = binary_metrics(y_val, p_val, t)
        out[name] = {"threshold": float(t), "rule": rule, "chosen_on": how, "val_recall": val["recall"],
                     "val_specificity": val["specificity"], "test": binary_metrics(y_test, p_test, t)}
    return out


def operating_point_table(points: Mapping[str, dict], digits: int = 3) -> pd.DataFrame:
    """One row per operating point: threshold, validation recall, test metrics and error counts."""
    rows = {}
    for name, e in points.items():
        t = e["test"]
        rows[name] = {"rule": e["rule"], "threshold": round(e["threshold"], digits),
                      "val recall": round(e["val_recall"], digits),
                      **{f"test {k}": round(t[k], digits) for k in ("recall", "specificity", "precision", "f1")},
                      "missed pneumonia (FN)": t["fn"], "healthy flagged (FP)": t["fp"]}
    return pd.DataFrame(rows).T


def describe_operating_point(name: str, entry: Mapping) -> str:
    """One sentence, every number from ``entry``: misses out of the pneumonia cases, flags out of
    the normal children, on the test set."""
    t = entry["test"]
    n_pos, n_neg = t["tp"] + t["fn"], t["tn"] + t["fp"]
    chosen = "fixed" if entry["chosen_on"].startswith("fixed") else f"chosen on validation by {entry['rule']}"
    return (f"{name} (threshold {entry['threshold']:.3f}, {chosen}): misses {t['fn']} of {n_pos} children "
            f"with pneumonia ({t['fn'] / max(n_pos, 1):.1%}) and flags {t['fp']} of {n_neg} healthy "
            f"children ({t['fp'] / max(n_neg, 1):.1%}) on the test set.")
