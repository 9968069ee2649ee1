"""The NED-like generator: landmark regressor, RBF landmark warp, manipulator, and its place in training."""

from __future__ import annotations

import pytest
import torch

from stccl.io import StcclError
from stccl.spfem.expression import NUM_LANDMARKS, ExpressionGenerator, LandmarkRegressor, rbf_warp
from stccl.spfem.generator import GeneratorConfig, build_generator

EXPR_G = GeneratorConfig(base_channels=8, code_dim=16, output="expression", manipulator_hidden=32)


def _points(N=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.3 + 0.4 * torch.rand(N, NUM_LANDMARKS, 2, generator=g)


def test_rbf_warp_without_displacement_is_the_identity():
    img = torch.rand(2, 3, 32, 32)
    p = _points()
    assert torch.allclose(rbf_warp(img, p, p.clone()), img, atol=1e-6)


def test_rbf_warp_moves_a_point_to_its_target_and_keeps_the_far_background():
    # a bright 3x3 square centred at (12.5, 12.5) px of a 32 px image; its centre point moves 4 px right
    img = torch.zeros(1, 3, 32, 32)
    img[..., 11:14, 11:14] = 1.0
    src = torch.tensor([[[12.5 / 32, 12.5 / 32]]])
    dst = torch.tensor([[[16.5 / 32, 12.5 / 32]]])
    out = rbf_warp(img, src, dst, sigma=0.1)
    assert float(out[0, 0, 12, 16]) > 0.9          # the square is now centred at x = 16.5 px
    assert float(out[0, 0, 12, 12]) < 0.5          # and gone from where it was
    far = torch.zeros(1, 3, 32, 32)
    far[..., 30:, 30:] = 1.0                        # a corner 0.5 of the side away barely moves
    assert torch.allclose(rbf_warp(far, src, dst, sigma=0.1)[..., 31, 31], far[..., 31, 31], atol=1e-3)


def test_rbf_warp_is_differentiable_in_the_target_and_checks_shapes():
    img = torch.rand(2, 3, 16, 16)
    src = _points()
    dst = (src + 0.02).requires_grad_(True)
    rbf_warp(img, src, dst).sum().backward()
    assert dst.grad is not None and torch.isfinite(dst.grad).all() and dst.grad.abs().sum() > 0
    with pytest.raises(StcclError, match="must both be"):
        rbf_warp(img, src, src[:, :3])


def test_landmark_regressor_shape_and_any_input_size():
    net = LandmarkRegressor((8, 16), 3)
    for side in (32, 64):
        out = net(torch.rand(3, 3, side, side))
        assert out.shape == (3, NUM_LANDMARKS, 2)
    # the zero-initialised head starts at the buffer `mean` (set to the train landmarks' mean by the aux trainer)
    assert torch.allclose(out, torch.full_like(out, 0.5))


def test_untrained_expression_generator_copies_and_learns_through_the_warp():
    torch.manual_seed(0)
    G = build_generator(EXPR_G)
    assert isinstance(G, ExpressionGenerator)
    x = torch.rand(2, 3, 3, 32, 32)
    y, aux = G(x, emotion=torch.tensor([1, 4]), return_aux=True)
    assert torch.allclose(y, x, atol=1e-6)  # zero-initialised manipulator: no change
    assert aux["flow"].shape == (6, NUM_LANDMARKS, 2) and aux["mask"].shape == (2, 3, 1, 32, 32)
    torch.nn.init.normal_(G.manipulator[-1].weight, std=0.5)  # now it edits, differently per label
    a, b = G(x, emotion=torch.tensor([1, 1])), G(x, emotion=torch.tensor([4, 4]))
    assert (a - b).abs().max() > 1e-3
    a.mean().backward()
    assert G.manipulator[0].weight.grad is not None and G.emotion_embed.weight.grad is not None
    # the estimator is frozen: no gradient, and train() leaves it in eval mode (its batch norm statistics stay)
    assert all(p.grad is None and not p.requires_grad for p in G.landmark_net.parameters())
    G.train()
    assert not G.landmark_net.training and G.manipulator.training
    with pytest.raises(StcclError, match="exactly one of `emotion`"):
        G(x)


def test_expression_generator_edit_is_bounded():
    G = build_generator(GeneratorConfig(code_dim=8, output="expression", manipulator_hidden=16, max_shift=0.03))
    torch.nn.init.constant_(G.manipulator[-1].bias, 100.0)  # saturate
    lm, target = G.edit(torch.rand(2, 3, 32, 32), torch.zeros(2, 8))
    assert float((target - lm).abs().max()) <= 0.03 + 1e-6


def test_emotion_mean_shifts_average_per_actor_changes_from_neutral():
    from stccl.spfem.expression import emotion_mean_shifts

    # actor 0: neutral at 0, happy at +0.1; actor 1: neutral at 0.5, happy at 0.8 (+0.3); sad only for actor 1
    lm = torch.tensor([0.0, 0.0, 0.1, 0.5, 0.8, 0.6]).view(6, 1, 1).expand(6, 2, 2).clone()
    actor = torch.tensor([0, 0, 0, 1, 1, 1])
    emotion = torch.tensor([0, 0, 1, 0, 1, 2])
    shifts = emotion_mean_shifts(lm, actor, emotion, num_emotions=4)
    assert shifts.shape == (4, 2, 2)
    assert torch.allclose(shifts[0], torch.zeros(2, 2))
    assert torch.allclose(shifts[1], torch.full((2, 2), 0.2))   # mean of +0.1 and +0.3
    assert torch.allclose(shifts[2], torch.full((2, 2), 0.1))   # actor 1 only
    assert torch.allclose(shifts[3], torch.zeros(2, 2))         # nobody shows it: no change


def test_expression_generator_trains_with_landmark_aux_nets(micro_root, tmp_path):
    """train-spfem with output: expression trains the landmark regressor and the landmark emotion classifier,
    copies the regressor into the generator, builds the expression basis, and the run folder loads back with
    both."""
    from stccl.spfem.aux_nets import load_aux_nets
    from stccl.spfem.config import AuxConfig
    from stccl.spfem.evaluate import baseline_output_fn
    from stccl.spfem.train import SpfemConfig, load_generator, train_spfem

    aux = AuxConfig(frame_stride=4, steps=30, batch_size=8)
    cfg = SpfemConfig(data_root=str(micro_root), clip_frames=2, batch_size=2, steps=2, log_every=1, threads=1,
                      p_reference=0.5, cls_on="landmarks", lambda_flow=1.0, aux=aux,
                      generator=GeneratorConfig(base_channels=8, code_dim=16, output="expression",
                                                manipulator_hidden=32, expression_basis=4))
    run = train_spfem(cfg, tmp_path / "run", progress=False)
    nets = load_aux_nets(micro_root, ["landmarks", "emotion_landmarks"], aux, progress=False,
                         train_if_missing=False)
    G, _ = load_generator(run)
    assert isinstance(G, ExpressionGenerator)
    flat = G.basis.flatten(1)  # built from the train identities' landmarks and saved with the weights
    assert torch.allclose(flat @ flat.T, torch.eye(4), atol=1e-4)
    for k, v in nets["landmarks"].state_dict().items():
        assert torch.equal(G.landmark_net.state_dict()[k], v)
    frames = torch.rand(3, 3, 64, 64)
    assert nets["emotion_landmarks"](nets["landmarks"](frames)).shape == (3, 7)
    # the statistical manipulator renders through the same warp and keeps the frame size
    from stccl.data.mead import EMOTIONS
    shifted = baseline_output_fn("landmark_shift", micro_root, 64, aux)(frames, EMOTIONS.index("happy"), None)
    assert shifted.shape == frames.shape and not torch.equal(shifted, frames)


def test_landmark_basis_finds_the_shared_motion_not_the_face_differences():
    from stccl.spfem.expression import landmark_basis

    g = torch.Generator().manual_seed(0)
    mode = torch.zeros(NUM_LANDMARKS, 2)
    mode[7:9, 1] = 1.0  # both mouth corners move up and down together
    mode = mode / mode.norm()
    faces = 0.5 + 0.1 * torch.rand(3, NUM_LANDMARKS, 2, generator=g)  # three actors with different shapes
    actor = torch.arange(3).repeat_interleave(50)
    amount = 0.05 * torch.randn(150, generator=g)
    lm = faces[actor] + amount[:, None, None] * mode + 1e-4 * torch.randn(150, NUM_LANDMARKS, 2, generator=g)
    basis = landmark_basis(lm, actor, 2)
    assert basis.shape == (2, NUM_LANDMARKS, 2)
    flat = basis.flatten(1)
    assert torch.allclose(flat @ flat.T, torch.eye(2), atol=1e-5)          # orthonormal
    assert abs(float((flat[0] * mode.flatten()).sum())) > 0.99           # the first mode is the planted one
    with pytest.raises(StcclError, match="expression_basis"):
        landmark_basis(lm, actor, 0)


def test_basis_generator_moves_landmarks_only_along_the_modes():
    cfg = GeneratorConfig(code_dim=8, output="expression", manipulator_hidden=16, expression_basis=2, max_shift=0.1)
    G = build_generator(cfg)
    basis = torch.zeros(2, NUM_LANDMARKS, 2)
    basis[0, 7, 1] = basis[0, 8, 1] = 2 ** -0.5  # mouth corners up/down
    basis[1, 2, 1] = basis[1, 4, 1] = 2 ** -0.5  # inner brows up/down
    G.set_basis(basis)
    torch.nn.init.normal_(G.manipulator[-1].weight, std=1.0)
    lm, target = G.edit(torch.rand(4, 3, 32, 32), torch.randn(4, 8))
    moved = (target - lm).abs().sum(0)  # (L, 2)
    assert float(moved[[7, 8, 2, 4], 1].sum()) > 0
    moved[[7, 8, 2, 4], 1] = 0
    assert float(moved.max()) < 1e-6                                      # nothing else moves
    with pytest.raises(StcclError, match="expression basis"):
        G.set_basis(torch.zeros(3, NUM_LANDMARKS, 2))
    # and the basis is part of the weights: a run folder restores it
    G2 = build_generator(cfg)
    G2.load_state_dict(G.state_dict())
    assert torch.equal(G2.basis, basis)


def test_the_unet_class_and_the_config_refuse_the_expression_settings_they_cannot_run(tmp_path):
    from stccl.spfem.config import load_spfem_config
    from stccl.spfem.generator import Generator

    with pytest.raises(StcclError, match="build_generator"):
        Generator(EXPR_G)  # it would silently run as a warp
    cfg = tmp_path / "s.yaml"
    cfg.write_text("cls_on: landmarks\ngenerator: {output: warp, code_map: 4, flow_from_features: false}\n")
    with pytest.raises(StcclError, match="cls_on: landmarks"):
        load_spfem_config(cfg)
