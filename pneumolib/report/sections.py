"""Report sections for the data (01-02), calibration (07) and Grad-CAM (08) notebooks;
the classification tasks (03-06) are in :mod:`.task_sections`."""

from __future__ import annotations

from .blocks import (
    Skipped,
    bullets,
    fmt_num,
    fmt_pct,
    is_num,
    make_section,
    note_block,
    para,
    table,
)
from .context import Results
from .tables import (
    MULTI_METRICS,
)


def section_data(res: Results, data: dict) -> dict:
    blocks: list[dict] = []
    counts = data.get("pneumoniamnist_counts") or {}
    majority = data.get("majority_baseline_accuracy") or {}
    if counts:
        rows = []
        for split, c in counts.items():
            total = sum(c.values())
            maj = (majority.get(split) or {}).get("accuracy")
            rows.append(
                [
                    split,
                    fmt_num(c.get("normal")),
                    fmt_num(c.get("pneumonia")),
                    fmt_num(total),
                    fmt_pct(c.get("pneumonia", 0) / total if total else None),
                    fmt_num(maj),
                ]
            )
        blocks.append(
            table(
                ["Split", "Normal", "Pneumonia", "Total", "Pneumonia share", "Always-pneumonia accuracy"],
                rows,
                caption="PneumoniaMNIST (full dataset): images per split and class, and the accuracy "
                "of a model that always answers pneumonia.",
            )
        )
    cov = data.get("kermany_coverage")
    if cov:
        rows = [
            [
                r.get("split"),
                r.get("label3"),
                fmt_num(r.get("present")),
                fmt_num(r.get("full_dataset")),
                fmt_pct(r.get("share")),
            ]
            for r in cov.get("table", [])
        ]
        blocks.append(
            table(
                ["Split", "Class", "Present here", "Full dataset", "Share"],
                rows,
                caption="Kermany chest_xray folder: images present on this machine vs the full dataset.",
                first_cols=2,
            )
        )
        shares = {}
        for r in cov.get("table", []):
            p, f = shares.get(r.get("split"), (0, 0))
            shares[r.get("split")] = (p + (r.get("present") or 0), f + (r.get("full_dataset") or 0))
        text = "; ".join(f"{s} {fmt_pct(p / f)}" for s, (p, f) in shares.items() if f)
        blocks.append(para(f"share of each official folder present on this machine: {text}.", lead="Coverage:"))
    grouped = data.get("grouped_split")
    if grouped:
        header = ["Split", "Images", "Patients", "Normal", "Bacteria", "Virus"]
        keys = ["images", "patients", "normal", "bacteria", "virus"]
        rows = [[s] + [fmt_num(c.get(k)) for k in keys] for s, c in grouped.get("counts", {}).items()]
        blocks.append(
            table(
                header,
                rows,
                caption=(
                    f"Patient-grouped split used for the three-class task ({fmt_num(grouped.get('size'))} px): "
                    "validation is carved out of the training folder by patient; "
                    f"{fmt_num(grouped.get('shared_patients_train_val'))} patients are in both train and validation. "
                    "The official test folder is kept intact."
                ),
            )
        )
    ov_p, ov_f = data.get("overlap_present"), data.get("overlap_full")
    if ov_p or ov_f:
        labels = {
            "shared_patient_ids_train_test": "Patient ids in both official train and test",
            "test_images_of_shared_patients": "Test images of those patient ids",
            "duplicate_files_train_test": "Byte-identical files in train and test",
            "duplicate_pairs_any_split": "Duplicate file pairs (any split)",
        }
        cols = [("present here", ov_p), ("full dataset", ov_f)]
        cols = [(n, o) for n, o in cols if o]
        rows = [[label] + [fmt_num(o.get(k)) for _, o in cols] for k, label in labels.items()]
        for split in ("train", "test"):
            rows.append(
                [f"Images / patient ids in {split}"]
                + [
                    f"{fmt_num(o.get('images', {}).get(split))} / {fmt_num(o.get('patients', {}).get(split))}"
                    for _, o in cols
                ]
            )
        note = ""
        if "overlap_shared_ids_same_diagnosis" in data:
            note = (
                f"Shared ids with the same diagnosis in train and test: "
                f"{fmt_num(data['overlap_shared_ids_same_diagnosis'])}."
            )
        blocks.append(
            table(
                ["Kermany train/test overlap (from file names)"] + [n for n, _ in cols],
                rows,
                caption="Patient ids shared by the official Kermany train and test folders: a leakage "
                "risk that we report rather than remove (the test set stays comparable).",
                note=note,
            )
        )
    if not (cov or grouped or ov_p):
        blocks.append(
            note_block(
                "The Kermany folder was absent when notebook 01 ran: its Kermany tables are not "
                "available for this profile."
            )
        )
    return make_section("01", "Data: what is in the chest X-ray folders", [res.notebook("01")], blocks)


def section_augmentation(res: Results, data: dict) -> dict:
    blocks: list[dict] = []
    aug = data.get("augment_ms_per_batch32") or {}
    step = data.get("simplecnn_train_step_ms_batch32") or {}
    rows = [[f"Augmenting a batch of 32 ({size})", f"{fmt_num(ms, 1)} ms"] for size, ms in aug.items()]
    rows += [[f"Custom CNN training step, batch of 32 ({size})", f"{fmt_num(ms, 1)} ms"] for size, ms in step.items()]
    if rows:
        blocks.append(
            dict(
                table(
                    ["Cost on this machine", "Time"],
                    rows,
                    caption="What augmentation costs compared with a training step.",
                ),
                place="appendix",
            )
        )
    return make_section("02", "Augmentation", [res.notebook("02")], blocks)


# ---- notebook 07: ensembles, calibration, operating points
def section_calibration(res: Results, cal: dict | Skipped) -> dict:
    nbs, title = [res.notebook("07")], "Ensembles and calibration"
    if isinstance(cal, Skipped):
        return make_section("07", title, nbs, [], cal)
    meta = cal.get("meta") or {}
    blocks = [
        para(
            f"binary: {meta.get('binary_data') or 'n/a'}; three-class: "
            f"{meta.get('three_class_data') or 'not run'}; "
            f"seeds {', '.join(map(str, meta.get('seeds') or []))}; "
            f"temperatures fitted on {meta.get('temperature_fitted_on', 'n/a')}, thresholds chosen on "
            f"{meta.get('thresholds_chosen_on', 'n/a')}.",
            lead="Setting.",
        )
    ]
    evm = cal.get("ensemble_vs_members") or {}
    if isinstance(evm.get("binary"), dict) and evm["binary"]:
        keys = {"accuracy": "ACC", "recall": "Recall", "specificity": "Specificity", "f1": "F1", "auroc": "AUROC"}
        rows = [[label] + [fmt_num(m.get(k)) for k in keys] for label, m in evm["binary"].items()]
        blocks.append(
            table(
                ["Binary model or ensemble"] + list(keys.values()),
                rows,
                caption="Binary: ensembles vs their members on the test split (threshold 0.5).",
            )
        )
    three = evm.get("three_class")
    if isinstance(three, dict) and three.get("skipped"):
        blocks.append(note_block(f"Three-class ensembles skipped: {three['skipped']}"))
    elif isinstance(three, dict) and three:
        rows = [[label] + [fmt_num(m.get(k)) for k in MULTI_METRICS] for label, m in three.items()]
        blocks.append(
            table(
                ["Three-class model or ensemble"] + list(MULTI_METRICS.values()),
                rows,
                caption="Three classes: ensembles vs their members on the test split (argmax).",
            )
        )
    for key, task in (("binary", "Binary"), ("three_class", "Three classes")):
        section = cal.get(key)
        if isinstance(section, dict) and section.get("skipped"):
            blocks.append(note_block(f"{task} calibration skipped: {section['skipped']}"))
    return make_section("07", title, nbs, blocks)


def section_operating_points(res: Results, cal: dict | Skipped) -> dict:
    nbs, title = [res.notebook("07")], "Operating points"
    if isinstance(cal, Skipped):
        return make_section("07", title, nbs, [], cal)
    blocks: list[dict] = []
    op = cal.get("operating_points") or {}
    if op.get("thresholds"):
        rows, sentences = [], []
        for name, e in op["thresholds"].items():
            t = e.get("test") or {}
            rows.append(
                [
                    name,
                    e.get("rule", ""),
                    e.get("chosen_on", ""),
                    fmt_num(e.get("threshold")),
                    fmt_num(e.get("val_recall")),
                    fmt_num(t.get("recall")),
                    fmt_num(t.get("specificity")),
                    fmt_num(t.get("precision")),
                    fmt_num(t.get("f1")),
                    fmt_num(t.get("fn")),
                    fmt_num(t.get("fp")),
                ]
            )
            if all(is_num(t.get(k)) for k in ("tp", "fn", "tn", "fp")):
                n_pos, n_neg = t["tp"] + t["fn"], t["tn"] + t["fp"]
                sentences.append(
                    f"{name} (threshold {fmt_num(e.get('threshold'))}): misses {t['fn']} of {n_pos} "
                    f"children with pneumonia and flags {t['fp']} of {n_neg} healthy children."
                )
        blocks.append(
            table(
                [
                    "Point",
                    "Rule",
                    "Chosen on",
                    "Threshold",
                    "Val. recall",
                    "Recall",
                    "Specificity",
                    "Precision",
                    "F1",
                    "FN",
                    "FP",
                ],
                rows,
                size=7.5,
                first_cols=3,
                caption=f"Operating points of {op.get('ensemble', 'the ensemble')} (temperature "
                f"{fmt_num(op.get('temperature'))}): test metrics at 0.5 and at thresholds "
                "chosen on validation.",
            )
        )
        if sentences:
            blocks.append(bullets(sentences, lead="On the test set:"))
    return make_section("07", title, nbs, blocks)


# ---- notebook 08: Grad-CAM
def section_gradcam(res: Results, cams: dict | Skipped) -> dict:
    nbs, title = [res.notebook("08")], "Grad-CAM: where do the models look?"
    if isinstance(cams, Skipped):
        return make_section("08", title, nbs, [], cams)
    meta = cams.get("meta") or {}
    blocks = [
        para(f"seed {meta.get('seed', 'n/a')}; target class: {meta.get('target_class', 'n/a')}.", lead="Setting.")
    ]
    best = cams.get("best_binary") or {}
    if best:
        blocks.append(
            para(
                f"{best.get('display_name', best.get('model'))}, seed {best.get('seed')}, layer "
                f"{best.get('layer')}, threshold {fmt_num(best.get('threshold'))} "
                f"({best.get('threshold_rule', '')}).",
                lead="Model explained in detail:",
            )
        )
    layers = cams.get("layers") or {}
    if layers:
        rows = [
            [
                key,
                str(i.get("layer", "")),
                "×".join(str(v) for v in i.get("map_size") or []),
                f"{fmt_num(i.get('input_size'))} px",
                f"{fmt_num(i.get('network_input'))} px",
                "yes" if i.get("is_default") else "no",
            ]
            for key, i in layers.items()
        ]
        blocks.append(
            table(
                ["Task : model : layer", "Layer", "Map", "Input", "Network sees", "Default"],
                rows,
                size=7.5,
                first_cols=2,
                caption="Where each Grad-CAM map comes from, and how coarse it is.",
            )
            | {"place": "appendix"}
        )
    border = cams.get("border_mass") or {}
    if border:
        rows = [
            [
                key,
                fmt_num(b.get("border_mass")),
                fmt_num(b.get("area_fraction")),
                fmt_num(b.get("ratio")),
                fmt_num(b.get("n_maps")),
            ]
            for key, b in border.items()
        ]
        blocks.append(
            table(
                ["Task : model : layer", "Mass in border band", "Band's share of area", "Ratio", "Maps"],
                rows,
                size=7.5,
                caption="Share of Grad-CAM mass in the image border band (ratio > 1: "
                "drawn to the borders, where markers and text lie).",
            )
        )
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
            rows.append(
                [
                    key,
                    f"{first.get('block', '')} ({fmt_num(first.get('n_top'))})",
                    fmt_num(first.get("spearman")),
                    f"{last.get('block', '')} ({fmt_num(last.get('n_top'))})",
                    fmt_num(last.get("spearman")),
                    fmt_num(last.get("abs_diff")),
                ]
            )
        blocks.append(
            table(
                ["Task : model : layer", "First step (blocks)", "ρ", "Last step (blocks)", "ρ", "Mean |Δ|"],
                rows,
                size=7.5,
                caption="Cascading randomisation sanity check: Spearman correlation with the trained "
                "model's maps; a faithful explanation decorrelates as more blocks are "
                "randomised.",
            )
        )
    three = cams.get("three_class") or {}
    if three.get("examples"):
        rows = [
            [c.get("case", ""), c.get("true", ""), c.get("pred", ""), fmt_num(c.get("prob")), fmt_num(c.get("count"))]
            for c in three["examples"]
        ]
        blocks.append(
            table(
                ["Case", "True", "Predicted", "P(predicted)", "Images in that cell"],
                rows,
                first_cols=3,
                caption=f"Three-class cases explained ({three.get('model', '')}, seed {three.get('seed')}).",
            )
        )
    return make_section("08", title, nbs, blocks)
