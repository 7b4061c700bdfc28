"""Shareable trained runs: one archive of a profile's finished runs, made on one machine, installed on others.

Usage (from the project root, or anywhere with ``PNEUMOLAB_ROOT`` set)::

    python -m pneumolib.runs export --profile cpu --out cpu-runs.tar.gz   # also writes cpu-runs.tar.gz.sha256
    python -m pneumolib.runs import cpu-runs.tar.gz
    python -m pneumolib.runs import https://example.org/cpu-runs.tar.gz  # checks it against the .sha256 beside it
    python -m pneumolib.runs import URL --sha256 HEX                     # or against a checksum you were given

(Not to be confused with ``python -m pneumolib.run``, the notebook runner.)

**Export** packs every finished run of the run cache (``build/runs/<profile>/<task>/<run>/``: the
best weights, the training history, the val/test predictions and the ``done.json`` marker), after
checking each file against the sha256 its marker records, together with the profile's results files
(``results/<profile>/*.json``, each validated by :mod:`pneumolib.schema`) and ``manifest.json``: the
sha256 and size of every file, the profile's name, settings and hash, the schema version of every
results file, and the git commit. The archive is a gzip-compressed tar written atomically; its own
sha256 goes to ``<archive>.sha256`` (``sha256sum`` format) for whoever downloads it.

**Import** checks everything before it installs anything: the archive's sha256 (for a URL always:
the ``--sha256`` given, a ``#sha256=HEX`` fragment, or the ``.sha256`` file beside it), that it is a
complete archive of this format and version, that the profile exists here with the *same* hash, that
every results file has this checkout's schema version and validates, that the members are exactly
the files of the manifest (plain files, no links, no paths leaving the archive) with the recorded
sizes and sha256, that every run's marker matches its files and its profile, and that every
checkpoint loads with ``torch.load(..., weights_only=True)``. Any failure is a
:class:`RunsArchiveError` naming what is wrong and what to do, and nothing is installed.

Then each run folder and results file is moved into place by a rename (the previous version is kept
aside until every rename has succeeded, and put back if one fails). Runs of the profile that the
archive does not contain are left as they are. The notebooks then load the imported runs instead of
training them, provided their data and training settings are those of the exporting machine (the
marker records both; a notebook that finds a difference retrains that run and says "trained"
rather than "loaded finished run").
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from . import schema
from .jsoncheck import SchemaError
from .profiles import PROFILES, Profile, get_profile, profile_hash
from .results import (
    CorruptArtefactError,
    atomic_open,
    build_dir,
    file_digest,
    file_record,
    git_info,
    load_checkpoint,
    locked,
    read_json_object,
    results_dir,
    verify_file,
    write_text,
)
from .train import MARKER_KEYS

FORMAT = "pneumolab-runs"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: the files of a finished run folder that travel (``last.pt`` exists only while a run is unfinished)
RUN_FILES = ("done.json", "best.pt", "history.csv", "predictions.csv")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RUN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # <task>/<model>-<weights>-seed<n>
_CHUNK = 1 << 20


class RunsArchiveError(ValueError):
    """An archive that cannot be exported or installed: the message says what is wrong and what to do."""


# --------------------------------------------------------------------------- export
def runs_root(profile: Profile) -> Path:
    return build_dir("runs", profile.name)


def finished_runs(profile: Profile) -> list[Path]:
    """The finished run folders of ``profile`` (those with a ``done.json``), each checked against the
    sha256 its marker records; a damaged or foreign run raises :class:`RunsArchiveError`."""
    found = []
    for done in sorted(runs_root(profile).glob("*/*/done.json")):
        run_dir = done.parent
        if run_dir.name.startswith("."):
            continue  # a folder set aside during an import
        try:
            info = read_json_object(done)
            _check_marker(info, run_dir, profile)
            for name, record in info["files"].items():
                verify_file(run_dir / name, record)
        except (CorruptArtefactError, FileNotFoundError) as err:
            raise RunsArchiveError(
                f"{run_dir}: {err}. Rerun the notebook that trains it (it retrains a damaged run), or delete "
                "the folder to leave the run out of the archive."
            ) from None
        found.append(run_dir)
    return found


def _check_marker(info: dict, run_dir: Path | str, profile: Profile) -> None:
    """A finished-run marker fit to travel: all keys, file checksums, and made by ``profile`` as defined here."""
    missing = [k for k in (*MARKER_KEYS, "files", "profile_hash") if k not in info]
    if missing:
        raise CorruptArtefactError(
            Path(run_dir) / "done.json",
            f"lacks {', '.join(missing)} (written by an older version without checksums)",
            "Retrain the run (delete its folder and rerun its notebook) before sharing it.",
        )
    if info["profile_hash"] != profile_hash(profile):
        raise CorruptArtefactError(
            Path(run_dir) / "done.json",
            f"was trained under other settings of profile {profile.name!r} (hash {info['profile_hash']}, "
            f"the profile is now {profile_hash(profile)})",
            "Retrain it with the current profile (delete the folder and rerun its notebook).",
        )


def results_files(profile: Profile) -> list[Path]:
    """The profile's results files that exist, each validated (:func:`pneumolib.schema.read_results`)."""
    paths = []
    for name in schema.FILES:
        path = schema.results_path(profile, name)
        if path.exists():
            try:
                data = schema.read_results(profile, name)
            except (SchemaError, CorruptArtefactError) as err:
                raise RunsArchiveError(f"{err}\n(results files travel only when they validate)") from None
            made_by = _results_profile_hash(data)
            if made_by not in (None, profile_hash(profile)):
                raise RunsArchiveError(
                    f"{path} was written under other settings of profile {profile.name!r} (hash {made_by}, the "
                    f"profile is now {profile_hash(profile)}): {schema.results_file(name).rerun_hint(profile.name)}."
                )
            paths.append(path)
    return paths


def _results_profile_hash(data: dict) -> str | None:
    """The profile hash a results file records (in ``meta``, or at the top for run_metadata), if any."""
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else data
    return meta.get("profile_hash")


def export_runs(profile: Profile, out: str | os.PathLike) -> dict:
    """Write the archive of ``profile``'s finished runs and results files to ``out`` (atomically) and
    its sha256 to ``<out>.sha256``. Returns the manifest."""
    out = Path(out).expanduser().resolve()
    runs = finished_runs(profile)
    if not runs:
        raise RunsArchiveError(
            f"no finished runs of profile {profile.name!r} under {runs_root(profile)}: train them first "
            f"(python -m pneumolib.run --profile {profile.name}), then export."
        )
    members: dict[str, Path] = {}
    for run_dir in runs:
        for name in RUN_FILES:
            if (run_dir / name).exists():
                members[f"runs/{run_dir.parent.name}/{run_dir.name}/{name}"] = run_dir / name
    for path in results_files(profile):
        members[f"results/{path.name}"] = path
    git = git_info()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "profile": profile.name,
        "profile_hash": profile_hash(profile),
        "profile_settings": profile.to_dict(),
        "schema_versions": {name: spec.version for name, spec in schema.FILES.items()},
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "created": schema.utc_now(),
        "runs": [f"{d.parent.name}/{d.name}" for d in runs],
        "files": {arcname: file_record(path) for arcname, path in members.items()},
    }
    payload = (json.dumps(manifest, indent=2) + "\n").encode()
    with atomic_open(out) as fh:
        with tarfile.open(fileobj=fh, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, MANIFEST, payload)  # first: an import reads it before anything else
            for arcname, path in members.items():
                tar.add(path, arcname=arcname, recursive=False, filter=_plain)
    digest = file_digest(out)
    write_text(out.with_name(out.name + ".sha256"), f"{digest}  {out.name}\n")
    return {**manifest, "archive_sha256": digest, "archive_bytes": out.stat().st_size}


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No owner, group or local times beyond the file's mtime in the archive."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


# --------------------------------------------------------------------------- fetch
def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def _expected_sha256(url: str, given: str | None) -> str:
    """The archive's sha256: ``given``, else a ``#sha256=`` fragment, else the ``.sha256`` file beside it."""
    fragment = urllib.parse.parse_qs(urllib.parse.urlsplit(url).fragment).get("sha256", [None])[0]
    value = given or fragment
    if value is None:
        bare = urllib.parse.urlsplit(url)._replace(fragment="").geturl()
        try:
            with urllib.request.urlopen(bare + ".sha256", timeout=60) as resp:
                value = (resp.read(4096).decode("utf-8", "replace").split() or [""])[0]
        except (urllib.error.URLError, OSError) as err:
            raise RunsArchiveError(
                f"{url}: no checksum to verify the download against ({bare}.sha256: {err}). Pass the archive's "
                "sha256 with --sha256 HEX (the export printed it and wrote it to <archive>.sha256)."
            ) from None
    return _checksum(value)


def _checksum(value: str) -> str:
    value = value.strip().lower()
    if not _SHA256.match(value):
        raise RunsArchiveError(f"{value!r} is not a sha256 (64 hexadecimal digits): check the checksum you passed.")
    return value


def download(url: str, sha256: str | None = None, folder: Path | None = None) -> Path:
    """Download ``url`` into ``folder`` (``build/downloads``) with a progress bar; the file must have
    the announced length and the expected sha256 (see :func:`_expected_sha256`). Returns its path."""
    expected = _expected_sha256(url, sha256)
    bare = urllib.parse.urlsplit(url)._replace(fragment="").geturl()
    name = Path(urllib.parse.urlsplit(bare).path).name or "runs.tar.gz"
    target = (folder or build_dir("downloads")) / name
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(bare, timeout=60) as resp, atomic_open(target) as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {name}", file=sys.stderr) as bar:
                while block := resp.read(_CHUNK):
                    fh.write(block)
                    digest.update(block)
                    size += len(block)
                    bar.update(len(block))
            if total is not None and size != total:
                raise RunsArchiveError(f"{bare}: the download stopped after {size} of {total} bytes: try again.")
            if digest.hexdigest() != expected:
                raise RunsArchiveError(
                    f"{bare}: sha256 {digest.hexdigest()} of the download is not the expected {expected}: the file "
                    "is damaged, changed, or not the archive the checksum belongs to. Nothing was installed."
                )
    except (urllib.error.URLError, OSError, ValueError) as err:
        if isinstance(err, RunsArchiveError):
            raise
        raise RunsArchiveError(f"{bare}: download failed ({err}). Check the address and the connection.") from None
    return target


# --------------------------------------------------------------------------- unpack and check
def _member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name:
        raise RunsArchiveError(f"the archive holds {name!r}, a path outside the archive: refusing it.")
    return path


def read_manifest(tar: tarfile.TarFile) -> dict:
    """The archive's manifest (its first member), checked for format, version and profile."""
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise RunsArchiveError(f"the archive does not start with {MANIFEST}: it is not a PneumoLab runs archive.")
    try:
        manifest = json.loads(tar.extractfile(first).read())
    except (ValueError, UnicodeDecodeError) as err:
        raise RunsArchiveError(f"{MANIFEST} in the archive is not valid JSON ({err}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunsArchiveError(f"{MANIFEST} does not describe a {FORMAT} archive.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RunsArchiveError(
            f"archive format version {manifest.get('format_version')}, but this checkout reads version "
            f"{FORMAT_VERSION}: export it again with this version of PneumoLab (or check out the commit "
            f"{manifest.get('git_commit')} it was made with)."
        )
    name = manifest.get("profile")
    if name not in PROFILES:
        raise RunsArchiveError(f"the archive holds runs of profile {name!r}, which this checkout does not define.")
    here = profile_hash(get_profile(name))
    if manifest.get("profile_hash") != here:
        raise RunsArchiveError(
            f"the archive's runs were trained under other settings of profile {name!r} (profile hash "
            f"{manifest.get('profile_hash')}; here it is {here}): its numbers would not be this profile's. "
            f"Use the commit it was exported from ({manifest.get('git_commit')}) or export again from this one."
        )
    files, runs = manifest.get("files"), manifest.get("runs")
    if not isinstance(files, dict) or not files or not isinstance(runs, list):
        raise RunsArchiveError(f"{MANIFEST} lists no files or no runs: it is incomplete.")
    bad_runs = [r for r in runs if not (isinstance(r, str) and _RUN.match(r))]
    if bad_runs:
        raise RunsArchiveError(f"{MANIFEST} names the run {bad_runs[0]!r}, which is not <task>/<run folder>.")
    allowed = {f"runs/{r}/{f}" for r in runs for f in RUN_FILES} | {f"results/{n}.json" for n in schema.FILES}
    foreign = sorted(set(files) - allowed)
    if foreign:
        raise RunsArchiveError(f"{MANIFEST} lists {foreign[0]!r}, which is neither a run file nor a results file.")
    versions = manifest.get("schema_versions") or {}
    wrong = {}
    for name in files:
        if name.startswith("results/"):
            stem = PurePosixPath(name).stem
            if versions.get(stem) != schema.results_file(stem).version:
                wrong[stem] = versions.get(stem)
    if wrong:
        theirs = ", ".join(f"{n} {v}" for n, v in wrong.items())
        ours = ", ".join(f"{n} {schema.results_file(n).version}" for n in wrong)
        raise RunsArchiveError(
            f"incompatible schema version of the results files (archive: {theirs}; this checkout reads: {ours}). "
            "Export again with this version of PneumoLab, or migrate the files (scripts/migrate_results.py) first."
        )
    return manifest


def unpack(archive: Path, staging: Path) -> dict:
    """Extract ``archive`` into ``staging``, checking every member against the manifest; return the manifest."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            manifest = read_manifest(tar)
            expected, seen = manifest["files"], set()
            for member in tar:
                if member is tar.members[0]:
                    continue  # the manifest, read above
                path = _member_path(member.name)
                if not member.isfile():
                    raise RunsArchiveError(f"the archive holds {member.name!r}, not a plain file: refusing it.")
                record = expected.get(member.name)
                if record is None or member.name in seen:
                    raise RunsArchiveError(f"the archive holds {member.name!r}, which its manifest does not list.")
                seen.add(member.name)
                target = staging.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                try:
                    verify_file(target, record)
                except CorruptArtefactError:
                    raise RunsArchiveError(
                        f"{member.name} in the archive differs from its manifest entry (size or sha256): the "
                        "archive was changed or damaged. Get a fresh copy; nothing was installed."
                    ) from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise RunsArchiveError(
            f"{archive}: cannot read the archive ({type(err).__name__}: {err}): it is truncated or damaged. "
            "Get a fresh copy (compare its sha256 with the .sha256 file); nothing was installed."
        ) from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise RunsArchiveError(f"the archive lacks {len(missing)} file(s) its manifest lists, e.g. {missing[0]}.")
    return manifest


def check_staged(staging: Path, manifest: dict) -> Profile:
    """Every staged run is a finished run of the manifest's profile whose files match its marker and
    whose checkpoint loads weights-only; every results file validates. Returns the profile."""
    profile = get_profile(manifest["profile"])
    for run in manifest.get("runs", []):
        run_dir = staging / "runs" / run
        try:
            info = read_json_object(run_dir / "done.json")
            _check_marker(info, f"runs/{run}", profile)
            for name, record in info["files"].items():
                verify_file(run_dir / name, record)
            if (run_dir / "best.pt").exists():
                load_checkpoint(run_dir / "best.pt")  # weights_only=True: a checkpoint cannot run code
        except (CorruptArtefactError, FileNotFoundError) as err:
            raise RunsArchiveError(f"run {run} in the archive is not usable: {err}") from None
    for path in sorted((staging / "results").glob("*.json")):
        try:
            data = schema.validate(path.stem, read_json_object(path), f"results/{path.name} in the archive")
        except (SchemaError, CorruptArtefactError) as err:
            raise RunsArchiveError(f"{err}\nExport again from a checkout whose notebooks ran cleanly.") from None
        if _results_profile_hash(data) not in (None, manifest["profile_hash"]):
            raise RunsArchiveError(
                f"results/{path.name} in the archive was written under other settings of profile "
                f"{profile.name!r} than its runs: export again after rerunning the notebooks."
            )
    return profile


# --------------------------------------------------------------------------- install
def _swap_in(moves: list[tuple[Path, Path]]) -> None:
    """Move every ``staged -> target`` by rename, keeping each old target aside until all succeeded;
    if one fails, put everything back as it was and re-raise."""
    token = secrets.token_hex(4)
    done: list[tuple[Path, Path, Path | None]] = []
    try:
        for staged, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            backup = None
            if target.exists():
                backup = target.with_name(f".{target.name}.import-old-{token}")
                os.replace(target, backup)
            done.append((staged, target, backup))
            os.replace(staged, target)
    except BaseException:
        for staged, target, backup in reversed(done):
            if target.exists() and not staged.exists():
                os.replace(target, staged)
            if backup is not None:
                os.replace(backup, target)
        raise
    for _, _, backup in done:
        if backup is not None:
            shutil.rmtree(backup) if backup.is_dir() else backup.unlink()


def install(staging: Path, manifest: dict, profile: Profile) -> None:
    """Move the checked runs and results files into ``build/runs/<profile>`` and ``results/<profile>``."""
    moves = [(staging / "runs" / run, runs_root(profile) / run) for run in manifest.get("runs", [])]
    results = sorted((staging / "results").glob("*.json"))
    moves += [(path, results_dir(profile.name) / path.name) for path in results]
    with contextlib.ExitStack() as stack:  # no notebook updates a results file in the meantime
        for _, target in moves[len(moves) - len(results) :]:
            stack.enter_context(locked(target))
        _swap_in(moves)


def import_runs(source: str, sha256: str | None = None) -> dict:
    """Verify the archive at ``source`` (a path or an http(s) URL) completely, then install it.
    Returns its manifest. Raises :class:`RunsArchiveError`, with nothing installed, on any problem."""
    downloaded = None
    if _is_url(source):
        archive = downloaded = download(source, sha256)
    else:
        archive = Path(source).expanduser()
        if not archive.is_file():
            raise RunsArchiveError(f"{archive}: no such file. Give the path or the http(s) URL of an exported archive.")
        if sha256 is not None and file_digest(archive) != _checksum(sha256):
            raise RunsArchiveError(f"{archive}: its sha256 is not {sha256}: the file was changed or damaged.")
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=build_dir()))
    try:
        manifest = unpack(archive, staging)
        profile = check_staged(staging, manifest)
        try:
            install(staging, manifest, profile)
        except OSError as err:  # e.g. build/ and results/ on different file systems: everything was put back
            raise RunsArchiveError(
                f"installing failed ({type(err).__name__}: {err}); everything was put back as it was, nothing "
                "was installed. Check that build/ and results/ are writable and on the same file system."
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)
    return manifest


# --------------------------------------------------------------------------- command line
def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pneumolib.runs", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write the finished runs and results files of a profile to one archive")
    exp.add_argument("--profile", required=True, choices=sorted(PROFILES))
    exp.add_argument("--out", required=True, help="the archive to write, e.g. cpu-runs.tar.gz")
    imp = sub.add_parser("import", help="verify an archive (path or http(s) URL), then install its runs")
    imp.add_argument("source", help="the archive's path or URL")
    imp.add_argument("--sha256", help="the archive's expected sha256 (for a URL, else <URL>.sha256 is fetched)")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            m = export_runs(get_profile(args.profile), args.out)
            print(
                f"wrote {args.out}: {len(m['runs'])} runs and {sum(f.startswith('results/') for f in m['files'])} "
                f"results files of profile {m['profile']!r} (hash {m['profile_hash']}, commit "
                f"{m['git_commit'] or 'unknown'}{' dirty' if m['git_dirty'] else ''}), {_size(m['archive_bytes'])}\n"
                f"sha256 {m['archive_sha256']} (also in {args.out}.sha256)"
            )
        else:
            m = import_runs(args.source, args.sha256)
            here = git_info()["commit"]
            print(
                f"installed {len(m['runs'])} runs and {sum(f.startswith('results/') for f in m['files'])} results "
                f"files of profile {m['profile']!r} (exported {m['created']} at commit {m['git_commit']}).\n"
                f"The notebooks now load them: python -m pneumolib.run --profile {m['profile']}"
            )
            if here and m["git_commit"] and here != m["git_commit"]:
                print(
                    f"note: this checkout is at commit {here}. If training code or data differ from the exporting "
                    "machine's, a notebook retrains the runs concerned (it prints 'trained', not 'loaded')."
                )
    except RunsArchiveError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
