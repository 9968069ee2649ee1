"""Auxiliary networks for SPFEM training and evaluation on synthetic data.

Five small CNNs, all trained on the TRAIN identities only and cached on disk:

- `emotion_train`: emotion classifier whose loss trains the generator;
- `emotion_eval`: a second emotion classifier (other architecture and seed)
  used only to score outputs, so the generator was never optimised against it;
- `identity_train` / `identity_eval`: identity embedders (trained as
  identity classifiers; the L2-normalised penultimate feature is the
  embedding). The first gives the generator's identity loss, the second CSIM
  and FAD at evaluation;
- `mouth`: a regressor from the mouth crop to the speech (viseme) parameters
  of the ground-truth table. It is an evaluation instrument only: the
  generator never sees the ground-truth table;
- `landmarks`: a regressor from the frame to the renderer's 16 landmarks,
  the NED-like generator's stand-in for a pretrained face fitter
  (`stccl.spfem.expression`). Like the others it learns from the train
  identities only; the generator uses its estimates, never the table.

The cache lives in `{data_root}/.aux/{name}-{hash}.pt`; the hash covers the
data's meta.json, the aux config and the network spec, so a change in any of
them retrains instead of reusing a stale net.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from stccl.config import to_dict
from stccl.data.mead import EMOTIONS, MeadLayout, resolve_test_actors, split_actors
from stccl.io import StcclError, read_json, to_json
from stccl.data.face_model import LANDMARKS
from stccl.runs import load_checkpoint, save_checkpoint
from stccl.spfem.config import MOUTH_BOX, AuxConfig, load_spfem_config
from stccl.spfem.expression import LANDMARK_WIDTHS, LandmarkEmotionClassifier, LandmarkRegressor, conv_stages

AUX_VERSION = 1
MOUTH_PARAMS = ("v_open", "v_width", "v_round", "v_jaw")  # speech (viseme) columns of ground_truth.parquet
LANDMARK_COLUMNS = tuple(f"lm_{n}_{c}" for n in LANDMARKS for c in "xy")  # pixels at the data's frame size


@dataclass(frozen=True)
class NetSpec:
    kind: str                    # "emotion" | "identity" | "mouth" | "landmarks"
    widths: tuple[int, ...]
    kernel: int
    dropout: float
    seed: int
    embed_dim: int = 64


NET_SPECS = {
    "emotion_train": NetSpec("emotion", (16, 32, 64), 3, 0.0, seed=11),
    "emotion_eval": NetSpec("emotion", (24, 48, 96, 96), 5, 0.2, seed=23),
    "identity_train": NetSpec("identity", (16, 32, 64, 128), 3, 0.0, seed=31),
    "identity_eval": NetSpec("identity", (24, 48, 96, 96), 5, 0.1, seed=43),
    "mouth": NetSpec("mouth", (24, 48, 96), 3, 0.0, seed=57),
    "landmarks": NetSpec("landmarks", LANDMARK_WIDTHS, 3, 0.0, seed=67),
    "emotion_landmarks": NetSpec("landmark_emotion", (128,), 0, 0.0, seed=71),
}


def crop_mouth(frames: torch.Tensor, box: Sequence[float] = MOUTH_BOX) -> torch.Tensor:
    """The mouth region of (..., 3, H, W) frames, by fractions (top, bottom, left, right)."""
    H, W = frames.shape[-2:]
    t, b, l, r = box
    return frames[..., int(round(t * H)):int(round(b * H)), int(round(l * W)):int(round(r * W))]


class SmallCNN(nn.Module):
    """conv-BN-ReLU stages with stride 2, global average pool, optional dropout."""

    def __init__(self, widths: Sequence[int], kernel: int, dropout: float):
        super().__init__()
        layers, cin = conv_stages(widths, kernel)
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 3, H, W) in [0, 1] -> (N, C)
        return self.dropout(self.features(x * 2 - 1).mean(dim=(2, 3)))


class EmotionClassifier(nn.Module):
    def __init__(self, spec: NetSpec, num_classes: int = len(EMOTIONS)):
        super().__init__()
        self.body = SmallCNN(spec.widths, spec.kernel, spec.dropout)
        self.head = nn.Linear(self.body.out_channels, num_classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (N, 3, H, W) -> logits (N, 7)
        return self.head(self.body(frames))


class IdentityEmbedder(nn.Module):
    """Trained as a classifier over the train identities; `forward` gives the normalised embedding."""

    def __init__(self, spec: NetSpec, num_identities: int):
        super().__init__()
        self.body = SmallCNN(spec.widths, spec.kernel, spec.dropout)
        self.embed = nn.Linear(self.body.out_channels, spec.embed_dim)
        self.classifier = nn.Linear(spec.embed_dim, num_identities)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (N, 3, H, W) -> (N, D), unit length
        return F.normalize(self.embed(self.body(frames)), dim=1)

    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        # a cosine classifier with a fixed scale keeps the embedding itself discriminative
        return 16.0 * self.forward(frames) @ F.normalize(self.classifier.weight, dim=1).T


class MouthRegressor(nn.Module):
    """Mouth crop -> speech parameters (open, width, round, jaw), in the table's units."""

    def __init__(self, spec: NetSpec, box: Sequence[float] = MOUTH_BOX, num_params: int = len(MOUTH_PARAMS)):
        super().__init__()
        self.box = tuple(float(v) for v in box)
        self.body = SmallCNN(spec.widths, spec.kernel, spec.dropout)
        self.head = nn.Linear(self.body.out_channels, num_params)
        self.register_buffer("mean", torch.zeros(num_params))
        self.register_buffer("std", torch.ones(num_params))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (N, 3, H, W) full faces -> (N, P) parameters
        return self.head(self.body(crop_mouth(frames, self.box))) * self.std + self.mean


def build_net(name: str, num_identities: int, cfg: AuxConfig) -> nn.Module:
    spec = NET_SPECS[name]
    if spec.kind == "emotion":
        return EmotionClassifier(spec)
    if spec.kind == "identity":
        return IdentityEmbedder(spec, num_identities)
    if spec.kind == "landmarks":
        return LandmarkRegressor(spec.widths, spec.kernel)
    if spec.kind == "landmark_emotion":
        return LandmarkEmotionClassifier(spec.widths[0])
    return MouthRegressor(spec, cfg.mouth_box)


# ---------------------------------------------------------------------------
# Training data: frames of the train identities, held in memory as uint8
# ---------------------------------------------------------------------------

@dataclass
class FrameTable:
    frames: torch.Tensor         # (N, 3, H, W) uint8
    actor_idx: torch.Tensor      # (N,)
    emotion_idx: torch.Tensor    # (N,)
    mouth: torch.Tensor          # (N, P) float, NaN when the table has no row
    landmarks: torch.Tensor      # (N, L, 2) (x, y) as fractions of the frame side, NaN when unknown
    is_val: torch.Tensor         # (N,) bool
    actors: list[str]

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        return self.frames[idx].float().div_(255.0)


def load_frame_table(root: str | Path, cfg: AuxConfig, split: str = "train",
                     test_actors: Sequence[str] | None = None) -> FrameTable:
    """Every `frame_stride`-th frame of every clip of the split's actors, resized to `cfg.size`."""
    layout = MeadLayout(root)
    tests = resolve_test_actors(root, test_actors)
    actors = split_actors(layout.actors(), tests, split, where=str(root))
    gt = _truth_lookup(root)
    frames, a_idx, e_idx, truth, val = [], [], [], [], []
    for ai, actor in enumerate(tqdm(actors, desc=f"aux frames ({split})", leave=False)):
        for emotion in layout.emotions(actor):
            clips = layout.clips(actor, emotion)
            val_clips = set(clips[-cfg.val_clips:]) if cfg.val_clips > 0 and len(clips) > cfg.val_clips else set()
            for clip in clips:
                idx = np.arange(0, layout.num_frames(actor, emotion, clip), cfg.frame_stride)
                x = layout.load_frames(actor, emotion, clip, idx, cfg.size)  # (n, 3, H, W)
                frames.append((x * 255).round().to(torch.uint8))
                a_idx.append(torch.full((len(idx),), ai))
                e_idx.append(torch.full((len(idx),), EMOTIONS.index(emotion)))
                val.append(torch.full((len(idx),), clip in val_clips))
                truth.append(_truth_rows(gt, actor, emotion, clip, idx))
    truth = torch.cat(truth)  # (N, P + 2L)
    P = len(MOUTH_PARAMS)
    return FrameTable(torch.cat(frames), torch.cat(a_idx), torch.cat(e_idx), truth[:, :P],
                      truth[:, P:].reshape(len(truth), -1, 2), torch.cat(val), actors)


def _truth_lookup(root: str | Path):
    """Ground-truth speech parameters and landmarks (as fractions of the frame side) indexed by
    (actor, emotion, clip, frame), or None without a table. Landmarks are NaN in a table without them."""
    path = Path(root) / "ground_truth.parquet"
    if not path.is_file():
        return None
    import pandas as pd

    df = pd.read_parquet(path)
    missing = [c for c in ("actor", "emotion", "clip", "frame", *MOUTH_PARAMS) if c not in df.columns]
    if missing:
        raise StcclError(f"{path}: columns {missing} missing; the mouth regressor needs the speech parameters "
                         f"{list(MOUTH_PARAMS)} per frame (re-render with `stccl synth`)")
    if all(c in df.columns for c in LANDMARK_COLUMNS):
        side = float(read_json(Path(root) / "meta.json", "synthetic-data meta file")["size"])
        df[list(LANDMARK_COLUMNS)] = df[list(LANDMARK_COLUMNS)] / side
    else:
        df = df.assign(**{c: np.nan for c in LANDMARK_COLUMNS})
    return df.set_index(["actor", "emotion", "clip", "frame"])[list(MOUTH_PARAMS + LANDMARK_COLUMNS)].sort_index()


def train_landmarks(root: str | Path, test_actors: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The renderer's landmarks (N, L, 2) of every frame of the train identities (fractions of the frame side)
    and each frame's actor index (N,): what the NED-like generator's expression basis is built from."""
    gt = _truth_lookup(root)
    if gt is None or gt[list(LANDMARK_COLUMNS)].isna().all().all():
        raise StcclError(f"{Path(root) / 'ground_truth.parquet'}: no landmark columns (lm_*); the expression basis "
                         f"needs synthetic data from `stccl synth`")
    tests = set(resolve_test_actors(root, test_actors))
    actors = gt.index.get_level_values("actor")
    rows = gt[~actors.isin(tests)]
    names = rows.index.get_level_values("actor")
    codes = {a: i for i, a in enumerate(sorted(set(names)))}
    lm = torch.from_numpy(rows[list(LANDMARK_COLUMNS)].to_numpy(np.float32)).view(len(rows), -1, 2)
    return lm, torch.tensor([codes[a] for a in names])


def _truth_rows(gt, actor: str, emotion: str, clip: int, idx: np.ndarray) -> torch.Tensor:
    if gt is None:
        return torch.full((len(idx), len(MOUTH_PARAMS) + len(LANDMARK_COLUMNS)), float("nan"))
    keys = [(actor, emotion, int(clip), int(i)) for i in idx]
    rows = np.array(gt.reindex(keys).to_numpy(dtype=np.float32))  # writable copy
    return torch.from_numpy(rows)


# ---------------------------------------------------------------------------
# Training and cache
# ---------------------------------------------------------------------------

def cache_key(root: str | Path, name: str, cfg: AuxConfig) -> str:
    meta_path = Path(root) / "meta.json"
    meta = read_json(meta_path, "synthetic-data meta file") if meta_path.is_file() else {"root": str(root)}
    blob = json.dumps({"v": AUX_VERSION, "meta": meta, "cfg": to_dict(cfg),
                       "spec": dataclasses.asdict(NET_SPECS[name]), "name": name}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def cache_path(root: str | Path, name: str, cfg: AuxConfig) -> Path:
    return Path(root) / ".aux" / f"{name}-{cache_key(root, name, cfg)}.pt"


def train_net(name: str, table: FrameTable, cfg: AuxConfig, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train one aux net on the table's non-validation frames; return it (eval mode) and val scores."""
    if name not in NET_SPECS:
        raise StcclError(f"unknown aux net {name!r}; expected one of {sorted(NET_SPECS)}")
    spec = NET_SPECS[name]
    gen = torch.Generator().manual_seed(spec.seed)
    torch.manual_seed(spec.seed)
    net = build_net(name, len(table.actors), cfg)
    train_mask = ~table.is_val
    if spec.kind == "mouth":
        train_mask &= ~torch.isnan(table.mouth).any(1)
        if not train_mask.any():
            raise StcclError("no ground-truth speech parameters found for the train frames; the mouth regressor "
                             "needs {root}/ground_truth.parquet (synthetic data from `stccl synth`)")
        target = table.mouth[train_mask]
        net.mean.copy_(target.mean(0))
        net.std.copy_(target.std(0).clamp_min(1e-3))
    if spec.kind in ("landmarks", "landmark_emotion"):
        train_mask &= ~torch.isnan(table.landmarks).flatten(1).any(1)
        if not train_mask.any():
            raise StcclError(f"no ground-truth landmarks found for the train frames; aux net {name} needs "
                             "{data_root}/ground_truth.parquet with lm_* columns (synthetic data from `stccl synth`)")
        if spec.kind == "landmarks":
            net.mean.copy_(table.landmarks[train_mask].mean(0).flatten())
    if spec.kind == "identity":
        # identity is judged across emotions and clips: use every train frame
        train_mask = torch.ones_like(train_mask)
    train_idx = train_mask.nonzero().squeeze(1)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    net.train()
    bar = tqdm(range(cfg.steps), desc=f"aux {name}", disable=not progress, leave=False)
    for _ in bar:
        pick = train_idx[torch.randint(len(train_idx), (cfg.batch_size,), generator=gen)]
        loss = _batch_loss(spec.kind, net, table, pick, gen, cfg.size)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, evaluate_net(name, net, table)


def _batch_loss(kind: str, net: nn.Module, table: FrameTable, pick: torch.Tensor, gen: torch.Generator,
                size: int) -> torch.Tensor:
    """The training loss of one aux net of `kind` on the table rows `pick`."""
    if kind == "landmark_emotion":  # reads landmarks, not frames
        # with noise of about the landmark regressor's error (0.5 px at 64 px)
        lm = table.landmarks[pick] + 0.008 * torch.randn(table.landmarks[pick].shape, generator=gen)
        return F.cross_entropy(net(lm), table.emotion_idx[pick])
    x = _augment(table.batch(pick), gen)  # (B, 3, H, W)
    if kind == "emotion":
        return F.cross_entropy(net(x), table.emotion_idx[pick])
    if kind == "identity":
        return F.cross_entropy(net.logits(x), table.actor_idx[pick])
    if kind == "landmarks":  # in pixels of the net's input
        return F.smooth_l1_loss(net(x) * size, table.landmarks[pick] * size)
    return F.smooth_l1_loss((net(x) - net.mean) / net.std, (table.mouth[pick] - net.mean) / net.std)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness jitter and a little noise: the nets must also read generated (imperfect) frames."""
    B = len(x)
    gain = 1 + 0.1 * (torch.rand(B, 1, 1, 1, generator=gen) - 0.5)
    noise = 0.02 * torch.randn(x.shape, generator=gen)
    return (x * gain + noise).clamp(0, 1)


@torch.no_grad()
def evaluate_net(name: str, net: nn.Module, table: FrameTable, batch: int = 256) -> dict:
    """Held-out scores: accuracy on validation clips (emotion), MAE (mouth), mean point error in pixels
    (landmarks), leave-in accuracy (identity)."""
    kind = NET_SPECS[name].kind
    mask = table.is_val if kind != "identity" else torch.ones_like(table.is_val)
    idx = mask.nonzero().squeeze(1)
    if len(idx) == 0:
        return {}
    if kind == "landmark_emotion":
        ok = ~torch.isnan(table.landmarks[idx]).flatten(1).any(1)
        pred = net(table.landmarks[idx][ok]).argmax(1)
        return {"val_accuracy": float((pred == table.emotion_idx[idx][ok]).float().mean())}
    outs = torch.cat([net(table.batch(idx[i:i + batch])) if kind != "identity"
                      else net.logits(table.batch(idx[i:i + batch])) for i in range(0, len(idx), batch)])
    if kind == "emotion":
        return {"val_accuracy": float((outs.argmax(1) == table.emotion_idx[idx]).float().mean())}
    if kind == "identity":
        return {"train_accuracy": float((outs.argmax(1) == table.actor_idx[idx]).float().mean())}
    if kind == "landmarks":
        err = (outs - table.landmarks[idx]).norm(dim=2) * table.frames.shape[-1]  # (n, L) in pixels
        ok = ~torch.isnan(err).any(1)
        return {"val_error_px": float(err[ok].mean()),
                "val_error_px_by_landmark": {n: float(v) for n, v in zip(LANDMARKS, err[ok].mean(0))}}
    target = table.mouth[idx]
    ok = ~torch.isnan(target).any(1)
    mae = (outs[ok] - target[ok]).abs().mean(0)
    spread = target[ok].std(0)
    return {"val_mae": {p: float(v) for p, v in zip(MOUTH_PARAMS, mae)},
            "val_mae_over_std": float((mae / spread.clamp_min(1e-6)).mean())}


def load_aux_nets(root: str | Path, names: Sequence[str], cfg: AuxConfig = AuxConfig(),
                  device: torch.device | str = "cpu", progress: bool = True,
                  train_if_missing: bool = True) -> dict[str, nn.Module]:
    """The named aux nets, frozen, from the cache or trained (on train identities) and cached."""
    out: dict[str, nn.Module] = {}
    table: FrameTable | None = None
    for name in names:
        path = cache_path(root, name, cfg)
        if path.is_file():
            ckpt = load_checkpoint(path)
            net = build_net(name, ckpt["extra"]["num_identities"], cfg)
            net.load_state_dict(ckpt["model"])
        else:
            if not train_if_missing:
                raise StcclError(f"aux net {name} not cached at {path}; run training (stccl train-spfem) first")
            if table is None:
                table = load_frame_table(root, cfg)
            net, scores = train_net(name, table, cfg, progress)
            save_checkpoint(path, {"model": net.state_dict(), "config": to_dict(cfg), "step": cfg.steps,
                                   "extra": {"name": name, "num_identities": len(table.actors),
                                             "actors": table.actors, "scores": scores,
                                             "spec": dataclasses.asdict(NET_SPECS[name])}})
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        out[name] = net.to(device)
    return out


def aux_scores(root: str | Path, names: Sequence[str], cfg: AuxConfig = AuxConfig()) -> dict:
    """The validation scores recorded when each cached net was trained."""
    scores = {}
    for name in names:
        path = cache_path(root, name, cfg)
        if path.is_file():
            scores[name] = load_checkpoint(path)["extra"].get("scores", {})
    return scores


def batched(fn, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Apply `fn` to (N, ...) in chunks (memory-bounded evaluation)."""
    if len(x) == 0:
        return x
    return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def _cmd_aux_nets(args) -> int:
    overrides = {"data_root": args.data_root} if args.data_root else {}
    cfg = load_spfem_config(args.config, overrides)
    names = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = [n for n in names if n not in NET_SPECS]
    if unknown:
        raise StcclError(f"--nets: unknown aux net(s) {unknown}; expected some of {sorted(NET_SPECS)}")
    threads = args.threads or cfg.threads
    if threads > 0:
        torch.set_num_threads(threads)
    load_aux_nets(cfg.data_root, names, cfg.aux, "cpu", progress=not args.no_progress)
    print(to_json({"data_root": str(cfg.data_root), "nets": {n: str(cache_path(cfg.data_root, n, cfg.aux)) for n in names},
                   "scores": aux_scores(cfg.data_root, names, cfg.aux)}))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("aux-nets", help="train (or find cached) the auxiliary nets of an SPFEM config",
                       description="Train the frozen auxiliary nets (emotion classifiers, identity embedders, mouth "
                                   "regressor) that an SPFEM config uses, on the train identities of its data, and "
                                   "cache them under {data_root}/.aux. train-spfem and evaluate do this on first "
                                   "use; this command does it ahead of time (e.g. one net per process).")
    p.add_argument("--config", required=True, help="params/spfem_*.yaml (its data_root and aux section)")
    p.add_argument("--data-root", dest="data_root", default=None, help="override data_root")
    p.add_argument("--nets", default=",".join(NET_SPECS), help="comma-separated names (default: all)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the config's setting)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.set_defaults(func=_cmd_aux_nets)
