"""Position sampling (never leaves the map, no wrap-around) and the SCC/TCC feature builders."""

import pytest
import torch
import torch.nn as nn

from stccl.core.correlation import (central_cells, correlation_vectors, sample_positions, sample_stage, spatial_cm,
                               spatial_vd, temporal_cm, temporal_vd)


@pytest.mark.parametrize("hw", [(2, 2), (3, 3), (4, 4), (7, 7), (8, 8), (16, 16), (32, 32), (14, 20)])
def test_neighbour_sampling_never_leaves_the_map(hw):
    H, W = hw
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        s = sample_stage(H, W, 32, 256, generator=g)
        ay, ax = s.anchors // W, s.anchors % W
        ny, nx = s.neighbours // W, s.neighbours % W
        assert ((ay >= 1) & (ay <= H - 2) & (ax >= 1) & (ax <= W - 2)).all()
        assert ((ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)).all()
        # a true 8-neighbourhood: no wrap-around to the other side of the map
        dy, dx = ny - ay[:, None], nx - ax[:, None]
        assert (dy.abs() <= 1).all() and (dx.abs() <= 1).all() and ((dy != 0) | (dx != 0)).all()
        assert s.anchors.numel() == 0 or len(set(zip(dy[0].tolist(), dx[0].tolist()))) == 8
        assert s.anchors.unique().numel() == s.anchors.numel()  # without replacement
        assert ((s.temporal >= 0) & (s.temporal < H * W)).all()
        assert s.temporal.unique().numel() == s.temporal.numel()


def test_counts_are_capped_at_what_fits():
    assert sample_stage(2, 2, 4, 8).anchors.numel() == 0  # no cell has 8 neighbours: spatial skips the stage
    s = sample_stage(4, 4, 32, 256)
    assert s.anchors.numel() == 4  # the 2 x 2 interior of a 4 x 4 map
    assert s.temporal.numel() == 16
    assert central_cells(32, 32, 0.95, margin=1).numel() == 30 * 30
    shapes = [(32, 32), (16, 16), (8, 8), (4, 4)]
    samples = sample_positions(shapes, (32, 16, 8, 4), 8)
    assert [x.anchors.numel() for x in samples] == [32, 16, 8, 4]
    assert [x.temporal.numel() for x in samples] == [256, 128, 64, 16]


class _Id(nn.Module):
    def forward(self, x):
        return x


def test_vectorised_gathers_match_a_direct_computation():
    torch.manual_seed(0)
    N, C, H, W, T = 6, 5, 8, 8, 3
    feat = torch.randn(N, C, H, W)
    flat = feat.flatten(2).transpose(1, 2)  # (N, HW, C)
    s = sample_stage(H, W, 4, 6)
    z, h = spatial_vd(flat, _Id(), s, with_strength=True)
    assert z.shape == (N, 4 * 8, C) and h.shape == (N, 4 * 8)
    a, k = 2, 5  # anchor 2, neighbour 5
    y, x = divmod(int(s.anchors[a]), W)
    dy, dx = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)][k]
    d = feat[:, :, y, x] - feat[:, :, y + dy, x + dx]  # (N, C)
    assert torch.allclose(z[:, a * 8 + k], d / d.norm(dim=-1, keepdim=True), atol=1e-6)
    assert torch.allclose(h[:, a * 8 + k], torch.sigmoid(d.abs()).mean(-1), atol=1e-6)
    # temporal VD: index = pair * N + position, pairs (0,1), (0,2), (1,2)
    seq = flat[:, s.temporal].unflatten(0, (-1, T))  # (2, T, Np, C)
    zt, _ = temporal_vd(seq, _Id())
    Np = s.temporal.numel()
    d = seq[:, 0, 3] - seq[:, 2, 3]
    assert zt.shape == (2, 3 * Np, C)
    assert torch.allclose(zt[:, 1 * Np + 3], d / d.norm(dim=-1, keepdim=True), atol=1e-6)


def test_vd_and_cm_shapes():
    torch.manual_seed(0)
    B, T, C, H, W = 2, 4, 8, 8, 8
    head = nn.Linear(C, 2)
    fa, fb = torch.randn(B * T, C, H, W, requires_grad=True), torch.randn(B * T, C, H, W)
    s = sample_stage(H, W, 5, 10)
    flat = fa.flatten(2).transpose(1, 2)
    rows, h = spatial_cm(flat, head, s, with_strength=True)
    P = torch.unique(torch.cat([s.anchors, s.neighbours.flatten()])).numel()
    assert rows.shape == (B * T, 5, P) and h.shape == (B * T, 5)
    seq = flat[:, s.temporal].unflatten(0, (B, T))
    rows_t, h_t = temporal_cm(seq, head, with_strength=True)
    assert rows_t.shape == (B, 10 * T, T) and h_t.shape == (B, 10 * T)
    for kind, variant, shape in [("spatial", "vd", (B * T, 40, 2)), ("spatial", "cm", (B * T, 5, P)),
                                 ("temporal", "vd", (B, 6 * 10, 2)), ("temporal", "cm", (B, 10 * T, T))]:
        q, k, hq = correlation_vectors(kind, variant, head, fa, fb, s, T, with_strength=True)
        assert q.shape == shape and k.shape == shape and hq.shape == shape[:2]
        assert q.requires_grad and not k.requires_grad  # keys (clip B) are detached
        assert torch.allclose(q.norm(dim=-1), torch.ones(shape[:2]), atol=1e-5)
