"""The STCCL metric network: an IResNet backbone plus one projection head per stage.

Head g_l = Linear(C_l, C_l) - ReLU - Linear(C_l, C_l / 4); the output is L2
normalised by the correlation code. All heads live in an `nn.ModuleList`, so
`model.parameters()` (and the optimiser) sees them; the reference keeps some in
plain Python lists and never trains them. `temporal_heads: true` gives the
temporal terms a second set of heads (an experiment, not the paper's design).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from stccl.core.backbone import ARCHS, IResNet


@dataclass(frozen=True)
class MetricNetConfig:
    arch: str = "iresnet_tiny"
    head_ratio: int = 4     # output width C_l / head_ratio
    head_bias: bool = False  # bias-free heads: a zero disparity maps to zero and the projected
                             # direction depends on the disparity alone, not on a shared bias
    temporal_heads: bool = False  # own heads for the temporal terms (the paper shares one head per
                                  # stage between spatial and temporal correlations)
    head_activation: str = "relu"  # "relu" (the paper); "tanh": an odd head, g(-d) = -g(d), so a disparity
                                   # and its reverse point opposite ways and unrelated disparities do not
                                   # share the positive cone a bias-free ReLU head maps them into
    init: str = "scratch"  # backbone weights metric training starts from: "scratch" (the reference's
                           # metric training), "pretrained:PATH" (a `stccl pretrain-backbone` checkpoint, as the
                           # official temporal script starts from one) or "insightface:PATH" (an arcface_torch
                           # IResNet state dict). Applied by train_metric (stccl.core.pretrain.apply_init), not
                           # here: a trained checkpoint rebuilds its net without needing PATH.

    def __post_init__(self):
        parse_init(self.init)


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
INIT_KINDS = ("scratch", "pretrained", "insightface")


def parse_init(spec: str) -> tuple[str, str]:
    """"scratch" -> ("scratch", ""); "pretrained:PATH" / "insightface:PATH" -> (kind, PATH). ValueError otherwise."""
    kind, sep, path = str(spec).partition(":")
    if kind == "scratch" and not sep:
        return kind, ""
    if kind in INIT_KINDS[1:] and path.strip():
        return kind, path.strip()
    raise ValueError(f"net.init must be 'scratch', 'pretrained:PATH' or 'insightface:PATH', got {spec!r}")


class ProjectionHead(nn.Module):
    def __init__(self, channels: int, ratio: int = 4, bias: bool = False, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"head_activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.net = nn.Sequential(
            nn.Linear(channels, channels, bias=bias),
            ACTIVATIONS[activation](),
            nn.Linear(channels, max(1, channels // ratio), bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., C) -> (..., C / ratio), not normalised
        return self.net(x)


class MetricNet(nn.Module):
    def __init__(self, cfg: MetricNetConfig = MetricNetConfig()):
        super().__init__()
        self.cfg = cfg
        self.backbone = IResNet(cfg.arch)
        widths = ARCHS[cfg.arch].widths
        def heads() -> nn.ModuleList:
            return nn.ModuleList(ProjectionHead(c, cfg.head_ratio, cfg.head_bias, cfg.head_activation)
                                 for c in widths)

        self.heads = heads()
        self.temporal_heads = heads() if cfg.temporal_heads else None

    def heads_for(self, kind: str) -> nn.ModuleList:
        """The per-stage heads of "spatial" or "temporal" correlations."""
        return self.temporal_heads if kind == "temporal" and self.temporal_heads is not None else self.heads

    @property
    def channels(self) -> tuple[int, ...]:
        return self.backbone.channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: (N, 3, H, W) in [0, 1] -> [f_l: (N, C_l, H_l, W_l)] for the four stages
        return self.backbone(x)
