"""The PDF report and the model card, built from the results files only (never trains).

Usage (from the project root, or anywhere with ``PNEUMOLAB_ROOT`` set)::

    python -m pneumolib.report --profile cpu     # -> report/report.pdf (the committed reference)
    python -m pneumolib.report --profile smoke   # -> report/smoke/report.pdf (git-ignored)

How it works:

1. :func:`build_context` reads ``results/<profile>/*.json`` (written by the notebooks) and
   ``results/<profile>/run_metadata.json`` (written by ``python -m pneumolib.run``), checks that
   every file is there and was produced with the *current* settings of the profile
   (``meta.profile_hash``), and turns the numbers into display strings (``"0.912 ± 0.012"``),
   tables and figure lists: one JSON *context*.
2. The context goes to ``build/report/<profile>/context.json``; the Typst template
   ``report/report.typ`` reads it with ``json()`` and lays out the PDF. No number is typed into
   the template: the template holds layout and number-free prose.
3. :func:`model_card` turns the same results into a Markdown model card
   (``MODEL_CARD.md`` next to the PDF); the PDF and notebook 09 show the same card.

A missing results file stops the build with a message naming the notebook to run. The one
exception is a notebook that the runner *skipped* (e.g. no Kermany folder): its section says
"skipped" and why, which is a result, not a placeholder.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .anchors import ANCHORS
from .metrics import summarize_runs
from .profiles import PROFILES, get_profile, profile_hash
from .results import _atomic_write_bytes, project_root, read_json, results_dir, write_json, write_text

__all__ = [
    "ReportError", "MissingResultsError", "StaleResultsError", "RESULT_FILES",
    "build_context", "build_report", "model_card", "model_card_blocks", "blocks_to_markdown",
    "report_paths", "fmt_num", "fmt_mean_std", "main",
]

REFERENCE_PROFILE = "cpu"  # its report is committed as report/report.pdf
TEMPLATE_NAME = "report.typ"
TEXT_WIDTH_CM = 17.0  # A4 minus the template's margins
MAX_FIGURE_HEIGHT_CM = 16.0
FIGURE_SCALE = 0.9  # of the figure's natural size (pixels / dpi)

#: results file -> (number of the notebook that writes it, its default name). Names are looked
#: up in notebooks/ first, so a renamed notebook is still named correctly in error messages.
RESULT_FILES: dict[str, tuple[str, str]] = {
    "data": ("01", "01_data_exploration"),
    "binary": ("03", "03_custom_cnn"),
    "three_class": ("05", "05_three_class"),
    "hierarchical": ("06", "06_hierarchical"),
    "calibration": ("07", "07_ensemble_calibration"),
    "gradcam": ("08", "08_gradcam"),
}
METADATA_FILE = "run_metadata.json"

BINARY_METRICS = {"accuracy": "ACC", "precision": "Precision", "recall": "Recall",
                  "specificity": "Specificity", "f1": "F1"}
MULTI_METRICS = {"accuracy": "ACC", "macro_f1": "Macro F1", "macro_auroc": "Macro AUROC"}
# the binary task's goals on the `cpu` profile (scratch, 3 seeds, official test set): best mean over
# models at threshold 0.5, and the wall time of a first run of notebooks 03 + 04 on 2 cores
BINARY_TARGETS = {"profile": "cpu", "auroc": 0.975, "accuracy": 0.90, "wall_min_03_04": 30.0}


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
def _is_num(x: Any) -> bool:
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
    if not stat or not _is_num(stat.get("mean")) or not math.isfinite(stat["mean"]):
        return "n/a"
    mean = f"{stat['mean']:.{digits}f}"
    std, n = stat.get("std"), stat.get("n", n)
    if n == 1 or not _is_num(std) or not math.isfinite(std):
        return mean
    return f"{mean} ± {std:.{digits}f}"


def fmt_pct(x: Any, digits: int = 1) -> str:
    return "n/a" if not _is_num(x) or not math.isfinite(x) else f"{100 * x:.{digits}f} %"


def fmt_seconds(seconds: Any) -> str:
    if not _is_num(seconds):
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _humanize(key: str) -> str:
    text = re.sub(r"[_\-]+", " ", str(key)).strip()
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- blocks
# The context is a list of *blocks* per section; the template knows how to draw each kind.
def _table(header: list, rows: list[list], caption: str = "", note: str = "", first_cols: int = 1,
           size: float = 8.5) -> dict:
    rows = [[str(c) for c in r] for r in rows]
    return {"kind": "table", "caption": caption, "header": [str(h) for h in header], "rows": rows,
            "note": note, "first_cols": first_cols, "size": size}


def _para(text: str, lead: str = "") -> dict:
    return {"kind": "para", "lead": lead, "text": text}


def _bullets(items: list[str], lead: str = "") -> dict:
    return {"kind": "list", "lead": lead, "items": [str(i) for i in items]}


def _heading(text: str, level: int = 2) -> dict:
    return {"kind": "heading", "text": text, "level": level}


def _note(text: str) -> dict:
    return {"kind": "note", "text": text}


def _figure_block(path: Path, root: Path, caption: str) -> dict:
    """A figure at about its natural size (fonts as drawn), never wider than the text or taller
    than MAX_FIGURE_HEIGHT_CM (size and dpi read from the PNG)."""
    width = 1.0
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            dpi = float((im.info.get("dpi") or (150, 150))[0]) or 150.0
        natural_cm = FIGURE_SCALE * w / dpi * 2.54
        width = min(1.0, natural_cm / TEXT_WIDTH_CM, MAX_FIGURE_HEIGHT_CM * w / h / TEXT_WIDTH_CM)
    except Exception:  # unreadable image: let Typst report it by name
        pass
    return {"kind": "figure", "path": "/" + path.relative_to(root).as_posix(), "caption": caption,
            "width": round(width, 3), "name": path.stem}


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


def _figure_caption(stem: str) -> str:
    if stem in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[stem]
    return _humanize(re.sub(r"^\d\d_", "", stem)) + "."


# --------------------------------------------------------------------------- loading
class _Results:
    """Reads the results of one profile, collecting every problem before raising."""

    def __init__(self, profile: str):
        prof = get_profile(profile)
        self.profile = prof
        self.name = prof.name
        self.hash = profile_hash(prof)
        self.root = project_root()
        self.dir = results_dir(self.name)
        self.problems: list[str] = []
        self.missing = False
        self.notebook_names = self._notebook_names()
        meta_path = self.dir / METADATA_FILE
        self.run_meta = read_json(meta_path) if meta_path.exists() else None
        self._cache: dict[str, Any] = {}

    def _notebook_names(self) -> dict[str, str]:
        names = {num: name for num, name in RESULT_FILES.values()}
        for path in sorted((self.root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            names[path.name[:2]] = path.stem
        return names

    def notebook(self, number: str) -> str:
        return self.notebook_names.get(number, number)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def run_command(self, number: str) -> str:
        return f"python -m pneumolib.run --profile {self.name} --only {number}"

    def run_entry(self, number: str) -> dict | None:
        table = (self.run_meta or {}).get("notebooks") or {}
        for name, entry in table.items():
            if name[:2] == number:
                return entry
        return None

    def get(self, file: str) -> dict | Skipped | None:
        """The results file's content, a :class:`Skipped`, or None (problem recorded)."""
        if file in self._cache:
            return self._cache[file]
        number, _ = RESULT_FILES[file]
        nb = self.notebook(number)
        path = self.dir / f"{file}.json"
        entry = self.run_entry(number)
        value: dict | Skipped | None = None
        if not path.exists():
            if entry and entry.get("status") == "skipped":
                value = Skipped(nb, entry.get("reason") or "no reason recorded")
            else:
                self.missing = True
                self.problems.append(f"{self.rel(path)} missing: run notebook {nb} ({self.run_command(number)})")
        else:
            try:
                value = read_json(path)
            except ValueError as err:
                self.problems.append(f"{self.rel(path)} is not valid JSON ({err}): rerun notebook {nb} "
                                     f"({self.run_command(number)})")
                value = None
            if value is not None:
                value = self._check_fresh(file, path, value, number, nb, entry)
        self._cache[file] = value
        return value

    def _check_fresh(self, file, path, data, number, nb, entry):
        meta = data.get("meta") if isinstance(data, dict) else None
        if isinstance(meta, dict) and "profile_hash" in meta:
            if meta.get("profile") not in (None, self.name):
                self.problems.append(f"{self.rel(path)} holds results of profile {meta.get('profile')!r}, "
                                     f"not {self.name!r}: rerun notebook {nb} ({self.run_command(number)})")
                return None
            if meta["profile_hash"] != self.hash:
                self.problems.append(
                    f"{self.rel(path)} is stale: written with profile settings {meta['profile_hash']}, but "
                    f"profile {self.name!r} is now {self.hash} (pneumolib/profiles.py changed). Rerun notebook "
                    f"{nb} and the notebooks after it (python -m pneumolib.run --profile {self.name} --from {number}).")
                return None
        elif entry and entry.get("status") == "ok" and entry.get("profile_hash") not in (None, self.hash):
            # a file without meta (data.json): the runner's record tells which settings made it
            self.problems.append(
                f"{self.rel(path)} is stale: notebook {nb} last ran with profile settings "
                f"{entry['profile_hash']}, profile {self.name!r} is now {self.hash}. "
                f"Rerun it ({self.run_command(number)}).")
            return None
        if entry and entry.get("status") == "failed":
            self.problems.append(f"notebook {nb} failed in the last run ({entry.get('reason')}): fix it and rerun "
                                 f"({self.run_command(number)}); {self.rel(path)} may be incomplete.")
            return None
        return data

    def raise_problems(self, what: str = "the report") -> None:
        if not self.problems:
            return
        text = (f"Cannot build {what} for profile {self.name!r}:\n  - " + "\n  - ".join(self.problems)
                + f"\n(or run every notebook: python -m pneumolib.run --profile {self.name})")
        if self.missing:
            raise MissingResultsError(text)
        raise StaleResultsError(text)


# --------------------------------------------------------------------------- cover
def _machine_text(machine: Mapping | None) -> str:
    if not machine:
        return "not recorded"
    parts = []
    if machine.get("cpu_count"):
        parts.append(f"{machine['cpu_count']} CPU cores")
    if machine.get("memory_gib"):
        parts.append(f"{machine['memory_gib']} GiB RAM")
    parts.append(f"GPU: {machine['cuda_device']}" if machine.get("cuda_device") else "no GPU")
    if machine.get("platform"):
        parts.append(str(machine["platform"]))
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']}")
    return ", ".join(parts)


def _training_texts(task_results: dict) -> list[str]:
    """How each task's models were trained, read from the protocol stored with their results."""
    texts = []
    for task, results in task_results.items():
        groups: dict[str, list[str]] = {}
        for e in (results or {}).get("models", {}).values() if isinstance(results, dict) else []:
            protocol = e.get("protocol")
            if protocol:
                groups.setdefault(protocol["text"], []).append(f"{e.get('display_name')} {protocol['max_epochs']}")
        for text, epochs in groups.items():
            texts.append(f"{task + ': ' if task else ''}{text}; epoch budget: {', '.join(epochs)}.")
    return texts


def _cover(res: _Results) -> dict:
    meta = res.run_meta or {}
    git = meta.get("git") or {}
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += " (uncommitted changes)"
    rows = []
    for name, entry in sorted((meta.get("notebooks") or {}).items()):
        status = entry.get("status") or "?"
        detail = entry.get("reason") or ""
        if entry.get("profile_hash") and entry["profile_hash"] != res.hash:
            detail = (detail + "; " if detail else "") + f"other settings ({entry['profile_hash']})"
        rows.append([name, status, fmt_seconds(entry.get("wall_s")) if status != "skipped" else "",
                     (entry.get("date") or "")[:10], detail])
    total = sum(e.get("wall_s") or 0 for e in (meta.get("notebooks") or {}).values())
    prof = res.profile
    settings = (f"PneumoniaMNIST {prof.mnist_size} px"
                f"{'' if prof.mnist_subset is None else f' (subset {prof.mnist_subset} per split)'}; "
                f"Kermany {prof.kermany_size} px"
                f"{'' if prof.kermany_subset is None else f' (subset {prof.kermany_subset} per split)'}; "
                f"seeds {', '.join(str(s) for s in prof.seeds)}; "
                f"weights {prof.weights}")
    return {
        "title": "PneumoLab: pediatric chest X-ray classification",
        "subtitle": "Normal vs pneumonia, and normal / bacterial / viral pneumonia: a reproducible teaching study",
        "disclaimer": "Educational prototype, not a clinical device. Do not use these models for diagnosis.",
        "facts": [
            ["Profile", f"{prof.name} ({res.hash})"],
            ["Settings", settings],
            ["Profile description", prof.description],
            ["Run date", (meta.get("date") or "not recorded").replace("T", " ")],
            ["Report built", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
            ["Git commit", commit],
            ["Machine", _machine_text(meta.get("machine"))],
            ["Total notebook time", fmt_seconds(total)],
        ],
        "notebooks": _table(["Notebook", "Status", "Wall time", "Date", "Note"], rows,
                            caption="Notebooks of this run (python -m pneumolib.run), with their wall time.",
                            size=8),
    }


# --------------------------------------------------------------------------- sections
def _section(number: str, title: str, notebooks: list[str], blocks: list[dict],
             skipped: Skipped | None = None) -> dict:
    label = "–".join(n[:2] for n in notebooks) if len(notebooks) > 1 else number
    return {"number": number, "label": label, "title": title, "notebooks": notebooks,
            "status": "skipped" if skipped else "ok",
            "reason": skipped.reason if skipped else "", "blocks": blocks}


def _figures(res: _Results, numbers: Iterable[str]) -> list[dict]:
    """Every figures/<profile>/NN_*.png of these notebooks: known ones in story order, then the rest."""
    folder = res.root / "figures" / res.name
    order = {name: i for i, name in enumerate(FIGURE_CAPTIONS)}
    blocks = []
    for number in numbers:
        paths = sorted(folder.glob(f"{number}_*.png"), key=lambda p: (order.get(p.stem, len(order)), p.stem))
        for path in paths:
            blocks.append(_figure_block(path, res.root, _figure_caption(path.stem)))
    return blocks


def _test_label(n_test: Any, full: Any) -> str:
    if _is_num(n_test) and _is_num(full) and n_test < full:
        return f"official test, stratified subset (n = {fmt_num(n_test)} of {fmt_num(full)})"
    return f"official test (n = {fmt_num(n_test)})"


def _full_mnist_test(data: dict | None) -> int | None:
    counts = (data or {}).get("pneumoniamnist_counts", {}).get("test")
    return sum(counts.values()) if isinstance(counts, dict) else None


def _section_data(res: _Results, data: dict) -> dict:
    blocks: list[dict] = []
    counts = data.get("pneumoniamnist_counts") or {}
    majority = data.get("majority_baseline_accuracy") or {}
    if counts:
        rows = []
        for split, c in counts.items():
            total = sum(c.values())
            maj = (majority.get(split) or {}).get("accuracy")
            rows.append([split, fmt_num(c.get("normal")), fmt_num(c.get("pneumonia")), fmt_num(total),
                         fmt_pct(c.get("pneumonia", 0) / total if total else None), fmt_num(maj)])
        blocks.append(_table(["Split", "Normal", "Pneumonia", "Total", "Pneumonia share",
                              "Always-pneumonia accuracy"], rows,
                             caption="PneumoniaMNIST (full dataset): images per split and class, and the accuracy "
                                     "of a model that always answers pneumonia."))
    cov = data.get("kermany_coverage")
    if cov:
        rows = [[r.get("split"), r.get("label3"), fmt_num(r.get("present")), fmt_num(r.get("full_dataset")),
                 fmt_pct(r.get("share"))] for r in cov.get("table", [])]
        blocks.append(_table(["Split", "Class", "Present here", "Full dataset", "Share"], rows,
                             caption="Kermany chest_xray folder: images present on this machine vs the full dataset.",
                             first_cols=2))
        shares = {}
        for r in cov.get("table", []):
            p, f = shares.get(r.get("split"), (0, 0))
            shares[r.get("split")] = (p + (r.get("present") or 0), f + (r.get("full_dataset") or 0))
        text = "; ".join(f"{s} {fmt_pct(p / f)}" for s, (p, f) in shares.items() if f)
        blocks.append(_para(f"share of each official folder present on this machine: {text}.", lead="Coverage:"))
    grouped = data.get("grouped_split")
    if grouped:
        header = ["Split", "Images", "Patients", "Normal", "Bacteria", "Virus"]
        keys = ["images", "patients", "normal", "bacteria", "virus"]
        rows = [[s] + [fmt_num(c.get(k)) for k in keys] for s, c in grouped.get("counts", {}).items()]
        blocks.append(_table(header, rows, caption=(
            f"Patient-grouped split used for the three-class task ({fmt_num(grouped.get('size'))} px): validation "
            f"is carved out of the training folder by patient; {fmt_num(grouped.get('shared_patients_train_val'))} "
            "patients are in both train and validation. The official test folder is kept intact.")))
    ov_p, ov_f = data.get("overlap_present"), data.get("overlap_full")
    if ov_p or ov_f:
        labels = {"shared_patient_ids_train_test": "Patient ids in both official train and test",
                  "test_images_of_shared_patients": "Test images of those patient ids",
                  "duplicate_files_train_test": "Byte-identical files in train and test",
                  "duplicate_pairs_any_split": "Duplicate file pairs (any split)"}
        cols = [("present here", ov_p), ("full dataset", ov_f)]
        cols = [(n, o) for n, o in cols if o]
        rows = [[label] + [fmt_num(o.get(k)) for _, o in cols] for k, label in labels.items()]
        for split in ("train", "test"):
            rows.append([f"Images / patient ids in {split}"] + [
                f"{fmt_num(o.get('images', {}).get(split))} / {fmt_num(o.get('patients', {}).get(split))}"
                for _, o in cols])
        note = ""
        if "overlap_shared_ids_same_diagnosis" in data:
            note = (f"Shared ids with the same diagnosis in train and test: "
                    f"{fmt_num(data['overlap_shared_ids_same_diagnosis'])}.")
        blocks.append(_table(["Kermany train/test overlap (from file names)"] + [n for n, _ in cols], rows,
                             caption="Patient ids shared by the official Kermany train and test folders: a leakage "
                                     "risk that we report rather than remove (the test set stays comparable).",
                             note=note))
    if not (cov or grouped or ov_p):
        blocks.append(_note("The Kermany folder was absent when notebook 01 ran: its Kermany tables are not "
                            "available for this profile."))
    return _section("01", "Data: what is in the chest X-ray folders", [res.notebook("01")],
                    blocks + _figures(res, ["01"]))


def _section_augmentation(res: _Results, data: dict) -> dict:
    blocks: list[dict] = []
    aug = data.get("augment_ms_per_batch32") or {}
    step = data.get("simplecnn_train_step_ms_batch32") or {}
    rows = [[f"Augmenting a batch of 32 ({size})", f"{fmt_num(ms, 1)} ms"] for size, ms in aug.items()]
    rows += [[f"Custom CNN training step, batch of 32 ({size})", f"{fmt_num(ms, 1)} ms"] for size, ms in step.items()]
    if rows:
        blocks.append(_table(["Cost on this machine", "Time"], rows,
                             caption="What augmentation costs compared with a training step."))
    return _section("02", "Augmentation", [res.notebook("02")], blocks + _figures(res, ["02"]))


def _weights_label(weights: str | None) -> str:
    return "ImageNet" if weights == "imagenet" else "none"


def _binary_tables(binary: dict, res: _Results, data: dict | None) -> list[dict]:
    meta = binary.get("meta", {})
    models = binary.get("models", {})
    n_test = (meta.get("n") or {}).get("test")
    split = _test_label(n_test, _full_mnist_test(data))
    seeds = meta.get("seeds") or []
    blocks = [_para(f"{meta.get('dataset', 'n/a')}; {split}; seeds {', '.join(map(str, seeds))}. Every cell is the "
                    "mean ± standard deviation over seeds (a single value when there is one seed).",
                    lead="Setting.")]
    rows = []
    for e in models.values():
        s = e.get("summary", {})
        ci = e.get("auroc_ci95") or [None, None]
        thr = summarize_runs(e["runs"]).get("val_threshold") if e.get("runs") else None
        rows.append([e.get("display_name"), _weights_label(e.get("weights")), fmt_num(e.get("parameters")),
                     f"{fmt_num(e.get('image_size'))} px", fmt_mean_std(s.get("at_05", {}).get("auroc")),
                     f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]", fmt_mean_std(s.get("at_05", {}).get("average_precision")),
                     fmt_mean_std(thr), fmt_mean_std(s.get("ms_per_img"), 2), fmt_seconds(s.get("train_time_s"))])
    blocks.append(_table(["Model", "Pretraining", "Parameters", "Input", "AUROC", "AUROC 95% CI", "Avg. precision",
                          "Val. threshold", "ms / image", "Training (all seeds)"], rows,
                         caption="Threshold-free test metrics, bootstrap 95% CI of the seed-averaged AUROC, the "
                                 "threshold chosen on validation (max F1), inference and training cost.", size=7.5))
    for key, title in (("at_05", "at threshold 0.5 (comparable with published tables)"),
                       ("at_val_threshold", "at the threshold chosen on the validation split (max F1)")):
        rows = [[e.get("display_name")] + [fmt_mean_std(e.get("summary", {}).get(key, {}).get(m))
                                           for m in BINARY_METRICS] for e in models.values()]
        blocks.append(_table(["Model"] + list(BINARY_METRICS.values()), rows,
                             caption=f"Binary test metrics {title}."))
    blocks.extend(_skipped_notes(binary))
    return blocks


def _skipped_notes(results: dict) -> list[dict]:
    skipped = results.get("skipped") or {}
    if not skipped:
        return []
    return [_bullets([f"{key}: {reason}" for key, reason in skipped.items()], lead="Skipped arms (and why):")]


def _anchor_table(task: str, ours: list[dict], metrics: dict[str, str], caption: str) -> dict:
    """Our rows and the published anchors for ``task``, each labelled data/pretraining/threshold/split."""
    header = ["Source · model", "Data", "Pretraining", "Threshold", "Seeds", "Split"] + list(metrics.values())
    rows = []
    for r in ours:
        rows.append([r["source"], r["data"], r["pretraining"], r["threshold"], r["seeds"], r["split"]]
                    + [r.get(m, "") for m in metrics])
    for a in ANCHORS:
        if a["task"] != task:
            continue
        rows.append([f"{a['source']} · {a['model']}", a["data"], a["pretraining"], a["threshold"], a["seeds"],
                     "official test (n = 624)"] + [fmt_num(a[m]) if m in a else "" for m in metrics])
    return _table(header, rows, caption=caption, first_cols=6, size=7)


def _binary_anchor_rows(binary: dict, data: dict | None) -> list[dict]:
    meta = binary.get("meta", {})
    split = _test_label((meta.get("n") or {}).get("test"), _full_mnist_test(data))
    rows = []
    for e in binary.get("models", {}).values():
        s = e.get("summary", {}).get("at_05", {})
        row = dict(source=f"PneumoLab ({meta.get('profile')}) · {e.get('display_name')}", data=meta.get("dataset", ""),
                   pretraining=_weights_label(e.get("weights")), threshold="0.5", seeds=str(len(e.get("runs", []))),
                   split=split)
        row.update({m: fmt_mean_std(s.get(m)) for m in ("auroc", "accuracy", "recall", "specificity", "f1")})
        rows.append(row)
    return rows


def _binary_target_items(res: _Results, binary: dict) -> list[str]:
    """Each binary target with the value reached (best mean over models) and met / not met."""
    items = []
    for metric, label in (("auroc", "AUROC"), ("accuracy", "accuracy at 0.5")):
        best = max(((e.get("summary", {}).get("at_05", {}).get(metric) or {}).get("mean", float("nan")),
                    e.get("display_name")) for e in binary.get("models", {}).values())
        goal = BINARY_TARGETS[metric]
        items.append(f"best mean {label} ≥ {goal}: {fmt_num(best[0])} ({best[1]}), "
                     + ("met" if best[0] >= goal else "not met"))
    walls = [(res.run_entry(n) or {}).get("wall_s") for n in ("03", "04")]
    if all(_is_num(w) for w in walls):
        minutes, goal = sum(walls) / 60, BINARY_TARGETS["wall_min_03_04"]
        items.append(f"notebooks 03 + 04 ≤ {goal:g} min: {minutes:.1f} min as last run, "
                     + ("met" if minutes <= goal else "not met")
                     + " (a rerun that loads finished runs is shorter than a first run)")
    return items


def _section_binary(res: _Results, binary: dict, data: dict | None) -> dict:
    blocks = _binary_tables(binary, res, data)
    if res.name == BINARY_TARGETS["profile"] and binary.get("models"):
        blocks.append(_bullets(_binary_target_items(res, binary), lead=f"Project targets (profile {res.name})."))
    training = _training_texts({"": binary})
    if training:
        blocks.append(_bullets(training, lead="Training (as recorded with the results)."))
    blocks.append(_heading("Where we stand: published anchors, like for like", 3))
    blocks.append(_anchor_table("binary", _binary_anchor_rows(binary, data),
                                {"auroc": "AUROC", "accuracy": "ACC", "recall": "Recall", "specificity": "Spec.",
                                 "f1": "F1"},
                                caption="Our binary models (first rows, mean ± std over seeds) and published "
                                        "results on the official test splits. Compare rows only when data, "
                                        "pretraining and threshold match."))
    return _section("03", "Binary classification: custom CNN and transfer learning",
                    [res.notebook("03"), res.notebook("04")], blocks + _figures(res, ["03", "04"]))


def _multiclass_rows(three: dict) -> tuple[list[list], list[list]]:
    summary_rows, class_rows = [], []
    for e in three.get("models", {}).values():
        s = e.get("summary", {})
        summary_rows.append([e.get("display_name"), _weights_label(e.get("weights")),
                             f"{fmt_num(e.get('image_size'))} px"]
                            + [fmt_mean_std(s.get("test", {}).get(m)) for m in MULTI_METRICS]
                            + [fmt_mean_std(s.get("ms_per_img"), 2), str(len(e.get("runs", [])))])
        for cls, stats in (s.get("per_class") or {}).items():
            class_rows.append([e.get("display_name"), cls] + [fmt_mean_std(stats.get(m))
                                                              for m in ("precision", "recall", "f1")])
    return summary_rows, class_rows


def _full_kermany_test(data: dict | None) -> int | None:
    table = ((data or {}).get("kermany_coverage") or {}).get("table") or []
    full = [r.get("full_dataset") for r in table if r.get("split") == "test"]
    return sum(full) if full and all(_is_num(v) for v in full) else None


def _section_three_class(res: _Results, three: dict | Skipped, data: dict | None) -> dict:
    nbs = [res.notebook("05")]
    title = "Three classes: normal, bacterial and viral pneumonia"
    if isinstance(three, Skipped):
        return _section("05", title, nbs, [], three)
    meta = three.get("meta", {})
    split = _test_label((meta.get("n") or {}).get("test"), _full_kermany_test(data))
    blocks = [_para(f"{meta.get('dataset', 'n/a')}; {split}; seeds {', '.join(map(str, meta.get('seeds') or []))}; "
                    "predicted class = argmax.", lead="Setting.")]
    note = (three.get("coverage") or {}).get("note")
    if note:
        blocks.append(_para(note, lead="Training data."))
    training = _training_texts({"": three})
    if training:
        blocks.append(_bullets(training, lead="Training (as recorded with the results)."))
    summary_rows, class_rows = _multiclass_rows(three)
    ens = three.get("ensemble") or {}
    ens_test = ens.get("test") or {}
    ens_name = f"Ensemble of {len(ens.get('members') or [])} runs" if ens else ""
    if ens_test:
        summary_rows.append([ens_name, "as members", "", *[fmt_num(ens_test.get(m)) for m in MULTI_METRICS], "", "1"])
        for cls, stats in (ens_test.get("per_class") or {}).items():
            class_rows.append([ens_name, cls] + [fmt_num(stats.get(m)) for m in ("precision", "recall", "f1")])
    blocks.append(_table(["Model", "Pretraining", "Input"] + list(MULTI_METRICS.values()) + ["ms / image", "Seeds"],
                         summary_rows, caption="Three-class test metrics (mean ± std over seeds; the ensemble "
                                               "averages the probabilities of every run)."))
    blocks.append(_table(["Model", "Class", "Precision", "Recall", "F1"], class_rows,
                         caption="Per-class test metrics (mean ± std over seeds).", first_cols=2))
    sel = three.get("model_selection") or {}
    if sel:
        scores = ", ".join(f"{k} {fmt_num(v)}" for k, v in (sel.get("val_macro_f1") or {}).items())
        blocks.append(_para(f"{sel.get('rule', '')}: {scores}; selected: {sel.get('best')}.",
                            lead="Model selection (validation only)."))
    dom = three.get("dominant_error") or {}
    if dom.get("true"):
        blocks.append(_para(f"true {dom['true']} predicted {dom.get('pred')}: {fmt_num(dom.get('count'))} of "
                            f"{fmt_num(dom.get('total_errors'))} test errors of the ensemble "
                            f"({fmt_pct(dom.get('share_of_errors'), 0)}).", lead="Most frequent error."))
    shift = three.get("shift") or {}
    if shift:
        blocks.append(_heading("Do normal images differ between the train and test folders?", 3))
        if shift.get("largest_shift"):
            blocks.append(_para(f"the largest shift between normal training and normal test images is in "
                                f"'{shift['largest_shift']}'.", lead="Shift audit:"))
        for key, caption in (("normal_train_vs_test", "Image statistics of normal images, train vs test folder "
                                                      "(two-sample comparison)."),
                             ("normal_recall", "Recall of the normal class on validation and test."),
                             ("spearman_with_p_pneumonia_on_normal_test",
                              "Spearman correlation of each statistic with P(pneumonia) on normal test images.")):
            t = _dict_table(key, shift.get(key))
            if t:
                t["caption"] = caption
                blocks.append(t)
    blocks.extend(_skipped_notes(three))
    ours = []
    for e in three.get("models", {}).values():
        t = e.get("summary", {}).get("test", {})
        pc = e.get("summary", {}).get("per_class", {})
        ours.append(dict(source=f"PneumoLab ({meta.get('profile')}) · {e.get('display_name')}",
                         data=meta.get("dataset", ""), pretraining=_weights_label(e.get("weights")),
                         threshold="argmax", seeds=str(len(e.get("runs", []))), split=split,
                         accuracy=fmt_mean_std(t.get("accuracy")), macro_f1=fmt_mean_std(t.get("macro_f1")),
                         macro_auroc=fmt_mean_std(t.get("macro_auroc")),
                         virus_f1=fmt_mean_std((pc.get("virus") or {}).get("f1"))))
    if ens_test:
        ours.append(dict(source=f"PneumoLab ({meta.get('profile')}) · {ens_name}", data=meta.get("dataset", ""),
                         pretraining="as members", threshold="argmax", seeds="all", split=split,
                         accuracy=fmt_num(ens_test.get("accuracy")), macro_f1=fmt_num(ens_test.get("macro_f1")),
                         macro_auroc=fmt_num(ens_test.get("macro_auroc")),
                         virus_f1=fmt_num(((ens_test.get("per_class") or {}).get("virus") or {}).get("f1"))))
    blocks.append(_heading("Published anchors, like for like", 3))
    blocks.append(_anchor_table("three_class", ours, {"accuracy": "ACC", "macro_f1": "Macro F1",
                                                      "macro_auroc": "Macro AUROC", "virus_f1": "Virus F1"},
                                caption="Our three-class models and the deck's patient-aware ensemble on the "
                                        "official Kermany test folder."))
    if any(a["task"] == "bacterial_vs_viral" for a in ANCHORS):
        blocks.append(_anchor_table("bacterial_vs_viral", [], {"auroc": "AUROC", "accuracy": "ACC"},
                                    caption="Bacterial vs viral pneumonia (published, for reference)."))
    return _section("05", title, nbs, blocks + _figures(res, ["05"]))


# ---- notebook 06: hierarchical (two-stage) classifier
def _section_hierarchical(res: _Results, hier: dict | Skipped, data: dict | None = None) -> dict:
    nbs, title = [res.notebook("06")], "Hierarchical classification: pneumonia first, then its cause"
    if isinstance(hier, Skipped):
        return _section("06", title, nbs, [], hier)
    if not any(k in hier for k in ("flat", "hierarchical")):
        return _section_generic(res, "06", title, hier)
    meta = hier.get("meta") or {}
    blocks = [_para(f"{meta.get('dataset', 'n/a')}; {_test_label(meta.get('n_test'), _full_kermany_test(data))}; seeds "
                    f"{', '.join(map(str, meta.get('seeds') or []))}; pretraining {meta.get('pretraining', 'n/a')}; "
                    f"both stages are {hier.get('architecture', 'n/a')} models trained with "
                    f"{hier.get('stage_loss', 'n/a')}.",
                    lead="Setting.")]
    if hier.get("rule"):
        rule = str(hier["rule"])
        blocks.append(_para(rule if rule.endswith(".") else rule + ".", lead="Decision rule."))
    n_seeds = len(meta.get("seeds") or []) or None

    def ms(stat):  # these summaries hold no "n": it is the number of seeds
        return fmt_mean_std(stat, n=n_seeds)

    rows = []
    for key, label in (("flat", "Flat three-class model (notebook 05)"), ("hierarchical", "Hierarchical, argmax"),
                       ("sequential", "Hierarchical, sequential")):
        m = hier.get(key)
        if isinstance(m, dict):
            f1 = m.get("per_class_f1") or {}
            rows.append([label] + [ms(m.get(k)) for k in MULTI_METRICS]
                        + [ms(f1.get(c)) for c in ("normal", "bacteria", "virus")])
    blocks.append(_table(["Classifier"] + list(MULTI_METRICS.values()) + ["F1 normal", "F1 bacteria", "F1 virus"],
                         rows, size=7.5,
                         caption="Flat vs hierarchical three-class test metrics (mean ± std over seeds)."))
    rows = []
    for key, label in (("stage_a_alone", "Stage A: normal vs pneumonia"),
                       ("stage_b_alone", "Stage B: bacteria vs virus (pneumonia images)")):
        m = hier.get(key)
        if isinstance(m, dict):
            rows.append([label] + [ms(m.get(k)) for k in ("accuracy", "recall", "specificity", "f1", "auroc")])
    if rows:
        blocks.append(_table(["Stage", "ACC", "Recall", "Specificity", "F1", "AUROC"], rows,
                             caption="Each stage on its own binary test task (mean ± std over seeds)."))
    rows = []
    for key, label in (("error_sources", "Hierarchical"), ("error_sources_flat", "Flat")):
        e = hier.get(key)
        if isinstance(e, dict):
            rows.append([label] + [fmt_num(e.get(k), 1) for k in ("stage_a", "stage_b", "total_errors",
                                                                   "missed_pneumonia", "false_pneumonia")])
    if rows:
        blocks.append(_table(["Classifier", "Normal/pneumonia errors", "Subtype errors", "All errors",
                              "Missed pneumonia", "False pneumonia"], rows, size=8,
                             caption="Where the test errors come from (mean over seeds): the normal vs pneumonia "
                                     "decision, or the subtype of a detected pneumonia."))
    dis = hier.get("rule_disagreements")
    if isinstance(dis, dict) and dis:
        blocks.append(_para(", ".join(f"seed {k}: {fmt_num(v)}" for k, v in dis.items()) + ".",
                            lead="Test images where the argmax and sequential rules disagree:"))
    return _section("06", title, nbs, blocks + _figures(res, ["06"]))


# ---- notebook 07: ensembles, calibration, operating points
CAL_KEYS = {"ece_15": "ECE (15 bins)", "ece_10": "ECE (10 bins)", "mce_15": "MCE (15 bins)", "brier": "Brier",
            "nll": "NLL"}


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


def _calibration_table(section: Mapping, task: str) -> dict:
    rows = [[label, fmt_num(e.get("temperature"))] + [_before_after(e, k) for k in CAL_KEYS]
            for label, e in _calibration_entries(section)]
    return _table(["Model", "T (val.)"] + list(CAL_KEYS.values()), rows, size=7.5,
                  caption=f"{task}: test-set calibration before → after temperature scaling (T fitted on the "
                          "validation split). Lower is better for every column.")


def _section_calibration(res: _Results, cal: dict | Skipped) -> dict:
    nbs, title = [res.notebook("07")], "Ensembles, calibration and operating points"
    if isinstance(cal, Skipped):
        return _section("07", title, nbs, [], cal)
    if not any(k in cal for k in ("binary", "operating_points", "ensemble_vs_members")):
        return _section_generic(res, "07", title, cal)  # a layout this module does not know: show it as is
    meta = cal.get("meta") or {}
    blocks = [_para(f"binary: {meta.get('binary_data') or 'n/a'}; three-class: "
                    f"{meta.get('three_class_data') or 'not run'}; "
                    f"seeds {', '.join(map(str, meta.get('seeds') or []))}; "
                    f"temperatures fitted on {meta.get('temperature_fitted_on', 'n/a')}, thresholds chosen on "
                    f"{meta.get('thresholds_chosen_on', 'n/a')}.", lead="Setting.")]
    evm = cal.get("ensemble_vs_members") or {}
    if isinstance(evm.get("binary"), dict) and evm["binary"]:
        keys = {"accuracy": "ACC", "recall": "Recall", "specificity": "Specificity", "f1": "F1", "auroc": "AUROC"}
        rows = [[label] + [fmt_num(m.get(k)) for k in keys] for label, m in evm["binary"].items()]
        blocks.append(_table(["Binary model or ensemble"] + list(keys.values()), rows,
                             caption="Binary: ensembles vs their members on the test split (threshold 0.5)."))
    three = evm.get("three_class")
    if isinstance(three, dict) and three.get("skipped"):
        blocks.append(_note(f"Three-class ensembles skipped: {three['skipped']}"))
    elif isinstance(three, dict) and three:
        rows = [[label] + [fmt_num(m.get(k)) for k in MULTI_METRICS] for label, m in three.items()]
        blocks.append(_table(["Three-class model or ensemble"] + list(MULTI_METRICS.values()), rows,
                             caption="Three classes: ensembles vs their members on the test split (argmax)."))
    blocks.append(_heading("Calibration", 3))
    for key, task in (("binary", "Binary"), ("three_class", "Three classes")):
        section = cal.get(key)
        if isinstance(section, dict) and section.get("skipped"):
            blocks.append(_note(f"{task} calibration skipped: {section['skipped']}"))
        elif isinstance(section, dict) and section:
            blocks.append(_calibration_table(section, task))
    target = cal.get("target") or {}
    if target:
        met = target.get("met")
        value = next((target[k] for k in ("value", "ece", "achieved") if k in target), None)
        blocks.append(_para(f"{target.get('metric', 'metric')} ≤ {fmt_num(target.get('limit'))} on profile "
                            f"{target.get('profile', res.name)}: " + ("met" if met else "not met")
                            + (f" ({fmt_num(value)})" if value is not None else "") + ".", lead="Target."))
    op = cal.get("operating_points") or {}
    if op.get("thresholds"):
        blocks.append(_heading("Operating points", 3))
        rows, sentences = [], []
        for name, e in op["thresholds"].items():
            t = e.get("test") or {}
            rows.append([name, e.get("rule", ""), e.get("chosen_on", ""), fmt_num(e.get("threshold")),
                         fmt_num(e.get("val_recall")), fmt_num(t.get("recall")), fmt_num(t.get("specificity")),
                         fmt_num(t.get("precision")), fmt_num(t.get("f1")), fmt_num(t.get("fn")), fmt_num(t.get("fp"))])
            if all(_is_num(t.get(k)) for k in ("tp", "fn", "tn", "fp")):
                n_pos, n_neg = t["tp"] + t["fn"], t["tn"] + t["fp"]
                sentences.append(f"{name} (threshold {fmt_num(e.get('threshold'))}): misses {t['fn']} of {n_pos} "
                                 f"children with pneumonia and flags {t['fp']} of {n_neg} healthy children.")
        blocks.append(_table(["Point", "Rule", "Chosen on", "Threshold", "Val. recall", "Recall", "Specificity",
                              "Precision", "F1", "FN", "FP"], rows, size=7.5, first_cols=3,
                             caption=f"Operating points of {op.get('ensemble', 'the ensemble')} (temperature "
                                     f"{fmt_num(op.get('temperature'))}): test metrics at 0.5 and at thresholds "
                                     "chosen on validation."))
        if sentences:
            blocks.append(_bullets(sentences, lead="On the test set:"))
    return _section("07", title, nbs, blocks + _figures(res, ["07"]))


# ---- notebook 08: Grad-CAM
def _section_gradcam(res: _Results, cams: dict | Skipped) -> dict:
    nbs, title = [res.notebook("08")], "Grad-CAM: where do the models look?"
    if isinstance(cams, Skipped):
        return _section("08", title, nbs, [], cams)
    if not any(k in cams for k in ("layers", "sanity", "border_mass")):
        return _section_generic(res, "08", title, cams)
    meta = cams.get("meta") or {}
    blocks = [_para(f"seed {meta.get('seed', 'n/a')}; target class: {meta.get('target_class', 'n/a')}.",
                    lead="Setting.")]
    best = cams.get("best_binary") or {}
    if best:
        blocks.append(_para(f"{best.get('display_name', best.get('model'))}, seed {best.get('seed')}, layer "
                            f"{best.get('layer')}, threshold {fmt_num(best.get('threshold'))} "
                            f"({best.get('threshold_rule', '')}).", lead="Model explained in detail:"))
    layers = cams.get("layers") or {}
    if layers:
        rows = [[key, str(i.get("layer", "")), "×".join(str(v) for v in i.get("map_size") or []),
                 f"{fmt_num(i.get('input_size'))} px", f"{fmt_num(i.get('network_input'))} px",
                 "yes" if i.get("is_default") else "no"] for key, i in layers.items()]
        blocks.append(_table(["Task : model : layer", "Layer", "Map", "Input", "Network sees", "Default"], rows,
                             size=7.5, first_cols=2,
                             caption="Where each Grad-CAM map comes from, and how coarse it is."))
    border = cams.get("border_mass") or {}
    if border:
        rows = [[key, fmt_num(b.get("border_mass")), fmt_num(b.get("area_fraction")), fmt_num(b.get("ratio")),
                 fmt_num(b.get("n_maps"))] for key, b in border.items()]
        blocks.append(_table(["Task : model : layer", "Mass in border band", "Band's share of area", "Ratio", "Maps"],
                             rows, size=7.5, caption="Share of Grad-CAM mass in the image border band (ratio > 1: "
                                                     "drawn to the borders, where markers and text lie)."))
    sanity = cams.get("sanity") or {}
    if sanity:
        rows = []
        for key, steps in sanity.items():
            steps = [s for s in steps if isinstance(s, dict)]
            if not steps:
                continue
            randomised = [s for s in steps if (s.get("n_top") or 0) > 0] or steps  # n_top = 0 is the control
            first = min(randomised, key=lambda s: s.get("n_top", 0))
            last = max(steps, key=lambda s: s.get("n_top", 0))
            rows.append([key, f"{first.get('block', '')} ({fmt_num(first.get('n_top'))})",
                         fmt_num(first.get("spearman")),
                         f"{last.get('block', '')} ({fmt_num(last.get('n_top'))})", fmt_num(last.get("spearman")),
                         fmt_num(last.get("abs_diff"))])
        blocks.append(_table(["Task : model : layer", "First step (blocks)", "ρ", "Last step (blocks)", "ρ",
                              "Mean |Δ|"], rows, size=7.5,
                             caption="Cascading randomisation sanity check: Spearman correlation with the trained "
                                     "model's maps; a faithful explanation decorrelates as more blocks are "
                                     "randomised."))
    three = cams.get("three_class") or {}
    if three.get("examples"):
        rows = [[c.get("case", ""), c.get("true", ""), c.get("pred", ""), fmt_num(c.get("prob")),
                 fmt_num(c.get("count"))]
                for c in three["examples"]]
        blocks.append(_table(["Case", "True", "Predicted", "P(predicted)", "Images in that cell"], rows, first_cols=3,
                             caption=f"Three-class cases explained ({three.get('model', '')}, "
                                     f"seed {three.get('seed')})."))
    return _section("08", title, nbs, blocks + _figures(res, ["08"]))


# ---- generic rendering for results whose layout this module does not know in detail
def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _is_stat(v: Any) -> bool:
    return isinstance(v, dict) and "mean" in v and set(v) <= {"mean", "std", "n", "min", "max"}


def _cell(v: Any) -> str:
    if _is_stat(v):
        return fmt_mean_std(v)
    if isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v):
        return f"[{fmt_num(v[0])}, {fmt_num(v[1])}]"
    if isinstance(v, str):
        return v if len(v) <= 80 else v[:77] + "..."
    return fmt_num(v) if _is_scalar(v) else ""


def _flat(d: Mapping, prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Scalar (or mean/std) leaves of a nested dict, keyed by a dotted path, down to ``depth`` levels."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if _is_scalar(v) or _is_stat(v) or (isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v)):
            out[key] = v
        elif isinstance(v, dict) and depth > 1:
            out.update(_flat(v, key + " · ", depth - 1))
    return out


def _dict_table(name: str, value: Any, max_rows: int = 24, max_cols: int = 9) -> dict | None:
    caption = _humanize(name) + "."
    if isinstance(value, dict) and value:
        if all(_is_scalar(v) or _is_stat(v) for v in value.values()):
            rows = [[_humanize(k), _cell(v)] for k, v in list(value.items())[:max_rows]]
            return _table(["Quantity", "Value"], rows, caption=caption)
        if all(isinstance(v, dict) for v in value.values()):
            flats = {k: _flat(v) for k, v in value.items()}
            cols: list[str] = []
            for f in flats.values():
                cols += [c for c in f if c not in cols]
            if not cols:
                return None
            cols = cols[:max_cols]
            rows = [[_humanize(k)] + [_cell(f.get(c)) for c in cols] for k, f in list(flats.items())[:max_rows]]
            return _table([""] + [_humanize(c) for c in cols], rows, caption=caption, size=7.5)
        flat = _flat(value, depth=3)
        if flat:
            rows = [[_humanize(k), _cell(v)] for k, v in list(flat.items())[:max_rows]]
            return _table(["Quantity", "Value"], rows, caption=caption)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        flats = [_flat(v) for v in value]
        cols: list[str] = []
        for f in flats:
            cols += [c for c in f if c not in cols]
        cols = cols[:max_cols]
        if cols:
            rows = [[_cell(f.get(c)) for c in cols] for f in flats[:max_rows]]
            return _table([_humanize(c) for c in cols], rows, caption=caption, size=7.5)
    return None


def _extra_blocks(results: dict, skip: Iterable[str] = ("meta",)) -> list[dict]:
    """Tables for every top-level entry of a results file (scalars grouped into one table)."""
    skip = set(skip)
    blocks: list[dict] = []
    scalars = {k: v for k, v in results.items() if k not in skip and (_is_scalar(v) or _is_stat(v))}
    if scalars:
        blocks.append(_table(["Quantity", "Value"], [[_humanize(k), _cell(v)] for k, v in scalars.items()],
                             caption="Summary."))
    for key, value in results.items():
        if key in skip or key in scalars:
            continue
        if key == "models" and isinstance(value, dict):
            for mkey, entry in value.items():
                t = _dict_table(entry.get("display_name", mkey) if isinstance(entry, dict) else mkey,
                                {k: v for k, v in entry.items() if k not in ("runs",)} if isinstance(entry, dict)
                                else entry)
                if t:
                    blocks.append(t)
            continue
        t = _dict_table(key, value)
        if t:
            blocks.append(t)
    return blocks


def _section_generic(res: _Results, number: str, title: str, results: dict | Skipped) -> dict:
    nbs = [res.notebook(number)]
    if isinstance(results, Skipped):
        return _section(number, title, nbs, [], results)
    blocks: list[dict] = []
    meta = results.get("meta") or {}
    if meta.get("dataset"):
        blocks.append(_para(f"{meta['dataset']}; seeds {', '.join(map(str, meta.get('seeds') or []))}.",
                            lead="Setting."))
    if isinstance(results.get("models"), dict) and any("summary" in e for e in results["models"].values()):
        summary_rows, class_rows = _multiclass_rows(results)
        if any("test" in e.get("summary", {}) for e in results["models"].values()):
            blocks.append(_table(["Model", "Pretraining", "Input"] + list(MULTI_METRICS.values())
                                 + ["ms / image", "Seeds"], summary_rows,
                                 caption="Test metrics (mean ± std over seeds)."))
        if class_rows:
            blocks.append(_table(["Model", "Class", "Precision", "Recall", "F1"], class_rows,
                                 caption="Per-class test metrics (mean ± std over seeds).", first_cols=2))
        blocks.extend(_extra_blocks(results, skip=("meta", "models", "skipped")))
    else:
        blocks.extend(_extra_blocks(results, skip=("meta", "skipped")))
    blocks.extend(_skipped_notes(results))
    return _section(number, title, nbs, blocks + _figures(res, [number]))


def _tolerant(render, res: _Results, number: str, title: str, results: dict | Skipped) -> dict:
    """``render`` the section; if the file's layout is not the one it knows, show the file generically."""
    try:
        return render(res, results)
    except (TypeError, AttributeError, KeyError, ValueError):
        section = _section_generic(res, number, title, results)
        section["blocks"].insert(0, _note("The layout of this results file is not the one pneumolib.report "
                                          "knows: its numbers are shown as stored."))
        return section


# --------------------------------------------------------------------------- model card
def _binary_card_table(binary: dict) -> dict:
    rows = []
    for e in binary.get("models", {}).values():
        s = e.get("summary", {})
        for key, label in (("at_05", "0.5"), ("at_val_threshold", "val. max F1")):
            m = s.get(key, {})
            rows.append([e.get("display_name"), label, fmt_mean_std(m.get("specificity")),
                         fmt_mean_std(m.get("recall")), fmt_mean_std(m.get("precision")),
                         fmt_mean_std(m.get("accuracy")), fmt_mean_std(m.get("auroc"))])
    return _table(["Model", "Threshold", "Normal: recall (specificity)", "Pneumonia: recall (sensitivity)",
                   "Pneumonia: precision", "ACC", "AUROC"], rows, first_cols=2, size=7.5,
                  caption="Binary task, by class, on the official test split (mean ± std over seeds).")


def _limitations(data: dict | None, prof) -> list[str]:
    data = data or {}
    ov = data.get("overlap_full") or data.get("overlap_present") or {}
    cov = data.get("kermany_coverage") or {}
    maj = (data.get("majority_baseline_accuracy") or {}).get("test", {}).get("accuracy")
    items = ["Single institution: every image comes from one pediatric hospital (Guangzhou Women and Children's "
             "Medical Center); nothing here shows that the models work elsewhere, on adults or on other scanners."]
    if maj is not None:
        items.append(f"Class imbalance pushes models towards 'pneumonia': answering 'pneumonia' for every test "
                     f"image already scores accuracy {fmt_num(maj)}.")
    items.append("Labels are inherited from folder and file names: how each image was graded cannot be audited "
                 "from the released data, which also give no laboratory confirmation of bacterial vs viral cause.")
    val = ov.get("images", {}).get("val")
    if val is not None:
        items.append(f"The official Kermany validation folder holds only {fmt_num(val)} images; we validate on a "
                     "patient-grouped split of the training folder instead.")
    if ov:
        items.append(f"Patient ids shared by the official train and test folders: "
                     f"{fmt_num(ov.get('shared_patient_ids_train_test'))}, covering "
                     f"{fmt_num(ov.get('test_images_of_shared_patients'))} test images; the test set is kept "
                     "as published for comparability, so test scores may be optimistic.")
    if cov.get("train_share") is not None:
        items.append(f"Only {fmt_pct(cov['train_share'])} of the Kermany training folder is present on this "
                     "machine.")
    items.append(f"Low resolution: PneumoniaMNIST at {prof.mnist_size} px and Kermany at {prof.kermany_size} px "
                 "for this profile; fine findings are invisible at these sizes.")
    items.append("JPEG compression artefacts, text markers, arms and framing differ between images; a model can "
                 "learn such shortcuts instead of anatomy.")
    items.append("No external cohort: every score is measured on data from the same source as the training data.")
    items.append("Grad-CAM heat maps show where a model's evidence lies, not where the disease is; they are not "
                 "ground truth and can look plausible for a wrong reason.")
    return items


def _calibration_card_blocks(cal: dict | Skipped | None) -> list[dict]:
    if cal is None:
        return []
    if isinstance(cal, Skipped):
        return [_para(f"skipped: {cal.reason}", lead="Calibration:")]
    blocks = []
    for key, task in (("binary", "Binary"), ("three_class", "Three classes")):
        section = cal.get(key)
        if isinstance(section, dict) and section.get("skipped"):
            blocks.append(_para(f"skipped: {section['skipped']}", lead=f"{task}:"))
        elif isinstance(section, dict) and section:
            blocks.append(_calibration_table(section, task))
    if not blocks:  # a layout this module does not know: its summary numbers as they are
        blocks = _extra_blocks(cal, skip=("meta", "skipped"))[:3]
    return blocks or [_para("the calibration results file holds no summary numbers.", lead="Calibration:")]


def model_card_blocks(profile: str, res: _Results | None = None, raise_problems: bool = True) -> list[dict]:
    """The model card as blocks (see the module docstring); :func:`model_card` renders them as Markdown."""
    res = res or _Results(profile)
    data = res.get("data")
    binary = res.get("binary")
    three = res.get("three_class")
    cal = res.get("calibration")
    if raise_problems:
        res.raise_problems("the model card")
    prof = res.profile
    data_or_none = data if isinstance(data, dict) else None
    git = ((res.run_meta or {}).get("git") or {}).get("commit")
    blocks: list[dict] = [
        _heading(f"Model card: PneumoLab chest X-ray classifiers (profile {res.name})", 1),
        _para(f"Generated from results/{res.name}/*.json (profile settings {res.hash}"
              + (f", commit {git}" if git else "") + "). Every number below is read from those files."),
        _heading("Model details"),
    ]
    rows = []
    for task, results in (("normal vs pneumonia", binary), ("normal / bacteria / virus", three)):
        if isinstance(results, dict):
            for e in results.get("models", {}).values():
                rows.append([e.get("display_name"), task, _weights_label(e.get("weights")),
                             fmt_num(e.get("parameters")), f"{fmt_num(e.get('image_size'))} px",
                             str(len(e.get("runs", [])))])
    blocks.append(_table(["Model", "Task", "Pretraining", "Parameters", "Input", "Seeds"], rows,
                         caption="Models trained under this profile."))
    training = _training_texts({"Normal vs pneumonia": binary, "Normal / bacteria / virus": three})
    blocks.append(_bullets(training or ["not recorded in the results files (rerun notebooks 03-05)"], lead="Training."))
    blocks += [
        _heading("Intended use"),
        _bullets(["Teaching: how to train, evaluate, calibrate and explain image classifiers honestly, on public "
                  "pediatric chest X-ray data.",
                  "Research practice: like-for-like comparison with published results on the official test splits."],
                 lead="Intended:"),
        _bullets(["Any clinical use: diagnosis, triage, screening or treatment decisions. This is an educational "
                  "prototype, not a clinical device, and has no regulatory approval.",
                  "Adults, other hospitals, other imaging devices or views: never evaluated."],
                 lead="Out of scope:"),
        _heading("Data"),
    ]
    data_items = []
    if isinstance(data, dict):
        counts = data.get("pneumoniamnist_counts") or {}
        if counts:
            data_items.append("PneumoniaMNIST (MedMNIST v2, CC BY 4.0), official splits: " + "; ".join(
                f"{s} {fmt_num(sum(c.values()))} ({', '.join(f'{k} {fmt_num(v)}' for k, v in c.items())})"
                for s, c in counts.items()) + ".")
        cov = data.get("kermany_coverage") or {}
        if cov:
            test = [r for r in cov.get("table", []) if r.get("split") == "test"]
            present, full = sum(r.get("present") or 0 for r in test), sum(r.get("full_dataset") or 0 for r in test)
            data_items.append(f"Kermany chest_xray (CC BY 4.0): {fmt_pct(cov.get('train_share'))} of the training "
                              f"folder and {fmt_num(present)} of {fmt_num(full)} official test images present here; "
                              "the official test folder is used as published (no reshuffling).")
        grouped = (data.get("grouped_split") or {}).get("counts") or {}
        if grouped:
            data_items.append("Three-class splits (patient-grouped validation): " + "; ".join(
                f"{s} {fmt_num(c.get('images'))} images / {fmt_num(c.get('patients'))} patients"
                for s, c in grouped.items()) + ".")
    blocks.append(_bullets(data_items or ["data.json holds no counts."]))
    blocks.append(_heading("Metrics by class"))
    if isinstance(binary, dict):
        meta = binary.get("meta", {})
        n_test = (meta.get("n") or {}).get("test")
        blocks.append(_para(f"{meta.get('dataset', '')}, {_test_label(n_test, _full_mnist_test(data_or_none))}.",
                            lead="Binary."))
        blocks.append(_binary_card_table(binary))
    if isinstance(three, Skipped):
        blocks.append(_para(f"skipped: {three.reason}", lead="Three-class."))
    elif isinstance(three, dict):
        meta = three.get("meta", {})
        _, class_rows = _multiclass_rows(three)
        n_test = (meta.get("n") or {}).get("test")
        blocks.append(_para(f"{meta.get('dataset', '')}, {_test_label(n_test, _full_kermany_test(data_or_none))}.",
                            lead="Three-class."))
        blocks.append(_table(["Model", "Class", "Precision", "Recall", "F1"], class_rows, first_cols=2,
                             caption="Three-class task, by class (mean ± std over seeds)."))
    blocks.append(_heading("Calibration"))
    blocks.extend(_calibration_card_blocks(cal))
    blocks.append(_heading("Limitations and ethical considerations"))
    blocks.append(_bullets(_limitations(data if isinstance(data, dict) else None, prof)))
    blocks.append(_heading("What real deployment would require"))
    blocks.append(_bullets([
        "Multi-site external validation on prospective data, including adults if intended, other scanners and "
        "other populations.",
        "Calibration checked on the target population and a bias audit across age, sex, site and device.",
        "Clinician oversight: the model as a second reader, never the only one, with a clear escalation path.",
        "Regulatory approval as a medical device (e.g. FDA clearance or CE marking under the EU MDR), with "
        "post-market monitoring.",
    ]))
    return blocks


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


def model_card(profile: str) -> str:
    """The model card of ``profile`` as Markdown, generated from its results files."""
    return blocks_to_markdown(model_card_blocks(profile))


# --------------------------------------------------------------------------- context and build
def build_context(profile: str) -> dict:
    """Everything the template draws, as JSON-ready data (raises :class:`ReportError` on bad results)."""
    return _context_and_card(profile)[0]


def _context_and_card(profile: str) -> tuple[dict, list[dict]]:
    """The template's context and the model card's blocks, from one reading of the results."""
    res = _Results(profile)
    if res.run_meta is None:
        res.problems.append(f"{res.rel(res.dir / METADATA_FILE)} missing: run the notebooks with "
                            f"python -m pneumolib.run --profile {res.name} (it records the commit, machine and "
                            "wall time of every notebook for the cover page)")
        res.missing = True
    elif res.run_meta.get("profile_hash") not in (None, res.hash):
        res.problems.append(f"{res.rel(res.dir / METADATA_FILE)} comes from a run with profile settings "
                            f"{res.run_meta['profile_hash']}, profile {res.name!r} is now {res.hash}: rerun "
                            f"python -m pneumolib.run --profile {res.name}")
    owners = {number for number, _ in RESULT_FILES.values()}
    for name, entry in sorted(((res.run_meta or {}).get("notebooks") or {}).items()):
        if entry.get("status") == "failed" and name[:2] not in owners:  # owners are checked with their file
            res.problems.append(f"notebook {name} failed in the last run ({entry.get('reason')}): fix it and rerun "
                                f"({res.run_command(name[:2])}).")
    data, binary = res.get("data"), res.get("binary")
    three, hier = res.get("three_class"), res.get("hierarchical")
    cal, cams = res.get("calibration"), res.get("gradcam")
    card = model_card_blocks(profile, res, raise_problems=False)
    res.raise_problems()
    sections = [
        _section_data(res, data),
        _section_augmentation(res, data),
        _section_binary(res, binary, data),
        _section_three_class(res, three, data),
        _tolerant(lambda r, h: _section_hierarchical(r, h, data), res, "06",
                  "Hierarchical classification: pneumonia first, then its cause", hier),
        _tolerant(_section_calibration, res, "07", "Ensembles, calibration and operating points", cal),
        _tolerant(_section_gradcam, res, "08", "Grad-CAM: where do the models look?", cams),
        _section("09", "Ethics, limitations and the model card", [res.notebook("09")],
                 [_heading("Model card")] + [dict(b, level=b["level"] + 1) if b["kind"] == "heading" else b
                                            for b in card[1:]]),
    ]
    return {"profile": res.name, "profile_hash": res.hash, "cover": _cover(res), "sections": sections,
            "model_card_title": card[0]["text"]}, card


def report_paths(profile: str) -> dict[str, Path]:
    """Where the PDF and the model card go: ``report/`` for the reference profile, else ``report/<profile>/``."""
    name = get_profile(profile).name
    root = project_root()
    out = root / "report" if name == REFERENCE_PROFILE else root / "report" / name
    return {"pdf": out / "report.pdf", "model_card": out / "MODEL_CARD.md",
            "context": root / "build" / "report" / name / "context.json"}


def _template_dir() -> Path:
    """``report/`` holding report.typ: in the project root if it has one, else next to this package."""
    for candidate in (project_root() / "report", Path(__file__).resolve().parent.parent / "report"):
        if (candidate / TEMPLATE_NAME).is_file():
            return candidate
    raise ReportError(f"Typst template report/{TEMPLATE_NAME} not found (looked in {project_root() / 'report'} "
                      f"and next to the pneumolib package)")


def build_report(profile: str = REFERENCE_PROFILE, output: Path | None = None) -> Path:
    """Build the PDF (and MODEL_CARD.md) for ``profile`` from its results; return the PDF's path."""
    import typst

    context, card = _context_and_card(profile)
    paths = report_paths(profile)
    pdf = Path(output) if output else paths["pdf"]
    root = project_root()
    work = paths["context"].parent
    write_json(paths["context"], context)  # creates the folder the template is copied into
    # Typst only reads files under its root: the template is copied next to the context.
    for typ in _template_dir().glob("*.typ"):
        shutil.copyfile(typ, work / typ.name)
    write_text(paths["model_card"], blocks_to_markdown(card))
    try:
        data, warnings = typst.compile_with_warnings(
            str(work / TEMPLATE_NAME), root=str(root), ignore_system_fonts=True,  # embedded fonts: same PDF anywhere
            sys_inputs={"context": "/" + paths["context"].relative_to(root).as_posix()})
    except Exception as err:  # typst.TypstError: show the template's message
        raise ReportError(f"Typst could not compile {work / TEMPLATE_NAME}: {err}") from err
    for warning in warnings or []:
        print(f"typst warning: {getattr(warning, 'message', warning)}", file=sys.stderr)
    _atomic_write_bytes(pdf, data)
    for path in (pdf, paths["model_card"]):
        path.chmod(0o644)
    return pdf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pneumolib.report",
                                description="Build the PDF report and MODEL_CARD.md from results/<profile>/.")
    p.add_argument("--profile", default=REFERENCE_PROFILE, choices=sorted(PROFILES),
                   help=f"run profile (default: {REFERENCE_PROFILE}, the committed reference report)")
    p.add_argument("--output", type=Path, default=None, help="PDF path (default: report/[<profile>/]report.pdf)")
    args = p.parse_args(argv)
    try:
        pdf = build_report(args.profile, args.output)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    paths = report_paths(args.profile)
    print(f"report: {pdf}\nmodel card: {paths['model_card']}\ncontext: {paths['context']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
