"""PneumoLab helper package: data, models, training, metrics, calibration, explainability, plots, report.

The notebooks in ``notebooks/`` tell the story; the logic they use lives here and is tested in ``tests/``.
One module per concept, in floors; a module imports only modules on lower floors (or earlier on its
own floor), never one above it (``tests/test_layering.py`` checks this against :data:`LAYERS`)::

    profiles, results, parameters, jsoncheck, metrics, transforms,  settings, files, notebook parameters,
    anchors                                                         numbers, references
    models, schema, data                                            networks, results files, datasets
    loop, train, runs, audits, calibration                          training loop, run cache, shareable runs,
                                                                    data audits, calibration
    evaluate, hierarchical, ensemble, explain                       results of runs, two-stage, ensembles, Grad-CAM
    explain_tools, plots                                            Grad-CAM companions, figures
    findings, studies                                               sentences whose numbers and words come from results
                                                                    (and from the committed studies in benchmarks/)
    report, run                                                     the PDF and model card, the notebook runner
"""

from .parameters import check_injected_parameters

__version__ = "0.1.0"

#: every module, lowest first: a module may import only the ones before it
LAYERS = (
    "profiles",
    "results",
    "parameters",
    "jsoncheck",
    "metrics",
    "transforms",
    "anchors",
    "models",
    "schema",
    "data",
    "loop",
    "train",
    "runs",
    "audits",
    "calibration",
    "evaluate",
    "hierarchical",
    "ensemble",
    "explain",
    "explain_tools",
    "plots",
    "findings",
    "studies",
    "report",
    "run",
)

# in a notebook run by plain papermill, a misspelt `-p NAME` fails here, at the notebook's first import
check_injected_parameters()
