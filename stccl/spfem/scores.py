"""Evaluation measures shared by the synthetic and the real-data evaluations.

Only generic measures live here (embedding statistics, image similarity);
what produces the embeddings (the dlib identity embedder for real faces, the
trained synthetic identity embedder) is passed in by the caller.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stccl.io import StcclError

NOT_COMPUTED = "not computed"


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays -> (N,)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-12)


def csim(emb_input: np.ndarray, emb_output: np.ndarray) -> float:
    """CSIM: mean cosine similarity of identity embeddings, input vs output frame."""
    return float(cosine_similarity(emb_input, emb_output).mean())


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) embedding sets.

    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)); the matrix square root
    is scipy's, with a small ridge when the product is singular (N < D).
    """
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two (N, D) arrays with equal D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Frechet distance needs at least 2 embeddings per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.cov(a, rowvar=False)
    cov_b = np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)  # (no `disp`: deprecated in SciPy 1.16, gone in 1.18)
    if not np.isfinite(covmean).all():
        ridge = np.eye(cov_a.shape[0]) * eps
        covmean = linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


def ssim_psnr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean SSIM and PSNR over frames of two (N, H, W, 3) images in [0, 1]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if a.ndim == 3:
        a, b = a[None], b[None]
    ssims, psnrs = [], []
    for x, y in zip(a, b):
        win = min(7, min(x.shape[:2]) // 2 * 2 - 1)
        ssims.append(structural_similarity(x, y, channel_axis=-1, data_range=1.0, win_size=win))
        psnrs.append(min(peak_signal_noise_ratio(x, y, data_range=1.0), 100.0) if not np.array_equal(x, y) else 100.0)
    return float(np.mean(ssims)), float(np.mean(psnrs))


LPIPS_WEIGHTS_ENV = "STCCL_LPIPS_WEIGHTS"   # a torchvision AlexNet state dict (alexnet-owt-7be5be79.pth)
LPIPS_LINEAR_ENV = "STCCL_LPIPS_LINEAR"     # optional: the lpips package's linear layers (weights/v0.1/alex.pth)

# torchvision's AlexNet `features`: conv (index, stride, padding), each followed by ReLU; a 3x3 / 2 max-pool
# follows convs 0 and 3. LPIPS compares the five ReLU outputs.
_ALEX_CONVS = ((0, 4, 2), (3, 1, 2), (6, 1, 1), (8, 1, 1), (10, 1, 1))
_POOL_AFTER = (0, 3)
# LPIPS's input scaling of [-1, 1] images (its ScalingLayer)
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def _env_file(name: str) -> Path | None:
    value = os.environ.get(name)
    if not value:
        return None
    if not Path(value).is_file():
        raise StcclError(f"{name}={value}: no such file; point it at the weight file or unset it")
    return Path(value)


def lpips_weights_path() -> Path | None:
    """Where the user put the LPIPS AlexNet weights (STCCL_LPIPS_WEIGHTS), or None.

    LPIPS needs ImageNet AlexNet weights that cannot be downloaded here: set
    STCCL_LPIPS_WEIGHTS to a torchvision AlexNet state dict (alexnet-owt-7be5be79.pth).
    A variable naming a missing file is an error, not a silent "not computed".
    """
    return _env_file(LPIPS_WEIGHTS_ENV)


def lpips_linear_path() -> Path | None:
    """The LPIPS linear-layer weights: STCCL_LPIPS_LINEAR, else the installed `lpips` package's file, else None.

    The package is located without importing it (importing it imports torchvision).
    """
    path = _env_file(LPIPS_LINEAR_ENV)
    return path if path is not None else _lpips_package_linear()


def _lpips_package_linear() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.origin:
        return None
    shipped = Path(spec.origin).parent / "weights" / "v0.1" / "alex.pth"
    return shipped if shipped.is_file() else None


def _load_state(path: Path, what: str) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, ...
        raise StcclError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise StcclError(f"{path}: expected a state dict ({what}), got {type(state).__name__}")
    return state


class LpipsAlex:
    """LPIPS (Zhang et al. 2018) with the AlexNet backbone, built from plain torch ops.

    The five AlexNet convolutions are read from a torchvision AlexNet state dict
    (keys features.{0,3,6,8,10}.{weight,bias}; the channel counts are taken from
    the tensors, so any state dict with these keys and a consistent chain works).
    Per ReLU output: unit-normalise the features over channels, square the
    difference, weight the channels with LPIPS's linear layer (lin{l}.model.1.weight)
    when given, else sum them (LPIPS's uncalibrated "baseline" variant), average
    over space; the distance is the sum over the five layers.
    """

    def __init__(self, backbone: dict, linear: dict | None = None, where: str = "LPIPS weights"):
        import torch

        self.convs = []
        prev = 3
        for i, stride, pad in _ALEX_CONVS:
            w, b = backbone.get(f"features.{i}.weight"), backbone.get(f"features.{i}.bias")
            if w is None or b is None:
                raise StcclError(f"{where}: missing features.{i}.weight / features.{i}.bias; expected a torchvision "
                                 f"AlexNet state dict (alexnet-owt-7be5be79.pth)")
            if w.dim() != 4 or w.shape[1] != prev or b.shape != w.shape[:1]:
                raise StcclError(f"{where}: features.{i}.weight has shape {tuple(w.shape)} (bias "
                                 f"{tuple(b.shape)}); expected (C_out, {prev}, k, k) with a C_out bias")
            self.convs.append((w.float(), b.float(), stride, pad))
            prev = w.shape[0]
        self.lins = None
        if linear is not None:
            self.lins = []
            for l, (w, _, _, _) in enumerate(self.convs):
                lin = linear.get(f"lin{l}.model.1.weight")
                if lin is None or lin.numel() != w.shape[0]:
                    raise StcclError(f"{where}: lin{l}.model.1.weight missing or not {w.shape[0]} values "
                                     f"(LPIPS linear layers for this AlexNet)")
                self.lins.append(lin.float().reshape(1, -1, 1, 1))
        self.shift = torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1)
        self.scale = torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1)

    def features(self, x):
        import torch.nn.functional as F

        # x: (N, 3, H, W) in [-1, 1] -> five ReLU maps
        h = (x - self.shift) / self.scale
        out = []
        for i, (w, b, stride, pad) in zip((c[0] for c in _ALEX_CONVS), self.convs):
            if i in (3, 6):  # the max-pool after convs 0 and 3 precedes convs 3 and 6
                h = F.max_pool2d(h, kernel_size=3, stride=2)
            h = F.relu(F.conv2d(h, w, b, stride=stride, padding=pad))
            out.append(h)
        return out

    def __call__(self, a, b):
        """Per-image LPIPS of two (N, 3, H, W) batches in [-1, 1] -> (N,)."""
        import torch

        total = torch.zeros(a.shape[0])
        with torch.no_grad():
            for l, (fa, fb) in enumerate(zip(self.features(a), self.features(b))):
                na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                d = (na - nb).pow(2)  # (N, C, h, w)
                d = (d * self.lins[l]).sum(1) if self.lins is not None else d.sum(1)
                total += d.mean((1, 2))
        return total


def lpips_distance(a: np.ndarray, b: np.ndarray) -> float | str:
    """Mean LPIPS (AlexNet) over two (N, H, W, 3) image sets in [0, 1], or NOT_COMPUTED without weights.

    Needs only torch: the backbone comes from STCCL_LPIPS_WEIGHTS, the linear
    layers from STCCL_LPIPS_LINEAR or an installed `lpips` package (without
    them: the uncalibrated variant, see LpipsAlex).
    """
    weights = lpips_weights_path()
    if weights is None:
        return NOT_COMPUTED
    import torch

    linear_path = lpips_linear_path()
    linear = _load_state(linear_path, "LPIPS linear-layer file") if linear_path else None
    net = LpipsAlex(_load_state(weights, "AlexNet state dict"), linear, where=str(weights))
    ta = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32).permute(0, 3, 1, 2) * 2 - 1
    tb = torch.as_tensor(np.ascontiguousarray(b), dtype=torch.float32).permute(0, 3, 1, 2) * 2 - 1
    return float(net(ta, tb).mean())
