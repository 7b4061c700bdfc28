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
    for nb in names:
        cells = []
        for meta in runs.values():
            entry = meta.get("notebooks", {}).get(nb)
            if not entry:
                cells.append("")
            elif entry.get("status") != "ok":
                cells.append(entry.get("status", ""))
            else:
                s = entry["wall_s"]
                cells.append(f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min")
        lines.append(f"| `{nb}` | " + " | ".join(cells) + " |")
    machines = "; ".join(f"`{p}`: {_machine(m)}, {m.get('date', '?')[:10]}" for p, m in runs.items())
    lines += [
        "",
        f"As recorded by the last run of each notebook ({machines}). A first run trains; a rerun loads "
        "the finished checkpoints and is much faster, so a notebook rerun after a fix shows the shorter time.",
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
