"""Issue 18: corrupt or partial files never yield silent wrong numbers.

One test (or a few) per failure the bad-input probe found. Each fails on the code before the fix:
a damaged artefact is detected, named, and either set aside and recomputed or refused with the fix.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from test_models_train import CFG, SMOKE, toy_splits

import pneumolib
from pneumolib import data as d
from pneumolib import results as R
from pneumolib import run, schema
from pneumolib.loop import fit
from pneumolib.models import build_model
from pneumolib.results import CorruptArtefactError
from pneumolib.train import train_or_load

pytestmark = pytest.mark.usefixtures("one_thread")
PACKAGE_PARENT = str(Path(pneumolib.__file__).resolve().parents[1])


def _run_dir(root: Path, seed: int) -> Path:
    return root / "build" / "runs" / "smoke" / "toy" / f"simple_cnn-none-seed{seed}"


def _set_aside(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}.corrupt-*"))


@pytest.fixture
def finished(isolated_root):
    """A finished toy run: (splits, run, run folder)."""
    splits = toy_splits(32)
    first = train_or_load("toy", "simple_cnn", splits, SMOKE, 0, config=CFG, progress=False)
    return splits, first, _run_dir(isolated_root, 0)


def _reload(splits):
    return train_or_load("toy", "simple_cnn", splits, SMOKE, 0, config=CFG, progress=False)


def _assert_recomputed(again, first, run_dir, name, capsys):
    """The damaged file was set aside with a note naming it, and the run retrained to the same numbers."""
    assert not again.loaded
    assert len(_set_aside(run_dir, name)) == 1
    err = capsys.readouterr().err
    assert str(run_dir / name) in err and "set aside as" in err
    np.testing.assert_array_equal(again.split_arrays("test")[2], first.split_arrays("test")[2])
    assert len(again.predictions) == len(first.predictions)


# --------------------------------------------------------------------------- 1. partial CSVs
def _truncate(path: Path, keep: float = 0.5, at_line: bool = False) -> None:
    text = path.read_text()
    cut = text[: int(len(text) * keep)]
    path.write_text(cut[: cut.rindex("\n") + 1] if at_line else cut)


def test_marker_records_rows_and_sha256(finished):
    _, first, run_dir = finished
    files = json.loads((run_dir / "done.json").read_text())["files"]
    assert set(files) == {"predictions.csv", "history.csv", "best.pt"}
    assert files["predictions.csv"]["rows"] == len(first.predictions) == 32
    assert files["history.csv"]["rows"] == len(first.history)
    assert files["best.pt"]["sha256"] == R.file_digest(run_dir / "best.pt")


def test_truncated_predictions_are_set_aside_and_recomputed(finished, capsys):
    splits, first, run_dir = finished
    _truncate(run_dir / "predictions.csv")
    capsys.readouterr()
    _assert_recomputed(_reload(splits), first, run_dir, "predictions.csv", capsys)


@pytest.mark.parametrize("at_line", [True, False], ids=["cut-at-a-row", "cut-mid-row"])
def test_legacy_marker_without_checksums_still_catches_truncated_predictions(finished, capsys, at_line):
    splits, first, run_dir = finished
    info = json.loads((run_dir / "done.json").read_text())
    del info["files"]  # a marker written before checksums existed
    (run_dir / "done.json").write_text(json.dumps(info))
    assert _reload(splits).loaded  # intact legacy run: loaded, not retrained
    _truncate(run_dir / "predictions.csv", 0.7, at_line)
    capsys.readouterr()
    _assert_recomputed(_reload(splits), first, run_dir, "predictions.csv", capsys)


def test_truncated_history_is_set_aside_not_nan_curves(finished, capsys):
    splits, first, run_dir = finished
    _truncate(run_dir / "history.csv", 0.6, at_line=True)
    capsys.readouterr()
    again = _reload(splits)
    _assert_recomputed(again, first, run_dir, "history.csv", capsys)
    assert not again.history[["train_loss", "val_loss"]].isna().any().any()
    pd.testing.assert_frame_equal(again.history.drop(columns="seconds"), first.history.drop(columns="seconds"))


# --------------------------------------------------------------------------- 2. image modes
def _gray(h=40, w=60) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w), dtype=np.uint8)


def _image(mode: str, a: np.ndarray) -> Image.Image:
    wide = a.astype(np.uint16) * 257  # 8 bits spread over the full 16-bit range
    alpha = np.full_like(a, 77)
    if mode == "I;16":
        return Image.fromarray(wide)
    if mode == "I;16B":
        return Image.frombytes("I;16B", (a.shape[1], a.shape[0]), wide.astype(">u2").tobytes())
    if mode == "I":
        return Image.fromarray(wide.astype(np.int32))
    if mode == "RGB":
        return Image.fromarray(np.stack([a, a, a], -1))
    if mode == "RGBA":
        return Image.fromarray(np.stack([a, a, a, alpha], -1))
    if mode == "LA":
        return Image.fromarray(np.stack([a, alpha], -1), "LA")
    if mode == "P":
        im = Image.fromarray(a, "P")
        im.putpalette([v for i in range(256) for v in (i, i, i)])  # a grayscale palette
        return im
    return Image.fromarray(a)  # "L"


@pytest.mark.parametrize(
    "mode, ext",
    [
        ("L", "png"),
        ("I;16", "png"),
        ("I;16B", "tif"),
        ("I", "tif"),
        ("RGB", "png"),
        ("RGBA", "png"),
        ("LA", "png"),
        ("P", "png"),
    ],
)
def test_every_image_mode_decodes_to_the_same_pixels(tmp_path, mode, ext):
    a = _gray()
    path = tmp_path / f"img.{ext}"
    _image(mode, a).save(path)
    with Image.open(path) as im:
        assert im.mode == mode  # the file really is of this mode
    reference = tmp_path / "ref.png"
    Image.fromarray(a).save(reference)
    np.testing.assert_array_equal(d._decode(str(path), 16), d._decode(str(reference), 16))


def test_sixteen_bit_image_is_not_white_and_12_bit_fills_the_range(tmp_path):
    a = _gray()
    _image("I;16", a).save(tmp_path / "x16.png")
    decoded = d._decode(str(tmp_path / "x16.png"), 40)
    assert decoded.mean() < 200 and abs(float(decoded.mean()) - float(a[:, 10:50].mean())) < 3
    twelve = np.round(a.astype(np.float64) * 4095 / 255).astype(np.uint16)  # a 12-bit scan in a 16-bit file
    Image.fromarray(twelve).save(tmp_path / "x12.png")
    np.testing.assert_allclose(d.to_gray8(Image.open(tmp_path / "x12.png")), a, atol=1)


def test_one_bit_image_is_black_and_white(tmp_path):
    a = _gray()
    Image.fromarray(a).convert("1").save(tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "1"
        out = np.asarray(d.to_gray8(im))
    assert set(np.unique(out)) <= {0, 255}


# --------------------------------------------------------------------------- 3. damaged checkpoints and JSON
BAD_CHECKPOINTS = {
    "empty": b"",
    "garbage": b"this is not a checkpoint\n" * 20,
    "pickled-object": None,  # filled in by _bad_checkpoint: torch.save of a non-tensor object
}


def _bad_checkpoint(path: Path, kind: str) -> None:
    if kind == "pickled-object":
        torch.save({"weights": Path("x")}, path)
    else:
        path.write_bytes(BAD_CHECKPOINTS[kind])


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_load_checkpoint_names_the_file_and_never_suggests_weights_only_false(tmp_path, kind):
    path = tmp_path / "best.pt"
    _bad_checkpoint(path, kind)
    with pytest.raises(CorruptArtefactError) as err:
        R.load_checkpoint(path)
    assert err.value.path == path and str(path) in str(err.value) and "Delete it" in str(err.value)
    assert "weights_only=False" not in str(err.value) and err.value.__cause__ is None


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_damaged_best_checkpoint_of_a_finished_run_is_set_aside_and_retrained(finished, capsys, kind):
    splits, first, run_dir = finished
    _bad_checkpoint(run_dir / "best.pt", kind)
    capsys.readouterr()
    _assert_recomputed(_reload(splits), first, run_dir, "best.pt", capsys)


def test_legacy_marker_with_damaged_best_checkpoint(finished, capsys):
    splits, first, run_dir = finished
    info = json.loads((run_dir / "done.json").read_text())
    del info["files"]
    (run_dir / "done.json").write_text(json.dumps(info))
    (run_dir / "best.pt").write_bytes(b"")
    capsys.readouterr()
    _assert_recomputed(_reload(splits), first, run_dir, "best.pt", capsys)


@pytest.mark.parametrize("content", ['{"config_key": "abc", "da', "[]", '{"config_key": 1}'])
def test_damaged_run_marker_is_set_aside_and_retrained(finished, capsys, content):
    splits, first, run_dir = finished
    (run_dir / "done.json").write_text(content)
    capsys.readouterr()
    _assert_recomputed(_reload(splits), first, run_dir, "done.json", capsys)


@pytest.mark.parametrize("damage", ["last", "best"])
def test_damaged_resume_state_restarts_training_with_a_note(isolated_root, capsys, damage):
    splits = toy_splits(32)
    torch.manual_seed(0)
    fresh = fit(build_model("simple_cnn"), splits["train"], splits["val"], CFG, isolated_root / "a", progress=False)
    run_dir = isolated_root / "b"
    torch.manual_seed(0)
    fit(
        build_model("simple_cnn"),
        splits["train"],
        splits["val"],
        dataclasses.replace(CFG, max_epochs=1),
        run_dir,
        progress=False,
    )  # an interrupted run: last.pt and best.pt exist, no done.json
    # max_epochs is part of the config key: give last.pt the full config's key, as after a kill
    state = R.load_checkpoint(run_dir / "last.pt")
    R.save_checkpoint(run_dir / "last.pt", {**state, "config_key": CFG.key()})
    (run_dir / f"{damage}.pt").write_bytes(b"\x00" * 100)
    capsys.readouterr()
    torch.manual_seed(0)
    resumed = fit(build_model("simple_cnn"), splits["train"], splits["val"], CFG, run_dir, progress=False)
    err = capsys.readouterr().err
    assert str(run_dir / f"{damage}.pt") in err and "restarts from epoch 1" in err
    assert len(_set_aside(run_dir, f"{damage}.pt")) == 1
    pd.testing.assert_frame_equal(resumed.history.drop(columns="seconds"), fresh.history.drop(columns="seconds"))


def test_damaged_results_json_names_the_file(isolated_root):
    path = R.results_dir("smoke") / "binary.json"
    path.write_text('{"models": {"simple_cnn-scratch": {"runs": [')
    for call in (
        lambda: R.read_json(path),
        lambda: schema.read_results(SMOKE, "binary"),
        lambda: schema.record_skip(SMOKE, "binary", "resnet18-imagenet", "offline"),
        lambda: R.update_json(path, "skipped", {}),
    ):
        with pytest.raises(CorruptArtefactError) as err:
            call()
        assert err.value.path == path and "binary.json: is not valid JSON" in str(err.value)
    assert path.read_text() == '{"models": {"simple_cnn-scratch": {"runs": ['  # never overwritten


def _runner_project(root: Path, tmp_path: Path, monkeypatch) -> None:
    """The conftest project root with one Kermany notebook: skipped without data, so no kernel starts."""
    params = nbformat.v4.new_code_cell('profile = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell("import pneumolib")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "notebooks" / "05_three_class.ipynb")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(d.DATA_ENV, str(tmp_path / "empty"))


def test_damaged_run_metadata_is_set_aside_by_the_runner(isolated_root, tmp_path, monkeypatch, capsys):
    _runner_project(isolated_root, tmp_path, monkeypatch)
    meta = R.results_dir("smoke") / run.METADATA_FILE
    meta.write_text('{"notebooks": {"01_data')
    assert run.main(["--only", "05"]) == 0
    assert len(_set_aside(meta.parent, meta.name)) == 1
    assert str(meta) in capsys.readouterr().err
    assert json.loads(meta.read_text())["notebooks"]["05_three_class"]["status"] == "skipped"


def test_damaged_image_cache_is_rebuilt_with_a_note(kermany_root, isolated_root, capsys):
    paths = d.scan_kermany(kermany_root).path.tolist()
    first = d.cached_images(paths, 16, "k", progress=False)
    cache = isolated_root / "build" / "cache" / "k_16px.pt"
    cache.write_bytes(cache.read_bytes()[:100])
    again = d.cached_images(paths, 16, "k", progress=False)
    assert torch.equal(first, again) and str(cache) in capsys.readouterr().out
    stored = R.load_checkpoint(cache)
    R.save_checkpoint(cache, {**stored, "images": stored["images"][:3]})  # right key, too few images
    assert torch.equal(d.cached_images(paths, 16, "k", progress=False), first)


# --------------------------------------------------------------------------- 5. missing class folder
@pytest.mark.parametrize("folder", ["test/PNEUMONIA", "train/NORMAL", "val"])
def test_missing_split_or_class_folder_is_an_error_before_training(kermany_root, folder):
    import shutil

    shutil.rmtree(kermany_root / "kermany" / "chest_xray" / folder)
    with pytest.raises(d.DataNotFoundError, match=folder.split("/")[0] + "/") as err:
        d.load_kermany(32, root=kermany_root, val_fraction=0.25)
    assert "missing or empty" in str(err.value)


# --------------------------------------------------------------------------- 6. concurrent updates
def _writer(path: str, prefix: str, n: int) -> None:
    for i in range(n):
        R.update_json(path, f"{prefix}-{i:03d}", i)


@pytest.mark.skipif(not hasattr(os, "fork") or R.fcntl is None, reason="needs fork and fcntl")
def test_concurrent_updates_lose_no_key(tmp_path):
    path = tmp_path / "results" / "shared.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), f"p{k}", 60)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    data = json.loads(path.read_text())
    assert len(data) == 240 and all(f"p{k}-{i:03d}" in data for k in range(4) for i in range(60))


def test_lock_is_reentrant_for_nested_read_modify_write(tmp_path):
    path = tmp_path / "r.json"
    with R.locked(path), R.edit_json(path) as data:
        data["a"] = 1
        R.update_json(path, "b", 2)  # nested on the same file: must not deadlock
    assert json.loads(path.read_text()) == {"a": 1}  # the outer block's write comes last


# --------------------------------------------------------------------------- 7. temporary files
def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        R.write_json(tmp_path / "out" / "x.json", {"a": 1})
    assert list((tmp_path / "out").iterdir()) == []


def test_temp_file_of_a_killed_writer_is_removed_when_the_folder_is_opened(isolated_root):
    folder = _run_dir(isolated_root, 0)
    folder.mkdir(parents=True)
    code = (
        "import os, time, sys; import pneumolib.results as R\n"
        "os.fsync = lambda fd: time.sleep(60)  # hang mid-save, like a kill during torch.save\n"
        f"R.save_checkpoint({str(folder / 'last.pt')!r}, {{'x': __import__('torch').zeros(1000)}})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": PACKAGE_PARENT})
    try:
        deadline = time.time() + 60
        while not list(folder.glob(".last.pt.*.tmp")) and time.time() < deadline:
            time.sleep(0.1)
        leaked = list(folder.glob(".last.pt.*.tmp"))
        assert len(leaked) == 1 and str(proc.pid) in leaked[0].name
        assert R.remove_stale_temp_files(folder) == []  # its writer is alive: left alone
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    live = folder / f".best.pt.{os.getpid()}-0123abcd.tmp"  # this process is writing it
    live.write_bytes(b"x")
    legacy = folder / ".done.json.k2j3_x9a.tmp"  # mkstemp name of earlier versions, a day old
    legacy.write_bytes(b"x")
    os.utime(legacy, (time.time() - 86400,) * 2)
    assert leaked[0].exists()
    R.build_dir("runs", "smoke", "toy", folder.name)  # the first time this process opens the run folder
    assert not leaked[0].exists() and not legacy.exists() and live.exists()


# --------------------------------------------------------------------------- 8. stop decision survives a kill
@pytest.mark.parametrize("legacy", [False, True], ids=["stopped-flag", "old-last-pt"])
def test_resume_after_early_stop_trains_no_extra_epoch(isolated_root, legacy):
    splits = toy_splits(32)
    cfg = dataclasses.replace(CFG, max_epochs=12, patience=2, monitor="val_auroc")  # AUROC 1 cannot improve
    torch.manual_seed(0)
    first = fit(build_model("simple_cnn"), splits["train"], splits["val"], cfg, isolated_root / "r", progress=False)
    assert len(first.history) < cfg.max_epochs  # early stopping ended it
    # killed now: last.pt holds the final epoch, done.json was never written
    last = isolated_root / "r" / "last.pt"
    state = R.load_checkpoint(last)
    assert state["stopped"] is True
    if legacy:
        del state["stopped"]
        R.save_checkpoint(last, state)
    torch.manual_seed(1)
    resumed = fit(build_model("simple_cnn"), splits["train"], splits["val"], cfg, isolated_root / "r", progress=False)
    assert len(resumed.history) == len(first.history) and resumed.best_epoch == first.best_epoch
    x = splits["test"].as_float()
    first.model.eval(), resumed.model.eval()
    assert torch.equal(first.model(x), resumed.model(x))  # the best weights, not one more epoch


# --------------------------------------------------------------------------- 9. papermill
def test_committed_notebooks_name_their_kernel():
    from papermill.utils import nb_kernel_name

    root = Path(__file__).resolve().parents[1]
    paths = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert paths and all(nb_kernel_name(nbformat.read(p, as_version=4)) == "python3" for p in paths)


def test_runner_rejects_an_unknown_parameter(isolated_root, tmp_path, monkeypatch, capsys):
    _runner_project(isolated_root, tmp_path, monkeypatch)
    assert run.main(["--only", "05", "-p", "profil", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "05_three_class.ipynb has no parameter 'profil'" in err and "defines: profile" in err
    assert not (isolated_root / "results" / "smoke" / run.METADATA_FILE).exists()  # nothing ran


def test_plain_papermill_runs_and_fails_on_an_unknown_parameter(tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    params = nbformat.v4.new_code_cell('profile = "smoke"  # papermill injects "cpu" or "gpu"')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(
        cells=[params, nbformat.v4.new_code_cell("import pneumolib\nopen('seen.txt', 'w').write(profile)")]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, src)
    # as `papermill nb.ipynb out.ipynb -p profile cpu`: no kernel name given, none stripped
    papermill.execute_notebook(
        str(src), str(tmp_path / "ok.ipynb"), parameters={"profile": "cpu"}, cwd=str(tmp_path), progress_bar=False
    )
    assert (tmp_path / "seen.txt").read_text() == "cpu"
    with pytest.raises(PapermillExecutionError, match="unknown notebook parameter.*'profil'"):
        papermill.execute_notebook(
            str(src), str(tmp_path / "bad.ipynb"), parameters={"profil": "cpu"}, cwd=str(tmp_path), progress_bar=False
        )


def test_injected_parameter_check_reads_the_cell_history():
    from pneumolib.parameters import check_injected_parameters as check

    check(["", '%matplotlib inline\nprofile = "smoke"', '# Parameters\nprofile = "cpu"\n', "import pneumolib"])
    check(["", 'profile = "smoke"', "import pneumolib"])  # nbval / Jupyter: nothing injected
    with pytest.raises(ValueError, match="'profil'.*defines profile"):
        check(["", 'profile = "smoke"', '# Parameters\nprofil = "cpu"\n'])


def test_a_papermill_run_is_told_apart_from_an_interactive_one():
    from pneumolib.parameters import run_by_papermill

    assert run_by_papermill(["", 'profile = "smoke"', '# Parameters\nprofile = "cpu"\n', "import pneumolib"])
    assert not run_by_papermill(["", 'profile = "smoke"', "import pneumolib"])  # JupyterLab, nbval
    assert not run_by_papermill(["", "x = 1  # Parameters\n"])
    assert not run_by_papermill()  # outside a kernel


# --------------------------------------------------------------------------- 10. data paths, file modes
def _offline(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise socket.gaierror("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)


def test_unset_data_env_offline_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv(d.DATA_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _offline(monkeypatch)
    with pytest.raises(d.DataNotFoundError, match=f"could not download pneumoniamnist.npz.*{d.DATA_ENV}"):
        d.load_pneumoniamnist("test")


def test_empty_data_env_is_an_error_and_creates_nothing(tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv(d.DATA_ENV, "")
    with pytest.raises(d.DataNotFoundError, match=f"{d.DATA_ENV} is set but empty"):
        d.load_pneumoniamnist("test")
    assert list((tmp_path / "cwd").iterdir()) == []
    assert run.data_config_problem() and "empty" in run.data_config_problem()


def test_empty_data_folder_gets_nothing_created(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv(d.DATA_ENV, str(tmp_path / "data"))
    with pytest.raises(d.DataNotFoundError, match="pneumoniamnist.npz not found"):
        d.load_pneumoniamnist("test")
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = [
            R.write_json(tmp_path / "a.json", {}),
            R.write_text(tmp_path / "b.txt", "x"),
            R.save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(1)}),
        ]
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in written] == [oct(mode)] * 3
