"""The PDF report and the model card, built from the results files only (never trains).

Usage (from the project root, or anywhere with ``PNEUMOLAB_ROOT`` set)::

    python -m pneumolib.report --profile cpu     # -> report/report.pdf (the committed reference)
    python -m pneumolib.report --profile smoke   # -> report/smoke/report.pdf (git-ignored)

How it works:

1. :func:`build_context` reads ``results/<profile>/*.json`` (written by the notebooks) and
   ``results/<profile>/run_metadata.json`` (written by ``python -m pneumolib.run``), checks that
   every file is there and was produced with the *current* settings of the profile
   (``meta.profile_hash``), and turns the numbers into display strings (``"0.912 ± 0.012"``),
   tables and figure lists: one JSON *context*.
2. The context goes to ``build/report/<profile>/context.json``; the Typst template
   ``report/report.typ`` reads it with ``json()`` and lays out the PDF. No number is typed into
   the template: the template holds layout and number-free prose.
3. :func:`model_card` turns the same results into a Markdown model card
   (``MODEL_CARD.md`` next to the PDF); the PDF and notebook 09 show the same card.

A missing results file stops the build with a message naming the notebook to run. The one
exception is a notebook that the runner *skipped* (e.g. no Kermany folder): its section says
"skipped" and why, which is a result, not a placeholder.

Layout of the package (each module imports only the ones above it):

- :mod:`.blocks`: errors, number formatting, the block model (tables, paragraphs, lists, figures, sections)
  and the Markdown renderer.
- :mod:`.context`: the results reader with its freshness checks, the profile's figures, the cover page.
- :mod:`.tables`: tables and labels shared by the sections and the model card.
- :mod:`.sections`: the sections for data (01-02), calibration (07) and Grad-CAM (08).
- :mod:`.task_sections`: the sections for the classification tasks (03-06).
- :mod:`.card`: the model card.
- :mod:`.build`: the template's context, output paths, the Typst PDF and the command line (:func:`main`).
"""

from .blocks import (
    MissingResultsError,
    ReportError,
    Skipped,
    StaleResultsError,
    blocks_to_markdown,
    fmt_mean_std,
    fmt_num,
    fmt_pct,
    fmt_seconds,
)
from .build import REFERENCE_PROFILE, TEMPLATE_NAME, build_context, build_report, main, report_paths
from .card import model_card, model_card_blocks
from .context import METADATA_FILE, RESULT_FILES
from .tables import BINARY_METRICS, MULTI_METRICS
from .task_sections import BINARY_TARGETS

__all__ = [
    "ReportError",
    "MissingResultsError",
    "StaleResultsError",
    "RESULT_FILES",
    "build_context",
    "build_report",
    "model_card",
    "model_card_blocks",
    "blocks_to_markdown",
    "report_paths",
    "fmt_num",
    "fmt_mean_std",
    "fmt_pct",
    "fmt_seconds",
    "main",
    "Skipped",
    "REFERENCE_PROFILE",
    "TEMPLATE_NAME",
    "METADATA_FILE",
    "BINARY_TARGETS",
    "BINARY_METRICS",
    "MULTI_METRICS",
]
