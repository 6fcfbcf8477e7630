"""ResNet blocks and backbones (He et al. 2016), written for any number of input bands.

Used as the DeepLabV3+ backbone (with dilation in the last stage for output stride 16) and, block by
block, by the ResNet18-/ResNet50-style decoders of the LGT ablation.
"""

from __future__ import annotations

import torch
from torch import nn

from glacierxr.models.base import ModelConfigError

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "RESNET_LAYOUTS", "make_stage"]

#: Block type and blocks per stage of the standard ResNets.
RESNET_LAYOUTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


class BasicBlock(nn.Module):
    """Two ``3 x 3`` conv-BN layers with an identity (or ``1 x 1`` projection) shortcut; expansion 1."""

    expansion = 1

    def __init__(self, cin: int, width: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """``1 x 1`` reduce, ``3 x 3`` (strided / dilated), ``1 x 1`` expand (x4), with a shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_stage(block: str, cin: int, width: int, count: int, *, stride: int = 1, dilation: int = 1,
               first_dilation: int | None = None) -> nn.Sequential:
    """``count`` blocks of type ``block`` ("basic" or "bottleneck"); the first one may stride/project.

    ``first_dilation`` (default ``dilation``) is the first block's dilation: a stage that replaces
    its stride by dilation keeps the previous stage's dilation in its first block.
    """
    cls = _BLOCKS[block]
    layers = [cls(cin, width, stride=stride, dilation=dilation if first_dilation is None else first_dilation)]
    cout = width * cls.expansion
    layers += [cls(cout, width, dilation=dilation) for _ in range(count - 1)]
    return nn.Sequential(*layers)


def stage_out_channels(block: str, width: int) -> int:
    """Output channels of a stage of ``block`` with bottleneck/base ``width``."""
    return width * _BLOCKS[block].expansion


class ResNet(nn.Module):
    """ResNet feature extractor returning the outputs of the four stages.

    Parameters
    ----------
    in_channels
        Number of input bands.
    depth
        ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
    base_width
        Width of the first stage (64 in the standard ResNets); stages double it.
    output_stride
        32 (standard) or 16 (the last stage uses dilation 2 instead of stride 2, as in DeepLabV3+)
        or 8 (the last two stages dilated).
    """

    def __init__(self, in_channels: int, depth: str = "resnet50", *, base_width: int = 64,
                 output_stride: int = 16) -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ModelConfigError(f"unknown ResNet depth {depth!r}; use one of {sorted(RESNET_LAYOUTS)}")
        block, counts = RESNET_LAYOUTS[depth]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        dilate = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}[output_stride]
        cin = base_width
        dilation = 1
        stages = []
        self.channels: list[int] = []
        for i, count in enumerate(counts):
            width = base_width * 2**i
            stride = 1 if i == 0 else 2
            previous = dilation
            if i > 0 and dilate[i - 1]:
                dilation *= stride
                stride = 1
            stages.append(make_stage(block, cin, width, count, stride=stride, dilation=dilation,
                                     first_dilation=previous))
            cin = stage_out_channels(block, width)
            self.channels.append(cin)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats
