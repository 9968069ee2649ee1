"""One plug-in STCCL step: today's path, the frozen fast path, and the backbone-only floor, in one run.

    .venv/bin/python benchmarks/loss_step.py --config params/paper.yaml --size 112 --batch 2 --threads 2 [--reps 3]
    .venv/bin/python benchmarks/loss_step.py --config params/metric_tiny.yaml --modes floor,plain,fast,compile

A step, on random clips (B, T, 3, S, S) and an untrained network with random BN statistics:
the input clip through the frozen metric network without gradient, the generated clip with
gradient, the loss (or a trivial scalar), backward to the generated clip. Modes:

    floor          the plain frozen backbone and a trivial scalar (mean of the stage maps): the cost
                   of the two backbone passes alone, the floor the issue compares against
    floor_fast     the same with the fast backbone (folded BN, inference mode, channels last)
    plain          STCCLLoss as before this change (FastPath())
    fold, inference, channels_last, bf16, compile
                   one switch of stccl.core.frozen.FastPath on, the others off
    fast           FastPath.fast(): fold + inference + channels last (fp32)
    fast_bf16      fast + amp bf16 (emulated, slow, on CPUs without native bf16)
    fast_compile   fast + torch.compile of the folded backbone (the warm-up step compiles)

Repetitions are interleaved (mode 1, mode 2, ..., mode 1, ...) so machine load hits all modes
alike; times are medians and ratios are between medians of this one run, of wall time and
of process CPU time. Memory: bytes of
tensors saved for backward per mode, the process peak RSS, on CUDA max_memory_allocated.
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
from stccl.core.frozen import FastPath  # noqa: E402
from stccl.io import resolve_device  # noqa: E402
from stccl.core.losses import STCCLLoss  # noqa: E402
from stccl.core.metric_net import MetricNet  # noqa: E402
from stccl.core.train_metric import load_metric_config  # noqa: E402

SPEEDS = {
    "plain": FastPath(),
    "fold": FastPath(fold_bn=True),
    "inference": FastPath(inference_mode=True),
    "channels_last": FastPath(channels_last=True),
    "bf16": FastPath(amp="bf16"),
    "compile": FastPath(compile=True),
    "fast": FastPath.fast(),
    "fast_bf16": FastPath.fast(amp="bf16"),
    "fast_compile": FastPath.fast(compile=True),
}
DEFAULT_MODES = "floor,floor_fast,plain,fold,inference,channels_last,fast"


def randomise_bn(net: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so folding is measured on a network like a trained one."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="params/metric_tiny.yaml")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--T", type=int, default=None, help="clip length (default: the config's T)")
    ap.add_argument("--size", type=int, default=None, help="frame side (default: the config's size or 64)")
    ap.add_argument("--variant", default="vd", choices=["vd", "cm"])
    ap.add_argument("--modes", default=DEFAULT_MODES, help=f"comma-separated, from floor, floor_fast, {', '.join(SPEEDS)}")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - {"floor", "floor_fast", *SPEEDS})
    if unknown:
        ap.error(f"unknown mode(s) {unknown}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_metric_config(args.config)
    device = resolve_device(args.device)
    size = args.size or cfg.size or 64
    T = args.T or cfg.T
    net = MetricNet(cfg.net)
    randomise_bn(net)
    state = net.state_dict()
    opts = replace(cfg.loss, variant=args.variant)
    losses = {}
    for m in modes:
        speed = FastPath.fast() if m == "floor_fast" else SPEEDS.get(m, FastPath())
        copy = MetricNet(cfg.net)
        copy.load_state_dict(state)  # each mode its own copy: channels_last converts the network in place
        losses[m] = STCCLLoss(copy, opts, speed).to(device)
    x = torch.rand(args.batch, T, 3, size, size, device=device)
    gen0 = torch.rand_like(x)

    def step(mode: str) -> None:
        gen = gen0.clone().requires_grad_(True)
        loss_fn = losses[mode]
        if mode.startswith("floor"):
            ctx = torch.inference_mode() if loss_fn.speed.inference_mode else torch.no_grad()
            with ctx:
                loss_fn.features(x.flatten(0, 1))
            loss = sum(f.mean() for f in loss_fn.features(gen.flatten(0, 1)))
        else:
            loss, _ = loss_fn(x, gen)
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

    compile_s = {}
    for m in modes:  # warm-up (and compilation)
        t0 = time.perf_counter()
        step(m)
        if losses[m].speed.compile:
            compile_s[m] = round(time.perf_counter() - t0, 1)
    times = {m: [] for m in modes}
    cpu = {m: [] for m in modes}
    cuda_peak = {}
    for _ in range(args.reps):
        for m in modes:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0, c0 = time.perf_counter(), time.process_time()
            step(m)
            if device.type == "cuda":
                torch.cuda.synchronize()
                cuda_peak[m] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            times[m].append(time.perf_counter() - t0)
            cpu[m].append(time.process_time() - c0)
    med = {m: statistics.median(v) for m, v in times.items()}
    med_cpu = {m: statistics.median(v) for m, v in cpu.items()}

    def ratios(base: str, of: dict) -> dict:
        return {m: round(of[m] / of[base], 3) for m in modes if m != base} if base in of else {}

    out = {
        "config": args.config, "arch": cfg.net.arch, "device": str(device), "threads": args.threads,
        "batch": args.batch, "T": T, "size": size, "variant": args.variant, "reps": args.reps,
        "spatial_samples": list(cfg.loss.spatial_samples), "temporal_factor": cfg.loss.temporal_factor,
        "median_s": {m: round(v, 4) for m, v in med.items()},
        "min_s": {m: round(min(v), 4) for m, v in times.items()},
        "ratio_vs_plain": ratios("plain", med),
        "ratio_vs_floor": ratios("floor", med),
        "ratio_vs_floor_fast": ratios("floor_fast", med),
        # process CPU seconds: on a shared machine less disturbed by other jobs than wall time
        # (with one thread; with more, threads waiting on a descheduled peer spin and count)
        "median_cpu_s": {m: round(v, 4) for m, v in med_cpu.items()},
        "cpu_ratio_vs_plain": ratios("plain", med_cpu),
        "cpu_ratio_vs_floor": ratios("floor", med_cpu),
        "cpu_ratio_vs_floor_fast": ratios("floor_fast", med_cpu),
        "saved_for_backward_mb": {m: round(saved_bytes(m) / 2**20, 1) for m in modes},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if compile_s:
        out["compile_warmup_s"] = compile_s
    if cuda_peak:
        out["cuda_peak_mb"] = cuda_peak
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
