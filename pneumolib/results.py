"""Where things live, and safe reading/writing of results, checkpoints and other artefacts.

Everything a run produces goes under the *project root* (the folder holding ``pneumolib/`` and
``notebooks/``; override with ``PNEUMOLAB_ROOT``):

* ``results/<profile>/*.json``  numbers that notebooks, the report and the tests read
* ``figures/<profile>/*.png``   figures
* ``build/``                    checkpoints, caches and executed notebooks (ignored by git)

Writing. Every file is written by :func:`atomic_write_bytes`: a temporary file
``.<name>.<pid>-<random>.tmp`` in the same folder, then :func:`os.replace`, so an interrupted
run never leaves a half-written file behind; the temporary file is removed if the write fails,
and temporary files left by a killed process are removed the first time a process opens the
folder (:func:`remove_stale_temp_files`). Files get the mode the user's umask gives.

Read-modify-write of a shared file (a results JSON that several notebooks update) happens under
:func:`locked` (an ``fcntl.flock`` lock file beside it); :func:`edit_json` and
:func:`update_json` do both.

Reading. A damaged artefact (invalid JSON, unreadable checkpoint, a file that differs from the
checksum recorded for it) raises :class:`CorruptArtefactError`, whose message names the file and
the fix. Callers that can recompute it move it out of the way with :func:`set_aside`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

try:
    import fcntl
except ImportError:  # Windows: no flock; writes stay atomic, concurrent updates are not serialised
    fcntl = None

ROOT_ENV = "PNEUMOLAB_ROOT"
#: Fix suggested for a damaged JSON file (callers that know which notebook writes it say so instead).
JSON_FIX = (
    "It is damaged or was only partly written: restore it (`git checkout -- <file>` for a committed "
    "results file) or delete it and rerun the notebook or command that writes it."
)
CHECKPOINT_FIX = "Delete it and rerun: the run is retrained (or the cache rebuilt)."
#: Temporary files written by :func:`atomic_write_bytes` (``pid`` set) or by earlier versions (mkstemp).
_TEMP_NAME = re.compile(r"^\..+\.(?:(?P<pid>\d+)-[0-9a-f]{8}|[a-z0-9_]{8})\.tmp$")
LEGACY_TEMP_AGE_S = 3600  # a temporary file without an owner pid counts as stale after this long


class CorruptArtefactError(ValueError):
    """A file this project wrote (checkpoint, run marker, CSV, results or metadata JSON) is damaged,
    truncated or not what was recorded for it. ``path`` names it, ``problem`` says what is wrong and
    ``fix`` what to do; the message holds all three."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = JSON_FIX):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{self.path}: {problem}. {fix}")

    def __reduce__(self):  # picklable (e.g. raised in a worker process)
        return type(self), (self.path, self.problem, self.fix)


# --------------------------------------------------------------------------- folders
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


_opened: set[Path] = set()


def open_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` if needed; the first time this process opens it, remove the
    temporary files that killed writers left there (:func:`remove_stale_temp_files`)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if path not in _opened:
        _opened.add(path)
        remove_stale_temp_files(path)
    return path


def build_dir(*parts: str) -> Path:
    return open_dir(project_root().joinpath("build", *parts))


def results_dir(profile: str) -> Path:
    return open_dir(project_root() / "results" / profile)


def figures_dir(profile: str) -> Path:
    return open_dir(project_root() / "figures" / profile)


# --------------------------------------------------------------------------- temporary files
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or cannot tell: keep its files
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write_bytes` in ``folder`` whose writer is gone
    (its pid is not running; for names without a pid, older than :data:`LEGACY_TEMP_AGE_S`).
    Returns the removed paths. Writes in progress (live pid) are left alone."""
    removed = []
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if match["pid"]:
                stale = not _pid_alive(int(match["pid"]))
            else:
                stale = time.time() - entry.stat().st_mtime > LEGACY_TEMP_AGE_S
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # removed meanwhile by another process
            pass
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[io.BufferedWriter]:
    """Write ``path`` atomically through a binary file handle (for files too large to hold in memory):
    a temporary file beside it, removed if anything fails (even KeyboardInterrupt), fsync, then
    :func:`os.replace`. The only place temporary files are made; the new file's mode follows the
    umask (0644 under the usual 022), not mkstemp's 0600."""
    path = Path(path)
    tmp = open_dir(path.parent) / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


def set_aside(path: str | os.PathLike, problem: str) -> Path:
    """Rename a damaged artefact to ``<name>.corrupt-<UTC time>`` (kept for inspection, never read
    again) and print a note naming both files. Returns the new path."""
    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    print(
        f"NOTE: {path} {problem}; set aside as {target.name} (delete it when no longer needed).",
        file=sys.stderr,
        flush=True,
    )
    return target


# --------------------------------------------------------------------------- locking
_locks: dict[Path, list] = {}  # lock file -> [threading.RLock, depth, open lock file]
_locks_guard = threading.Lock()


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` for a read-modify-write; yields ``path``.

    The lock is :func:`fcntl.flock` on ``.<name>.lock`` beside the file, so it serialises processes
    (several notebooks or a notebook and the runner) and threads. It is released when the block
    ends, or by the OS if the holder dies. Re-entrant: a block may nest another on the same file.
    """
    path = Path(path)
    lock_path = (open_dir(path.parent) / f".{path.name}.lock").resolve()
    with _locks_guard:
        state = _locks.setdefault(lock_path, [threading.RLock(), 0, None])
    with state[0]:
        if state[1] == 0:
            state[2] = open(lock_path, "a")
            if fcntl is not None:
                fcntl.flock(state[2].fileno(), fcntl.LOCK_EX)
        state[1] += 1
        try:
            yield path
        finally:
            state[1] -= 1
            if state[1] == 0:
                state[2].close()  # closing the file releases the flock
                state[2] = None


# --------------------------------------------------------------------------- JSON
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


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as pretty JSON, atomically (numpy types and NaN handled)."""
    text = json.dumps(jsonable(obj), indent=2, sort_keys=False)
    return atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: str | os.PathLike, fix: str = JSON_FIX) -> Any:
    """The JSON stored at ``path``; a damaged file raises :class:`CorruptArtefactError` naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptArtefactError(path, f"is not valid JSON ({err})", fix) from None


def read_json_object(path: str | os.PathLike, fix: str = JSON_FIX) -> dict:
    """:func:`read_json` for a file that must hold a JSON object (a results or metadata file)."""
    data = read_json(path, fix)
    if not isinstance(data, dict):
        raise CorruptArtefactError(path, f"holds a JSON {type(data).__name__}, not an object", fix)
    return data


@contextlib.contextmanager
def edit_json(path: str | os.PathLike) -> Iterator[dict]:
    """Read-modify-write of the JSON object at ``path`` under :func:`locked`: yields its content
    (``{}`` if the file is absent) and writes it back atomically when the block ends without error.

    >>> with edit_json(results_dir("cpu") / "binary.json") as data:   # doctest: +SKIP
    ...     data.setdefault("models", {})["resnet18-scratch"] = entry
    """
    path = Path(path)
    with locked(path):
        data = read_json_object(path) if path.exists() else {}
        yield data
        write_json(path, data)


def modify_json(path: str | os.PathLike, transform) -> dict:
    """Replace the JSON object at ``path`` (``{}`` if absent) by ``transform(old)`` under the lock; return it."""
    with edit_json(path) as data:
        new = transform(dict(data))
        data.clear()
        data.update(new)
    return new


def update_json(path: str | os.PathLike, key: str, value: Any) -> dict:
    """Set ``key`` in the JSON object stored at ``path`` (created if absent), under the file's lock."""
    with edit_json(path) as data:
        data[key] = value
    return data


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def fill_block(path: str | os.PathLike, name: str, text: str) -> Path:
    """Replace what stands between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path`` (e.g. the
    README) with ``text``, atomically; a file without exactly one such pair is an error saying so."""
    path = Path(path)
    new, n = re.subn(
        rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)",
        lambda m: m.group(1) + text + m.group(2),
        path.read_text(),
        flags=re.S,
    )
    if n != 1:
        raise SystemExit(f"{path.name} lacks the <!-- {name}:start --> ... <!-- {name}:end --> markers")
    return write_text(path, new)


# --------------------------------------------------------------------------- checksums, CSV
def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes (``algorithm``: any name :func:`hashlib.new` knows)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | os.PathLike, rows: int | None = None) -> dict:
    """What a marker file vouches for: ``{"bytes", "sha256"}`` of ``path`` (plus ``rows`` if given)."""
    record = {"bytes": os.path.getsize(path), "sha256": file_digest(path)}
    return record if rows is None else {**record, "rows": int(rows)}


def verify_file(path: str | os.PathLike, record: Mapping, fix: str = CHECKPOINT_FIX) -> None:
    """Raise :class:`CorruptArtefactError` unless ``path`` has the size and sha256 of ``record``
    (as made by :func:`file_record`); a missing file raises FileNotFoundError."""
    path = Path(path)
    size = path.stat().st_size
    if size != record.get("bytes", size) or file_digest(path) != record.get("sha256"):
        raise CorruptArtefactError(
            path,
            f"differs from the file that was recorded ({size} bytes, expected "
            f"{record.get('bytes')}; sha256 mismatch): it was truncated or changed",
            fix,
        )


def read_csv(path: str | os.PathLike, columns: tuple[str, ...] = (), fix: str = CHECKPOINT_FIX):
    """A CSV this project wrote, as a DataFrame; raises :class:`CorruptArtefactError` if it cannot be
    parsed, lacks one of ``columns``, or does not end with a newline (cut off mid-row)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(max(path.stat().st_size - 1, 0))
            complete = fh.read(1) == b"\n"
        df = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as err:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise CorruptArtefactError(path, f"is not a readable CSV ({type(err).__name__}: {err})", fix) from None
    missing = [c for c in columns if c not in df.columns]
    if not complete or missing:
        problem = f"lacks the column(s) {', '.join(missing)}" if missing else "ends mid-row (it was truncated)"
        raise CorruptArtefactError(path, problem, fix)
    return df


# --------------------------------------------------------------------------- provenance
def git_info(root: Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout at ``root`` (the project root)."""
    root = root or project_root()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike, obj: dict) -> Path:
    """``torch.save`` atomically (plain tensors/containers only, so it loads with ``weights_only``)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _load_failure(err: BaseException) -> str:
    """Why ``torch.load`` failed, in words (never torch's advice to retry with ``weights_only=False``)."""
    text = str(err).strip()
    if "weights only" in text.lower() or "weights_only" in text:
        return "it holds Python objects, which a weights-only load refuses (a checkpoint must never run code)"
    if isinstance(err, EOFError):
        return "it is empty or ends too early"
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def load_checkpoint(path: str | os.PathLike, fix: str = CHECKPOINT_FIX) -> dict:
    """Load a checkpoint with ``weights_only=True``: a checkpoint can never run code.

    A missing file raises FileNotFoundError; an empty, truncated or foreign file, or one holding
    anything but tensors and plain containers, raises :class:`CorruptArtefactError` naming it."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as err:  # EOFError, UnpicklingError, RuntimeError (zip), OSError, KeyError, ...
        raise CorruptArtefactError(path, f"is not a readable checkpoint: {_load_failure(err)}", fix) from None
    if not isinstance(obj, Mapping):
        raise CorruptArtefactError(path, f"holds a {type(obj).__name__}, not a dict of tensors", fix)
    return obj
