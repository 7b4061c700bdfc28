"""Tests for pneumolib.explain_tools (layer sizes, border-mass proxy, example picking, the outcome
browser, the gradcam.json builder), the layer lookup of pneumolib.explain it uses, and the
Grad-CAM plots appended to pneumolib.plots (notebook 08)."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pneumolib import schema  # noqa: E402
from pneumolib.explain import get_layer, grad_cam, layer_names, outcome_indices, sanity_check  # noqa: E402
from pneumolib.explain_tools import (  # noqa: E402
    border_mass,
    border_mass_summary,
    cam_browser,
    first_examples,
    gradcam_file,
    layer_info,
    three_class_cases,
)
from pneumolib.models import build_model  # noqa: E402
from pneumolib.plots import plot_gradcam_grid, plot_sanity_curves  # noqa: E402
from pneumolib.profiles import get_profile  # noqa: E402
from pneumolib.results import jsonable  # noqa: E402

CLASSES = ("normal", "bacteria", "virus")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model("simple_cnn", 1, image_size=28)


# --------------------------------------------------------------------------- layers


def test_layer_names_and_info_resnet18_at_28px():
    model = build_model("resnet18", 1, image_size=28)
    assert layer_names(model) == ["backbone.layer4", "backbone.layer3"]
    default = layer_info(model, 28)
    assert default == {
        "layer": "backbone.layer4",
        "map_size": [4, 4],
        "input_size": 28,
        "network_input": 28,
        "is_default": True,
    }
    finer = layer_info(model, 28, "backbone.layer3")
    assert finer["map_size"] == [7, 7] and finer["is_default"] is False


def test_layer_info_densenet_reports_upsampled_input():
    model = build_model("densenet121", 1, image_size=28)
    assert layer_info(model, 28)["map_size"] == [2, 2]
    info = layer_info(model, 28, "backbone.features.denseblock3")
    assert info["map_size"] == [4, 4] and info["network_input"] == 64 and info["input_size"] == 28


def test_get_layer_default_and_unknown_name(cnn):
    name, module = get_layer(cnn)
    assert name == "backbone.features.10" and module is cnn.target_layer
    with pytest.raises(ValueError, match="no layer 'backbone.nope'.*suggested layers"):
        get_layer(cnn, "backbone.nope")


# --------------------------------------------------------------------------- border mass


def test_border_mass_uniform_centre_border_and_empty():
    h = w = 20  # border_frac 0.15 -> 3 px band
    uniform = np.ones((h, w))
    centre = np.zeros((h, w))
    centre[8:12, 8:12] = 1
    edge = np.zeros((h, w))
    edge[0, :] = 1
    empty = np.zeros((h, w))
    frac, area = border_mass(np.stack([uniform, centre, edge, empty]))
    assert area == pytest.approx(1 - (14 / 20) ** 2)
    assert frac[0] == pytest.approx(area) and frac[1] == 0 and frac[2] == 1
    assert np.isnan(frac[3])
    summ = border_mass_summary(np.stack([uniform, edge, empty]))
    assert summ["n_maps"] == 3 and summ["n_empty"] == 1 and summ["border_px"] == 3
    assert summ["border_mass"] == pytest.approx((area + 1) / 2)
    assert summ["ratio"] == pytest.approx(summ["border_mass"] / area)


def test_border_mass_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        border_mass(-np.ones((1, 10, 10)))
    with pytest.raises(ValueError, match="border_frac"):
        border_mass(np.ones((1, 10, 10)), border_frac=0.5)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        border_mass(np.ones((1, 1, 10, 10)))


# --------------------------------------------------------------------------- examples


def test_first_examples_takes_the_most_confident_and_marks_empty_groups():
    y = np.array([1, 1, 0, 0])
    p = np.array([0.7, 0.9, 0.2, 0.1])
    ex = first_examples(outcome_indices(y, p, 0.5))
    assert ex == {"TP": 1, "TN": 3, "FP": None, "FN": None}


def _probs(pred, conf):
    p = np.full((len(pred), 3), 0.0)
    for i, (q, c) in enumerate(zip(pred, conf)):
        p[i] = (1 - c) / 2
        p[i, q] = c
    return p


def test_three_class_cases_prefers_normal_as_virus_when_present():
    y = np.array([0, 0, 1, 1, 1, 1, 1, 0, 2])
    pred = np.array([0, 0, 1, 1, 0, 0, 0, 2, 2])
    conf = np.array([0.6, 0.9, 0.5, 0.8, 0.5, 0.5, 0.5, 0.7, 0.9])
    cases, cm = three_class_cases(y, _probs(pred, conf), CLASSES)
    assert cm.tolist() == [[2, 0, 1], [3, 2, 0], [0, 0, 1]]
    by_case = {c["case"]: c for c in cases}
    assert by_case["correct bacteria"]["index"] == 3 and by_case["correct normal"]["index"] == 1
    err = by_case["error normal -> virus"]
    assert err["index"] == 7 and err["count"] == 1 and err["most_frequent"] is False


def test_three_class_cases_falls_back_to_most_frequent_error():
    y = np.array([1, 1, 1, 2, 0])
    pred = np.array([2, 2, 1, 1, 0])
    conf = np.array([0.5, 0.8, 0.9, 0.6, 0.9])
    cases, _ = three_class_cases(y, _probs(pred, conf), CLASSES)
    err = cases[-1]
    assert err["case"] == "error bacteria -> virus" and err["index"] == 1 and err["most_frequent"] is True


def test_three_class_cases_without_errors_and_bad_input():
    y = np.array([0, 1, 2])
    cases, cm = three_class_cases(y, np.eye(3), CLASSES)
    assert [c["case"] for c in cases] == ["correct bacteria", "correct normal"]
    assert np.trace(cm) == 3
    with pytest.raises(ValueError, match="probs must be"):
        three_class_cases(y, np.eye(2), CLASSES)
    with pytest.raises(ValueError, match="unknown class names"):
        three_class_cases(y, np.eye(3), CLASSES, correct=("covid",))


# --------------------------------------------------------------------------- browser


def test_cam_browser_renders_and_follows_the_outcome(cnn):
    pytest.importorskip("ipywidgets")
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.3, 0.6, 0.4])
    groups = outcome_indices(y, p, 0.5)
    box = cam_browser(cnn, x, y, p, 0.5, groups)
    outcome, rank = box.children[0].children
    assert box.render() == groups["TP"][0]
    outcome.value = "TN"
    assert rank.max == len(groups["TN"]) - 1 and rank.value == 0
    rank.value = 1
    assert box.render() == groups["TN"][1]
    with pytest.raises(ValueError, match="empty"):
        cam_browser(cnn, x, y, p, 0.5, {k: np.array([], int) for k in groups})


def test_cam_browser_in_a_papermill_run_draws_one_plain_figure_and_makes_no_widget(cnn, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    from pneumolib import explain_tools

    monkeypatch.setattr(explain_tools, "run_by_papermill", lambda: True)
    monkeypatch.setattr(plt, "show", lambda: None)  # keep the figure open to look at it
    plt.close("all")
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.3, 0.6, 0.4])
    groups = outcome_indices(y, p, 0.5)
    assert cam_browser(cnn, x, y, p, 0.5, groups) is None
    assert "batch run" in capsys.readouterr().out
    (fig,) = [plt.figure(n) for n in plt.get_fignums()]
    assert fig.axes[0].get_title() == f"test #{groups['TP'][0]}: true pneumonia"
    plt.close("all")


# --------------------------------------------------------------------------- the results file


class FakeRun:
    """Just what gradcam_file reads from a pneumolib.train.Run."""

    def __init__(self, model, seed):
        self.model, self.seed = model, seed


def _as_written(data):
    """What ``schema.write_results`` checks: the JSON form, with the schema version it adds."""
    return json.loads(json.dumps(jsonable({"schema_version": schema.results_file("gradcam").version, **data})))


def test_gradcam_file_matches_its_schema_with_and_without_three_classes(cnn):
    P = get_profile("smoke")
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y, p = np.array([1, 1, 0, 0, 1, 0]), np.array([0.9, 0.3, 0.2, 0.7, 0.8, 0.4])
    name, module = get_layer(cnn)
    layers = {f"binary:{name}": layer_info(cnn, 28)}
    sanity = {f"binary:{name}": sanity_check(cnn, x[:4], n_tops=(0, 1), layer=module)}
    border = {f"binary:{name}": border_mass_summary(grad_cam(cnn, x, target_class=(p >= 0.5).astype(int)))}
    examples = first_examples(outcome_indices(y, p, 0.5))
    best = {"display_name": "Custom CNN (none)"}
    args = (P, layers, sanity, border, examples, "simple_cnn-none", best, FakeRun(cnn, 0), name, 0.5)

    binary_only = gradcam_file(*args)
    schema.validate("gradcam", _as_written(binary_only))
    assert list(binary_only) == ["meta", "layers", "sanity", "border_mass", "examples", "best_binary"]
    assert binary_only["sanity"][f"binary:{name}"] == sanity[f"binary:{name}"].to_dict("records")
    assert binary_only["best_binary"] == {
        "model": "simple_cnn-none",
        "display_name": "Custom CNN (none)",
        "seed": 0,
        "layer": name,
        "threshold": 0.5,
        "threshold_rule": "max_f1 on validation",
        "chosen_on": "highest mean validation AUROC",
    }
    assert binary_only["meta"]["seed"] == P.seeds[0] and binary_only["examples"] == examples

    k3 = build_model("simple_cnn", 3, image_size=28)
    y3 = np.array([0, 1, 2, 0, 1, 2])
    p3 = _probs([0, 1, 2, 2, 1, 2], [0.9, 0.8, 0.7, 0.6, 0.9, 0.5])
    cases, cm = three_class_cases(y3, p3, CLASSES)
    full = gradcam_file(*args, three_class_run=FakeRun(k3, 1), classes=CLASSES, confusion=cm, cases=cases)
    schema.validate("gradcam", _as_written(full))
    assert full["three_class"] == {
        "model": f"simple_cnn-{k3.weights}",
        "seed": 1,
        "classes": list(CLASSES),
        "confusion_matrix": cm,
        "examples": cases,
    }


# --------------------------------------------------------------------------- plots


def test_plot_gradcam_grid_layout_and_validation():
    imgs = np.random.default_rng(0).integers(0, 255, (3, 28, 28), dtype=np.uint8)
    cams = {"A": np.random.default_rng(1).random((3, 28, 28)), "B": np.zeros((3, 28, 28))}
    fig = plot_gradcam_grid(imgs, cams, row_labels=["TP", "TN", "FP"], notes={"A": ["p=1", "p=2", "p=3"]})
    assert len(fig.axes) == 3 * 3
    assert fig.axes[1].get_xlabel() == "p=1"
    fig = plot_gradcam_grid(imgs, {"A": cams["A"]}, heatmap=True)
    assert len(fig.axes) == 3 * 3 and "heat map" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="cams\\['A'\\] must be"):
        plot_gradcam_grid(imgs, {"A": cams["A"][:2]})
    with pytest.raises(ValueError, match="notes"):
        plot_gradcam_grid(imgs, cams, notes={"C": ["x"] * 3})


def test_plot_sanity_curves_panels_and_validation():
    table = pd.DataFrame(
        {
            "n_top": [0, 1, 2],
            "block": ["(none)", "fc", "layer4"],
            "spearman": [1.0, 0.2, np.nan],
            "spearman_std": [0.0, 0.1, np.nan],
            "spearman_abs": [1.0, 0.3, np.nan],
        }
    )
    fig = plot_sanity_curves({"a": table, "b": table})
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0 (none)", "1 fc", "2 layer4"]
    with pytest.raises(ValueError, match="lacks columns"):
        plot_sanity_curves({"a": table.drop(columns="spearman_abs")})
