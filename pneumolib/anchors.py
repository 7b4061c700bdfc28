"""Published reference numbers ("anchors") on the official test splits (n = 624).

These are other people's results, quoted with their setting so that every comparison is like
for like: data (and resolution), pretraining, threshold, seeds. Our own numbers never live
here; they are read from ``results/<profile>/*.json``. Results above 0.98 accuracy on
reshuffled splits are deliberately absent: they are not comparable with the official test set.
"""

from __future__ import annotations

import pandas as pd

ANCHORS: list[dict] = [
    dict(
        task="binary",
        source="MedMNIST v2 (Yang 2023)",
        model="ResNet-18",
        data="PneumoniaMNIST 28 px",
        pretraining="none",
        threshold="0.5",
        seeds="3",
        auroc=0.944,
        accuracy=0.854,
    ),
    dict(
        task="binary",
        source="MedMNIST v2 (Yang 2023)",
        model="ResNet-50 (28 px upsampled to 224)",
        data="PneumoniaMNIST 28 px",
        pretraining="none",
        threshold="0.5",
        seeds="3",
        auroc=0.962,
        accuracy=0.884,
    ),
    dict(
        task="binary",
        source="MedMNIST v2 (Yang 2023)",
        model="Google AutoML Vision",
        data="PneumoniaMNIST 28 px",
        pretraining="n/a",
        threshold="0.5",
        seeds="1",
        auroc=0.991,
        accuracy=0.946,
    ),
    dict(
        task="binary",
        source="MedMNIST+ (Doerrich 2025)",
        model="ResNet-18",
        data="PneumoniaMNIST 224 px",
        pretraining="ImageNet",
        threshold="0.5",
        seeds="n/a",
        auroc=0.980,
        accuracy=0.911,
    ),
    dict(
        task="binary",
        source="Tutorial seed",
        model="SimpleCNN (93,249 params)",
        data="PneumoniaMNIST 28 px",
        pretraining="none",
        threshold="0.5",
        seeds="1",
        auroc=0.955,
        accuracy=0.851,
        recall=0.985,
    ),
    dict(
        task="binary",
        source="Tutorial seed",
        model="ResNet18",
        data="PneumoniaMNIST 28 px",
        pretraining="none",
        threshold="0.5",
        seeds="1",
        auroc=0.969,
        accuracy=0.859,
        recall=0.995,
    ),
    dict(
        task="binary",
        source="Tutorial seed",
        model="ResNet18",
        data="PneumoniaMNIST 28 px",
        pretraining="ImageNet",
        threshold="0.5",
        seeds="1",
        auroc=0.970,
        accuracy=0.888,
        recall=0.997,
    ),
    dict(
        task="binary",
        source="Kermany 2018 (Cell)",
        model="InceptionV3",
        data="Kermany full res",
        pretraining="ImageNet",
        threshold="n/a",
        seeds="1",
        auroc=0.968,
        accuracy=0.928,
        recall=0.932,
        specificity=0.901,
    ),
    dict(
        task="binary",
        source="Deck seed",
        model="DenseNet121",
        data="Kermany 224 px",
        pretraining="ImageNet",
        threshold="0.5",
        seeds="3",
        auroc=0.966,
        accuracy=0.841,
        recall=0.997,
        f1=0.887,
    ),
    dict(
        task="binary",
        source="Deck seed",
        model="6-checkpoint ensemble",
        data="Kermany 224 px",
        pretraining="ImageNet",
        threshold="0.5",
        seeds="3",
        auroc=0.963,
        recall=0.997,
        specificity=0.620,
        f1=0.896,
    ),
    dict(
        task="bacterial_vs_viral",
        source="Kermany 2018 (Cell)",
        model="InceptionV3",
        data="Kermany full res",
        pretraining="ImageNet",
        threshold="n/a",
        seeds="1",
        auroc=0.940,
        accuracy=0.907,
    ),
    dict(
        task="three_class",
        source="Deck seed",
        model="ensemble, patient-aware split",
        data="Kermany 224 px",
        pretraining="ImageNet",
        threshold="argmax",
        seeds="3",
        accuracy=0.822,
        macro_f1=0.808,
        macro_auroc=0.960,
        virus_f1=0.72,
    ),
]


def anchors_table(task: str = "binary") -> pd.DataFrame:
    """Anchors for one task as a table (columns without values are dropped)."""
    df = pd.DataFrame([a for a in ANCHORS if a["task"] == task]).drop(columns="task")
    return df.dropna(axis=1, how="all")


OURS = "PneumoLab (this run)"


def comparison_table(ours: list[dict], task: str, anchor_data: str | None = None, digits: int = 3) -> pd.DataFrame:
    """Our rows above the published anchors of ``task``, like for like (same columns, rounded).

    Each row of ``ours`` gives ``model``, ``data``, ``pretraining``, ``threshold``, ``seeds`` and the
    metrics; ``source`` is filled in. ``anchor_data`` overrides the anchors' data column (e.g. to say
    that their setting differs).
    """
    mine = pd.DataFrame([{"source": OURS, **row} for row in ours]).round(digits)
    theirs = anchors_table(task)
    if anchor_data is not None:
        theirs = theirs.assign(data=anchor_data)
    return pd.concat([mine, theirs], ignore_index=True).fillna("")


def binary_rows(binary: dict) -> list[dict]:
    """Our rows for :func:`comparison_table` from ``binary.json``: mean over seeds at threshold 0.5."""
    return [
        dict(
            model=e["display_name"],
            data=binary["meta"]["dataset"],
            pretraining="ImageNet" if e["weights"] == "imagenet" else "none",
            threshold="0.5",
            seeds=str(len(e["runs"])),
            auroc=e["summary"]["at_05"]["auroc"]["mean"],
            accuracy=e["summary"]["at_05"]["accuracy"]["mean"],
            recall=e["summary"]["at_05"]["recall"]["mean"],
        )
        for e in binary["models"].values()
    ]
