"""torch.compile (inductor, CPU) against eager for each model, in the ``cpu`` profile's setting.

For each (model, input size) of the ``cpu`` profile it measures, in a fresh subprocess each, the
training step (forward + backward + Adam, batch 32) with the profile's precision on this machine
(bf16 autocast + channels_last where bf16 is native, else fp32): eager img/s, compiled img/s after
warm-up, the one-off compile time, and how far the compiled model's logits are from eager ones on
the same weights and batch. Output: ``benchmarks/compile.json`` and ``benchmarks/COMPILE.md``.

    python scripts/compile_check.py              # every model, ~10 minutes on 2 cores
    python scripts/compile_check.py --steps 10 --models simple_cnn

Adoption rule (issue 17): use torch.compile for a model only where it is at least 1.2x faster and
training with it gives unchanged metrics; this script measures the first half of that rule.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = [("simple_cnn", 28), ("resnet18", 28), ("densenet121", 28), ("simple_cnn", 64), ("resnet18", 64)]


def measure(model_name: str, size: int, steps: int) -> dict:
    import torch

    from pneumolib.loop import make_loss, precision_info, use_bf16
    from pneumolib.models import build_model

    torch.set_num_threads(os.cpu_count() or 1)
    bf16 = use_bf16(True)
    channels_last = bf16 and model_name != "densenet121"
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
        model=model_name,
        size=size,
        precision="bf16+channels_last" if channels_last else ("bf16" if bf16 else "fp32"),
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
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.steps)))
        return 0
    rows = []
    for model, size in GRID:
        if args.models and model not in args.models:
            continue
        cmd = [sys.executable, __file__, "--steps", str(args.steps), "--one", model, str(size)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            rows.append(dict(model=model, size=size, error=done.stderr.strip().splitlines()[-1][:200]))
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    out = ROOT / "benchmarks"
    (out / "compile.json").write_text(json.dumps(dict(date=time.strftime("%Y-%m-%d"), rows=rows), indent=1) + "\n")
    lines = [
        "# torch.compile vs eager (`scripts/compile_check.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}, training step at batch 32, {args.steps} steps after warm-up, "
        f"{os.cpu_count()} cores; CPU capability {rows[0].get('cpu_capability')}, native bf16 "
        f"{rows[0].get('bf16_native')}. Each row in its own process.",
        "",
        "| model | px | precision | eager img/s | compiled img/s | speed-up | compile + warm-up s | max logit diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['size']} | failed: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['size']} | {r['precision']} | {r['eager_img_s']} | {r['compiled_img_s']} | "
            f"{r['speedup']}x | {r['compile_and_warmup_s']} | {r['max_abs_logit_diff']:.2g} |"
        )
    lines += [
        "",
        "Rule: adopt torch.compile for a model only at >= 1.2x with unchanged metrics (a training run with it).",
        "",
    ]
    (out / "COMPILE.md").write_text("\n".join(lines))
    print(f"wrote {out / 'COMPILE.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
