"""pneumolib.report: the PDF and the model card are built from the results files, and only from them.

Every test writes a tiny fake results set into the temporary project root of ``conftest.py``
(``PNEUMOLAB_ROOT``); the real ``results/`` and ``report/`` are never touched. Distinctive
numbers (0.8771, 0.4321, ...) let us check that what the report shows comes from the files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import write_fake_results
from PIL import Image

from pneumolib import report
from pneumolib.profiles import FRAMING_DESCRIPTIONS, get_profile, profile_hash
from pneumolib.report.context import training_texts
from pneumolib.results import project_root, write_json

PROFILE = get_profile("smoke")
PROFILE_HASH = profile_hash(PROFILE)
REPO_TEMPLATE = Path(report.__file__).resolve().parents[2] / "report" / "report.typ"


def write_results_and_figure(root: Path, skip_three_class: bool = False) -> Path:
    """The fake results set of tests/fakes.py (written through the schema) and one figure."""
    write_fake_results(PROFILE, skip_three_class)
    fig = root / "figures" / PROFILE.name
    fig.mkdir(parents=True)
    Image.fromarray(np.full((20, 40), 128, dtype=np.uint8)).save(fig / "03_custom_cnn_curves.png")
    return root / "results" / PROFILE.name


@pytest.fixture
def fake(isolated_root):
    """The fake results, and the repository's template copied into the temporary project root."""
    (isolated_root / "report").mkdir()
    shutil.copyfile(REPO_TEMPLATE, isolated_root / "report" / "report.typ")
    return write_results_and_figure(isolated_root)


def test_context_holds_formatted_numbers_from_the_results(fake):
    ctx = report.build_context(PROFILE)
    text = json.dumps(ctx, ensure_ascii=False)
    assert "0.877 ± 0.010" in text  # binary accuracy mean ± std, formatted
    assert "0.432 ± 0.010" in text  # the fake AUROC
    assert "0.400 ± 0.100" in text  # mean ± std of the per-seed validation thresholds 0.3/0.5/0.4
    assert "4,242" in text  # shared patient ids from data.json
    assert "ImageNet weights unavailable offline" in text  # a skipped arm says why
    assert [e["title"] for e in ctx["sections"] if e["level"] == 1] == [
        "Introduction",
        "Data",
        "Methods",
        "Results",
        "Discussion",
        "Ethics and responsible use",
        "Conclusions",
    ]
    figures = [b for s in ctx["sections"] for b in s["blocks"] if b["kind"] == "figure"]
    assert [f["path"] for f in figures] == [f"/figures/{PROFILE.name}/03_custom_cnn_curves.png"]
    assert f"({PROFILE_HASH})" in ctx["front"]["line"]
    facts = next(b for e in ctx["appendix"] for b in e["blocks"] if b["kind"] == "facts")  # run metadata: appendix
    assert facts["rows"][0][1].endswith(f"({PROFILE_HASH})")


def test_anchor_rows_carry_the_same_labels_as_ours(fake):
    ctx = report.build_context(PROFILE)
    binary = next(s for s in ctx["sections"] if s["title"].startswith("Binary"))
    anchors = next(b for b in binary["blocks"] if b["kind"] == "table" and b["header"][0] == "Source · model")
    # a label every row shares (here the split) moves into the caption, named
    assert anchors["header"][1:5] == ["Data", "Pretraining", "Threshold", "Seeds"]
    assert "Split of every row: official test (n = 624)" in anchors["caption"]
    ours, theirs = anchors["rows"][0], anchors["rows"][1:]
    assert ours[1:5] == ["PneumoniaMNIST 28 px", "none", "0.5", "3"]
    assert theirs and all(len(r) == len(ours) for r in theirs)


def test_build_writes_pdf_and_model_card(fake, isolated_root):
    pdf = report.build_report(PROFILE)
    assert pdf == isolated_root / "report" / PROFILE.name / "report.pdf"
    assert pdf.read_bytes()[:4] == b"%PDF"
    card = (isolated_root / "report" / PROFILE.name / "MODEL_CARD.md").read_text()
    assert "0.568 ± 0.010" in card  # virus F1 from three_class.json: per-class numbers
    assert "Educational" in card or "educational" in card


def test_model_card_has_per_class_numbers(fake):
    card = report.model_card(PROFILE)
    assert "| ResNet18 (scratch) | virus | 0.700 ± 0.010 | 0.600 ± 0.010 | 0.568 ± 0.010 |" in card
    assert "0.610 ± 0.010" in card  # binary: normal recall = specificity
    assert "0.136" in card  # calibration: ECE before temperature scaling
    assert "not a clinical device" in card
    assert f"Each Kermany X-ray becomes {FRAMING_DESCRIPTIONS[PROFILE.framing]}" in card  # the profile's framing


def test_missing_results_name_the_notebook(fake):
    (fake / "three_class.json").unlink()
    with pytest.raises(report.MissingResultsError) as err:
        report.build_context(PROFILE)
    msg = str(err.value)
    assert f"results/{PROFILE.name}/three_class.json missing" in msg
    assert f"05_three_class (python -m pneumolib.run --profile {PROFILE.name} --only 05)" in msg
    assert isinstance(err.value, FileNotFoundError)  # notebooks can catch it as such


def test_skipped_notebook_is_reported_not_invented(isolated_root):
    (isolated_root / "report").mkdir()
    shutil.copyfile(REPO_TEMPLATE, isolated_root / "report" / "report.typ")
    write_results_and_figure(isolated_root, skip_three_class=True)
    ctx = report.build_context(PROFILE)
    three = next(s for s in ctx["sections"] if s["title"].startswith("Three classes"))
    assert three["status"] == "skipped" and "Kermany" in three["reason"] and three["blocks"] == []
    assert "Three-class.** skipped: needs the Kermany" in report.model_card(PROFILE)


def test_stale_profile_hash_is_refused(fake):
    data = json.loads((fake / "binary.json").read_text())
    data["meta"]["profile_hash"] = "000000000000"
    write_json(fake / "binary.json", data)
    with pytest.raises(report.StaleResultsError, match=r"binary\.json is stale.*Rerun notebook 03_custom_cnn"):
        report.build_context(PROFILE)


def test_failed_notebook_is_refused(fake):
    meta = json.loads((fake / "run_metadata.json").read_text())
    meta["notebooks"]["04_transfer_learning"] |= {"status": "failed", "reason": "cell 3: boom"}
    write_json(fake / "run_metadata.json", meta)
    with pytest.raises(report.ReportError, match=r"04_transfer_learning failed in the last run \(cell 3: boom\)"):
        report.build_context(PROFILE)


def test_missing_run_metadata_says_how_to_make_it(fake):
    (fake / "run_metadata.json").unlink()
    with pytest.raises(report.MissingResultsError, match=r"python -m pneumolib\.run --profile smoke"):
        report.build_context(PROFILE)
    assert "virus" in report.model_card(PROFILE)  # the model card alone does not need it


def test_cli_reports_errors_without_traceback(fake, capsys):
    (fake / "data.json").unlink()
    assert report.main(["--profile", PROFILE.name]) == 1
    assert "01_data_exploration" in capsys.readouterr().err
    assert project_root() == fake.parent.parent


def test_formatting_helpers():
    assert report.fmt_mean_std({"mean": 0.91234, "std": 0.0123, "n": 3}) == "0.912 ± 0.012"
    assert report.fmt_mean_std({"mean": 0.91234, "std": 0.0, "n": 1}) == "0.912"
    assert report.fmt_mean_std({"mean": None, "std": None, "n": 0}) == "n/a"
    assert report.fmt_num(5216) == "5,216" and report.fmt_num(float("nan")) == "n/a"


def test_a_file_that_breaks_the_schema_is_refused_naming_the_key(fake):
    cams = json.loads((fake / "gradcam.json").read_text())
    cams["sanity"] = 0.2468  # not the list of randomisation steps the schema defines
    write_json(fake / "gradcam.json", cams)
    with pytest.raises(report.ReportError, match=r"gradcam\.json: key 'sanity': expected an object.*Rerun notebook 08"):
        report.build_context(PROFILE)


def test_corrupt_json_is_refused_naming_the_file(fake):
    (fake / "binary.json").write_text('{"meta": {')
    with pytest.raises(report.ReportError, match=r"binary\.json.*Rerun notebook 03_custom_cnn"):
        report.build_context(PROFILE)


def test_corrupt_run_metadata_is_refused_naming_the_file(fake):
    (fake / "run_metadata.json").write_text("garbage")
    with pytest.raises(report.ReportError, match=r"run_metadata\.json.*python -m pneumolib\.run --profile smoke"):
        report.build_context(PROFILE)


def test_a_missing_arm_is_refused_unless_recorded_as_skipped(fake):
    binary = json.loads((fake / "binary.json").read_text())
    del binary["models"]["densenet121-scratch"]  # e.g. binary.json deleted, then only notebook 03 rerun
    write_json(fake / "binary.json", binary)
    with pytest.raises(report.ReportError, match=r"binary\.json lacks densenet121-scratch.*--only 03 04"):
        report.build_context(PROFILE)
    binary["skipped"]["densenet121-scratch"] = "not trained on this profile"
    write_json(fake / "binary.json", binary)
    assert "not trained on this profile" in json.dumps(report.build_context(PROFILE), ensure_ascii=False)


def test_training_text_comes_from_the_protocol_stored_with_the_results():
    def entry(name, epochs, text):
        return {"display_name": name, "protocol": {"max_epochs": epochs, "text": text}}

    binary = {
        "models": {
            "a": entry("CNN", 30, "cosine"),
            "b": entry("ResNet18", 10, "cosine"),
            "c": entry("Old", 8, "plateau"),
        }
    }
    texts = training_texts({"Binary": binary, "Three": {"models": {"x": {"display_name": "no protocol"}}}})
    assert texts == ["Binary: cosine; epoch budget: CNN 30, ResNet18 10.", "Binary: plateau; epoch budget: Old 8."]


def test_no_internal_target_block_and_no_model_card_tables_in_the_report(fake):
    ctx = report.build_context(PROFILE)
    text = json.dumps(ctx, ensure_ascii=False)
    assert "Project targets" not in text and "target ECE" not in text
    card_captions = {b["caption"] for b in report.model_card_blocks(PROFILE) if b["kind"] == "table"}
    ours = [b for e in ctx["sections"] + ctx["appendix"] for b in e["blocks"] if b["kind"] == "table"]
    assert ours and not card_captions & {b["caption"] for b in ours}


# --------------------------------------------------------------------------- the PDF as a paper
def _pdf_pages(pdf: Path) -> list[str]:
    from pypdf import PdfReader

    return [" ".join((p.extract_text() or "").split()) for p in PdfReader(pdf).pages]


@pytest.fixture
def paper(fake, isolated_root):
    pdf = report.build_report(PROFILE)
    ctx = json.loads(report.report_paths(PROFILE)["context"].read_text())
    return ctx, _pdf_pages(pdf)


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def test_pdf_has_abstract_every_heading_and_the_references(paper):
    ctx, pages = paper
    text = _squash(" ".join(pages))
    assert _squash("PneumoLab contributors") in text and _squash("not a clinical device") in text
    assert _squash("Abstract") in text and _squash(ctx["front"]["abstract"][:200]) in text
    assert _squash(ctx["front"]["key_findings"][0]) in text
    titles = [e["title"] for e in ctx["sections"] + ctx["appendix"]]
    for title in ["Introduction", "Data", "Methods", "Results", "Discussion", "Ethics and responsible use"]:
        assert title in titles
    for title in titles + ["References", "Key findings"]:
        assert _squash(title) in text, title
    for ref in ctx["references"]:
        assert _squash(ref["text"][:60]) in text and _squash(ref["id"]) in text, ref["key"]
    refs = {r["key"] for r in ctx["references"]}
    assert {"kermany", "medmnist", "chexnet", "resnet", "densenet", "gradcam", "guo", "adebayo"} <= refs
    assert "10.1016/j.cell.2018.02.010" in json.dumps(ctx["references"])


NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


def test_every_number_in_the_pdf_is_in_the_context(paper):
    """Numbers typed into the template would appear here; the numbering Typst adds is set aside."""
    ctx, pages = paper
    known = set(NUMBER.findall(json.dumps(ctx, ensure_ascii=False)))
    text = " ".join(pages)
    text = re.sub(r"\b(Figure|Table) \d+", " ", text)  # figure and table numbers
    text = re.sub(r"\[\d+(?:, \d+)*\]", " ", text)  # citations and the reference list's numbers
    text = re.sub(r"(?<![\w.])(?:\d+|[A-C])(?:\.\d+)* (?=[A-Z])", " ", text)  # heading numbers
    pages_n = {str(i) for i in range(1, len(pages) + 1)}
    unknown = {n for n in NUMBER.findall(text) if n not in known and n not in pages_n}
    assert not unknown, sorted(unknown)[:20]


def test_short_tables_never_break_across_pages(fake, isolated_root):
    import typst

    report.build_report(PROFILE)
    paths = report.report_paths(PROFILE)
    marks = typst.query(
        str(paths["context"].parent / "report.typ"),
        "<table-pos>",
        field="value",
        root=str(isolated_root),
        ignore_system_fonts=True,
        sys_inputs={"context": "/" + paths["context"].relative_to(isolated_root).as_posix()},
    )
    marks = json.loads(marks) if isinstance(marks, str) else marks
    starts = [m for m in marks if m["edge"] == "start"]
    ends = [m for m in marks if m["edge"] == "end"]
    assert starts and len(starts) == len(ends)
    for a, b in zip(starts, ends):
        assert a["caption"] == b["caption"]
        if a["rows"] <= 18:
            assert a["page"] == b["page"], f"table split across pages {a['page']}-{b['page']}: {a['caption'][:60]}"
