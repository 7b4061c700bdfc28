"""Project the first `cpu` course run's wall time on another machine from two benchmarks (issue 17's targets).

A projection, not a measurement: it takes the committed reference run (``results/cpu``: each notebook's
wall time and each training run's seconds) and scales every training run by the ratio of training-step
throughputs, reference machine / target machine, for the same model and input size, as measured by
``scripts/benchmark.py`` on both, each in the precision the ``cpu`` profile picks there (bf16 +
channels_last with native bf16, fp32 + channels_last without: ``pneumolib.loop.use_bf16``). Time outside
training (decoding, evaluation, figures: a few minutes) is kept as measured, so on a slower machine the
projection is a lower bound.

Typical use, for a machine without native bf16 (or, as here, a machine made to behave like one:
``ATEN_CPU_CAPABILITY=avx2`` limits PyTorch's own kernels and ``ONEDNN_MAX_CPU_ISA=AVX2`` oneDNN's
convolutions to AVX2; the benchmark records both)::

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \\
        python scripts/benchmark.py --modes fp32+channels_last --out benchmarks/avx2-emulated
    python scripts/project_first_run.py --target benchmarks/avx2-emulated

Writes ``<target>/projection.json`` and ``<target>/PROJECTION.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pneumolib.profiles import get_profile
from pneumolib.results import project_root, write_json, write_text
from pneumolib.schema import read_results

NATIVE_BF16_CAPABILITIES = ("AVX512",)  # torch.backends.cpu.get_cpu_capability() values that can have native bf16


def native_bf16(machine: dict) -> bool:
    """Whether the profile would train in bf16 on a benchmarked machine: the CPU flags say so and nothing limits
    PyTorch to an older instruction set (an ``ATEN_CPU_CAPABILITY=avx2`` benchmark reports ``AVX2``)."""
    flags = machine.get("avx512_bf16") or machine.get("amx")
    return bool(flags) and machine.get("cpu_capability") in NATIVE_BF16_CAPABILITIES and not machine.get("isa_limits")


def step_rates(bench: dict) -> dict[tuple[str, int, str], float]:
    return {(r["model"], int(r["size"]), r["mode"]): float(r["step_img_s"]) for r in bench["rows"]}


def training_runs(prof) -> list[dict]:
    """Every run the reference run trained: notebook, model, input size and seconds."""
    meta = read_results(prof, "run_metadata")
    binary = read_results(prof, "binary")["models"]
    three = read_results(prof, "three_class")["models"]
    runs = []
    for entry in binary.values():
        notebook = "03_custom_cnn" if entry["model"] == "simple_cnn" else "04_transfer_learning"
        runs += [
            dict(notebook=notebook, model=entry["model"], size=entry["image_size"], seconds=r["train_time_s"])
            for r in entry["runs"]
        ]
    for entry in three.values():
        runs += [
            dict(notebook="05_three_class", model=entry["model"], size=entry["image_size"], seconds=r["train_time_s"])
            for r in entry["runs"]
        ]
    # notebook 06 trains only its stage models: ResNet18 (or its validation-chosen architecture) at Kermany size
    arch = read_results(prof, "hierarchical")["architecture"]
    trained_06 = meta["notebooks"].get("06_hierarchical", {}).get("train_s_trained", 0.0)
    if trained_06:
        runs.append(dict(notebook="06_hierarchical", model=arch, size=prof.kermany_size, seconds=trained_06))
    return runs


def project(reference: dict, target: dict, prof) -> dict:
    meta = read_results(prof, "run_metadata")
    ref_mode = "bf16+channels_last" if native_bf16(reference["machine"]) else "fp32+channels_last"
    tgt_mode = "bf16+channels_last" if native_bf16(target["machine"]) else "fp32+channels_last"
    ref_rates, tgt_rates = step_rates(reference), step_rates(target)
    runs = training_runs(prof)
    missing = sorted(
        {(r["model"], r["size"]) for r in runs}
        - {(m, s) for (m, s, mode) in ref_rates if mode == ref_mode}.intersection(
            {(m, s) for (m, s, mode) in tgt_rates if mode == tgt_mode}
        )
    )
    if missing:
        sys.exit(
            f"the benchmarks lack step img/s for {missing} (reference in {ref_mode}, target in {tgt_mode}): "
            "rerun scripts/benchmark.py with those models and modes on both machines"
        )
    per_notebook = {}
    for name, nb in meta["notebooks"].items():
        other = nb["wall_s"] - nb.get("train_s_trained", 0.0)
        per_notebook[name] = dict(measured_s=nb["wall_s"], other_s=max(other, 0.0), train_s=0.0, projected_train_s=0.0)
    for r in runs:
        ratio = ref_rates[r["model"], r["size"], ref_mode] / tgt_rates[r["model"], r["size"], tgt_mode]
        nb = per_notebook[r["notebook"]]
        nb["train_s"] += r["seconds"]
        nb["projected_train_s"] += r["seconds"] * ratio
    for nb in per_notebook.values():
        nb["projected_s"] = nb["other_s"] + nb["projected_train_s"]
    speed = {
        f"{m} {s} px": dict(
            reference=ref_rates[m, s, ref_mode],
            target=tgt_rates[m, s, tgt_mode],
            ratio=ref_rates[m, s, ref_mode] / tgt_rates[m, s, tgt_mode],
        )
        for m, s in sorted({(r["model"], r["size"]) for r in runs})
    }
    return dict(
        reference_machine=reference["machine"],
        target_machine=target["machine"],
        reference_mode=ref_mode,
        target_mode=tgt_mode,
        reference_commit=meta["git"].get("commit"),
        measured_total_s=meta["total_wall_s"],
        projected_total_s=sum(nb["projected_s"] for nb in per_notebook.values()),
        speed=speed,
        notebooks=per_notebook,
    )


def describe(machine: dict) -> str:
    limits = machine.get("isa_limits") or {}
    emulated = f", limited by {', '.join(f'{k}={v}' for k, v in limits.items())}" if limits else ""
    return (
        f"{machine.get('cores')} cores, CPU capability {machine.get('cpu_capability')}{emulated}, "
        f"native bf16 {native_bf16(machine)}"
    )


def markdown(p: dict) -> str:
    lines = [
        "# Projected first `cpu` run (generated by scripts/project_first_run.py; do not edit)",
        "",
        f"**A projection, not a measured run.** Reference: the committed `cpu` run (commit "
        f"{(p['reference_commit'] or '?')[:7]}, {p['measured_total_s'] / 60:.1f} min) on "
        f"{describe(p['reference_machine'])}, training in {p['reference_mode']}. "
        f"Target: {describe(p['target_machine'])}, training in {p['target_mode']}. "
        "Each training run is scaled by the ratio of training-step img/s (scripts/benchmark.py); time outside "
        "training is kept as measured.",
        "",
        f"**Projected first run: {p['projected_total_s'] / 60:.0f} min** "
        f"({p['projected_total_s'] / p['measured_total_s']:.1f}x the reference run).",
        "",
        "| model | step img/s, reference | step img/s, target | time factor |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v['reference']:.1f} | {v['target']:.1f} | {v['ratio']:.2f}x |" for k, v in p["speed"].items()]
    lines += ["", "| notebook | measured s | of which training | projected s |", "|---|---|---|---|"]
    lines += [
        f"| {k} | {v['measured_s']:.0f} | {v['train_s']:.0f} | {v['projected_s']:.0f} |"
        for k, v in p["notebooks"].items()
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    root = project_root()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True, help="folder with the target machine's benchmark.json")
    ap.add_argument(
        "--reference",
        default="benchmarks/avx512-bf16-no-amx",
        help="folder with the benchmark.json of the machine that made the reference run",
    )
    args = ap.parse_args(argv)
    benches = {}
    for which in ("reference", "target"):
        path = root / getattr(args, which) / "benchmark.json"
        if not path.exists():
            sys.exit(f"no {path}: run scripts/benchmark.py --out {getattr(args, which)} on the {which} machine first")
        benches[which] = json.loads(path.read_text())
    prof = get_profile("cpu")
    run_machine = read_results(prof, "run_metadata")["machine"]
    ref_machine = benches["reference"]["machine"]
    if (run_machine.get("cpu_capability"), bool(run_machine.get("amx"))) != (
        ref_machine.get("cpu_capability"),
        bool(ref_machine.get("amx")),
    ):
        sys.exit(
            f"the reference benchmark ({describe(ref_machine)}) was not measured on the kind of machine that made "
            f"results/cpu ({run_machine.get('cpu_capability')}, AMX {run_machine.get('amx')}): pass --reference "
            "with a benchmark of that machine"
        )
    result = project(benches["reference"], benches["target"], prof)
    out = Path(root / args.target)
    write_json(out / "projection.json", result)
    text = markdown(result)
    write_text(out / "PROJECTION.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
