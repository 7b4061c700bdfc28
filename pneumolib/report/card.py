"""The model card: its blocks (:func:`model_card_blocks`) and its Markdown (:func:`model_card`)."""

from __future__ import annotations

from ..findings import (
    budget_findings,
    prevalence_findings,
    shift_findings,
    target_findings,
    temperature_findings,
    threshold_findings,
)
from ..profiles import FRAMING_DESCRIPTIONS, Profile
from .blocks import Skipped, blocks_to_markdown, bullets, fmt_mean_std, fmt_num, fmt_pct, heading, para, table
from .context import Results, training_texts
from .tables import (
    calibration_table,
    full_kermany_test,
    full_mnist_test,
    multiclass_rows,
    pretraining_label,
    split_label,
)


def _binary_card_table(binary: dict) -> dict:
    rows = []
    for e in binary.get("models", {}).values():
        s = e.get("summary", {})
        for key, label in (("at_05", "0.5"), ("at_val_threshold", "val. max F1")):
            m = s.get(key, {})
            rows.append(
                [
                    e.get("display_name"),
                    label,
                    fmt_mean_std(m.get("specificity")),
                    fmt_mean_std(m.get("recall")),
                    fmt_mean_std(m.get("precision")),
                    fmt_mean_std(m.get("accuracy")),
                    fmt_mean_std(m.get("auroc")),
                ]
            )
    return table(
        [
            "Model",
            "Threshold",
            "Normal: recall (specificity)",
            "Pneumonia: recall (sensitivity)",
            "Pneumonia: precision",
            "ACC",
            "AUROC",
        ],
        rows,
        first_cols=2,
        size=7.5,
        caption="Binary task, by class, on the official test split (mean ± std over seeds).",
    )


def limitations(data: dict | None, prof) -> list[str]:
    data = data or {}
    ov = data.get("overlap_full") or data.get("overlap_present") or {}
    cov = data.get("kermany_coverage") or {}
    maj = (data.get("majority_baseline_accuracy") or {}).get("test", {}).get("accuracy")
    items = [
        "Single institution: every image comes from one pediatric hospital (Guangzhou Women and Children's "
        "Medical Center); nothing here shows that the models work elsewhere, on adults or on other scanners."
    ]
    if maj is not None:
        items.append(
            f"Class imbalance pushes models towards 'pneumonia': answering 'pneumonia' for every test "
            f"image already scores accuracy {fmt_num(maj)}."
        )
    items.append(
        "Labels are inherited from folder and file names: how each image was graded cannot be audited "
        "from the released data, which also give no laboratory confirmation of bacterial vs viral cause."
    )
    val = ov.get("images", {}).get("val")
    if val is not None:
        items.append(
            f"The official Kermany validation folder holds only {fmt_num(val)} images; we validate on a "
            "patient-grouped split of the training folder instead."
        )
    if ov:
        items.append(
            f"Patient ids shared by the official train and test folders: "
            f"{fmt_num(ov.get('shared_patient_ids_train_test'))}, covering "
            f"{fmt_num(ov.get('test_images_of_shared_patients'))} test images; the test set is kept "
            "as published for comparability, so test scores may be optimistic."
        )
    if cov.get("train_share") is not None:
        items.append(f"Only {fmt_pct(cov['train_share'])} of the Kermany training folder is present on this machine.")
    items.append(
        f"Low resolution: PneumoniaMNIST at {prof.mnist_size} px and Kermany at {prof.kermany_size} px "
        "for this profile; fine findings are invisible at these sizes."
    )
    square = FRAMING_DESCRIPTIONS[prof.framing]
    items.append(
        "JPEG compression artefacts, text markers, arms and framing differ between images; a model can "
        f"learn such shortcuts instead of anatomy. Each Kermany X-ray becomes {square}, which keeps how the "
        "patient is framed: see the framing-shortcut findings above."
    )
    items.append(
        "Validation and test come from different folders (PneumoniaMNIST: validation is split from the source "
        "train folder, test is the source test folder); temperatures and thresholds fitted on validation need "
        "not transfer, so recalibrate and re-threshold on data from the deployment site."
    )
    items.append("No external cohort: every score is measured on data from the same source as the training data.")
    items.append(
        "Grad-CAM heat maps show where a model's evidence lies, not where the disease is; they are not "
        "ground truth and can look plausible for a wrong reason."
    )
    return items


def _calibration_card_blocks(cal: dict | Skipped | None) -> list[dict]:
    if cal is None:
        return []
    if isinstance(cal, Skipped):
        return [para(f"skipped: {cal.reason}", lead="Calibration:")]
    blocks = []
    for key, task in (("binary", "Binary"), ("three_class", "Three classes")):
        section = cal.get(key)
        if isinstance(section, dict) and section.get("skipped"):
            blocks.append(para(f"skipped: {section['skipped']}", lead=f"{task}:"))
        elif isinstance(section, dict) and section:
            blocks.append(calibration_table(section, task))
    return blocks or [para("the calibration results file holds no summary numbers.", lead="Calibration:")]


def _findings_card_blocks(binary, three, cal) -> list[dict]:
    """Generated sentences (:mod:`pneumolib.findings`): calibration, the val -> test shift, framing, budgets."""
    binary, three, cal = (x if isinstance(x, dict) else None for x in (binary, three, cal))
    items: list[str] = []
    if cal:
        items += temperature_findings(cal, "binary") + temperature_findings(cal, "three_class") + target_findings(cal)
        items += (prevalence_findings(binary) if binary else []) + threshold_findings(cal, binary)
    if three:
        items += shift_findings(three)
    for task, results in (("binary", binary), ("three-class", three)):
        if results:
            items += budget_findings(results, task)
    return [bullets(items or ["not available: no results files with these numbers."])]


def model_card_blocks(profile: Profile, res: Results | None = None, raise_problems: bool = True) -> list[dict]:
    """The model card as blocks (see the module docstring); :func:`model_card` renders them as Markdown."""
    res = res or Results(profile)
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
        heading(f"Model card: PneumoLab chest X-ray classifiers (profile {res.name})", 1),
        para(
            f"Generated from results/{res.name}/*.json (profile settings {res.hash}"
            + (f", commit {git}" if git else "")
            + "). Every number below is read from those files."
        ),
        heading("Model details"),
    ]
    rows = []
    for task, results in (("normal vs pneumonia", binary), ("normal / bacteria / virus", three)):
        if isinstance(results, dict):
            for e in results.get("models", {}).values():
                rows.append(
                    [
                        e.get("display_name"),
                        task,
                        pretraining_label(e.get("weights")),
                        fmt_num(e.get("parameters")),
                        f"{fmt_num(e.get('image_size'))} px",
                        str(len(e.get("runs", []))),
                    ]
                )
    blocks.append(
        table(
            ["Model", "Task", "Pretraining", "Parameters", "Input", "Seeds"],
            rows,
            caption="Models trained under this profile.",
        )
    )
    training = training_texts({"Normal vs pneumonia": binary, "Normal / bacteria / virus": three})
    blocks.append(bullets(training or ["not recorded in the results files (rerun notebooks 03-05)"], lead="Training."))
    blocks += [
        heading("Intended use"),
        bullets(
            [
                "Teaching: how to train, evaluate, calibrate and explain image classifiers honestly, on public "
                "pediatric chest X-ray data.",
                "Research practice: like-for-like comparison with published results on the official test splits.",
            ],
            lead="Intended:",
        ),
        bullets(
            [
                "Any clinical use: diagnosis, triage, screening or treatment decisions. This is an educational "
                "prototype, not a clinical device, and has no regulatory approval.",
                "Adults, other hospitals, other imaging devices or views: never evaluated.",
            ],
            lead="Out of scope:",
        ),
        heading("Data"),
    ]
    data_items = []
    if isinstance(data, dict):
        counts = data.get("pneumoniamnist_counts") or {}
        if counts:
            data_items.append(
                "PneumoniaMNIST (MedMNIST v2, CC BY 4.0), official splits: "
                + "; ".join(
                    f"{s} {fmt_num(sum(c.values()))} ({', '.join(f'{k} {fmt_num(v)}' for k, v in c.items())})"
                    for s, c in counts.items()
                )
                + "."
            )
        cov = data.get("kermany_coverage") or {}
        if cov:
            test = [r for r in cov.get("table", []) if r.get("split") == "test"]
            present, full = sum(r.get("present") or 0 for r in test), sum(r.get("full_dataset") or 0 for r in test)
            data_items.append(
                f"Kermany chest_xray (CC BY 4.0): {fmt_pct(cov.get('train_share'))} of the training "
                f"folder and {fmt_num(present)} of {fmt_num(full)} official test images present here; "
                "the official test folder is used as published (no reshuffling)."
            )
        grouped = (data.get("grouped_split") or {}).get("counts") or {}
        if grouped:
            data_items.append(
                "Three-class splits (patient-grouped validation): "
                + "; ".join(
                    f"{s} {fmt_num(c.get('images'))} images / {fmt_num(c.get('patients'))} patients"
                    for s, c in grouped.items()
                )
                + "."
            )
    blocks.append(bullets(data_items or ["data.json holds no counts."]))
    blocks.append(heading("Metrics by class"))
    if isinstance(binary, dict):
        meta = binary.get("meta", {})
        n_test = (meta.get("n") or {}).get("test")
        blocks.append(
            para(f"{meta.get('dataset', '')}, {split_label(n_test, full_mnist_test(data_or_none))}.", lead="Binary.")
        )
        blocks.append(_binary_card_table(binary))
    if isinstance(three, Skipped):
        blocks.append(para(f"skipped: {three.reason}", lead="Three-class."))
    elif isinstance(three, dict):
        meta = three.get("meta", {})
        _, class_rows = multiclass_rows(three)
        n_test = (meta.get("n") or {}).get("test")
        blocks.append(
            para(
                f"{meta.get('dataset', '')}, {split_label(n_test, full_kermany_test(data_or_none))}.",
                lead="Three-class.",
            )
        )
        blocks.append(
            table(
                ["Model", "Class", "Precision", "Recall", "F1"],
                class_rows,
                first_cols=2,
                caption="Three-class task, by class (mean ± std over seeds).",
            )
        )
    blocks.append(heading("Calibration"))
    blocks.extend(_calibration_card_blocks(cal))
    blocks.append(heading("Findings: what the numbers say"))
    blocks.extend(_findings_card_blocks(binary, three, cal))
    blocks.append(heading("Limitations and ethical considerations"))
    blocks.append(bullets(limitations(data if isinstance(data, dict) else None, prof)))
    blocks.append(heading("What real deployment would require"))
    blocks.append(
        bullets(
            [
                "Multi-site external validation on prospective data, including adults if intended, other scanners and "
                "other populations.",
                "Calibration checked on the target population and a bias audit across age, sex, site and device.",
                "Clinician oversight: the model as a second reader, never the only one, with a clear escalation path.",
                "Regulatory approval as a medical device (e.g. FDA clearance or CE marking under the EU MDR), with "
                "post-market monitoring.",
            ]
        )
    )
    return blocks


def model_card(profile: Profile) -> str:
    """The model card of ``profile`` as Markdown, generated from its results files."""
    return blocks_to_markdown(model_card_blocks(profile))
