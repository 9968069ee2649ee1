"""SPFEM generator, discriminator, training losses (with and without STCCL) and the trainer CLI."""

from __future__ import annotations

import json

import pytest
import torch

from stccl.data import synth
from stccl.spfem.aux_nets import NET_SPECS, EmotionClassifier, IdentityEmbedder
from stccl.cli import main as cli_main
from stccl.config import from_dict
from stccl.io import StcclError
from stccl.spfem.generator import (DiscriminatorConfig, Generator, GeneratorConfig, PatchDiscriminator,
                         random_other_emotion)
from stccl.spfem.train import SpfemConfig, SpfemLosses, load_generator

SMALL_G = GeneratorConfig(base_channels=8, num_down=1, num_res=1, code_dim=16)
SMALL_D = DiscriminatorConfig(base_channels=8, num_layers=2)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    root = tmp_path_factory.mktemp("spfem") / "micro"
    synth.synthesize(root, synth.make_config("tiny", n_identities=4, n_test=1, n_sentences=1, syllables=(3, 3),
                                             emotions=("neutral", "happy", "sad"), workers=2),
                     seed=5, progress=False)
    return root


def _clip(B=2, T=3, S=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, T, 3, S, S, generator=g)


@pytest.mark.parametrize("mode", ["label", "reference"])
def test_generator_forward_backward(mode):
    G = Generator(SMALL_G)
    x = _clip()
    kwargs = {"emotion": torch.tensor([1, 4])} if mode == "label" else {"reference": _clip(seed=1)}
    y, mask = G(x, return_mask=True, **kwargs)
    assert y.shape == x.shape and mask.shape == (2, 3, 1, 32, 32)
    assert float(y.detach().min()) >= 0.0 and float(y.detach().max()) <= 1.0
    y.mean().backward()
    used = [p for p in G.parameters() if p.grad is not None]
    assert used and all(torch.isfinite(p.grad).all() for p in used)
    # the optimiser sees every parameter (no module kept outside the registered tree)
    opt = torch.optim.Adam(G.parameters())
    n_opt = sum(p.numel() for grp in opt.param_groups for p in grp["params"])
    assert n_opt == sum(p.numel() for p in G.state_dict().values() if p.dtype.is_floating_point)


def test_generator_condition_changes_output():
    torch.manual_seed(0)
    G = Generator(SMALL_G)
    for p in G.modules():  # break FiLM's identity initialisation so the code matters
        if hasattr(p, "to_scale_shift"):
            torch.nn.init.normal_(p.to_scale_shift.weight, std=0.5)
    x = _clip(B=1)
    a = G(x, emotion=torch.tensor([1]))
    b = G(x, emotion=torch.tensor([2]))
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(StcclError, match="exactly one of `emotion`"):
        G(x)  # neither label nor reference
    with pytest.raises(StcclError, match="exactly one of `emotion`"):
        G(x, emotion=torch.tensor([1]), reference=x)  # both


@pytest.mark.parametrize("output", ["warp", "warp_blend"])
def test_warp_output_starts_at_identity_and_learns(output):
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(base_channels=8, num_down=1, num_res=1, code_dim=16, output=output))
    x = _clip(B=1)
    y = G(x, emotion=torch.tensor([2]))
    if output == "warp":
        assert torch.allclose(y, x, atol=1e-5)  # zero displacement: the input resampled on its own grid
    y.mean().backward()
    assert G.flow_head.weight.grad is not None and G.flow_head.weight.grad.abs().sum() > 0


def test_code_map_gives_label_a_direct_path():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(base_channels=8, num_down=1, num_res=1, code_dim=16, code_map=4))
    x = _clip(B=1)
    assert torch.allclose(G(x, emotion=torch.tensor([1])), G(x, emotion=torch.tensor([2])))  # zero-initialised
    G(x, emotion=torch.tensor([1])).mean().backward()
    assert G.code_to_map.weight.grad.abs().sum() > 0
    torch.nn.init.normal_(G.code_to_map.weight, std=0.5)
    assert (G(x, emotion=torch.tensor([1])) - G(x, emotion=torch.tensor([2]))).abs().max() > 1e-3


def test_generator_rejects_unknown_output():
    from stccl.io import StcclError

    with pytest.raises(StcclError, match="generator.output"):
        Generator(GeneratorConfig(base_channels=8, output="morph"))
    with pytest.raises(StcclError, match="code_map"):
        Generator(GeneratorConfig(base_channels=8, output="warp", flow_from_features=False))


def test_per_emotion_warp_moves_pixels_by_label_only():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(base_channels=8, num_down=1, num_res=1, code_dim=16, output="warp", code_map=4,
                                  flow_from_features=False, max_flow=0.2))
    torch.nn.init.normal_(G.code_to_flow.weight, std=1.0)
    x = _clip(B=2)
    a = G(x, emotion=torch.tensor([1, 1]))
    b = G(x, emotion=torch.tensor([2, 2]))
    assert (a - b).abs().max() > 1e-3
    # a warp only resamples: outputs stay inside each image's value range
    assert float(a.min()) >= float(x.min()) - 1e-6 and float(a.max()) <= float(x.max()) + 1e-6
    # a constant image is left unchanged by any displacement (border padding): no colour is invented
    flat = torch.full_like(x, 0.3)
    assert torch.allclose(G(flat, emotion=torch.tensor([1, 2])), flat, atol=1e-6)
    y = G(x, reference=_clip(seed=4))  # reference conditioning reaches the same field
    y.mean().backward()
    assert G.code_to_flow.weight.grad.abs().sum() > 0


def test_warp_residual_is_bounded_masked_and_returns_its_parts():
    torch.manual_seed(0)
    cfg = GeneratorConfig(base_channels=8, num_down=1, num_res=1, code_dim=16, output="warp_residual", code_map=4,
                          max_residual=0.1)
    G = Generator(cfg)
    torch.nn.init.normal_(G.code_to_map.weight, std=5.0)   # a large residual and mask wherever possible
    x = _clip(B=2)
    y, aux = G(x, emotion=torch.tensor([1, 2]), return_aux=True)
    assert aux["mask"].shape == (2, 3, 1, 32, 32) and aux["flow"].shape[1] == 2
    # zero displacement at init: the output is the input plus at most max_residual per channel, under the mask
    d = (y - x).abs()
    assert float(d.max()) <= cfg.max_residual + 1e-5 and float(d.max()) > 1e-3
    assert torch.all(d <= aux["mask"] * cfg.max_residual + 1e-5)
    (y.mean() + aux["mask"].mean()).backward()
    assert G.code_to_map.weight.grad.abs().sum() > 0 and G.flow_head.weight.grad.abs().sum() > 0


def test_pooled_residual_is_smooth():
    torch.manual_seed(0)
    x = _clip(B=1, S=32)
    rough = {}
    for pool in (1, 4):
        G = Generator(GeneratorConfig(base_channels=8, num_down=1, num_res=1, code_dim=16, output="warp_residual",
                                      residual_pool=pool))
        torch.nn.init.normal_(G.head[-1].weight, std=2.0)   # a large, per-pixel residual
        d = (G(x, emotion=torch.tensor([1])) - x)[0, 0]     # (3, H, W): the residual (zero displacement at init)
        rough[pool] = float((d[:, :, 1:] - d[:, :, :-1]).abs().mean() / d.abs().mean())
    assert rough[4] < 0.5 * rough[1]   # neighbouring pixels change together when pooled


@pytest.mark.parametrize("output", ["warp", "warp_residual"])
def test_edit_size_penalties_enter_the_generator_loss(output):
    torch.manual_seed(0)
    g = GeneratorConfig(base_channels=8, num_down=1, num_res=1, code_dim=16, output=output, code_map=4)
    emo = EmotionClassifier(NET_SPECS["emotion_train"]).eval().requires_grad_(False)
    ident = IdentityEmbedder(NET_SPECS["identity_train"], 3).eval().requires_grad_(False)
    x = _clip(B=1, T=3, S=64, seed=3)
    totals = {}
    for lm in (0.0, 5.0):
        cfg = SpfemConfig(generator=g, discriminator=SMALL_D, lambda_mask=lm, lambda_flow=lm)
        torch.manual_seed(0)
        G, D = Generator(g), PatchDiscriminator(SMALL_D)
        torch.nn.init.normal_(G.code_to_flow.weight, std=1.0)   # a non-zero displacement
        totals[lm], parts, _ = SpfemLosses(cfg, emo, ident).generator_loss(G, D, x, torch.tensor([0]),
                                                                           torch.tensor([4]))
    assert ("mask" in parts) == (output == "warp_residual") and float(parts["flow"]) > 0
    expected = 5.0 * (float(parts["flow"]) + float(parts.get("mask", 0.0)))
    assert float(totals[5.0] - totals[0.0]) == pytest.approx(expected, rel=1e-4)


def test_discriminator_patch_logits():
    D = PatchDiscriminator(SMALL_D)
    out = D(_clip())
    assert out.shape == (6, 1, 8, 8)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters())


def test_random_other_emotion_never_source():
    src = torch.arange(7).repeat(50)
    tgt = random_other_emotion(src, 7, torch.Generator().manual_seed(0))
    assert (tgt != src).all() and set(tgt.tolist()) == set(range(7))


def _losses(stccl_term=None, S=64):
    torch.manual_seed(0)
    cfg = SpfemConfig(generator=SMALL_G, discriminator=SMALL_D, stccl=stccl_term is not None,
                      stccl_checkpoint="unused" if stccl_term is not None else None)
    emo = EmotionClassifier(NET_SPECS["emotion_train"]).eval().requires_grad_(False)
    ident = IdentityEmbedder(NET_SPECS["identity_train"], 3).eval().requires_grad_(False)
    return cfg, SpfemLosses(cfg, emo, ident, stccl_term)


def _g_grads(losses, seed=0, S=64):
    torch.manual_seed(seed)
    G, D = Generator(SMALL_G), PatchDiscriminator(SMALL_D)
    x = _clip(B=1, T=3, S=S, seed=3)
    loss, parts, fake = losses.generator_loss(G, D, x, torch.tensor([0]), torch.tensor([4]))
    loss.backward()
    return {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}, parts, loss


def test_stccl_term_changes_generator_gradients_not_metric():
    from stccl.core.losses import STCCLLoss, STCCLOptions
    from stccl.core.metric_net import MetricNet, MetricNetConfig

    torch.manual_seed(1)
    metric = STCCLLoss(MetricNet(MetricNetConfig()), STCCLOptions(variant="vd", spatial_samples=(8, 4, 2, 1),
                                                                  temporal_factor=2))
    before = {k: v.clone() for k, v in metric.state_dict().items()}
    _, base = _losses(None)
    _, with_stccl = _losses(metric)
    g0, parts0, _ = _g_grads(base)
    g1, parts1, loss1 = _g_grads(with_stccl)
    assert "stccl" not in parts0 and torch.isfinite(parts1["stccl"]) and float(parts1["stccl"]) > 0
    # the same generator, batch and losses except STCCL: the generator's gradients differ
    diff = max(float((g0[n] - g1[n]).abs().max()) for n in g0)
    assert diff > 1e-6
    # and nothing reached (or changed) the frozen metric network
    assert all(p.grad is None and not p.requires_grad for p in metric.parameters())
    after = metric.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cls_jitter_moves_frames_and_keeps_shape():
    from stccl.spfem.train import _jitter

    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(_jitter(x, 0, 0.0), x)
    moved = [_jitter(x, 2, 0.0) for _ in range(8)]
    assert all(m.shape == x.shape for m in moved)
    assert any(not torch.equal(m, x) for m in moved)  # some offsets are non-zero
    # an offset only moves pixels: every output value is an input value of the same image
    assert all(set(m[0].flatten().tolist()) <= set(x[0].flatten().tolist()) for m in moved)


def test_discriminator_loss_detaches_generator():
    cfg, losses = _losses(None)
    G, D = Generator(SMALL_G), PatchDiscriminator(SMALL_D)
    x = _clip(B=1, T=2, S=32)
    fake = G(x, emotion=torch.tensor([3]))
    losses.discriminator_loss(D, x, fake).backward()
    assert all(p.grad is None for p in G.parameters())
    assert any(p.grad is not None for p in D.parameters())


def test_config_rejects_unknown_and_checks_stccl(tmp_path):
    from stccl.io import StcclError
    from stccl.spfem.train import load_spfem_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("lambda_stcl: 1.0\n")
    with pytest.raises(StcclError, match="lambda_stcl"):
        load_spfem_config(bad)
    nock = tmp_path / "nock.yaml"
    nock.write_text("stccl: true\n")
    with pytest.raises(StcclError, match="stccl_checkpoint"):
        load_spfem_config(nock)


def test_train_cli_resume_and_load(micro, tmp_path):
    cfg = tmp_path / "spfem.yaml"
    cfg.write_text(
        f"name: baseline\ndata_root: {micro}\nclip_frames: 2\nbatch_size: 2\nsteps: 4\nlog_every: 2\nckpt_every: 2\n"
        "p_reference: 0.5\nthreads: 1\n"
        "generator: {base_channels: 8, num_down: 1, num_res: 1, code_dim: 16}\n"
        "discriminator: {base_channels: 8, num_layers: 2}\n"
        "aux: {frame_stride: 4, steps: 5, batch_size: 8}\n")
    out = tmp_path / "run"
    assert cli_main(["train-spfem", "--config", str(cfg), "--out", str(out), "--steps", "2", "--no-progress"]) == 0
    # same folder without --resume is refused; with --resume and a different config too
    assert cli_main(["train-spfem", "--config", str(cfg), "--out", str(out), "--steps", "2", "--no-progress"]) == 2
    assert cli_main(["train-spfem", "--config", str(cfg), "--out", str(out), "--steps", "4", "--set", "lr_g=1e-3",
                     "--resume", "--no-progress"]) == 2
    assert cli_main(["train-spfem", "--config", str(cfg), "--out", str(out), "--steps", "4", "--resume",
                     "--no-progress"]) == 2  # steps is part of the config: changing it is a different run
    out2 = tmp_path / "run2"
    assert cli_main(["train-spfem", "--config", str(cfg), "--out", str(out2), "--no-progress"]) == 0
    records = [json.loads(line) for line in (out2 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert all(torch.isfinite(torch.tensor(r["loss_g"])) for r in records)
    assert {"g_adv", "g_cls", "g_rec", "g_cyc", "g_id", "g_cls_acc", "g_change"} <= set(records[-1])
    G, loaded = load_generator(out2)
    assert loaded.steps == 4 and isinstance(G, Generator)
    config = json.loads((out2 / "config.json").read_text())
    assert config["kind"] == "spfem" and from_dict(SpfemConfig, {k: v for k, v in config.items() if k != "kind"})


def test_resume_reproduces_uninterrupted_run(micro, tmp_path):
    from stccl.spfem.train import train_spfem

    cfg = SpfemConfig(data_root=str(micro), clip_frames=2, batch_size=2, steps=4, log_every=1, ckpt_every=2, threads=1,
                      p_reference=0.5, generator=SMALL_G, discriminator=SMALL_D,
                      aux=from_dict(type(SpfemConfig().aux), {"frame_stride": 4, "steps": 5, "batch_size": 8}))
    full = train_spfem(cfg, tmp_path / "full", progress=False)
    part = tmp_path / "part"
    train_spfem(cfg, part, progress=False, stop_at_step=2)  # interrupted after the step-2 checkpoint
    assert torch.load(part / "ckpt_last.pt", weights_only=False)["step"] == 2
    train_spfem(cfg, part, resume=True, progress=False)

    def losses(run):
        return [json.loads(line)["loss_g"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert len(losses(full)) == 4
    assert losses(part) == pytest.approx(losses(full), rel=1e-4)  # same batches and RNG after resume
