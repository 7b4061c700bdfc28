"""Tests for pneumolib.plots: each plot returns a Figure with the expected axes; save_figure writes a PNG."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pneumolib.plots import (  # noqa: E402
    plot_augmentations,
    plot_class_distribution,
    plot_image_grid,
    plot_size_histogram,
    save_figure,
)
from pneumolib.profiles import get_profile  # noqa: E402
from pneumolib.transforms import Augment  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_root(tmp_path, monkeypatch):
    """Everything a test writes goes under tmp_path, never into the repository."""
    monkeypatch.setenv("PNEUMOLAB_ROOT", str(tmp_path))
    yield tmp_path
    plt.close("all")


@pytest.fixture
def uint8_images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 12, 12), dtype=np.uint8)


def test_class_distribution_one_axis_bar_per_class_and_group():
    counts = {"train": {"normal": 3, "pneumonia": 7}, "test": {"normal": 2, "pneumonia": 4, "virus": 1}}
    fig = plot_class_distribution(counts, "tiny")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 3  # 2 groups x 3 classes (a missing class is a zero bar)
    labels = [t.get_text() for t in ax.texts]
    assert "7" in labels and "0" in labels
    assert ax.get_title() == "tiny"


@pytest.mark.parametrize("n, ncols", [(5, 3), (4, 8), (1, 1)])
def test_image_grid_one_axis_per_image(uint8_images, n, ncols):
    fig = plot_image_grid(uint8_images[:n], titles=[f"im {i}" for i in range(n)], ncols=ncols)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n
    assert fig.axes[0].get_title() == "im 0"


def test_image_grid_accepts_float_torch_channel_dim_and_ragged_lists():
    fig = plot_image_grid(torch.rand(3, 1, 10, 10))
    assert len(fig.axes) == 3
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)  # floats shown on 0-1, not rescaled
    fig = plot_image_grid([np.zeros((10, 14), np.uint8), np.full((8, 8), 255, np.uint8)], ncols=2)
    assert len(fig.axes) == 2
    assert fig.axes[0].images[0].get_clim() == (0.0, 255.0)


def test_image_grid_rejects_mismatched_titles(uint8_images):
    with pytest.raises(ValueError, match="titles"):
        plot_image_grid(uint8_images, titles=["only one"])


def test_augmentations_grid_and_same_images_in_every_column(uint8_images):
    augments = {"flip": Augment(hflip=1.0, rotation=0.0), "rotate": Augment(hflip=0.0, rotation=10.0)}
    fig = plot_augmentations(uint8_images[:4], augments, seed=0)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4 * (1 + len(augments))
    first_row = fig.axes[: 1 + len(augments)]
    assert [ax.get_title() for ax in first_row] == ["original", "flip", "rotate"]
    # the "flip" column shows the very same images mirrored (fig.axes is row-major)
    original = fig.axes[0].images[0].get_array()
    flipped = fig.axes[1].images[0].get_array()
    np.testing.assert_allclose(original, uint8_images[0] / 255, atol=1e-6)
    np.testing.assert_allclose(flipped, original[:, ::-1], atol=1e-5)


def test_augmentations_is_reproducible_for_a_seed(uint8_images):
    augments = {"default": Augment()}
    a = plot_augmentations(uint8_images[:2], augments, seed=3).axes[-1].images[0].get_array()
    b = plot_augmentations(uint8_images[:2], augments, seed=3).axes[-1].images[0].get_array()
    np.testing.assert_array_equal(a, b)


def test_size_histogram_two_axes():
    fig = plot_size_histogram([400, 500, 600, 800], [300, 350, 350, 900], title="sizes")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel().startswith("width")
    assert fig.axes[1].get_xlabel().startswith("height")


@pytest.mark.parametrize("profile", ["smoke", get_profile("cpu")])
def test_save_figure_writes_png_under_figures_profile(isolated_root, profile):
    fig = plot_size_histogram([1, 2, 3], [4, 5, 6])
    path = save_figure(fig, profile, "01_test_figure")
    name = getattr(profile, "name", profile)
    assert path == isolated_root / "figures" / name / "01_test_figure.png"
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert save_figure(fig, profile, "01_test_figure.png") == path  # ".png" is not doubled
    assert not list(path.parent.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_a_cell_ending_in_save_figure_shows_no_path(isolated_root):
    """IPython's display machinery (what a notebook cell's last value goes through) shows nothing."""
    from IPython.core.formatters import DisplayFormatter

    path = save_figure(plot_size_histogram([1, 2, 3], [4, 5, 6]), "smoke", "01_test_figure")
    assert DisplayFormatter().format(path) == ({}, {})
    assert str(path) == str(isolated_root / "figures" / "smoke" / "01_test_figure.png")


def test_history_shows_val_auroc_when_recorded_and_marks_the_kept_epoch():
    import pandas as pd

    from pneumolib.plots import plot_history

    h = pd.DataFrame(
        dict(
            epoch=[1, 2, 3],
            phase="full",
            train_loss=[0.6, 0.4, 0.3],
            val_loss=[0.5, 0.45, 0.5],
            val_accuracy=[0.8, 0.85, 0.84],
            val_auroc=[0.90, 0.95, 0.93],
            lr=[1e-3, 5e-4, 1e-4],
        )
    )
    fig = plot_history({"seed 0": h}, best_epochs={"seed 0": 2})
    loss_ax, val_ax, lr_ax = fig.axes
    assert val_ax.get_ylabel() == "validation AUROC" and lr_ax.get_yscale() == "log"
    marker = [line for line in val_ax.get_lines() if line.get_marker() == "o"]
    assert len(marker) == 1 and list(marker[0].get_ydata()) == [0.95]
    old = h.drop(columns="val_auroc")  # runs trained before val AUROC was recorded
    assert plot_history({"seed 0": old}).axes[1].get_ylabel() == "validation accuracy"
    plt.close("all")


def _history(n, offset=0.0):
    import pandas as pd

    e = np.arange(1, n + 1)
    return pd.DataFrame(
        dict(epoch=e, phase="full", train_loss=1 / e, val_loss=1 / e + offset, val_accuracy=0.5 + e / 100, lr=1e-3 / e)
    )


def test_history_of_several_models_draws_one_mean_line_and_band_per_model():
    from pneumolib.plots import plot_history

    runs = {f"{m} s{s}": _history(4 + s, 0.1 * s) for m in ("CNN", "ResNet18") for s in range(3)}
    fig = plot_history(runs, "curves", best_epochs={k: 2 for k in runs})
    loss_ax, val_ax, _ = fig.axes
    solid = [ln for ln in val_ax.get_lines() if ln.get_linestyle() == "-"]
    assert len(solid) == 2  # one mean line per model, not one per run
    assert len(val_ax.collections) == 2  # one ± std band per model
    assert "mean ± std" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["CNN (n = 3)", "ResNet18 (n = 3)"]
    one_model = plot_history({f"CNN s{s}": _history(4) for s in range(3)})  # one model: a line per seed
    assert len([ln for ln in one_model.axes[1].get_lines() if ln.get_linestyle() == "-"]) == 3
    plt.close("all")


def test_metric_bars_label_every_bar_zoom_the_axis_and_keep_the_legend_outside():
    from pneumolib.plots import plot_metric_bars

    rows = {m: {k: {"mean": v, "std": 0.01} for k in ("accuracy", "auroc")} for m, v in (("A", 0.91), ("B", 0.93))}
    fig = plot_metric_bars(rows, keys=("accuracy", "auroc"))
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["0.910", "0.910", "0.930", "0.930"]
    lo = ax.get_ylim()[0]
    assert lo == pytest.approx(0.85) and "axis starts at 0.85" in ax.get_ylabel()
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().y0 >= ax.bbox.y1 - 1  # above the axes, outside the data
    assert plot_metric_bars(rows, keys=("accuracy",), zoom=False).axes[0].get_ylim()[0] == 0
    plt.close("all")


def test_resolution_study_draws_val_test_and_cost_per_model_and_marks_the_chosen_size():
    from pneumolib.plots import plot_resolution_study

    def row(model, size, val, seconds):
        runs = [{"val_macro_f1": val - 0.01}, {"val_macro_f1": val + 0.01}]
        return dict(
            model=model, size=size, seeds=[0, 1], runs=runs, val_macro_f1=val, test_macro_f1=val - 0.05, train_s=seconds
        )

    rows = [row("simple_cnn", s, 0.6 + s / 1000, s * 2.0) for s in (64, 96, 128)]
    rows += [row("resnet18", s, 0.7, s * 5.0) for s in (64, 128)]
    fig = plot_resolution_study({"rows": rows, "choice": {"chosen": 96}}, title="t")
    left, right = fig.axes
    assert len(left.lines) == 2 * 2 + 1  # val and test per model, the chosen size's marker
    assert len(left.collections) == 5  # one set of seed dots per (model, size)
    assert len(right.lines) == 2 + 1
    assert list(right.lines[1].get_ydata()) == pytest.approx([64 * 2 / 60, 96 * 2 / 60, 128 * 2 / 60])  # simple_cnn
    assert right.lines[-1].get_xdata()[0] == 96
    with pytest.raises(ValueError, match="resolution_study.py"):
        plot_resolution_study({"rows": []})
