import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import KERMANY_FILES

from pneumolib import data as d


@pytest.mark.parametrize(
    "name, label, label3, patient",
    [
        ("IM-0001-0001.jpeg", 0, 0, "IM-0001"),
        ("IM-0011-0001-0002.jpeg", 0, 0, "IM-0011"),
        ("NORMAL2-IM-1427-0001.jpeg", 0, 0, "NORMAL2-IM-1427"),
        ("person1_bacteria_1.jpeg", 1, 1, "person1"),
        ("person1_virus_6.jpeg", 1, 2, "person1"),
        ("person447_virus_921_1.jpeg", 1, 2, "person447"),
        ("/some/dir/person12_bacteria_3.jpg", 1, 1, "person12"),
    ],
)
def test_parse_kermany_filename(name, label, label3, patient):
    parsed = d.parse_kermany_filename(name)
    assert (parsed.label, parsed.label3, parsed.patient_id) == (label, label3, patient)


@pytest.mark.parametrize("name", ["person1_fungus_1.jpeg", "scan_001.png", "IM-abc.jpeg", "person_virus_1.jpeg"])
def test_unknown_filename_names_the_file(name):
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        d.parse_kermany_filename(name)


def test_grouped_split_has_no_patient_overlap():
    rng = np.random.default_rng(0)
    patients = [f"person{p}" for p in rng.integers(0, 120, 600)]
    df = pd.DataFrame({"patient_id": patients, "label3": [hash(p) % 3 for p in patients]})
    tr, va = d.grouped_split(df, 0.2, seed=3)
    assert len(tr) + len(va) == len(df) and len(va) > 0
    assert not set(df.patient_id.iloc[tr]) & set(df.patient_id.iloc[va])
    assert set(df.label3.iloc[va]) == {0, 1, 2}  # stratified: every class reaches validation
    tr2, va2 = d.grouped_split(df, 0.2, seed=3)
    assert np.array_equal(va, va2)  # seeded


def test_md5_mismatch_reports_file_expected_and_actual(mnist_root):
    root, md5 = mnist_root
    with pytest.raises(d.ChecksumError) as err:
        d.load_pneumoniamnist("train", root=root, expected_md5="0" * 32)
    msg = str(err.value)
    assert "pneumoniamnist.npz" in msg and "0" * 32 in msg and md5 in msg


def test_official_md5_is_checked(mnist_root):
    root, _ = mnist_root  # the fixture is not the official file, so medmnist.INFO's md5 must reject it
    with pytest.raises(d.ChecksumError):
        d.load_pneumoniamnist("train", root=root)


def test_load_pneumoniamnist_fixture(mnist_root):
    root, md5 = mnist_root
    train = d.load_pneumoniamnist("train", root=root, expected_md5=md5)
    assert train.images.shape == (40, 28, 28) and train.images.dtype == torch.uint8
    assert train.class_counts() == {"normal": 10, "pneumonia": 30}
    sub = d.stratified_subset(train, 8, seed=0)
    assert len(sub) == 8 and sub.class_counts() == {"normal": 2, "pneumonia": 6}


def test_missing_data_dir_names_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(d.DATA_ENV, str(tmp_path / "nope"))
    with pytest.raises(d.DataNotFoundError, match=d.DATA_ENV):
        d.load_pneumoniamnist("train")


def test_missing_npz_in_configured_root(tmp_path):
    with pytest.raises(d.DataNotFoundError, match="pneumoniamnist.npz"):
        d.load_pneumoniamnist("test", root=tmp_path)


def test_missing_kermany_says_where_to_put_it(tmp_path):
    with pytest.raises(d.DataNotFoundError, match="chest_xray"):
        d.scan_kermany(tmp_path)
    assert not d.kermany_available(tmp_path)


def test_scan_and_load_kermany_fixture(kermany_root):
    df = d.scan_kermany(kermany_root)
    assert len(df) == sum(map(len, KERMANY_FILES.values()))
    assert set(df.label3) == {0, 1, 2}
    splits = d.load_kermany(32, root=kermany_root, val_fraction=0.25, three_class=True)
    assert splits["train"].images.shape[1:] == (32, 32)
    assert len(splits["test"]) == 6  # official test untouched
    assert not set(splits["train"].meta.patient_id) & set(splits["val"].meta.patient_id)
    assert len(splits["train"]) + len(splits["val"]) == (df.split == "train").sum()
    assert splits["train"].classes == d.CLASSES_3


def test_unexpected_folder_and_misplaced_file(kermany_root):
    extra = kermany_root / "kermany" / "chest_xray" / "train" / "COVID"
    extra.mkdir()
    with pytest.raises(ValueError, match="COVID"):
        d.scan_kermany(kermany_root)
    extra.rmdir()
    src = kermany_root / "kermany" / "chest_xray" / "train" / "NORMAL" / "IM-0001-0001.jpeg"
    dst = src.parent.parent / "PNEUMONIA" / src.name
    src.rename(dst)
    with pytest.raises(ValueError, match="IM-0001-0001.jpeg"):
        d.scan_kermany(kermany_root)


def test_corrupt_image_error_names_path(kermany_root):
    bad = kermany_root / "kermany" / "chest_xray" / "test" / "NORMAL" / "IM-0200-0001.jpeg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="IM-0200-0001.jpeg"):
        d.load_kermany(32, root=kermany_root, val_fraction=0.25)


def test_cache_reused_then_invalidated_when_source_changes(kermany_root, isolated_root):
    df = d.scan_kermany(kermany_root)
    paths = df.path.tolist()
    first = d.cached_images(paths, 16, "t", progress=False)
    cache = isolated_root / "build" / "cache" / "t_16px.pt"
    assert cache.exists()
    stamp = cache.stat().st_mtime_ns
    again = d.cached_images(paths, 16, "t", progress=False)
    assert torch.equal(first, again) and cache.stat().st_mtime_ns == stamp  # reused, not rebuilt
    # change one source image: the cache must be rebuilt and reflect the new pixels
    from PIL import Image

    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(paths[0])
    os.utime(paths[0], ns=(stamp + 10**9, stamp + 10**9))
    changed = d.cached_images(paths, 16, "t", progress=False)
    assert changed[0].float().mean() > 250 and not torch.equal(changed[0], first[0])
    assert not list(cache.parent.glob("*.tmp"))  # nothing half-written left behind


def test_framings_make_a_square_in_their_own_way(tmp_path):
    from PIL import Image

    from pneumolib.data import FRAMINGS, _decode, _source_key

    path = tmp_path / "wide.png"
    im = Image.new("L", (40, 20), 200)
    im.paste(0, (0, 0, 4, 20))  # a dark band at the left edge: only what keeps the full width shows it
    im.save(path)
    out = {f: _decode(str(path), 16, f) for f in FRAMINGS}
    assert all(a.shape == (16, 16) and a.dtype == np.uint8 for a in out.values())
    assert out["crop"].min() == 200 and out["crop80"].min() == 200  # centre squares miss the band
    assert out["letterbox"][0].max() == 0 and out["letterbox"][-1].max() == 0  # padded above and below
    assert out["letterbox"][8, 0] < 100 and out["resize"][8, 0] < 100  # the whole width, band included
    assert out["resize"][0, 8] == 200  # squeezed: the top row is image, not padding
    with pytest.raises(ValueError, match="framing"):
        _decode(str(path), 16, "stretch")
    keys = {f: _source_key([str(path)], 16, f) for f in FRAMINGS}
    assert len(set(keys.values())) == 4 and keys["crop"] == _source_key([str(path)], 16)  # old caches stay valid
