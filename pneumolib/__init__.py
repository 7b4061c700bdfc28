"""PneumoLab helper package: data, models, training, metrics, calibration, explainability, plots, report.

The notebooks in ``notebooks/`` tell the story; the logic they use lives here and is tested in ``tests/``.
Layering (no module imports one above it)::

    profiles, results, metrics, models, parameters   (ground floor)
    data, train, calibration, explain, report, run
    plots
"""

__version__ = "0.1.0"

from .parameters import check_injected_parameters as _check_injected_parameters

# in a notebook run by plain papermill, a misspelt `-p NAME` fails here, at the notebook's first import
_check_injected_parameters()
