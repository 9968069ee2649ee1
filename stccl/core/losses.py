"""PatchNCE with correlation-aware adaptive weighting, and the plug-in STCCL loss.

    from stccl.core.losses import STCCLLoss

    stccl = STCCLLoss.from_checkpoint("reports/runs/metric_default/ckpt_last.pt", variant="vd",
                                      lambda_S=1.0, lambda_T=5.0).to(device)
    loss, parts = stccl(input_clip, generated_clip)   # clips (B, T, 3, H, W) in [0, 1]
    (g_loss + loss).backward()                        # gradients reach generated_clip only

`speed=FastPath.fast()` (stccl.core.frozen) runs the frozen network with its batch norms folded,
the input clip under inference mode and channels-last tensors: the same loss within fp32
rounding, faster (README, "Speed"); `FastPath(amp="bf16")` autocasts the backbone.

L = lambda_S * L_SCC + lambda_T * L_TCC, each the sum over stages of the
(weighted) mean PatchNCE over queries, for the chosen variant(s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from stccl.config import from_dict
from stccl.core.correlation import StageSample, correlation_vectors, sample_positions
from stccl.core.frozen import FastPath, FrozenIResNet, autocast_context
from stccl.io import StcclError
from stccl.core.metric_net import MetricNet, MetricNetConfig
from stccl.runs import load_checkpoint


@dataclass(frozen=True)
class STCCLOptions:
    variant: Literal["vd", "cm", "both"] = "both"
    lambda_S: float = 1.0
    lambda_T: float = 5.0
    use_spatial: bool = True
    use_temporal: bool = True
    adaptive: bool = True
    theta: float = 0.8
    normalise_weight: bool = True                      # adaptive weights scaled to mean 1 per group
    spatial_negatives: Literal["frame", "window", "mismatched"] = "frame"
    # SCC negatives: "frame": other indices of the same frame (the paper); "window": of every frame of the
    # clip, so that the same region at another moment of speech is a negative; "mismatched": the paper's
    # plus every index of the aligned frame of a neutral window of the same actor saying another sentence
    # (metric training only: the plug-in loss has no such clip and uses "frame")
    tau: float = 0.07
    spatial_samples: tuple[int, ...] = (32, 16, 8, 4)  # S_l per stage (capped at what fits)
    temporal_factor: int = 8                           # N_l = temporal_factor * S_l
    central: float = 0.95                              # side of the sampling square / map side

    def variants(self) -> tuple[str, ...]:
        return ("vd", "cm") if self.variant == "both" else (self.variant,)


def adaptive_weight(h: torch.Tensor, theta: float = 0.8) -> torch.Tensor:
    """Per-query weight: 1 where h <= theta, else 2 h^2 (h = mean_c sigmoid(|raw disparity|))."""
    return torch.where(h <= theta, torch.ones_like(h), 2.0 * h * h)


def patch_nce(q: torch.Tensor, k: torch.Tensor, tau: float = 0.07, weight: torch.Tensor | None = None,
              normalise_weight: bool = True, stats: dict | None = None,
              extra_k: torch.Tensor | None = None) -> torch.Tensor:
    """PatchNCE: query i's positive is key i, every other key of its group is a negative.

    q, k: (G, Q, D) L2-normalised (k is detached here); weight: (G, Q) or None.
    Returns the (weighted) mean cross-entropy over all G * Q queries. With `normalise_weight` the
    weights are scaled to mean 1 within each group, so hard queries still count more but the value
    stays a cross-entropy whose chance level is log Q (with raw weights 2 h^2 it grows with the
    feature scale and is not comparable across steps). `stats`, if given, receives the unweighted
    mean cross-entropy ("ce") and the chance level log Q ("chance") as floats. `extra_k` (G, E, D), if
    given, are further negatives of every query of the group (chance level log(Q + E)).
    """
    G, Q, _ = q.shape
    logits = q @ k.detach().transpose(1, 2) / tau  # (G, Q, Q), positives on the diagonal
    if extra_k is not None:
        logits = torch.cat([logits, q @ extra_k.detach().transpose(1, 2) / tau], dim=2)  # (G, Q, Q + E)
    target = torch.arange(Q, device=q.device).expand(G, Q)
    ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(G, Q)
    if stats is not None:
        stats["ce"] = float(ce.detach().mean())
        stats["chance"] = math.log(logits.shape[2])
    if weight is None:
        return ce.mean()
    weight = weight.detach()
    if normalise_weight:
        weight = weight / weight.mean(1, keepdim=True).clamp_min(1e-12)
    return (ce * weight).mean()


def stccl_terms(net: MetricNet, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor], T: int,
                opts: STCCLOptions, samples: list[StageSample] | None = None,
                stats: dict[str, float] | None = None,
                feats_m: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Loss components {"scc_vd", "scc_cm", "tcc_vd", "tcc_cm"} (those enabled), each summed over stages.

    The projection heads are `net.heads_for(kind)`: one set, unless the net has its own temporal heads.

    feats_a: stage maps of clip A (queries, gradients flow), feats_b of clip B (keys, detached),
    each (B*T, C_l, H_l, W_l) with the T frames of a clip consecutive. `stats`, if given, receives
    per term "<term>_ce" (unweighted cross-entropy) and "<term>_chance" (sum over stages of log Q,
    the value of a metric that cannot tell its positive from its negatives), both summed over stages.
    feats_m: stage maps of a mismatched neutral clip (same actor, another sentence), required by
    spatial_negatives="mismatched": its spatial vectors at the same positions are extra negatives.
    """
    if opts.use_spatial and opts.spatial_negatives == "mismatched" and feats_m is None:
        raise StcclError("STCCL loss: spatial_negatives='mismatched' needs the stage maps of a mismatched "
                         "neutral clip (feats_m); only metric training provides one")
    if samples is None:
        samples = sample_positions([tuple(f.shape[-2:]) for f in feats_a], opts.spatial_samples,
                                   opts.temporal_factor, opts.central)
    kinds = []
    if opts.use_spatial:
        kinds.append(("scc", "spatial"))
    if opts.use_temporal and T > 1:
        kinds.append(("tcc", "temporal"))
    terms: dict[str, torch.Tensor] = {}
    for name, kind in kinds:
        for variant in opts.variants():
            total, used, ce, chance = feats_a[0].new_zeros(()), 0, 0.0, 0.0
            for j, (head, fa, fb, s) in enumerate(zip(net.heads_for(kind), feats_a, feats_b, samples)):
                if kind == "spatial" and not s.has_anchors:
                    continue  # map smaller than 3 x 3: no anchor has 8 neighbours
                s = s.to(fa.device)
                used += 1
                q, k, h = correlation_vectors(kind, variant, head, fa, fb, s, T, with_strength=opts.adaptive)
                if kind == "spatial" and opts.spatial_negatives == "window":
                    # (B*T, Q, D) -> (B, T*Q, D): one group per clip
                    q, k = q.unflatten(0, (-1, T)).flatten(1, 2), k.unflatten(0, (-1, T)).flatten(1, 2)
                    h = h.unflatten(0, (-1, T)).flatten(1, 2) if h is not None else None
                extra = None
                if kind == "spatial" and opts.spatial_negatives == "mismatched":
                    with torch.no_grad():  # keys only (detached, like every key)
                        _, extra, _ = correlation_vectors(kind, variant, head, feats_m[j], feats_m[j], s, T)
                w = adaptive_weight(h, opts.theta) if opts.adaptive else None
                stage_stats: dict | None = {} if stats is not None else None
                total = total + patch_nce(q, k, opts.tau, w, opts.normalise_weight, stage_stats, extra)
                if stage_stats is not None:
                    ce, chance = ce + stage_stats["ce"], chance + stage_stats["chance"]
            if used == 0:
                raise StcclError(f"STCCL loss: no stage map is 3 x 3 or larger (shapes "
                                 f"{[tuple(f.shape[-2:]) for f in feats_a]}); use inputs of at least 48 px")
            terms[f"{name}_{variant}"] = total
            if stats is not None:
                stats[f"{name}_{variant}_ce"], stats[f"{name}_{variant}_chance"] = ce, chance
    return terms


def combine(terms: dict[str, torch.Tensor], lambda_S: float, lambda_T: float) -> torch.Tensor:
    """lambda_S * (SCC terms) + lambda_T * (TCC terms)."""
    total = None
    for key, value in terms.items():
        part = (lambda_S if key.startswith("scc") else lambda_T) * value
        total = part if total is None else total + part
    if total is None:
        raise StcclError("STCCL loss: nothing to compute (use_spatial and use_temporal are both off, "
                         "or T = 1 with use_spatial off)")
    return total


class STCCLLoss(nn.Module):
    """Frozen metric network + STCCL loss on (input_clip, generated_clip), each (B, T, 3, H, W)."""

    def __init__(self, net: MetricNet, options: STCCLOptions = STCCLOptions(), speed: FastPath = FastPath()):
        super().__init__()
        self.net = net
        if options.spatial_negatives == "mismatched":  # a training-time option: no mismatched clip here
            options = replace(options, spatial_negatives="frame")
        self.options = options
        self.speed = speed
        self.net.requires_grad_(False)
        self.net.eval()
        self.frozen: FrozenIResNet | None = None  # the folded backbone (speed.fold_bn), no state-dict entries
        self.refold()
        # the fold is a copy of the weights: take it again whenever new weights are loaded
        ref = weakref.ref(self)
        self.net.register_load_state_dict_post_hook(lambda *_: ref() is not None and ref().refold())

    def refold(self) -> None:
        """(Re)build the fast path's backbone from `self.net` (called on construction and on load_state_dict)."""
        backbone: nn.Module = self.net.backbone
        if self.speed.fold_bn:
            self.frozen = FrozenIResNet(self.net.backbone.eval())
            if self.speed.channels_last:
                self.frozen.to_channels_last()
            backbone = self.frozen
        elif self.speed.channels_last:
            self.net.backbone.to(memory_format=torch.channels_last)  # values unchanged, NHWC layout
        # kept out of the module tree: a compiled wrapper would repeat the weights in the state dict
        self.__dict__["_backbone"] = torch.compile(backbone) if self.speed.compile else backbone

    def features(self, clip: torch.Tensor) -> list[torch.Tensor]:
        # clip: (N, 3, H, W) -> [f_l: (N, C_l, H_l, W_l)] in float32, through the (fast) frozen backbone
        x = clip.contiguous(memory_format=torch.channels_last) if self.speed.channels_last else clip
        with autocast_context(self.speed.amp, clip.device):
            feats = self._backbone(x)
        return feats if self.speed.amp == "off" else [f.float() for f in feats]

    def train(self, mode: bool = True) -> "STCCLLoss":
        # The metric network stays in eval mode (fixed BN statistics) even inside a training generator.
        super().train(mode)
        self.net.eval()
        return self

    @classmethod
    def from_checkpoint(cls, path: str | Path, speed: FastPath = FastPath(), **overrides) -> "STCCLLoss":
        """Load a `stccl train-metric` checkpoint; `overrides` set STCCLOptions fields (variant, lambda_S, ...).

        `speed` switches the frozen fast path (stccl.core.frozen.FastPath; FastPath.fast() is the measured one)."""
        ckpt = load_checkpoint(path)
        net, options = network_from_checkpoint(ckpt, str(path))
        known = {f.name for f in fields(STCCLOptions)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise StcclError(f"STCCLLoss.from_checkpoint: unknown option(s) {unknown}; known: {sorted(known)}")
        data = {f.name: getattr(options, f.name) for f in fields(STCCLOptions)}
        data.update(overrides)
        return cls(net, from_dict(STCCLOptions, data, where=f"{path} options"), speed)

    def forward(self, input_clip: torch.Tensor, generated_clip: torch.Tensor) -> tuple[torch.Tensor, dict]:
        # input_clip, generated_clip: (B, T, 3, H, W) in [0, 1]
        if input_clip.shape != generated_clip.shape or input_clip.dim() != 5:
            raise StcclError(f"STCCLLoss: expected two clips of the same shape (B, T, 3, H, W), got "
                             f"{tuple(input_clip.shape)} and {tuple(generated_clip.shape)}")
        T = input_clip.shape[1]
        with torch.inference_mode() if self.speed.inference_mode else torch.no_grad():
            feats_b = self.features(input_clip.flatten(0, 1))  # [(B*T, C_l, H_l, W_l)]
        feats_a = self.features(generated_clip.flatten(0, 1))
        terms = stccl_terms(self.net, feats_a, feats_b, T, self.options)
        total = combine(terms, self.options.lambda_S, self.options.lambda_T)
        return total, {k: v.detach() for k, v in terms.items()}

    def loss(self, input_clip: torch.Tensor, generated_clip: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self(input_clip, generated_clip)


def network_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> tuple[MetricNet, STCCLOptions]:
    """Rebuild the MetricNet and the loss options a metric checkpoint was trained with."""
    cfg = ckpt.get("config", {})
    if cfg.get("kind") != "metric":
        raise StcclError(f"{source}: not a metric-network checkpoint (kind={cfg.get('kind')!r}); "
                         f"use a ckpt_last.pt written by `stccl train-metric`")
    try:
        net_cfg = from_dict(MetricNetConfig, cfg["net"], where=f"{source} net")
        options = from_dict(STCCLOptions, cfg["loss"], where=f"{source} loss")
    except KeyError as exc:
        raise StcclError(f"{source}: metric checkpoint config lacks {exc}; re-train with this kit") from None
    net = MetricNet(net_cfg)
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise StcclError(f"{source}: weights do not match the network in its config ({str(exc)[:300]})") from None
    return net, options
