"""The insightface loader against a forward pass written independently in the test.

The state dict is assembled here from the arcface_torch key names (not from the kit's IResNet), with random
weights and non-trivial BatchNorm statistics, plus an ArcFace embedding head that the loader must ignore. The
reference forward uses only torch.nn.functional: the stem conv1-bn1-prelu, then per block
bn1-conv1-bn2-prelu-conv2(stride)-bn3 plus the (downsampled) shortcut; inputs in [0, 1] mapped to [-1, 1].
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stccl.core.backbone import from_insightface

# (blocks per stage, widths, stem): arcface_torch's layout at CPU sizes
ARCHS = {"iresnet_tiny": ((1, 1, 1, 1), (16, 32, 64, 128), 16),
         "iresnet_small": ((1, 2, 2, 1), (32, 64, 128, 256), 32)}


def _bn(state: dict, prefix: str, c: int, g: torch.Generator) -> None:
    state[f"{prefix}.weight"] = 1 + 0.2 * torch.randn(c, generator=g)
    state[f"{prefix}.bias"] = 0.1 * torch.randn(c, generator=g)
    state[f"{prefix}.running_mean"] = 0.1 * torch.randn(c, generator=g)
    state[f"{prefix}.running_var"] = 0.5 + torch.rand(c, generator=g)
    state[f"{prefix}.num_batches_tracked"] = torch.tensor(100)


def _conv(state: dict, key: str, cout: int, cin: int, k: int, g: torch.Generator) -> None:
    state[key] = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5


def insightface_state(blocks, widths, stem, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    s: dict[str, torch.Tensor] = {}
    _conv(s, "conv1.weight", stem, 3, 3, g)
    _bn(s, "bn1", stem, g)
    s["prelu.weight"] = 0.25 + 0.1 * torch.rand(stem, generator=g)
    cin = stem
    for i, (n, c) in enumerate(zip(blocks, widths), start=1):
        for j in range(n):
            p = f"layer{i}.{j}"
            _bn(s, f"{p}.bn1", cin if j == 0 else c, g)
            _conv(s, f"{p}.conv1.weight", c, cin if j == 0 else c, 3, g)
            _bn(s, f"{p}.bn2", c, g)
            s[f"{p}.prelu.weight"] = 0.25 + 0.1 * torch.rand(c, generator=g)
            _conv(s, f"{p}.conv2.weight", c, c, 3, g)
            _bn(s, f"{p}.bn3", c, g)
            if j == 0:
                _conv(s, f"{p}.downsample.0.weight", c, cin, 1, g)
                _bn(s, f"{p}.downsample.1", c, g)
        cin = c
    # the ArcFace embedding head (bn2 - dropout - fc - features): present in real checkpoints, ignored by the loader
    _bn(s, "bn2", cin, g)
    s["fc.weight"] = torch.randn(8, cin * 4, generator=g)
    s["fc.bias"] = torch.zeros(8)
    _bn(s, "features", 8, g)
    return s


def reference_forward(s: dict, blocks, x: torch.Tensor) -> list[torch.Tensor]:
    def bn(h, p):
        return F.batch_norm(h, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"],
                            training=False, eps=1e-5)

    h = (x - 0.5) / 0.5
    h = F.prelu(bn(F.conv2d(h, s["conv1.weight"], padding=1), "bn1"), s["prelu.weight"])
    out = []
    for i, n in enumerate(blocks, start=1):
        for j in range(n):
            p = f"layer{i}.{j}"
            stride = 2 if j == 0 else 1
            r = bn(h, f"{p}.bn1")
            r = F.conv2d(r, s[f"{p}.conv1.weight"], padding=1)
            r = F.prelu(bn(r, f"{p}.bn2"), s[f"{p}.prelu.weight"])
            r = bn(F.conv2d(r, s[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn3")
            short = h if j else bn(F.conv2d(h, s[f"{p}.downsample.0.weight"], stride=2), f"{p}.downsample.1")
            h = r + short
        out.append(h)
    return out


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_loaded_network_matches_an_independent_forward(arch, tmp_path):
    blocks, widths, stem = ARCHS[arch]
    state = insightface_state(blocks, widths, stem)
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    net = from_insightface(path, arch=arch).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = net(x)
    want = reference_forward(state, blocks, x)
    assert len(got) == 4
    for l, (a, b) in enumerate(zip(got, want), start=1):
        assert a.shape == b.shape == (2, widths[l - 1], 32 >> l, 32 >> l)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (arch, l, float((a - b).abs().max()))
    # the reference is sensitive to what it checks: another BN statistic gives another output
    state["layer1.0.bn2.running_var"] = state["layer1.0.bn2.running_var"] * 4
    assert not torch.allclose(reference_forward(state, blocks, x)[0], want[0], atol=1e-3)
