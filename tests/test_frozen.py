"""The frozen fast path: folded batch norms, inference mode, channels last, and autocast (stccl.core.frozen)."""

import pytest
import torch

from stccl.core.backbone import IResNet
from stccl.core.correlation import sample_positions
from stccl.core.frozen import FastPath, FrozenIResNet, autocast_context
from stccl.io import StcclError
from stccl.core.losses import STCCLLoss, STCCLOptions
from stccl.core.metric_net import MetricNet, MetricNetConfig
from stccl.core.train_metric import MetricObjective

SMALL = STCCLOptions(spatial_samples=(8, 4, 2, 2), temporal_factor=2)


def _randomise_bn(module: torch.nn.Module, seed: int) -> None:
    """BN statistics and affine parameters far from identity, so every fold actually does something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.normal_(1, 0.2, generator=g)
                m.bias.normal_(0, 0.2, generator=g)


def _metric_net(seed: int = 0) -> MetricNet:
    torch.manual_seed(seed)
    net = MetricNet(MetricNetConfig(arch="iresnet_tiny"))
    _randomise_bn(net, seed)
    return net


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("size", [48, 37])  # odd: stride-2 maps with a padded last row
@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_backbone_matches_the_unfused_one_in_fp32(size, channels_last):
    torch.manual_seed(0)
    net = IResNet("iresnet_tiny")
    _randomise_bn(net, 1)
    net.eval().requires_grad_(False)
    fast = FrozenIResNet(net)
    if channels_last:
        fast.to_channels_last()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x0 = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(2))
    # features and the gradient to the input under a fixed random readout
    weights = None
    grads = []
    for f in (net, fast):
        x = x0.clone().requires_grad_(True)
        feats = f(x)
        if weights is None:
            ref = [t.detach() for t in feats]
            weights = [torch.randn(t.shape, generator=torch.Generator().manual_seed(3)) for t in feats]
        else:
            for a, b in zip(feats, ref):
                assert a.shape == b.shape
                assert _rel(a.detach(), b) < 1e-4
        sum((t * w).sum() for t, w in zip(feats, weights)).backward()
        grads.append(x.grad)
    assert _rel(grads[1], grads[0]) < 1e-4


def test_folding_needs_eval_mode():
    with pytest.raises(StcclError, match="eval"):
        FrozenIResNet(IResNet("iresnet_tiny").train())


def _step(loss_fn: STCCLLoss, x: torch.Tensor, gen0: torch.Tensor):
    torch.manual_seed(5)  # same sampled positions for every path
    gen = gen0.clone().requires_grad_(True)
    loss, _ = loss_fn(x, gen)
    loss.backward()
    return loss.detach(), gen.grad


def _clips(seed: int = 100):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 3, 48, 48, generator=g)  # (B, T, 3, H, W)
    return x, (x + 0.1 * torch.rand(x.shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("speed", [FastPath(fold_bn=True), FastPath(inference_mode=True),
                                   FastPath(channels_last=True), FastPath.fast()],
                         ids=["fold", "inference", "channels_last", "fast"])
def test_fast_path_gives_the_plain_loss_and_gradient(speed):
    x, gen0 = _clips()
    loss0, grad0 = _step(STCCLLoss(_metric_net(), SMALL), x, gen0)
    loss1, grad1 = _step(STCCLLoss(_metric_net(), SMALL, speed), x, gen0)
    assert abs(float(loss1 - loss0)) <= 1e-5 * abs(float(loss0))
    # fp32 rounding of a reordered sum, amplified by normalising small disparities: ~5e-5 measured
    assert _rel(grad1, grad0) < 1e-3


def test_fast_path_adds_no_state_and_refolds_on_load():
    plain = STCCLLoss(_metric_net(0), SMALL)
    fast = STCCLLoss(_metric_net(0), SMALL, FastPath.fast())
    assert fast.state_dict().keys() == plain.state_dict().keys()
    other = _metric_net(7).state_dict()
    plain.net.load_state_dict(other)
    fast.load_state_dict({f"net.{k}": v for k, v in other.items()})  # the fold must follow the new weights
    x, gen0 = _clips()
    loss0, _ = _step(plain, x, gen0)
    loss1, _ = _step(fast, x, gen0)
    assert abs(float(loss1 - loss0)) <= 1e-5 * abs(float(loss0))


def test_bf16_autocast_loss_is_close_to_fp32_on_cpu():
    # Stated tolerance: 2 % of the loss (measured 0.2-0.8 % over four seeds; the backbone runs in
    # bf16, the loss itself in fp32). bf16 gradients differ more (cosine to fp32 ~0.93-0.99).
    x, gen0 = _clips()
    loss0, _ = _step(STCCLLoss(_metric_net(), SMALL), x, gen0)
    loss1, grad1 = _step(STCCLLoss(_metric_net(), SMALL, FastPath.fast(amp="bf16")), x, gen0)
    assert loss1 != loss0  # autocast was really on
    assert abs(float(loss1 - loss0)) <= 0.02 * abs(float(loss0))
    assert grad1.dtype == torch.float32 and torch.isfinite(grad1).all()

    # metric training: the same tolerance for the training objective
    net = _metric_net()
    samples = sample_positions([(24, 24), (12, 12), (6, 6), (3, 3)], SMALL.spatial_samples, SMALL.temporal_factor)
    neutral, emotional = _clips(3)
    with torch.no_grad():
        ref, _ = MetricObjective(net, SMALL)(neutral, emotional, samples)
        low, _ = MetricObjective(net, SMALL, amp="bf16")(neutral, emotional, samples)
    assert low != ref
    assert abs(float(low - ref)) <= 0.02 * abs(float(ref))


def test_fp16_autocast_on_cpu_is_an_error_naming_the_option():
    with pytest.raises(StcclError, match="fp16 needs a CUDA"):
        autocast_context("fp16", "cpu")
    with pytest.raises(StcclError, match="amp"):
        autocast_context("fp8", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast is a CUDA path")
def test_fp16_loss_on_cuda_is_close_to_fp32():  # not run on the CPU-only kit machine
    x, gen0 = (t.cuda() for t in _clips())
    loss0, _ = _step(STCCLLoss(_metric_net(), SMALL).cuda(), x, gen0)
    loss1, grad1 = _step(STCCLLoss(_metric_net(), SMALL, FastPath.fast(amp="fp16")).cuda(), x, gen0)
    assert abs(float(loss1 - loss0)) <= 0.02 * abs(float(loss0))
    assert torch.isfinite(grad1).all()
