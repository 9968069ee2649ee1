"""Correlation vectors and the diagnostic against values computed by hand with explicit loops.

Each test targets a bug that would leave shapes and finiteness intact: queries and keys taken from the
wrong clip, temporal groups mixing two clips, CM rows without centring, weights in another index order,
a "negative" that is the positive itself.
"""

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from stccl.core.correlation import StageSample, correlation_vectors
from stccl.core.diagnose import _other_index, official_measure, per_query_measure

B, T, C, H, W = 2, 3, 4, 5, 5


def _sample() -> StageSample:
    anchors = torch.tensor([6, 12, 18])  # (1, 1), (2, 2), (3, 3) of a 5 x 5 map
    offsets = [dy * W + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    neighbours = anchors[:, None] + torch.tensor(offsets)[None, :]
    return StageSample(H, W, anchors, neighbours, torch.tensor([0, 7, 13, 24]))


def _feats(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B * T, C, H, W, generator=g, dtype=torch.float64)  # frames of a clip consecutive


def _at(f: torch.Tensor, frame: int, cell: int) -> torch.Tensor:
    return f[frame, :, cell // W, cell % W]  # (C,)


def _h(d: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(d.abs()).mean()


def _profile(row: torch.Tensor) -> torch.Tensor:
    return F.normalize(row - row.mean(), dim=0)


def test_spatial_vd_queries_from_a_keys_from_b_weights_from_a():
    fa, fb, s = _feats(0), _feats(1), _sample()
    q, k, h = correlation_vectors("spatial", "vd", nn.Identity(), fa, fb, s, T, with_strength=True)
    assert q.shape == (B * T, 3 * 8, C)
    for frame, (ai, a), n in itertools.product(range(B * T), enumerate(s.anchors.tolist()), range(8)):
        idx = ai * 8 + n
        da = _at(fa, frame, a) - _at(fa, frame, int(s.neighbours[ai, n]))
        db = _at(fb, frame, a) - _at(fb, frame, int(s.neighbours[ai, n]))
        torch.testing.assert_close(q[frame, idx], F.normalize(da, dim=0))
        torch.testing.assert_close(k[frame, idx], F.normalize(db, dim=0))
        torch.testing.assert_close(h[frame, idx], _h(da))
    assert not k.requires_grad


def test_temporal_vd_groups_are_clips_and_never_mix_two():
    fa, fb, s = _feats(2), _feats(3), _sample()
    fa.requires_grad_(True)
    q, k, h = correlation_vectors("temporal", "vd", nn.Identity(), fa, fb, s, T, with_strength=True)
    pairs = [(i, j) for i in range(T) for j in range(i + 1, T)]
    N = len(s.temporal)
    assert q.shape == (B, len(pairs) * N, C)
    for b, (pi, (i, j)), (n, p) in itertools.product(range(B), enumerate(pairs), enumerate(s.temporal.tolist())):
        idx = pi * N + n  # index = pair * N + position
        da = _at(fa, b * T + i, p) - _at(fa, b * T + j, p)
        db = _at(fb, b * T + i, p) - _at(fb, b * T + j, p)
        torch.testing.assert_close(q[b, idx], F.normalize(da, dim=0))
        torch.testing.assert_close(k[b, idx], F.normalize(db, dim=0))
        torch.testing.assert_close(h[b, idx], _h(da))  # the weight of a query sits at the query's index
    # clip 0's queries depend on clip 0's frames only
    q[0].sum().backward()
    assert fa.grad[T:].abs().sum() == 0 and fa.grad[:T].abs().sum() > 0


def test_spatial_cm_rows_are_centred_correlation_profiles():
    fa, fb, s = _feats(4), _feats(5), _sample()
    q, k, h = correlation_vectors("spatial", "cm", nn.Identity(), fa, fb, s, T, with_strength=True)
    cols = sorted(set(s.anchors.tolist()) | set(s.neighbours.flatten().tolist()))
    assert q.shape == (B * T, 3, len(cols))
    for frame, (ai, a) in itertools.product(range(B * T), enumerate(s.anchors.tolist())):
        for f, out in ((fa, q), (fb, k)):
            za = F.normalize(_at(f, frame, a), dim=0)
            row = torch.stack([za @ F.normalize(_at(f, frame, c), dim=0) for c in cols])
            torch.testing.assert_close(out[frame, ai], _profile(row))
        hs = [_h(_at(fa, frame, a) - _at(fa, frame, int(nb))) for nb in s.neighbours[ai].tolist()]
        torch.testing.assert_close(h[frame, ai], torch.stack(hs).mean())


def test_temporal_cm_rows_and_weights_in_position_frame_order():
    fa, fb, s = _feats(6), _feats(7), _sample()
    q, k, h = correlation_vectors("temporal", "cm", nn.Identity(), fa, fb, s, T, with_strength=True)
    N = len(s.temporal)
    assert q.shape == (B, N * T, T)
    for b, (n, p), i in itertools.product(range(B), enumerate(s.temporal.tolist()), range(T)):
        idx = n * T + i  # index = position * T + frame
        for f, out in ((fa, q), (fb, k)):
            zi = F.normalize(_at(f, b * T + i, p), dim=0)
            row = torch.stack([zi @ F.normalize(_at(f, b * T + j, p), dim=0) for j in range(T)])
            torch.testing.assert_close(out[b, idx], _profile(row))
        hs = [_h(_at(fa, b * T + i, p) - _at(fa, b * T + j, p)) for j in range(T) if j != i]
        torch.testing.assert_close(h[b, idx], torch.stack(hs).mean())


def test_negatives_are_never_the_positive_itself():
    g = torch.Generator().manual_seed(0)
    for Q in (2, 3, 17):
        other = _other_index(50, Q, g, torch.device("cpu"))
        assert (other != torch.arange(Q)[None, :]).all() and other.min() >= 0 and other.max() < Q


def test_orthonormal_keys_give_exactly_zero_negatives():
    G, Q, D = 3, 6, 8
    k = torch.eye(D)[:Q].expand(G, Q, D).clone()  # orthonormal keys in every group
    q = k.clone()
    km = torch.roll(k, 1, dims=1)  # the mismatched window: every key moved to another index
    valid = torch.ones(G, Q, dtype=torch.bool)
    g = torch.Generator().manual_seed(1)
    pq = per_query_measure(q, k, km, valid, g)
    assert pq["pos"] == 1.0 and pq["neg"] == 0.0 and pq["pos_mismatched"] == 0.0
    off = official_measure(q, k, km, valid, g)
    assert off["pos"] == pytest.approx(1.0) and off["neg"] == 0.0 and off["pos_mismatched"] == 0.0


def test_excluded_queries_do_not_count():
    G, Q, D = 1, 4, 4
    k = torch.eye(D)[None]
    q = k.clone()
    q[0, 3] = -k[0, 3]  # query 3 disagrees with its key ...
    valid = torch.tensor([[True, True, True, False]])  # ... but the alignment excludes it
    zero = k.clone()
    zero[0, 0] = 0.0  # and a zero key (no disparity) is undefined
    pq = per_query_measure(q, zero, k, valid, torch.Generator().manual_seed(0))
    assert pq["pos"] == 1.0 and pq["defined"] == pytest.approx(0.5)
