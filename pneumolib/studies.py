"""Sentences about the committed studies in ``benchmarks/`` (framing, resolution, the framing check), for notebook 05.

The studies are measurements made once by a script (``scripts/framing_study.py``,
``scripts/resolution_study.py``), not results of a notebook run; as in :mod:`pneumolib.findings`, every
number and every direction word of a sentence comes from the study's JSON, compared as printed, and a
missing study gives a sentence saying how to make it.
"""

from __future__ import annotations

from collections.abc import Mapping

from .findings import fmt, improvement, is_number, join_words, not_available, pct

__all__ = ["framing_check", "framing_check_findings", "framing_findings", "resolution_findings"]


def framing_findings(study: Mapping | None) -> list[str]:
    """The framing study (``benchmarks/framing.json``, ``scripts/framing_study.py``): what validation chose,
    and how each framing did on test against the centre crop the course uses."""
    framings = (study or {}).get("framings") or {}
    chosen = (study or {}).get("chosen_on_validation")
    if chosen not in framings or "crop" not in framings:
        return [not_available("Framing study", "run python scripts/framing_study.py to make benchmarks/framing.json")]
    c, k = framings[chosen], framings["crop"]
    out = [
        f"Validation (patient-grouped, cut from the training folder) chose {chosen}: validation macro-F1 "
        f"{fmt(c['val_macro_f1'])}, against {fmt(k['val_macro_f1'])} for the centre crop."
    ]
    if chosen != "crop":
        recall = improvement(k["test_normal_recall"], c["test_normal_recall"], lower_is_better=False)
        f1 = improvement(k["test_macro_f1"], c["test_macro_f1"], lower_is_better=False)
        word = {1: "higher", -1: "lower", 0: "the same", None: "not comparable"}
        out.append(
            f"On test (the other folder) {chosen} had a {word[f1]} macro-F1 than crop ({fmt(c['test_macro_f1'])} vs "
            f"{fmt(k['test_macro_f1'])}) and a {word[recall]} normal recall ({fmt(c['test_normal_recall'])} vs "
            f"{fmt(k['test_normal_recall'])})."
        )
    gaps = {}
    for name, f in framings.items():
        e = f.get("normal_error_by_aspect") or {}
        if is_number(e.get("narrow")) and is_number(e.get("wide")):
            gaps[name] = e["wide"] - e["narrow"]
    if gaps:
        steepest, flattest = max(gaps, key=gaps.get), min(gaps, key=gaps.get)
        out.append(
            "Error on normal test images, widest third minus narrowest third of the originals: "
            + ", ".join(f"{n} {pct(g)}" for n, g in gaps.items())
            + f"; the steepest gradient (the most use of the framing cue) is {steepest}'s, the flattest {flattest}'s."
        )
        if steepest == chosen:
            out.append(
                "Validation preferred the framing that leans most on the shortcut: validation images share the "
                "training folder's framing, so a shortcut that works there also scores there. Only data framed "
                "differently (here the test folder) shows the cost, and the test set may not be used to choose."
            )
    best_test = max(framings, key=lambda n: framings[n]["test_macro_f1"])
    best_f1 = fmt(framings[best_test]["test_macro_f1"])
    out.append(f"Best test macro-F1: {best_test} ({best_f1}; reported, not used to choose).")
    return out


def resolution_findings(study: Mapping | None) -> list[str]:
    """The resolution study (``benchmarks/resolution.json``, ``scripts/resolution_study.py``): what more pixels did
    to validation and test macro-F1 per model, what they cost, and which size the course's rule chose."""
    rows = (study or {}).get("rows") or []
    choice = (study or {}).get("choice") or {}
    if not rows or choice.get("chosen") is None:
        return [
            not_available(
                "Resolution study", "run python scripts/resolution_study.py to make benchmarks/resolution.json"
            )
        ]
    out = []
    disagree = []
    for model in sorted({r["model"] for r in rows}):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["size"])
        n = len(mine[0]["seeds"])
        values = ", ".join(f"{fmt(r['val_macro_f1'])} at {r['size']} px" for r in mine)
        cost = " / ".join(f"{r['train_s'] / 60:.1f}" for r in mine)
        notes = {}
        for r in mine:
            if r.get("note"):
                notes.setdefault(r["note"], []).append(f"{r['size']} px")
        noted = "".join(f" ({join_words(sizes)}: {note})" for note, sizes in notes.items())
        out.append(
            f"{model} ({n} seed{'s' if n != 1 else ''}): validation macro-F1 {values}; "
            f"a training run takes {cost} min{noted}."
        )
        if len(mine) < 2:
            continue
        low, best_val = mine[0], max(mine, key=lambda r: r["val_macro_f1"])
        best_test = max(mine, key=lambda r: r["test_macro_f1"])
        val_gain = improvement(low["val_macro_f1"], best_val["val_macro_f1"], lower_is_better=False)
        test_gain = improvement(low["test_macro_f1"], best_test["test_macro_f1"], lower_is_better=False)
        if best_val is low or val_gain != 1:
            out.append(f"For {model}, no size above {low['size']} px raised validation macro-F1.")
        else:
            out.append(
                f"For {model}, {best_val['size']} px raised validation macro-F1 the most "
                f"({fmt(low['val_macro_f1'])} -> {fmt(best_val['val_macro_f1'])})."
            )
        if best_test is not low and test_gain == 1:
            out.append(
                f"On test (reported only), {best_test['size']} px gave {model} its best macro-F1 "
                f"({fmt(low['test_macro_f1'])} at {low['size']} px -> {fmt(best_test['test_macro_f1'])})."
            )
            if best_test["size"] != best_val["size"]:
                disagree.append(model)
        else:
            out.append(f"On test (reported only), no size above {low['size']} px raised {model}'s macro-F1.")
    per_size = choice.get("per_size") or {}
    chosen = choice["chosen"]
    proj = (per_size.get(str(chosen)) or per_size.get(chosen) or {}).get("projected_run_min")
    rule = (
        "the best validation macro-F1 among sizes whose projected first course run fits the time target"
        if choice.get("why", "").startswith("best")
        else "no size keeps the first course run within the time target, so the cheapest is kept"
    )
    out.append(
        f"The course's rule ({rule}) chose {chosen} px"
        + (f" (projected first run {proj:.0f} min)." if is_number(proj) else ".")
    )
    if disagree:
        out.append(
            f"Validation and test disagree on the best size for {join_words(disagree)}: validation images come from "
            "the training folder, so a gain that shows only on the other folder cannot be seen there, and the test set "
            "may still not be used to choose."
        )
    return out


def framing_check(before: Mapping, after: Mapping, framings: tuple[str, str]) -> dict:
    """Compare two measurements of ``scripts/tta_check.py`` (``tta.json``) made on full ``cpu`` runs that differ in
    the framing only (``framings``: before, after), e.g. the reference run (``crop``) and a run with the framing
    a study chose (``crop80``).

    For every model and ensemble of each task it keeps validation and test, plain and with hflip TTA, before and
    after, and which framing **validation** prefers (compared as printed, 3 decimals; with TTA where
    ``tta_check`` keeps it, plain otherwise: the same rule on both sides). Test is carried along, never used.
    """
    tasks = {}
    for task, res in after["tasks"].items():
        rows = {}
        for name, a in res["rows"].items():
            b = ((before.get("tasks") or {}).get(task) or {}).get("rows", {}).get(name)
            if b is None:
                continue
            side = {k: "tta" if r.get("keep_tta") else "plain" for k, r in (("before", b), ("after", a))}
            val = {k: r[side[k]]["val"] for k, r in (("before", b), ("after", a))}
            test = {k: r[side[k]]["test"] for k, r in (("before", b), ("after", a))}
            rows[name] = {
                "val": val,
                "test": test,
                "used": side,
                "val_change": improvement(val["before"], val["after"], lower_is_better=False),
            }
        tasks[task] = {"metric": res["metric"], "rows": rows}
    return {
        "profile": after.get("profile", "cpu"),
        "seeds": after.get("seeds"),
        "before": {"profile_hash": before.get("profile_hash"), "framing": framings[0]},
        "after": {"profile_hash": after.get("profile_hash"), "framing": framings[1]},
        "tasks": tasks,
    }


def _row_name(name: str) -> str:
    """A tta_check row name in a sentence: ``"ensemble: a + b (all seeds)"`` -> ``"the ensemble of a + b (...)"``."""
    return f"the ensemble of {name.removeprefix('ensemble: ')}" if name.startswith("ensemble: ") else name


def framing_check_findings(check: Mapping | None) -> list[str]:
    """The framing check (``benchmarks/framing-check/check.json``, ``scripts/framing_check.py``): did the framing
    the study chose on the custom CNN also raise validation for every model of the course?"""
    three = ((check or {}).get("tasks") or {}).get("three_class") or {}
    rows = three.get("rows") or {}
    if not rows:
        return [not_available("Framing check", "run python scripts/framing_check.py after a full cpu run")]
    a, b = check["after"]["framing"], check["before"]["framing"]
    word = {1: "raised", -1: "lowered", 0: "left unchanged", None: "did not measure"}
    parts = [
        f"{word[r['val_change']]} the validation macro-F1 of {_row_name(name)} "
        f"({fmt(r['val']['before'])} -> {fmt(r['val']['after'])})"
        for name, r in rows.items()
    ]
    seeds = check.get("seeds")
    runs = f"all models, {seeds} seed{'s' if seeds != 1 else ''}" if is_number(seeds) else "all models"
    out = [f"A full {check.get('profile', 'cpu')} run with {a} instead of {b} ({runs}): {a} " + "; ".join(parts) + "."]
    fell = [_row_name(name) for name, r in rows.items() if r["val_change"] == -1]
    if fell:
        out.append(
            f"So validation, the same rule that chose {a} on the custom CNN alone, rejects it for "
            f"{join_words(fell)}. A choice made on one model need not hold for others: check it on the "
            f"models that use it. The {check.get('profile', 'cpu')} profile keeps {b}."
        )
    else:
        out.append(f"Validation agrees for every model: {a} holds up beyond the model it was chosen on.")
    tests = [f"{_row_name(name)} {fmt(r['test']['before'])} -> {fmt(r['test']['after'])}" for name, r in rows.items()]
    out.append("Test macro-F1 (reported, not used): " + "; ".join(tests) + ".")
    return out
