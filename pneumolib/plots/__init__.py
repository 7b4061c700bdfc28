"""Figures for the notebooks: matplotlib only, every function returns the ``Figure``.

A notebook shows the figure inline and keeps a copy for the report with :func:`save_figure`::

    fig = plot_class_distribution(counts, "PneumoniaMNIST")
    save_figure(fig, profile, "01_pneumoniamnist_classes")   # figures/<profile>/01_....png

Data plots: :func:`plot_class_distribution`, :func:`plot_image_grid`,
:func:`plot_augmentations`, :func:`plot_size_histogram`.
Model plots: :func:`plot_history`, :func:`plot_confusion_matrix`, :func:`plot_roc_pr`,
:func:`plot_metric_bars`, :func:`plot_outcome_grid`, :func:`plot_filters`.
Calibration: :func:`plot_reliability`. Grad-CAM: :func:`plot_gradcam_grid`, :func:`plot_sanity_curves`.
Three classes: :func:`plot_distribution_shift`, :func:`plot_error_sources`, :func:`plot_two_stage_rules`.

One module per kind of figure (``base``, ``data``, ``evaluation``, ``calibration``, ``gradcam``,
``three_class``); everything is importable from ``pneumolib.plots``.
"""

from .base import DPI, save_figure
from .calibration import plot_reliability
from .data import plot_augmentations, plot_class_distribution, plot_image_grid, plot_size_histogram
from .evaluation import (
    plot_confusion_matrix,
    plot_filters,
    plot_history,
    plot_metric_bars,
    plot_outcome_grid,
    plot_roc_pr,
)
from .gradcam import plot_gradcam_grid, plot_sanity_curves
from .three_class import (
    plot_distribution_shift,
    plot_error_sources,
    plot_framing_study,
    plot_resolution_study,
    plot_two_stage_rules,
)

__all__ = [
    "DPI",
    "plot_augmentations",
    "plot_class_distribution",
    "plot_confusion_matrix",
    "plot_distribution_shift",
    "plot_error_sources",
    "plot_filters",
    "plot_framing_study",
    "plot_resolution_study",
    "plot_gradcam_grid",
    "plot_history",
    "plot_image_grid",
    "plot_metric_bars",
    "plot_outcome_grid",
    "plot_reliability",
    "plot_roc_pr",
    "plot_sanity_curves",
    "plot_size_histogram",
    "plot_two_stage_rules",
    "save_figure",
]
