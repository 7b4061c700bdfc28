"""The report as a short paper: front matter, methods, discussion, conclusions, references, appendix.

The result sections come from :mod:`.sections` and :mod:`.task_sections`; this module arranges them
into the paper's order, places the figures (small ones side by side, see :data:`FIGURE_ROWS`), sends
detail tables (blocks marked ``place: "appendix"``) and figures not placed in the main text to the
appendix, and writes the generated prose: every sentence with a number or a direction word comes
from :mod:`pneumolib.findings` or from the results files. Number-free prose lives in the template.
"""

from __future__ import annotations

from pathlib import Path

from ..findings import budget_label, ensemble_findings, gradcam_findings, temperature_findings
from .blocks import (
    FIGURE_SCALE,
    TEXT_WIDTH_CM,
    bullets,
    figure_block,
    figure_caption,
    fmt_num,
    fmt_seconds,
    heading,
    note_block,
    para,
    table,
)
from .context import Results, training_texts

AUTHORS = "PneumoLab contributors"
NOTICE = "Educational prototype, not a clinical device. Do not use these models for diagnosis."

#: the references, in the order the text cites them first (the template numbers them)
REFERENCES = [
    dict(
        key="kermany",
        text="Kermany DS, Goldbaum M, Cai W, et al. Identifying medical diagnoses and treatable diseases by "
        "image-based deep learning. Cell 172(5):1122–1131, 2018.",
        id="doi:10.1016/j.cell.2018.02.010",
    ),
    dict(
        key="medmnist",
        text="Yang J, Shi R, Wei D, et al. MedMNIST v2: a large-scale lightweight benchmark for 2D and 3D "
        "biomedical image classification. Scientific Data 10:41, 2023.",
        id="doi:10.1038/s41597-022-01721-8",
    ),
    dict(
        key="chexnet",
        text="Rajpurkar P, Irvin J, Zhu K, et al. CheXNet: radiologist-level pneumonia detection on chest X-rays "
        "with deep learning. 2017.",
        id="arXiv:1711.05225",
    ),
    dict(
        key="resnet",
        text="He K, Zhang X, Ren S, Sun J. Deep residual learning for image recognition. CVPR, 770–778, 2016.",
        id="doi:10.1109/CVPR.2016.90",
    ),
    dict(
        key="densenet",
        text="Huang G, Liu Z, van der Maaten L, Weinberger KQ. Densely connected convolutional networks. CVPR, "
        "4700–4708, 2017.",
        id="doi:10.1109/CVPR.2017.243",
    ),
    dict(
        key="imagenet",
        text="Deng J, Dong W, Socher R, et al. ImageNet: a large-scale hierarchical image database. CVPR, "
        "248–255, 2009.",
        id="doi:10.1109/CVPR.2009.5206848",
    ),
    dict(
        key="guo",
        text="Guo C, Pleiss G, Sun Y, Weinberger KQ. On calibration of modern neural networks. ICML, "
        "PMLR 70:1321–1330, 2017.",
        id="",
    ),
    dict(
        key="gradcam",
        text="Selvaraju RR, Cogswell M, Das A, et al. Grad-CAM: visual explanations from deep networks via "
        "gradient-based localization. ICCV, 618–626, 2017.",
        id="doi:10.1109/ICCV.2017.74",
    ),
    dict(
        key="adebayo",
        text="Adebayo J, Gilmer J, Muelly M, et al. Sanity checks for saliency maps. NeurIPS, 2018.",
        id="arXiv:1810.03292",
    ),
    dict(
        key="doerrich",
        text="Doerrich S, Di Salvo F, Brockmann J, Ledig C. Rethinking model prototyping through the MedMNIST+ "
        "dataset collection. Scientific Reports, 2025.",
        id="",
    ),
]

#: figures of the main text, per part: each inner list is one row (side by side at equal height);
#: a figure of these notebooks that no row names goes to the appendix
FIGURE_ROWS: dict[str, list[list[str]]] = {
    "data": [
        ["01_pneumoniamnist_classes", "01_kermany_classes"],
        ["01_pneumoniamnist_grid"],
        ["01_kermany_grid"],
    ],
    "binary": [
        ["04_metric_bars"],
        ["03_custom_cnn_curves"],
        ["04_transfer_curves"],
        ["03_custom_cnn_roc_pr", "03_custom_cnn_confusion"],
    ],
    "three_class": [["05_three_class_curves"], ["05_three_class_confusion"], ["05_dominant_error_examples"]],
    "hierarchical": [["06_flat_vs_hierarchical"], ["06_confusion_flat_vs_hierarchical", "06_decision_rules"]],
    "calibration": [
        ["07_ensemble_confusion_binary", "07_ensemble_confusion_three_class"],
        ["07_reliability_binary", "07_reliability_three_class"],
    ],
    "operating_points": [["07_operating_points_roc"], ["07_operating_points_confusion"]],
    "gradcam": [
        ["08_gradcam_outcomes", "08_gradcam_three_class"],
        ["08_gradcam_resnet_vs_densenet"],
        ["08_gradcam_sanity"],
    ],
    "shortcuts": [["05_normal_train_vs_test_stats"], ["05_normal_train_vs_test_images"]],
}
FIGURE_NOTEBOOKS = ("01", "02", "03", "04", "05", "06", "07", "08")
MAX_ROW_HEIGHT_CM = 14.0


# --------------------------------------------------------------------------- figures
def _aspect(path: Path) -> tuple[float, float]:
    """(height / width, natural width in cm) of a PNG."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        dpi = float((im.info.get("dpi") or (150, 150))[0]) or 150.0
    return h / w, FIGURE_SCALE * w / dpi * 2.54


def figure_row(paths: list[Path], root: Path) -> dict:
    """One figure, or several side by side at the same height (each with its caption)."""
    if len(paths) == 1:
        return figure_block(paths[0], root, figure_caption(paths[0].stem))
    try:
        shapes = [_aspect(p) for p in paths]
    except Exception:  # unreadable: equal columns, Typst names the file
        shapes = [(1.0, TEXT_WIDTH_CM / len(paths))] * len(paths)
    columns = [1 / r for r, _ in shapes]  # equal heights: widths proportional to width / height
    natural = sum(w for _, w in shapes)
    width = min(1.0, natural / TEXT_WIDTH_CM, MAX_ROW_HEIGHT_CM * sum(columns) / TEXT_WIDTH_CM)
    return {
        "kind": "figures",
        "items": [figure_block(p, root, figure_caption(p.stem)) | {"width": 1.0} for p in paths],
        "columns": [round(c, 4) for c in columns],
        "width": round(width, 3),
    }


def place_figures(res: Results) -> tuple[dict[str, list[dict]], list[dict]]:
    """The figure blocks of each main-text part, and the figures left for the appendix."""
    folder = res.root / "figures" / res.name
    present = {p.stem: p for n in FIGURE_NOTEBOOKS for p in sorted(folder.glob(f"{n}_*.png"))}
    placed: dict[str, list[dict]] = {}
    used: set[str] = set()
    for part, rows in FIGURE_ROWS.items():
        blocks = []
        for row in rows:
            paths = [present[s] for s in row if s in present]
            if paths:
                blocks.append(figure_row(paths, res.root))
                used.update(p.stem for p in paths)
        placed[part] = blocks
    rest = [figure_block(p, res.root, figure_caption(s)) for s, p in present.items() if s not in used]
    return placed, rest


# --------------------------------------------------------------------------- methods
def budget_rows(binary, three) -> list[list[str]]:
    rows = []
    for task, results in (("Binary", binary), ("Three-class", three)):
        for e in ((results or {}).get("models") or {}).values() if isinstance(results, dict) else []:
            rows.append([task, e.get("display_name"), budget_label(e)])
    return rows


def methods_blocks(res: Results, binary, three, hier, cal, settings: str) -> list[dict]:
    blocks: list[dict] = [heading("Models"), {"kind": "prose", "id": "methods-models"}]
    blocks += [heading("Training protocol of this profile"), para(settings + ".", lead=f"Profile {res.name}:")]
    training = training_texts(
        {
            "Binary": binary if isinstance(binary, dict) else None,
            "Three-class": three if isinstance(three, dict) else None,
        }
    )
    if training:
        blocks.append(bullets(training, lead="Recorded with the results:"))
    rows = budget_rows(binary, three)
    if rows:
        blocks.append(
            table(
                ["Task", "Model", "Training budget"],
                rows,
                first_cols=3,
                caption="Epoch budgets and where each run kept its checkpoint: models differ in budget, so a gap "
                "between rows mixes architecture and budget; a best epoch equal to the last means the model was "
                "still improving when training stopped.",
            )
        )
    blocks += [heading("Evaluation"), {"kind": "prose", "id": "methods-evaluation"}]
    blocks += [heading("Operating points and calibration"), {"kind": "prose", "id": "methods-calibration"}]
    if isinstance(cal, dict):
        meta = cal.get("meta") or {}
        points = ((cal.get("operating_points") or {}).get("thresholds")) or {}
        rules = "; ".join(f"{k}: rule {e.get('rule', 'n/a')}, {e.get('chosen_on', 'n/a')}" for k, e in points.items())
        blocks.append(
            para(
                f"temperatures fitted on {meta.get('temperature_fitted_on', 'n/a')}, thresholds chosen on "
                f"{meta.get('thresholds_chosen_on', 'n/a')}"
                + (f" (operating points: {rules})" if rules else "")
                + ". The test split is used only to report.",
                lead="As recorded in the calibration results:",
            )
        )
    if isinstance(three, dict) and three.get("model_selection"):
        sel = three["model_selection"]
        blocks.append(para(f"{sel.get('rule', '')}.", lead="Three-class model selection:"))
    if isinstance(hier, dict) and hier.get("rule"):
        rule = str(hier["rule"])
        blocks.append(para(rule if rule.endswith(".") else rule + ".", lead="Hierarchical decision rule:"))
    return blocks


# --------------------------------------------------------------------------- generated prose
def _first(found: dict, topic: str, i: int = 0) -> str:
    items = [s for s in found.get(topic) or [] if "not available" not in s]
    return items[min(i, len(items) - 1)] if items else ""


def abstract(found: dict, binary, three) -> str:
    """Number-free lead (datasets named as the results name them), then generated findings."""
    data = [
        f"{r['meta']['dataset']} ({task})"
        for task, r in (("normal vs pneumonia", binary), ("normal, bacterial and viral pneumonia", three))
        if isinstance(r, dict) and (r.get("meta") or {}).get("dataset")
    ]
    lead = (
        "We train a small custom CNN, ResNet18 and DenseNet121 on public pediatric chest X-rays"
        + (f" ({' and '.join(data)})" if data else "")
        + ", over several seeds, and report every result on the official test split with its data, pretraining, "
        "threshold and seeds; thresholds and temperatures are chosen on validation only."
    )
    picked = [
        _first(found, "data coverage"),
        *[s for s in found.get("best models") or [] if "not available" not in s],
        _first(found, "thresholds and the validation vs test shift", 1),
        _first(found, "framing shortcut", 1),
    ]
    return " ".join([lead, *[s for s in picked if s]])


def key_findings_list(found: dict) -> list[str]:
    picks = [
        ("best models", 0),
        ("best models", 1),
        ("ensembles", 0),
        ("thresholds and the validation vs test shift", 2),
        ("temperature scaling", 0),
        ("framing shortcut", 2),
        ("data coverage", 0),
    ]
    out = []
    for topic, i in picks:
        s = _first(found, topic, i)
        if s and s not in out:
            out.append(s)
    return out


def discussion_blocks(found: dict, three, placed: dict) -> list[dict]:
    blocks: list[dict] = [heading("Shortcuts and framing"), {"kind": "prose", "id": "discussion-shortcuts"}]
    blocks.append(bullets(found.get("framing shortcut") or []))
    shift = (three or {}).get("shift") if isinstance(three, dict) else None
    if shift and shift.get("largest_shift"):
        blocks.append(
            para(
                f"the largest difference between normal training and normal test images is in "
                f"'{shift['largest_shift']}' (tables in the appendix).",
                lead="Shift audit:",
            )
        )
    blocks += placed.get("shortcuts", [])
    blocks += [heading("The validation to test shift"), {"kind": "prose", "id": "discussion-shift"}]
    blocks.append(bullets(found.get("thresholds and the validation vs test shift") or []))
    cal_items = [
        s for s in found.get("temperature scaling") or [] if not s.startswith("The binary ensemble's test ECE")
    ]
    blocks.append(bullets(list(dict.fromkeys(cal_items)), lead="Temperature scaling:"))
    budgets = [s for s in found.get("training budgets") or [] if "different epoch budgets" in s or "early" in s]
    blocks += [heading("Budgets"), {"kind": "prose", "id": "discussion-budgets"}]
    if budgets:
        blocks.append(bullets(budgets))
    blocks += [heading("What pretraining would change"), {"kind": "prose", "id": "discussion-pretraining"}]
    return blocks


def conclusions(found: dict) -> list[str]:
    out = [s for s in found.get("best models") or [] if "not available" not in s]
    for topic, i in (
        ("thresholds and the validation vs test shift", 1),
        ("temperature scaling", 0),
        ("framing shortcut", 1),
    ):
        s = _first(found, topic, i)
        if s and s not in out:
            out.append(s)
    return out


def results_extra(cal, cams) -> dict[str, list[dict]]:
    """Generated sentences placed in the result sections."""
    out: dict[str, list[dict]] = {"calibration": [], "gradcam": []}
    if isinstance(cal, dict):
        items = ensemble_findings(cal) + temperature_findings(cal, "binary") + temperature_findings(cal, "three_class")
        out["calibration"] = [
            bullets(list(dict.fromkeys(items)), lead="What the numbers say:"),
            note_block(
                "Per-model calibration (ECE, MCE, Brier, NLL before and after temperature scaling) and per-class "
                "metrics are tabulated in the model card, MODEL_CARD.md, next to this report."
            ),
        ]
    if isinstance(cams, dict):
        out["gradcam"] = [bullets(gradcam_findings(cams), lead="What the maps show:")]
    return out


# --------------------------------------------------------------------------- appendix
def _run_cells(entry: dict, run: dict) -> list[str]:
    """Model, seed, best / run epochs and training time: the first cells of every per-run table."""
    return [
        entry.get("display_name"),
        str(run.get("seed")),
        f"{run.get('best_epoch')} / {run.get('epochs_run')}",
        fmt_seconds(run.get("train_time_s")),
    ]


def per_run_blocks(binary, three) -> list[dict]:
    blocks: list[dict] = []
    if isinstance(binary, dict) and binary.get("models"):
        rows = []
        for e in binary["models"].values():
            for r in e.get("runs") or []:
                a, v = r.get("at_05") or {}, r.get("at_val_threshold") or {}
                rows.append(
                    [
                        *_run_cells(e, r),
                        fmt_num(r.get("val_threshold")),
                        fmt_num(a.get("auroc")),
                        fmt_num(a.get("accuracy")),
                        fmt_num(a.get("f1")),
                        fmt_num(v.get("f1")),
                    ]
                )
        meta = binary.get("meta") or {}
        blocks.append(
            table(
                [
                    "Model",
                    "Seed",
                    "Best / run epochs",
                    "Training",
                    "Val. threshold",
                    "AUROC",
                    "ACC 0.5",
                    "F1 0.5",
                    "F1 val. thr.",
                ],
                rows,
                first_cols=2,
                size=7.5,
                caption=f"Binary runs, one row per seed ({meta.get('dataset', 'n/a')}, official test split; "
                "pretraining as in the model name; thresholds 0.5 and chosen on validation).",
            )
        )
    if isinstance(three, dict) and three.get("models"):
        rows = []
        for e in three["models"].values():
            for r in e.get("runs") or []:
                t = r.get("test") or {}
                rows.append(
                    [
                        *_run_cells(e, r),
                        fmt_num(t.get("accuracy")),
                        fmt_num(t.get("macro_f1")),
                        fmt_num(t.get("macro_auroc")),
                        fmt_num(((t.get("per_class") or {}).get("virus") or {}).get("f1")),
                    ]
                )
        meta = three.get("meta") or {}
        blocks.append(
            table(
                ["Model", "Seed", "Best / run epochs", "Training", "ACC", "Macro F1", "Macro AUROC", "Virus F1"],
                rows,
                first_cols=2,
                size=7.5,
                caption=f"Three-class runs, one row per seed ({meta.get('dataset', 'n/a')}, official test split; "
                "pretraining as in the model name; argmax).",
            )
        )
    return blocks
