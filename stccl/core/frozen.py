"""A frozen (eval-mode) IResNet with every batch norm folded into a convolution.

Once the metric network is frozen, each BatchNorm2d is a fixed per-channel
affine map y = s * x + t (s = gamma / sqrt(var + eps), t = beta - mean * s),
so it can be merged into a neighbouring convolution:

    BN after a conv    conv(x; W) -> s * conv(x; W) + t  ==  conv(x; s[o] W, bias t)      (exact)
    BN before a conv   conv(pad0(s * x + t); W)  ==  conv(pad0(x); W s[c]) + B(H, W)

The second case is the leading `bn1` of every IBasicBlock (BN - conv - BN -
PReLU - conv - BN). The zero padding of the conv pads the *normalised* map
with 0, i.e. the raw map with -t / s, so a plain fold (bias = sum W t) is
wrong on the one-pixel border and undefined where s = 0. Instead the constant
part B(H, W) = conv(pad0(t * 1_HxW); W) is split into its interior value (a
per-channel bias, folded) and a correction on the first / last row and column
(added in place after the conv, 3 x 3 stride-1 padding-1 convs only), which
makes the fold exact for any input size. The identity / downsample branch of
the block reads the block input x, not bn1(x), so the fold does not change it.

    from stccl.core.frozen import FrozenIResNet
    fast = FrozenIResNet(net.backbone.eval())   # a copy; the original is not touched
    feats = fast(x)                             # == net.backbone(x) within fp32 rounding

`FastPath` holds the switches of the plug-in loss's frozen path
(stccl.core.losses.STCCLLoss): folding, inference mode for the input clip,
channels-last memory format, autocast (`amp`) and torch.compile.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from stccl.core.backbone import IBasicBlock, IResNet
from stccl.io import StcclError

Amp = Literal["off", "bf16", "fp16"]


@dataclass(frozen=True)
class FastPath:
    """Switches of the frozen metric network inside STCCLLoss (all off = the plain path)."""

    fold_bn: bool = False         # run a FrozenIResNet (batch norms folded into the convs)
    inference_mode: bool = False  # input clip under torch.inference_mode instead of torch.no_grad
    channels_last: bool = False   # NHWC weights and inputs (oneDNN / cuDNN prefer it for convs)
    amp: Amp = "off"              # autocast the backbone: bf16 (CPU or CUDA) or fp16 (CUDA only)
    compile: bool = False         # torch.compile the (folded) backbone

    @classmethod
    def fast(cls, **changes) -> "FastPath":
        """The measured fast path: folded, inference mode, channels last; amp / compile off."""
        return cls(**{"fold_bn": True, "inference_mode": True, "channels_last": True, **changes})


def autocast_context(amp: Amp, device: torch.device | str):
    """`torch.autocast` for `amp` on `device`; a null context for "off".

    fp16 needs CUDA (CPU fp16 convolutions are slow and training needs a GradScaler); bf16 works
    on both (on a CPU without native bf16 it is emulated, correct but usually slower).
    """
    device_type = torch.device(device).type
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" and device_type != "cuda":
        raise StcclError(f"amp: fp16 needs a CUDA device (got {device_type}); use amp: bf16 on the CPU")
    if amp not in ("bf16", "fp16"):
        raise StcclError(f"amp: expected off, bf16 or fp16, got {amp!r}")
    return torch.autocast(device_type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) with bn(x) == s[c] * x + t[c] in eval mode; both (C,), float64 for an accurate fold."""
    if bn.running_mean is None or bn.running_var is None:
        raise StcclError("FrozenIResNet: batch norm without running statistics cannot be folded")
    mean, var = bn.running_mean.double(), bn.running_var.double()
    weight = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    s = weight / torch.sqrt(var + bn.eps)
    return s, bias - mean * s


class FoldedConv(nn.Module):
    """conv2d with a folded weight and bias, plus (optionally) the border term of a folded leading BN.

    Weights are non-persistent buffers: the module is a derived view of a frozen network and adds
    nothing to a state dict.
    """

    def __init__(self, conv: nn.Conv2d, pre: nn.BatchNorm2d | None = None, post: nn.BatchNorm2d | None = None):
        super().__init__()
        w = conv.weight.detach().double()  # (O, C, kh, kw)
        b = conv.bias.detach().double() if conv.bias is not None else w.new_zeros(w.shape[0])
        self.stride, self.padding = conv.stride, conv.padding
        border = None
        if pre is not None:
            if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.groups != 1:
                raise StcclError("FoldedConv: a leading BN folds only into a 3x3, stride-1, padding-1 conv")
            s, t = bn_scale_shift(pre)
            # per-tap constant of the shifted input: taps[o, ky, kx] = sum_c W[o, c, ky, kx] t[c]
            taps = torch.einsum("ocyx,c->oyx", w, t)
            b = b + taps.sum((1, 2))  # interior value: all 9 taps see the image
            border = -taps            # taps that fall on the zero padding are removed on the border
            w = w * s[None, :, None, None]
        if post is not None:
            s, t = bn_scale_shift(post)
            w = w * s[:, None, None, None]
            b = b * s + t
            if border is not None:
                border = border * s[:, None, None]
        self.register_buffer("weight", w.float(), persistent=False)
        self.register_buffer("bias", b.float(), persistent=False)
        self.register_buffer("border_taps", None if border is None else border.float(), persistent=False)
        self._border_cache: dict = {}

    def _apply(self, fn, recurse=True):
        self._border_cache = {}  # .to() / .half() etc.: rebuild the maps from the moved taps
        return super()._apply(fn, recurse)

    def _border_map(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        # (O, h, w): sum of the taps that fall outside the h x w map at each output position;
        # cached per size and dtype (a frozen network's maps come in a handful of sizes)
        key = (h, w, like.dtype, like.device)
        if key not in self._border_cache:
            self._border_cache[key] = self._make_border_map(h, w).to(like.dtype)
        return self._border_cache[key]

    def _make_border_map(self, h: int, w: int) -> torch.Tensor:
        outside = F.pad(torch.zeros(1, 1, h, w, dtype=self.border_taps.dtype, device=self.border_taps.device),
                        (1, 1, 1, 1), value=1.0)  # 1 on the padding ring
        taps = self.border_taps[:, None]  # (O, 1, 3, 3)
        return F.conv2d(outside, taps)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W) -> (N, O, H', W')
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        if self.border_taps is None:
            return y
        h, w = y.shape[-2:]
        corr = self._border_map(h, w, y)  # (O, h, w), zero inside the one-pixel border
        if h < 3 or w < 3:
            return y + corr
        # in place on the border strips only: a full-size add would cost as much as the BN it replaces
        y[:, :, 0, :] += corr[:, 0, :]
        y[:, :, -1, :] += corr[:, -1, :]
        y[:, :, 1:-1, 0] += corr[:, 1:-1, 0]
        y[:, :, 1:-1, -1] += corr[:, 1:-1, -1]
        return y


class FrozenBlock(nn.Module):
    """IBasicBlock with bn1 and bn2 folded into conv1, bn3 into conv2, the shortcut BN into its conv."""

    def __init__(self, block: IBasicBlock):
        super().__init__()
        self.conv1 = FoldedConv(block.conv1, pre=block.bn1, post=block.bn2)
        self.register_buffer("prelu", block.prelu.weight.detach().clone(), persistent=False)
        self.conv2 = FoldedConv(block.conv2, post=block.bn3)
        self.downsample = None
        if block.downsample is not None:
            conv, bn = block.downsample[0], block.downsample[1]
            self.downsample = FoldedConv(conv, post=bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, inplanes, H, W) -> (N, planes, H / stride, W / stride)
        out = self.conv1(x)
        out = self.conv2(F.prelu(out, self.prelu.to(out.dtype)))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class FrozenIResNet(nn.Module):
    """Eval-mode IResNet with its batch norms folded; same forward contract (four stage maps)."""

    def __init__(self, net: IResNet):
        super().__init__()
        if net.training:
            raise StcclError("FrozenIResNet: the network is in training mode; folding uses the running "
                             "batch-norm statistics, so call net.eval() first")
        self.conv1 = FoldedConv(net.conv1, post=net.bn1)
        self.register_buffer("prelu", net.prelu.weight.detach().clone(), persistent=False)
        self.layers = nn.ModuleList(nn.Sequential(*(FrozenBlock(b) for b in stage)) for stage in net.stages())
        self.channels_last = False
        self.requires_grad_(False)

    def to_channels_last(self) -> "FrozenIResNet":
        """Store conv weights as NHWC and feed the stem NHWC (the stage maps come out NHWC)."""
        for m in self.modules():
            if isinstance(m, FoldedConv):
                m.weight = m.weight.contiguous(memory_format=torch.channels_last)
        self.channels_last = True
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: (N, 3, H, W) in [0, 1] -> [f_l: (N, C_l, H / 2^l, W / 2^l)]
        x = (x - 0.5) / 0.5
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        h = self.conv1(x)
        h = F.prelu(h, self.prelu.to(h.dtype))
        feats = []
        for layer in self.layers:
            h = layer(h)
            feats.append(h)
        return feats
