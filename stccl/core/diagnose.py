"""Correlation diagnostic: does the metric match speech, or only face layout?

    stccl diagnose --checkpoint reports/runs/metric_default/ckpt_last.pt --data data/synth_default [--split test]
    stccl diagnose --checkpoint CKPT --data DIR --untrained     # the same network at initialisation

For held-out (neutral window, emotional window) pairs, the query vectors of
the emotional window (VD disparity vectors or CM correlation rows, see
stccl.core.correlation) are compared with the keys of three windows:

- matched: the aligned neutral window (the positive of training);
- mismatched: a neutral window of the same actor that says something else (a
  different sentence of the same actor and emotion pair; where the actor has
  one sentence, a window at least 1 s away). It has the same face layout but
  not the same speech, so it is the control every positive needs;
- for `neg`, the matched window's key at another index.

Two measures, each printed with `pos`, `neg`, `pos_mismatched` and
`gap = pos - pos_mismatched`:

- `per_query`: cosine of each query with its key, averaged over queries (the
  quantity PatchNCE trains); `neg` pairs query i with key j != i of the same
  group (frame for spatial, clip for temporal);
- `official`: the official code's logged similarity (SPEC 3.4): vectors laid
  out (group, channels, positions), cosine along the positions axis per
  channel, averaged over channels and groups; `neg` permutes the key's
  positions. It measures a channel's pattern across the face, which two frames
  of one face share whatever they say: read it beside its mismatched control.

Each number is averaged over stages, and given as mean and standard deviation
over `seeds` (each seed draws other windows, positions and mismatched
partners). Queries that involve a frame the alignment path repeats (a zero
temporal disparity on one side) are excluded; `repeat_windows` counts the
windows with such a repeat. Queries whose vector is zero (no raw disparity,
e.g. a static background cell in noise-free data) are excluded too;
`defined` is the fraction of queries kept.

Python: `correlation_diagnostic(net, dataset, options)`; the flat rows of
`diagnostic_rows(result)` are what reports and figures read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stccl.core.correlation import correlation_vectors, frame_pairs, sample_positions
from stccl.io import StcclError, seed_everything, to_json
from stccl.core.losses import STCCLOptions, network_from_checkpoint
from stccl.core.metric_net import MetricNet
from stccl.core.train_metric import INIT_CKPT_NAME
from stccl.data.mead import PairedWindowDataset
from stccl.runs import load_checkpoint

MEASURES = ("per_query", "official")
KINDS = ("spatial", "temporal")
VARIANTS = ("vd", "cm")
NUMBERS = ("pos", "neg", "pos_mismatched", "gap")


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
    other = _other_index(G, Q, generator, q.device)
    neg = (q * torch.gather(k, 1, other[..., None].expand_as(k))).sum(-1)
    return pos, ok_q & ok_k, neg, ok_q & torch.gather(ok_k, 1, other)


def _other_index(G: int, Q: int, generator: torch.Generator, device) -> torch.Tensor:
    """(G, Q) index (i + r) mod Q with r in 1..Q-1: a different index for every query."""
    shift = torch.randint(1, Q, (G, Q), generator=generator).to(device)
    return (torch.arange(Q, device=device)[None, :] + shift) % Q


def _mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float(x[mask].mean()) if mask.any() else float("nan")


def per_query_measure(q: torch.Tensor, k: torch.Tensor, km: torch.Tensor, valid: torch.Tensor,
                      generator: torch.Generator) -> dict[str, float]:
    """Mean query-key cosine: matched (pos), another index (neg), mismatched window (pos_mismatched).

    q, k, km: (G, Q, D) from the emotional, matched neutral and mismatched neutral windows;
    valid: (G, Q) queries allowed by the alignment. pos and pos_mismatched use the same queries.
    """
    ok_q, ok_k, ok_m = (x.norm(dim=-1) > 0.5 for x in (q, k, km))
    both = valid & ok_q & ok_k & ok_m
    out = {"pos": _mean((q * k).sum(-1), both), "pos_mismatched": _mean((q * km).sum(-1), both),
           "neg": float("nan"), "defined": float(both.float().mean())}
    G, Q, _ = q.shape
    if Q > 1:
        other = _other_index(G, Q, generator, q.device)
        neg = (q * torch.gather(k, 1, other[..., None].expand_as(k))).sum(-1)
        out["neg"] = _mean(neg, valid & ok_q & torch.gather(ok_k & valid, 1, other))
    return out


def _channel_cosine(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # a, b: (G, Q, D) with excluded positions zeroed -> cosine along Q per (group, channel), defined mask
    num = (a * b).sum(1)
    den = a.norm(dim=1) * b.norm(dim=1)
    ok = den > 1e-12
    return num / den.clamp_min(1e-12), ok  # (G, D)


def official_measure(q: torch.Tensor, k: torch.Tensor, km: torch.Tensor, valid: torch.Tensor,
                     generator: torch.Generator) -> dict[str, float]:
    """The official code's similarity: per-channel cosine along positions, mean over channels and groups.

    neg: the matched key with its positions permuted (no position keeps its own place).
    """
    ok_q, ok_k, ok_m = (x.norm(dim=-1) > 0.5 for x in (q, k, km))
    both = (valid & ok_q & ok_k & ok_m)[..., None].to(q.dtype)  # (G, Q, 1)
    pos, ok_p = _channel_cosine(q * both, k * both)
    mis, ok_mm = _channel_cosine(q * both, km * both)
    out = {"pos": _mean(pos, ok_p), "pos_mismatched": _mean(mis, ok_mm), "neg": float("nan")}
    G, Q, _ = q.shape
    if Q > 1:
        shift = torch.randint(1, Q, (G, 1), generator=generator).to(q.device)
        perm = (torch.arange(Q, device=q.device)[None, :] + shift) % Q  # (G, Q): a cyclic shift, no fixed point
        kp = torch.gather(k, 1, perm[..., None].expand_as(k))
        okp = torch.gather(valid & ok_k, 1, perm)
        keep = (valid & ok_q & okp)[..., None].to(q.dtype)
        neg, ok_n = _channel_cosine(q * keep, kp * keep)
        out["neg"] = _mean(neg, ok_n)
    return out


def _repeat_masks(idx: list[np.ndarray], T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """From each window's frame indices (on all sides), the valid temporal VD pairs (B, P) and CM frames (B, T).

    A pair (i, j) is invalid when frame i and frame j are the same frame on any side; a CM row (frame i)
    is invalid when frame i repeats in its window on any side.
    """
    stacked = torch.as_tensor(np.stack(idx))  # (B, sides, T)
    i, j = frame_pairs(T, torch.device("cpu"))
    pair_ok = (stacked[:, :, i] != stacked[:, :, j]).all(1)  # (B, P)
    same = stacked[:, :, :, None] == stacked[:, :, None, :]  # (B, sides, T, T)
    frame_ok = ~((same.sum(-1) > 1).any(1))  # (B, T)
    return pair_ok, frame_ok


def _valid(kind: str, variant: str, B: int, T: int, n_queries: int, pair_ok, frame_ok) -> torch.Tensor:
    """(G, Q) mask of queries not touched by a repeated frame, in correlation_vectors' index order."""
    if kind == "spatial":
        return torch.ones(B * T, n_queries, dtype=torch.bool)
    if variant == "vd":  # index = pair * N + position
        return pair_ok.repeat_interleave(n_queries // pair_ok.shape[1], dim=1)
    return frame_ok.repeat(1, n_queries // T)  # index = position * T + frame


@torch.no_grad()
def _one_seed(net: MetricNet, dataset, options: STCCLOptions, batch_size: int, max_batches: int, seed: int,
              device: torch.device, progress: bool) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = torch.randperm(len(dataset), generator=g)[:batch_size * max_batches].tolist()
    values: dict[tuple, list[dict]] = {}
    counts = {"windows": 0, "repeat_windows": 0, "no_mismatch": 0, "mismatch_sentence": 0, "mismatch_far": 0}
    for start in tqdm(range(0, len(order), batch_size), desc=f"diagnose seed {seed}", unit="batch",
                      disable=not progress):
        items, mism, idx = [], [], []
        for i in order[start:start + batch_size]:
            m = dataset.mismatched_neutral(i, rng)
            if m is None:
                counts["no_mismatch"] += 1
                continue
            p, s = dataset.window(i)
            items.append(dataset[i])
            mism.append(m[0])
            idx.append(np.stack([p["idx_n"][s:s + dataset.T], p["idx_e"][s:s + dataset.T], m[1]]))
            counts["mismatch_sentence" if m[2] == "sentence" else "mismatch_far"] += 1
            counts["repeat_windows"] += int(dataset.repeats_index(i) or len(set(m[1].tolist())) < dataset.T)
        if not items:
            continue
        counts["windows"] += len(items)
        emotional = torch.stack([it["emotional"] for it in items]).to(device)  # (B, T, 3, H, W)
        neutral = torch.stack([it["neutral"] for it in items]).to(device)      # (B, T, 3, H, W)
        mismatched = torch.stack(mism).to(device)                                # (B, T, 3, H, W)
        B, T = neutral.shape[:2]
        fa = net(emotional.flatten(0, 1))
        fb = net(neutral.flatten(0, 1))
        fm = net(mismatched.flatten(0, 1))
        samples = sample_positions([tuple(f.shape[-2:]) for f in fa], options.spatial_samples,
                                   options.temporal_factor, options.central, generator=g)
        pair_ok, frame_ok = _repeat_masks(idx, T)
        for variant in VARIANTS:
            for kind in KINDS[:1 + (T > 1)]:
                for stage, (head, a, b, m, s) in enumerate(zip(net.heads_for(kind), fa, fb, fm, samples)):
                    if kind == "spatial" and not s.has_anchors:
                        continue
                    s = s.to(device)
                    q, k, _ = correlation_vectors(kind, variant, head, a, b, s, T)
                    _, km, _ = correlation_vectors(kind, variant, head, a, m, s, T)
                    valid = _valid(kind, variant, B, T, q.shape[1], pair_ok, frame_ok).to(device)
                    values.setdefault(("per_query", variant, kind, stage), []).append(
                        per_query_measure(q, k, km, valid, g))
                    values.setdefault(("official", variant, kind, stage), []).append(
                        official_measure(q, k, km, valid, g))
    per_stage = {key: {n: float(np.nanmean([v[n] for v in vals])) for n in vals[0]}
                 for key, vals in values.items()}
    for entry in per_stage.values():
        entry["gap"] = entry["pos"] - entry["pos_mismatched"]
    return per_stage, counts


def correlation_diagnostic(net: MetricNet, dataset, options: STCCLOptions = STCCLOptions(), batch_size: int = 8,
                           max_batches: int = 20, seeds: tuple[int, ...] = (0, 1, 2),
                           device: str | torch.device = "cpu", progress: bool = False) -> dict:
    """pos / neg / pos_mismatched / gap for both measures, per variant and kind (mean and SD over seeds).

    `dataset` is a stccl.data.PairedWindowDataset (it supplies the mismatched windows); each seed
    draws `max_batches` batches of windows, the sampled positions and the mismatched partners, so two
    networks are compared on the same data and positions.
    """
    if not seeds:
        raise StcclError("correlation_diagnostic: give at least one seed")
    device = torch.device(device)
    was_training = net.training
    net.eval().to(device)
    runs = [_one_seed(net, dataset, options, batch_size, max_batches, s, device, progress) for s in seeds]
    net.train(was_training)
    counts = runs[0][1]
    if counts["windows"] == 0:
        raise StcclError(f"{getattr(dataset, 'align_path', 'dataset')}: no window has a mismatched partner "
                         f"(every actor has one sentence and clips shorter than 1 s); the diagnostic needs one")
    result: dict = {"seeds": list(seeds), **counts, "per_stage": {}}
    for measure in MEASURES:
        result[measure] = {}
        for variant in VARIANTS:
            result[measure][variant] = {}
            for kind in KINDS:
                stages = sorted({st for (m, v, k, st) in runs[0][0] if (m, v, k) == (measure, variant, kind)})
                if not stages:
                    continue
                # (seeds, stages, numbers): average over stages first, then mean and SD over seeds
                arr = np.array([[[per[(measure, variant, kind, st)][n] for n in NUMBERS] for st in stages]
                                for per, _ in runs])
                over_stages = np.nanmean(arr, axis=1)  # (seeds, numbers)
                entry = {}
                for j, n in enumerate(NUMBERS):
                    entry[n] = round(float(np.nanmean(over_stages[:, j])), 4)
                    entry[f"{n}_sd"] = round(float(np.nanstd(over_stages[:, j], ddof=1)) if len(seeds) > 1 else 0.0, 4)
                if measure == "per_query":
                    entry["defined"] = round(float(np.mean([[per[(measure, variant, kind, st)]["defined"]
                                                             for st in stages] for per, _ in runs])), 4)
                result[measure][variant][kind] = entry
                result["per_stage"][f"{measure}_{variant}_{kind}"] = {
                    n: [round(float(x), 4) for x in np.nanmean(arr[:, :, j], axis=0)] for j, n in enumerate(NUMBERS)}
    # Flat per-query means under each variant, as earlier versions printed them (tables read these).
    for variant in VARIANTS:
        result[variant] = {f"{kind}_{n}": result["per_query"][variant][kind][n]
                           for kind in result["per_query"][variant] for n in ("pos", "neg")}
    return result


def diagnostic_rows(result: dict, **labels) -> list[dict]:
    """One row per (measure, variant, kind): pos, neg, pos_mismatched, gap and their SDs, plus `labels`."""
    rows = []
    for measure in MEASURES:
        for variant, kinds in result.get(measure, {}).items():
            for kind, entry in kinds.items():
                rows.append({**labels, "measure": measure, "variant": variant, "kind": kind, **entry})
    return rows


def _cmd_diagnose(args) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    net, options = network_from_checkpoint(ckpt, str(args.checkpoint))
    cfg = ckpt["config"]
    step = int(ckpt.get("step", 0))
    if args.untrained:
        init = Path(args.checkpoint).parent / INIT_CKPT_NAME
        if init.is_file():  # the run's own starting weights
            net.load_state_dict(load_checkpoint(init)["model"])
        else:  # an older run: the same architecture and seed at initialisation
            seed_everything(int(cfg.get("seed", 0)))
            net = MetricNet(net.cfg)
        step = 0
    data = Path(args.data)
    align = Path(args.align) if args.align else data / "aligned_path.json"
    size = args.size if args.size is not None else cfg.get("size")
    test_actors = args.test_actors.split(",") if args.test_actors else None
    dataset = PairedWindowDataset(data, align, T=args.T or int(cfg.get("T", 5)), split=args.split,
                                  test_actors=test_actors, size=size)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    result = correlation_diagnostic(net, dataset, options, batch_size=args.batch_size, max_batches=args.batches,
                                    seeds=seeds, progress=not args.no_progress)
    print(to_json({"checkpoint": str(args.checkpoint), "untrained": bool(args.untrained), "step": step,
                   "data": str(data), "split": args.split, **result}))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("diagnose", help="matched / mismatched / negative similarity of SCC and TCC (JSON line)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="metric checkpoint (ckpt_last.pt of `stccl train-metric`)")
    p.add_argument("--data", required=True, help="data root ({actor}/align_img/... and aligned_path.json)")
    p.add_argument("--align", default=None, help="alignment file (default: DATA/aligned_path.json)")
    p.add_argument("--split", default="test", choices=["train", "test", "all"])
    p.add_argument("--test-actors", default=None, help="comma-separated held-out actors (default: the data's)")
    p.add_argument("--untrained", action="store_true",
                   help="the run's initial weights (ckpt_init.pt beside the checkpoint) instead of the trained ones")
    p.add_argument("--size", type=int, default=None, help="frame size (default: the run's)")
    p.add_argument("--T", type=int, default=None, help="window length (default: the run's)")
    p.add_argument("--batches", type=int, default=20, help="batches of windows per seed")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (windows, positions, mismatched partners)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_diagnose)
