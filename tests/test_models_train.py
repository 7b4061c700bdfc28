import dataclasses

import numpy as np
import pytest
import torch

from pneumolib import models as M
from pneumolib.data import ImageSet
from pneumolib.loop import TrainConfig, fit, logits_to_proba, make_loss, predict_logits
from pneumolib.profiles import get_profile
from pneumolib.results import load_checkpoint, save_checkpoint
from pneumolib.train import train_or_load


def toy_splits(n=64, size=28, seed=0, classes=("normal", "pneumonia")):
    """Images whose class is visible: class k has a bright patch in a class-specific place."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for split, m in (("train", n), ("val", n // 2), ("test", n // 2)):
        y = torch.arange(m) % len(classes)
        x = torch.randint(0, 60, (m, size, size), generator=g, dtype=torch.uint8)
        for k in range(1, len(classes)):
            x[y == k, 4 * k : 4 * k + 8, 4:12] = 250
        out[split] = ImageSet(x, y, classes=tuple(classes), name=split)
    return out


@pytest.mark.parametrize(
    "name, size, expected", [("simple_cnn", 28, 93_249), ("resnet18", 28, None), ("densenet121", 28, None)]
)
def test_output_shapes_and_parameter_counts(name, size, expected):
    for outputs in (1, 3):
        model = M.build_model(name, outputs, image_size=size)
        assert model(torch.rand(2, 1, size, size)).shape == (2, outputs)
        assert model.weights == "scratch"
    if expected:
        assert M.count_parameters(M.build_model(name, 1, image_size=size)) == expected


def test_resnet_low_res_stem_keeps_spatial_map():
    model = M.build_model("resnet18", image_size=28)
    feats = {}
    model.target_layer.register_forward_hook(lambda m, i, o: feats.setdefault("x", o))
    model(torch.rand(1, 1, 28, 28))
    assert feats["x"].shape[-2:] == (4, 4)


def test_unknown_model_and_weights():
    with pytest.raises(ValueError, match="unknown model"):
        M.build_model("vgg")
    with pytest.raises(ValueError, match="weights"):
        M.build_model("resnet18", weights="imagenet21k")


def test_imagenet_weights_absent_offline_gives_instructions(tmp_path, monkeypatch):
    import torchvision.models._api as api

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(M.WeightsUnavailableError) as err:
        M.build_model("resnet18", weights="imagenet", image_size=224)
    msg = str(err.value)
    assert "resnet18" in msg and "checkpoints" in msg and "weights='none'" in msg


def test_one_step_lowers_loss_on_fixed_batch():
    torch.manual_seed(0)
    splits = toy_splits(32)
    model = M.build_model("simple_cnn")
    loss_fn = make_loss("bce", splits["train"].labels, 1)
    x, y = splits["train"].as_float(), splits["train"].labels
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.eval()  # fixed batch statistics: compare like with like
    before = loss_fn(model(x), y).item()
    model.train()
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()
    model.eval()
    assert loss_fn(model(x), y).item() < before


@pytest.mark.parametrize("loss, outputs", [("weighted_bce", 1), ("focal", 1), ("ce", 3), ("weighted_ce", 3)])
def test_losses_are_finite_and_weighted(loss, outputs):
    y = torch.tensor([0, 0, 0, 1] if outputs == 1 else [0, 0, 1, 2])
    fn = make_loss(loss, y, outputs)
    value = fn(torch.zeros(4, outputs), y)
    assert torch.isfinite(value) and value > 0
    with pytest.raises(ValueError, match="output"):
        make_loss("ce" if outputs == 1 else "bce", y, outputs)


def test_checkpoint_roundtrip_weights_only(tmp_path):
    model = M.build_model("simple_cnn")
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict())
    other = M.build_model("simple_cnn")
    other.load_state_dict(load_checkpoint(path))
    x = torch.rand(3, 1, 28, 28)
    model.eval(), other.eval()
    assert torch.equal(model(x), other(x))
    # weights_only refuses arbitrary objects: a checkpoint cannot run code
    import pathlib

    from pneumolib.results import CorruptArtefactError

    torch.save({"not_a_tensor": pathlib.PurePosixPath("x")}, tmp_path / "bad.pt")
    with pytest.raises(CorruptArtefactError, match="bad.pt: .*weights-only load refuses") as err:
        load_checkpoint(tmp_path / "bad.pt")
    assert "weights_only=False" not in str(err.value)


CFG = TrainConfig(max_epochs=3, patience=2, batch_size=16, lr=1e-3)
SMOKE = get_profile("smoke")


def test_training_learns_toy_task_and_is_deterministic():
    splits = toy_splits(64)
    a = train_or_load("toy", "simple_cnn", splits, SMOKE, 0, config=CFG, progress=False)
    b = train_or_load("toy", "simple_cnn", splits, SMOKE, 0, config=CFG, progress=False, retrain=True)
    assert not b.loaded
    pa, pb = a.split_arrays("test")[2], b.split_arrays("test")[2]
    np.testing.assert_array_equal(pa, pb)  # same seed -> same predictions, bit for bit
    acc = ((pa >= 0.5) == a.split_arrays("test")[0]).mean()
    assert acc > 0.8
    assert list(a.history.columns[:3]) == ["epoch", "phase", "train_loss"]


def test_finished_run_is_loaded_not_retrained(monkeypatch):
    splits = toy_splits(32)
    first = train_or_load("toy", "simple_cnn", splits, SMOKE, 1, config=CFG, progress=False)
    import pneumolib.train as T

    monkeypatch.setattr(T, "fit", lambda *a, **k: pytest.fail("a finished run must not be retrained"))
    again = train_or_load("toy", "simple_cnn", splits, SMOKE, 1, config=CFG, progress=False)
    assert again.loaded and again.info["best_epoch"] == first.info["best_epoch"]
    np.testing.assert_allclose(again.split_arrays("test")[2], first.split_arrays("test")[2])
    x = splits["test"].as_float()[:4]
    again.model.eval(), first.model.eval()
    assert torch.allclose(again.model(x), first.model(x))


def test_interrupted_run_resumes_from_last_epoch(isolated_root, monkeypatch):
    import pneumolib.loop as T

    splits = toy_splits(32)
    cfg = dataclasses.replace(CFG, patience=9)
    torch.manual_seed(0)
    full = fit(M.build_model("simple_cnn"), splits["train"], splits["val"], cfg, isolated_root / "a", progress=False)

    real, calls = T.iterate_batches, {"n": 0}

    def crash_in_third_epoch(data, batch_size, shuffle=False, generator=None, **kwargs):
        calls["n"] += shuffle
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(data, batch_size, shuffle, generator, **kwargs)

    run_dir = isolated_root / "b"
    torch.manual_seed(0)
    monkeypatch.setattr(T, "iterate_batches", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(M.build_model("simple_cnn"), splits["train"], splits["val"], cfg, run_dir, progress=False)
    monkeypatch.setattr(T, "iterate_batches", real)
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1  # two epochs were saved
    torch.manual_seed(123)  # another init: resuming must restore the saved state anyway
    resumed = fit(M.build_model("simple_cnn"), splits["train"], splits["val"], cfg, run_dir, progress=False)
    assert len(resumed.history) == len(full.history) == 3
    np.testing.assert_allclose(resumed.history["val_loss"], full.history["val_loss"], rtol=1e-6)


def test_cosine_schedule_and_auroc_monitor():
    splits = toy_splits(32)
    cfg = dataclasses.replace(CFG, max_epochs=4, patience=10, scheduler="cosine", monitor="val_auroc")
    torch.manual_seed(0)
    result = fit(M.build_model("simple_cnn"), splits["train"], splits["val"], cfg, progress=False)
    h = result.history
    assert h["lr"].iloc[0] == pytest.approx(cfg.lr)  # the rate each epoch trained with
    assert (np.diff(h["lr"]) < 0).all()  # annealed every epoch, not only on a plateau
    assert len(h) == 4  # patience 10 > 4 epochs: no early stop
    assert result.best_epoch == int(np.argmax(h["val_auroc"].to_numpy())) + 1  # the first epoch with the top AUROC


def test_unknown_scheduler_or_monitor_is_refused():
    with pytest.raises(ValueError, match="'plateau' or 'cosine'"):
        TrainConfig(scheduler="step")
    with pytest.raises(ValueError, match="'val_loss' or 'val_auroc'"):
        TrainConfig(monitor="val_acc")


def test_new_options_at_their_defaults_keep_old_run_keys():
    """Finished runs of earlier versions (no scheduler/monitor/tta fields) must still be found."""
    import hashlib
    import json

    cfg = TrainConfig(lr=1e-3)
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("scheduler", "monitor", "tta")}
    assert cfg.key() == hashlib.sha256(json.dumps(old, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert dataclasses.replace(cfg, scheduler="cosine").key() != cfg.key()
    assert dataclasses.replace(cfg, monitor="val_auroc").key() != cfg.key()
    assert dataclasses.replace(cfg, tta="auto").key() != cfg.key()


def test_predict_and_proba_shapes():
    splits = toy_splits(16, classes=("normal", "bacteria", "virus"))
    model = M.build_model("simple_cnn", 3)
    logits = predict_logits(model, splits["test"])
    probs = logits_to_proba(logits)
    assert logits.shape == (8, 3) and np.allclose(probs.sum(1), 1)
    assert logits_to_proba(np.array([0.0]))[0] == pytest.approx(0.5)


def test_hflip_tta_averages_the_logits_of_each_image_and_its_mirror():
    splits = toy_splits(16, classes=("normal", "bacteria", "virus"))
    model = M.build_model("simple_cnn", 3)
    plain, tta = predict_logits(model, splits["test"]), predict_logits(model, splits["test"], hflip=True)
    mirrored = dataclasses.replace(splits["test"], images=torch.flip(splits["test"].images, dims=[-1]))
    assert np.allclose(tta, (plain + predict_logits(model, mirrored)) / 2, atol=1e-5)
    assert not np.allclose(tta, plain, atol=1e-5)  # an untrained CNN is not mirror-symmetric


def test_config_for_applies_task_changes_only_to_that_task():
    from pneumolib.profiles import Profile
    from pneumolib.train import config_for

    prof = Profile(
        name="t",
        description="",
        lr=1e-3,
        epochs_by_model={"resnet18": 12},
        protocol_by_task={"binary": {"scheduler": "cosine", "epochs_by_model": {"resnet18": 7}}},
    )
    binary, other = (
        config_for(prof, "resnet18", task="binary"),
        config_for(prof, "resnet18", num_classes=3, task="three_class"),
    )
    assert (binary.scheduler, binary.max_epochs) == ("cosine", 7)
    assert (other.scheduler, other.max_epochs, other.loss) == ("plateau", 12, "weighted_ce")
    assert config_for(prof, "resnet18", task="binary", max_epochs=2).max_epochs == 2  # keyword overrides win
    bad = Profile(name="b", description="", protocol_by_task={"binary": {"learning_rate": 1}})
    with pytest.raises(ValueError, match="learning_rate.*not TrainConfig fields"):
        config_for(bad, "resnet18", task="binary")


class LeftMinusRight(torch.nn.Module):
    """Logit = mean brightness of the left half minus the right half: its mirror image says the opposite."""

    def forward(self, x):
        w = x.shape[-1] // 2
        return (x[..., :w].mean(dim=(1, 2, 3)) - x[..., w:].mean(dim=(1, 2, 3))).unsqueeze(1)


def sided_splits(bright_side: str, n=40, size=16):
    """Pneumonia images are bright on one side, with noise so that no two scores tie."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for split in ("val", "test"):
        y = torch.arange(n) % 2
        x = torch.randint(0, 40, (n, size, size), generator=g, dtype=torch.uint8)
        cols = slice(0, size // 2) if bright_side == "left" else slice(size // 2, size)
        x[y == 1, :, cols] += 100
        out[split] = ImageSet(x, y, name=split)
    return out


@pytest.mark.parametrize("side, used", [("left", False), ("right", True)])
def test_tta_auto_keeps_hflip_only_where_validation_rises(side, used):
    from pneumolib.train import _predictions_frame

    splits = sided_splits(side)
    preds, _, info = _predictions_frame(LeftMinusRight(), splits, bf16=False, device="cpu", tta="auto")
    assert info["used"] is used and info["mode"] == "auto"
    # left: the model is right as it is (AUROC 1) and its mirror average is a coin toss; right: the reverse
    assert (info["val_plain"] > info["val_hflip"]) is (not used)
    plain = predict_logits(LeftMinusRight(), splits["test"])
    mirrored = predict_logits(LeftMinusRight(), splits["test"], hflip=True)
    stored = preds.loc[preds["split"] == "test", "logit"].to_numpy()
    np.testing.assert_allclose(stored, mirrored if used else plain, atol=1e-6)


def test_tta_modes_none_and_hflip_and_bad_mode():
    from pneumolib.train import _predictions_frame

    splits = sided_splits("left")
    none_preds, _, none_info = _predictions_frame(LeftMinusRight(), splits, False, "cpu", tta="none")
    flip_preds, _, flip_info = _predictions_frame(LeftMinusRight(), splits, False, "cpu", tta="hflip")
    assert none_info == {"mode": "none", "used": False} and flip_info == {"mode": "hflip", "used": True}
    assert not np.allclose(none_preds["logit"], flip_preds["logit"])
    with pytest.raises(ValueError, match="tta 'mirror' is not known"):
        TrainConfig(tta="mirror")


def test_tta_table_shows_each_runs_decision_and_old_runs_as_none():
    from types import SimpleNamespace

    from pneumolib.evaluate import tta_table

    kept = {"mode": "auto", "used": True, "val_plain": 0.91, "val_hflip": 0.93}
    runs = [
        SimpleNamespace(model_name="resnet18", seed=0, info={"weights": "none", "tta": kept}),
        SimpleNamespace(model_name="resnet18", seed=1, info={"weights": "none", "tta": {**kept, "used": False}}),
        SimpleNamespace(model_name="simple_cnn", seed=0, info={"weights": "none"}),  # trained before the option
    ]
    table = tta_table(runs)
    assert table["hflip kept"].tolist() == [True, False, False]
    assert table["mode"].tolist() == ["auto", "auto", "none"]
    assert table.loc[0, "val (hflip)"] == 0.93 and np.isnan(table.loc[2, "val (plain)"])
    assert table["seed"].tolist() == [0, 1, 0] and "ResNet18" in table.loc[0, "model"]
