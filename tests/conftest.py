"""Shared fixtures: tiny datasets the tests write themselves, and an isolated project root."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def isolated_root(tmp_path, monkeypatch):
    """Every test writes results, caches and checkpoints into its own temporary project root."""
    root = tmp_path / "project"
    (root / "pneumolib").mkdir(parents=True)
    (root / "notebooks").mkdir()
    monkeypatch.setenv("PNEUMOLAB_ROOT", str(root))
    return root


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: on a small shared CPU, 2 threads contending with
    other jobs can run ~10x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def mnist_root(tmp_path):
    """A small npz with PneumoniaMNIST's layout; returns (root, md5)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 12), ("test", 16)):
        labels = (np.arange(n) % 4 != 0).astype(np.uint8).reshape(-1, 1)  # 25 % normal
        images = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        images[labels[:, 0] == 1, 10:18, 10:18] = 255  # pneumonia images carry a bright patch
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    root = tmp_path / "data"
    (root / "medmnist").mkdir(parents=True)
    path = root / "medmnist" / "pneumoniamnist.npz"
    np.savez_compressed(path, **arrays)
    return root, hashlib.md5(path.read_bytes()).hexdigest()


KERMANY_FILES = {
    "train/NORMAL": [f"IM-{i:04d}-0001.jpeg" for i in range(1, 9)]
    + [f"NORMAL2-IM-{i:04d}-0001.jpeg" for i in range(1, 5)],
    "train/PNEUMONIA": [f"person{i}_bacteria_{j}.jpeg" for i in range(1, 9) for j in (1, 2)]
    + [f"person{i}_virus_{i + 20}.jpeg" for i in range(9, 17)],
    "val/NORMAL": ["IM-0100-0001.jpeg"],
    "val/PNEUMONIA": ["person100_bacteria_1.jpeg"],
    "test/NORMAL": ["IM-0001-0001.jpeg", "IM-0200-0001.jpeg", "IM-0201-0001.jpeg"],
    "test/PNEUMONIA": ["person1_bacteria_9.jpeg", "person300_virus_1.jpeg", "person301_bacteria_2.jpeg"],
}


@pytest.fixture
def kermany_root(tmp_path):
    """A tiny chest_xray/ folder with every filename pattern; returns the data root."""
    rng = np.random.default_rng(1)
    root = tmp_path / "kdata"
    for folder, names in KERMANY_FILES.items():
        d = root / "kermany" / "chest_xray" / folder
        d.mkdir(parents=True)
        for name in names:
            h, w = rng.integers(40, 80, 2)
            Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(d / name, quality=90)
    return root
