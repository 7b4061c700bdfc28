"""Issue 17's targets against the committed ``cpu`` results: writes ``benchmarks/TARGETS.md`` and ``targets.json``.

Run it after a run of the ``cpu`` profile (``make PROFILE=cpu``, then ``python scripts/targets.py``).
Every value is read from ``results/cpu/*.json`` through the schema; nothing is typed by hand:

* three-class ensemble (05's members) test macro-F1 and normal-class recall, at argmax;
* binary: the best per-model mean test AUROC over 3 seeds (at threshold 0.5 AUROC does not depend on a threshold);
* binary ensemble screening point (07: threshold chosen on validation for recall >= 0.99): test specificity
  and recall;
* the first full run's wall time, per kind of CPU (native bf16 or not). A time is recorded only from a
  *first* run: notebooks 03-05 trained every run they used and loaded none. A later rerun (which loads
  the runs) keeps the first run's time as long as the profile has not changed.

The table also goes into the README, between ``<!-- targets:start -->`` and ``<!-- targets:end -->``.
"""

from __future__ import annotations

import json
import sys

from pneumolib.profiles import get_profile, profile_hash
from pneumolib.results import fill_block, project_root, write_json, write_text
from pneumolib.run import machine_kind
from pneumolib.schema import read_results

#: (key, what, target, direction): direction +1 means "at least", -1 "at most"
TARGETS = [
    ("three_class_ensemble_macro_f1", "three-class ensemble test macro-F1", 0.80, +1),
    ("three_class_normal_recall", "three-class ensemble test normal recall", 0.80, +1),
    ("binary_best_mean_auroc", "binary best mean test AUROC (3 seeds)", 0.980, +1),
    ("binary_screening_specificity", "binary ensemble screening point: test specificity at recall >= 0.99", 0.70, +1),
]
FIRST_RUN_GOAL_S = {True: 35 * 60, False: 90 * 60}  # native bf16: 35 min; AVX2 only: 90 min
FIRST_RUN_NOTEBOOKS = ("03_custom_cnn", "04_transfer_learning", "05_three_class")  # must train, not load


def quality(cpu) -> dict:
    """The quality measures, each with where it comes from."""
    three = read_results(cpu, "three_class", require=("ensemble",))["ensemble"]
    binary = read_results(cpu, "binary")["models"]
    best_key = max(binary, key=lambda k: binary[k]["summary"]["at_05"]["auroc"]["mean"])
    screening = read_results(cpu, "calibration", require=("operating_points",))["operating_points"]
    point = screening["thresholds"]["screening"]
    values = {
        "three_class_ensemble_macro_f1": three["test"]["macro_f1"],
        "three_class_normal_recall": three["test"]["per_class"]["normal"]["recall"],
        "binary_best_mean_auroc": binary[best_key]["summary"]["at_05"]["auroc"]["mean"],
        "binary_screening_specificity": point["test"]["specificity"],
    }
    notes = {
        "three_class_ensemble_macro_f1": f"{len(three['members'])} members, argmax",
        "three_class_normal_recall": "same ensemble",
        "binary_best_mean_auroc": best_key,
        "binary_screening_specificity": (
            f"{screening['ensemble']}, threshold {point['threshold']:.3f} ({point['rule']}, chosen on "
            f"{point['chosen_on']}); test recall {point['test']['recall']:.3f}"
        ),
    }
    rows = []
    for key, what, target, direction in TARGETS:
        value = values[key]
        rows.append(
            dict(key=key, what=what, target=target, value=value, note=notes[key], met=(value - target) * direction >= 0)
        )
    return {"rows": rows, "screening_recall": point["test"]["recall"]}


def first_run(meta: dict) -> dict | None:
    """This run's wall time if it was a first run (notebooks 03-05 trained and loaded nothing), else None."""
    notebooks = meta["notebooks"]
    if len(notebooks) != 9 or any(v["status"] != "ok" for v in notebooks.values()):
        return None
    for name in FIRST_RUN_NOTEBOOKS:
        entry = notebooks.get(name, {})
        if entry.get("runs_loaded", 1) != 0 or entry.get("runs_trained", 0) == 0:
            return None
    wall = sum(v["wall_s"] for v in notebooks.values())
    native = bool(meta["machine"].get("bf16_native"))
    return dict(
        kind=machine_kind(meta["machine"]),
        commit=meta["git"].get("commit"),
        date=meta["date"],
        wall_s=round(wall, 1),
        goal_s=FIRST_RUN_GOAL_S[native],
        met=wall <= FIRST_RUN_GOAL_S[native],
        notebook_wall_s={k: v["wall_s"] for k, v in notebooks.items()},
    )


def projections(root, meta: dict) -> list[dict]:
    """Projected first runs (scripts/project_first_run.py) made from this reference run, one per benchmark folder."""
    found = []
    for path in sorted((root / "benchmarks").glob("*/projection.json")):
        p = json.loads(path.read_text())
        if p.get("reference_commit") != meta["git"].get("commit"):
            continue  # projected from an older reference run
        m = p["target_machine"]
        limits = ", ".join(f"{k}={v}" for k, v in (m.get("isa_limits") or {}).items())
        emulated = f" (emulated: {limits})" if limits else ""
        found.append(
            dict(
                source=path.parent.relative_to(root).as_posix(),
                native_bf16=p["target_mode"].startswith("bf16"),
                projected_s=round(p["projected_total_s"], 1),
                machine=f"{m.get('cores')} cores, {m.get('cpu_capability')}{emulated}",
            )
        )
    return found


def render(record: dict) -> str:
    lines = [
        "# Targets (generated by scripts/targets.py; do not edit)",
        "",
        f"Profile `cpu` ({record['profile_hash']}): PneumoniaMNIST 28 px (binary) and the Kermany folder at 64 px "
        "(three classes), official test sets, 3 seeds, trained from scratch.",
        "",
        "| measure | target | measured | met | from |",
        "|---|---|---|---|---|",
    ]
    for r in record["quality"]["rows"]:
        miss = "" if r["met"] else f" (short by {abs(r['value'] - r['target']):.3f})"
        lines.append(
            f"| {r['what']} | >= {r['target']:.2f} | {r['value']:.3f} | {'yes' if r['met'] else 'no' + miss} | "
            f"{r['note']} |"
        )
    for native in (True, False):
        goal = FIRST_RUN_GOAL_S[native] // 60
        runs = [t for t in record["first_runs"].values() if t["goal_s"] == FIRST_RUN_GOAL_S[native]]
        label = "2 cores with native bf16" if native else "2 AVX2-only cores"
        projected = [p for p in record.get("projections", []) if p["native_bf16"] == native]
        if not runs and projected:
            for p in projected:
                over = p["projected_s"] - FIRST_RUN_GOAL_S[native]
                verdict = "no (projected over by" if over > 0 else "projected yes (under by"
                lines.append(
                    f"| first full `cpu` run, empty cache, {label} | <= {goal} min | not measured; **projected** "
                    f"{p['projected_s'] / 60:.0f} min | {verdict} {abs(over) / 60:.0f} min) | {p['source']}: "
                    f"{p['machine']}, scaled from the reference run by measured step img/s |"
                )
        elif not runs:
            lines.append(f"| first full `cpu` run, empty cache, {label} | <= {goal} min | not measured | - | - |")
        for t in runs:
            verdict = "yes" if t["met"] else f"no (over by {(t['wall_s'] - t['goal_s']) / 60:.1f} min)"
            lines.append(
                f"| first full `cpu` run, empty cache, {label} | <= {goal} min | {t['wall_s'] / 60:.1f} min | "
                f"{verdict} | {t['kind']}, commit {(t['commit'] or '?')[:7]}, {t['date'][:10]} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    root, cpu = project_root(), get_profile("cpu")
    meta = read_results(cpu, "run_metadata")
    if meta["profile_hash"] != profile_hash(cpu):
        sys.exit("results/cpu was made under other cpu settings: run the cpu profile first (make PROFILE=cpu)")
    path = root / "benchmarks" / "targets.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    first_runs = old.get("first_runs", {}) if old.get("profile_hash") == meta["profile_hash"] else {}
    measured = first_run(meta)
    if measured:
        first_runs[measured["kind"]] = measured
    record = dict(
        profile_hash=meta["profile_hash"],
        quality=quality(cpu),
        first_runs=first_runs,
        projections=projections(root, meta),
    )
    write_json(path, record)
    text = render(record)
    write_text(root / "benchmarks" / "TARGETS.md", text)
    if (root / "README.md").exists():  # the table (without its title) between the README's markers
        fill_block(root / "README.md", "targets", text.split("\n", 2)[2])
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
