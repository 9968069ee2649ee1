"""IResNet backbone: stage shapes, gradients, and insightface state-dict compatibility."""

import pytest
import torch

from stccl.core.backbone import ARCHS, IResNet, from_insightface, load_insightface_state
from stccl.io import StcclError
from stccl.core.metric_net import MetricNet, MetricNetConfig


@pytest.mark.parametrize("arch", ["iresnet_tiny", "iresnet_small"])
def test_stage_shapes_and_finite_gradients(arch):
    torch.manual_seed(0)
    net = IResNet(arch)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    feats = net(x)
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // 2 ** (i + 1), 64 // 2 ** (i + 1))
                                              for i, c in enumerate(ARCHS[arch].widths)]
    sum(f.square().mean() for f in feats).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_arcface_layout():
    net = IResNet("iresnet18")
    assert net.conv1.stride == (1, 1) and net.conv1.kernel_size == (3, 3)
    for i in range(1, 5):
        layer = getattr(net, f"layer{i}")
        assert layer[0].conv2.stride == (2, 2) and all(b.conv2.stride == (1, 1) for b in layer[1:])
        assert len(layer) == ARCHS["iresnet18"].blocks[i - 1]
    keys = set(net.state_dict())
    for k in ["conv1.weight", "bn1.running_mean", "prelu.weight", "layer1.0.bn1.weight", "layer1.0.conv1.weight",
              "layer1.0.bn2.bias", "layer1.0.prelu.weight", "layer1.0.conv2.weight", "layer1.0.bn3.running_var",
              "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight", "layer4.1.conv2.weight"]:
        assert k in keys, k
    assert not any(k.startswith(("fc.", "features.", "bn2.")) for k in keys)


def _arcface_state(arch="iresnet_tiny"):
    """A state dict shaped like arcface_torch's: backbone keys plus the embedding head."""
    torch.manual_seed(1)
    net = IResNet(arch)
    for p in net.parameters():
        p.data.normal_()
    state = dict(net.state_dict())
    c = ARCHS[arch].widths[-1]
    state.update({"bn2.weight": torch.ones(c), "bn2.bias": torch.zeros(c), "bn2.running_mean": torch.zeros(c),
                  "bn2.running_var": torch.ones(c), "bn2.num_batches_tracked": torch.tensor(0),
                  "fc.weight": torch.zeros(512, c * 16), "fc.bias": torch.zeros(512),
                  "features.weight": torch.ones(512), "features.bias": torch.zeros(512),
                  "features.running_mean": torch.zeros(512), "features.running_var": torch.ones(512),
                  "features.num_batches_tracked": torch.tensor(0)})
    return net, state


def test_insightface_round_trip(tmp_path):
    net, state = _arcface_state()
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    loaded = from_insightface(path, arch="iresnet_tiny").eval()
    x = torch.rand(1, 3, 64, 64)
    net.eval()
    for a, b in zip(net(x), loaded(x)):
        assert torch.allclose(a, b)
    # a DataParallel ("module.") prefix is accepted too
    loaded2 = from_insightface({f"module.{k}": v for k, v in state.items()}, arch="iresnet_tiny")
    assert torch.equal(loaded2.conv1.weight, net.conv1.weight)


def test_insightface_errors_name_keys(tmp_path):
    _, state = _arcface_state()
    broken = dict(state)
    del broken["layer2.0.conv1.weight"]
    broken["layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(StcclError, match=r"layer2\.0\.conv1\.weight.*layer5\.0\.conv1\.weight"):
        load_insightface_state(broken, "iresnet_tiny")
    with pytest.raises(StcclError, match="iresnet_small"):  # wrong arch: the error lists the choices
        load_insightface_state(state, "iresnet_small")
    with pytest.raises(StcclError, match="not found"):
        from_insightface(tmp_path / "missing.pth")


def test_metric_net_heads_are_registered():
    net = MetricNet(MetricNetConfig("iresnet_tiny"))
    names = {n for n, _ in net.named_parameters()}
    assert all(any(n.startswith(f"heads.{i}.") for n in names) for i in range(4))
    opt = torch.optim.Adam(net.parameters())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) in in_opt for p in net.parameters())
    assert len(in_opt) == len(list(net.parameters()))
