"""The build: the template's context, where the outputs go, the Typst PDF, and the command line."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..findings import key_findings
from ..profiles import PROFILES, Profile, get_profile
from ..results import atomic_write_bytes, project_root, write_json, write_text
from .blocks import ReportError, blocks_to_markdown, bullets, para
from .card import limitations, model_card_blocks
from .context import METADATA_FILE, RESULT_FILES, Results, cover
from .paper import (
    AUTHORS,
    NOTICE,
    REFERENCES,
    abstract,
    conclusions,
    discussion_blocks,
    key_findings_list,
    methods_blocks,
    per_run_blocks,
    place_figures,
    results_extra,
)
from .sections import (
    section_augmentation,
    section_calibration,
    section_data,
    section_gradcam,
    section_operating_points,
)
from .task_sections import section_binary, section_hierarchical, section_three_class

REFERENCE_PROFILE = "cpu"  # its report is committed as report/report.pdf
TEMPLATE_NAME = "report.typ"


def build_context(profile: Profile) -> dict:
    """Everything the template draws, as JSON-ready data (raises :class:`ReportError` on bad results)."""
    return _context_and_card(profile)[0]


def _context_and_card(profile: Profile) -> tuple[dict, list[dict]]:
    """The template's context and the model card's blocks, from one reading of the results."""
    res = Results(profile)
    if res.run_meta is None and not (res.dir / METADATA_FILE).exists():
        res.problems.append(
            f"{res.rel(res.dir / METADATA_FILE)} missing: run the notebooks with "
            f"python -m pneumolib.run --profile {res.name} (it records the commit, machine and "
            "wall time of every notebook for the cover page)"
        )
        res.missing = True
    elif res.run_meta and res.run_meta.get("profile_hash") not in (None, res.hash):
        res.problems.append(
            f"{res.rel(res.dir / METADATA_FILE)} comes from a run with profile settings "
            f"{res.run_meta['profile_hash']}, profile {res.name!r} is now {res.hash}: rerun "
            f"python -m pneumolib.run --profile {res.name}"
        )
    owners = {number for number, _ in RESULT_FILES.values()}
    for name, entry in sorted(((res.run_meta or {}).get("notebooks") or {}).items()):
        if entry.get("status") == "failed" and name[:2] not in owners:  # owners are checked with their file
            res.problems.append(
                f"notebook {name} failed in the last run ({entry.get('reason')}): fix it and rerun "
                f"({res.run_command(name[:2])})."
            )
    data, binary = res.get("data"), res.get("binary")
    three, hier = res.get("three_class"), res.get("hierarchical")
    cal, cams = res.get("calibration"), res.get("gradcam")
    card = model_card_blocks(profile, res, raise_problems=False)
    res.raise_problems()
    found = key_findings(profile)
    facts = cover(res)
    placed, extra_figures = place_figures(res)
    extra = results_extra(cal, cams)
    appendix_tables: list[dict] = []

    def part(section: dict, level: int, figures_key: str = "", title: str = "", more: list | None = None) -> dict:
        """A section for the template: its main-text blocks, generated sentences and figures; detail
        tables (``place: "appendix"``) go to the appendix under the section's title."""
        main = [b for b in section["blocks"] if b.get("place") != "appendix"]
        detail = [b for b in section["blocks"] if b.get("place") == "appendix"]
        if detail:
            appendix_tables.append(make_entry(2, title or section["title"], detail, appendix=True))
        blocks = main + (more or []) + (placed.get(figures_key, []) if section["status"] == "ok" else [])
        return make_entry(
            level, title or section["title"], blocks, section["notebooks"], section["status"], section["reason"]
        )

    settings = next((v for k, v in facts["facts"] if k == "Settings"), "")
    data_section = section_data(res, data)
    coverage = para(" ".join(found.get("data coverage") or []), lead="Data used for the three-class task.")
    results = [
        part(section_binary(res, binary, data), 2, "binary"),
        part(section_three_class(res, three, data), 2, "three_class"),
        part(section_hierarchical(res, hier, data), 2, "hierarchical"),
        part(section_calibration(res, cal), 2, "calibration", more=extra["calibration"]),
        part(section_operating_points(res, cal), 2, "operating_points"),
        part(section_gradcam(res, cams), 2, "gradcam", "Grad-CAM: where the models look", more=extra["gradcam"]),
    ]
    part(section_augmentation(res, data), 2)  # only its cost table is shown, in the appendix
    main = [
        make_entry(1, "Introduction", prose="introduction"),
        part(data_section, 1, "data", "Data", more=[coverage]),
        make_entry(1, "Methods", methods_blocks(res, binary, three, hier, cal, settings), prose="methods"),
        make_entry(1, "Results", prose="results"),
        *results,
        make_entry(1, "Discussion", discussion_blocks(found, three, placed), prose="discussion"),
        make_entry(
            1,
            "Ethics and responsible use",
            [bullets(limitations(data if isinstance(data, dict) else None, res.profile), lead="Limitations:")],
            prose="ethics",
        ),
        make_entry(1, "Conclusions", [bullets(conclusions(found))], prose="conclusions"),
    ]
    appendix = [
        make_entry(1, "Per-run results and audit details", appendix=True, prose="appendix-runs"),
        make_entry(2, "Runs", per_run_blocks(binary, three), appendix=True),
        *appendix_tables,
        make_entry(1, "Run metadata", [{"kind": "facts", "rows": facts["facts"]}, facts["notebooks"]], appendix=True),
        make_entry(1, "Additional figures", extra_figures, appendix=True, prose="appendix-figures"),
    ]
    return {
        "profile": res.name,
        "profile_hash": res.hash,
        "front": {
            "title": facts["title"],
            "subtitle": facts["subtitle"],
            "authors": AUTHORS,
            "notice": NOTICE,
            "line": front_line(res, facts),
            "abstract": abstract(found, binary, three),
            "key_findings": key_findings_list(found),
        },
        "sections": main,
        "appendix": appendix,
        "references": REFERENCES,
        "model_card_title": card[0]["text"],
    }, card


def make_entry(
    level: int,
    title: str,
    blocks: list[dict] | None = None,
    notebooks: list[str] | None = None,
    status: str = "ok",
    reason: str = "",
    prose: str = "",
    appendix: bool = False,
) -> dict:
    """One heading of the paper with its blocks (``prose``: the id of number-free text in the template)."""
    return {
        "level": level,
        "title": title,
        "blocks": blocks or [],
        "notebooks": notebooks or [],
        "status": status,
        "reason": reason,
        "prose": prose,
        "appendix": appendix,
    }


def front_line(res: Results, facts: dict) -> str:
    meta = res.run_meta or {}
    commit = ((meta.get("git") or {}).get("commit") or "")[:12]
    date = (meta.get("date") or "")[:10]
    parts = [f"Profile {res.name} ({res.hash})"]
    if date:
        parts.append(f"notebooks run {date}")
    if commit:
        parts.append(f"commit {commit}")
    return " · ".join(parts)


def report_paths(profile: Profile) -> dict[str, Path]:
    """Where the PDF and the model card go: ``report/`` for the reference profile, else ``report/<profile>/``."""
    name = profile.name
    root = project_root()
    out = root / "report" if name == REFERENCE_PROFILE else root / "report" / name
    return {
        "pdf": out / "report.pdf",
        "model_card": out / "MODEL_CARD.md",
        "context": root / "build" / "report" / name / "context.json",
    }


def _template_dir() -> Path:
    """``report/`` holding report.typ: in the project root if it has one, else next to this package."""
    for candidate in (project_root() / "report", Path(__file__).resolve().parents[2] / "report"):
        if (candidate / TEMPLATE_NAME).is_file():
            return candidate
    raise ReportError(
        f"Typst template report/{TEMPLATE_NAME} not found (looked in {project_root() / 'report'} "
        f"and next to the pneumolib package)"
    )


def build_report(profile: Profile, output: Path | None = None) -> Path:
    """Build the PDF (and MODEL_CARD.md) for ``profile`` from its results; return the PDF's path."""
    import typst  # only the PDF needs Typst: the context and the model card work without it

    context, card = _context_and_card(profile)
    paths = report_paths(profile)
    pdf = Path(output) if output else paths["pdf"]
    root = project_root()
    work = paths["context"].parent
    write_json(paths["context"], context)  # creates the folder the template is copied into
    # Typst only reads files under its root: the template is copied next to the context.
    for typ in _template_dir().glob("*.typ"):
        shutil.copyfile(typ, work / typ.name)
    write_text(paths["model_card"], blocks_to_markdown(card))
    try:
        data, warnings = typst.compile_with_warnings(
            str(work / TEMPLATE_NAME),
            root=str(root),
            ignore_system_fonts=True,  # embedded fonts: same PDF anywhere
            sys_inputs={"context": "/" + paths["context"].relative_to(root).as_posix()},
        )
    except Exception as err:  # typst.TypstError: show the template's message
        raise ReportError(f"Typst could not compile {work / TEMPLATE_NAME}: {err}") from err
    for warning in warnings or []:
        print(f"typst warning: {getattr(warning, 'message', warning)}", file=sys.stderr)
    atomic_write_bytes(pdf, data)
    for path in (pdf, paths["model_card"]):
        path.chmod(0o644)
    return pdf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pneumolib.report", description="Build the PDF report and MODEL_CARD.md from results/<profile>/."
    )
    p.add_argument(
        "--profile",
        default=REFERENCE_PROFILE,
        choices=sorted(PROFILES),
        help=f"run profile (default: {REFERENCE_PROFILE}, the committed reference report)",
    )
    p.add_argument("--output", type=Path, default=None, help="PDF path (default: report/[<profile>/]report.pdf)")
    args = p.parse_args(argv)
    profile = get_profile(args.profile)  # resolved once, here
    try:
        pdf = build_report(profile, args.output)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    paths = report_paths(profile)
    print(f"report: {pdf}\nmodel card: {paths['model_card']}\ncontext: {paths['context']}")
    return 0
