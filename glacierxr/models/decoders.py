"""Decoders for the LGT encoder (Peng et al. 2023, Table 3).

* :class:`LGCBDecoder`: the paper's decoder, Local-Global CNN Blocks as in UNetFormer (Wang et al.
  2022, ISPRS J. 190): each block has a *local* branch (parallel ``3 x 3`` and ``1 x 1`` conv + BN) and
  a *global* branch (window multi-head attention whose output is mixed across windows by the
  cross-shaped context interaction: average pooling along a vertical and a horizontal strip one
  window long), summed and projected; blocks are fused with the encoder skip of each scale by a
  learned weighted sum, and the Feature Refinement Head (spatial attention from a depth-wise
  ``3 x 3`` conv plus channel attention from GAP -> ``1 x 1`` conv (C/4) -> ``1 x 1`` conv (C)) refines
  the stride-4 features before the classifier.
* :class:`ResNetDecoder`: a U-shaped CNN decoder whose stages are ResNet-18 (BasicBlock x 2, 2, 2, 2)
  or ResNet-50 (Bottleneck x 3, 4, 6, 3) stages run in reverse: stage widths follow the encoder
  widths from deep to shallow, each stage reads the upsampled previous output concatenated with the
  encoder skip.
* :class:`LGTDecoder`: a Transformer decoder mirroring the encoder: LGT stages (same pattern, depth,
  heads, window and sub-sampling as the encoder stage of that scale) on the upsampled features fused
  with the skip by a linear layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glacierxr.models.layers import (
    ConvBN,
    ConvBNReLU,
    ConvMlp,
    DropPath,
    RelativePositionBias,
    SegHead,
    SeparableConvBN,
    trunc_normal_init,
    window_attention,
)
from glacierxr.models.resnet import RESNET_LAYOUTS, make_stage, stage_out_channels

__all__ = [
    "FeatureRefinementHead",
    "GlobalLocalAttention",
    "LGCBDecoder",
    "LGTDecoder",
    "LocalGlobalCNNBlock",
    "ResNetDecoder",
    "WeightedFusion",
    "cross_shaped_context",
]


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def cross_shaped_context(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum of a vertical and a horizontal strip average, each ``window`` pixels long ("same" size).

    Every position receives context from the windows above/below and left/right of it, which links
    neighbouring attention windows (UNetFormer's cross-shaped window context interaction).
    """
    lo = window // 2
    hi = window - 1 - lo
    vertical = F.avg_pool2d(F.pad(x, (0, 0, lo, hi), mode="replicate"), (window, 1), stride=1)
    horizontal = F.avg_pool2d(F.pad(x, (lo, hi, 0, 0), mode="replicate"), (1, window), stride=1)
    return vertical + horizontal


class GlobalLocalAttention(nn.Module):
    """Local branch (``3 x 3`` and ``1 x 1`` conv + BN) plus global branch (window MHSA with relative
    position bias, then the cross-shaped context interaction), summed and projected by a
    separable ``window x window`` conv."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.local3 = ConvBN(dim, dim, 3)
        self.local1 = ConvBN(dim, dim, 1)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.rel_bias = RelativePositionBias(window, heads)
        self.proj = SeparableConvBN(dim, dim, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.local3(x) + self.local1(x)
        g = window_attention(x.permute(0, 2, 3, 1), self.qkv, self.heads, self.window, bias=self.rel_bias())
        g = cross_shaped_context(g.permute(0, 3, 1, 2), self.window)
        return self.proj(g + local)


class LocalGlobalCNNBlock(nn.Module):
    """LGCB: ``x + GLA(BN(x))`` then ``x + MLP(BN(x))`` (``1 x 1`` conv MLP, ratio 4)."""

    def __init__(self, dim: int, heads: int, window: int, *, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = GlobalLocalAttention(dim, heads, window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class WeightedFusion(nn.Module):
    """Upsample ``x`` by 2 and fuse it with a ``1 x 1``-projected skip by learned non-negative weights."""

    def __init__(self, skip_channels: int, dim: int) -> None:
        super().__init__()
        self.pre = nn.Conv2d(skip_channels, dim, 1, bias=False)
        self.weights = nn.Parameter(torch.ones(2))
        self.post = ConvBNReLU(dim, dim, 3, relu6=True)

    def fuse(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        w = F.relu(self.weights)
        w = w / (w.sum() + 1e-8)
        return self.post(w[0] * self.pre(skip) + w[1] * _up2(x))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(x, skip)


class FeatureRefinementHead(WeightedFusion):
    """Fuse with the stride-4 skip, then refine: spatial attention (sigmoid of a depth-wise ``3 x 3``
    conv) plus channel attention (GAP -> ``1 x 1`` conv to C/4 -> ReLU6 -> ``1 x 1`` conv to C ->
    sigmoid), each multiplied with the features and summed, projected, plus a shortcut."""

    def __init__(self, skip_channels: int, dim: int) -> None:
        super().__init__(skip_channels, dim)
        self.spatial = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        hidden = max(dim // 4, 1)
        self.channel = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, hidden, 1), nn.ReLU6(inplace=True), nn.Conv2d(hidden, dim, 1)
        )
        self.shortcut = ConvBN(dim, dim, 1)
        self.proj = SeparableConvBN(dim, dim, 3)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.fuse(x, skip)
        shortcut = self.shortcut(x)
        x = torch.sigmoid(self.spatial(x)) * x + torch.sigmoid(self.channel(x)) * x
        return self.act(self.proj(x) + shortcut)


class LGCBDecoder(nn.Module):
    """UNetFormer-style decoder: LGCB at strides 32, 16, 8, weighted skip fusion, FRH at stride 4.

    Parameters
    ----------
    encoder_channels
        Channels of the four encoder outputs (strides 4, 8, 16, 32).
    channels
        Decoder width (UNetFormer: 64).
    heads, window
        Window attention heads and window side (UNetFormer: 8 and 8).
    num_classes
        Output classes.
    head_dropout
        Dropout before the classifier.
    """

    def __init__(self, encoder_channels: tuple[int, ...], *, channels: int = 64, heads: int = 8, window: int = 8,
                 num_classes: int = 2, head_dropout: float = 0.1) -> None:
        super().__init__()
        c1, c2, c3, c4 = encoder_channels
        self.pre = ConvBN(c4, channels, 1)
        self.block4 = LocalGlobalCNNBlock(channels, heads, window)
        self.fuse3 = WeightedFusion(c3, channels)
        self.block3 = LocalGlobalCNNBlock(channels, heads, window)
        self.fuse2 = WeightedFusion(c2, channels)
        self.block2 = LocalGlobalCNNBlock(channels, heads, window)
        self.refine = FeatureRefinementHead(c1, channels)
        self.head = SegHead(channels, channels, num_classes, scale=4, dropout=head_dropout)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3, f4 = feats
        x = self.block4(self.pre(f4))
        x = self.block3(self.fuse3(x, f3))
        x = self.block2(self.fuse2(x, f2))
        return self.head(self.refine(x, f1))


class ResNetDecoder(nn.Module):
    """U-shaped decoder built from ResNet-18 or ResNet-50 stages, deepest first.

    Stage ``i`` (from the stride-32 end) has the width of the encoder stage at that scale, the block
    type of the named ResNet and the block count of the ResNet stage of that width (ResNet-50:
    3, 6, 4, 3 from deep to shallow). Its input is the previous stage's output, upsampled by 2 and
    concatenated with the encoder skip; the first block's ``1 x 1`` shortcut adapts the channels.
    """

    def __init__(self, encoder_channels: tuple[int, ...], *, style: str = "resnet18", num_classes: int = 2,
                 head_dropout: float = 0.1) -> None:
        super().__init__()
        block, counts = RESNET_LAYOUTS[style]
        widths = list(encoder_channels)[::-1]
        counts = list(counts)[::-1]
        skips = list(encoder_channels)[::-1]
        self.stages = nn.ModuleList()
        cin = skips[0]
        for i, (width, count) in enumerate(zip(widths, counts, strict=True)):
            stage_in = cin if i == 0 else cin + skips[i]
            self.stages.append(make_stage(block, stage_in, width, count))
            cin = stage_out_channels(block, width)
        self.head = SegHead(cin, encoder_channels[0], num_classes, scale=4, dropout=head_dropout)
        for m in self.stages.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        skips = feats[::-1]
        x = self.stages[0](skips[0])
        for stage, skip in zip(self.stages[1:], skips[1:], strict=True):
            x = stage(torch.cat([_up2(x), skip], dim=1))
        return self.head(x)


class LGTDecoder(nn.Module):
    """Transformer decoder mirroring the LGT encoder (see module docstring).

    Parameters
    ----------
    cfg
        The :class:`~glacierxr.models.lgt.LGTConfig` of the encoder; each decoder stage copies the
        encoder stage of its scale (pattern, depth, heads, window, sub-sampling, MLP ratio) and uses
        a CPE after its first block. Stochastic depth is off in the decoder.
    num_classes
        Output classes.
    """

    def __init__(self, cfg, *, num_classes: int = 2) -> None:
        from glacierxr.models.lgt import LGTStage

        super().__init__()
        dims = tuple(cfg.embed_dims)

        def stage(i: int) -> nn.Module:
            return LGTStage(dims[i], cfg.depths[i], cfg.num_heads[i], cfg.encoder_pattern[i], window=cfg.windows[i],
                            sr=cfg.sr_ratios[i], mlp_ratio=cfg.mlp_ratio, drop_paths=[0.0] * cfg.depths[i], cpe=True)

        self.bottleneck = stage(3)
        self.bottleneck_norm = nn.LayerNorm(dims[3])
        self.fuse = nn.ModuleList()
        self.fuse_norms = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in (2, 1, 0):
            self.fuse.append(nn.Linear(dims[i + 1] + dims[i], dims[i]))
            self.fuse_norms.append(nn.LayerNorm(dims[i]))
            self.stages.append(stage(i))
            self.norms.append(nn.LayerNorm(dims[i]))
        self.head = SegHead(dims[0], dims[0], num_classes, scale=4, dropout=cfg.head_dropout)
        trunc_normal_init(self)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f = feats[::-1]
        x = self.bottleneck_norm(self.bottleneck(f[0].permute(0, 2, 3, 1)))  # channels-last
        for fuse, fnorm, stage, norm, skip in zip(self.fuse, self.fuse_norms, self.stages, self.norms, f[1:], strict=True):
            up = _up2(x.permute(0, 3, 1, 2))
            x = fnorm(fuse(torch.cat([up, skip], dim=1).permute(0, 2, 3, 1)))
            x = norm(stage(x))
        return self.head(x.permute(0, 3, 1, 2).contiguous())
