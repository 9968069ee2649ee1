"""Temporal VD diagnostic split by how much the query cell moves.

`stccl diagnose` averages the temporal pos/neg cosine over every sampled cell
and frame pair. Most cells of a talking face barely change between frames, so
their disparity f_i - f_j is small and mostly noise. This script asks whether
the trained metric does better where there is motion: it ranks the temporal
VD queries of each window by the norm of their raw disparity (before the
head) and reports pos/neg per quartile, per stage.

    python experiments/temporal_by_motion.py --checkpoint reports/runs/default/metric/ckpt_last.pt \
        --data reports/runs/default/data [--untrained]

Prints one JSON line. Not a test, not part of the reproduction.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from stccl.core.correlation import _pairs, flat_map, sample_positions, temporal_vd
from stccl.data.mead import PairedWindowDataset
from stccl.core.diagnose import pos_neg_similarities
from stccl.io import seed_everything
from stccl.core.losses import network_from_checkpoint
from stccl.core.metric_net import MetricNet
from stccl.runs import load_checkpoint


@torch.no_grad()
def by_motion(net, dataset, options, batches: int, batch_size: int, seed: int, bins: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=g)[:batches * batch_size].tolist()
    loader = DataLoader(dataset, batch_sampler=[order[i:i + batch_size] for i in range(0, len(order), batch_size)])
    net.eval()
    acc: dict[int, list[torch.Tensor]] = {}  # stage -> rows of (bin, pos, neg)
    for batch in loader:
        emo, neu = batch["emotional"], batch["neutral"]
        T = emo.shape[1]
        fa, fb = net(emo.flatten(0, 1)), net(neu.flatten(0, 1))
        samples = sample_positions([tuple(f.shape[-2:]) for f in fa], options.spatial_samples,
                                   options.temporal_factor, options.central, generator=g)
        for stage, (head, a, b, s) in enumerate(zip(net.heads_for("temporal"), fa, fb, samples)):
            seq_a = flat_map(a)[:, s.temporal].unflatten(0, (-1, T))  # (B, T, N, C)
            seq_b = flat_map(b)[:, s.temporal].unflatten(0, (-1, T))
            i, j = _pairs(T, seq_a.device)
            motion = (seq_a[:, i] - seq_a[:, j]).flatten(1, 2).norm(dim=-1)  # (B, Q) raw disparity norm
            q, _ = temporal_vd(seq_a, head)
            k, _ = temporal_vd(seq_b, head)
            Q = q.shape[1]
            pos, ok, neg, ok_neg = pos_neg_similarities(q, k, g)
            ok = ok & ok_neg
            # quartile of each query's motion within its own window
            rank = motion.argsort(1).argsort(1).float() / Q
            b_idx = (rank * bins).long().clamp(max=bins - 1)
            acc.setdefault(stage, []).append(torch.stack([b_idx[ok].float(), pos[ok], neg[ok]], 1))
    out = {}
    for stage, rows in acc.items():
        r = torch.cat(rows)
        out[f"stage{stage + 1}"] = [
            {"motion_quartile": q + 1, "pos": round(float(r[r[:, 0] == q, 1].mean()), 4),
             "neg": round(float(r[r[:, 0] == q, 2].mean()), 4)} for q in range(bins)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--untrained", action="store_true")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    net, options = network_from_checkpoint(ckpt, str(args.checkpoint))
    cfg = ckpt["config"]
    if args.untrained:
        seed_everything(int(cfg.get("seed", 0)))
        net = MetricNet(net.cfg)
    data = Path(args.data)
    dataset = PairedWindowDataset(data, data / "aligned_path.json", T=int(cfg.get("T", 5)), split=args.split,
                                  size=cfg.get("size"))
    result = by_motion(net, dataset, options, args.batches, args.batch_size, args.seed)
    print(json.dumps({"checkpoint": args.checkpoint, "untrained": args.untrained, "temporal_vd": result}))


if __name__ == "__main__":
    main()
