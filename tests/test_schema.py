"""The results schema: every file validates against its definition, bad files are named precisely."""

import json

import pytest

from pneumolib import schema
from pneumolib.profiles import get_profile

SMOKE = get_profile("smoke")


def binary_metrics(**changes):
    m = dict(
        accuracy=0.9,
        precision=0.9,
        recall=0.95,
        specificity=0.8,
        f1=0.92,
        auroc=0.96,
        average_precision=0.97,
        tp=19,
        tn=8,
        fp=2,
        fn=1,
        threshold=0.5,
        n=30,
    )
    return {**m, **changes}


def stat(mean, std=0.0):
    return {"mean": mean, "std": std, "n": 1}


def binary_entry(model="simple_cnn", weights="scratch"):
    run = dict(
        seed=0,
        best_epoch=1,
        epochs_run=1,
        train_time_s=1.0,
        img_per_s_train=100.0,
        ms_per_img=0.1,
        val_threshold=0.4,
        threshold_rule="max_f1",
        at_05=binary_metrics(),
        at_val_threshold=binary_metrics(threshold=0.4),
    )
    summary = {k: stat(v) for k, v in binary_metrics().items() if k in ("accuracy", "auroc", "recall")}
    return dict(
        model=model,
        weights=weights,
        display_name=f"{model} ({weights})",
        parameters=10,
        image_size=28,
        note="",
        protocol=dict(max_epochs=1, text="Adam", config={"lr": 0.001}),
        runs=[run],
        summary=dict(at_05=summary, at_val_threshold=summary, ms_per_img=stat(0.1), train_time_s=1.0),
        auroc_ci95=[0.9, 0.99],
    )


META = dict(
    profile="smoke",
    profile_hash="abc",
    dataset="PneumoniaMNIST 28 px",
    image_size=28,
    seeds=[0],
    n={"train": 10, "val": 10, "test": 30},
    class_counts={"test": {"normal": 10, "pneumonia": 20}},
    updated="2026-01-01T00:00:00+00:00",
)


def test_add_model_then_read_back():
    schema.add_model(SMOKE, "binary", binary_entry(), meta=META)
    schema.add_model(SMOKE, "binary", binary_entry("resnet18"), meta=META)
    schema.record_skip(SMOKE, "binary", "resnet18-imagenet", "weights absent")
    data = schema.read_results(SMOKE, "binary")
    assert data["schema_version"] == schema.FILES["binary"].version
    assert set(data["models"]) == {"simple_cnn-scratch", "resnet18-scratch"}
    assert data["skipped"] == {"resnet18-imagenet": "weights absent"}


def test_a_wrong_type_names_file_key_and_expectation():
    entry = binary_entry()
    entry["runs"][0]["seed"] = "0"
    with pytest.raises(schema.SchemaError) as err:
        schema.add_model(SMOKE, "binary", entry, meta=META)
    message = str(err.value)
    assert "binary.json" in message and "'models.simple_cnn-scratch.runs[0].seed'" in message
    assert "expected an integer" in message and "str '0'" in message
    assert not schema.results_path(SMOKE, "binary").exists()  # nothing malformed was written


def test_a_missing_key_is_named():
    entry = binary_entry()
    del entry["summary"]["at_05"]
    with pytest.raises(schema.SchemaError, match=r"models\.simple_cnn-scratch\.summary\.at_05.*missing"):
        schema.add_model(SMOKE, "binary", entry, meta=META)


def test_an_older_file_says_which_notebook_to_rerun():
    path = schema.results_path(SMOKE, "binary")
    path.write_text(json.dumps({"meta": META, "models": {}}))  # written before schema versions existed
    with pytest.raises(schema.OutdatedResultsError, match=r"03_custom_cnn.*--profile smoke --only 03"):
        schema.read_results(SMOKE, "binary")


def test_missing_file_says_which_notebook_writes_it():
    with pytest.raises(schema.ResultsNotFoundError, match="08_gradcam"):
        schema.read_results(SMOKE, "gradcam")


def test_update_results_keeps_other_keys_and_checks_types():
    schema.update_results(SMOKE, "data", pneumoniamnist_counts={"test": {"normal": 1, "pneumonia": 2}})
    schema.update_results(SMOKE, "data", augment_ms_per_batch32={"28px": 0.1})
    assert set(schema.read_results(SMOKE, "data")) == {
        "schema_version",
        "pneumoniamnist_counts",
        "augment_ms_per_batch32",
    }
    with pytest.raises(schema.SchemaError, match="augment_ms_per_batch32.28px"):
        schema.update_results(SMOKE, "data", augment_ms_per_batch32={"28px": "fast"})


def test_require_names_a_missing_key():
    schema.update_results(SMOKE, "data", augment_ms_per_batch32={"28px": 0.1})
    with pytest.raises(schema.SchemaError, match="'grouped_split'.*Rerun notebook 01_data_exploration"):
        schema.read_results(SMOKE, "data", require=("grouped_split",))


def test_a_half_written_task_file_names_its_first_missing_key():
    schema.update_results(SMOKE, "three_class", coverage={"train_share": None, "note": "partial"})
    with pytest.raises(schema.SchemaError, match="key 'meta'.*missing"):
        schema.read_results(SMOKE, "three_class")


def test_null_stands_for_nan_and_numpy_values_are_accepted():
    np = pytest.importorskip("numpy")
    entry = binary_entry()
    entry["runs"][0]["at_05"]["auroc"] = float("nan")
    entry["parameters"] = np.int64(10)
    schema.add_model(SMOKE, "binary", entry, meta=META)
    assert schema.read_results(SMOKE, "binary")["models"]["simple_cnn-scratch"]["runs"][0]["at_05"]["auroc"] is None


def test_unknown_file_name_is_refused():
    with pytest.raises(ValueError, match="unknown results file 'binaryy'"):
        schema.read_results(SMOKE, "binaryy")


def test_a_profile_name_is_refused_where_a_profile_is_expected():
    from pneumolib.train import config_for

    with pytest.raises(TypeError, match="get_profile"):
        config_for("smoke", "simple_cnn")
