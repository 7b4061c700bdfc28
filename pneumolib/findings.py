"""Findings: short sentences whose numbers *and* direction words come from the results files.

Prose that describes a result ("temperature scaling improves calibration", "the threshold chosen on
validation is better") goes stale, or is wrong from the start, when it is typed by hand. Here every
such sentence is computed from ``results/<profile>/*.json`` (read through
:func:`pneumolib.schema.read_results`): the words "raised"/"lowered", "better"/"worse", "helped"/"did
not help" are decided by comparing the numbers the sentence prints, rounded as printed.

Each ``*_findings`` function takes the already-read results dict(s) and returns a list of
sentences (plain text, no Markdown markup, so the PDF, the model card and the notebooks can all use
them). A key a profile did not write gives a sentence saying "not available", never a crash: smoke
results are meaningless but must still render. :func:`key_findings` reads every file of a profile
and returns the findings grouped by topic; :func:`markdown` turns a list into a Markdown bullet list
for ``display(Markdown(...))`` in a notebook.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .profiles import Profile
from .schema import ResultsNotFoundError, read_results

__all__ = [
    "SANITY_FAIL_RHO",
    "UNIFORM_STD",
    "fmt",
    "pct",
    "is_number",
    "improvement",
    "join_words",
    "not_available",
    "direction",
    "change_phrase",
    "temperature_findings",
    "target_findings",
    "threshold_findings",
    "prevalence_findings",
    "shift_findings",
    "ensemble_findings",
    "budget_findings",
    "best_model_findings",
    "budget_label",
    "members_text",
    "coverage_findings",
    "gradcam_findings",
    "is_uniform_map",
    "uniform_layers",
    "key_findings",
    "markdown",
]

#: a Grad-CAM map whose rank correlation with the trained model's map stays at or above this after
#: every block is randomised does not depend on what the model learned: the sanity check fails
SANITY_FAIL_RHO = 0.5
#: a layer whose maps have a border-mass spread below this is uniform (e.g. DenseNet121's 2 x 2 map)
UNIFORM_STD = 1e-4

#: a run stopped early that kept an epoch up to this one was ended by validation noise, not convergence
EARLY_EPOCH = 3

CAL_NAMES = {"ece_15": "ECE (15 bins)", "mce_15": "MCE", "nll": "NLL", "brier": "Brier score"}


# --------------------------------------------------------------------------- numbers and words
def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x: Any, digits: int = 3) -> str:
    """A number as printed in a finding (``"n/a"`` for a missing or undefined one)."""
    return f"{x:.{digits}f}" if is_number(x) else "n/a"


def pct(x: Any, digits: int = 0) -> str:
    return f"{x:.{digits}%}" if is_number(x) else "n/a"


def members_text(labels: Sequence[str]) -> str:
    """``"Custom CNN, ResNet18, DenseNet121 (scratch), 3 seeds each"`` from run labels ``"<model> seed <n>"``."""
    groups: dict[str, int] = {}
    for label in labels:
        groups[label.rsplit(" seed ", 1)[0]] = groups.get(label.rsplit(" seed ", 1)[0], 0) + 1
    counts = set(groups.values())
    if len(counts) == 1:
        n = counts.pop()
        return f"{', '.join(groups)}, {n} seed{'s' if n != 1 else ''} each"
    return ", ".join(f"{g} ({n} seeds)" for g, n in groups.items())


def direction(before: Any, after: Any, digits: int = 3) -> int | None:
    """+1 if ``after`` is larger than ``before`` *as printed* with ``digits``, -1 if smaller, 0 if equal."""
    if not (is_number(before) and is_number(after)):
        return None
    a, b = round(float(before), digits), round(float(after), digits)
    return (b > a) - (b < a)


def change_phrase(what: str, before: Any, after: Any, digits: int = 3) -> str:
    """``"raised the test ECE from 0.026 to 0.033"``; the verb comes from the numbers."""
    d = direction(before, after, digits)
    if d is None:
        return f"left {what} not measurable (n/a)"
    if d == 0:
        return f"left {what} unchanged at {fmt(after, digits)}"
    verb = "raised" if d > 0 else "lowered"
    return f"{verb} {what} from {fmt(before, digits)} to {fmt(after, digits)}"


def improvement(before: Any, after: Any, lower_is_better: bool = True, digits: int = 3) -> int | None:
    """+1 better, -1 worse, 0 unchanged, None unknown."""
    d = direction(before, after, digits)
    return None if d is None else (-d if lower_is_better else d)


def join_words(parts: Sequence[str]) -> str:
    parts = list(parts)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def not_available(topic: str, why: str) -> str:
    return f"{topic}: not available ({why})."


# --------------------------------------------------------------------------- calibration (notebook 07)
def temperature_findings(cal: Mapping, task: str = "binary") -> list[str]:
    """What temperature scaling (fitted on validation) did to the task's ensemble on the test set."""
    topic = "binary" if task == "binary" else "three-class"
    entry = (cal.get(task) or {}).get("ensemble")
    if not entry:
        return [
            not_available(
                f"Temperature scaling of the {topic} ensemble", (cal.get(task) or {}).get("skipped", "no entry")
            )
        ]
    t, before, after = entry.get("temperature"), entry["before"], entry["after"]
    how = "sharpens" if is_number(t) and t < 1 else "softens" if is_number(t) and t > 1 else "leaves unchanged"
    keys = ("ece_15", "mce_15", "nll")
    changes = [change_phrase(f"the {CAL_NAMES[k]}", before.get(k), after.get(k)) for k in keys]
    verdicts = {k: improvement(before.get(k), after.get(k)) for k in keys}
    better = [CAL_NAMES[k] for k, v in verdicts.items() if v == 1]
    worse = [CAL_NAMES[k] for k, v in verdicts.items() if v == -1]
    if better and not worse:
        verdict = "it helped"
    elif worse and not better:
        # "slightly" when every score that got worse moved by under 2% of its value (e.g. NLL 0.207 -> 0.208)
        small = all(abs(after[k] - before[k]) < 0.02 * abs(before[k]) for k, v in verdicts.items() if v == -1)
        verdict = f"it made calibration {'slightly ' if small else ''}worse, not better"
    elif better and worse:
        verdict = f"a mixed result: {join_words(better)} improved while {join_words(worse)} got worse"
    else:
        verdict = "it changed nothing measurable"
    sentence = (
        f"Temperature scaling of the {topic} ensemble (T = {fmt(t, 2)}, fitted on validation; T {how} "
        f"the probabilities) {join_words(changes)} on the test set: {verdict}."
    )
    out = [sentence]
    if worse:
        out.append(
            "A temperature fitted on validation transfers to test only when both splits come from the same "
            "distribution; where they differ (see the validation vs test shift), it can miscalibrate the test set."
        )
    return out


def target_findings(cal: Mapping) -> list[str]:
    """The ECE target line, with the value before scaling next to the value after it."""
    target = cal.get("target")
    entry = (cal.get("binary") or {}).get("ensemble")
    if not target or not entry:
        return [not_available("ECE target", "no target recorded")]
    before, after, limit = entry["before"].get("ece_15"), target.get("value"), target.get("limit")
    met = is_number(after) and is_number(limit) and after <= limit
    met_before = is_number(before) and is_number(limit) and before <= limit
    s = (
        f"The binary ensemble's test ECE (15 bins) is {fmt(after)} after temperature scaling: "
        f"the target ECE ≤ {fmt(limit, 2)} is {'met' if met else 'not met'}"
    )
    if met_before:
        s += f"; it was already met before scaling ({fmt(before)})"
    else:
        s += f"; before scaling it was {fmt(before)}"
    return [s + "."]


# --------------------------------------------------------------------------- thresholds and the val -> test shift
def prevalence_findings(binary: Mapping) -> list[str]:
    """Pneumonia share of validation vs test (PneumoniaMNIST), the root of the threshold collapse."""
    counts = (binary.get("meta") or {}).get("class_counts") or {}
    share = {}
    for split in ("val", "test"):
        c = counts.get(split) or {}
        n = sum(c.values())
        share[split] = c.get("pneumonia", 0) / n if n else None
    if share["val"] is None or share["test"] is None:
        return [not_available("Validation vs test prevalence", "no class counts")]
    d = direction(share["val"], share["test"], 3)
    rel = "lower than" if d == -1 else "higher than" if d == 1 else "the same as"
    return [
        f"Pneumonia makes up {pct(share['val'], 1)} of the validation split (a 9:1 split of the source train "
        f"folder) and {pct(share['test'], 1)} of the test split (the separate source test folder): "
        f"the test prevalence is {rel} the validation prevalence."
    ]


def threshold_findings(cal: Mapping, binary: Mapping | None = None) -> list[str]:
    """How the validation-chosen operating points of the ensemble held up on test, and the CNN's F1."""
    op = cal.get("operating_points") or {}
    points = op.get("thresholds") or {}
    out = []
    names = {"screening": "screening (recall ≥ 0.99 on validation)", "max_f1": "max-F1"}
    drops = []
    for key, name in names.items():
        p = points.get(key)
        if not p:
            continue
        vs, ts = p.get("val_specificity"), p["test"].get("specificity")
        d = direction(vs, ts, 2)
        word = "fell" if d == -1 else "rose" if d == 1 else "stayed"
        drops.append(
            (d, f"the {name} threshold's specificity {word} from {fmt(vs, 2)} on validation to {fmt(ts, 2)} on test")
        )
    if drops:
        name = str(op.get("ensemble") or "the ensemble").removeprefix("Ensemble: ")
        s = f"For the ensemble ({name}), {join_words([t for _, t in drops])}"
        if any(d == -1 for d, _ in drops):
            s += ": the validation-chosen thresholds did not carry over to the test set"
        out.append(s + ".")
    if points.get("0.5") and points.get("screening") and points.get("max_f1"):
        fn = {k: points[k]["test"].get("fn") for k in ("0.5", "screening", "max_f1")}
        fp = {k: points[k]["test"].get("fp") for k in ("0.5", "screening", "max_f1")}
        out.append(
            f"On test, missed pneumonia cases: {fn['0.5']} at threshold 0.5, {fn['screening']} at the screening "
            f"threshold, {fn['max_f1']} at max-F1; healthy children flagged: {fp['0.5']}, {fp['screening']} and "
            f"{fp['max_f1']}."
        )
    for entry in ((binary or {}).get("models") or {}).values():
        f05 = entry["summary"]["at_05"].get("f1", {}).get("mean")
        fval = entry["summary"]["at_val_threshold"].get("f1", {}).get("mean")
        v = improvement(f05, fval, lower_is_better=False)
        if v is None:
            continue
        word = "higher than" if v == 1 else "lower than" if v == -1 else "the same as"
        out.append(
            f"{entry['display_name']}: test F1 at the validation max-F1 threshold is {fmt(fval)}, {word} at "
            f"threshold 0.5 ({fmt(f05)}; mean over seeds)."
        )
    return out or [not_available("Operating points", "none recorded")]


# --------------------------------------------------------------------------- framing shortcut (notebook 05)
def shift_findings(three: Mapping) -> list[str]:
    """The aspect-ratio (framing) shortcut of the three-class task: what the pipeline does, what was measured."""
    shift = three.get("shift")
    if not shift:
        return [not_available("Framing shortcut", "no shift audit recorded")]
    terc = shift.get("normal_test_error_rate_by_aspect_tercile") or {}
    auroc = (shift.get("aspect_ratio") or {}).get("auroc_pneumonia") or {}
    rates = [terc.get(k) for k in ("narrow", "middle", "wide")]
    out = [
        "The pipeline cuts a centre square out of every X-ray (it does not squeeze it), but the crop keeps "
        "how the patient is framed, so the original shape can still act as a shortcut."
    ]
    if all(is_number(r) for r in rates):
        rising = rates[0] < rates[1] < rates[2]
        falling = rates[0] > rates[1] > rates[2]
        flat = len({round(r, 2) for r in rates}) == 1
        trend = (
            "rises" if rising else "falls" if falling else "is the same" if flat else "does not change monotonically"
        )
        out.append(
            f"The ensemble's error rate on normal test images {trend} with the width/height ratio of the original: "
            f"{pct(rates[0])} in the narrowest third, {pct(rates[1])} in the middle third, {pct(rates[2])} in the "
            "widest third."
        )
    if is_number(auroc.get("train")):
        strength = (
            "strongly"
            if abs(auroc["train"] - 0.5) >= 0.25
            else "partly"
            if abs(auroc["train"] - 0.5) >= 0.1
            else "hardly"
        )
        out.append(
            f"Aspect ratio alone {strength} separates normal from pneumonia: AUROC {fmt(auroc['train'], 2)} on train, "
            f"{fmt(auroc.get('test'), 2)} on test."
        )
    return out


# --------------------------------------------------------------------------- ensembles
def ensemble_findings(cal: Mapping | None = None, three: Mapping | None = None) -> list[str]:
    """The ensemble of each task against its best member, each ensemble named with its members."""
    out = []
    evm = ((cal or {}).get("ensemble_vs_members") or {}).get("binary") or {}
    ens = ((cal or {}).get("binary") or {}).get("ensemble") or {}
    label = ens.get("label")
    if label in evm:
        members = [m for m in ens.get("members", []) if m in evm]
        if members:
            best = max(members, key=lambda m: evm[m].get("auroc") or -1)
            v = improvement(evm[best].get("auroc"), evm[label].get("auroc"), lower_is_better=False)
            word = "higher than" if v == 1 else "lower than" if v == -1 else "equal to"
            out.append(
                f"{label}: test AUROC {fmt(evm[label].get('auroc'))}, {word} its best member "
                f"({best}, {fmt(evm[best].get('auroc'))})."
            )
    e3 = (three or {}).get("ensemble")
    if e3:
        out.append(
            f"The three-class ensemble of notebook 05 averages {len(e3['members'])} runs "
            f"({members_text(e3['members'])}): macro-F1 {fmt(e3['test'].get('macro_f1'))} on test."
        )
    return out or [not_available("Ensembles", "no ensemble recorded")]


# --------------------------------------------------------------------------- which model is best
def _ranked(entries: Sequence[tuple[str, Any]]) -> tuple[str, str, str] | None:
    """(``"ResNet18 has the highest"``, its value, the others): order and words come from the printed numbers."""
    ok = sorted(((n, v) for n, v in entries if is_number(v)), key=lambda e: -e[1])
    if not ok:
        return None
    top = [n for n, v in ok if fmt(v) == fmt(ok[0][1])]
    rest = ", ".join(f"{n} {fmt(v)}" for n, v in ok if n not in top)
    lead = f"{join_words(top)} {'share' if len(top) > 1 else 'has'} the highest"
    return lead, fmt(ok[0][1]), rest


def best_model_findings(binary: Mapping | None = None, three: Mapping | None = None) -> list[str]:
    """The model with the highest mean test score of each task (AUROC; macro-F1 for three classes)."""
    out = []
    for task, results, key, metric, label in (
        ("binary", binary, "at_05", "auroc", "AUROC"),
        ("three-class", three, "test", "macro_f1", "macro-F1"),
    ):
        models = (results or {}).get("models") or {}
        entries = [
            (e.get("display_name"), ((e.get("summary") or {}).get(key) or {}).get(metric, {}).get("mean"))
            for e in models.values()
        ]
        ranked = _ranked(entries)
        if not ranked:
            out.append(not_available(f"Best {task} model", "no models recorded"))
            continue
        lead, value, rest = ranked
        data = ((results or {}).get("meta") or {}).get("dataset", "")
        seeds = len(((results or {}).get("meta") or {}).get("seeds") or [])
        s = f"On {data} ({task}, official test split, mean over {seeds} seeds), {lead} test {label}, {value}"
        out.append(s + (f"; the others: {rest}." if rest else "."))
    return out


# --------------------------------------------------------------------------- budgets
def budget_label(entry: Mapping) -> str:
    """``"5-epoch budget; best epoch = last in 3/3 seeds"`` for one model entry of a task file."""
    runs = entry.get("runs") or []
    budget = (entry.get("protocol") or {}).get("max_epochs")
    last = sum(1 for r in runs if r.get("best_epoch") == r.get("epochs_run"))
    stopped = sum(1 for r in runs if is_number(budget) and r.get("epochs_run", budget) < budget)
    s = f"{budget}-epoch budget; best epoch = last in {last}/{len(runs)} seeds"
    return s + (f"; stopped early in {stopped}/{len(runs)}" if stopped else "")


def budget_findings(task: Mapping, task_name: str = "binary") -> list[str]:
    """Budgets differ between models: say so, and say whether a model was still improving."""
    models = task.get("models") or {}
    if not models:
        return [not_available(f"Training budgets ({task_name})", "no models recorded")]
    out = [f"{task_name.capitalize()}, {e['display_name']}: {budget_label(e)}." for e in models.values()]
    budgets = {(e.get("protocol") or {}).get("max_epochs") for e in models.values()}
    if len(budgets) > 1:
        out.append(
            f"The {task_name} models were trained with different epoch budgets, so differences between them mix "
            "architecture and budget; a model whose best epoch was its last was still improving when training stopped."
        )
    for e in models.values():
        budget = (e.get("protocol") or {}).get("max_epochs", 0)
        for r in e.get("runs") or []:
            if r.get("epochs_run", 0) < budget and r.get("best_epoch", 0) <= EARLY_EPOCH:
                out.append(
                    f"{task_name.capitalize()}, {e['display_name']} seed {r['seed']} kept epoch {r['best_epoch']} "
                    f"of {r['epochs_run']}: early stopping on a noisy validation loss ended it after an early epoch."
                )
    return out


# --------------------------------------------------------------------------- data coverage
def coverage_findings(data: Mapping | None, three: Mapping | None = None) -> list[str]:
    """Share of the official Kermany train folder behind the three-class results."""
    data = data or {}
    share = (data.get("kermany_coverage") or {}).get("train_share")
    if not is_number(share):
        share = ((three or {}).get("coverage") or {}).get("train_share")
    present = ((data.get("overlap_present") or {}).get("images") or {}).get("train")
    full = ((data.get("overlap_full") or {}).get("images") or {}).get("train")
    if not is_number(share):
        return [not_available("Kermany coverage", "no Kermany folder or manifest")]
    counts = f" ({present:,} of {full:,} images)" if is_number(present) and is_number(full) else ""
    if round(share, 2) >= 1:
        return [f"The three-class results use the full Kermany training folder{counts}."]
    return [f"The three-class results were trained on {pct(share)} of the Kermany training folder{counts}."]


# --------------------------------------------------------------------------- Grad-CAM (notebook 08)
def is_uniform_map(map_size: Sequence[int], border_mass_std: Any = None) -> bool:
    """A layer whose map has at most 2 cells per side, or whose maps all put the same share of their
    mass on the border, localises nothing: it is not shown as a comparison."""
    return bool(map_size) and max(map_size) <= 2 or (is_number(border_mass_std) and border_mass_std < UNIFORM_STD)


def uniform_layers(cams: Mapping) -> list[str]:
    """Keys (``task:model:layer``) whose Grad-CAM maps are uniform: not a comparison, only a warning."""
    layers = cams.get("layers") or {}
    keys = dict.fromkeys([*layers, *(cams.get("border_mass") or {})])
    return [
        k
        for k in keys
        if is_uniform_map(
            (layers.get(k) or {}).get("map_size") or [],
            (cams.get("border_mass") or {}).get(k, {}).get("border_mass_std"),
        )
    ]


def gradcam_findings(cams: Mapping) -> list[str]:
    """Which model, the FN example, uniform layers and the randomisation sanity check, in words."""
    out = []
    best = cams.get("best_binary") or {}
    if best:
        chosen = best.get("chosen_on")
        how = (
            f"chosen on {chosen}"
            if chosen
            else "this results file does not record how it was chosen; rerun notebook 08"
        )
        out.append(f"The binary maps use {best.get('display_name')} seed {best.get('seed')} ({how}).")
        if cams.get("examples", {}).get("FN") is None:
            out.append(
                f"At its threshold {fmt(best.get('threshold'))} ({best.get('threshold_rule')}) it misses no pneumonia "
                "case of the test set, so there is no false negative to show; the lowest-scored "
                "pneumonia case is shown instead, labelled as such."
            )
    for key in uniform_layers(cams):
        size = ((cams.get("layers") or {}).get(key) or {}).get("map_size")
        shape = "×".join(str(s) for s in size) if size else "?"
        out.append(f"{key} gives a uniform {shape} map: it localises nothing and is not used as a comparison.")
    uniform = set(uniform_layers(cams))
    for key, steps in (cams.get("sanity") or {}).items():
        if not steps:
            continue
        last = steps[-1].get("spearman")
        if not is_number(last):
            continue
        verdict = (
            "the map barely depends on the learned weights: the sanity check fails"
            if abs(last) >= SANITY_FAIL_RHO
            else "the map depends on the learned weights: the sanity check passes"
        )
        if key in uniform and abs(last) >= SANITY_FAIL_RHO:
            verdict += ", because a uniform map looks the same whatever the weights"
        out.append(
            f"{key}: rank correlation with the trained map after randomising every block is {fmt(last, 2)}; {verdict}."
        )
    return out or [not_available("Grad-CAM", "nothing recorded")]


# --------------------------------------------------------------------------- everything at once
def _read(profile: Profile, name: str) -> dict | None:
    try:
        return read_results(profile, name)
    except ResultsNotFoundError:
        return None


def key_findings(profile: Profile) -> dict[str, list[str]]:
    """Every finding of a profile's results, grouped by topic (missing files say "not available")."""
    r = {name: _read(profile, name) for name in ("data", "binary", "three_class", "calibration", "gradcam")}
    cal, binary, three = r["calibration"], r["binary"], r["three_class"]
    miss = {
        name: [not_available(name, f"results/{profile.name}/{name}.json not written yet")]
        for name in r
        if r[name] is None
    }
    return {
        "temperature scaling": (
            temperature_findings(cal, "binary") + temperature_findings(cal, "three_class") + target_findings(cal)
        )
        if cal
        else miss["calibration"],
        "thresholds and the validation vs test shift": (prevalence_findings(binary) if binary else [])
        + (threshold_findings(cal, binary) if cal else miss["calibration"]),
        "framing shortcut": shift_findings(three) if three else miss["three_class"],
        "ensembles": ensemble_findings(cal, three) if (cal or three) else miss["calibration"],
        "training budgets": (budget_findings(binary, "binary") if binary else miss["binary"])
        + (budget_findings(three, "three-class") if three else []),
        "data coverage": coverage_findings(r["data"], three),
        "best models": best_model_findings(binary, three) if (binary or three) else miss["binary"],
        "Grad-CAM": gradcam_findings(r["gradcam"]) if r["gradcam"] else miss["gradcam"],
    }


def markdown(sentences: Sequence[str], title: str | None = None) -> str:
    """A Markdown bullet list (with an optional bold title line) for ``display(Markdown(...))``."""
    head = f"**{title}**\n\n" if title else ""
    return head + "\n".join(f"* {s}" for s in sentences)
