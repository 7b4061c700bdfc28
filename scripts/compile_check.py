"""torch.compile (inductor, CPU) against eager for each model, in the ``cpu`` profile's setting.

For each model at each of the ``cpu`` profile's input sizes (PneumoniaMNIST 28 px for the binary
task, Kermany 64 px for three classes) it measures, in a fresh subprocess each, the training step
(forward + backward + Adam, batch 32) with exactly the precision and memory format that the profile's
task gives that model on this machine (``train.config_for``: bf16 autocast where bf16 is native, else
fp32; channels_last as the profile sets it): eager img/s, compiled img/s after warm-up, the one-off
compile time, how many training images it takes for the compile time to pay for itself, and how far
the compiled model's logits are from eager ones on the same weights and batch. Output:
``benchmarks/compile.json`` and ``benchmarks/COMPILE.md``.

    python scripts/compile_check.py              # every model, ~20 minutes on 2 cores
    python scripts/compile_check.py --steps 10 --models simple_cnn

Adoption rule (issue 17): use torch.compile for a model only where it is at least 1.2x faster and
training with it gives unchanged metrics; this script measures the first half of that rule, and says
which rows would need the second (a training run with it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from pneumolib.loop import make_loss, precision_info, precision_mode
from pneumolib.models import build_model
from pneumolib.profiles import get_profile
from pneumolib.results import write_text
from pneumolib.train import config_for

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("simple_cnn", "resnet18", "densenet121")
MIN_SPEEDUP = 1.2  # issue 17's adoption threshold


def grid() -> list[tuple[str, str, int]]:
    """(task, model, input px) for every model at the cpu profile's two input sizes."""
    cpu = get_profile("cpu")
    return [
        (task, m, size)
        for task, size in (("binary", cpu.mnist_size), ("three_class", cpu.kermany_size))
        for m in MODELS
    ]


def setting(task: str, model_name: str) -> dict:
    """The precision and memory format the cpu profile trains ``model_name`` with on ``task`` on this machine."""
    config = config_for(get_profile("cpu"), model_name, num_classes=2 if task == "binary" else 3, task=task)
    return dict(bf16=config.bf16, channels_last=config.channels_last)


def break_even_images(eager_img_s: float, compiled_img_s: float, compile_s: float) -> float | None:
    """Training images after which the compiled model has saved its compile time (None: it never does)."""
    saved_per_image = 1 / eager_img_s - 1 / compiled_img_s
    return compile_s / saved_per_image if saved_per_image > 0 else None


def verdict(row: dict) -> str:
    """What issue 17's rule says of one measured row."""
    if row["speedup"] < MIN_SPEEDUP:
        return f"no: {row['speedup']}x is below {MIN_SPEEDUP}x"
    return f"candidate: {row['speedup']}x; adopt only if a training run with it gives unchanged metrics"


def measure(task: str, model_name: str, size: int, steps: int) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    chosen = setting(task, model_name)
    bf16, channels_last = chosen["bf16"], chosen["channels_last"]
    x = torch.rand(32, 1, size, size)
    y = torch.randint(0, 2, (32,))
    loss_fn = make_loss("bce", y, 1)

    def make():
        torch.manual_seed(0)
        m = build_model(model_name, image_size=size)
        return m.to(memory_format=torch.channels_last) if channels_last else m

    def rate(model, warmup: int) -> tuple[float, float]:
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        xb = x.contiguous(memory_format=torch.channels_last) if channels_last else x

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(xb).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        model.train()
        t = time.perf_counter()
        for _ in range(warmup):
            step()
        first = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(steps):
            step()
        return 32 * steps / (time.perf_counter() - t), first

    eager_ips, _ = rate(make(), 2)
    compiled = torch.compile(make())
    compiled_ips, warm_s = rate(compiled, 3)
    eager, comp = make().eval(), torch.compile(make().eval())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        diff = (eager(x).float() - comp(x).float()).abs().max().item()
    return dict(
        task=task,
        model=model_name,
        size=size,
        precision=precision_mode(bf16, channels_last),
        eager_img_s=round(eager_ips, 1),
        compiled_img_s=round(compiled_ips, 1),
        speedup=round(compiled_ips / eager_ips, 2),
        compile_and_warmup_s=round(warm_s, 1),
        max_abs_logit_diff=diff,
        **precision_info(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None)
    parser.add_argument("--one", nargs=3, metavar=("TASK", "MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], int(args.one[2]), args.steps)))
        return 0
    rows = []
    for task, model, size in grid():
        if args.models and model not in args.models:
            continue
        cmd = [sys.executable, __file__, "--steps", str(args.steps), "--one", task, model, str(size)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            rows.append(dict(task=task, model=model, size=size, error=done.stderr.strip().splitlines()[-1][:200]))
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["break_even_images"] = break_even_images(
            row["eager_img_s"], row["compiled_img_s"], row["compile_and_warmup_s"]
        )
        row["verdict"] = verdict(row)
        rows.append(row)
        print(rows[-1], flush=True)
    out = ROOT / "benchmarks"
    date = time.strftime("%Y-%m-%d")
    write_text(out / "compile.json", json.dumps(dict(date=date, steps=args.steps, rows=rows), indent=1) + "\n")
    write_text(out / "COMPILE.md", render(rows, args.steps, date))
    print(f"wrote {out / 'COMPILE.md'}")
    return 0


def render(rows: list[dict], steps: int, date: str) -> str:
    """COMPILE.md from the rows measured on ``date``."""
    measured = [r for r in rows if "error" not in r]
    first = measured[0] if measured else {}
    lines = [
        "# torch.compile vs eager (`scripts/compile_check.py`)",
        "",
        f"Measured {date}, training step at batch 32, {steps} steps after warm-up, "
        f"{os.cpu_count()} cores; CPU capability {first.get('cpu_capability')}, native bf16 "
        f"{first.get('bf16_native')}. Each row in its own process, with the precision and memory format the "
        "`cpu` profile trains that model with on that task on this machine (`train.config_for`).",
        "",
        "| task | model | px | precision | eager img/s | compiled img/s | speed-up | compile + warm-up s "
        "| pays off after (images) | max logit diff | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['task']} | {r['model']} | {r['size']} | failed: {r['error']} | | | | | | | |")
            continue
        pays = "never" if r["break_even_images"] is None else f"{r['break_even_images']:,.0f}"
        lines.append(
            f"| {r['task']} | {r['model']} | {r['size']} | {r['precision']} | {r['eager_img_s']} | "
            f"{r['compiled_img_s']} | {r['speedup']}x | {r['compile_and_warmup_s']} | {pays} | "
            f"{r['max_abs_logit_diff']:.2g} | {r['verdict']} |"
        )
    lines += [
        "",
        f"Rule (issue 17): adopt torch.compile for a model only at >= {MIN_SPEEDUP}x with unchanged metrics (a "
        "training run with it). *Pays off after*: the training images after which the faster steps have saved "
        "the measured compile time (a first compile: a later process may reuse Inductor's on-disk cache and "
        "compile faster).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
