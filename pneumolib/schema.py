"""The results files: one typed definition each, one reader, one writer.

Every number the notebooks, the report, the model card and the tests read comes from
``results/<profile>/<name>.json``. Each file has a typed definition below (``TypedDict``\\ s, so
the files stay plain JSON), a schema version, and the notebook that writes it:

===============  ==========================  ==============================================
file             definition                  written by
===============  ==========================  ==============================================
data             :class:`DataResults`        01 data exploration, 02 augmentation
binary           :class:`TaskResults`        03 custom CNN, 04 transfer learning
three_class      :class:`ThreeClassResults`  05 three-class
hierarchical     :class:`HierarchicalResults` 06 hierarchical
calibration      :class:`CalibrationResults` 07 ensemble and calibration
gradcam          :class:`GradcamResults`     08 Grad-CAM
run_metadata     :class:`RunMetadata`        the runner (``python -m pneumolib.run``)
===============  ==========================  ==============================================

:func:`read_results` checks a file against its definition and fails with a message naming the
file, the key and what was expected; a file written by an older schema says which notebook to
rerun (or ``python scripts/migrate_results.py``). :func:`write_results` checks before it writes
(atomically), so a notebook cannot store a malformed file; :func:`update_results` changes some
keys of a file under a lock. ``null`` stands for a number that is undefined (NaN), e.g. the
AUROC of a split with one class.
"""

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired, Required, TypedDict

from .jsoncheck import SchemaError, check
from .profiles import Profile, profile_hash
from .results import jsonable, modify_json, read_json, results_dir, write_json

Number = float | None  # null = undefined (NaN)


class OutdatedResultsError(SchemaError):
    """A results file written by an older (or newer) schema version."""


class ResultsNotFoundError(FileNotFoundError):
    """A results file that has not been written yet."""


# --------------------------------------------------------------------------- shared pieces
class Stat(TypedDict):
    mean: Number
    std: Number
    n: NotRequired[int]


class BinaryMetrics(TypedDict):
    accuracy: Number
    precision: Number
    recall: Number
    specificity: Number
    f1: Number
    auroc: Number
    average_precision: NotRequired[Number]
    tp: int
    tn: int
    fp: int
    fn: int
    threshold: NotRequired[float]
    n: int


class ClassMetrics(TypedDict):
    precision: Number
    recall: Number
    f1: Number
    support: int


class MulticlassMetrics(TypedDict):
    accuracy: Number
    macro_f1: Number
    macro_auroc: Number
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]
    confusion_normalized: NotRequired[list[list[Number]]]


class SplitMeta(TypedDict):
    """Which data a task's results were computed on."""

    profile: str
    profile_hash: str
    dataset: str
    image_size: int
    seeds: list[int]
    n: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    updated: str


class Protocol(TypedDict):
    max_epochs: int
    text: str
    config: dict[str, Any]


# --------------------------------------------------------------------------- binary / three-class
class BinaryRun(TypedDict):
    seed: int
    best_epoch: int
    epochs_run: int
    train_time_s: float
    img_per_s_train: NotRequired[Number]
    ms_per_img: Number  # throughput: ms per image at batch 32
    latency_ms_b1: NotRequired[Number]  # per-image latency at batch 1 (the deck's "ms/img")
    weights_source: NotRequired[str]  # "random init", "ImageNet (torchvision)" or "stand-in (...)"
    device: NotRequired[str]
    val_threshold: float
    threshold_rule: str
    at_05: BinaryMetrics
    at_val_threshold: BinaryMetrics


class BinarySummary(TypedDict):
    at_05: dict[str, Stat]
    at_val_threshold: dict[str, Stat]
    ms_per_img: Stat
    latency_ms_b1: NotRequired[Stat]
    train_time_s: float


class BinaryModel(TypedDict):
    model: str
    weights: str
    display_name: str
    parameters: int
    image_size: int
    note: NotRequired[str]
    protocol: Protocol
    runs: list[BinaryRun]
    summary: BinarySummary
    auroc_ci95: list[Number]


class TaskResults(TypedDict):
    """``binary.json``: one entry per model (``<model>-<weights>``), all seeds."""

    schema_version: int
    meta: SplitMeta
    models: dict[str, BinaryModel]
    skipped: NotRequired[dict[str, str]]


class MulticlassRun(TypedDict):
    seed: int
    best_epoch: int
    epochs_run: int
    train_time_s: float
    ms_per_img: Number
    latency_ms_b1: NotRequired[Number]
    weights_source: NotRequired[str]
    device: NotRequired[str]
    test: MulticlassMetrics


class MulticlassSummary(TypedDict):
    test: dict[str, Stat]
    per_class: dict[str, dict[str, Stat]]
    ms_per_img: Stat
    latency_ms_b1: NotRequired[Stat]
    train_time_s: float


class MulticlassModel(TypedDict):
    model: str
    weights: str
    display_name: str
    parameters: int
    image_size: int
    protocol: Protocol
    runs: list[MulticlassRun]
    summary: MulticlassSummary


class Coverage(TypedDict):
    train_share: Number
    note: str


class ModelSelection(TypedDict):
    rule: str
    val_macro_f1: dict[str, Number]
    best: str


class EnsembleResult(TypedDict):
    members: list[str]
    test: MulticlassMetrics


class DominantError(TypedDict):
    true: str | None
    pred: str | None
    count: int
    share_of_errors: Number
    total_errors: int


class ShiftAudit(TypedDict):
    """Train -> test shift of the normal class (notebook 05; :func:`pneumolib.audits.shift_audit`)."""

    normal_recall: dict[str, Number]
    normal_train_vs_test: dict[str, dict[str, Number]]
    aspect_ratio: dict[str, dict[str, Number]]
    spearman_with_p_pneumonia_on_normal_test: dict[str, Number]
    normal_test_error_rate_by_aspect_tercile: dict[str, Number]
    largest_shift: str


class ThreeClassResults(TypedDict):
    """``three_class.json``: per-model results, the selection on validation, the ensemble, the shift audit."""

    schema_version: int
    meta: SplitMeta
    models: dict[str, MulticlassModel]
    skipped: NotRequired[dict[str, str]]
    coverage: NotRequired[Coverage]
    model_selection: NotRequired[ModelSelection]
    ensemble: NotRequired[EnsembleResult]
    dominant_error: NotRequired[DominantError]
    shift: NotRequired[ShiftAudit]


# --------------------------------------------------------------------------- data
class DataResults(TypedDict, total=False):
    """``data.json``: counts and audits of notebooks 01-02 (each key written by one cell)."""

    schema_version: Required[int]
    pneumoniamnist_counts: dict[str, dict[str, int]]
    majority_baseline_accuracy: dict[str, dict[str, Number]]
    kermany_coverage: dict[str, Any]
    grouped_split: dict[str, Any]
    overlap_present: dict[str, Any]
    overlap_full: dict[str, Any] | None
    overlap_shared_ids_same_diagnosis: int
    augment_ms_per_batch32: dict[str, Number]
    simplecnn_train_step_ms_batch32: dict[str, Number]


# --------------------------------------------------------------------------- hierarchical
class HierarchicalMeta(TypedDict):
    profile: str
    profile_hash: str
    dataset: str
    train_share: Number
    image_size: int
    seeds: list[int]
    pretraining: str
    n_test: int
    n_test_pneumonia: int
    updated: str


class MulticlassSummaryStats(TypedDict):
    accuracy: Stat
    macro_f1: Stat
    macro_auroc: Stat
    per_class_f1: dict[str, Stat]


class ErrorSources(TypedDict):
    stage_a: Number
    stage_b: Number
    total_errors: Number
    missed_pneumonia: Number
    false_pneumonia: Number
    per_seed: list[dict[str, Number]]
    rule: NotRequired[str]


class HierarchicalResults(TypedDict):
    """``hierarchical.json``: flat vs two-stage classifier on the three-class test set."""

    schema_version: int
    meta: HierarchicalMeta
    architecture: str
    rule: str
    stage_loss: str
    flat: MulticlassSummaryStats
    hierarchical: MulticlassSummaryStats
    sequential: MulticlassSummaryStats
    rule_disagreements: dict[str, int]
    error_sources: ErrorSources
    error_sources_flat: ErrorSources
    stage_a_alone: dict[str, Stat]
    stage_b_alone: dict[str, Stat]


# --------------------------------------------------------------------------- calibration
class CalibrationScores(TypedDict):
    ece_10: Number
    ece_15: Number
    mce_15: Number
    brier: Number
    nll: Number


class CalibrationEntry(TypedDict):
    before: CalibrationScores
    after: CalibrationScores
    temperature: float
    temperature_at_bound: bool
    label: NotRequired[str]
    members: NotRequired[list[str]]


class CalibrationTask(TypedDict, total=False):
    members: dict[str, CalibrationEntry]
    ensemble: CalibrationEntry
    other_ensembles: dict[str, CalibrationEntry]
    skipped: str


class OperatingPoint(TypedDict):
    threshold: float
    rule: str
    chosen_on: str
    val_recall: Number
    val_specificity: Number
    test: BinaryMetrics


class OperatingPoints(TypedDict):
    ensemble: str
    temperature: float
    thresholds: dict[str, OperatingPoint]
    test_counts: dict[str, int]


class CalibrationResults(TypedDict):
    """``calibration.json``: ensembles, temperature scaling (fitted on validation), operating points."""

    schema_version: int
    meta: dict[str, Any]
    binary: CalibrationTask
    three_class: CalibrationTask
    operating_points: OperatingPoints
    ensemble_vs_members: dict[str, dict[str, Any]]
    target: NotRequired[dict[str, Any]]


# --------------------------------------------------------------------------- Grad-CAM
class LayerInfo(TypedDict):
    layer: str
    map_size: list[int]
    input_size: int
    network_input: int
    is_default: bool


class SanityStep(TypedDict):
    n_top: int
    block: str
    spearman: Number
    spearman_abs: Number
    n_undefined: int
    abs_diff: Number
    spearman_std: NotRequired[Number]


class BorderMass(TypedDict):
    border_mass: Number
    area_fraction: Number
    ratio: Number
    border_px: int
    n_maps: int
    n_empty: int
    border_mass_std: NotRequired[Number]
    border_frac: NotRequired[float]


class GradcamBest(TypedDict):
    model: str
    display_name: str
    seed: int
    layer: str
    threshold: float
    threshold_rule: str
    chosen_on: NotRequired[str]  # how the model was picked (validation AUROC), never the test set


class GradcamResults(TypedDict):
    """``gradcam.json``: layers, sanity check, border mass, the examples shown."""

    schema_version: int
    meta: dict[str, Any]
    layers: dict[str, LayerInfo]
    sanity: dict[str, list[SanityStep]]
    border_mass: dict[str, BorderMass]
    examples: dict[str, int | None]
    best_binary: GradcamBest
    three_class: NotRequired[dict[str, Any]]


# --------------------------------------------------------------------------- run metadata
class NotebookRecord(TypedDict):
    status: Literal["ok", "failed", "skipped"]
    wall_s: Number
    reason: str | None
    date: str
    git_commit: str | None
    profile_hash: str
    output: str | None
    runs_trained: NotRequired[int]  # training runs this notebook trained (first run) ...
    runs_loaded: NotRequired[int]  # ... or loaded from build/runs (rerun)
    train_s_trained: NotRequired[float]
    train_s_loaded: NotRequired[float]  # training seconds recorded by the loaded runs (what a first run adds)


class RunMetadata(TypedDict):
    """``run_metadata.json``: what the runner executed, where, when, and how long it took."""

    schema_version: int
    profile: str
    profile_hash: str
    git: dict[str, Any]
    date: str
    machine: dict[str, Any]
    notebooks: dict[str, NotebookRecord]
    total_wall_s: NotRequired[Number]


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class ResultsFile:
    name: str
    definition: type
    version: int
    writer: str  # the notebook (or command) that writes it: what to rerun when it is missing or outdated

    def rerun_hint(self, profile: str) -> str:
        if self.writer.startswith("python"):
            return f"rerun `{self.writer} --profile {profile}`"
        return f"rerun notebook {self.writer} (python -m pneumolib.run --profile {profile} --only {self.writer[:2]})"


FILES: dict[str, ResultsFile] = {
    f.name: f
    for f in (
        ResultsFile("data", DataResults, 1, "01_data_exploration"),
        ResultsFile("binary", TaskResults, 1, "03_custom_cnn"),
        ResultsFile("three_class", ThreeClassResults, 1, "05_three_class"),
        ResultsFile("hierarchical", HierarchicalResults, 1, "06_hierarchical"),
        ResultsFile("calibration", CalibrationResults, 1, "07_ensemble_calibration"),
        ResultsFile("gradcam", GradcamResults, 1, "08_gradcam"),
        ResultsFile("run_metadata", RunMetadata, 1, "python -m pneumolib.run"),
    )
}


def results_file(name: str) -> ResultsFile:
    try:
        return FILES[name]
    except KeyError:
        raise ValueError(f"unknown results file {name!r}: choose one of {sorted(FILES)}") from None


def results_path(profile: Profile, name: str) -> Path:
    results_file(name)
    return results_dir(profile.name) / f"{name}.json"


def validate(name: str, data: Any, path: Path | str = "<memory>", partial: bool = False) -> dict:
    """Check ``data`` against the definition of results file ``name``; return it unchanged.

    ``partial=True`` skips the check for required top-level keys (a file being filled cell by cell).
    """
    spec, path = results_file(name), Path(path)
    if not isinstance(data, dict):
        raise SchemaError(path, "", "a JSON object", data)
    version = data.get("schema_version")
    if version != spec.version:
        found = (
            "no schema version (written before schema versions existed)"
            if version is None
            else (f"schema version {version}")
        )
        raise OutdatedResultsError(
            path,
            "schema_version",
            f"version {spec.version}",
            fix=(
                f"The file has {found}. {spec.rerun_hint(path.parent.name).capitalize()}, "
                "or convert committed files with `python scripts/migrate_results.py`."
            ),
        )
    check(data, spec.definition, "", path, partial=partial)
    return data


# --------------------------------------------------------------------------- reading and writing
def read_results(profile: Profile, name: str, require: tuple[str, ...] = ()) -> dict:
    """Read and check ``results/<profile>/<name>.json``; ``require`` lists keys that must be present."""
    spec, path = results_file(name), results_path(profile, name)
    if not path.exists():
        raise ResultsNotFoundError(f"{path} not found: {spec.rerun_hint(profile.name)} first.")
    data = validate(name, read_json(path), path)
    for key in require:
        if key not in data:
            raise SchemaError(
                path,
                key,
                "a key written by a later cell (missing)",
                fix=f"{spec.rerun_hint(profile.name).capitalize()} to the end.",
            )
    return data


def write_results(profile: Profile, name: str, data: dict) -> Path:
    """Check ``data`` (``schema_version`` is added) and write the whole file atomically."""
    data = {"schema_version": results_file(name).version, **data}
    path = results_path(profile, name)
    validate(name, _as_json(data), path)
    return write_json(path, data)


def _modify(profile: Profile, name: str, change) -> dict:
    """Apply ``change(data)`` to a results file under the lock, stamping the current schema version."""
    version = results_file(name).version
    return modify_json(results_path(profile, name), lambda data: {**change(data), "schema_version": version})


def update_results(profile: Profile, name: str, **fields: Any) -> dict:
    """Set some top-level keys of a results file, keeping the others (read-modify-write under a lock)."""
    version = results_file(name).version
    validate(name, _as_json({"schema_version": version, **fields}), results_path(profile, name), partial=True)
    return _modify(profile, name, lambda data: {**data, **fields})


def add_model(profile: Profile, name: str, entry: dict, meta: dict) -> dict:
    """Store one model's entry under ``models/<model>-<weights>`` of a task's results file, with ``meta``."""
    key = f"{entry['model']}-{entry['weights']}"
    validate(
        name,
        _as_json({"schema_version": results_file(name).version, "meta": meta, "models": {key: entry}}),
        results_path(profile, name),
    )
    _modify(profile, name, lambda data: {**data, "meta": meta, "models": {**data.get("models", {}), key: entry}})
    return entry


def record_skip(profile: Profile, name: str, key: str, reason: str) -> None:
    """Note in a task's results file that an arm was skipped, and why (e.g. ImageNet weights absent)."""
    _modify(profile, name, lambda data: {**data, "skipped": {**data.get("skipped", {}), key: reason}})


def split_meta(profile: Profile, splits: dict, dataset: str) -> dict:
    """``meta`` of a task's results file: profile, data, image size, seeds, split sizes and class counts."""
    return dict(
        profile=profile.name,
        profile_hash=profile_hash(profile),
        dataset=dataset,
        image_size=int(splits["test"].images.shape[-1]),
        seeds=list(profile.seeds),
        n={s: len(d) for s, d in splits.items()},
        class_counts={s: d.class_counts() for s, d in splits.items()},
        updated=utc_now(),
    )


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _as_json(data: Any) -> Any:
    """What ``data`` becomes once written (numpy scalars -> numbers, NaN -> null, tuples -> lists)."""
    return json.loads(json.dumps(jsonable(data)))
