"""Fill the README's notebook-time table from ``results/<profile>/run_metadata.json``.

The runner (``python -m pneumolib.run``) records each notebook's wall time; this script copies
those measurements between the ``<!-- times:start -->`` and ``<!-- times:end -->`` markers, so
the README never carries a hand-typed number.
"""

from __future__ import annotations

import json
import re
import sys

from pneumolib.results import project_root, write_text

PROFILES = ("smoke", "class", "cpu", "gpu")


def _machine(meta: dict) -> str:
    """``2 cores, AVX512 with bf16`` (the CPU kind is recorded by runs since issue 16)."""
    m = meta.get("machine", {})
    text = f"{m.get('cpu_count', '?')} cores"
    if m.get("cpu_capability"):
        text += f", {m['cpu_capability']}" + (" with native bf16" if m.get("bf16_native") else " without native bf16")
    return text


def _t(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


#: for entries recorded before the runner logged trained vs loaded: the runs each notebook trains
OWNED_RUNS = {
    "03_custom_cnn": ("binary", ("simple_cnn",)),
    "04_transfer_learning": ("binary", ("resnet18", "densenet121")),
    "05_three_class": ("three_class", ("simple_cnn", "resnet18", "densenet121")),
}


def owned_training_s(root, profile: str, notebook: str) -> float | None:
    """Training seconds recorded in the results file by the runs a notebook trains (None if unknown)."""
    if notebook not in OWNED_RUNS:
        return None
    name, models = OWNED_RUNS[notebook]
    path = root / "results" / profile / f"{name}.json"
    if not path.exists():
        return None
    entries = json.loads(path.read_text()).get("models", {}).values()
    return sum(r["train_time_s"] for e in entries if e.get("model") in models for r in e.get("runs", []))


def _cell(entry: dict | None, owned_s: float | None = None, trained_above: int = 0) -> str:
    """One notebook's time, saying whether it trained or loaded (never a cached rerun shown as a first run).

    ``trained_above``: runs trained by the earlier notebooks of the same course run (same commit); a notebook
    that loads only those is part of a first run of the course, not a rerun."""
    if not entry:
        return ""
    if entry.get("status") != "ok":
        return entry.get("status", "")
    wall = entry["wall_s"]
    if "runs_loaded" not in entry:  # recorded before the runner logged trained vs loaded runs
        if owned_s and wall < owned_s:  # faster than its own runs' training: it loaded them
            return f"rerun {_t(wall)} (loaded); first run ≈ {_t(wall + owned_s)}"
        return f"{_t(wall)}" + (" (trained)" if owned_s else "")
    if entry["runs_loaded"] == 0:
        return f"{_t(wall)} (first run" + (f", trained {entry['runs_trained']} runs)" if entry["runs_trained"] else ")")
    if entry["runs_loaded"] <= trained_above:
        trained = f"trained {entry['runs_trained']} runs, " if entry["runs_trained"] else ""
        return f"{_t(wall)} (first run of the course, {trained}loaded {entry['runs_loaded']} runs trained above)"
    first = wall + entry["train_s_loaded"]
    return f"rerun {_t(wall)} (loaded {entry['runs_loaded']} runs); first run ≈ {_t(first)}"


def training_totals(root) -> list[str]:
    """Training seconds recorded in the committed results (all seeds), per task file."""
    out = []
    for prof in PROFILES:
        parts = []
        for name in ("binary", "three_class"):
            path = root / "results" / prof / f"{name}.json"
            if path.exists():
                models = json.loads(path.read_text()).get("models", {})
                total = sum(r["train_time_s"] for m in models.values() for r in m.get("runs", []))
                parts.append(f"{name} {_t(total)}")
        if parts:
            out.append(f"`{prof}`: " + ", ".join(parts))
    return out


def coverage_line(root) -> str:
    """The share of the Kermany training folder behind the committed ``cpu`` results (from data.json)."""
    path = root / "results" / "cpu" / "data.json"
    if not path.exists():
        return ""
    data = json.loads(path.read_text())
    share = (data.get("kermany_coverage") or {}).get("train_share")
    present = ((data.get("overlap_present") or {}).get("images") or {}).get("train")
    full = ((data.get("overlap_full") or {}).get("images") or {}).get("train")
    if share is None:
        return ""
    counts = f" ({present:,} of {full:,} images)" if present and full else ""
    return (
        f"The committed `cpu` three-class results were trained on {share:.0%} of the Kermany training folder{counts}."
    )


def table(root) -> str:
    runs = {}
    for prof in PROFILES:
        path = root / "results" / prof / "run_metadata.json"
        if path.exists():
            runs[prof] = json.loads(path.read_text())
    if not runs:
        return "_No run recorded yet: run `python -m pneumolib.run --profile smoke` (or cpu)._"
    names = sorted({nb for meta in runs.values() for nb in meta.get("notebooks", {})})
    head = "| notebook | " + " | ".join(f"`{p}`" for p in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    above = {prof: (0, None) for prof in runs}  # (runs trained by earlier notebooks of one course run, commit)
    for nb in names:
        cells = []
        for prof, meta in runs.items():
            entry = meta.get("notebooks", {}).get(nb)
            trained, commit = above[prof]
            same_run = entry is not None and entry.get("git_commit") == commit
            cells.append(_cell(entry, owned_training_s(root, prof, nb), trained if same_run else 0))
            if entry is not None:
                start = 0 if entry.get("git_commit") != commit else trained
                above[prof] = (start + entry.get("runs_trained", 0), entry.get("git_commit"))
        lines.append(f"| `{nb}` | " + " | ".join(cells) + " |")
    machines = "; ".join(f"`{p}`: {_machine(m)}, {m.get('date', '?')[:10]}" for p, m in runs.items())
    lines += [
        "",
        f"As recorded by the last run of each notebook ({machines}). A first run (empty `build/runs/`) trains; "
        "a rerun loads the finished checkpoints. The runner records per notebook how many runs it trained and "
        "loaded; for a rerun, the first-run estimate adds the training seconds the loaded runs recorded.",
        "Training time recorded in the results files (all models and seeds): " + "; ".join(training_totals(root)) + ".",
        coverage_line(root),
    ]
    return "\n".join(lines)


def main() -> int:
    root = project_root()
    readme = root / "README.md"
    text = readme.read_text()
    new = re.sub(
        r"(<!-- times:start -->\n).*?(<!-- times:end -->)",
        lambda m: m.group(1) + table(root) + "\n" + m.group(2),
        text,
        flags=re.S,
    )
    write_text(readme, new)
    print(table(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
