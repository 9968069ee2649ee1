"""Time of one metric-training step (forward, loss, backward, Adam) for a named config, on random clips.

    .venv/bin/python benchmarks/metric_step.py --config params/paper.yaml --batch 1 --steps 2 --threads 2

No data set is read: the neutral and emotional windows are random (B, T, 3, S, S) tensors, so the
time is the network's and the loss's, not the loader's. One extra (untimed) step runs under
torch.utils.flop_counter.FlopCounterMode and gives the FLOPs of a step (convolutions and matrix
products, forward + backward). `--batch` below the config's batch_size measures a smaller batch
(a paper-sized batch may not fit in CPU memory); "per_config_batch" scales time and FLOPs
linearly to the config's batch, which is stated as an extrapolation in the output.
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
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stccl.core.correlation import sample_positions  # noqa: E402
from stccl.core.frozen import autocast_context  # noqa: E402
from stccl.io import resolve_device  # noqa: E402
from stccl.core.metric_net import MetricNet  # noqa: E402
from stccl.core.train_metric import MetricObjective, _stage_shapes, load_metric_config  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="params/paper.yaml")
    ap.add_argument("--batch", type=int, default=None, help="default: the config's batch_size")
    ap.add_argument("--size", type=int, default=None, help="frame side (default: the config's size or 64)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--amp", default=None, choices=["off", "bf16", "fp16"], help="default: the config's amp")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_metric_config(args.config)
    device = resolve_device(args.device)
    batch = args.batch or cfg.batch_size
    size = args.size or cfg.size or 64
    amp = args.amp or cfg.amp
    autocast_context(amp, device)  # reject fp16 on the CPU before any work
    net = MetricNet(cfg.net).to(device).train()
    objective = MetricObjective(net, cfg.loss, cfg.symmetric, amp)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    shapes = _stage_shapes(net, (size, size))
    clips = [torch.rand(batch, cfg.T, 3, size, size, device=device) for _ in range(2)]  # neutral, emotional

    def step() -> None:
        samples = sample_positions(shapes, cfg.loss.spatial_samples, cfg.loss.temporal_factor, cfg.loss.central)
        loss, _ = objective(*clips, samples)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    step()  # warm-up: allocator, oneDNN primitive cache
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    med = statistics.median(times)
    scale = cfg.batch_size / batch
    out = {
        "config": args.config, "arch": cfg.net.arch, "device": str(device), "threads": args.threads,
        "batch": batch, "T": cfg.T, "size": size, "amp": amp, "frames_per_step": 2 * batch * cfg.T,
        "spatial_samples": list(cfg.loss.spatial_samples), "temporal_factor": cfg.loss.temporal_factor,
        "warmup_s": round(warmup_s, 2), "step_s": [round(t, 2) for t in times], "median_step_s": round(med, 2),
        "tflop_per_step": round(flops / 1e12, 3), "achieved_gflop_s": round(flops / med / 1e9, 1),
        "per_config_batch": {"batch_size": cfg.batch_size, "extrapolated_step_s": round(med * scale, 1),
                             "tflop_per_step": round(flops * scale / 1e12, 2),
                             "note": "linear in the batch: an extrapolation, not a measurement"},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
