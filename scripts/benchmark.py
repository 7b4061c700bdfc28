"""Benchmark: training throughput, inference latency and peak memory on this machine.

For every (model, input size, precision) it measures, each in a fresh subprocess so that peak
memory is its own:

* ``step img/s``   pure forward + backward + Adam step on one in-memory batch (the ceiling),
* ``loop img/s``   the real training loop (uint8 -> float, augmentation, step) over a few batches:
                   if it is far below ``step img/s``, data handling is the bottleneck. The two alternate in
                   ``ROUNDS`` rounds of ``--steps`` steps each (more where that takes under ``MIN_PHASE_S``);
                   the table shows the median img/s of each and the median of the paired per-round ratios
                   ``loop/step`` (so that a machine speeding up or slowing down during the measurement does
                   not pass for a slow or fast loop),
* ``ms/img``       inference, batch 32,
* ``peak MiB``     peak resident memory of the process,
* ``GFLOP/s``      model FLOPs of a training step (convolutions and matrix products, forward and backward,
                   counted by ``torch.utils.flop_counter``) times steps per second, and its share of this
                   machine's **measured matmul peak** in the same precision (a large square matrix product,
                   fp32 or bf16): how much of the hardware the model's shape lets a step use.

It also copies the notebooks' wall times from ``results/<profile>/run_metadata.json`` (written
by ``python -m pneumolib.run``). Output: ``benchmarks/benchmark.json`` and
``benchmarks/BENCHMARK.md``. Usage::

    python scripts/benchmark.py                 # default grid
    python scripts/benchmark.py --quick         # fewer steps
    python scripts/benchmark.py --walls-only    # keep the measured rows, refresh the wall times
    python scripts/benchmark.py --modes bf16+channels_last fp32+channels_last --out benchmarks/other-machine
    python scripts/benchmark.py --grid resolution --modes bf16+channels_last --out benchmarks/resolution
    python scripts/benchmark.py --steps 40 --only resnet18   # longer measurements: steadier loop/step ratios
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROUNDS = 5  # step and loop timings alternate this many times; the table shows medians
MIN_PHASE_S = 1.0  # each timed phase runs at least this long (more steps for fast models)

GRID = [  # (model, input px, note)
    ("simple_cnn", 28, "PneumoniaMNIST"),
    ("resnet18", 28, "PneumoniaMNIST, CIFAR stem"),
    ("densenet121", 28, "PneumoniaMNIST, upsampled to 64"),
    ("simple_cnn", 64, "Kermany cpu"),
    ("resnet18", 64, "Kermany cpu, CIFAR stem"),
    ("densenet121", 64, "Kermany cpu"),
    ("resnet18", 224, "Kermany gpu profile"),
]
RESOLUTION_GRID = [  # the three-class models at the sizes of scripts/resolution_study.py
    (name, size, f"Kermany {size} px" + (", CIFAR stem" if name == "resnet18" and size < 112 else ""))
    for name in ("simple_cnn", "resnet18", "densenet121")
    for size in (64, 96, 128)
]
GRIDS = {"default": GRID, "resolution": RESOLUTION_GRID}
MODES = {
    "fp32": dict(bf16=False, channels_last=False),
    "fp32+channels_last": dict(bf16=False, channels_last=True),
    "bf16": dict(bf16=True, channels_last=False),
    "bf16+channels_last": dict(bf16=True, channels_last=True),
}


def measure(model_name: str, size: int, mode: str, steps: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pneumolib.data import ImageSet
    from pneumolib.loop import TrainConfig, iterate_batches, make_loss
    from pneumolib.models import build_model
    from pneumolib.profiles import get_profile
    from pneumolib.transforms import Augment

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    opts = MODES[mode]
    model = build_model(model_name, image_size=size)
    if opts["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    n = 32 * 34  # 34 batches; the loop cycles through them epoch after epoch, reshuffled each time
    data = ImageSet(torch.randint(0, 255, (n, size, size), dtype=torch.uint8), torch.randint(0, 2, (n,)))
    loss_fn = make_loss("bce", data.labels, 1)
    cfg = TrainConfig(**opts, augment=Augment(**get_profile("cpu").augment))  # the cpu profile's augmentation

    def step(x, y):
        if opts["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts["bf16"]):
            logits = model(x).float()
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    x0, y0 = next(iterate_batches(data, 32))
    for _ in range(2):
        step(x0, y0)  # warm-up
    t = time.perf_counter()
    step(x0, y0)
    # at least `steps` steps and MIN_PHASE_S seconds per timed phase: 8 steps of a 28 px custom CNN take 0.1 s
    steps = max(steps, math.ceil(MIN_PHASE_S / (time.perf_counter() - t)))
    with FlopCounterMode(display=False) as counter:
        step(x0, y0)
    flops = counter.get_total_flops()
    gen = torch.Generator().manual_seed(0)

    def batches():  # the training loop's batches, epoch after epoch (a new shuffle each epoch)
        while True:
            yield from iterate_batches(data, 32, shuffle=True, generator=gen)

    loop_batches = batches()
    step_rates, loop_rates = [], []
    for _ in range(ROUNDS):  # bare step and loop alternate, so drift in clock speed or load hits both alike
        t = time.perf_counter()
        for _ in range(steps):
            step(x0, y0)
        step_rates.append(32 * steps / (time.perf_counter() - t))
        t, seen = time.perf_counter(), 0
        for _ in range(steps):
            x, y = next(loop_batches)
            step(cfg.augment(x, gen), y)
            seen += len(y)
        loop_rates.append(seen / (time.perf_counter() - t))
    step_ips, loop_ips = statistics.median(step_rates), statistics.median(loop_rates)
    ratio = statistics.median(lo / st for lo, st in zip(loop_rates, step_rates))  # paired: each loop with its step
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts["bf16"]):
        model(x0)
        t = time.perf_counter()
        for _ in range(steps):
            model(x0)
    ms = 1000 * (time.perf_counter() - t) / (32 * steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(
        model=model_name,
        size=size,
        mode=mode,
        step_img_s=round(step_ips, 1),
        loop_img_s=round(loop_ips, 1),
        loop_vs_step=round(ratio, 3),
        ms_per_img=round(ms, 3),
        peak_mib=round(peak),
        gflop_per_step=round(flops / 1e9, 2),
        gflop_s=round(flops / 1e9 * step_ips / 32, 1),
    )


def matmul_peak(bf16: bool, sizes: tuple[int, ...] = (1024, 2048, 4096), seconds: float = 1.0) -> float:
    """GFLOP/s of large square matrix products on all cores: the best over ``sizes`` and 3 runs of about
    ``seconds`` each (a lower bound of the machine's peak: a convolution kernel may still beat it)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    dtype = torch.bfloat16 if bf16 else torch.float32
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.mm(a, b)  # warm-up
        for _ in range(3):
            reps, t = 0, time.perf_counter()
            while time.perf_counter() - t < seconds:
                torch.mm(a, b)
                reps += 1
            best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e9)
    return round(best, 1)


def machine(bf16_peak: bool = True) -> dict:
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    flags = ""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        pass
    import torch

    return dict(
        cores=os.cpu_count(),
        memory_gib=mem,
        platform=platform.platform(),
        python=platform.python_version(),
        torch=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        avx512_bf16="avx512_bf16" in flags,
        amx="amx_bf16" in flags,
        # set to make this machine behave like an older one (e.g. AVX2 only): recorded so nobody mistakes it
        isa_limits={k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if os.environ.get(k)},
        # bf16 only where a bf16 mode is measured: emulated bf16 (no native support) takes minutes per product
        matmul_peak_gflop_s={"fp32": matmul_peak(False), **({"bf16": matmul_peak(True)} if bf16_peak else {})},
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps per measurement")
    ap.add_argument("--only", nargs="*", help="model names to measure")
    ap.add_argument("--out", default="benchmarks", help="output folder (relative to the project root)")
    ap.add_argument(
        "--walls-only",
        action="store_true",
        help="measure nothing: reuse the rows of <out>/benchmark.json and refresh the notebook wall times",
    )
    ap.add_argument("--modes", nargs="*", choices=list(MODES), help="precision / memory formats to measure")
    ap.add_argument("--grid", choices=list(GRIDS), default="default", help="which (model, size) rows to measure")
    ap.add_argument(
        "--steps",
        type=int,
        help="at least this many training steps per timed phase (default 8, 3 with --quick, 2 at 224 px; more "
        "where they take under MIN_PHASE_S = 1 s)",
    )
    ap.add_argument("--_one", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._one:  # child process: one measurement, JSON on stdout
        name, size, mode, steps = args._one
        print(json.dumps(measure(name, int(size), mode, int(steps))))
        return 0
    from pneumolib.results import project_root, write_json, write_text

    root = project_root()
    out_dir = root / args.out
    previous = json.loads((out_dir / "benchmark.json").read_text()) if (out_dir / "benchmark.json").exists() else None
    if args.walls_only and previous is None:
        raise SystemExit(
            f"--walls-only needs an earlier {out_dir / 'benchmark.json'}: run scripts/benchmark.py once first"
        )
    rows = previous["rows"] if args.walls_only else []
    if args.steps is not None and args.steps < 2:
        ap.error(f"--steps must be at least 2 (one warm-up step is not timed), got {args.steps}")
    for name, size, note in GRIDS[args.grid] if not args.walls_only else []:
        if args.only and name not in args.only:
            continue
        steps = args.steps or max(2, (3 if args.quick else 8) if size < 224 else 2)
        for mode in args.modes or MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--_one", name, str(size), mode, str(steps)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1]) | {"note": note}
            print(
                f"{name:12s} {size:4d}px {mode:19s} step {row['step_img_s']:8.1f} img/s  loop {row['loop_img_s']:8.1f} "
                f"img/s  {row['ms_per_img']:7.2f} ms/img  {row['peak_mib']:6d} MiB",
                flush=True,
            )
            rows.append(row)
    walls, runs = {}, {}
    for prof in ("smoke", "cpu"):
        meta = root / "results" / prof / "run_metadata.json"
        if meta.exists():
            nbs = json.loads(meta.read_text()).get("notebooks", {})
            walls[prof] = {k: v.get("wall_s") for k, v in nbs.items()}
        binary = root / "results" / prof / "binary.json"
        if binary.exists():  # the real training runs behind notebooks 03-04
            runs[prof] = {
                k: dict(
                    epochs=[r["epochs_run"] for r in e["runs"]],
                    train_s=round(sum(r["train_time_s"] for r in e["runs"]), 1),
                    img_per_s=round(sum(r["img_per_s_train"] for r in e["runs"]) / len(e["runs"]), 1),
                )
                for k, e in json.loads(binary.read_text()).get("models", {}).items()
            }
    measured = (
        dict(machine=previous["machine"], date=previous["date"])
        if args.walls_only
        else dict(
            machine=machine(bf16_peak=any(m.startswith("bf16") for m in (args.modes or MODES))),
            date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        )
    )
    result = dict(**measured, rows=rows, notebook_wall_s=walls, binary_training_runs=runs)
    write_json(out_dir / "benchmark.json", result)
    lines = [
        "# Benchmark (generated by scripts/benchmark.py; do not edit)",
        "",
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}",
        "",
        "| model | input | mode | step img/s | loop img/s | loop/step | ms/img | peak MiB | GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    peaks = result["machine"].get("matmul_peak_gflop_s") or {}
    for r in rows:
        gflops = r.get("gflop_s")  # rows measured before FLOPs were counted have none
        peak = peaks.get("bf16" if r["mode"].startswith("bf16") else "fp32")  # None if not measured
        share = f"{gflops / peak:.0%}" if gflops and peak else "-"
        lines.append(
            f"| {r['model']} | {r['size']} px ({r['note']}) | {r['mode']} | {r['step_img_s']} | {r['loop_img_s']} | "
            f"{r['loop_vs_step']} | {r['ms_per_img']} | {r['peak_mib']} | {gflops or '-'} | {share} |"
        )
    if peaks:
        lines += [
            "",
            f"Measured matmul peak (best square product of 1024-4096, all cores): fp32 {peaks['fp32']} GFLOP/s, "
            f"bf16 {peaks.get('bf16', 'not measured')} GFLOP/s; % of peak compares with the peak of the row's "
            "precision. "
            "GFLOP/s counts convolutions and matrix products of a training "
            "step (forward and backward; torch.utils.flop_counter), not element-wise work (BatchNorm, ReLU, "
            "concatenation), which costs time but no FLOPs. A share above 100% means a convolution kernel beat "
            "the largest matrix product measured: the measured peak is a lower bound.",
        ]
    for prof, nbs in walls.items():
        lines += [
            "",
            f"Notebook wall time, profile `{prof}` (from results/{prof}/run_metadata.json):",
            "",
            "| notebook | wall s |",
            "|---|---|",
        ] + [f"| {k} | {v} |" for k, v in nbs.items()]
        pair = [nbs.get(k) for k in ("03_custom_cnn", "04_transfer_learning")]
        if all(isinstance(v, (int, float)) for v in pair):
            lines += [
                "",
                f"Notebooks 03 + 04 together: {sum(pair) / 60:.1f} min "
                "(a first run trains; a rerun that loads finished runs is much shorter).",
            ]
    for prof, models in runs.items():
        lines += [
            "",
            f"Binary training runs, profile `{prof}` (from results/{prof}/binary.json):",
            "",
            "| model | epochs per seed | training s (all seeds) | training img/s |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {', '.join(map(str, v['epochs']))} | {v['train_s']} | {v['img_per_s']} |"
            for k, v in models.items()
        ]
    write_text(out_dir / "BENCHMARK.md", "\n".join(lines) + "\n")
    print(f"wrote {out_dir / 'BENCHMARK.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
