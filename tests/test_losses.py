"""PatchNCE, adaptive weighting, and the frozen plug-in STCCLLoss."""

import math
import pytest
import torch
import torch.nn.functional as F

from stccl.io import StcclError
from stccl.core.correlation import sample_positions
from stccl.core.losses import STCCLLoss, STCCLOptions, adaptive_weight, patch_nce, stccl_terms
from stccl.core.metric_net import MetricNet, MetricNetConfig
from stccl.runs import save_checkpoint
from stccl.config import to_dict

SMALL = STCCLOptions(spatial_samples=(8, 4, 2, 2), temporal_factor=2)


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_patch_nce_matches_cross_entropy_definition():
    q, k = _unit(2, 6, 4, seed=1), _unit(2, 6, 4, seed=2)
    logits = torch.einsum("gqd,gkd->gqk", q, k) / 0.1
    expected = -(logits.diagonal(dim1=1, dim2=2) - logits.logsumexp(-1)).mean()
    assert torch.allclose(patch_nce(q, k, tau=0.1), expected, atol=1e-5)


def test_identical_inputs_give_the_minimal_loss_and_permuting_raises_it():
    x = _unit(3, 16, 8)
    same = patch_nce(x, x, 0.07)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        perm = torch.randperm(16, generator=g)
        if (perm == torch.arange(16)).all():
            continue
        assert patch_nce(x, x[:, perm], 0.07) > same
    assert patch_nce(x, _unit(3, 16, 8, seed=5), 0.07) > same


def test_tau_scaling():
    x = _unit(2, 16, 8)
    # matched pairs: a sharper temperature makes the positive dominate more
    assert patch_nce(x, x, 0.05) < patch_nce(x, x, 0.07) < patch_nce(x, x, 0.5)
    # tau only rescales the logits: tau=t on q equals tau=1 on q/t
    q, k = _unit(2, 8, 4, seed=3), _unit(2, 8, 4, seed=4)
    assert torch.allclose(patch_nce(q, k, 0.2), patch_nce(q / 0.2, k, 1.0), atol=1e-5)


def test_adaptive_weight_is_per_query_and_one_below_theta():
    h = torch.tensor([[0.5, 0.8, 0.81, 0.95], [0.6, 0.9, 0.7, 1.0]])
    w = adaptive_weight(h, theta=0.8)
    assert w.shape == h.shape
    assert torch.equal(w[h <= 0.8], torch.ones(int((h <= 0.8).sum())))
    assert torch.allclose(w[h > 0.8], 2 * h[h > 0.8] ** 2)
    # weighting multiplies each query's own cross-entropy term
    q, k = _unit(2, 4, 4, seed=1), _unit(2, 4, 4, seed=2)
    ce = F.cross_entropy((q @ k.transpose(1, 2) / 0.07).flatten(0, 1), torch.arange(4).repeat(2),
                         reduction="none").view(2, 4)
    assert torch.allclose(patch_nce(q, k, 0.07, w, normalise_weight=False), (ce * w).mean(), atol=1e-5)
    # normalised (the default): weights scaled to mean 1 within each group, so the value stays a cross-entropy
    w_norm = w / w.mean(1, keepdim=True)
    assert torch.allclose(patch_nce(q, k, 0.07, w), (ce * w_norm).mean(), atol=1e-5)
    assert torch.allclose(patch_nce(q, k, 0.07, 3.0 * w), patch_nce(q, k, 0.07, w), atol=1e-6)
    assert torch.allclose(patch_nce(q, k, 0.07, torch.ones(2, 4)), patch_nce(q, k, 0.07))
    stats = {}
    patch_nce(q, k, 0.07, w, stats=stats)
    assert stats["ce"] == pytest.approx(float(ce.mean()), abs=1e-5) and stats["chance"] == pytest.approx(math.log(4))


def _clip(B=2, T=3, S=32, seed=0):
    return torch.rand(B, T, 3, S, S, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant,temporal_heads", [("vd", False), ("cm", False), ("both", False), ("both", True)])
def test_every_module_gets_finite_gradients(variant, temporal_heads):
    torch.manual_seed(0)
    net = MetricNet(MetricNetConfig("iresnet_tiny", temporal_heads=temporal_heads))
    assert (net.heads_for("temporal") is not net.heads) == temporal_heads
    # 48 px: stage 4 is 3 x 3, so its spatial head has an anchor even when temporal terms have their own heads
    x, y = _clip(S=48 if temporal_heads else 32), _clip(S=48 if temporal_heads else 32, seed=1)
    fa, fb = net(y.flatten(0, 1)), net(x.flatten(0, 1))
    terms = stccl_terms(net, fa, fb, 3, STCCLOptions(variant=variant, spatial_samples=(8, 4, 2, 2),
                                                            temporal_factor=2))
    expected = {"scc_vd", "tcc_vd", "scc_cm", "tcc_cm"} if variant == "both" else {f"scc_{variant}", f"tcc_{variant}"}
    assert set(terms) == expected
    sum(terms.values()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def _checkpoint(tmp_path, options=SMALL):
    torch.manual_seed(0)
    net = MetricNet(MetricNetConfig("iresnet_tiny"))
    cfg = {"kind": "metric", "net": to_dict(net.cfg), "loss": to_dict(options), "seed": 0, "T": 3}
    path = tmp_path / "ckpt_last.pt"
    save_checkpoint(path, {"model": net.state_dict(), "optimizer": None, "config": cfg, "step": 7, "rng": None,
                           "extra": {}})
    return path, net


def test_plugin_is_frozen_and_passes_gradients_only_to_the_generated_clip(tmp_path):
    path, _ = _checkpoint(tmp_path)
    loss_fn = STCCLLoss.from_checkpoint(path, variant="vd", lambda_S=2.0, lambda_T=3.0)
    loss_fn.train()  # inside a training generator the metric net must stay in eval mode
    assert not loss_fn.net.training
    assert all(not p.requires_grad for p in loss_fn.parameters())
    x = _clip().requires_grad_(True)
    gen = _clip(seed=1).requires_grad_(True)
    loss, parts = loss_fn.loss(x, gen)
    assert loss.dim() == 0 and set(parts) == {"scc_vd", "tcc_vd"}
    assert torch.allclose(loss.detach(), 2.0 * parts["scc_vd"] + 3.0 * parts["tcc_vd"])
    loss.backward()
    assert x.grad is None
    assert gen.grad is not None and torch.isfinite(gen.grad).all() and gen.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.parameters())


def test_plugin_options_and_errors(tmp_path):
    path, _ = _checkpoint(tmp_path)
    only_t = STCCLLoss.from_checkpoint(path, variant="cm", use_spatial=False, adaptive=False, tau=0.1)
    _, parts = only_t(_clip(), _clip(seed=1))
    assert set(parts) == {"tcc_cm"}
    with pytest.raises(StcclError, match="unknown option"):
        STCCLLoss.from_checkpoint(path, lambda_X=1.0)
    with pytest.raises(StcclError, match="variant"):
        STCCLLoss.from_checkpoint(path, variant="xy")
    with pytest.raises(StcclError, match="same shape"):
        only_t(_clip(T=3), _clip(T=2))
    foreign = tmp_path / "foreign.pt"
    save_checkpoint(foreign, {"model": {}, "config": {"kind": "spfem"}})
    with pytest.raises(StcclError, match="not a metric-network checkpoint"):
        STCCLLoss.from_checkpoint(foreign)


def test_identical_clips_score_lower_than_a_shuffled_clip(tmp_path):
    path, _ = _checkpoint(tmp_path)
    loss_fn = STCCLLoss.from_checkpoint(path, adaptive=False)
    x = _clip(B=2, T=3, seed=3)
    torch.manual_seed(0)
    same, _ = loss_fn(x, x)
    torch.manual_seed(0)  # the same sampled positions
    shuffled, _ = loss_fn(x, x[:, :, :, torch.randperm(32)])
    assert same < shuffled


def test_extra_negatives_join_every_query_of_the_group():
    q, k, extra = _unit(2, 5, 4, seed=1), _unit(2, 5, 4, seed=2), _unit(2, 3, 4, seed=3)
    logits = torch.cat([torch.einsum("gqd,gkd->gqk", q, k), torch.einsum("gqd,gkd->gqk", q, extra)], -1) / 0.1
    expected = -(logits.diagonal(dim1=1, dim2=2)[..., :5] - logits.logsumexp(-1)).mean()
    stats = {}
    assert torch.allclose(patch_nce(q, k, 0.1, stats=stats, extra_k=extra), expected, atol=1e-5)
    assert stats["chance"] == pytest.approx(math.log(8))
    assert patch_nce(q, k, 0.1, extra_k=extra) > patch_nce(q, k, 0.1)


def test_mismatched_spatial_negatives_take_the_other_clips_keys_at_the_same_positions():
    torch.manual_seed(0)
    net = MetricNet(MetricNetConfig("iresnet_tiny"))
    x, y, z = _clip(), _clip(seed=1), _clip(seed=2)
    fa, fb, fz = net(y.flatten(0, 1)), net(x.flatten(0, 1)), net(z.flatten(0, 1))
    opts = STCCLOptions(variant="vd", use_temporal=False, adaptive=False, spatial_samples=(8, 4, 2, 2),
                        temporal_factor=2, spatial_negatives="mismatched")
    frame = STCCLOptions(**{**to_dict(opts), "spatial_negatives": "frame"})
    with pytest.raises(StcclError, match="mismatched"):
        stccl_terms(net, fa, fb, 3, opts)
    samples = sample_positions([tuple(f.shape[-2:]) for f in fa], opts.spatial_samples, opts.temporal_factor)
    stats_m, stats_f = {}, {}
    with torch.no_grad():
        plain = stccl_terms(net, fa, fb, 3, frame, samples, stats_f)["scc_vd"]
        # a "mismatched" clip that is the matched one: every positive reappears among the negatives
        twin = stccl_terms(net, fa, fb, 3, opts, samples, stats_m, fb)["scc_vd"]
        other = stccl_terms(net, fa, fb, 3, opts, samples, None, fz)["scc_vd"]
    used = [s.has_anchors for s in samples]
    q_per_stage = [8 * s.anchors.numel() for s, u in zip(samples, used) if u]
    assert stats_m["scc_vd_chance"] == pytest.approx(sum(math.log(2 * n) for n in q_per_stage))
    assert stats_f["scc_vd_chance"] == pytest.approx(sum(math.log(n) for n in q_per_stage))
    # with every key doubled each query's partition function doubles: + log 2 per stage, exactly
    assert float(twin) == pytest.approx(float(plain) + sum(used) * math.log(2), abs=1e-4)
    assert plain < other


def test_the_plugin_loss_has_no_mismatched_clip_and_uses_frame_negatives(tmp_path):
    path, _ = _checkpoint(tmp_path, STCCLOptions(**{**to_dict(SMALL), "spatial_negatives": "mismatched"}))
    loss = STCCLLoss.from_checkpoint(path)
    assert loss.options.spatial_negatives == "frame"
    value, _ = loss(_clip(), _clip(seed=1))
    assert torch.isfinite(value)
