"""Tables and labels shared by the report's sections and the model card (metrics, test splits, calibration)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .blocks import bullets, fmt_mean_std, fmt_num, humanize, is_num, table

BINARY_METRICS = {
    "accuracy": "ACC",
    "precision": "Precision",
    "recall": "Recall",
    "specificity": "Specificity",
    "f1": "F1",
}
MULTI_METRICS = {"accuracy": "ACC", "macro_f1": "Macro F1", "macro_auroc": "Macro AUROC"}


def split_label(n_test: Any, full: Any) -> str:
    if is_num(n_test) and is_num(full) and n_test < full:
        return f"official test, stratified subset (n = {fmt_num(n_test)} of {fmt_num(full)})"
    return f"official test (n = {fmt_num(n_test)})"


def full_mnist_test(data: dict | None) -> int | None:
    counts = (data or {}).get("pneumoniamnist_counts", {}).get("test")
    return sum(counts.values()) if isinstance(counts, dict) else None


def pretraining_label(weights: str | None) -> str:
    """The pretraining column of a table: "ImageNet" or "none" (cf. models.weights_label, the run-key label)."""
    return "ImageNet" if weights == "imagenet" else "none"


def skipped_notes(results: dict) -> list[dict]:
    skipped = results.get("skipped") or {}
    if not skipped:
        return []
    return [bullets([f"{key}: {reason}" for key, reason in skipped.items()], lead="Skipped arms (and why):")]


def multiclass_rows(three: dict) -> tuple[list[list], list[list]]:
    summary_rows, class_rows = [], []
    for e in three.get("models", {}).values():
        s = e.get("summary", {})
        summary_rows.append(
            [e.get("display_name"), pretraining_label(e.get("weights")), f"{fmt_num(e.get('image_size'))} px"]
            + [fmt_mean_std(s.get("test", {}).get(m)) for m in MULTI_METRICS]
            + [fmt_mean_std(s.get("ms_per_img"), 2), str(len(e.get("runs", [])))]
        )
        for cls, stats in (s.get("per_class") or {}).items():
            class_rows.append(
                [e.get("display_name"), cls] + [fmt_mean_std(stats.get(m)) for m in ("precision", "recall", "f1")]
            )
    return summary_rows, class_rows


def full_kermany_test(data: dict | None) -> int | None:
    table = ((data or {}).get("kermany_coverage") or {}).get("table") or []
    full = [r.get("full_dataset") for r in table if r.get("split") == "test"]
    return sum(full) if full and all(is_num(v) for v in full) else None


# ---- calibration (notebook 07 and the model card)
CAL_KEYS = {
    "ece_15": "ECE (15 bins)",
    "ece_10": "ECE (10 bins)",
    "mce_15": "MCE (15 bins)",
    "brier": "Brier",
    "nll": "NLL",
}


def _before_after(entry: Mapping, key: str) -> str:
    b, a = (entry.get("before") or {}).get(key), (entry.get("after") or {}).get(key)
    return f"{fmt_num(b)} → {fmt_num(a)}"


def _calibration_entries(section: Mapping) -> list[tuple[str, Mapping]]:
    """(label, entry) of the primary ensemble, the other ensembles and the members."""
    out = []
    ens = section.get("ensemble") or {}
    if ens:
        out.append((ens.get("label", "ensemble"), ens))
    out += [(e.get("label", arm), e) for arm, e in (section.get("other_ensembles") or {}).items()]
    out += list((section.get("members") or {}).items())
    return out


def calibration_table(section: Mapping, task: str) -> dict:
    rows = [
        [label, fmt_num(e.get("temperature"))] + [_before_after(e, k) for k in CAL_KEYS]
        for label, e in _calibration_entries(section)
    ]
    return table(
        ["Model", "T (val.)"] + list(CAL_KEYS.values()),
        rows,
        size=7.5,
        caption=f"{task}: test-set calibration before → after temperature scaling (T fitted on the "
        "validation split). Lower is better for every column.",
    )


# ---- any nested dict of numbers as a table (used for the shift audit's summaries)
def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _is_stat(v: Any) -> bool:
    return isinstance(v, dict) and "mean" in v and set(v) <= {"mean", "std", "n", "min", "max"}


def _cell(v: Any) -> str:
    if _is_stat(v):
        return fmt_mean_std(v)
    if isinstance(v, list) and len(v) == 2 and all(is_num(x) for x in v):
        return f"[{fmt_num(v[0])}, {fmt_num(v[1])}]"
    if isinstance(v, str):
        return v if len(v) <= 80 else v[:77] + "..."
    return fmt_num(v) if _is_scalar(v) else ""


def _flat(d: Mapping, prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Scalar (or mean/std) leaves of a nested dict, keyed by a dotted path, down to ``depth`` levels."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if _is_scalar(v) or _is_stat(v) or (isinstance(v, list) and len(v) == 2 and all(is_num(x) for x in v)):
            out[key] = v
        elif isinstance(v, dict) and depth > 1:
            out.update(_flat(v, key + " · ", depth - 1))
    return out


def dict_table(name: str, value: Any, max_rows: int = 24, max_cols: int = 9) -> dict | None:
    caption = humanize(name) + "."
    if isinstance(value, dict) and value:
        if all(_is_scalar(v) or _is_stat(v) for v in value.values()):
            rows = [[humanize(k), _cell(v)] for k, v in list(value.items())[:max_rows]]
            return table(["Quantity", "Value"], rows, caption=caption)
        if all(isinstance(v, dict) for v in value.values()):
            flats = {k: _flat(v) for k, v in value.items()}
            cols: list[str] = []
            for f in flats.values():
                cols += [c for c in f if c not in cols]
            if not cols:
                return None
            cols = cols[:max_cols]
            rows = [[humanize(k)] + [_cell(f.get(c)) for c in cols] for k, f in list(flats.items())[:max_rows]]
            return table([""] + [humanize(c) for c in cols], rows, caption=caption, size=7.5)
        flat = _flat(value, depth=3)
        if flat:
            rows = [[humanize(k), _cell(v)] for k, v in list(flat.items())[:max_rows]]
            return table(["Quantity", "Value"], rows, caption=caption)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        flats = [_flat(v) for v in value]
        cols: list[str] = []
        for f in flats:
            cols += [c for c in f if c not in cols]
        cols = cols[:max_cols]
        if cols:
            rows = [[_cell(f.get(c)) for c in cols] for f in flats[:max_rows]]
            return table([humanize(c) for c in cols], rows, caption=caption, size=7.5)
    return None
