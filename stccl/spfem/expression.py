"""A NED-like SPFEM generator: edit expression parameters, then draw the frame from them.

NED (Papantoniou et al. 2022), the generator the paper improves most, does not
paint pixels directly. It fits a 3-D face model to every frame, changes the
model's expression parameters with an emotion manipulator, and renders the
frame from the source frame and the manipulated parameters. Speech and emotion
share those parameters (the jaw and lips carry both), which is why the
manipulator can damage the mouth and why STCCL helps it.

This module is that pipeline on the synthetic world, small enough for a CPU:

- expression parameters: the 16 face landmarks of `stccl.data.face_model`
  (eyes, brows, nose, mouth corners, lips, chin, face sides). Like 3DMM
  expression coefficients they mix speech and emotion: a lip landmark moves
  with both. They are estimated from each frame by `LandmarkRegressor`, a
  frozen aux net trained on the renderer's landmarks of the TRAIN identities
  (`stccl aux-nets --nets landmarks`), the stand-in for NED's pretrained 3-D
  face fitter. It never sees a test identity's landmarks or any edited target;
- the emotion manipulator: per frame, an MLP from (estimated landmarks,
  emotion code) to a bounded landmark displacement, either free (32 numbers)
  or, with `generator.expression_basis: k`, the coefficients of the k main
  modes of landmark motion (`landmark_basis`: PCA of the train identities'
  landmarks around each identity's mean). That basis is the analogue of a
  3DMM's expression blendshapes: symmetric, whole-face modes in which speech
  and emotion mix. It is trained with the generator losses of
  `stccl.spfem.train` (adversarial, emotion classifier on the rendered frames
  or, with `cls_on: landmarks`, on the shifted landmarks, self-reconstruction,
  cycle, identity, optional STCCL): no paired targets;
- the renderer: the source frame resampled so that the estimated landmarks
  move to the manipulated ones, along a smooth field interpolated between
  the landmarks with Gaussian radial basis functions (`rbf_warp`). This is
  the geometric half of NED's renderer; it has no learned appearance part,
  so it cannot paint teeth or shading (measured choice: see
  params/spfem_default_*.yaml).

The whole chain is differentiable in the displacement, so every image-space
loss (and STCCL) trains the manipulator through the renderer.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from stccl.data.face_model import LANDMARKS
from stccl.io import StcclError
from stccl.spfem.conditioning import ReferenceEncoder

NUM_LANDMARKS = len(LANDMARKS)


def conv_stages(widths: Sequence[int], kernel: int) -> tuple[list[nn.Module], int]:
    """Stride-2 conv-BN-ReLU then conv-BN-ReLU per width, from RGB; the layers and the last width.
    The body of every small aux net (`stccl.spfem.aux_nets.SmallCNN`) and of the landmark regressor."""
    layers: list[nn.Module] = []
    cin = 3
    for w in widths:
        layers += [nn.Conv2d(cin, w, kernel, stride=2, padding=kernel // 2), nn.BatchNorm2d(w), nn.ReLU(),
                   nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
        cin = w
    return layers, cin


class LandmarkRegressor(nn.Module):
    """Frame (N, 3, H, W) in [0, 1] -> landmarks (N, L, 2) as (x, y) fractions of the frame side.

    Strided conv stages keep a spatial map (pooled to `grid` x `grid`) that a linear layer reads: global
    pooling would throw away the positions the net has to report.
    """

    def __init__(self, widths: Sequence[int], kernel: int, num_landmarks: int = NUM_LANDMARKS, grid: int = 8):
        super().__init__()
        layers, cin = conv_stages(widths, kernel)
        layers.append(nn.AdaptiveAvgPool2d(grid))  # any input size -> a grid x grid map
        self.features = nn.Sequential(*layers)
        self.num_landmarks = num_landmarks
        self.head = nn.Linear(cin * grid * grid, 2 * num_landmarks)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.full((2 * num_landmarks,), 0.5))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h = self.features(frames * 2 - 1).flatten(1)
        return (self.head(h) + self.mean).view(len(frames), self.num_landmarks, 2)


class LandmarkEmotionClassifier(nn.Module):
    """Landmarks (N, L, 2) -> emotion logits (N, E): the manipulator's emotion objective in parameter space
    (NED trains its manipulator on expression parameters, not on pixels). An aux net (`emotion_landmarks`)
    trained on the train identities' landmarks."""

    def __init__(self, hidden: int = 128, num_landmarks: int = NUM_LANDMARKS, num_classes: int = 7):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * num_landmarks, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        return self.net(((landmarks - 0.5) * 10).flatten(1))


def rbf_warp(images: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, sigma: float = 0.08) -> torch.Tensor:
    """Resample images (N, 3, H, W) so that points `src` (N, L, 2) move to `dst` (N, L, 2).

    Points are (x, y) fractions of the frame side. The output pixel p reads the input at p + d(p), where d
    interpolates the displacements src - dst given at the points dst with Gaussian radial basis functions
    of width `sigma` (a fraction of the side): d is exact at every point, smooth between them and fades to
    zero away from the face, so the background stays put. Differentiable in `dst` (and `src`).
    """
    N, _, H, W = images.shape
    if src.shape != dst.shape or src.dim() != 3 or src.shape[0] != N:
        raise StcclError(f"rbf_warp: src {tuple(src.shape)} and dst {tuple(dst.shape)} must both be (N={N}, L, 2)")
    dt = images.dtype
    gx = (torch.arange(W, device=images.device, dtype=dt) + 0.5) / W
    gy = (torch.arange(H, device=images.device, dtype=dt) + 0.5) / H
    Y, X = torch.meshgrid(gy, gx, indexing="ij")
    pix = torch.stack([X, Y], -1).reshape(1, H * W, 2)  # (1, HW, 2)
    two_s2 = 2 * sigma ** 2
    K = torch.exp(-torch.cdist(dst, dst).pow(2) / two_s2)  # (N, L, L)
    K = K + 1e-3 * torch.eye(K.shape[-1], device=K.device, dtype=dt)  # points that coincide stay solvable
    weights = torch.linalg.solve(K, src - dst)  # (N, L, 2)
    Kp = torch.exp(-torch.cdist(pix.expand(N, -1, -1), dst).pow(2) / two_s2)  # (N, HW, L)
    grid = (pix + Kp @ weights) * 2 - 1  # (N, HW, 2) in grid_sample's [-1, 1]
    return F.grid_sample(images, grid.view(N, H, W, 2), mode="bilinear", padding_mode="border",
                         align_corners=False)


class ExpressionGenerator(nn.Module):
    """G(clip, emotion | reference) as landmark estimation -> manipulation -> landmark-warp rendering.

    Same interface as `stccl.spfem.generator.Generator`. The landmark regressor is a frozen submodule
    (saved with the generator so a run folder is self-contained) and stays in eval mode.
    """

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        D, L = cfg.code_dim, NUM_LANDMARKS
        self.emotion_embed = nn.Embedding(cfg.num_emotions, D)
        self.reference_encoder = ReferenceEncoder(cfg.base_channels, D)
        self.landmark_net = LandmarkRegressor(LANDMARK_WIDTHS, 3)
        for p in self.landmark_net.parameters():
            p.requires_grad_(False)
        self.landmark_net.eval()  # a new module is in training mode: its batch norm would track our batches
        hidden = cfg.manipulator_hidden
        k = cfg.expression_basis
        # (k, L, 2) orthonormal modes, filled by set_basis (saved with the weights); none for free landmarks
        self.register_buffer("basis", torch.zeros(k, L, 2) if k > 0 else None)
        self.manipulator = nn.Sequential(nn.Linear(2 * L + D, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                         nn.ReLU(), nn.Linear(hidden, k if k > 0 else 2 * L))
        nn.init.zeros_(self.manipulator[-1].weight)  # starts as "no change": the untrained generator copies
        nn.init.zeros_(self.manipulator[-1].bias)

    def train(self, mode: bool = True):
        super().train(mode)
        self.landmark_net.eval()  # frozen estimator: its batch norm must keep the statistics it was trained with
        return self

    def load_landmark_net(self, net: LandmarkRegressor) -> None:
        self.landmark_net.load_state_dict(net.state_dict())

    def set_basis(self, basis: torch.Tensor) -> None:
        if self.basis is None or basis.shape != self.basis.shape:
            expected = None if self.basis is None else tuple(self.basis.shape)
            raise StcclError(f"expression basis of shape {tuple(basis.shape)}, expected {expected} "
                             f"(generator.expression_basis {self.cfg.expression_basis})")
        self.basis.copy_(basis)

    def code(self, emotion: torch.Tensor | None = None, reference: torch.Tensor | None = None) -> torch.Tensor:
        if (emotion is None) == (reference is None):
            raise StcclError("Generator: give exactly one of `emotion` (labels) or `reference` (a clip)")
        return self.emotion_embed(emotion) if emotion is not None else self.reference_encoder(reference)

    def edit(self, frames: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Estimated landmarks (N, L, 2) of frames (N, 3, H, W) and their manipulated positions."""
        with torch.no_grad():
            lm = self.landmark_net(frames)
        raw = self.manipulator(torch.cat([(lm - 0.5).flatten(1), code], dim=1))
        if self.cfg.expression_basis > 0:  # coefficients of the modes; each mode has unit norm over all points
            shift = torch.einsum("nk,kld->nld", self.cfg.max_shift * torch.tanh(raw), self.basis)
        else:
            shift = self.cfg.max_shift * torch.tanh(raw).view_as(lm)
        return lm, lm + shift

    def forward(self, clip: torch.Tensor, emotion: torch.Tensor | None = None,
                reference: torch.Tensor | None = None, return_mask: bool = False, return_aux: bool = False):
        # clip: (B, T, 3, H, W) in [0, 1]
        B, T = clip.shape[:2]
        code = self.code(emotion, reference).repeat_interleave(T, dim=0)  # (B*T, D)
        x = clip.flatten(0, 1)
        lm, target = self.edit(x, code)
        out = rbf_warp(x, lm, target, self.cfg.rbf_sigma).view_as(clip)
        mask = torch.ones(B, T, 1, *clip.shape[-2:], device=clip.device)
        if return_aux:
            # `flow` feeds the training loss's lambda_flow penalty: here the landmark displacement
            return out, {"mask": mask, "flow": target - lm, "landmarks": lm, "edited_landmarks": target}
        return (out, mask) if return_mask else out


LANDMARK_WIDTHS = (24, 48, 96)  # the landmark regressor's conv stages (aux net `landmarks`)


def landmark_basis(landmarks: torch.Tensor, actor_idx: torch.Tensor, k: int) -> torch.Tensor:
    """The k main modes (k, L, 2) of landmark motion: PCA of landmarks (N, L, 2) around each actor's mean.

    Removing each actor's mean leaves what moves within a face (speech, emotion, blinks, head motion), not
    how faces differ. Modes are orthonormal over the 2L coordinates, sign fixed so the largest entry is > 0.
    """
    if not 0 < k <= landmarks.shape[1] * 2:
        raise StcclError(f"expression_basis must lie in 1..{landmarks.shape[1] * 2}, got {k}")
    X = landmarks.flatten(1).double()
    for a in actor_idx.unique():
        X[actor_idx == a] -= X[actor_idx == a].mean(0)
    _, _, Vh = torch.linalg.svd(X, full_matrices=False)
    modes = Vh[:k]
    sign = torch.sign(modes.gather(1, modes.abs().argmax(1, keepdim=True)))
    return (modes * sign).to(landmarks.dtype).view(k, *landmarks.shape[1:])


def emotion_mean_shifts(landmarks: torch.Tensor, actor_idx: torch.Tensor, emotion_idx: torch.Tensor,
                        num_emotions: int, neutral: int = 0) -> torch.Tensor:
    """The statistical manipulator: per emotion, the mean landmark change from neutral, (E, L, 2).

    For every actor that shows both, the mean landmarks (N, L, 2) of its frames of emotion e minus those of
    its neutral frames; then the mean over actors. It needs emotion labels only, never a paired frame, so it
    is an unpaired manipulator too: the first moment of the distribution a learned one should match. It
    moves every face by the same amount whatever it says, so it is a yardstick (how much a landmark edit
    rendered by `rbf_warp` can gain), not a method STCCL can train.
    """
    out = torch.zeros(num_emotions, *landmarks.shape[1:], dtype=landmarks.dtype)
    for e in range(num_emotions):
        per_actor = []
        for a in actor_idx.unique():
            sel_e = (actor_idx == a) & (emotion_idx == e)
            sel_n = (actor_idx == a) & (emotion_idx == neutral)
            if sel_e.any() and sel_n.any():
                per_actor.append(landmarks[sel_e].mean(0) - landmarks[sel_n].mean(0))
        if per_actor:
            out[e] = torch.stack(per_actor).mean(0)
    return out
