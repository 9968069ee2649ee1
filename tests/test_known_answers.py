"""Known answers for the image measures: PSNR, SSIM and LPIPS (both of its branches).

LPIPS uses a small stand-in AlexNet written by the test (the torchvision key names, few channels) and is
selected through the environment, so the result does not depend on which files this machine happens to hold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from stccl.io import StcclError
from stccl.spfem.scores import (LPIPS_LINEAR_ENV, LPIPS_WEIGHTS_ENV, NOT_COMPUTED, lpips_distance, lpips_weights_path,
                           ssim_psnr)


def _texture(seed: int = 0, n: int = 2, size: int = 48) -> np.ndarray:
    """(n, size, size, 3) in [0.2, 0.8]: smooth blobs plus fine detail, so that blurring changes structure."""
    rng = np.random.default_rng(seed)
    coarse = gaussian_filter(rng.random((n, size, size, 3)), sigma=(0, 3, 3, 0))
    fine = rng.random((n, size, size, 3))
    x = 0.5 * (coarse - coarse.min()) / (np.ptp(coarse) + 1e-12) + 0.5 * fine
    return 0.2 + 0.6 * x


# ---------------------------------------------------------------------------- PSNR / SSIM

@pytest.mark.parametrize("delta", [0.01, 0.05, 0.1])
def test_psnr_is_10_log10_of_one_over_mse(delta):
    x = _texture()
    signs = np.where(np.random.default_rng(1).random(x.shape) < 0.5, -1.0, 1.0)
    _, psnr = ssim_psnr(x, x + delta * signs)  # every pixel off by exactly delta: MSE = delta^2
    assert psnr == pytest.approx(10 * math.log10(1.0 / delta ** 2), abs=1e-6)
    # unequal errors per frame: the mean of the per-frame PSNRs (not the PSNR of the pooled MSE)
    y = x.copy()
    y[0] += delta
    y[1] += 2 * delta
    _, psnr2 = ssim_psnr(x, y)
    assert psnr2 == pytest.approx(np.mean([10 * math.log10(1 / delta ** 2), 10 * math.log10(1 / (2 * delta) ** 2)]),
                                  abs=1e-6)


def test_ssim_is_one_for_itself_and_falls_with_blur():
    x = _texture()
    ssim_self, psnr_self = ssim_psnr(x, x)
    assert ssim_self == pytest.approx(1.0, abs=1e-12) and psnr_self == 100.0
    values = []
    for sigma in (0.5, 1.0, 2.0):
        blurred = gaussian_filter(x, sigma=(0, sigma, sigma, 0))
        values.append(ssim_psnr(x, blurred)[0])
    assert values[0] < 0.95 and values[-1] < 0.5  # the fine detail is gone
    assert values[0] > values[1] > values[2]
    # SSIM ignores a small global brightness change far more than blur: structure is intact
    assert ssim_psnr(x, x + 0.02)[0] > 0.98 > values[0]
    # one frame: the same answer as a batch of one
    assert ssim_psnr(x[0], x[0] + 0.02) == pytest.approx(ssim_psnr(x[:1], x[:1] + 0.02))


# ---------------------------------------------------------------------------- LPIPS

CHANNELS = (4, 6, 8, 8, 5)       # a stand-in AlexNet: torchvision's key names and kernel sizes, few channels
KERNELS = (11, 5, 3, 3, 3)
CONV_INDEX = (0, 3, 6, 8, 10)


def _stand_in_alexnet(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    state, prev = {}, 3
    for i, c, k in zip(CONV_INDEX, CHANNELS, KERNELS):
        state[f"features.{i}.weight"] = torch.randn(c, prev, k, k, generator=g) / math.sqrt(prev * k * k)
        state[f"features.{i}.bias"] = 0.1 * torch.randn(c, generator=g)
        prev = c
    state["classifier.1.weight"] = torch.zeros(2, 2)  # the classifier of a full state dict is ignored
    return state


def _reference_lpips(state: dict, a: np.ndarray, b: np.ndarray, lins: list | None = None) -> float:
    """LPIPS written out independently: AlexNet's layer list, LPIPS's scaling, normalise, (weighted) square, mean."""
    def feats(x):
        x = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32).permute(0, 3, 1, 2) * 2 - 1
        x = (x - torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)) / torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        layers = [("conv", 0, 4, 2), ("relu",), ("pool",), ("conv", 3, 1, 2), ("relu",), ("pool",),
                  ("conv", 6, 1, 1), ("relu",), ("conv", 8, 1, 1), ("relu",), ("conv", 10, 1, 1), ("relu",)]
        out = []
        for layer in layers:
            if layer[0] == "conv":
                _, i, s, p = layer
                x = F.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], stride=s, padding=p)
            elif layer[0] == "relu":
                x = torch.relu(x)
                out.append(x)
            else:
                x = F.max_pool2d(x, 3, 2)
        return out

    total = torch.zeros(len(a))
    for l, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        na = fa / (torch.linalg.vector_norm(fa, dim=1, keepdim=True) + 1e-10)
        nb = fb / (torch.linalg.vector_norm(fb, dim=1, keepdim=True) + 1e-10)
        w = torch.ones(fa.shape[1]) if lins is None else lins[l]
        total += torch.einsum("nchw,c->nhw", (na - nb) ** 2, w).mean((1, 2))
    return float(total.mean())


@pytest.fixture()
def alex_file(tmp_path, monkeypatch):
    """A stand-in AlexNet state dict selected through STCCL_LPIPS_WEIGHTS (no lpips linear layers)."""
    state = _stand_in_alexnet()
    path = tmp_path / "alexnet-stand-in.pth"
    torch.save(state, path)
    monkeypatch.setenv(LPIPS_WEIGHTS_ENV, str(path))
    monkeypatch.delenv(LPIPS_LINEAR_ENV, raising=False)
    # an installed `lpips` package would supply linear layers: hide it, so the test controls them
    monkeypatch.setattr("stccl.spfem.scores._lpips_package_linear", lambda: None)
    return path, state


def test_lpips_not_computed_without_weights(monkeypatch):
    monkeypatch.delenv(LPIPS_WEIGHTS_ENV, raising=False)
    x = _texture(size=32)
    assert lpips_weights_path() is None
    assert lpips_distance(x, x + 0.1) == NOT_COMPUTED


def test_lpips_variable_naming_a_missing_file_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(LPIPS_WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(StcclError, match="nope.pth"):
        lpips_distance(_texture(size=32), _texture(size=32))


def test_lpips_with_weights_matches_an_independent_computation(alex_file):
    _, state = alex_file
    x = _texture(size=64)
    assert lpips_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    near = np.clip(x + 0.02 * np.random.default_rng(3).standard_normal(x.shape), 0, 1)
    far = gaussian_filter(x, sigma=(0, 2, 2, 0))[:, ::-1]  # blurred and mirrored
    d_near, d_far = lpips_distance(x, near), lpips_distance(x, far)
    assert isinstance(d_near, float) and 0 < d_near < d_far
    assert d_near == pytest.approx(_reference_lpips(state, x, near), rel=1e-4)
    assert d_far == pytest.approx(_reference_lpips(state, x, far), rel=1e-4)
    assert lpips_distance(near, x) == pytest.approx(d_near, rel=1e-5)  # symmetric


def test_lpips_uses_the_linear_layers_when_given(alex_file, tmp_path, monkeypatch):
    _, state = alex_file
    x = _texture(size=64)
    y = gaussian_filter(x, sigma=(0, 1.5, 1.5, 0))
    g = torch.Generator().manual_seed(1)
    lins = [torch.rand(c, generator=g) for c in CHANNELS]
    lin_file = tmp_path / "lin.pth"
    torch.save({f"lin{l}.model.1.weight": w.view(1, -1, 1, 1) for l, w in enumerate(lins)}, lin_file)
    monkeypatch.setenv(LPIPS_LINEAR_ENV, str(lin_file))
    d = lpips_distance(x, y)
    assert d == pytest.approx(_reference_lpips(state, x, y, lins), rel=1e-4)
    assert d != pytest.approx(_reference_lpips(state, x, y), rel=1e-2)
    # only the first layer weighted: the distance is that layer's term alone
    torch.save({f"lin{l}.model.1.weight": (w if l == 0 else torch.zeros_like(w)).view(1, -1, 1, 1)
                for l, w in enumerate(lins)}, lin_file)
    first = lpips_distance(x, y)
    assert 0 < first < d


def test_lpips_rejects_a_state_dict_without_alexnet_keys(alex_file, tmp_path, monkeypatch):
    bad = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, bad)
    monkeypatch.setenv(LPIPS_WEIGHTS_ENV, str(bad))
    with pytest.raises(StcclError, match=r"resnet\.pth.*features\.0\.weight"):
        lpips_distance(_texture(size=32), _texture(size=32))
