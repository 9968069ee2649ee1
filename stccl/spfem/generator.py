"""A compact SPFEM generator and its patch discriminator.

The generator edits the expression of every frame of a source clip towards a
target emotion, given either as a label or as a reference clip of anyone
showing that emotion. It is a small U-Net: a convolutional encoder, residual
blocks whose instance-normalised activations are modulated by the emotion code
(FiLM / AdaIN style), and a decoder with skip connections. It predicts a colour
image and a soft attention mask and blends them with the input,

    out = mask * colour + (1 - mask) * input,

so untouched regions (background, hair) keep the input pixels exactly and the
network only has to learn where and how the expression changes. That keeps it
trainable on a CPU at 64-128 px in minutes.

`GeneratorConfig.output` also offers a warp: the input resampled along a smooth
displacement field (from the conditioned bottleneck and/or, with
`flow_from_features: false`, one field per emotion code). A warp can only move
existing pixels, so it cannot paint the colour patterns that fool a small
emotion classifier without changing the face. `warp_residual` adds to the
warped image a bounded appearance residual under a soft mask,

    out = warp(input) + mask * max_residual * tanh(residual),

so teeth, shading or lid colour can change where a warp cannot make them; the
training loss keeps the mask small and local (`SpfemConfig.lambda_mask`) and the
warp small (`lambda_flow`). params/spfem_default_*.yaml record the measurements
behind the default's choice.

Frames are processed independently (B*T images); temporal coherence is what
the STCCL loss adds during training, not something built into the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from stccl.data.mead import EMOTIONS
from stccl.io import StcclError
from stccl.spfem.conditioning import ReferenceEncoder
from stccl.spfem.expression import ExpressionGenerator


OUTPUTS = ("blend", "warp", "warp_blend", "warp_residual", "expression")


@dataclass(frozen=True)
class GeneratorConfig:
    base_channels: int = 32      # channels after the stem; doubled at each downsampling
    num_down: int = 1            # downsamplings after the stride-2 stem (64 px -> 16 px with 1)
    num_res: int = 3             # FiLM residual blocks at the bottleneck
    code_dim: int = 64           # emotion code size (label embedding or reference encoder output)
    num_emotions: int = len(EMOTIONS)
    # How the output is made from the input:
    #   "blend": mask * colour + (1 - mask) * input (free pixel edits);
    #   "warp":  the input resampled along a smooth, emotion-conditioned displacement field;
    #   "warp_blend": the warp, then the colour/mask blend on top of it;
    #   "warp_residual": the warp plus a residual bounded by max_residual, under a soft mask.
    # Free pixel edits learn, within a CPU budget, mostly perturbations that fool the training
    # emotion classifier without moving the face (measured: 88% "happy" for C_train, 0% for the
    # held-out C_eval). A displacement field predicted at the bottleneck resolution can only move
    # brows, lids, mouth corners as a whole, which is what an expression change is.
    output: str = "blend"
    max_flow: float = 0.15       # largest displacement, in units of half the image side (0.15 = 4.8 px at 64 px)
    max_residual: float = 0.3    # warp_residual: largest colour change per channel (images in [0, 1])
    # warp_residual: residual and mask are average-pooled by this factor and upsampled bilinearly, so they
    # cannot hold detail finer than ~2x this many pixels (1: off). Unpooled, 600 CPU steps learned 4-px stripe
    # textures over the mouth that raised the held-out classifier's accuracy without a credible face change.
    residual_pool: int = 1
    # Side of a low-resolution colour/mask map computed directly from the emotion code and added to the
    # output head (0: off). It gives the code a short path to the pixels: through FiLM alone the code
    # has to travel the whole decoder, and 300-800 CPU steps were not enough for that to take effect
    # (measured: outputs for different labels differed by 0.001 mean abs).
    code_map: int = 0
    # warp modes: let the displacement depend on the input's features (True), or only on the emotion
    # code (False: one displacement field per emotion, shared by every face; needs code_map > 0)
    flow_from_features: bool = True
    # output "expression" (`stccl.spfem.expression`, NED-like): estimated landmarks -> manipulator MLP ->
    # landmark-warp renderer. max_shift: the largest shift of a landmark coordinate (fraction of the frame side),
    # or with expression_basis > 0 the largest coefficient of a unit-norm mode; the warp's RBF width (fraction
    # of the side) and the manipulator's hidden width.
    max_shift: float = 0.06
    rbf_sigma: float = 0.08
    manipulator_hidden: int = 128
    # > 0: the manipulator moves the landmarks only along the k main modes of landmark motion of the train
    # identities (a 3DMM-like expression basis, `stccl.spfem.expression.landmark_basis`); 0: every point freely
    expression_basis: int = 0


@dataclass(frozen=True)
class DiscriminatorConfig:
    base_channels: int = 32
    num_layers: int = 3          # stride-2 convolutions; 64 px -> 8x8 patch logits with 3


class FiLM(nn.Module):
    """Instance norm without affine, then a per-channel scale and shift predicted from the code."""

    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.to_scale_shift = nn.Linear(code_dim, 2 * channels)
        # start as the identity modulation so an untrained generator is a plain U-Net
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W), code: (N, D)
        scale, shift = self.to_scale_shift(code).chunk(2, dim=1)  # (N, C) each
        return self.norm(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class FiLMResBlock(nn.Module):
    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film1 = FiLM(channels, code_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film2 = FiLM(channels, code_dim)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.film1(self.conv1(x), code))
        h = self.film2(self.conv2(h), code)
        return x + h


class UpBlock(nn.Module):
    """Upsample x2, concatenate the encoder skip, conv, FiLM, ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, code_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch + skip_ch, out_ch, 3, padding=1)
        self.film = FiLM(out_ch, code_dim)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return F.relu(self.film(self.conv(torch.cat([x, skip], dim=1)), code))


class Generator(nn.Module):
    """G(clip, emotion | reference) -> clip with the target expression, same person and speech.

    The encoder starts with a stride-2 stem, so every heavy convolution runs at
    half resolution or below (CPU budget); the full-resolution head sees the
    upsampled features together with the input pixels, which keeps fine detail.
    """

    def __init__(self, cfg: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.cfg = cfg
        c, D = cfg.base_channels, cfg.code_dim
        self.emotion_embed = nn.Embedding(cfg.num_emotions, D)
        self.reference_encoder = ReferenceEncoder(c, D)
        self.stem = nn.Sequential(nn.Conv2d(3, c, 4, stride=2, padding=1), nn.InstanceNorm2d(c, affine=True),
                                  nn.ReLU())
        downs, chans = [], [c]
        for i in range(cfg.num_down):
            cin, cout = c * 2 ** i, c * 2 ** (i + 1)
            downs.append(nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1),
                                       nn.InstanceNorm2d(cout, affine=True), nn.ReLU()))
            chans.append(cout)
        self.downs = nn.ModuleList(downs)
        bottleneck = chans[-1]
        self.res = nn.ModuleList(FiLMResBlock(bottleneck, D) for _ in range(cfg.num_res))
        self.ups = nn.ModuleList(UpBlock(chans[i], chans[i - 1], chans[i - 1], D) for i in range(cfg.num_down, 0, -1))
        # full-resolution head: upsampled features + the input pixels -> colour (3) and mask (1)
        self.head = nn.Sequential(nn.Conv2d(c + 3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
        # a small initial mask: the untrained generator starts close to the identity map
        nn.init.constant_(self.head[-1].bias[3:], -2.0)
        if cfg.output not in OUTPUTS:
            raise StcclError(f"generator.output must be one of {', '.join(OUTPUTS)}, got {cfg.output!r}")
        if cfg.output == "expression":  # not a U-Net output: it would run as a plain warp here
            raise StcclError("generator.output expression is the NED-like ExpressionGenerator; build it with "
                             "stccl.spfem.generator.build_generator(cfg)")
        if not cfg.flow_from_features and cfg.code_map <= 0:
            raise StcclError("generator.flow_from_features: false needs generator.code_map > 0 (the per-emotion field)")
        self.code_to_map = None
        self.code_to_flow = None
        if cfg.code_map > 0:
            self.code_to_map = nn.Linear(D, 4 * cfg.code_map ** 2)
            nn.init.zeros_(self.code_to_map.weight)  # starts as no change
            nn.init.zeros_(self.code_to_map.bias)
            if cfg.output != "blend":  # the same short path for the displacement field
                self.code_to_flow = nn.Linear(D, 2 * cfg.code_map ** 2)
                nn.init.zeros_(self.code_to_flow.weight)
                nn.init.zeros_(self.code_to_flow.bias)
        # displacement field from the conditioned bottleneck; zero-initialised so training starts at identity
        self.flow_head = nn.Conv2d(bottleneck, 2, 3, padding=1)
        nn.init.zeros_(self.flow_head.weight)
        nn.init.zeros_(self.flow_head.bias)

    def code(self, emotion: torch.Tensor | None = None, reference: torch.Tensor | None = None) -> torch.Tensor:
        """The (B, D) emotion code from labels (B,) or a reference clip (B, T, 3, H, W)."""
        if (emotion is None) == (reference is None):
            raise StcclError("Generator: give exactly one of `emotion` (labels) or `reference` (a clip)")
        if emotion is not None:
            return self.emotion_embed(emotion)
        return self.reference_encoder(reference)

    def forward(self, clip: torch.Tensor, emotion: torch.Tensor | None = None,
                reference: torch.Tensor | None = None, return_mask: bool = False, return_aux: bool = False):
        """The edited clip; with return_mask also the (B, T, 1, H, W) mask, with return_aux a dict of the mask and
        the displacement field `flow` (B*T, 2, h, w) or None, for the training loss's regularisers."""
        # clip: (B, T, 3, H, W) in [0, 1]
        B, T = clip.shape[:2]
        flow = None
        code = self.code(emotion, reference)  # (B, D)
        code = code.repeat_interleave(T, dim=0)  # (B*T, D): one code per frame
        x = clip.flatten(0, 1)  # (B*T, 3, H, W)
        h = self.stem(x * 2 - 1)  # (B*T, c, H/2, W/2)
        skips = [h]
        for down in self.downs:
            h = down(h)
            skips.append(h)
        for block in self.res:
            h = block(h, code)
        if self.cfg.output != "blend":
            logits = self.flow_head(h) if self.cfg.flow_from_features else h.new_zeros(h.shape[0], 2, *h.shape[-2:])
            if self.code_to_flow is not None:
                m = self.cfg.code_map
                cflow = self.code_to_flow(code).view(-1, 2, m, m)  # (B*T, 2, m, m)
                logits = logits + F.interpolate(cflow, size=logits.shape[-2:], mode="bilinear", align_corners=False)
            flow = self.cfg.max_flow * torch.tanh(logits)  # (B*T, 2, h, w), (dx, dy) in [-1, 1] units
            x = warp(x, flow)  # (B*T, 3, H, W)
            if self.cfg.output == "warp":
                out = x.view_as(clip)
                mask = torch.ones(B, T, 1, *clip.shape[-2:], device=clip.device)
                if return_aux:
                    return out, {"mask": mask, "flow": flow}
                return (out, mask) if return_mask else out
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            h = up(h, skip, code)
        h = F.interpolate(h, size=x.shape[-2:], mode="bilinear", align_corners=False)  # (B*T, c, H, W)
        out4 = self.head(torch.cat([h, x * 2 - 1], dim=1))  # (B*T, 4, H, W)
        if self.code_to_map is not None:
            m = self.cfg.code_map
            cmap = self.code_to_map(code).view(-1, 4, m, m)  # (B*T, 4, m, m)
            out4 = out4 + F.interpolate(cmap, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.cfg.output == "warp_residual" and self.cfg.residual_pool > 1:
            k = self.cfg.residual_pool  # low-pass: no texture finer than the pooled grid
            out4 = F.interpolate(F.avg_pool2d(out4, k, ceil_mode=True), size=x.shape[-2:], mode="bilinear",
                                 align_corners=False)
        mask = torch.sigmoid(out4[:, 3:])  # (B*T, 1, H, W)
        if self.cfg.output == "warp_residual":
            out = (x + mask * self.cfg.max_residual * torch.tanh(out4[:, :3])).view_as(clip)
        else:
            out = (mask * torch.sigmoid(out4[:, :3]) + (1 - mask) * x).view_as(clip)  # (B, T, 3, H, W)
        mask = mask.view(B, T, 1, *clip.shape[-2:])
        if return_aux:
            return out, {"mask": mask, "flow": flow}
        return (out, mask) if return_mask else out


def build_generator(cfg: GeneratorConfig = GeneratorConfig()) -> nn.Module:
    """The generator a config names: the U-Net family (`Generator`) or the NED-like `ExpressionGenerator`."""
    if cfg.output == "expression":
        return ExpressionGenerator(cfg)
    return Generator(cfg)


def warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Resample images (N, 3, H, W) at identity + flow; flow (N, 2, h, w) is upsampled bilinearly (smooth)."""
    N, _, H, W = images.shape
    flow = F.interpolate(flow, size=(H, W), mode="bilinear", align_corners=False)  # (N, 2, H, W)
    ys = torch.linspace(-1 + 1 / H, 1 - 1 / H, H, device=images.device, dtype=images.dtype)
    xs = torch.linspace(-1 + 1 / W, 1 - 1 / W, W, device=images.device, dtype=images.dtype)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    grid = base.unsqueeze(0) + flow.permute(0, 2, 3, 1)  # (N, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class PatchDiscriminator(nn.Module):
    """PatchGAN on single frames: a grid of real/fake logits, one per receptive field."""

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, cfg.base_channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = cfg.base_channels
        for _ in range(cfg.num_layers - 1):
            layers += [nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * ch, affine=True),
                       nn.LeakyReLU(0.2)]
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (N, 3, H, W) or (B, T, 3, H, W) -> (N, 1, h, w) patch logits
        if frames.dim() == 5:
            frames = frames.flatten(0, 1)
        return self.net(frames * 2 - 1)


def random_other_emotion(source: torch.Tensor, num_emotions: int, generator: torch.Generator | None = None,
                         allowed: torch.Tensor | None = None) -> torch.Tensor:
    """A random target label != source for every item (B,); `allowed` restricts the choice (bool mask (E,))."""
    allowed = torch.ones(num_emotions, dtype=torch.bool) if allowed is None else allowed.bool()
    weights = allowed.float().expand(len(source), -1).clone()  # (B, E)
    weights[torch.arange(len(source)), source] = 0.0
    if (weights.sum(1) == 0).any():
        raise StcclError("no target emotion differs from the source; allow more than one emotion")
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)
