"""Data audits: what the data holds, what overlaps, and how train and test differ.

* :func:`coverage` and :func:`train_share`: which part of the official Kermany folders is present;
* :func:`overlap_report`: patients and byte-identical files shared by the official train and test folders;
* :func:`image_statistics`, :func:`aspect_ratios`, :func:`compare_distributions`: per-image statistics
  and how two groups of images differ;
* :func:`shift_audit`: notebook 05's audit of the normal class, train folder vs test folder: statistics,
  the original images' aspect ratio, and how the ensemble's errors on normal test images follow it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy.stats import ks_2samp, spearmanr
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from .data import CLASSES_3, SPLITS, ImageSet, file_sha256
from .results import project_root


# --------------------------------------------------------------------------- coverage and overlap
def overlap_report(df: pd.DataFrame, hash_column: str = "sha256") -> dict:
    """Patient ids and byte-identical files shared between the official train and test folders.

    ``df`` needs ``split``, ``patient_id`` and ``hash_column``. Duplicates *within* a split are
    counted too (the dataset ships byte-identical files under two names).
    """
    tr, te = df[df["split"] == "train"], df[df["split"] == "test"]
    shared_patients = sorted(set(tr["patient_id"]) & set(te["patient_id"]))
    shared_hashes = set(tr[hash_column]) & set(te[hash_column])
    dup_groups = df.groupby(hash_column)["filename"].count()
    return {
        "images": {s: int((df["split"] == s).sum()) for s in SPLITS},
        "patients": {s: int(df.loc[df["split"] == s, "patient_id"].nunique()) for s in SPLITS},
        "shared_patient_ids_train_test": len(shared_patients),
        "test_images_of_shared_patients": int(te["patient_id"].isin(shared_patients).sum()),
        "duplicate_files_train_test": len(shared_hashes),
        "duplicate_pairs_any_split": int((dup_groups[dup_groups > 1] - 1).sum()),
        "shared_patient_examples": shared_patients[:5],
    }


def hash_present_files(df: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """Add a ``sha256`` column with the hash of each present file's bytes."""
    hashes = [file_sha256(p) for p in tqdm(df["path"], desc="hashing", disable=not progress, mininterval=1)]
    return df.assign(sha256=hashes)


def coverage(df: pd.DataFrame, manifest: pd.DataFrame | None) -> pd.DataFrame:
    """Images present vs listed in the full manifest, by split and three-class label."""
    present = df.groupby(["split", "label3"]).size().rename("present")
    if manifest is None:
        table = present.to_frame()
    else:
        listed = manifest.groupby(["split", "label3"]).size().rename("full_dataset")
        table = pd.concat([present, listed], axis=1).fillna(0).astype(int)
        table["share"] = (table["present"] / table["full_dataset"]).round(3)
    table.index = table.index.set_levels([table.index.levels[0], [CLASSES_3[i] for i in table.index.levels[1]]])
    return table


def train_share(present: pd.DataFrame, manifest: pd.DataFrame | None) -> float | None:
    """Share of the official Kermany training folder present here (None without the full manifest)."""
    if manifest is None:
        return None
    table = coverage(present, manifest)
    return float(table.loc["train", "present"].sum() / table.loc["train", "full_dataset"].sum())


# --------------------------------------------------------------------------- train/test shift
def image_statistics(images, border_fraction: float = 0.125) -> pd.DataFrame:
    """Per-image ``mean`` intensity, ``std`` (contrast), ``border`` and ``centre`` mean, in [0, 1].

    ``border`` is the mean of the outer frame ``border_fraction`` of the side wide (dark borders and
    collimation show up there); ``centre`` the mean of the rest. ``images``: ``(N, H, W)`` uint8.
    """
    x = torch.as_tensor(np.asarray(images))
    if x.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {tuple(x.shape)}")
    if not 0 < border_fraction < 0.5:
        raise ValueError(f"border_fraction must be in (0, 0.5), got {border_fraction}")
    x = x.double() / 255 if not torch.is_floating_point(x) else x.double()
    h, w = x.shape[1:]
    bh, bw = max(1, round(h * border_fraction)), max(1, round(w * border_fraction))
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[bh : h - bh, bw : w - bw] = False
    flat = x.flatten(1)
    return pd.DataFrame(
        {
            "mean": flat.mean(1).numpy(),
            "std": flat.std(1, unbiased=False).numpy(),
            "border": x[:, mask].mean(1).numpy(),
            "centre": x[:, ~mask].mean(1).numpy(),
        }
    )


def _committed(name: str, root: str | os.PathLike | None) -> dict | None:
    path = Path(root or project_root()) / "benchmarks" / name
    return json.loads(path.read_text()) if path.exists() else None


def framing_study(root: str | os.PathLike | None = None) -> dict | None:
    """The committed framing study (``benchmarks/framing.json``, written by ``scripts/framing_study.py``),
    or None if it has not been run."""
    return _committed("framing.json", root)


def framing_check_result(root: str | os.PathLike | None = None) -> dict | None:
    """The committed framing check (``benchmarks/framing-check/check.json``, written by ``scripts/framing_check.py``:
    the framing study's choice measured on every model in a full ``cpu`` run), or None if it has not been run."""
    return _committed("framing-check/check.json", root)


def resolution_study(root: str | os.PathLike | None = None) -> dict | None:
    """The committed resolution study (``benchmarks/resolution.json``, written by ``scripts/resolution_study.py``),
    or None if it has not been run."""
    return _committed("resolution.json", root)


def aspect_ratios(paths: Sequence[str]) -> np.ndarray:
    """Width / height of each image file, read from the file header (no decoding).

    The default loader centre-crops every X-ray to a square (``data._decode``): the ratio itself is
    gone, but how the patient is framed in the crop still follows it, and a squeezed or letterboxed
    image would carry it outright. Notebook 05 measures how it differs by class and split and how
    the error rate follows it; ``scripts/framing_study.py`` compares the framings.
    """
    out = np.empty(len(paths))
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                w, h = im.size
        except OSError as err:
            raise ValueError(f"{p}: cannot read image header ({err})") from err
        out[i] = w / h
    return out


def compare_distributions(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """One row per shared column: means, difference, Cohen's d (pooled SD) and the two-sample KS test."""
    cols = [c for c in a.columns if c in b.columns]
    if not cols:
        raise ValueError("the two tables share no column to compare")
    rows = {}
    for c in cols:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        if len(x) < 2 or len(y) < 2:
            raise ValueError(f"column {c!r}: need at least 2 values per group, got {len(x)} and {len(y)}")
        pooled = np.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
        ks = ks_2samp(x, y)
        rows[c] = {
            f"mean {names[0]}": x.mean(),
            f"mean {names[1]}": y.mean(),
            "difference": y.mean() - x.mean(),
            "cohen_d": (y.mean() - x.mean()) / pooled if pooled > 0 else float("nan"),
            "ks_statistic": float(ks.statistic),
            "ks_p": float(ks.pvalue),
        }
    return pd.DataFrame(rows).T


@dataclass
class ShiftReport:
    """The normal class, official train folder vs official test folder (see :func:`shift_audit`)."""

    stats: dict[str, pd.DataFrame]  # per-image statistics of "normal train", "normal test", "virus train"
    shift: pd.DataFrame  # compare_distributions(normal train, normal test)
    aspect: dict[tuple[str, str], np.ndarray]  # (split, class) -> width/height of the original files
    aspect_auroc: dict[str, float]  # AUROC of width/height alone for normal vs pneumonia, per split
    normal_recall: dict[str, float]  # the ensemble's recall of "normal" on val and test
    spearman: dict[str, float]  # rank correlation of each statistic with P(pneumonia), normal test images
    error_by_aspect_tercile: pd.Series  # error rate on normal test images, narrow -> wide

    @property
    def largest_shift(self) -> str:
        return str(self.shift["cohen_d"].abs().idxmax())

    def aspect_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                f"{c} {s}": {"images": len(v), "mean width/height": v.mean(), "median": np.median(v)}
                for (s, c), v in self.aspect.items()
            }
        ).T

    def to_results(self) -> dict:
        """The ``shift`` entry of ``three_class.json``."""
        return {
            "normal_recall": self.normal_recall,
            "normal_train_vs_test": self.shift.to_dict(orient="index"),
            "aspect_ratio": {
                "mean": {f"{c} {s}": float(v.mean()) for (s, c), v in self.aspect.items()},
                "auroc_pneumonia": self.aspect_auroc,
            },
            "spearman_with_p_pneumonia_on_normal_test": self.spearman,
            "normal_test_error_rate_by_aspect_tercile": self.error_by_aspect_tercile.to_dict(),
            "largest_shift": self.largest_shift,
        }


def shift_audit(splits: Mapping[str, ImageSet], p_val: np.ndarray, p_test: np.ndarray) -> ShiftReport:
    """Audit the normal class between the train folder (train split) and the test folder.

    ``p_val``/``p_test``: the three-class ensemble's probabilities ``(N, 3)`` on the val and test splits.
    """

    def of_class(split, cls):
        return splits[split].labels.numpy() == CLASSES_3.index(cls)

    def statistics(split, cls):
        paths = splits[split].meta["path"][of_class(split, cls)].tolist()
        return image_statistics(splits[split].images[of_class(split, cls)]).assign(aspect=aspect_ratios(paths))

    y_val, y_test = splits["val"].labels.numpy(), splits["test"].labels.numpy()
    normal_recall = {
        "val (official train folder)": float((p_val[y_val == 0].argmax(1) == 0).mean()),
        "test (official test folder)": float((p_test[y_test == 0].argmax(1) == 0).mean()),
    }
    stats = {f"{c} {s}": statistics(s, c) for c, s in (("normal", "train"), ("normal", "test"), ("virus", "train"))}
    shift = compare_distributions(stats["normal train"], stats["normal test"], ("normal train", "normal test"))
    aspect = {
        (s, c): aspect_ratios(splits[s].meta["path"][of_class(s, c)].tolist())
        for s in ("train", "test")
        for c in CLASSES_3
    }
    aspect_auroc = {
        s: float(
            roc_auc_score(
                np.r_[
                    np.zeros(len(aspect[s, "normal"])), np.ones(len(aspect[s, "bacteria"]) + len(aspect[s, "virus"]))
                ],
                np.r_[aspect[s, "normal"], aspect[s, "bacteria"], aspect[s, "virus"]],
            )
        )
        for s in ("train", "test")
    }
    p_pneumonia = p_test[y_test == 0, 1:].sum(1)
    spearman = {
        c: float(spearmanr(stats["normal test"][c], p_pneumonia).statistic) for c in ("mean", "std", "border", "aspect")
    }
    wrong = p_test[y_test == 0].argmax(1) != 0
    terciles = pd.qcut(stats["normal test"]["aspect"], 3, labels=["narrow", "middle", "wide"], duplicates="drop")
    by_shape = pd.Series(wrong).groupby(terciles, observed=True).mean()
    return ShiftReport(stats, shift, aspect, aspect_auroc, normal_recall, spearman, by_shape)
