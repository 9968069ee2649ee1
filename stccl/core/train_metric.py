"""Train the STCCL metric network on (neutral window, emotional window) pairs.

    stccl train-metric --config params/metric_default.yaml [--out reports/runs/metric_default] [--resume]

Objective per batch (SPEC 3.4): L = L_SCC + lambda_T * L_TCC, where each term
is PatchNCE between the emotional window (queries, clip A) and the aligned
neutral window (keys, clip B, detached), SCC on every frame pair t and TCC over
the T-frame windows, summed over the four stages. `loss.variant: both` (the
default) trains the VD and the CM terms together, so one network serves either
variant of the plug-in loss; `vd` or `cm` trains one. `symmetric: true` adds
the reverse direction (neutral queries, emotional keys).

Both windows go through the network in one batch, so batch-norm statistics are
shared by the two sides as they are at evaluation time.

The run folder (stccl.runs.RunDir) holds config.json, metrics.jsonl (one line
per logged step), ckpt_init.pt (the initial weights) and ckpt_last.pt (weights +
config + step + optimiser + RNG), written atomically. Each logged line has,
per term, the loss value (adaptive weights normalised to mean 1 per group, see
stccl.core.losses.patch_nce), `<term>_ce` (the unweighted cross-entropy) and
`<term>_chance` (sum over stages of log Q: the value of a metric that cannot
tell its positive from its negatives). `net.init` (scratch | pretrained:PATH | insightface:PATH, see
stccl.core.pretrain.apply_init) says where the backbone's starting weights come from; it is kept in
config.json and, with what was loaded, in every checkpoint's extra["init"]. The data order is a function of (seed, epoch) and the RNG
state is checkpointed, so `--resume` continues with exactly the batches and
sampled positions an uninterrupted run would use. Under torchrun with
WORLD_SIZE > 1 the objective is wrapped in DistributedDataParallel, each rank
takes its `shard` of the epoch order, and only rank 0 writes.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from stccl.config import load_config, parse_sets, to_dict
from stccl.core.correlation import sample_positions
from stccl.distributed import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed, local_device, shard
from stccl.core.frozen import autocast_context
from stccl.io import StcclError, resolve_device, seed_everything, to_json
from stccl.core.losses import STCCLOptions, combine, stccl_terms
from stccl.core.metric_net import MetricNet, MetricNetConfig
from stccl.core.pretrain import apply_init, held_out_actors
from stccl.data.mead import PairedWindowDataset
from stccl.runs import RunDir, add_run_options, check_finite, set_rng_state

INIT_CKPT_NAME = "ckpt_init.pt"  # the weights a run starts from (written once, before the first step)


@dataclass(frozen=True)
class MetricTrainConfig:
    data_root: str = "data/synth_tiny"
    align_path: str = ""                        # default: {data_root}/aligned_path.json
    test_actors: tuple[str, ...] | None = None  # default: the data's meta.json (synthetic) or W021 (MEAD)
    size: int | None = None                     # resize frames on load (None: as stored)
    T: int = 5
    net: MetricNetConfig = field(default_factory=MetricNetConfig)
    loss: STCCLOptions = field(default_factory=STCCLOptions)
    symmetric: bool = False
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 100
    max_steps: int = 0                          # > 0: stop after this many steps (overrides epochs)
    max_minutes: float = 0.0                    # > 0: also stop (with a checkpoint) after this wall time
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    log_every: int = 10
    ckpt_every: int = 200
    threads: int = 0                            # torch CPU threads (0: leave torch's default)
    amp: Literal["off", "bf16", "fp16"] = "off"  # autocast the backbone; fp16: CUDA only, with a GradScaler

    def alignment_file(self) -> Path:
        return Path(self.align_path) if self.align_path else Path(self.data_root) / "aligned_path.json"


def load_metric_config(path: str | Path | None, overrides: dict | None = None) -> MetricTrainConfig:
    cfg = load_config(MetricTrainConfig, path, overrides)
    where = path or "config"
    if cfg.batch_size < 1 or cfg.T < 1 or cfg.log_every < 1 or cfg.ckpt_every < 1:
        raise StcclError(f"{where}: batch_size, T, log_every and ckpt_every must be >= 1")
    if len(cfg.loss.spatial_samples) != 4:
        raise StcclError(f"{where}: loss.spatial_samples needs one count per stage (4 values)")
    return cfg


class MetricObjective(nn.Module):
    """The network plus the training loss in one module, so DDP sees every parameter in forward."""

    def __init__(self, net: MetricNet, opts: STCCLOptions, symmetric: bool = False, amp: str = "off"):
        super().__init__()
        self.net = net
        self.opts = opts
        self.symmetric = symmetric
        self.amp = amp

    def forward(self, neutral: torch.Tensor, emotional: torch.Tensor, samples,
                stats: dict | None = None, mismatched: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        # neutral, emotional (, mismatched): (B, T, 3, H, W) in [0, 1]; stats: see stccl_terms (emotional ->
        # neutral direction); mismatched: neutral windows of other sentences (spatial_negatives="mismatched")
        B, T = neutral.shape[:2]
        clips = [emotional, neutral] + ([mismatched] if mismatched is not None else [])
        with autocast_context(self.amp, neutral.device):  # the backbone only: the loss stays in fp32
            feats = self.net(torch.cat(clips).flatten(0, 1))  # [(k*B*T, C_l, H_l, W_l)]
        feats = [f.float() for f in feats]
        fa = [f[:B * T] for f in feats]  # emotional: queries
        fb = [f[B * T:2 * B * T] for f in feats]  # neutral: keys (detached inside)
        fm = [f[2 * B * T:] for f in feats] if mismatched is not None else None
        terms = stccl_terms(self.net, fa, fb, T, self.opts, samples, stats, fm)
        if self.symmetric:
            back = stccl_terms(self.net, fb, fa, T, self.opts, samples, None, fm)
            terms = {k: 0.5 * (v + back[k]) for k, v in terms.items()}
        # metric training: L_SCC + lambda_T L_TCC (lambda_S is a plug-in weight)
        return combine(terms, 1.0, self.opts.lambda_T), terms


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled index order of one epoch: a pure function of (seed, epoch)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()


def epoch_batches(n: int, seed: int, epoch: int, batch_size: int, info: DistInfo) -> list[list[int]]:
    order = shard(epoch_order(n, seed, epoch), info)
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def _stage_shapes(net: MetricNet, size: tuple[int, int]) -> list[tuple[int, int]]:
    h, w = size
    shapes = []
    for _ in net.channels:  # each stage halves the map (ceil, as a stride-2 3x3 conv with padding 1)
        h, w = (h + 1) // 2, (w + 1) // 2
        shapes.append((h, w))
    return shapes


def train_metric(cfg: MetricTrainConfig, out: str | Path, resume: bool = False, stop_at_step: int | None = None,
                 progress: bool = True) -> dict:
    """Run (or resume) metric training; returns a summary dict. `stop_at_step` interrupts (with a checkpoint)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    device = local_device(device, info)
    seed_everything(cfg.seed)
    try:
        run = RunDir(out, cfg, info, resume=resume, kind="metric", device=device)
        dataset = PairedWindowDataset(cfg.data_root, cfg.alignment_file(), T=cfg.T, split="train",
                                      test_actors=cfg.test_actors, size=cfg.size,
                                      with_mismatched=cfg.loss.spatial_negatives == "mismatched")
        spe = len(epoch_batches(len(dataset), cfg.seed, 0, cfg.batch_size, info))
        if spe == 0:
            raise StcclError(f"{cfg.data_root}: {len(dataset)} training windows are fewer than batch_size "
                             f"{cfg.batch_size} x {info.world_size} rank(s); lower batch_size")
        total = cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * spe
        net = MetricNet(cfg.net).to(device)
        # net.init: scratch, or backbone weights from a file (errors name it); before DDP copies rank 0's weights
        init_record = apply_init(net.backbone, cfg.net.init, cfg.net.arch, tuple(dataset[0]["neutral"].shape[-2:]),
                                 held_out_actors(cfg.data_root, dataset.test_actors))
        objective = MetricObjective(net, cfg.loss, cfg.symmetric, cfg.amp)
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        autocast_context(cfg.amp, device)  # fails here, naming the option, if amp does not fit the device
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
        scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
        step = 0
        ckpt = run.load_for_resume(map_location=device) if resume else None
        if ckpt is not None:
            net.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            step = int(ckpt["step"])
            set_rng_state(ckpt["rng"])
            if scaler.is_enabled() and "scaler" in ckpt.get("extra", {}):
                scaler.load_state_dict(ckpt["extra"]["scaler"])
            init_record = ckpt.get("extra", {}).get("init", init_record)
        model = objective
        if info.enabled:
            model = nn.parallel.DistributedDataParallel(
                objective, device_ids=[device.index] if device.type == "cuda" else None)
        frame = dataset[0]["neutral"].shape[-2:]
        shapes = _stage_shapes(net, tuple(frame))
        end = min(total, stop_at_step) if stop_at_step is not None else total
        if ckpt is None:  # the run's own starting point, for before/after comparisons
            run.save(0, net, None, name=INIT_CKPT_NAME, extra={"init": init_record})
        started = time.time()
        last: dict = {}
        bar = tqdm(total=end, initial=step, desc="train-metric", unit="step", file=sys.stderr,
                   disable=not (progress and info.is_main))
        net.train()
        stopped_by_time = False
        while step < end and not stopped_by_time:
            epoch = step // spe
            batches = epoch_batches(len(dataset), cfg.seed, epoch, cfg.batch_size, info)[step % spe:]
            # Own generator: creating a loader must not draw from the global RNG, or a resumed run
            # (which creates one more loader) would sample other positions than an uninterrupted one.
            loader = DataLoader(dataset, batch_sampler=batches, num_workers=cfg.num_workers,
                                generator=torch.Generator().manual_seed(cfg.seed + epoch))
            for batch in loader:
                neutral = batch["neutral"].to(device, non_blocking=True)      # (B, T, 3, H, W)
                emotional = batch["emotional"].to(device, non_blocking=True)  # (B, T, 3, H, W)
                mismatched = batch["mismatched"].to(device, non_blocking=True) if "mismatched" in batch else None
                samples = sample_positions(shapes, cfg.loss.spatial_samples, cfg.loss.temporal_factor,
                                           cfg.loss.central)
                logging = (step + 1) % cfg.log_every == 0 or step + 1 == end
                stats: dict | None = {} if logging else None
                loss, terms = model(neutral, emotional, samples, stats, mismatched)
                check_finite(loss.detach(), step + 1, run.path)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                bar.update(1)
                if logging:
                    values = {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()},
                              **{k: torch.tensor(v) for k, v in stats.items()}}
                    last = {k: round(float(all_reduce_mean(v, info)), 6) for k, v in values.items()}
                    run.log({"step": step, "epoch": epoch, **last, "lr": cfg.lr,
                             "elapsed_s": round(time.time() - started, 2)})
                    bar.set_postfix(loss=f"{last['loss']:.3f}")
                stopped_by_time = cfg.max_minutes > 0 and time.time() - started > 60 * cfg.max_minutes
                if step % cfg.ckpt_every == 0 or step == end or stopped_by_time:
                    extra = {"epoch": epoch, "steps_per_epoch": spe, "init": init_record}
                    if scaler.is_enabled():
                        extra["scaler"] = scaler.state_dict()
                    run.save(step, net, optimizer, extra=extra)
                if step >= end or stopped_by_time:
                    break
        bar.close()
        barrier(info)
        return {"run": str(run.path), "step": step, "total_steps": total, "steps_per_epoch": spe,
                "train_windows": len(dataset), "stopped_by_time": stopped_by_time, "init": cfg.net.init,
                "minutes": round((time.time() - started) / 60, 2), **{f"last_{k}": v for k, v in last.items()}}
    finally:
        cleanup(info)


def _cmd_train_metric(args) -> int:
    overrides = parse_sets(args.set)
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.device is not None:
        overrides["device"] = args.device
    cfg = load_metric_config(args.config, overrides)
    out = Path(args.out) if args.out else Path("reports/runs") / Path(args.config).stem
    if args.dry_run:
        print(to_json({"out": str(out), "resume": args.resume, "config": to_dict(cfg)}))
        return 0
    summary = train_metric(cfg, out, resume=args.resume, stop_at_step=args.stop_at_step,
                           progress=not args.no_progress)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        print(to_json(summary))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("train-metric", help="train the STCCL metric network (SCC + TCC, VD and CM)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_run_options(p, "params/metric_*.yaml", "--set loss.tau=0.1 --set max_minutes=5")
    p.set_defaults(func=_cmd_train_metric)
