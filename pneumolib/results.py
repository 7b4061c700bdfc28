"""Where things live, and atomic reading/writing of results and checkpoints.

Everything a run produces goes under the *project root* (the folder holding ``pneumolib/`` and
``notebooks/``; override with ``PNEUMOLAB_ROOT``):

* ``results/<profile>/*.json``  numbers that notebooks, the report and the tests read
* ``figures/<profile>/*.png``   figures
* ``build/``                    checkpoints, caches and executed notebooks (ignored by git)

Writes go to a temporary file in the same folder followed by :func:`os.replace`, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT_ENV = "PNEUMOLAB_ROOT"


def project_root() -> Path:
    """The PneumoLab checkout: ``$PNEUMOLAB_ROOT``, else the first parent of the working
    directory (or of this package) that holds both ``pneumolib/`` and ``notebooks/``."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "pneumolib").is_dir() and (candidate / "notebooks").is_dir():
                return candidate
    return Path.cwd().resolve()


def build_dir(*parts: str) -> Path:
    path = project_root().joinpath("build", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(profile: str) -> Path:
    path = project_root() / "results" / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir(profile: str) -> Path:
    path = project_root() / "figures" / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as pretty JSON, atomically (numpy types and NaN handled)."""
    text = json.dumps(jsonable(obj), indent=2, sort_keys=False)
    atomic_write_bytes(Path(path), (text + "\n").encode())
    return Path(path)


def read_json(path: Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def update_json(path: Path, key: str, value: Any) -> dict:
    """Set ``key`` in the JSON object stored at ``path`` (created if absent), atomically."""
    path = Path(path)
    data = read_json(path) if path.exists() else {}
    data[key] = value
    write_json(path, data)
    return data


def write_text(path: Path, text: str) -> Path:
    atomic_write_bytes(Path(path), text.encode())
    return Path(path)


def save_checkpoint(path: Path, obj: dict) -> Path:
    """``torch.save`` atomically (plain tensors/containers only, so it loads with ``weights_only``)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with ``weights_only=True``: a checkpoint can never run code."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def modify_json(path: Path, transform) -> dict:
    """Replace the JSON object at ``path`` (``{}`` if absent) by ``transform(old)``, atomically; return it."""
    path = Path(path)
    data = transform(read_json(path) if path.exists() else {})
    write_json(path, data)
    return data
