"""Pretrain the metric's IResNet backbone on identity classification (ArcFace margin), and load it.

    stccl pretrain-backbone --config params/pretrain_default.yaml [--out reports/runs/pretrain_default] [--resume]

The official temporal training script starts from a pretrained IResNet (SPEC 3.4); the kit trains its own
on the data it has. Single frames of the *training* identities only (every held-out actor of the data,
`stccl.data.mead.resolve_test_actors`, is excluded and checked again on every batch, so a held-out face
never reaches the network) are classified by identity:

    frame (3, H, W) -> IResNet(net.arch) -> f_4 (C_4, H/16, W/16)
        -> bn2 - flatten - fc - features (BN1d): embedding e (D)      # arcface_torch's head layout
    logits_c = s * cos(theta_c),  cos(theta_c) = <e / |e|, W_c / |W_c|>
    true class y: s * cos(theta_y + m)                                # additive angular margin

The clips of each training identity are split: `heldout_fraction` of them (whole clips, since the frames of
one clip are near-duplicates) are never trained on and give the held-out-frame accuracy, a yardstick for
what the backbone learned (chance = 1 / number of identities). Both accuracies use the plain cosine (no
margin) in eval mode.

Run folder (stccl.runs.RunDir, kind "pretrain"): config.json, metrics.jsonl, ckpt_last.pt ({"model": the
whole classifier's state, "optimizer", "config", "step", "rng", "extra": {"arch", "size", "identities",
"test_actors", "train_acc", "heldout_acc", "chance", ...}}) and summary.json. `--resume` continues from
ckpt_last.pt with the same batches (the frame order is a function of (seed, epoch), the RNG is restored).

Metric training reads it with `net.init: pretrained:PATH` (PATH: this ckpt_last.pt or its run folder);
`apply_init` below also handles `insightface:PATH` (an arcface_torch IResNet state dict). Nothing is ever
downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from stccl.config import load_config, parse_sets, to_dict
from stccl.core.backbone import ARCHS, IResNet, load_insightface_state
from stccl.core.metric_net import parse_init
from stccl.data.mead import MeadLayout, resolve_test_actors, split_actors, to_size
from stccl.io import StcclError, atomic_write_json, resolve_device, seed_everything, to_json
from stccl.runs import CKPT_NAME, RunDir, add_run_options, check_finite, load_checkpoint, set_rng_state

KIND = "pretrain"


@dataclass(frozen=True)
class PretrainConfig:
    data_root: str = "data/synth_tiny"
    test_actors: tuple[str, ...] | None = None  # held out IN ADDITION to the data's own (meta.json / W021)
    size: int | None = None                     # resize frames on load: use the metric config's size
    arch: str = "iresnet_tiny"                  # the metric config's net.arch
    embedding: int = 128                        # embedding width D
    # ArcFace uses s = 64, m = 0.5 for ~85k identities. With a handful of classes a much smaller scale
    # suffices: the posterior of the true class can reach p once s >= (C-1)/C * ln((C-1) p / (1-p))
    # (NormFace / AdaCos bound): ~7 for C = 6, p = 0.999. s = 16 leaves room above that without
    # saturating the softmax from the first step. m = 0.3 rad: C class centres can be spread at least
    # arccos(-1/(C-1)) apart (> 90 degrees), so 0.5 would be feasible, but a smaller margin converges
    # reliably from scratch in a few hundred steps on small data; 0.3 still forces compact classes.
    scale: float = 16.0
    margin: float = 0.3
    heldout_fraction: float = 0.2               # share of each identity's clips kept out of training
    flip: bool = True                           # random horizontal flips (as ArcFace training)
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-4
    epochs: int = 20
    max_steps: int = 0                          # > 0: stop after this many steps (overrides epochs)
    max_minutes: float = 0.0                    # > 0: also stop (with a checkpoint) after this wall time
    eval_frames: int = 512                      # frames per accuracy estimate (train and held-out)
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    ckpt_every: int = 100
    threads: int = 0                            # torch CPU threads (0: leave torch's default)


def load_pretrain_config(path: str | Path | None, overrides: dict | None = None) -> PretrainConfig:
    cfg = load_config(PretrainConfig, path, overrides)
    where = path or "config"
    if cfg.arch not in ARCHS:
        raise StcclError(f"{where}: unknown arch {cfg.arch!r}; expected one of {sorted(ARCHS)}")
    if cfg.batch_size < 2 or cfg.log_every < 1 or cfg.ckpt_every < 1 or cfg.embedding < 1 or cfg.eval_frames < 1:
        raise StcclError(f"{where}: batch_size >= 2, and log_every, ckpt_every, embedding, eval_frames >= 1")
    if not 0.0 < cfg.heldout_fraction < 1.0:
        raise StcclError(f"{where}: heldout_fraction must be in (0, 1), got {cfg.heldout_fraction}")
    if cfg.scale <= 0 or not 0.0 <= cfg.margin < math.pi / 2:
        raise StcclError(f"{where}: scale must be > 0 and margin in [0, pi/2), got {cfg.scale}, {cfg.margin}")
    return cfg


def held_out_actors(root: str | Path, extra: Sequence[str] | None = None) -> list[str]:
    """Every actor pretraining must never see: the data's held-out actors plus any named in the config."""
    return sorted(set(resolve_test_actors(root, None)) | set(extra or ()))


def check_no_leak(actors: Sequence[str], test_actors: Sequence[str], where: str) -> None:
    """A StcclError if any held-out actor is among `actors`: they are the metric's test identities."""
    leaked = sorted(set(actors) & set(test_actors))
    if leaked:
        raise StcclError(f"{where}: held-out actor(s) {leaked} would be used for backbone pretraining; "
                         f"they are the metric's test identities and must never be trained on")


# ---------------------------------------------------------------------------
# Data: single frames of the training identities
# ---------------------------------------------------------------------------

class IdentityFrames(Dataset):
    """Frames of the training actors with their identity label, split by clip into "train" and "heldout"."""

    def __init__(self, root: str | Path, part: str, test_actors: Sequence[str] | None = None,
                 size: int | Sequence[int] | None = None, heldout_fraction: float = 0.2, seed: int = 0):
        if part not in ("train", "heldout"):
            raise StcclError(f"unknown part {part!r}; expected 'train' or 'heldout'")
        self.layout = MeadLayout(root)
        self.size = to_size(size)
        self.test_actors = held_out_actors(root, test_actors)
        all_actors = self.layout.actors()
        if not all_actors:
            raise StcclError(f"{self.layout.root}: no {{actor}}/align_img folders found")
        self.identities = split_actors(all_actors, self.test_actors, "train", where=str(self.layout.root))
        check_no_leak(self.identities, self.test_actors, str(self.layout.root))
        rng = np.random.default_rng(seed)
        self.frames: list[tuple[str, str, int, int]] = []  # (actor, emotion, clip, frame)
        self.labels: list[int] = []
        for label, actor in enumerate(self.identities):
            clips = [(e, c) for e in self.layout.emotions(actor) for c in self.layout.clips(actor, e)]
            # whole clips go to the held-out part (at least one when the actor has two or more)
            n_held = min(len(clips) - 1, max(1, round(heldout_fraction * len(clips)))) if len(clips) > 1 else 0
            held = set(rng.permutation(len(clips))[:n_held].tolist())
            for i, (emotion, clip) in enumerate(clips):
                if (i in held) != (part == "heldout"):
                    continue
                n = self.layout.num_frames(actor, emotion, clip)
                self.frames += [(actor, emotion, clip, f) for f in range(n)]
                self.labels += [label] * n
        if not self.frames:
            raise StcclError(f"{self.layout.root}: no {part} frames for identities {self.identities} "
                             f"(each identity needs at least two clips for a held-out part)")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, Any]:
        actor, emotion, clip, frame = self.frames[i]
        return {"image": self.layout.load_frames(actor, emotion, clip, [frame], self.size)[0],  # (3, H, W)
                "label": self.labels[i], "actor": actor}


# ---------------------------------------------------------------------------
# Model: backbone + embedding head + ArcFace classifier
# ---------------------------------------------------------------------------

class ArcMarginProduct(nn.Module):
    """Logits s * cos(theta_c), with cos(theta_y + m) for the true class y (ArcFace, additive angular margin)."""

    def __init__(self, embedding: int, classes: int, scale: float, margin: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, embedding))
        nn.init.normal_(self.weight, std=0.01)
        self.scale, self.margin = scale, margin
        # past theta = pi - m, cos(theta + m) would turn back up; arcface_torch continues it linearly instead
        self.th = math.cos(math.pi - margin)
        self.mm = math.sin(math.pi - margin) * margin

    def cosine(self, e: torch.Tensor) -> torch.Tensor:
        # e: (N, D) -> (N, C) cosines with the class centres
        return F.linear(F.normalize(e, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, e: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        # e: (N, D), labels: (N,) -> logits (N, C); no margin without labels (evaluation)
        cos = self.cosine(e)
        if labels is None or self.margin == 0:
            return self.scale * cos
        target = cos.gather(1, labels[:, None])  # (N, 1)
        sin = (1.0 - target.pow(2)).clamp_min(1e-6).sqrt()
        with_margin = target * math.cos(self.margin) - sin * math.sin(self.margin)  # cos(theta + m)
        with_margin = torch.where(target > self.th, with_margin, target - self.mm)
        return self.scale * cos.scatter(1, labels[:, None], with_margin)


class IdentityClassifier(nn.Module):
    """IResNet + arcface_torch's embedding head (bn2 - flatten - fc - features) + ArcFace classifier."""

    def __init__(self, arch: str, size: tuple[int, int], classes: int, embedding: int = 128,
                 scale: float = 16.0, margin: float = 0.3):
        super().__init__()
        self.backbone = IResNet(arch)
        c4 = ARCHS[arch].widths[-1]
        h, w = size
        for _ in range(4):  # each stage halves the map (ceil)
            h, w = (h + 1) // 2, (w + 1) // 2
        self.bn2 = nn.BatchNorm2d(c4, eps=1e-05)
        self.fc = nn.Linear(c4 * h * w, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=1e-05)
        self.arcface = ArcMarginProduct(embedding, classes, scale, margin)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 3, H, W) in [0, 1] -> (N, D)
        f4 = self.backbone(x)[-1]  # (N, C_4, H/16, W/16)
        return self.features(self.fc(self.bn2(f4).flatten(1)))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.arcface(self.embed(x), labels)  # (N, C)


@torch.no_grad()
def accuracy(model: IdentityClassifier, dataset: IdentityFrames, n: int, seed: int, device: torch.device,
             batch_size: int = 64) -> float:
    """Top-1 identity accuracy (plain cosine, eval mode) on up to `n` frames drawn with `seed`."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[:n].tolist()
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(idx), batch_size):
        items = [dataset[j] for j in idx[i:i + batch_size]]
        check_no_leak([it["actor"] for it in items], dataset.test_actors, "accuracy batch")
        x = torch.stack([it["image"] for it in items]).to(device)  # (B, 3, H, W)
        y = torch.tensor([it["label"] for it in items], device=device)
        correct += int((model(x).argmax(1) == y).sum())
    model.train(was_training)
    return correct / max(1, len(idx))


def _epoch_batches(n: int, seed: int, epoch: int, batch_size: int) -> list[list[int]]:
    # the frame order of one epoch: a pure function of (seed, epoch), so a resumed run sees the same batches
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    order = torch.randperm(n, generator=g).tolist()
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def pretrain_backbone(cfg: PretrainConfig, out: str | Path, resume: bool = False,
                      stop_at_step: int | None = None, progress: bool = True) -> dict:
    """Run (or resume) identity pretraining; returns a summary dict (also written to OUT/summary.json)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    run = RunDir(out, cfg, resume=resume, kind=KIND, device=device)
    train = IdentityFrames(cfg.data_root, "train", cfg.test_actors, cfg.size, cfg.heldout_fraction, cfg.seed)
    heldout = IdentityFrames(cfg.data_root, "heldout", cfg.test_actors, cfg.size, cfg.heldout_fraction, cfg.seed)
    frame = tuple(train[0]["image"].shape[-2:])
    spe = len(_epoch_batches(len(train), cfg.seed, 0, cfg.batch_size))
    if spe == 0:
        raise StcclError(f"{cfg.data_root}: {len(train)} training frames are fewer than batch_size {cfg.batch_size}")
    total = cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * spe
    end = min(total, stop_at_step) if stop_at_step is not None else total
    model = IdentityClassifier(cfg.arch, frame, len(train.identities), cfg.embedding, cfg.scale, cfg.margin).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    ckpt = run.load_for_resume(map_location=device) if resume else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
        set_rng_state(ckpt["rng"])
    test = set(train.test_actors)
    facts = {"arch": cfg.arch, "size": list(frame), "identities": train.identities, "test_actors": sorted(test),
             "chance": 1.0 / len(train.identities), "train_frames": len(train), "heldout_frames": len(heldout),
             "steps_per_epoch": spe}
    started = time.time()
    bar = tqdm(total=end, initial=step, desc="pretrain-backbone", unit="step", file=sys.stderr, disable=not progress)
    model.train()
    stopped_by_time = False
    last: dict = {}
    hits = seen = 0
    while step < end and not stopped_by_time:
        epoch = step // spe
        batches = _epoch_batches(len(train), cfg.seed, epoch, cfg.batch_size)[step % spe:]
        loader = DataLoader(train, batch_sampler=batches, generator=torch.Generator().manual_seed(cfg.seed + epoch))
        for batch in loader:
            # the dataset excludes held-out actors by construction; check every batch anyway
            leaked = test.intersection(batch["actor"])
            assert not leaked, f"held-out actor(s) {sorted(leaked)} in a pretraining batch"
            x = batch["image"].to(device)  # (B, 3, H, W)
            y = batch["label"].to(device)  # (B,)
            if cfg.flip:
                flip = torch.rand(x.shape[0]) < 0.5
                x = torch.where(flip.to(device)[:, None, None, None], x.flip(-1), x)
            e = model.embed(x)  # (B, D)
            logits = model.arcface(e, y)  # (B, C), with the margin
            loss = F.cross_entropy(logits, y)
            check_finite(loss.detach(), step + 1, run.path)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            with torch.no_grad():  # running accuracy without the margin, in train mode
                hits += int((model.arcface.cosine(e).argmax(1) == y).sum())
                seen += len(y)
            if step % cfg.log_every == 0 or step == end:
                last = {"loss": round(float(loss.detach()), 6), "batch_acc": round(hits / max(1, seen), 4)}
                hits = seen = 0
                run.log({"step": step, "epoch": epoch, **last, "lr": cfg.lr,
                         "elapsed_s": round(time.time() - started, 2)})
                bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['batch_acc']:.2f}")
            stopped_by_time = cfg.max_minutes > 0 and time.time() - started > 60 * cfg.max_minutes
            done = step >= end or stopped_by_time
            if step % cfg.ckpt_every == 0 and not done:
                run.save(step, model, optimizer, extra={**facts, "epoch": epoch, "train_acc": None,
                                                        "heldout_acc": None})
            if done:
                break
    bar.close()
    train_acc = accuracy(model, train, cfg.eval_frames, cfg.seed, device)
    heldout_acc = accuracy(model, heldout, cfg.eval_frames, cfg.seed, device)
    facts.update(train_acc=round(train_acc, 4), heldout_acc=round(heldout_acc, 4))
    run.save(step, model, optimizer, extra={**facts, "epoch": step // spe})
    summary = {"run": str(run.path), "checkpoint": str(run.ckpt_path), "step": step, "total_steps": total,
               "stopped_by_time": stopped_by_time, "minutes": round((time.time() - started) / 60, 2),
               **facts, **{f"last_{k}": v for k, v in last.items()}}
    atomic_write_json(run.path / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------
# net.init for metric training
# ---------------------------------------------------------------------------

def _pretrain_checkpoint(path: Path) -> Path:
    return path / CKPT_NAME if path.is_dir() else path


def load_pretrained_backbone(path: str | Path, arch: str, size: Sequence[int],
                             test_actors: Sequence[str] = ()) -> tuple[dict, dict]:
    """Backbone state dict and facts of a `stccl pretrain-backbone` checkpoint, checked against the metric.

    Errors name the file: not a pretrain checkpoint, another arch or frame size, missing or unexpected
    backbone keys, or identities that are the metric's held-out actors.
    """
    file = _pretrain_checkpoint(Path(path))
    if not file.is_file():
        raise StcclError(f"net.init: pretrain-backbone checkpoint not found: {file}; run `stccl pretrain-backbone` "
                         f"first or point at its ckpt_last.pt (or its run folder)")
    ckpt = load_checkpoint(file)
    cfg, extra = ckpt.get("config", {}), ckpt.get("extra", {})
    if cfg.get("kind") != KIND:
        raise StcclError(f"{file}: not a pretrain-backbone checkpoint (kind={cfg.get('kind')!r}); "
                         f"use the ckpt_last.pt of `stccl pretrain-backbone`, or net.init insightface:PATH")
    if extra.get("arch") != arch:
        raise StcclError(f"{file}: backbone arch {extra.get('arch')!r} does not match the metric's net.arch "
                         f"{arch!r}; pretrain with arch: {arch} or set net.arch: {extra.get('arch')}")
    if list(extra.get("size") or []) != list(size):
        raise StcclError(f"{file}: pretrained on {extra.get('size')} px frames, the metric reads {list(size)}; "
                         f"pretrain with the metric's size")
    check_no_leak(extra.get("identities", []), test_actors, f"{file} (trained identities)")
    state = {k[len("backbone."):]: v for k, v in ckpt["model"].items() if k.startswith("backbone.")}
    reference = IResNet(arch).state_dict()
    missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    if missing or unexpected:
        raise StcclError(f"{file}: backbone keys do not match {arch}: missing {missing[:6]} ({len(missing)}), "
                         f"unexpected {unexpected[:6]} ({len(unexpected)})")
    bad = [k for k in reference if tuple(reference[k].shape) != tuple(state[k].shape)]
    if bad:
        raise StcclError(f"{file}: backbone shape mismatch for {len(bad)} key(s), e.g. {bad[0]}: "
                         f"{tuple(state[bad[0]].shape)} vs {tuple(reference[bad[0]].shape)}")
    facts = {k: extra.get(k) for k in ("identities", "train_acc", "heldout_acc", "chance")}
    return state, {**facts, "step": int(ckpt.get("step", 0)), "file": str(file)}


def apply_init(backbone: IResNet, spec: str, arch: str, size: Sequence[int],
               test_actors: Sequence[str] = ()) -> dict:
    """Load the weights `net.init` names into `backbone` (in place); return a record for the run's checkpoint.

    scratch: nothing (the IResNet's own initialisation); pretrained:PATH: a pretrain-backbone checkpoint
    (PATH or PATH/ckpt_last.pt); insightface:PATH: an arcface_torch IResNet state dict (our IResNet uses its
    parameter names; its embedding head is dropped; arch must match, e.g. iresnet50). Never downloads.
    """
    kind, path = parse_init(spec)
    record: dict = {"init": spec, "kind": kind}
    if kind == "scratch":
        return record
    with torch.random.fork_rng(devices=[]):  # the checks build reference IResNets: keep the global RNG as scratch's
        return _load_init(backbone, kind, path, arch, size, test_actors, record)


def _load_init(backbone: IResNet, kind: str, path: str, arch: str, size: Sequence[int],
               test_actors: Sequence[str], record: dict) -> dict:
    if kind == "pretrained":
        state, facts = load_pretrained_backbone(path, arch, size, test_actors)
        record.update(facts)
    else:
        file = Path(path)
        if not file.is_file():
            raise StcclError(f"net.init: insightface checkpoint not found: {file} (nothing is downloaded; "
                             f"point at an arcface_torch backbone .pth)")
        try:
            raw = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise StcclError(f"{file}: not a readable torch state dict ({type(exc).__name__}: {exc})") from None
        state = load_insightface_state(raw, arch, str(file))
        record["file"] = str(file)
    backbone.load_state_dict(state)
    record["sha256"] = hashlib.sha256(Path(record["file"]).read_bytes()).hexdigest()  # which file, for model cards
    return record


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def _cmd_pretrain(args) -> int:
    overrides = parse_sets(args.set)
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.device is not None:
        overrides["device"] = args.device
    cfg = load_pretrain_config(args.config, overrides)
    out = Path(args.out) if args.out else Path("reports/runs") / Path(args.config).stem
    if args.dry_run:
        print(to_json({"out": str(out), "resume": args.resume, "config": to_dict(cfg)}))
        return 0
    summary = pretrain_backbone(cfg, out, resume=args.resume, stop_at_step=args.stop_at_step,
                                progress=not args.no_progress)
    print(f"identities {len(summary['identities'])} (chance {summary['chance']:.3f}): train accuracy "
          f"{summary['train_acc']:.3f}, held-out-clip accuracy {summary['heldout_acc']:.3f} after "
          f"{summary['step']} steps", file=sys.stderr)
    print(to_json(summary))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("pretrain-backbone", help="pretrain the IResNet on identity classification (ArcFace margin)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_run_options(p, "params/pretrain_*.yaml", "--set max_minutes=3 --set size=64")
    p.set_defaults(func=_cmd_pretrain)
