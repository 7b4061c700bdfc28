"""Generic rendering of results whose layout :mod:`pneumolib.report.sections` does not know in detail:
every number is shown as stored rather than dropped."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .blocks import Skipped, fmt_mean_std, fmt_num, humanize, is_num, make_section, note_block, para, table
from .context import Results, figures
from .tables import MULTI_METRICS, multiclass_rows, skipped_notes


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _is_stat(v: Any) -> bool:
    return isinstance(v, dict) and "mean" in v and set(v) <= {"mean", "std", "n", "min", "max"}


def _cell(v: Any) -> str:
    if _is_stat(v):
        return fmt_mean_std(v)
    if isinstance(v, list) and len(v) == 2 and all(is_num(x) for x in v):
        return f"[{fmt_num(v[0])}, {fmt_num(v[1])}]"
    if isinstance(v, str):
        return v if len(v) <= 80 else v[:77] + "..."
    return fmt_num(v) if _is_scalar(v) else ""


def _flat(d: Mapping, prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Scalar (or mean/std) leaves of a nested dict, keyed by a dotted path, down to ``depth`` levels."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if _is_scalar(v) or _is_stat(v) or (isinstance(v, list) and len(v) == 2 and all(is_num(x) for x in v)):
            out[key] = v
        elif isinstance(v, dict) and depth > 1:
            out.update(_flat(v, key + " · ", depth - 1))
    return out


def dict_table(name: str, value: Any, max_rows: int = 24, max_cols: int = 9) -> dict | None:
    caption = humanize(name) + "."
    if isinstance(value, dict) and value:
        if all(_is_scalar(v) or _is_stat(v) for v in value.values()):
            rows = [[humanize(k), _cell(v)] for k, v in list(value.items())[:max_rows]]
            return table(["Quantity", "Value"], rows, caption=caption)
        if all(isinstance(v, dict) for v in value.values()):
            flats = {k: _flat(v) for k, v in value.items()}
            cols: list[str] = []
            for f in flats.values():
                cols += [c for c in f if c not in cols]
            if not cols:
                return None
            cols = cols[:max_cols]
            rows = [[humanize(k)] + [_cell(f.get(c)) for c in cols] for k, f in list(flats.items())[:max_rows]]
            return table([""] + [humanize(c) for c in cols], rows, caption=caption, size=7.5)
        flat = _flat(value, depth=3)
        if flat:
            rows = [[humanize(k), _cell(v)] for k, v in list(flat.items())[:max_rows]]
            return table(["Quantity", "Value"], rows, caption=caption)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        flats = [_flat(v) for v in value]
        cols: list[str] = []
        for f in flats:
            cols += [c for c in f if c not in cols]
        cols = cols[:max_cols]
        if cols:
            rows = [[_cell(f.get(c)) for c in cols] for f in flats[:max_rows]]
            return table([humanize(c) for c in cols], rows, caption=caption, size=7.5)
    return None


def extra_blocks(results: dict, skip: Iterable[str] = ("meta",)) -> list[dict]:
    """Tables for every top-level entry of a results file (scalars grouped into one table)."""
    skip = set(skip)
    blocks: list[dict] = []
    scalars = {k: v for k, v in results.items() if k not in skip and (_is_scalar(v) or _is_stat(v))}
    if scalars:
        blocks.append(table(["Quantity", "Value"], [[humanize(k), _cell(v)] for k, v in scalars.items()],
                            caption="Summary."))
    for key, value in results.items():
        if key in skip or key in scalars:
            continue
        if key == "models" and isinstance(value, dict):
            for mkey, entry in value.items():
                t = dict_table(entry.get("display_name", mkey) if isinstance(entry, dict) else mkey,
                               {k: v for k, v in entry.items() if k not in ("runs",)} if isinstance(entry, dict)
                               else entry)
                if t:
                    blocks.append(t)
            continue
        t = dict_table(key, value)
        if t:
            blocks.append(t)
    return blocks


def section_generic(res: Results, number: str, title: str, results: dict | Skipped) -> dict:
    nbs = [res.notebook(number)]
    if isinstance(results, Skipped):
        return make_section(number, title, nbs, [], results)
    blocks: list[dict] = []
    meta = results.get("meta") or {}
    if meta.get("dataset"):
        blocks.append(para(f"{meta['dataset']}; seeds {', '.join(map(str, meta.get('seeds') or []))}.",
                           lead="Setting."))
    if isinstance(results.get("models"), dict) and any("summary" in e for e in results["models"].values()):
        summary_rows, class_rows = multiclass_rows(results)
        if any("test" in e.get("summary", {}) for e in results["models"].values()):
            blocks.append(table(["Model", "Pretraining", "Input"] + list(MULTI_METRICS.values())
                                + ["ms / image", "Seeds"], summary_rows,
                                caption="Test metrics (mean ± std over seeds)."))
        if class_rows:
            blocks.append(table(["Model", "Class", "Precision", "Recall", "F1"], class_rows,
                                caption="Per-class test metrics (mean ± std over seeds).", first_cols=2))
        blocks.extend(extra_blocks(results, skip=("meta", "models", "skipped")))
    else:
        blocks.extend(extra_blocks(results, skip=("meta", "skipped")))
    blocks.extend(skipped_notes(results))
    return make_section(number, title, nbs, blocks + figures(res, [number]))


def tolerant(render, res: Results, number: str, title: str, results: dict | Skipped) -> dict:
    """``render`` the section; if the file's layout is not the one it knows, show the file generically."""
    try:
        return render(res, results)
    except (TypeError, AttributeError, KeyError, ValueError):
        section = section_generic(res, number, title, results)
        section["blocks"].insert(0, note_block("The layout of this results file is not the one pneumolib.report "
                                               "knows: its numbers are shown as stored."))
        return section
