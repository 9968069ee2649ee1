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


def lpips_weights_path() -> Path | None:
    """Where the user put LPIPS backbone weights, or None.

    LPIPS needs ImageNet backbone weights that cannot be downloaded here. Set
    STCCL_LPIPS_WEIGHTS to a torchvision AlexNet state dict
    (alexnet-owt-7be5be79.pth) and install the `lpips` extra.
    """
    value = os.environ.get("STCCL_LPIPS_WEIGHTS")
    return Path(value) if value and Path(value).is_file() else None


def lpips_distance(a: np.ndarray, b: np.ndarray) -> float | str:
    """Mean LPIPS (AlexNet) over frames, or NOT_COMPUTED when weights/package are absent."""
    weights = lpips_weights_path()
    if weights is None:
        return NOT_COMPUTED
    try:
        import lpips  # noqa: F401
        import torch
        import torchvision
    except ImportError:
        return NOT_COMPUTED
    import lpips as lp

    net = lp.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    backbone = torchvision.models.alexnet()
    backbone.load_state_dict(torch.load(weights, map_location="cpu"))
    # lpips slices alexnet.features into five stages; copy the user's weights in.
    feats = backbone.features
    stages = [net.net.slice1, net.net.slice2, net.net.slice3, net.net.slice4, net.net.slice5]
    for stage in stages:
        for name, module in stage.named_children():
            module.load_state_dict(feats[int(name)].state_dict())
    ta = torch.as_tensor(np.asarray(a), dtype=torch.float32).permute(0, 3, 1, 2) * 2 - 1
    tb = torch.as_tensor(np.asarray(b), dtype=torch.float32).permute(0, 3, 1, 2) * 2 - 1
    with torch.no_grad():
        return float(net(ta, tb).mean())
