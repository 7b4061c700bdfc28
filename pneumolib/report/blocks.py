"""The report's building blocks: errors, number formatting, the block model and its Markdown renderer.

A report section is a list of *blocks* (plain dicts: ``table``, ``para``, ``list``, ``heading``, ``note``,
``figure``); the Typst template knows how to draw each kind, and :func:`blocks_to_markdown` renders them as
Markdown for the model card. This module imports nothing from the rest of :mod:`pneumolib.report`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEXT_WIDTH_CM = 17.0  # A4 minus the template's margins
MAX_FIGURE_HEIGHT_CM = 16.0
FIGURE_SCALE = 0.9  # of the figure's natural size (pixels / dpi)


# --------------------------------------------------------------------------- errors
class ReportError(Exception):
    """The report cannot be built from the results as they are; the message says how to fix it."""


class MissingResultsError(ReportError, FileNotFoundError):
    """A results file is missing: run the notebook named in the message."""


class StaleResultsError(ReportError, ValueError):
    """A results file was produced with other settings of the profile: rerun its notebook."""


@dataclass(frozen=True)
class Skipped:
    """A notebook the runner skipped on purpose (recorded in run_metadata.json)."""

    notebook: str
    reason: str


# --------------------------------------------------------------------------- formatting
def is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number for a table: ints with thousands separators, ratios with ``digits`` decimals."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        if x.is_integer() and abs(x) >= 1000:
            return f"{int(x):,}"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 100:
            return f"{x:.1f}"
        return f"{x:.{digits}f}"
    return str(x)


def fmt_mean_std(stat: Mapping | None, digits: int = 3, n: int | None = None) -> str:
    """``{"mean", "std", "n"}`` -> ``"0.912 ± 0.012"`` (just the mean when there is one seed;
    ``n`` is the number of seeds when ``stat`` does not say)."""
    if not stat or not is_num(stat.get("mean")) or not math.isfinite(stat["mean"]):
        return "n/a"
    mean = f"{stat['mean']:.{digits}f}"
    std, n = stat.get("std"), stat.get("n", n)
    if n == 1 or not is_num(std) or not math.isfinite(std):
        return mean
    return f"{mean} ± {std:.{digits}f}"


def fmt_pct(x: Any, digits: int = 1) -> str:
    return "n/a" if not is_num(x) or not math.isfinite(x) else f"{100 * x:.{digits}f} %"


def fmt_seconds(seconds: Any) -> str:
    if not is_num(seconds):
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def humanize(key: str) -> str:
    text = re.sub(r"[_\-]+", " ", str(key)).strip()
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- blocks
# The context is a list of *blocks* per section; the template knows how to draw each kind.
def table(
    header: list, rows: list[list], caption: str = "", note: str = "", first_cols: int = 1, size: float = 8.5
) -> dict:
    rows = [[str(c) for c in r] for r in rows]
    return {
        "kind": "table",
        "caption": caption,
        "header": [str(h) for h in header],
        "rows": rows,
        "note": note,
        "first_cols": first_cols,
        "size": size,
    }


def para(text: str, lead: str = "") -> dict:
    return {"kind": "para", "lead": lead, "text": text}


def bullets(items: list[str], lead: str = "") -> dict:
    return {"kind": "list", "lead": lead, "items": [str(i) for i in items]}


def heading(text: str, level: int = 2) -> dict:
    return {"kind": "heading", "text": text, "level": level}


def note_block(text: str) -> dict:
    return {"kind": "note", "text": text}


def figure_block(path: Path, root: Path, caption: str) -> dict:
    """A figure at about its natural size (fonts as drawn), never wider than the text or taller
    than MAX_FIGURE_HEIGHT_CM (size and dpi read from the PNG)."""
    width = 1.0
    try:
        from PIL import Image  # inside the try: without Pillow a figure falls back to full width

        with Image.open(path) as im:
            w, h = im.size
            dpi = float((im.info.get("dpi") or (150, 150))[0]) or 150.0
        natural_cm = FIGURE_SCALE * w / dpi * 2.54
        width = min(1.0, natural_cm / TEXT_WIDTH_CM, MAX_FIGURE_HEIGHT_CM * w / h / TEXT_WIDTH_CM)
    except Exception:  # unreadable image: let Typst report it by name
        pass
    return {
        "kind": "figure",
        "path": "/" + path.relative_to(root).as_posix(),
        "caption": caption,
        "width": round(width, 3),
        "name": path.stem,
    }


FIGURE_CAPTIONS = {  # known figures, in the order the report shows them
    "01_pneumoniamnist_classes": "PneumoniaMNIST: images per split and class.",
    "01_pneumoniamnist_grid": "Random PneumoniaMNIST training images of each class.",
    "01_kermany_classes": "Kermany: normal / bacterial / viral images, present here and in the full dataset.",
    "01_kermany_grid": "Random Kermany training images, one row per class (with patient ids).",
    "01_kermany_sizes_stored": "Sizes of the Kermany files stored here.",
    "01_kermany_sizes_original": "Sizes of the original Kermany radiographs.",
    "02_augment_pneumoniamnist": "Training augmentations applied to PneumoniaMNIST images.",
    "02_augment_kermany": "Training augmentations applied to Kermany images.",
    "02_augment_too_strong": "Augmentation that is too strong destroys the anatomy.",
    "03_custom_cnn_curves": "Custom CNN: training curves per seed.",
    "03_custom_cnn_confusion": "Custom CNN: confusion matrix (first seed, threshold 0.5).",
    "03_custom_cnn_roc_pr": "Custom CNN: ROC and precision-recall curves with operating points.",
    "03_custom_cnn_outcomes": "Custom CNN: true/false positives and negatives from the test set.",
    "03_custom_cnn_filters": "Custom CNN: first-layer filters.",
    "04_transfer_curves": "ResNet18 and DenseNet121: training curves per seed.",
    "04_metric_bars": "Binary test metrics at threshold 0.5 (mean ± std over seeds).",
    "05_three_class_curves": "Three-class training curves per model and seed.",
    "05_three_class_confusion": "Three-class ensemble: confusion matrix, counts and row-normalised.",
    "05_dominant_error_examples": "Test images of the most frequent three-class error.",
    "05_normal_train_vs_test_stats": "Image statistics of normal images: training folder vs test folder.",
    "05_normal_train_vs_test_images": "Random normal images from the training and the test folder.",
    "06_hierarchical_confusion": "Hierarchical classifier: confusion matrix.",
    "07_ensemble_confusion_binary": "Binary ensemble: confusion matrix at threshold 0.5.",
    "07_ensemble_confusion_three_class": "Three-class ensemble: confusion matrix (argmax).",
    "07_reliability_binary": "Reliability diagrams (binary, test set) before and after temperature scaling.",
    "07_reliability_three_class": "Reliability diagrams (three classes, test set) before and after temperature "
    "scaling.",
    "07_operating_points_roc": "ROC and precision-recall of the temperature-scaled ensemble with the operating "
    "points chosen on validation.",
    "07_operating_points_confusion": "Confusion matrices of the binary ensemble at each operating point.",
    "08_gradcam_outcomes": "Grad-CAM of the predicted class for true/false positives and negatives.",
    "08_gradcam_resnet_vs_densenet": "Same test images, same target class: Grad-CAM of different models and layers.",
    "08_gradcam_three_class": "Three-class Grad-CAM (predicted class) on Kermany test images.",
    "08_gradcam_sanity": "Cascading randomisation sanity check of Grad-CAM.",
}


def figure_caption(stem: str) -> str:
    if stem in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[stem]
    return humanize(re.sub(r"^\d\d_", "", stem)) + "."


def make_section(
    number: str, title: str, notebooks: list[str], blocks: list[dict], skipped: Skipped | None = None
) -> dict:
    label = "–".join(n[:2] for n in notebooks) if len(notebooks) > 1 else number
    return {
        "number": number,
        "label": label,
        "title": title,
        "notebooks": notebooks,
        "status": "skipped" if skipped else "ok",
        "reason": skipped.reason if skipped else "",
        "blocks": blocks,
    }


def _md_escape_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def blocks_to_markdown(blocks: list[dict]) -> str:
    """Render blocks as GitHub-flavoured Markdown."""
    out: list[str] = []
    for b in blocks:
        kind = b["kind"]
        if kind == "heading":
            out.append("#" * b["level"] + " " + b["text"])
        elif kind == "para":
            out.append((f"**{b['lead']}** " if b.get("lead") else "") + b["text"])
        elif kind == "note":
            out.append(f"> {b['text']}")
        elif kind == "list":
            lines = [f"**{b['lead']}**", ""] if b.get("lead") else []
            out.append("\n".join(lines + [f"- {i}" for i in b["items"]]))
        elif kind == "table":
            lines = []
            if b.get("caption"):
                lines += [f"*{b['caption']}*", ""]
            lines.append("| " + " | ".join(_md_escape_cell(h) for h in b["header"]) + " |")
            lines.append("|" + "|".join("---" for _ in b["header"]) + "|")
            lines += ["| " + " | ".join(_md_escape_cell(c) for c in r) + " |" for r in b["rows"]]
            if b.get("note"):
                lines += ["", b["note"]]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{b['caption']}]({b['path'].lstrip('/')})")
    return "\n\n".join(out) + "\n"
