"""DeepLabV3+ (Chen et al. 2018) and Attention DeepLabV3+ (Chu et al. 2022, The Cryosphere 16).

DeepLabV3+: a ResNet backbone at output stride 16 (the last stage dilated), ASPP (a ``1 x 1`` conv,
three ``3 x 3`` atrous convs at rates 6, 12, 18 and image pooling, concatenated and projected to 256
channels) and a decoder that upsamples the ASPP output by 4, concatenates it with the stride-4
low-level features reduced to 48 channels, refines with two ``3 x 3`` convs and upsamples by 4.

Attention DeepLabV3+ adds a CBAM branch (channel + spatial attention on the backbone output, then a
``1 x 1`` conv to the ASPP width) in parallel with the ASPP branches, concatenated before the
projection; Chu et al. use it with test-time augmentation, so :attr:`default_tta` is ``True``.

The image-pooling branch has no BatchNorm (a ``1 x 1`` conv with bias and ReLU): BN on a single
pooled value per channel cannot be trained with a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from glacierxr.models.base import GlacierModel, ModelConfigError
from glacierxr.models.layers import CBAM, ConvBNReLU
from glacierxr.models.resnet import RESNET_LAYOUTS, ResNet

__all__ = ["ASPP", "DeepLabConfig", "DeepLabV3Plus"]


@dataclass(frozen=True)
class DeepLabConfig:
    """Configuration of :class:`DeepLabV3Plus` (defaults: the DeepLabV3+ paper's ResNet-101 setting)."""

    #: Backbone: "resnet18", "resnet34", "resnet50" or "resnet101".
    backbone: str = "resnet101"
    #: Width of the backbone's first stage (64 for standard ResNets).
    backbone_width: int = 64
    #: Backbone output stride: 16 (rates 6, 12, 18) or 8.
    output_stride: int = 16
    #: ASPP atrous rates.
    atrous_rates: tuple[int, ...] = (6, 12, 18)
    #: ASPP and decoder width.
    aspp_channels: int = 256
    #: Width the low-level (stride-4) features are reduced to.
    low_level_channels: int = 48
    #: Add the CBAM branch in parallel with ASPP (Attention DeepLabV3+).
    cbam: bool = False
    #: CBAM channel-attention reduction ratio.
    cbam_reduction: int = 16
    #: Dropout after the ASPP projection.
    aspp_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.backbone not in RESNET_LAYOUTS:
            raise ModelConfigError(f"backbone must be one of {sorted(RESNET_LAYOUTS)}; got {self.backbone!r}")
        if self.output_stride not in (8, 16):
            raise ModelConfigError(f"output_stride must be 8 or 16; got {self.output_stride}")
        if self.backbone_width < 1 or self.aspp_channels < 1 or self.low_level_channels < 1:
            raise ModelConfigError("backbone_width, aspp_channels and low_level_channels must be positive")


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling, optionally with a parallel CBAM branch."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...], *, cbam: bool = False, cbam_reduction: int = 16,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvBNReLU(cin, cout, 1)])
        self.branches.extend(ConvBNReLU(cin, cout, 3, dilation=r) for r in rates)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.cbam = nn.Sequential(CBAM(cin, cbam_reduction), ConvBNReLU(cin, cout, 1)) if cbam else None
        n = len(self.branches) + 1 + (1 if cbam else 0)
        self.project = nn.Sequential(ConvBNReLU(n * cout, cout, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, x.shape[2], x.shape[3]))
        if self.cbam is not None:
            outs.append(self.cbam(x))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3Plus(GlacierModel):
    """DeepLabV3+ with a ResNet backbone; with ``cfg.cbam`` the Attention DeepLabV3+ of Chu et al. (2022)."""

    def __init__(self, cfg: DeepLabConfig, **meta) -> None:
        meta.setdefault("default_tta", cfg.cbam)
        super().__init__(config={f.name: getattr(cfg, f.name) for f in fields(cfg)}, output_stride=cfg.output_stride,
                         recommended_overlap=64, **meta)
        self.backbone = ResNet(len(self.bands), cfg.backbone, base_width=cfg.backbone_width,
                               output_stride=cfg.output_stride)
        high, low = self.backbone.channels[3], self.backbone.channels[0]
        rates = tuple(cfg.atrous_rates) if cfg.output_stride == 16 else tuple(2 * r for r in cfg.atrous_rates)
        self.aspp = ASPP(high, cfg.aspp_channels, rates, cbam=cfg.cbam, cbam_reduction=cfg.cbam_reduction,
                         dropout=cfg.aspp_dropout)
        self.low_level = ConvBNReLU(low, cfg.low_level_channels, 1)
        self.refine = nn.Sequential(
            ConvBNReLU(cfg.aspp_channels + cfg.low_level_channels, cfg.aspp_channels, 3),
            ConvBNReLU(cfg.aspp_channels, cfg.aspp_channels, 3),
        )
        self.classifier = nn.Conv2d(cfg.aspp_channels, self.num_classes, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        f1, _, _, f4 = self.backbone(x)
        y = self.aspp(f4)
        low = self.low_level(f1)
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.classifier(self.refine(torch.cat([y, low], dim=1)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)
