"""IResNet backbone (the ArcFace family) returning the four stage feature maps.

Layout and parameter names follow insightface's arcface_torch `IResNet`, so a
user's ArcFace state dict loads with `from_insightface(path)`:

    conv1 (3x3, stride 1) - bn1 - prelu
    layer1..layer4: Sequential of IBasicBlock, the first block of each with stride 2
        IBasicBlock = bn1 - conv1 - bn2 - prelu - conv2 (stride) - bn3 (+ downsample.0 conv1x1, downsample.1 bn)
    [bn2 - dropout - fc - features]   # the ArcFace embedding head: not built here

Stage outputs for an H x W input are at H/2, H/4, H/8, H/16. Input clips are in
[0, 1]; the network maps them to [-1, 1] itself ((x - 0.5) / 0.5, as ArcFace).

Named configurations (`ARCHS`): the ArcFace depths iresnet18/34/50/100 (widths
64/128/256/512) and small CPU variants `iresnet_tiny`, `iresnet_small`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from stccl.io import StcclError


@dataclass(frozen=True)
class IResNetArch:
    blocks: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    stem: int  # channels of conv1; ArcFace uses 64 (= widths[0])


ARCHS: dict[str, IResNetArch] = {
    "iresnet18": IResNetArch((2, 2, 2, 2), (64, 128, 256, 512), 64),
    "iresnet34": IResNetArch((3, 4, 6, 3), (64, 128, 256, 512), 64),
    "iresnet50": IResNetArch((3, 4, 14, 3), (64, 128, 256, 512), 64),
    "iresnet100": IResNetArch((3, 13, 30, 3), (64, 128, 256, 512), 64),
    # CPU configurations: 64-128 px inputs, a few minutes per thousand steps on 2 cores.
    "iresnet_tiny": IResNetArch((1, 1, 1, 1), (16, 32, 64, 128), 16),
    "iresnet_small": IResNetArch((1, 2, 2, 1), (32, 64, 128, 256), 32),
}

# arcface_torch keys that belong to the identity-embedding head, not to the feature extractor.
INSIGHTFACE_HEAD_PREFIXES = ("fc.", "features.", "bn2.", "dropout.")


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN - conv - BN - PReLU - conv(stride) - BN, plus the (projected) shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, inplanes, H, W) -> (N, planes, H / stride, W / stride)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """Feature extractor: `forward(x)` returns [f1, f2, f3, f4], f_l: (N, C_l, H / 2^l, W / 2^l)."""

    def __init__(self, arch: str | IResNetArch = "iresnet_tiny"):
        super().__init__()
        if isinstance(arch, str):
            if arch not in ARCHS:
                raise StcclError(f"unknown backbone {arch!r}; expected one of {sorted(ARCHS)}")
            self.arch_name, arch = arch, ARCHS[arch]
        else:
            self.arch_name = "custom"
        self.arch = arch
        self.conv1 = conv3x3(3, arch.stem)
        self.bn1 = nn.BatchNorm2d(arch.stem, eps=1e-05)
        self.prelu = nn.PReLU(arch.stem)
        inplanes = arch.stem
        for i, (n, planes) in enumerate(zip(arch.blocks, arch.widths)):
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=2, bias=False),
                nn.BatchNorm2d(planes, eps=1e-05),
            )
            blocks = [IBasicBlock(inplanes, planes, stride=2, downsample=downsample)]
            blocks += [IBasicBlock(planes, planes) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)  # arcface_torch's initialisation
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    @property
    def channels(self) -> tuple[int, int, int, int]:
        return self.arch.widths

    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: (N, 3, H, W) in [0, 1]
        h = self.prelu(self.bn1(self.conv1((x - 0.5) / 0.5)))  # (N, stem, H, W)
        feats = []
        for layer in self.stages():
            h = layer(h)
            feats.append(h)  # (N, C_l, H / 2^l, W / 2^l)
        return feats


def build_backbone(arch: str = "iresnet_tiny") -> IResNet:
    return IResNet(arch)


def load_insightface_state(state: dict, arch: str = "iresnet50", source: str = "state dict") -> dict:
    """Check an arcface_torch state dict against `IResNet(arch)`; return the feature-extractor part.

    Accepts a full ArcFace checkpoint: the embedding head (fc, features, bn2,
    dropout) is ignored as documented; a `module.` prefix (DataParallel) is
    stripped. Any other missing or unexpected key, or a shape mismatch, is an
    error naming the keys.
    """
    if not isinstance(state, dict):
        raise StcclError(f"{source}: expected an IResNet state dict (a mapping of tensors)")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    kept = {k: v for k, v in state.items() if not k.startswith(INSIGHTFACE_HEAD_PREFIXES)}
    reference = IResNet(arch).state_dict()
    missing = sorted(set(reference) - set(kept))
    unexpected = sorted(set(kept) - set(reference))
    if missing or unexpected:
        raise StcclError(
            f"{source}: not an insightface {arch} state dict: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''} ({len(missing)}), unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''} ({len(unexpected)}); pass the matching --arch "
            f"(one of {sorted(ARCHS)}) or an arcface_torch IResNet checkpoint"
        )
    bad = [k for k in reference if tuple(reference[k].shape) != tuple(kept[k].shape)]
    if bad:
        k = bad[0]
        raise StcclError(f"{source}: shape mismatch for {len(bad)} key(s), e.g. {k}: checkpoint "
                         f"{tuple(kept[k].shape)} vs {arch} {tuple(reference[k].shape)}; pass the matching arch")
    return kept


def from_insightface(path: str | Path | dict, arch: str = "iresnet50") -> IResNet:
    """An `IResNet(arch)` with the weights of an insightface arcface_torch checkpoint (path or dict)."""
    if isinstance(path, dict):
        state, source = path, "state dict"
    else:
        path = Path(path)
        if not path.is_file():
            raise StcclError(f"insightface checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise StcclError(f"{path}: not a readable torch state dict ({type(exc).__name__}: {exc})") from None
        source = str(path)
    net = IResNet(arch)
    net.load_state_dict(load_insightface_state(state, arch, source))
    return net
