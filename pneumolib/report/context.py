"""Reading one profile's results (with freshness checks), its figures, and the cover page."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import schema
from ..models import MODEL_NAMES, weights_label
from ..profiles import Profile, profile_hash, require_profile
from ..results import project_root, read_json, results_dir
from .blocks import (
    FIGURE_CAPTIONS,
    MissingResultsError,
    Skipped,
    StaleResultsError,
    figure_block,
    figure_caption,
    fmt_seconds,
    table,
)

#: results file -> (number of the notebook that writes it, its default name), from the schema. Names
#: are looked up in notebooks/ first, so a renamed notebook is still named correctly in error messages.
RESULT_FILES: dict[str, tuple[str, str]] = {
    name: (spec.writer[:2], spec.writer) for name, spec in schema.FILES.items() if name != "run_metadata"
}
METADATA_FILE = "run_metadata.json"


def expected_arms(profile: Profile, file: str) -> tuple[str, ...]:
    """The arms a task's results must hold, unless the file records them as skipped with a reason: every
    model with the profile's weights for it, plus, for the binary task, ResNet18 from the other starting
    point (notebook 04's pretrained vs scratch comparison)."""
    if file not in ("binary", "three_class"):
        return ()
    arms = [f"{m}-{weights_label(profile.weights_for(m))}" for m in MODEL_NAMES]
    if file == "binary":
        arms += ["resnet18-" + ("scratch" if profile.weights_for("resnet18") == "imagenet" else "imagenet")]
    return tuple(arms)


# --------------------------------------------------------------------------- loading
class Results:
    """Reads the results of one profile, collecting every problem before raising."""

    def __init__(self, profile: Profile):
        prof = require_profile(profile)
        self.profile = prof
        self.name = prof.name
        self.hash = profile_hash(prof)
        self.root = project_root()
        self.dir = results_dir(self.name)
        self.problems: list[str] = []
        self.missing = False
        self.notebook_names = self._notebook_names()
        self.run_meta = self._read_run_meta()
        self._cache: dict[str, Any] = {}

    def _read_run_meta(self) -> dict | None:
        path = self.dir / METADATA_FILE
        if not path.exists():
            return None
        try:
            return schema.validate("run_metadata", read_json(path), path)
        except ValueError as err:  # not JSON, or not the schema: the runner rewrites it on its next run
            named = str(err) if path.name in str(err) else f"{self.rel(path)} is not valid JSON ({err})."
            self.problems.append(f"{named} Rerun the notebooks (python -m pneumolib.run --profile {self.name}).")
            return None

    def _notebook_names(self) -> dict[str, str]:
        names = {num: name for num, name in RESULT_FILES.values()}
        for path in sorted((self.root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            names[path.name[:2]] = path.stem
        return names

    def notebook(self, number: str) -> str:
        return self.notebook_names.get(number, number)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def run_command(self, number: str) -> str:
        return f"python -m pneumolib.run --profile {self.name} --only {number}"

    def run_entry(self, number: str) -> dict | None:
        table = (self.run_meta or {}).get("notebooks") or {}
        for name, entry in table.items():
            if name[:2] == number:
                return entry
        return None

    def get(self, file: str) -> dict | Skipped | None:
        """The results file's content, a :class:`Skipped`, or None (problem recorded)."""
        if file in self._cache:
            return self._cache[file]
        number, _ = RESULT_FILES[file]
        nb = self.notebook(number)
        path = self.dir / f"{file}.json"
        entry = self.run_entry(number)
        value: dict | Skipped | None = None
        if not path.exists():
            if entry and entry.get("status") == "skipped":
                value = Skipped(nb, entry.get("reason") or "no reason recorded")
            else:
                self.missing = True
                self.problems.append(f"{self.rel(path)} missing: run notebook {nb} ({self.run_command(number)})")
        else:
            try:
                value = schema.validate(file, read_json(path), path)
            except schema.OutdatedResultsError as err:
                self.problems.append(str(err))
                value = None
            except ValueError as err:  # invalid JSON or a layout the schema does not know
                named = str(err) if path.name in str(err) else f"{self.rel(path)} is not valid JSON ({err})."
                self.problems.append(f"{named} Rerun notebook {nb} ({self.run_command(number)}).")
                value = None
            if value is not None:
                value = self._check_fresh(file, path, value, number, nb, entry)
            if value is not None:
                value = self._check_arms(file, path, value, number, nb)
        self._cache[file] = value
        return value

    def _check_fresh(self, file, path, data, number, nb, entry):
        meta = data.get("meta") if isinstance(data, dict) else None
        if isinstance(meta, dict) and "profile_hash" in meta:
            if meta.get("profile") not in (None, self.name):
                self.problems.append(
                    f"{self.rel(path)} holds results of profile {meta.get('profile')!r}, "
                    f"not {self.name!r}: rerun notebook {nb} ({self.run_command(number)})"
                )
                return None
            if meta["profile_hash"] != self.hash:
                self.problems.append(
                    f"{self.rel(path)} is stale: written with profile settings {meta['profile_hash']}, but "
                    f"profile {self.name!r} is now {self.hash} (pneumolib/profiles.py changed). Rerun notebook "
                    f"{nb} and the notebooks after it (python -m pneumolib.run --profile {self.name} --from {number})."
                )
                return None
        elif entry and entry.get("status") == "ok" and entry.get("profile_hash") not in (None, self.hash):
            # a file without meta (data.json): the runner's record tells which settings made it
            self.problems.append(
                f"{self.rel(path)} is stale: notebook {nb} last ran with profile settings "
                f"{entry['profile_hash']}, profile {self.name!r} is now {self.hash}. "
                f"Rerun it ({self.run_command(number)})."
            )
            return None
        if entry and entry.get("status") == "failed":
            self.problems.append(
                f"notebook {nb} failed in the last run ({entry.get('reason')}): fix it and rerun "
                f"({self.run_command(number)}); {self.rel(path)} may be incomplete."
            )
            return None
        return data

    def _check_arms(self, file, path, data, number, nb):
        """Refuse a task file that lacks an expected arm without recording why it was skipped."""
        missing = [
            arm
            for arm in expected_arms(self.profile, file)
            if arm not in data["models"] and arm not in data.get("skipped", {})
        ]
        if missing:
            self.problems.append(
                f"{self.rel(path)} lacks {', '.join(missing)} and does not record them as skipped: "
                f"rerun notebooks {nb[:2]}-{'04' if file == 'binary' else nb[:2]} "
                f"(python -m pneumolib.run --profile {self.name} --only "
                f"{'03 04' if file == 'binary' else number})."
            )
            return None
        return data

    def raise_problems(self, what: str = "the report") -> None:
        if not self.problems:
            return
        text = (
            f"Cannot build {what} for profile {self.name!r}:\n  - "
            + "\n  - ".join(self.problems)
            + f"\n(or run every notebook: python -m pneumolib.run --profile {self.name})"
        )
        if self.missing:
            raise MissingResultsError(text)
        raise StaleResultsError(text)


def figures(res: Results, numbers: Iterable[str]) -> list[dict]:
    """Every figures/<profile>/NN_*.png of these notebooks: known ones in story order, then the rest."""
    folder = res.root / "figures" / res.name
    order = {name: i for i, name in enumerate(FIGURE_CAPTIONS)}
    blocks = []
    for number in numbers:
        paths = sorted(folder.glob(f"{number}_*.png"), key=lambda p: (order.get(p.stem, len(order)), p.stem))
        for path in paths:
            blocks.append(figure_block(path, res.root, figure_caption(path.stem)))
    return blocks


# --------------------------------------------------------------------------- cover
def _machine_text(machine: Mapping | None) -> str:
    if not machine:
        return "not recorded"
    parts = []
    if machine.get("cpu_count"):
        parts.append(f"{machine['cpu_count']} CPU cores")
    if machine.get("memory_gib"):
        parts.append(f"{machine['memory_gib']} GiB RAM")
    parts.append(f"GPU: {machine['cuda_device']}" if machine.get("cuda_device") else "no GPU")
    if machine.get("platform"):
        parts.append(str(machine["platform"]))
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']}")
    return ", ".join(parts)


def training_texts(task_results: dict) -> list[str]:
    """How each task's models were trained, read from the protocol stored with their results."""
    texts = []
    for task, results in task_results.items():
        groups: dict[str, list[str]] = {}
        for e in (results or {}).get("models", {}).values() if isinstance(results, dict) else []:
            protocol = e.get("protocol")
            if protocol:
                groups.setdefault(protocol["text"], []).append(f"{e.get('display_name')} {protocol['max_epochs']}")
        for text, epochs in groups.items():
            texts.append(f"{task + ': ' if task else ''}{text}; epoch budget: {', '.join(epochs)}.")
    return texts


def cover(res: Results) -> dict:
    meta = res.run_meta or {}
    git = meta.get("git") or {}
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += " (uncommitted changes)"
    rows = []
    for name, entry in sorted((meta.get("notebooks") or {}).items()):
        status = entry.get("status") or "?"
        detail = entry.get("reason") or ""
        if entry.get("profile_hash") and entry["profile_hash"] != res.hash:
            detail = (detail + "; " if detail else "") + f"other settings ({entry['profile_hash']})"
        rows.append(
            [
                name,
                status,
                fmt_seconds(entry.get("wall_s")) if status != "skipped" else "",
                (entry.get("date") or "")[:10],
                detail,
            ]
        )
    total = sum(e.get("wall_s") or 0 for e in (meta.get("notebooks") or {}).values())
    prof = res.profile
    settings = (
        f"PneumoniaMNIST {prof.mnist_size} px"
        f"{'' if prof.mnist_subset is None else f' (subset {prof.mnist_subset} per split)'}; "
        f"Kermany {prof.kermany_size} px"
        f"{'' if prof.kermany_subset is None else f' (subset {prof.kermany_subset} per split)'}; "
        f"seeds {', '.join(str(s) for s in prof.seeds)}; "
        f"weights {prof.weights}"
    )
    return {
        "title": "PneumoLab: pediatric chest X-ray classification",
        "subtitle": "Normal vs pneumonia, and normal / bacterial / viral pneumonia: a reproducible teaching study",
        "disclaimer": "Educational prototype, not a clinical device. Do not use these models for diagnosis.",
        "facts": [
            ["Profile", f"{prof.name} ({res.hash})"],
            ["Settings", settings],
            ["Profile description", prof.description],
            ["Run date", (meta.get("date") or "not recorded").replace("T", " ")],
            ["Report built", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
            ["Git commit", commit],
            ["Machine", _machine_text(meta.get("machine"))],
            ["Total notebook time", fmt_seconds(total)],
        ],
        "notebooks": table(
            ["Notebook", "Status", "Wall time", "Date", "Note"],
            rows,
            caption="Notebooks of this run (python -m pneumolib.run), with their wall time.",
            size=8,
        ),
    }
