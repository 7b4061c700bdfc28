"""Report sections for the classification tasks: binary (03-04), three classes (05), hierarchical (06)."""

from __future__ import annotations

from ..anchors import ANCHORS
from ..findings import budget_label, members_text
from ..metrics import summarize_runs
from .blocks import (
    Skipped,
    fmt_mean_std,
    fmt_num,
    fmt_pct,
    fmt_seconds,
    heading,
    make_section,
    para,
    table,
)
from .context import Results
from .tables import (
    BINARY_METRICS,
    MULTI_METRICS,
    dict_table,
    full_kermany_test,
    full_mnist_test,
    multiclass_rows,
    pretraining_label,
    skipped_notes,
    split_label,
)


def budget_table(results: dict, task: str) -> dict:
    """Each model's epoch budget and whether its best epoch was its last (still improving when stopped)."""
    rows = [[e.get("display_name"), budget_label(e)] for e in (results.get("models") or {}).values()]
    return table(
        ["Model", "Training budget"],
        rows,
        caption=f"{task} training budgets: models differ in budget, so a gap between rows mixes architecture and "
        "budget; a best epoch equal to the last means the model was still improving when training stopped.",
    )


def _binary_tables(binary: dict, res: Results, data: dict | None) -> list[dict]:
    meta = binary.get("meta", {})
    models = binary.get("models", {})
    n_test = (meta.get("n") or {}).get("test")
    split = split_label(n_test, full_mnist_test(data))
    seeds = meta.get("seeds") or []
    blocks = [
        para(
            f"{meta.get('dataset', 'n/a')}; {split}; seeds {', '.join(map(str, seeds))}. Every cell is the "
            "mean ± standard deviation over seeds (a single value when there is one seed).",
            lead="Setting.",
        )
    ]
    rows = []
    for e in models.values():
        s = e.get("summary", {})
        ci = e.get("auroc_ci95") or [None, None]
        thr = summarize_runs(e["runs"]).get("val_threshold") if e.get("runs") else None
        rows.append(
            [
                e.get("display_name"),
                pretraining_label(e.get("weights")),
                fmt_num(e.get("parameters")),
                f"{fmt_num(e.get('image_size'))} px",
                fmt_mean_std(s.get("at_05", {}).get("auroc")),
                f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]",
                fmt_mean_std(s.get("at_05", {}).get("average_precision")),
                fmt_mean_std(thr),
                fmt_mean_std(s.get("ms_per_img"), 2),
                fmt_seconds(s.get("train_time_s")),
            ]
        )
    blocks.append(
        table(
            [
                "Model",
                "Pretraining",
                "Parameters",
                "Input",
                "AUROC",
                "AUROC 95% CI",
                "Avg. precision",
                "Val. threshold",
                "ms / image (batch 32)",
                "Training (all seeds)",
            ],
            rows,
            caption="Threshold-free test metrics, bootstrap 95% CI of the seed-averaged AUROC, the "
            "threshold chosen on validation (max F1), inference and training cost.",
            size=7.5,
        )
    )
    for key, title in (
        ("at_05", "at threshold 0.5 (comparable with published tables)"),
        ("at_val_threshold", "at the threshold chosen on the validation split (max F1)"),
    ):
        rows = [
            [e.get("display_name")] + [fmt_mean_std(e.get("summary", {}).get(key, {}).get(m)) for m in BINARY_METRICS]
            for e in models.values()
        ]
        blocks.append(table(["Model"] + list(BINARY_METRICS.values()), rows, caption=f"Binary test metrics {title}."))
    blocks.extend(skipped_notes(binary))
    return blocks


def _anchor_table(task: str, ours: list[dict], metrics: dict[str, str], caption: str) -> dict:
    """Our rows and the published anchors for ``task``, each labelled data/pretraining/threshold/split."""
    header = ["Source · model", "Data", "Pretraining", "Threshold", "Seeds", "Split"] + list(metrics.values())
    rows = []
    for r in ours:
        rows.append(
            [r["source"], r["data"], r["pretraining"], r["threshold"], r["seeds"], r["split"]]
            + [r.get(m, "") for m in metrics]
        )
    for a in ANCHORS:
        if a["task"] != task:
            continue
        rows.append(
            [
                f"{a['source']} · {a['model']}",
                a["data"],
                a["pretraining"],
                a["threshold"],
                a["seeds"],
                "official test (n = 624)",
            ]
            + [fmt_num(a[m]) if m in a else "" for m in metrics]
        )
    # a label shared by every row moves into the caption: the table keeps its labels and fits the page
    shared = [i for i in range(1, 6) if rows and len({r[i] for r in rows}) == 1]
    if shared:
        caption += " " + "; ".join(f"{header[i]} of every row: {rows[0][i]}" for i in shared) + "."
    keep = [i for i in range(len(header)) if i not in shared]
    header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
    return table(header, rows, caption=caption, first_cols=6 - len(shared), size=7)


def _our_anchor_row(meta: dict, entry: dict, threshold: str, split: str) -> dict:
    """The labels of one of our models in a published-anchors table (the metrics are added by the caller)."""
    return dict(
        source=f"PneumoLab ({meta.get('profile')}) · {entry.get('display_name')}",
        data=meta.get("dataset", ""),
        pretraining=pretraining_label(entry.get("weights")),
        threshold=threshold,
        seeds=str(len(entry.get("runs", []))),
        split=split,
    )


def _binary_anchor_rows(binary: dict, data: dict | None) -> list[dict]:
    meta = binary.get("meta", {})
    split = split_label((meta.get("n") or {}).get("test"), full_mnist_test(data))
    rows = []
    for e in binary.get("models", {}).values():
        s = e.get("summary", {}).get("at_05", {})
        row = _our_anchor_row(meta, e, "0.5", split)
        row.update({m: fmt_mean_std(s.get(m)) for m in ("auroc", "accuracy", "recall", "specificity", "f1")})
        rows.append(row)
    return rows


def section_binary(res: Results, binary: dict, data: dict | None) -> dict:
    blocks = _binary_tables(binary, res, data)
    blocks.append(heading("Where we stand: published anchors, like for like", 3))
    blocks.append(
        _anchor_table(
            "binary",
            _binary_anchor_rows(binary, data),
            {"auroc": "AUROC", "accuracy": "ACC", "recall": "Recall", "specificity": "Spec.", "f1": "F1"},
            caption="Our binary models (first rows, mean ± std over seeds) and published "
            "results on the official test splits. Compare rows only when data, "
            "pretraining and threshold match.",
        )
    )
    return make_section("03", "Binary: normal vs pneumonia", [res.notebook("03"), res.notebook("04")], blocks)


# ---- notebook 05: three classes
def section_three_class(res: Results, three: dict | Skipped, data: dict | None) -> dict:
    nbs = [res.notebook("05")]
    title = "Three classes: normal, bacterial and viral pneumonia"
    if isinstance(three, Skipped):
        return make_section("05", title, nbs, [], three)
    meta = three.get("meta", {})
    split = split_label((meta.get("n") or {}).get("test"), full_kermany_test(data))
    blocks = [
        para(
            f"{meta.get('dataset', 'n/a')}; {split}; seeds {', '.join(map(str, meta.get('seeds') or []))}; "
            "predicted class = argmax.",
            lead="Setting.",
        )
    ]
    note = (three.get("coverage") or {}).get("note")
    if note:
        blocks.append(para(note, lead="Training data."))
    summary_rows, _ = multiclass_rows(three)  # per-class rows: in the model card, not repeated here
    ens = three.get("ensemble") or {}
    ens_test = ens.get("test") or {}
    ens_name = f"Ensemble: {members_text(ens.get('members') or [])}" if ens else ""
    if ens_test:
        summary_rows.append([ens_name, "as members", "", *[fmt_num(ens_test.get(m)) for m in MULTI_METRICS], "", "1"])
    blocks.append(
        table(
            ["Model", "Pretraining", "Input"] + list(MULTI_METRICS.values()) + ["ms / image (batch 32)", "Seeds"],
            summary_rows,
            caption="Three-class test metrics (mean ± std over seeds; the ensemble row is labelled with the "
            "runs whose probabilities it averages).",
        )
    )
    sel = three.get("model_selection") or {}
    if sel:
        scores = ", ".join(f"{k} {fmt_num(v)}" for k, v in (sel.get("val_macro_f1") or {}).items())
        blocks.append(
            para(
                f"{sel.get('rule', '')}: {scores}; selected: {sel.get('best')}.",
                lead="Model selection (validation only).",
            )
        )
    dom = three.get("dominant_error") or {}
    if dom.get("true"):
        blocks.append(
            para(
                f"true {dom['true']} predicted {dom.get('pred')}: {fmt_num(dom.get('count'))} of "
                f"{fmt_num(dom.get('total_errors'))} test errors of the ensemble "
                f"({fmt_pct(dom.get('share_of_errors'), 0)}).",
                lead="Most frequent error.",
            )
        )
    shift = three.get("shift") or {}
    if shift:
        blocks.append(heading("Do normal images differ between the train and test folders?", 3))
        if shift.get("largest_shift"):
            blocks.append(
                para(
                    f"the largest shift between normal training and normal test images is in "
                    f"'{shift['largest_shift']}'.",
                    lead="Shift audit:",
                )
            )
        for key, caption in (
            (
                "normal_train_vs_test",
                "Image statistics of normal images, train vs test folder (two-sample comparison).",
            ),
            ("normal_recall", "Recall of the normal class on validation and test."),
            (
                "spearman_with_p_pneumonia_on_normal_test",
                "Spearman correlation of each statistic with P(pneumonia) on normal test images.",
            ),
        ):
            t = dict_table(key, shift.get(key))
            if t:
                t["caption"] = caption
                t["place"] = "appendix"  # the audit's detail; the discussion states what it found
                blocks.append(t)
    blocks.extend(skipped_notes(three))
    ours = []
    for e in three.get("models", {}).values():
        t = e.get("summary", {}).get("test", {})
        pc = e.get("summary", {}).get("per_class", {})
        ours.append(
            dict(
                **_our_anchor_row(meta, e, "argmax", split),
                accuracy=fmt_mean_std(t.get("accuracy")),
                macro_f1=fmt_mean_std(t.get("macro_f1")),
                macro_auroc=fmt_mean_std(t.get("macro_auroc")),
                virus_f1=fmt_mean_std((pc.get("virus") or {}).get("f1")),
            )
        )
    if ens_test:
        ours.append(
            dict(
                source=f"PneumoLab ({meta.get('profile')}) · {ens_name}",
                data=meta.get("dataset", ""),
                pretraining="as members",
                threshold="argmax",
                seeds="all",
                split=split,
                accuracy=fmt_num(ens_test.get("accuracy")),
                macro_f1=fmt_num(ens_test.get("macro_f1")),
                macro_auroc=fmt_num(ens_test.get("macro_auroc")),
                virus_f1=fmt_num(((ens_test.get("per_class") or {}).get("virus") or {}).get("f1")),
            )
        )
    blocks.append(heading("Published anchors, like for like", 3))
    blocks.append(
        _anchor_table(
            "three_class",
            ours,
            {"accuracy": "ACC", "macro_f1": "Macro F1", "macro_auroc": "Macro AUROC", "virus_f1": "Virus F1"},
            caption="Our three-class models and the deck's patient-aware ensemble on the official Kermany test folder.",
        )
    )
    if any(a["task"] == "bacterial_vs_viral" for a in ANCHORS):
        blocks.append(
            _anchor_table(
                "bacterial_vs_viral",
                [],
                {"auroc": "AUROC", "accuracy": "ACC"},
                caption="Bacterial vs viral pneumonia (published, for reference).",
            )
        )
    return make_section("05", title, nbs, blocks)


# ---- notebook 06: hierarchical (two-stage) classifier
def section_hierarchical(res: Results, hier: dict | Skipped, data: dict | None = None) -> dict:
    nbs, title = [res.notebook("06")], "Hierarchical classification: pneumonia first, then its cause"
    if isinstance(hier, Skipped):
        return make_section("06", title, nbs, [], hier)
    meta = hier.get("meta") or {}
    blocks = [
        para(
            f"{meta.get('dataset', 'n/a')}; {split_label(meta.get('n_test'), full_kermany_test(data))}; seeds "
            f"{', '.join(map(str, meta.get('seeds') or []))}; pretraining {meta.get('pretraining', 'n/a')}; "
            f"both stages are {hier.get('architecture', 'n/a')} models trained with "
            f"{hier.get('stage_loss', 'n/a')}.",
            lead="Setting.",
        )
    ]
    if hier.get("rule"):
        rule = str(hier["rule"])
        blocks.append(para(rule if rule.endswith(".") else rule + ".", lead="Decision rule."))
    n_seeds = len(meta.get("seeds") or []) or None

    def ms(stat):  # these summaries hold no "n": it is the number of seeds
        return fmt_mean_std(stat, n=n_seeds)

    rows = []
    for key, label in (
        ("flat", "Flat three-class model (notebook 05)"),
        ("hierarchical", "Hierarchical, argmax"),
        ("sequential", "Hierarchical, sequential"),
    ):
        m = hier.get(key)
        if isinstance(m, dict):
            f1 = m.get("per_class_f1") or {}
            rows.append(
                [label]
                + [ms(m.get(k)) for k in MULTI_METRICS]
                + [ms(f1.get(c)) for c in ("normal", "bacteria", "virus")]
            )
    blocks.append(
        table(
            ["Classifier"] + list(MULTI_METRICS.values()) + ["F1 normal", "F1 bacteria", "F1 virus"],
            rows,
            size=7.5,
            caption="Flat vs hierarchical three-class test metrics (mean ± std over seeds).",
        )
    )
    rows = []
    for key, label in (
        ("stage_a_alone", "Stage A: normal vs pneumonia"),
        ("stage_b_alone", "Stage B: bacteria vs virus (pneumonia images)"),
    ):
        m = hier.get(key)
        if isinstance(m, dict):
            rows.append([label] + [ms(m.get(k)) for k in ("accuracy", "recall", "specificity", "f1", "auroc")])
    if rows:
        blocks.append(
            table(
                ["Stage", "ACC", "Recall", "Specificity", "F1", "AUROC"],
                rows,
                caption="Each stage on its own binary test task (mean ± std over seeds).",
            )
        )
    rows = []
    for key, label in (("error_sources", "Hierarchical"), ("error_sources_flat", "Flat")):
        e = hier.get(key)
        if isinstance(e, dict):
            rows.append(
                [label]
                + [
                    fmt_num(e.get(k), 1)
                    for k in ("stage_a", "stage_b", "total_errors", "missed_pneumonia", "false_pneumonia")
                ]
            )
    if rows:
        blocks.append(
            table(
                [
                    "Classifier",
                    "Normal/pneumonia errors",
                    "Subtype errors",
                    "All errors",
                    "Missed pneumonia",
                    "False pneumonia",
                ],
                rows,
                size=8,
                caption="Where the test errors come from (mean over seeds): the normal vs pneumonia "
                "decision, or the subtype of a detected pneumonia.",
            )
        )
    dis = hier.get("rule_disagreements")
    if isinstance(dis, dict) and dis:
        blocks.append(
            para(
                ", ".join(f"seed {k}: {fmt_num(v)}" for k, v in dis.items()) + ".",
                lead="Test images where the argmax and sequential rules disagree:",
            )
        )
    return make_section("06", title, nbs, blocks)
