"""Fake results files for the report tests, built and written through the results schema.

Every file goes through :func:`pneumolib.schema.write_results`, which checks it against its
definition: a fake that drifts from what the notebooks write fails here, not silently in the
report. Distinctive numbers (0.8771, 0.4321, 0.5678, 0.1357, 4242, ...) let the tests check that
what the report shows comes from these files.
"""

from pneumolib import schema
from pneumolib.models import display_name
from pneumolib.profiles import Profile, profile_hash

CLASSES = ("normal", "bacteria", "virus")


def stat(mean, std=0.01, n=3):
    return {"mean": mean, "std": std, "n": n}


def binary_metrics(accuracy=0.8771, auroc=0.4321, threshold=0.5):
    return dict(
        accuracy=accuracy,
        precision=0.85,
        recall=0.97,
        specificity=0.61,
        f1=0.9,
        auroc=auroc,
        average_precision=0.95,
        tp=378,
        tn=143,
        fp=91,
        fn=12,
        threshold=threshold,
        n=624,
    )


def protocol(epochs):
    return {"max_epochs": epochs, "text": "Adam (lr 0.001), batch 32", "config": {"lr": 0.001}}


def binary_entry(model, weights="scratch", auroc=0.4321, thresholds=(0.3, 0.5, 0.4)):
    runs = [
        dict(
            seed=s,
            best_epoch=2,
            epochs_run=3,
            train_time_s=41.0,
            img_per_s_train=900.0,
            ms_per_img=1.5,
            val_threshold=t,
            threshold_rule="max_f1",
            at_05=binary_metrics(auroc=auroc),
            at_val_threshold=binary_metrics(auroc=auroc, threshold=t),
        )
        for s, t in enumerate(thresholds)
    ]
    at = {
        k: stat(v)
        for k, v in binary_metrics(auroc=auroc).items()
        if k in ("accuracy", "precision", "recall", "specificity", "f1", "auroc", "average_precision")
    }
    return dict(
        model=model,
        weights=weights,
        display_name=display_name(model, weights),
        parameters=93249,
        image_size=28,
        note="",
        protocol=protocol(5),
        runs=runs,
        summary=dict(at_05=at, at_val_threshold=at, ms_per_img=stat(1.5, 0.1), train_time_s=123.0),
        auroc_ci95=[0.9, 0.95],
    )


def split_meta(profile: Profile, dataset, image_size=28, n_test=624):
    return dict(
        profile=profile.name,
        profile_hash=profile_hash(profile),
        dataset=dataset,
        image_size=image_size,
        seeds=[0, 1, 2],
        n={"train": 4708, "val": 524, "test": n_test},
        class_counts={"test": {"normal": 234, "pneumonia": 390}},
        updated="2026-01-01T00:00:00+00:00",
    )


def multiclass_metrics(f1_virus=0.5678):
    per_class = {
        c: dict(precision=0.7, recall=0.6, f1=f1, support=n)
        for c, f1, n in zip(CLASSES, (0.81, 0.79, f1_virus), (234, 242, 148))
    }
    return dict(
        accuracy=0.7,
        macro_f1=0.65,
        macro_auroc=0.85,
        per_class=per_class,
        confusion=[[150, 40, 44], [20, 200, 22], [10, 30, 108]],
    )


def multiclass_entry(model):
    runs = [
        dict(seed=s, best_epoch=4, epochs_run=6, train_time_s=80.0, ms_per_img=2.0, test=multiclass_metrics())
        for s in range(3)
    ]
    per_class = {
        c: {"precision": stat(0.7), "recall": stat(0.6), "f1": stat(f1)} for c, f1 in zip(CLASSES, (0.81, 0.79, 0.5678))
    }
    return dict(
        model=model,
        weights="scratch",
        display_name=display_name(model, "scratch"),
        parameters=11169345,
        image_size=32,
        protocol=protocol(8),
        runs=runs,
        summary=dict(
            test={"accuracy": stat(0.7), "macro_f1": stat(0.65), "macro_auroc": stat(0.85)},
            per_class=per_class,
            ms_per_img=stat(2.0),
            train_time_s=240.0,
        ),
    )


def data_results():
    return {
        "pneumoniamnist_counts": {
            "train": {"normal": 1214, "pneumonia": 3494},
            "val": {"normal": 135, "pneumonia": 389},
            "test": {"normal": 234, "pneumonia": 390},
        },
        "majority_baseline_accuracy": {"test": {"correct": 390, "n": 624, "accuracy": 0.625}},
        "kermany_coverage": {
            "table": [{"split": "train", "label3": "virus", "present": 402, "full_dataset": 1345, "share": 0.299}],
            "train_share": 0.3123,
        },
        "overlap_full": {
            "images": {"train": 5216, "val": 16, "test": 624},
            "patients": {"train": 2846, "test": 427},
            "shared_patient_ids_train_test": 4242,
            "test_images_of_shared_patients": 320,
            "duplicate_files_train_test": 0,
            "duplicate_pairs_any_split": 32,
        },
    }


def binary_results(profile: Profile):
    models = [binary_entry("simple_cnn"), binary_entry("resnet18", auroc=0.41), binary_entry("densenet121", auroc=0.4)]
    return {
        "meta": split_meta(profile, "PneumoniaMNIST 28 px"),
        "models": {f"{e['model']}-{e['weights']}": e for e in models},
        "skipped": {"resnet18-imagenet": "ImageNet weights unavailable offline"},
    }


def three_class_results(profile: Profile):
    return {
        "meta": split_meta(profile, "Kermany 32 px", image_size=32),
        "models": {f"{m}-scratch": multiclass_entry(m) for m in ("simple_cnn", "resnet18", "densenet121")},
        "model_selection": {
            "rule": "highest mean validation macro-F1",
            "best": "resnet18",
            "val_macro_f1": {"simple_cnn": 0.6, "resnet18": 0.7, "densenet121": 0.65},
        },
        "ensemble": {"members": ["resnet18 seed 0", "densenet121 seed 0"], "test": multiclass_metrics(0.6)},
        "dominant_error": {"true": "normal", "pred": "virus", "count": 44, "share_of_errors": 0.3, "total_errors": 146},
    }


def _summary_stats():
    return {
        "accuracy": stat(0.66),
        "macro_f1": stat(0.64),
        "macro_auroc": stat(0.86),
        "per_class_f1": {c: stat(0.6) for c in CLASSES},
    }


def hierarchical_results(profile: Profile):
    errors = {
        "stage_a": 100.0,
        "stage_b": 60.0,
        "total_errors": 160.0,
        "missed_pneumonia": 20.0,
        "false_pneumonia": 80.0,
        "per_seed": [{"seed": 0, "stage_a": 100, "stage_b": 60}],
    }
    stage = {k: stat(0.8) for k in ("accuracy", "recall", "specificity", "f1", "auroc")}
    return {
        "meta": dict(
            profile=profile.name,
            profile_hash=profile_hash(profile),
            dataset="Kermany 32 px",
            train_share=0.3123,
            image_size=32,
            seeds=[0, 1, 2],
            pretraining="none",
            n_test=624,
            n_test_pneumonia=390,
            updated="2026-01-01T00:00:00+00:00",
        ),
        "architecture": "resnet18",
        "rule": "argmax: argmax of [1-pA, pA(1-pB), pA*pB]",
        "stage_loss": "weighted_bce",
        "flat": _summary_stats(),
        "hierarchical": _summary_stats(),
        "sequential": _summary_stats(),
        "rule_disagreements": {"0": 18},
        "error_sources": {**errors, "rule": "argmax"},
        "error_sources_flat": errors,
        "stage_a_alone": stage,
        "stage_b_alone": stage,
    }


def calibration_results(profile: Profile):
    scores = {
        "before": {"ece_10": 0.12, "ece_15": 0.1357, "mce_15": 0.3, "brier": 0.1, "nll": 0.4},
        "after": {"ece_10": 0.04, "ece_15": 0.05, "mce_15": 0.2, "brier": 0.09, "nll": 0.3},
        "temperature": 1.7,
        "temperature_at_bound": False,
    }
    test = {**binary_metrics(), "recall": 0.98, "specificity": 0.55, "tp": 382, "fn": 8, "tn": 129, "fp": 105}
    point = {
        "threshold": 0.2,
        "rule": "recall>=0.99",
        "chosen_on": "validation",
        "val_recall": 0.99,
        "val_specificity": 0.5,
        "test": test,
    }
    return {
        "meta": {
            "profile": profile.name,
            "profile_hash": profile_hash(profile),
            "binary_data": "PneumoniaMNIST 28 px",
            "three_class_data": None,
            "seeds": [0, 1, 2],
            "temperature_fitted_on": "validation",
            "thresholds_chosen_on": "validation",
        },
        "binary": {
            "members": {"Custom CNN (scratch) seed 0": scores},
            "ensemble": {"label": "Ensemble A", **scores, "members": ["a", "b"]},
            "other_ensembles": {},
        },
        "three_class": {"skipped": "no Kermany folder"},
        "operating_points": {
            "ensemble": "Ensemble A",
            "temperature": 1.7,
            "thresholds": {"screening": point},
            "test_counts": {"pneumonia": 390, "normal": 234},
        },
        "ensemble_vs_members": {
            "binary": {"Ensemble A": {"accuracy": 0.8, "recall": 0.97, "specificity": 0.5, "f1": 0.86, "auroc": 0.93}},
            "three_class": {"skipped": "no Kermany folder"},
        },
        "target": {"profile": profile.name, "metric": "ece_15 after temperature scaling", "limit": 0.05, "met": True},
    }


def gradcam_results(profile: Profile):
    key = "binary:resnet18-scratch:layer4"
    return {
        "meta": {
            "profile": profile.name,
            "profile_hash": profile_hash(profile),
            "seed": 0,
            "target_class": "predicted",
        },
        "layers": {
            key: {
                "layer": "backbone.layer4",
                "map_size": [4, 4],
                "input_size": 28,
                "network_input": 28,
                "is_default": True,
            }
        },
        "sanity": {
            key: [
                {"n_top": 1, "block": "fc", "spearman": 0.9, "spearman_abs": 0.9, "n_undefined": 0, "abs_diff": 0.1},
                {
                    "n_top": 5,
                    "block": "conv1",
                    "spearman": 0.02,
                    "spearman_abs": 0.02,
                    "n_undefined": 0,
                    "abs_diff": 0.4,
                },
            ]
        },
        "border_mass": {
            key: {"border_mass": 0.5, "area_fraction": 0.44, "ratio": 1.1, "border_px": 4, "n_maps": 96, "n_empty": 0}
        },
        "examples": {"TP": 3, "TN": 1, "FP": 7, "FN": None},
        "best_binary": {
            "model": "resnet18-scratch",
            "display_name": "ResNet18 (scratch)",
            "seed": 0,
            "layer": "backbone.layer4",
            "threshold": 0.15,
            "threshold_rule": "max_f1 on validation",
        },
    }


NOTEBOOKS = (
    "01_data_exploration",
    "02_augmentation",
    "03_custom_cnn",
    "04_transfer_learning",
    "05_three_class",
    "06_hierarchical",
    "07_ensemble_calibration",
    "08_gradcam",
    "09_ethics_limitations",
)


def run_metadata(profile: Profile, skip_three_class=False):
    def record(status="ok", wall_s=12.5, reason=None):
        return {
            "status": status,
            "wall_s": wall_s,
            "reason": reason,
            "date": "2026-01-01T00:00:00+00:00",
            "git_commit": "abc1234",
            "profile_hash": profile_hash(profile),
            "output": None,
        }

    notebooks = {name: record() for name in NOTEBOOKS}
    if skip_three_class:
        notebooks["05_three_class"] = record("skipped", 0.0, "needs the Kermany chest_xray folder")
        notebooks["06_hierarchical"] = record("skipped", 0.0, "needs the Kermany chest_xray folder")
    return {
        "profile": profile.name,
        "profile_hash": profile_hash(profile),
        "git": {"commit": "abc1234", "dirty": False},
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {"cpu_count": 2, "memory_gib": 8.0},
        "notebooks": notebooks,
        "total_wall_s": 112.5,
    }


def write_fake_results(profile: Profile, skip_three_class: bool = False) -> None:
    """Write a complete, valid results set for ``profile`` (notebooks 05-06 skipped if asked)."""
    files = {
        "data": data_results(),
        "binary": binary_results(profile),
        "calibration": calibration_results(profile),
        "gradcam": gradcam_results(profile),
        "run_metadata": run_metadata(profile, skip_three_class),
    }
    if not skip_three_class:
        files |= {"three_class": three_class_results(profile), "hierarchical": hierarchical_results(profile)}
    for name, content in files.items():
        schema.write_results(profile, name, content)
