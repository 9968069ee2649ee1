"""The emotion code from a reference clip, shared by both generator families (`generator`, `expression`)."""

from __future__ import annotations

import torch
import torch.nn as nn


class ReferenceEncoder(nn.Module):
    """Emotion code from a reference clip: per-frame CNN, global average pool, mean over time."""

    def __init__(self, base: int, code_dim: int):
        super().__init__()
        chans = [3, base, 2 * base, 4 * base, 4 * base]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], code_dim)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        # clip: (B, T, 3, H, W) -> (B, D)
        B, T = clip.shape[:2]
        f = self.features(clip.flatten(0, 1) * 2 - 1).mean(dim=(2, 3))  # (B*T, C)
        return self.head(f.view(B, T, -1).mean(1))
