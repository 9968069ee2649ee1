"""Spatial and temporal coherent correlations (SCC, TCC) in the VD and CM variants.

Everything here turns stage feature maps of two clips A (queries: the
generated / emotional clip) and B (keys: the input / neutral clip) into
matching sets of L2-normalised vectors, index i of A matching index i of B:

    spatial VD   f(p) - f(q) for each anchor p and its 8 neighbours q       groups: frames
    spatial CM   cosine-correlation row of each anchor against all sampled
                 positions (anchors and neighbours)                        groups: frames
    temporal VD  f_i(p) - f_j(p) for each frame pair i < j and position p  groups: clips
    temporal CM  row i of the T x T cosine-correlation matrix at position p groups: clips

PatchNCE (stccl.core.losses) and the diagnostic (stccl.core.diagnose) compare vectors
within a group. Positions are drawn once per call of `sample_positions` (once
per batch) and shared by A and B and by every frame, as the method requires.
Gathering uses index tensors; there is no Python loop over positions or pairs.

Choices the spec leaves open (documented in the README):
- anchors lie in the central square of side ~0.95 H and at least one cell from
  the border, so all 8 neighbours exist without wrap-around; S_l is capped at
  the number of such cells (a 4 x 4 map has 4);
- spatial CM uses the de-duplicated set of anchors and neighbours as columns
  and one row per anchor (a neighbour shared by two anchors is one column, so
  no two columns are copies of each other); CM rows are centred and
  L2-normalised before PatchNCE, so rows compare by the pattern of their
  correlations (Pearson-like), not by the common offset near 1;
- temporal positions come from the same central square (no neighbour needed,
  so the border cells are allowed), N_l = temporal_factor * S_l capped at what fits;
- the adaptive weight of a CM row is the mean of the weights h of the raw
  disparities behind it (anchor vs its neighbours; frame i vs the other frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Kind = Literal["spatial", "temporal"]
Variant = Literal["vd", "cm"]

# (dy, dx) of the 8 neighbours, row-major, centre excluded
NEIGHBOUR_OFFSETS = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)])


@dataclass(frozen=True)
class StageSample:
    """Positions for one stage, as flat indices y * W + x into an H x W map."""

    height: int
    width: int
    anchors: torch.Tensor     # (S,) long
    neighbours: torch.Tensor  # (S, 8) long
    temporal: torch.Tensor    # (N,) long

    @property
    def has_anchors(self) -> bool:
        return self.anchors.numel() > 0

    def to(self, device: torch.device) -> "StageSample":
        return StageSample(self.height, self.width, self.anchors.to(device), self.neighbours.to(device),
                           self.temporal.to(device))


def central_cells(height: int, width: int, central: float = 0.95, margin: int = 0) -> torch.Tensor:
    """Flat indices of the cells inside the central square (side ~central * size), `margin` cells from the border."""
    def axis(n: int) -> torch.Tensor:
        side = max(1, int(round(central * n)))
        lo = (n - side) // 2
        lo, hi = max(lo, margin), min(lo + side - 1, n - 1 - margin)
        return torch.arange(lo, hi + 1)

    ys, xs = axis(height), axis(width)
    return (ys[:, None] * width + xs[None, :]).flatten()  # (cells,)


def sample_stage(height: int, width: int, n_spatial: int, n_temporal: int, central: float = 0.95,
                 generator: torch.Generator | None = None) -> StageSample:
    """Draw S anchors (1 cell inside the border) and N temporal positions, without replacement."""
    # A map smaller than 3 x 3 (e.g. stage 4 of a 32 px input) has no anchor with 8 neighbours: it gets
    # no anchors and the spatial terms skip that stage (`StageSample.has_anchors`).
    anchor_cells = central_cells(height, width, central, margin=1)
    pick = torch.randperm(anchor_cells.numel(), generator=generator)[:max(1, n_spatial)]
    anchors = anchor_cells[pick]  # (S,)
    offsets = NEIGHBOUR_OFFSETS[:, 0] * width + NEIGHBOUR_OFFSETS[:, 1]  # (8,)
    neighbours = anchors[:, None] + offsets[None, :]  # (S, 8)
    temporal_cells = central_cells(height, width, central, margin=0)
    pick_t = torch.randperm(temporal_cells.numel(), generator=generator)[:max(1, n_temporal)]
    return StageSample(height, width, anchors, neighbours, temporal_cells[pick_t])


def sample_positions(shapes: list[tuple[int, int]], spatial: tuple[int, ...], temporal_factor: int,
                     central: float = 0.95, generator: torch.Generator | None = None) -> list[StageSample]:
    """One StageSample per stage; `spatial[l]` anchors and temporal_factor * spatial[l] temporal positions."""
    return [sample_stage(h, w, s, temporal_factor * s, central, generator)
            for (h, w), s in zip(shapes, spatial)]


def flat_map(feat: torch.Tensor) -> torch.Tensor:
    # feat: (N, C, H, W) -> (N, H*W, C)
    return feat.flatten(2).transpose(1, 2)


@torch.no_grad()
def disparity_strength(d: torch.Tensor) -> torch.Tensor:
    """h = mean over channels of sigmoid(|d|); d: (..., C) -> (...). A weight, so no gradient."""
    return torch.sigmoid(d.abs()).mean(-1)


def _project(head: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(head(x), dim=-1)


def spatial_vd(flat: torch.Tensor, head: torch.nn.Module, s: StageSample, with_strength: bool = False):
    # flat: (N, HW, C) -> z: (N, S*8, D) normalised, h: (N, S*8) or None
    d = flat[:, s.anchors, None, :] - flat[:, s.neighbours, :]  # (N, S, 8, C)
    d = d.flatten(1, 2)  # (N, S*8, C)
    return _project(head, d), (disparity_strength(d) if with_strength else None)


def spatial_cm(flat: torch.Tensor, head: torch.nn.Module, s: StageSample, with_strength: bool = False):
    # flat: (N, HW, C) -> rows: (N, S, P) normalised, h: (N, S) or None
    S = s.anchors.numel()
    cols, inverse = torch.unique(torch.cat([s.anchors, s.neighbours.flatten()]), return_inverse=True)
    z = _project(head, flat[:, cols])  # (N, P, D)
    rows = z[:, inverse[:S]] @ z.transpose(1, 2)  # (N, S, P) cosine correlations
    h = None
    if with_strength:
        with torch.no_grad():
            d = flat[:, s.anchors, None, :] - flat[:, s.neighbours, :]  # (N, S, 8, C)
            h = disparity_strength(d).mean(-1)  # (N, S)
    return _profile(rows), h


def _profile(rows: torch.Tensor) -> torch.Tensor:
    """Centre each correlation row, then L2-normalise: rows compare by their pattern, not by the
    common offset (untrained features correlate ~1 everywhere, which would make every row alike)."""
    return F.normalize(rows - rows.mean(-1, keepdim=True), dim=-1)


def frame_pairs(T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ij = torch.triu_indices(T, T, offset=1, device=device)  # (2, T(T-1)/2), i < j
    return ij[0], ij[1]


def temporal_vd(seq: torch.Tensor, head: torch.nn.Module, with_strength: bool = False):
    # seq: (B, T, N, C) features at the sampled positions -> z: (B, P*N, D), h: (B, P*N)
    i, j = frame_pairs(seq.shape[1], seq.device)
    d = (seq[:, i] - seq[:, j]).flatten(1, 2)  # (B, P*N, C), index = pair * N + position
    return _project(head, d), (disparity_strength(d) if with_strength else None)


def temporal_cm(seq: torch.Tensor, head: torch.nn.Module, with_strength: bool = False):
    # seq: (B, T, N, C) -> rows: (B, N*T, T) normalised, h: (B, N*T)
    B, T = seq.shape[:2]
    z = _project(head, seq).transpose(1, 2)  # (B, N, T, D)
    rows = (z @ z.transpose(-1, -2)).flatten(1, 2)  # (B, N*T, T), index = position * T + frame
    h = None
    if with_strength:
        x = seq.detach().transpose(1, 2)  # (B, N, T, C)
        hij = disparity_strength(x[:, :, :, None, :] - x[:, :, None, :, :])  # (B, N, T, T)
        off_diag = 1.0 - torch.eye(T, device=seq.device, dtype=seq.dtype)
        h = ((hij * off_diag).sum(-1) / max(T - 1, 1)).flatten(1, 2)  # (B, N*T)
    return _profile(rows), h


def correlation_vectors(kind: Kind, variant: Variant, head: torch.nn.Module, feat_a: torch.Tensor,
                        feat_b: torch.Tensor, s: StageSample, T: int, with_strength: bool = False):
    """Matching (queries from A, keys from B, strength h of A's raw disparities) for one stage.

    feat_a, feat_b: (B*T, C, H, W) stage maps of the two clips, frames of a clip consecutive.
    Returns q: (G, Q, D), k: (G, Q, D) with no gradient, h: (G, Q) or None;
    G = B*T frames for spatial, B clips for temporal.
    """
    fa, fb = flat_map(feat_a), flat_map(feat_b)  # (B*T, HW, C)
    if kind == "spatial":
        fn = spatial_vd if variant == "vd" else spatial_cm
        q, h = fn(fa, head, s, with_strength)
        with torch.no_grad():
            k, _ = fn(fb, head, s)
        return q, k, h
    fn = temporal_vd if variant == "vd" else temporal_cm
    seq_a = fa[:, s.temporal].unflatten(0, (-1, T))  # (B, T, N, C)
    q, h = fn(seq_a, head, with_strength)
    with torch.no_grad():
        k, _ = fn(fb[:, s.temporal].unflatten(0, (-1, T)), head)
    return q, k, h
