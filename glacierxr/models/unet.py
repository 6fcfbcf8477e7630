"""U-Net (Ronneberger et al. 2015), the first baseline of Peng et al. (2023) Table 2.

Differences from the 2015 paper, as in most modern re-implementations: "same" padding (the output
has the input's size, no cropping of skips) and BatchNorm after every convolution.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from glacierxr.models.base import GlacierModel, ModelConfigError
from glacierxr.models.layers import ConvBNReLU

__all__ = ["UNet", "UNetConfig"]


@dataclass(frozen=True)
class UNetConfig:
    """Configuration of :class:`UNet`. Defaults are the 2015 paper's (64 channels, 4 poolings)."""

    #: Channels of the first level; each pooling doubles them (64 -> 1024 at the bottom).
    base_channels: int = 64
    #: Number of 2 x 2 max-poolings (the output stride is 2**depth).
    depth: int = 4
    #: Upsample with bilinear interpolation + 1 x 1 conv instead of 2 x 2 transposed convs.
    bilinear: bool = False

    def __post_init__(self) -> None:
        if self.base_channels < 1 or not 1 <= self.depth <= 6:
            raise ModelConfigError(f"U-Net needs base_channels >= 1 and 1 <= depth <= 6; got {self}")


class DoubleConv(nn.Sequential):
    """Two ``3 x 3`` ConvBNReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(ConvBNReLU(cin, cout, 3), ConvBNReLU(cout, cout, 3))


class UNet(GlacierModel):
    """U-Net: a contracting path of double convs and max-pooling and a symmetric expanding path with
    skip concatenation; a ``1 x 1`` conv gives the logits."""

    def __init__(self, cfg: UNetConfig, **meta) -> None:
        super().__init__(config={f.name: getattr(cfg, f.name) for f in fields(cfg)}, output_stride=2**cfg.depth,
                         recommended_overlap=64, **meta)
        widths = [cfg.base_channels * 2**i for i in range(cfg.depth + 1)]
        self.down = nn.ModuleList([DoubleConv(len(self.bands), widths[0])])
        self.down.extend(DoubleConv(widths[i], widths[i + 1]) for i in range(cfg.depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for i in range(cfg.depth, 0, -1):
            if cfg.bilinear:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                             nn.Conv2d(widths[i], widths[i - 1], 1)))
            else:
                self.up.append(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2))
            self.up_convs.append(DoubleConv(2 * widths[i - 1], widths[i - 1]))
        self.classifier = nn.Conv2d(widths[0], self.num_classes, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, conv in zip(self.up, self.up_convs, strict=True):
            x = conv(torch.cat([skips.pop(), up(x)], dim=1))
        return self.classifier(x)
