"""A correlation snapshot: the features STCCL compares, for one neutral/emotional window, saved as .npz.

Notebooks 02 and 03 save one (untrained and trained network); the report only
draws it (`stccl.pipeline.figures.correlation_figures`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from stccl.core.correlation import (NEIGHBOUR_OFFSETS, StageSample, central_cells, flat_map, sample_stage,
                                    spatial_cm, spatial_vd, temporal_cm)
from stccl.core.losses import adaptive_weight, network_from_checkpoint
from stccl.core.metric_net import MetricNet
from stccl.core.train_metric import load_metric_config
from stccl.data.mead import PairedWindowDataset, window_count
from stccl.io import atomic_path
from stccl.runs import load_checkpoint


def first_window_of(ds: PairedWindowDataset, emotion: str) -> int:
    """Index of the first window whose pair shows `emotion` (0 if none): windows run pair by pair."""
    start = 0
    for p in ds.pairs:
        n = window_count(len(p["idx_n"]), ds.T)
        if p["emotion"] == emotion and n > 0:
            return start
        start += n
    return 0


def correlation_snapshot(metric_config: str | os.PathLike, data_root: str | os.PathLike, out: str | os.PathLike,
                         checkpoint: str | os.PathLike | None = None, emotion: str = "happy", stage: int = 1,
                         seed: int = 0) -> Path:
    """VD vectors, CM matrices and the adaptive weight map of one neutral/emotional window, saved as .npz.

    Uses the metric network of `checkpoint`, or a freshly initialised one (before training) built from
    `metric_config`. Clip A (queries) is the emotional window, clip B (keys) the neutral one, as in training.
    """
    root = Path(data_root)
    cfg = load_metric_config(metric_config, {"data_root": str(root)})
    torch.manual_seed(seed)
    if checkpoint:
        net, opts = network_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
    else:
        net, opts = MetricNet(cfg.net), cfg.loss
    net.eval()
    ds = PairedWindowDataset(root, root / "aligned_path.json", T=cfg.T, split="train", size=cfg.size)
    item = ds[first_window_of(ds, emotion)]
    T = cfg.T
    x = torch.cat([item["emotional"], item["neutral"]])  # (2T, 3, H, W): A then B
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        feats = net(x)
        f = feats[stage]  # (2T, C, h, w)
        h, w = f.shape[-2:]
        head = net.heads[stage]
        s = sample_stage(h, w, n_spatial=4, n_temporal=6, central=opts.central, generator=gen)
        flat = flat_map(f)  # (2T, hw, C)
        t = T // 2
        vd_a, _ = spatial_vd(flat[t:t + 1], head, s)            # (1, S*8, D)
        vd_b, _ = spatial_vd(flat[T + t:T + t + 1], head, s)
        cm_a, _ = spatial_cm(flat[t:t + 1], head, s)            # (1, S, P)
        cm_b, _ = spatial_cm(flat[T + t:T + t + 1], head, s)
        seq = flat[:, s.temporal].unflatten(0, (2, T))         # (2, T, N, C)
        tcm, _ = temporal_cm(seq, net.heads_for("temporal")[stage])  # (2, N*T, T)
        tcm = tcm.unflatten(1, (-1, T))                        # (2, N, T, T)
        # adaptive weight over the face: every interior cell of stage 0 as an anchor
        f0 = flat_map(feats[0][t:t + 1])  # (1, h0*w0, C0)
        h0, w0 = feats[0].shape[-2:]
        anchors = central_cells(h0, w0, opts.central, margin=1)
        offs = NEIGHBOUR_OFFSETS[:, 0] * w0 + NEIGHBOUR_OFFSETS[:, 1]
        full = StageSample(h0, w0, anchors, anchors[:, None] + offs[None, :], anchors)
        _, strength = spatial_vd(f0, net.heads[0], full, with_strength=True)  # (1, S*8)
        strength = strength.view(-1, 8)                                       # (S, 8)
        weight = adaptive_weight(strength, opts.theta).mean(-1)               # (S,)
    hmap = np.full(h0 * w0, np.nan)
    wmap = np.full(h0 * w0, np.nan)
    hmap[anchors.numpy()] = strength.mean(-1).numpy()
    wmap[anchors.numpy()] = weight.numpy()
    to_img = lambda v: (v.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)  # (N, H, W, 3)
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, emotional=to_img(item["emotional"]), neutral=to_img(item["neutral"]), t=t, stage=stage,
            stage_hw=np.array([h, w]), anchors=s.anchors.numpy(), neighbours=s.neighbours.numpy(),
            temporal=s.temporal.numpy(), vd_a=vd_a[0].numpy(), vd_b=vd_b[0].numpy(), cm_a=cm_a[0].numpy(),
            cm_b=cm_b[0].numpy(), tcm_a=tcm[0].numpy(), tcm_b=tcm[1].numpy(), h_map=hmap.reshape(h0, w0),
            w_map=wmap.reshape(h0, w0), theta=opts.theta, trained=bool(checkpoint),
            title=np.array(f"{item['actor']} neutral vs {item['emotion']}, pair {item['pair']}, path step {item['step']}"))
    return out
