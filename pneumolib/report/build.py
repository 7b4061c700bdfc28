"""The build: the template's context, where the outputs go, the Typst PDF, and the command line."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..findings import key_findings
from ..profiles import PROFILES, Profile, get_profile
from ..results import atomic_write_bytes, project_root, write_json, write_text
from .blocks import ReportError, blocks_to_markdown, heading, make_section
from .card import model_card_blocks
from .context import METADATA_FILE, RESULT_FILES, Results, cover
from .sections import section_augmentation, section_calibration, section_data, section_gradcam
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
    sections = [
        section_data(res, data),
        section_augmentation(res, data),
        section_binary(res, binary, data),
        section_three_class(res, three, data),
        section_hierarchical(res, hier, data),
        section_calibration(res, cal),
        section_gradcam(res, cams),
        make_section(
            "09",
            "Ethics, limitations and the model card",
            [res.notebook("09")],
            [heading("Model card")]
            + [dict(b, level=b["level"] + 1) if b["kind"] == "heading" else b for b in card[1:]],
        ),
    ]
    found = key_findings(profile)
    return {
        "profile": res.name,
        "profile_hash": res.hash,
        "cover": cover(res),
        "abstract": abstract(found),
        "key_findings": [{"title": title[0].upper() + title[1:], "items": items} for title, items in found.items()],
        "sections": sections,
        "model_card_title": card[0]["text"],
    }, card


ABSTRACT_LEAD = (
    "PneumoLab trains small convolutional networks from scratch to tell normal from pneumonia "
    "(PneumoniaMNIST) and normal from bacterial and viral pneumonia (Kermany), and reports every result "
    "with its data, pretraining, threshold and seeds."
)


def abstract(found: dict[str, list[str]]) -> str:
    """A short abstract: a number-free lead, then the first generated finding of the main topics."""
    topics = {  # topic -> which of its sentences (the one with the measured effect)
        "data coverage": 0,
        "thresholds and the validation vs test shift": 1,
        "temperature scaling": 0,
        "framing shortcut": 1,
    }
    picked = []
    for topic, i in topics.items():
        items = found.get(topic) or []
        sentence = items[min(i, len(items) - 1)] if items else ""
        if sentence and "not available" not in sentence:
            picked.append(sentence)
    return " ".join([ABSTRACT_LEAD, *picked])


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
