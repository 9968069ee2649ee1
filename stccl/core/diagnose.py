"""Correlation diagnostic (the paper's before/after figure).

    stccl diagnose --checkpoint reports/runs/metric_default/ckpt_last.pt --data data/synth_default [--split test]
    stccl diagnose --checkpoint CKPT --data DIR --untrained     # the same network at initialisation

For held-out (neutral window, emotional window) pairs, every query vector of the
emotional window (VD disparity vector or CM correlation row, see
stccl.correlation) is compared by cosine similarity with its positive (same
index in the neutral window) and with a shuffled index ("neg": the key at a
random other index of the same frame / clip). Prints one JSON line:

    {"vd": {"spatial_pos", "spatial_neg", "temporal_pos", "temporal_neg"}, "cm": {...}, ...}

averaged over stages, windows and queries (per-stage [pos, neg, defined] under
"per_stage"). Queries whose vector is undefined (zero raw disparity, e.g. a
frame the DTW path repeats) are left out; `*_defined` is the fraction kept.
Python: `correlation_diagnostic(net, dataset, options)`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from stccl.core.correlation import correlation_vectors, sample_positions
from stccl.io import seed_everything, to_json
from stccl.core.losses import STCCLOptions, network_from_checkpoint
from stccl.core.metric_net import MetricNet


def pos_neg_similarities(q: torch.Tensor, k: torch.Tensor, generator: torch.Generator):
    """Per-query cosine similarities: (pos, ok, neg, ok_neg), each (G, Q); neg and ok_neg None if Q < 2.

    q, k: (G, Q, D) unit vectors, or zero where undefined. A vector is zero when its raw disparity is
    exactly zero (e.g. a DTW path repeats a frame, so f_i - f_j = 0) or its correlation row is
    constant; cosine similarity is undefined there, and `ok` / `ok_neg` mark the defined pairs.
    neg pairs query i with key (i + r_i) mod Q, r_i in 1..Q-1 (never itself).
    """
    G, Q, _ = q.shape
    ok_q, ok_k = q.norm(dim=-1) > 0.5, k.norm(dim=-1) > 0.5  # (G, Q)
    pos = (q * k).sum(-1)
    if Q < 2:
        return pos, ok_q & ok_k, None, None
    shift = torch.randint(1, Q, (G, Q), generator=generator).to(q.device)
    other = (torch.arange(Q, device=q.device)[None, :] + shift) % Q  # (G, Q)
    neg = (q * torch.gather(k, 1, other[..., None].expand_as(k))).sum(-1)
    return pos, ok_q & ok_k, neg, ok_q & torch.gather(ok_k, 1, other)


def _pos_neg(q: torch.Tensor, k: torch.Tensor, generator: torch.Generator) -> tuple[float, float, float]:
    """(mean pos, mean neg, defined fraction) over the defined queries; see pos_neg_similarities."""
    pos, ok, neg, ok_n = pos_neg_similarities(q, k, generator)
    nan = torch.tensor(float("nan"))
    mean_pos = pos[ok].mean() if ok.any() else nan
    mean_neg = neg[ok_n].mean() if neg is not None and ok_n.any() else nan
    return float(mean_pos), float(mean_neg), float(ok.float().mean())


@torch.no_grad()
def correlation_diagnostic(net: MetricNet, dataset, options: STCCLOptions = STCCLOptions(), batch_size: int = 8,
                           max_batches: int = 20, seed: int = 0, device: str | torch.device = "cpu",
                           progress: bool = False) -> dict:
    """Mean cosine similarity of queries with their positive / a shuffled key, per variant and stage.

    `dataset` yields {"neutral", "emotional"} windows (stccl.data.PairedWindowDataset); a fixed,
    seeded subset of `max_batches` batches is used, so two networks are compared on the same data
    and the same sampled positions.
    """
    device = torch.device(device)
    was_training = net.training
    net.eval().to(device)
    g = torch.Generator().manual_seed(seed)
    n = len(dataset)
    order = torch.randperm(n, generator=g)[:batch_size * max_batches].tolist()
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    loader = DataLoader(dataset, batch_sampler=batches)
    sums: dict[tuple, list[float]] = {}
    for batch in tqdm(loader, desc="diagnose", unit="batch", disable=not progress):
        neutral = batch["neutral"].to(device)      # (B, T, 3, H, W)
        emotional = batch["emotional"].to(device)  # (B, T, 3, H, W)
        T = neutral.shape[1]
        fa = net(emotional.flatten(0, 1))
        fb = net(neutral.flatten(0, 1))
        samples = sample_positions([tuple(f.shape[-2:]) for f in fa], options.spatial_samples,
                                   options.temporal_factor, options.central, generator=g)
        kinds = ["spatial"] + (["temporal"] if T > 1 else [])
        for variant in ("vd", "cm"):
            for kind in kinds:
                for stage, (head, a, b, s) in enumerate(zip(net.heads_for(kind), fa, fb, samples)):
                    if kind == "spatial" and not s.has_anchors:
                        continue
                    q, k, _ = correlation_vectors(kind, variant, head, a, b, s.to(device), T)
                    sums.setdefault((variant, kind, stage), []).append(_pos_neg(q, k, g))
    net.train(was_training)
    result: dict = {"windows": sum(len(b) for b in batches), "per_stage": {}}
    for variant in ("vd", "cm"):
        out = {}
        for kind in ("spatial", "temporal"):
            # nanmean: a stage with a single query has no "other index" for neg
            per_stage = [torch.tensor(v).nanmean(0).tolist() for (vv, kk, _), v in sorted(sums.items())
                         if vv == variant and kk == kind]
            if not per_stage:
                continue
            stats = torch.tensor(per_stage)  # (stages, 3): pos, neg, defined fraction
            out[f"{kind}_pos"] = round(float(stats[:, 0].nanmean()), 4)
            out[f"{kind}_neg"] = round(float(stats[:, 1].nanmean()), 4)
            out[f"{kind}_defined"] = round(float(stats[:, 2].mean()), 4)
            result["per_stage"][f"{variant}_{kind}"] = [[round(v, 4) for v in row] for row in per_stage]
        result[variant] = out
    return result


def _cmd_diagnose(args) -> int:
    from stccl.data.mead import PairedWindowDataset
    from stccl.runs import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    net, options = network_from_checkpoint(ckpt, str(args.checkpoint))
    cfg = ckpt["config"]
    step = int(ckpt.get("step", 0))
    if args.untrained:
        seed_everything(int(cfg.get("seed", 0)))
        net = MetricNet(net.cfg)  # same architecture and seed as the run, at initialisation
        step = 0
    data = Path(args.data)
    align = Path(args.align) if args.align else data / "aligned_path.json"
    size = args.size if args.size is not None else cfg.get("size")
    test_actors = args.test_actors.split(",") if args.test_actors else None
    dataset = PairedWindowDataset(data, align, T=args.T or int(cfg.get("T", 5)), split=args.split,
                                  test_actors=test_actors, size=size)
    result = correlation_diagnostic(net, dataset, options, batch_size=args.batch_size, max_batches=args.batches,
                                    seed=args.seed, progress=not args.no_progress)
    print(to_json({"checkpoint": str(args.checkpoint), "untrained": bool(args.untrained), "step": step,
                   "data": str(data), "split": args.split, **result}))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("diagnose", help="positive/negative cosine similarity of SCC/TCC features (JSON line)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="metric checkpoint (ckpt_last.pt of `stccl train-metric`)")
    p.add_argument("--data", required=True, help="data root ({actor}/align_img/... and aligned_path.json)")
    p.add_argument("--align", default=None, help="alignment file (default: DATA/aligned_path.json)")
    p.add_argument("--split", default="test", choices=["train", "test", "all"])
    p.add_argument("--test-actors", default=None, help="comma-separated held-out actors (default: the data's)")
    p.add_argument("--untrained", action="store_true", help="the checkpoint's network at initialisation")
    p.add_argument("--size", type=int, default=None, help="frame size (default: the run's)")
    p.add_argument("--T", type=int, default=None, help="window length (default: the run's)")
    p.add_argument("--batches", type=int, default=20, help="number of batches of windows to average")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="which windows and positions")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_diagnose)
