"""Shareable runs (pneumolib.runs): export, verified import from a file or a URL, and every refusal
leaving nothing installed."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest
import torch
from fakes import write_fake_results
from test_models_train import toy_splits

import pneumolib.runs as R
import pneumolib.train as T
from pneumolib.loop import TrainConfig
from pneumolib.profiles import get_profile
from pneumolib.results import build_dir, results_dir
from pneumolib.train import train_or_load

SMOKE = get_profile("smoke")
CFG = TrainConfig(max_epochs=1, patience=1, batch_size=16, lr=1e-3)


def _train(seed: int = 0):
    return train_or_load("toy", "simple_cnn", toy_splits(32), SMOKE, seed, config=CFG, progress=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An archive of two tiny finished runs and a full set of results files, made in its own project root."""
    root = tmp_path_factory.mktemp("exporter")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PNEUMOLAB_ROOT", str(root))
        torch.set_num_threads(1)
        first = _train(0)
        _train(1)
        write_fake_results(SMOKE)
        manifest = R.export_runs(SMOKE, root / "smoke-runs.tar.gz")
    return root / "smoke-runs.tar.gz", manifest, first


def _nothing_installed(root: Path) -> bool:
    runs = root / "build" / "runs"
    return not (runs.exists() and any(runs.rglob("*"))) and not (root / "results").exists()


def repack(src: Path, dst: Path, change=None, manifest_change=None, rehash: bool = False) -> Path:
    """Copy an archive, changing members (``change(name, data) -> data``) and the manifest; with
    ``rehash`` the manifest records the changed files' new sizes and sha256 (a consistent forgery)."""
    with tarfile.open(src, "r:gz") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    manifest = json.loads(members[0][1])
    members = [(n, change(n, d) if change else d) for n, d in members[1:]]
    if rehash:
        for name, data in members:
            manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if manifest_change:
        manifest_change(manifest)
    with tarfile.open(dst, "w:gz") as tar:
        for name, data in [("manifest.json", json.dumps(manifest).encode()), *members]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dst


# --------------------------------------------------------------------------- export
def test_export_writes_manifest_checksums_and_sidecar(exported):
    archive, manifest, _ = exported
    assert manifest["profile"] == "smoke" and manifest["profile_hash"] == R.profile_hash(SMOKE)
    assert manifest["runs"] == ["toy/simple_cnn-none-seed0", "toy/simple_cnn-none-seed1"]
    assert "git_commit" in manifest and manifest["schema_versions"]["binary"] == 1
    names = set(manifest["files"])
    assert {f"runs/toy/simple_cnn-none-seed0/{f}" for f in R.RUN_FILES} <= names
    assert {"results/binary.json", "results/calibration.json", "results/run_metadata.json"} <= names
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert archive.with_name(archive.name + ".sha256").read_text() == f"{digest}  {archive.name}\n"
    assert manifest["archive_sha256"] == digest


def test_export_refuses_results_of_other_profile_settings(tmp_path):
    _train(0)
    write_fake_results(SMOKE)
    path = results_dir("smoke") / "binary.json"
    path.write_text(path.read_text().replace(R.profile_hash(SMOKE), "0" * 12))
    with pytest.raises(R.RunsArchiveError, match="binary.json was written under other settings.*rerun notebook 03"):
        R.export_runs(SMOKE, tmp_path / "x.tar.gz")


def test_export_refuses_without_runs_or_with_a_damaged_run(tmp_path):
    with pytest.raises(R.RunsArchiveError, match="no finished runs of profile 'smoke'.*python -m pneumolib.run"):
        R.export_runs(SMOKE, tmp_path / "x.tar.gz")
    run = _train(0)
    best = build_dir("runs", "smoke", "toy", "simple_cnn-none-seed0") / "best.pt"
    best.write_bytes(best.read_bytes()[:-10])
    with pytest.raises(R.RunsArchiveError, match="best.pt.*truncated or changed.*Rerun the notebook"):
        R.export_runs(SMOKE, tmp_path / "x.tar.gz")
    assert run and not (tmp_path / "x.tar.gz").exists()


# --------------------------------------------------------------------------- import
def test_import_installs_and_the_notebooks_then_load(exported, isolated_root, monkeypatch):
    archive, _, first = exported
    R.import_runs(str(archive))
    assert json.loads((results_dir("smoke") / "binary.json").read_text()) == json.loads(
        (archive.parent / "results" / "smoke" / "binary.json").read_text()
    )
    monkeypatch.setattr(T, "fit", lambda *a, **k: pytest.fail("an imported run must be loaded, not retrained"))
    again = _train(0)
    assert again.loaded and again.info["best_epoch"] == first.info["best_epoch"]
    x = toy_splits(32)["test"].as_float()[:4]
    again.model.eval(), first.model.eval()
    assert torch.equal(again.model(x), first.model(x))


def test_import_replaces_same_runs_and_keeps_others(exported, isolated_root):
    archive, _, _ = exported
    other = build_dir("runs", "smoke", "toy", "resnet18-none-seed0")
    (other / "done.json").write_text("{}")
    R.import_runs(str(archive))
    R.import_runs(str(archive))  # a second import replaces the first one's runs
    runs = build_dir("runs", "smoke", "toy")
    assert sorted(p.name for p in runs.iterdir()) == [
        "resnet18-none-seed0",
        "simple_cnn-none-seed0",
        "simple_cnn-none-seed1",
    ]


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncated", "truncated or damaged"),
        ("tampered", "differs from its manifest entry"),
        ("profile_hash", "other settings of profile 'smoke'"),
        ("schema", "incompatible schema version.*binary 0"),
        ("format", "archive format version 99"),
        ("traversal", "lists '../evil.json'"),
        ("pickle", "weights-only load refuses"),
        ("marker", "trained under other settings"),
        ("results", "results/binary.json in the archive"),
        ("results_hash", "results/binary.json in the archive was written under other settings"),
    ],
)
def test_a_bad_archive_is_refused_and_nothing_is_installed(exported, isolated_root, tmp_path, damage, message):
    archive, _, _ = exported
    bad = tmp_path / "bad.tar.gz"
    best = "runs/toy/simple_cnn-none-seed0/best.pt"
    if damage == "truncated":
        bad.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    elif damage == "tampered":
        repack(archive, bad, change=lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n == best else d)
    elif damage == "profile_hash":
        repack(archive, bad, manifest_change=lambda m: m.update(profile_hash="0" * 12))
    elif damage == "schema":
        repack(archive, bad, manifest_change=lambda m: m["schema_versions"].update(binary=0))
    elif damage == "format":
        repack(archive, bad, manifest_change=lambda m: m.update(format_version=99))
    elif damage == "traversal":
        repack(archive, bad, manifest_change=lambda m: m["files"].update({"../evil.json": {}}))
    elif damage == "pickle":  # a consistent forgery whose checkpoint holds a Python object

        def evil(name, data):
            if name == best:
                buffer = io.BytesIO()
                torch.save({"weight": Path("x")}, buffer)
                return buffer.getvalue()
            if name == best.replace("best.pt", "done.json"):
                info = json.loads(data)
                info["files"].pop("best.pt")
                return json.dumps(info).encode()
            return data

        repack(archive, bad, change=evil, rehash=True)
    elif damage == "marker":
        repack(
            archive,
            bad,
            change=lambda n, d: d.replace(R.profile_hash(SMOKE).encode(), b"0" * 12) if n.endswith("done.json") else d,
            rehash=True,
        )
    elif damage == "results":
        repack(
            archive, bad, change=lambda n, d: b'{"schema_version": 1}' if n == "results/binary.json" else d, rehash=True
        )
    elif damage == "results_hash":
        other = R.profile_hash(SMOKE).encode()
        repack(
            archive,
            bad,
            change=lambda n, d: d.replace(other, b"0" * 12) if n == "results/binary.json" else d,
            rehash=True,
        )
    with pytest.raises(R.RunsArchiveError, match=message):
        R.import_runs(str(bad))
    assert _nothing_installed(isolated_root)
    assert not list(build_dir().glob(".import-*"))  # the staging folder is gone


def test_an_install_that_fails_halfway_puts_everything_back(exported, isolated_root, monkeypatch):
    archive, _, _ = exported
    R.import_runs(str(archive))
    before = {p: p.read_bytes() for p in sorted(isolated_root.rglob("*")) if p.is_file()}
    real, calls = os.replace, []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 5:  # after some runs and results files moved
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(R.os, "replace", failing)
    with pytest.raises(R.RunsArchiveError, match="disk full.*everything was put back"):
        R.import_runs(str(archive))
    monkeypatch.setattr(R.os, "replace", real)
    after = {p: p.read_bytes() for p in sorted(isolated_root.rglob("*")) if p.is_file() and ".import-" not in str(p)}
    assert after == before


# --------------------------------------------------------------------------- URLs
@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / "www"``."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_import_from_a_url_checks_the_published_sha256(exported, isolated_root, server, capsys):
    archive, manifest, _ = exported
    www, base = server
    (www / archive.name).write_bytes(archive.read_bytes())
    (www / (archive.name + ".sha256")).write_text(f"{manifest['archive_sha256']}  {archive.name}\n")
    R.import_runs(f"{base}/{archive.name}")
    assert (build_dir("runs", "smoke", "toy", "simple_cnn-none-seed1") / "best.pt").exists()
    assert "download smoke-runs.tar.gz" in capsys.readouterr().err  # the progress bar
    assert not list(build_dir("downloads").iterdir())  # the download is removed once installed


def test_a_url_with_a_wrong_or_missing_checksum_installs_nothing(exported, isolated_root, server):
    archive, manifest, _ = exported
    www, base = server
    (www / "runs.tar.gz").write_bytes(archive.read_bytes()[:-100])  # a truncated copy
    with pytest.raises(R.RunsArchiveError, match="no checksum to verify.*--sha256"):
        R.import_runs(f"{base}/runs.tar.gz")
    with pytest.raises(R.RunsArchiveError, match="sha256 .* is not the expected"):
        R.import_runs(f"{base}/runs.tar.gz", sha256=manifest["archive_sha256"])
    with pytest.raises(R.RunsArchiveError, match="sha256 .* is not the expected"):
        R.import_runs(f"{base}/runs.tar.gz#sha256={manifest['archive_sha256']}")
    with pytest.raises(R.RunsArchiveError, match="download failed.*404"):
        R.import_runs(f"{base}/missing.tar.gz", sha256=manifest["archive_sha256"])
    with pytest.raises(R.RunsArchiveError, match="is not a sha256"):
        R.import_runs(f"{base}/runs.tar.gz", sha256="abc")
    assert _nothing_installed(isolated_root)
    assert not list(build_dir("downloads").iterdir())


def test_command_line(exported, isolated_root, capsys, tmp_path):
    archive, _, _ = exported
    assert R.main(["import", str(archive)]) == 0
    assert "installed 2 runs and 7 results files of profile 'smoke'" in capsys.readouterr().out
    assert R.main(["import", str(tmp_path / "nope.tar.gz")]) == 1
    assert "error: " in capsys.readouterr().err
    assert R.main(["export", "--profile", "smoke", "--out", str(tmp_path / "again.tar.gz")]) == 0
    assert "wrote " in capsys.readouterr().out and (tmp_path / "again.tar.gz.sha256").exists()
