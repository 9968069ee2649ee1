"""Cost of the STCCL loss over the metric backbone alone, for one named config.

    .venv/bin/python benchmarks/loss_step.py --config params/metric_tiny.yaml [--batch 8] [--T 5] [--reps 10]

Modes, timed as fwd + bwd of one plug-in step on random clips (B, T, 3, S, S):
    backbone   input clip through the frozen network without grad, generated clip with grad,
               a trivial scalar (mean of the stage maps) backpropagated to the generated clip
    vd, cm     the same two forwards + the full STCCL loss (SCC + TCC) of that variant
Repetitions are interleaved (backbone, vd, cm, backbone, ...) so machine load hits all modes
alike; ratios are medians from this one run. Memory: bytes of tensors saved for backward
(activation memory, per mode) and the process peak RSS; on CUDA also max_memory_allocated.
Prints one JSON line. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stccl.config import replace  # noqa: E402
from stccl.io import resolve_device  # noqa: E402
from stccl.core.losses import STCCLLoss  # noqa: E402
from stccl.core.metric_net import MetricNet  # noqa: E402
from stccl.core.train_metric import load_metric_config  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="params/metric_tiny.yaml")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--T", type=int, default=5)
    ap.add_argument("--size", type=int, default=None, help="frame side (default: the config's size or 64)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_metric_config(args.config)
    device = resolve_device(args.device)
    size = args.size or cfg.size or 64
    net = MetricNet(cfg.net)
    losses = {v: STCCLLoss(net, replace(cfg.loss, variant=v)).to(device) for v in ("vd", "cm")}
    x = torch.rand(args.batch, args.T, 3, size, size, device=device)
    gen0 = torch.rand_like(x)

    def step(mode: str) -> None:
        gen = gen0.clone().requires_grad_(True)
        if mode == "backbone":
            with torch.no_grad():
                net(x.flatten(0, 1))
            loss = sum(f.mean() for f in net(gen.flatten(0, 1)))
        else:
            loss, _ = losses[mode](x, gen)
        loss.backward()

    def saved_bytes(mode: str) -> int:
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            step(mode)
        return total

    modes = ["backbone", "vd", "cm"]
    for m in modes:  # warm-up
        step(m)
    times = {m: [] for m in modes}
    cuda_peak = {}
    for _ in range(args.reps):
        for m in modes:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            step(m)
            if device.type == "cuda":
                torch.cuda.synchronize()
                cuda_peak[m] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            times[m].append(time.perf_counter() - t0)
    med = {m: statistics.median(v) for m, v in times.items()}
    out = {
        "config": args.config, "arch": cfg.net.arch, "device": str(device), "threads": args.threads,
        "batch": args.batch, "T": args.T, "size": size, "reps": args.reps,
        "spatial_samples": list(cfg.loss.spatial_samples), "temporal_factor": cfg.loss.temporal_factor,
        "median_s": {m: round(v, 4) for m, v in med.items()},
        "ratio_vs_backbone": {m: round(med[m] / med["backbone"], 3) for m in ("vd", "cm")},
        "overhead_pct": {m: round(100 * (med[m] / med["backbone"] - 1), 1) for m in ("vd", "cm")},
        "saved_for_backward_mb": {m: round(saved_bytes(m) / 2**20, 1) for m in modes},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if cuda_peak:
        out["cuda_peak_mb"] = cuda_peak
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
