"""Data layer: PneumoniaMNIST (via ``medmnist``) and the Kermany ``chest_xray/`` folder.

Both loaders return :class:`ImageSet` objects: a uint8 tensor of grayscale images
``(N, H, W)``, integer labels and a ``meta`` table (filenames, patient ids, ...). Everything
downstream (augmentation, batching, models) works on these in-memory tensors, so an epoch never
decodes a JPEG: Kermany images are decoded once per image size into a cache under ``build/cache``.

Where the data lives is configuration, never a path in the code:

* ``load_*(root=...)`` argument, else
* the ``PNEUMOLAB_DATA`` environment variable, else
* ``~/.pneumolab/data`` (PneumoniaMNIST is downloaded there by ``medmnist`` when online).

The folder layout under that root is ``medmnist/pneumoniamnist.npz`` and
``kermany/chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import medmnist
import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import StratifiedGroupKFold
from tqdm.auto import tqdm

from .profiles import FRAMINGS, Profile, require_profile
from .results import CorruptArtefactError, build_dir, file_digest, load_checkpoint, save_checkpoint

DATA_ENV = "PNEUMOLAB_DATA"
DEFAULT_DATA_ROOT = Path("~/.pneumolab/data")
SPLITS = ("train", "val", "test")
CLASSES_BINARY = ("normal", "pneumonia")
CLASSES_3 = ("normal", "bacteria", "virus")
KERMANY_URL = "https://data.mendeley.com/datasets/rscbjbr9sj/2 (or Kaggle: paultimothymooney/chest-xray-pneumonia)"


class DataNotFoundError(FileNotFoundError):
    """The data folder or a dataset inside it is missing."""


class ChecksumError(ValueError):
    """A file's checksum differs from the published one."""


# --------------------------------------------------------------------------- ImageSet
@dataclass
class ImageSet:
    """Images ``(N, H, W)`` uint8, labels ``(N,)`` int64 and one ``meta`` row per image."""

    images: torch.Tensor
    labels: torch.Tensor
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)
    classes: tuple[str, ...] = CLASSES_BINARY
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a uint8 tensor (N, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if self.meta.empty:
            self.meta = pd.DataFrame(index=range(len(self.images)))
        self.meta = self.meta.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}={n}" for c, n in self.class_counts().items())
        return f"ImageSet({self.name!r}, n={len(self)}, size={tuple(self.images.shape[1:])}, {counts})"

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))

    def subset(self, index: Sequence[int] | np.ndarray, name: str | None = None) -> ImageSet:
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(
            self.images[torch.from_numpy(index)],
            self.labels[torch.from_numpy(index)],
            self.meta.iloc[index].reset_index(drop=True),
            self.classes,
            name or self.name,
        )

    def with_labels(self, column: str, classes: tuple[str, ...]) -> ImageSet:
        """Same images with labels taken from ``meta[column]`` (e.g. ``label3`` for three classes)."""
        labels = torch.tensor(self.meta[column].to_numpy(), dtype=torch.long)
        return ImageSet(self.images, labels, self.meta, classes, self.name)

    def as_float(self) -> torch.Tensor:
        """Images as float ``(N, 1, H, W)`` in [0, 1]: what models and augmentation take."""
        return self.images.unsqueeze(1).float().div_(255)


def stratified_indices(labels: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most ``n`` of ``labels`` keeping the class proportions (every class keeps one)."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        k = max(1, round(n * len(idx) / len(labels)))
        chosen.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(chosen))


def stratified_subset(data: ImageSet, n: int | None, seed: int = 0) -> ImageSet:
    """At most ``n`` images keeping the class proportions (every class keeps at least one)."""
    if n is None or n >= len(data):
        return data
    return data.subset(stratified_indices(data.labels.numpy(), n, seed))


# --------------------------------------------------------------------------- data root
def data_root(root: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """Resolve the data folder: argument, else ``$PNEUMOLAB_DATA``, else ``~/.pneumolab/data``.

    Nothing is created here. A set but empty ``$PNEUMOLAB_DATA`` is an error (it would silently
    mean the working directory), and so is a missing folder when ``must_exist``.
    """
    if root is None:
        root = os.environ.get(DATA_ENV)
        source = f"${DATA_ENV}"
        if root is None:
            return DEFAULT_DATA_ROOT.expanduser()
        if not root.strip():
            raise DataNotFoundError(
                f"{DATA_ENV} is set but empty. Set it to the folder that holds medmnist/ and kermany/ "
                f"(e.g. `export {DATA_ENV}=/path/to/data`), or unset it (`unset {DATA_ENV}`) to let medmnist "
                f"download PneumoniaMNIST into {DEFAULT_DATA_ROOT}."
            )
    else:
        source = "the `root` argument"
    path = Path(root).expanduser().resolve()
    if must_exist and not path.is_dir():
        raise DataNotFoundError(
            f"Data folder {path} (from {source}) does not exist. Set {DATA_ENV} to the folder that "
            f"holds medmnist/ and kermany/ (e.g. `export {DATA_ENV}=/path/to/data`), or unset it to "
            f"let medmnist download PneumoniaMNIST into {DEFAULT_DATA_ROOT}."
        )
    return path


def file_md5(path: str | os.PathLike) -> str:
    return file_digest(path, "md5")


def file_sha256(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def verify_md5(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`ChecksumError` naming the file, the expected and the actual md5."""
    actual = file_md5(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: md5 is {actual}, expected {expected}. The file is corrupt or not the official "
            "release: delete it and download it again."
        )


# --------------------------------------------------------------------------- PneumoniaMNIST
def pneumoniamnist_file(size: int = 28, root: str | os.PathLike | None = None) -> Path:
    suffix = "" if size == 28 else f"_{size}"
    return data_root(root) / "medmnist" / f"pneumoniamnist{suffix}.npz"


def load_pneumoniamnist(
    split: str,
    size: int = 28,
    root: str | os.PathLike | None = None,
    download: bool | None = None,
    expected_md5: str | None = None,
) -> ImageSet:
    """One split of PneumoniaMNIST as an :class:`ImageSet` (label 1 = pneumonia).

    Uses ``medmnist``'s own dataset class. The file's md5 is checked against ``medmnist.INFO``
    (or ``expected_md5``) before use. ``download`` defaults to True only when no data folder was
    configured (a configured folder is expected to hold the file already).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    info = medmnist.INFO["pneumoniamnist"]
    key = "MD5" if size == 28 else f"MD5_{size}"
    if key not in info:
        raise ValueError(f"PneumoniaMNIST has sizes 28, 64, 128, 224; got {size}")
    configured = root is not None or DATA_ENV in os.environ
    if download is None:
        download = not configured
    path = pneumoniamnist_file(size, root)
    where = (
        f"Put the official {path.name} there (from {info['url' if size == 28 else f'url_{size}']}), or "
        f"point {DATA_ENV} at the folder that holds medmnist/{path.name} (`export {DATA_ENV}=/path/to/data`)"
    )
    if not path.exists() and not download:
        raise DataNotFoundError(f"{path} not found. {where}, or unset {DATA_ENV} so medmnist downloads the file.")
    if path.exists():
        verify_md5(path, expected_md5 or info[key])
    else:
        _download_pneumoniamnist(medmnist, size, path, where)
    ds = medmnist.PneumoniaMNIST(split=split, size=size, root=str(path.parent), download=False)
    images = torch.from_numpy(np.ascontiguousarray(ds.imgs))
    labels = torch.from_numpy(ds.labels.reshape(-1).astype(np.int64))
    meta = pd.DataFrame({"index": np.arange(len(labels)), "label": labels.numpy()})
    return ImageSet(images, labels, meta, CLASSES_BINARY, f"PneumoniaMNIST-{size} {split}")


def _download_pneumoniamnist(medmnist, size: int, path: Path, where: str) -> None:
    """Let medmnist download the npz into ``path.parent`` (created only now), or say what to set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        medmnist.PneumoniaMNIST(split="test", size=size, root=str(path.parent), download=True)
    except Exception as err:  # offline, proxy, server down: medmnist's own message names no setting
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise DataNotFoundError(f"could not download {path.name} into {path.parent} ({reason}). {where}.") from err


def load_pneumoniamnist_splits(
    size: int = 28, root=None, subset: int | None = None, seed: int = 0
) -> dict[str, ImageSet]:
    """``{"train", "val", "test"}`` of PneumoniaMNIST, each optionally a stratified subset."""
    return {s: stratified_subset(load_pneumoniamnist(s, size, root), subset, seed) for s in SPLITS}


# --------------------------------------------------------------------------- Kermany filenames
@dataclass(frozen=True)
class KermanyName:
    filename: str
    label: int  # 0 normal, 1 pneumonia
    label3: int  # 0 normal, 1 bacteria, 2 virus
    patient_id: str


_NORMAL_RE = re.compile(r"^((?:NORMAL2-)?IM-\d+)(?:-\d+)+\.jpe?g$", re.IGNORECASE)
_PNEUMONIA_RE = re.compile(r"^(person\d+)_(bacteria|virus)_\d+(?:_\d+)?\.jpe?g$", re.IGNORECASE)


def parse_kermany_filename(filename: str) -> KermanyName:
    """Binary label, three-class label and patient id from a Kermany filename.

    >>> parse_kermany_filename("person1_virus_6.jpeg")
    KermanyName(filename='person1_virus_6.jpeg', label=1, label3=2, patient_id='person1')
    """
    name = Path(filename).name
    if m := _NORMAL_RE.match(name):
        return KermanyName(name, 0, 0, m.group(1))
    if m := _PNEUMONIA_RE.match(name):
        return KermanyName(name, 1, 1 if m.group(2).lower() == "bacteria" else 2, m.group(1))
    raise ValueError(
        f"{filename}: not a Kermany filename. Expected IM-NNNN-NNNN.jpeg or NORMAL2-IM-NNNN-NNNN.jpeg "
        "(normal) or personN_bacteria_M.jpeg / personN_virus_M.jpeg (pneumonia)."
    )


def kermany_dir(root: str | os.PathLike | None = None) -> Path:
    """The ``chest_xray`` folder, or :class:`DataNotFoundError` saying where to get and put it."""
    base = data_root(root, must_exist=False)
    path = base / "kermany" / "chest_xray"
    if not path.is_dir():
        raise DataNotFoundError(
            f"Kermany chest X-ray folder not found at {path}. Download 'Chest X-Ray Images (Pneumonia)' "
            f"from {KERMANY_URL}, unpack it so that {path}/train/NORMAL/*.jpeg exists, and point "
            f"{DATA_ENV} at {base} if it lives elsewhere. (medmnist cannot download it.)"
        )
    return path


def kermany_available(root: str | os.PathLike | None = None) -> bool:
    try:
        kermany_dir(root)
        return True
    except DataNotFoundError:
        return False


def require_kermany(notebook: str, root: str | os.PathLike | None = None) -> Path:
    """The Kermany folder, or a :class:`DataNotFoundError` saying where to get it and where to put it."""
    if not kermany_available(root):
        raise DataNotFoundError(
            f"Notebook {notebook} needs the Kermany 'Chest X-Ray Images (Pneumonia)' folder. Download it from "
            f"{KERMANY_URL}, unpack it so that ${DATA_ENV}/kermany/chest_xray/train/NORMAL/*.jpeg exists, set "
            f"{DATA_ENV} to that data folder and rerun. (Notebooks 01-04 and 07-08 run on PneumoniaMNIST alone.)"
        )
    return kermany_dir(root)


def scan_kermany(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per image: split, folder, filename, path, label, label3, patient_id.

    Raises ``ValueError`` naming the path of any unexpected folder, any filename that does not
    parse, or any file whose folder disagrees with its name.
    """
    base = kermany_dir(root)
    rows = []
    for split_dir in sorted(p for p in base.iterdir() if not p.name.startswith(".")):
        if not split_dir.is_dir() or split_dir.name not in SPLITS:
            raise ValueError(f"{split_dir}: unexpected entry in chest_xray/ (expected only {', '.join(SPLITS)})")
        for class_dir in sorted(p for p in split_dir.iterdir() if not p.name.startswith(".")):
            if not class_dir.is_dir() or class_dir.name not in ("NORMAL", "PNEUMONIA"):
                raise ValueError(f"{class_dir}: unexpected entry (expected only NORMAL and PNEUMONIA)")
            for f in sorted(class_dir.iterdir()):
                if f.name.startswith("."):
                    continue
                parsed = parse_kermany_filename(str(f))
                if parsed.label != (class_dir.name == "PNEUMONIA"):
                    raise ValueError(f"{f}: filename says {CLASSES_3[parsed.label3]} but it is in {class_dir.name}/")
                rows.append(
                    dict(
                        split=split_dir.name,
                        folder=class_dir.name,
                        filename=f.name,
                        path=str(f),
                        label=parsed.label,
                        label3=parsed.label3,
                        patient_id=parsed.patient_id,
                    )
                )
    if not rows:
        raise DataNotFoundError(f"{base} holds no images; expected {base}/train/NORMAL/*.jpeg etc.")
    df = pd.DataFrame(rows)
    _check_layout(base, df)
    return df


def _check_layout(base: Path, df: pd.DataFrame) -> None:
    """Every split folder must hold both class folders with images: a partial unpack is an error."""
    found = set(zip(df["split"], df["folder"]))
    missing = [
        f"{split}/{folder}" for split in SPLITS for folder in ("NORMAL", "PNEUMONIA") if (split, folder) not in found
    ]
    if missing:
        raise DataNotFoundError(
            f"{base}: {', '.join(missing)} missing or empty. The Kermany folder must hold "
            f"{{{','.join(SPLITS)}}}/{{NORMAL,PNEUMONIA}}/*.jpeg: unpack the complete download "
            f"({KERMANY_URL}) there again."
        )


def grouped_split(
    df: pd.DataFrame, val_fraction: float = 0.15, seed: int = 0, stratify: str = "label3", group: str = "patient_id"
) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped, stratified, seeded train/validation split: no patient is in both.

    Returns positional indices ``(train_idx, val_idx)`` into ``df``.
    """
    n_splits = max(2, round(1 / val_fraction))
    if df[group].nunique() < n_splits:
        raise ValueError(
            f"need at least {n_splits} patients for a {val_fraction:.0%} grouped split, got {df[group].nunique()}"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(df)), df[stratify].to_numpy(), df[group].to_numpy()))
    return np.sort(train_idx), np.sort(val_idx)


# --------------------------------------------------------------------------- Kermany pixels + cache
def to_gray8(im):
    """A PIL image of any mode as an 8-bit grayscale PIL image (mode ``L``).

    8-bit modes (``L``, ``1``, ``P``, ``RGB``, ``RGBA``, ``LA``, ...) go through Pillow's own
    conversion (colour: ITU-R 601 luma; alpha dropped). 16/32-bit integer and float modes
    (``I;16``, ``I;16B``, ``I``, ``F``) are scaled by the range their values actually use: the
    smallest bit depth of at least 8 bits that holds the image's maximum (a 12-bit scan in a 16-bit
    file fills 0-255; an 8-bit image stored as 16 bits is unchanged). Pillow's own conversion would
    clip them to 255, leaving an almost white image.
    """
    if im.mode == "L":
        return im
    if not (im.mode.startswith("I") or im.mode == "F"):
        return im.convert("L")
    values = np.asarray(im).astype(np.float64)
    top = float(values.max(initial=0.0))
    full = 1.0 if im.mode == "F" and top <= 1.0 else 2.0 ** max(8, math.ceil(math.log2(max(top, 1.0) + 1))) - 1
    return Image.fromarray(np.clip(np.rint(values * (255 / full)), 0, 255).astype(np.uint8), "L")


def _decode(path: str, size: int, framing: str = "crop") -> np.ndarray:
    """Grayscale (:func:`to_gray8`), made square by ``framing`` (:data:`FRAMINGS`), resized to ``size`` x ``size``.

    The framing matters: in this dataset the width/height ratio differs between classes and between
    the train and test folders, so a squeezed or letterboxed image carries a shape cue, and even a
    centre crop keeps how the patient is framed (notebook 05 and scripts/framing_study.py measure it).
    """
    if framing not in FRAMINGS:
        raise ValueError(f"framing {framing!r} is not known: use one of {FRAMINGS}")
    try:
        with Image.open(path) as im:
            im = to_gray8(im)
            w, h = im.size
            if framing in ("crop", "crop80"):
                side = min(w, h) if framing == "crop" else max(1, round(0.8 * min(w, h)))
                left, top = (w - side) // 2, (h - side) // 2
                im = im.crop((left, top, left + side, top + side))
            elif framing == "letterbox":
                side = max(w, h)
                square = Image.new("L", (side, side), 0)
                square.paste(im, ((side - w) // 2, (side - h) // 2))
                im = square
            return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{path}: cannot read image ({err}). Delete or replace this file.") from err


def _source_key(paths: Sequence[str], size: int, framing: str = "crop") -> str:
    how = "center-crop" if framing == "crop" else framing  # the default keeps the key of existing caches
    digest = hashlib.sha256(f"v2 size={size} {how} bilinear".encode())
    for p in paths:
        st = os.stat(p)
        digest.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached_images(
    paths: Sequence[str], size: int, cache_name: str, progress: bool = True, framing: str = "crop"
) -> torch.Tensor:
    """Decode ``paths`` to ``(N, size, size)`` uint8, cached under ``build/cache``.

    The cache stores a key made of every path, byte size and modification time: any change to the
    source files rebuilds it. The cache file is written atomically.
    """
    key = _source_key(paths, size, framing)
    cache_name = cache_name if framing == "crop" else f"{cache_name}-{framing}"
    cache = build_dir("cache") / f"{cache_name}_{size}px.pt"
    if cache.exists():
        try:
            stored = load_checkpoint(cache)
            images = stored.get("images")
            if stored.get("key") == key:
                if (
                    not isinstance(images, torch.Tensor)
                    or images.dtype != torch.uint8
                    or tuple(images.shape) != (len(paths), size, size)
                ):
                    raise CorruptArtefactError(cache, "does not hold the images its key promises")
                return images
        except CorruptArtefactError as err:  # rebuilt below, overwriting it
            print(f"NOTE: {err.path} {err.problem}; rebuilding it.", flush=True)
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc=f"decoding {cache_name} at {size} px", disable=not progress, mininterval=1)):
        out[i] = _decode(p, size, framing)
    images = torch.from_numpy(out)
    save_checkpoint(cache, {"key": key, "images": images})
    return images


def load_kermany(
    size: int = 64,
    root=None,
    val_fraction: float = 0.15,
    seed: int = 0,
    subset: int | None = None,
    three_class: bool = False,
    framing: str = "crop",
) -> dict[str, ImageSet]:
    """Kermany ``train`` / ``val`` / ``test`` as :class:`ImageSet` objects at ``size`` px, made square
    by ``framing`` (:data:`FRAMINGS`; the default centre crop).

    ``train`` and ``val`` are a patient-grouped split of the official train folder (the official
    16-image val folder is too small to select models on and is not used); ``test`` is the official
    test folder, untouched. ``three_class=True`` uses labels normal / bacteria / virus.
    """
    df = scan_kermany(root)
    official_train = np.flatnonzero(df["split"].to_numpy() == "train")
    tr, va = grouped_split(df.iloc[official_train], val_fraction, seed)
    index = {
        "train": official_train[tr],
        "val": official_train[va],
        "test": np.flatnonzero(df["split"].to_numpy() == "test"),
    }
    if subset is not None:  # choose the subset on the labels first, then decode only the chosen images
        index = {split: _stratified_index(df, idx, subset, seed, three_class) for split, idx in index.items()}
        chosen = np.sort(np.concatenate(list(index.values())))
        cache_name = f"kermany-subset{subset}-seed{seed}{'-3c' if three_class else ''}"
        images = cached_images(df["path"].iloc[chosen].tolist(), size, cache_name, framing=framing)
        row = lambda idx: np.searchsorted(chosen, idx)  # noqa: E731  (position of a df row in `images`)
    else:
        images = cached_images(df["path"].tolist(), size, "kermany", framing=framing)
        row = lambda idx: idx  # noqa: E731
    meta = df.drop(columns=["path"]).assign(path=df["path"])
    out = {}
    for split, idx in index.items():
        data = ImageSet(
            images[torch.from_numpy(row(idx))],
            torch.tensor(df["label"].to_numpy()[idx]),
            meta.iloc[idx],
            CLASSES_BINARY,
            f"Kermany-{size} {split}",
        )
        if three_class:
            data = data.with_labels("label3", CLASSES_3)
        out[split] = data
    return out


def _stratified_index(df: pd.DataFrame, idx: np.ndarray, n: int, seed: int, three_class: bool) -> np.ndarray:
    """The rows of ``df`` that :func:`stratified_subset` keeps of ``idx``, computed from the labels alone."""
    return idx[stratified_indices(df["label3" if three_class else "label"].to_numpy()[idx], n, seed)]


# --------------------------------------------------------------------------- audits
def full_manifest(root=None) -> pd.DataFrame | None:
    """``kermany/FULL_SPLIT_MANIFEST.csv`` (all 5,856 files with sha256) parsed, or None if absent."""
    path = data_root(root, must_exist=False) / "kermany" / "FULL_SPLIT_MANIFEST.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path)
    parsed = [parse_kermany_filename(f) for f in df["filename"]]
    return df.assign(label3=[p.label3 for p in parsed], patient_id=[p.patient_id for p in parsed])


# --------------------------------------------------------------------------- the data of a profile
KERMANY_FULL_TRAIN = 5216  # images in the official Kermany train folder (Kermany et al. 2018; the full manifest)
ALLOW_PARTIAL_ENV = "PNEUMOLAB_ALLOW_PARTIAL_DATA"


def require_full_kermany(profile: Profile, root: str | os.PathLike | None = None) -> None:
    """Profiles with ``full_kermany`` (``gpu``: the deck's setting) need the whole official train folder;
    a partial copy stops with a message, unless ``PNEUMOLAB_ALLOW_PARTIAL_DATA=1`` explicitly allows it
    (the results then record the share of the train folder used, as every profile's do)."""
    if not profile.full_kermany or os.environ.get(ALLOW_PARTIAL_ENV) == "1":
        return
    found = int((scan_kermany(root)["split"] == "train").sum())
    if found < KERMANY_FULL_TRAIN:
        raise DataNotFoundError(
            f"Profile {profile.name!r} reproduces the deck and needs the full Kermany train folder "
            f"({KERMANY_FULL_TRAIN:,} images); {kermany_dir(root)}/train holds {found:,} "
            f"({found / KERMANY_FULL_TRAIN:.0%}). Download the full dataset from {KERMANY_URL}, or set "
            f"{ALLOW_PARTIAL_ENV}=1 to run on this copy anyway (results then say how much was used)."
        )


def load_binary_splits(profile: Profile, root: str | os.PathLike | None = None) -> dict[str, ImageSet]:
    """The binary task's data (normal vs pneumonia) for ``profile``: PneumoniaMNIST at ``mnist_size``
    (``smoke``, ``cpu``) or the Kermany folder at ``kermany_size`` (``gpu``, ``gpu-smoke``)."""
    prof = require_profile(profile)
    if prof.binary_data == "kermany":
        require_kermany("03/04 (binary task on Kermany)", root)
        require_full_kermany(prof, root)
        return load_kermany(prof.kermany_size, root, subset=prof.kermany_subset, framing=prof.framing)
    return load_pneumoniamnist_splits(prof.mnist_size, root, subset=prof.mnist_subset)


def load_three_class_splits(profile: Profile, root: str | os.PathLike | None = None) -> dict[str, ImageSet]:
    """The three-class task's data (normal / bacteria / virus): Kermany at ``kermany_size``."""
    prof = require_profile(profile)
    require_full_kermany(prof, root)
    return load_kermany(prof.kermany_size, root, subset=prof.kermany_subset, three_class=True, framing=prof.framing)


def kermany_label(profile: Profile) -> str:
    """How tables name the Kermany images of ``profile``: size, and the framing where it is not the default centre
    crop, e.g. ``"Kermany 64 px, crop80 framing"``."""
    prof = require_profile(profile)
    return f"Kermany {prof.kermany_size} px" + ("" if prof.framing == "crop" else f", {prof.framing} framing")


def binary_data_label(profile: Profile) -> str:
    """How tables name the binary task's data, e.g. ``"PneumoniaMNIST 28 px"``."""
    prof = require_profile(profile)
    if prof.binary_data == "kermany":
        return f"{kermany_label(prof)} (normal vs pneumonia)"
    return f"PneumoniaMNIST {prof.mnist_size} px"
