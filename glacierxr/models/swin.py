"""Swin Transformer encoder (Liu et al. 2021) with a U-shaped Swin decoder (as Swin-Unet, Cao et al. 2022).

Encoder: ``4 x 4`` patch embedding, four stages of Swin blocks (window multi-head self-attention with
a relative position bias; every second block shifts the windows by half a window, with the
attention masked to the original regions), patch merging (``2 x 2`` neighbours concatenated,
LayerNorm, linear ``4C -> 2C``) between stages.

Decoder: from the stride-32 features, three levels of patch expanding (linear ``C -> 2C``, then the
channels re-arranged into a ``2 x 2`` neighbourhood, giving ``C/2`` at twice the resolution),
concatenation with the encoder skip, a linear ``2C -> C`` and Swin blocks; a final ``4 x`` patch
expanding and a ``1 x 1`` conv give the logits at the input resolution.

Maps whose sides are not multiples of the window are zero-padded inside the attention with the
padded keys masked; a stage whose map is not larger than the window does not shift.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from glacierxr.models.base import GlacierModel, ModelConfigError
from glacierxr.models.layers import (
    DropPath,
    Mlp,
    RelativePositionBias,
    drop_path_rates,
    trunc_normal_init,
    window_attention,
)

__all__ = ["SwinConfig", "SwinUNet", "SwinBlock"]


@dataclass(frozen=True)
class SwinConfig:
    """Configuration of :class:`SwinUNet` (defaults: Swin-T, window 7, and Swin-Unet's decoder)."""

    #: Channels of stage 1 (Swin-T: 96); doubled by every patch merging.
    embed_dim: int = 96
    #: Swin blocks per encoder stage (Swin-T: 2, 2, 6, 2).
    depths: tuple[int, ...] = (2, 2, 6, 2)
    #: Heads per stage (Swin-T: 3, 6, 12, 24).
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    #: Swin blocks per decoder level, strides 16, 8, 4 (Swin-Unet: 2 each).
    decoder_depths: tuple[int, ...] = (2, 2, 2)
    #: Window side in tokens.
    window: int = 7
    #: MLP hidden width ratio.
    mlp_ratio: float = 4.0
    #: Stochastic depth rate at the deepest encoder block (Swin-T: 0.2).
    drop_path_rate: float = 0.2

    def __post_init__(self) -> None:
        if len(self.depths) != 4 or len(self.num_heads) != 4 or len(self.decoder_depths) != 3:
            raise ModelConfigError("Swin needs 4 depths, 4 num_heads and 3 decoder_depths")
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ModelConfigError(f"stage {i + 1} width {self.embed_dim * 2**i} is not divisible by {heads} heads")
        if self.window < 2 or any(d < 1 for d in self.depths):
            raise ModelConfigError("window must be >= 2 and every stage needs a block")


class WindowAttention(nn.Module):
    """Window MHSA with a relative position bias, optionally over shifted windows."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.rel_bias = RelativePositionBias(window, heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, shift: int) -> torch.Tensor:
        return self.proj(window_attention(x, self.qkv, self.heads, self.window, shift=shift, bias=self.rel_bias()))


class SwinBlock(nn.Module):
    """Pre-LN Swin block; ``shifted`` blocks shift windows by ``window // 2`` when the map allows."""

    def __init__(self, dim: int, heads: int, window: int, *, shifted: bool, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.window = window
        self.shifted = shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        shift = self.window // 2 if self.shifted and min(h, w) > self.window else 0
        x = x + self.drop_path(self.attn(self.norm1(x), shift))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _blocks(dim: int, depth: int, heads: int, window: int, mlp_ratio: float, dprs: list[float]) -> nn.Sequential:
    return nn.Sequential(*(SwinBlock(dim, heads, window, shifted=i % 2 == 1, mlp_ratio=mlp_ratio, drop_path=dprs[i])
                           for i in range(depth)))


class PatchMerging(nn.Module):
    """``2 x 2`` neighbours concatenated (4C), LayerNorm, linear to 2C: halves the resolution."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class PatchExpand(nn.Module):
    """Linear ``C -> scale**2 * out_dim``, re-arranged into ``scale x scale`` pixels of ``out_dim``, LayerNorm."""

    def __init__(self, dim: int, scale: int, out_dim: int) -> None:
        super().__init__()
        self.scale = scale
        self.out_dim = out_dim
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s, c = self.scale, self.out_dim
        x = self.expand(x).reshape(b, h, w, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, c)
        return self.norm(x)


class SwinUNet(GlacierModel):
    """Swin Transformer encoder + U-shaped Swin decoder (see module docstring)."""

    def __init__(self, cfg: SwinConfig, **meta) -> None:
        super().__init__(config={f.name: getattr(cfg, f.name) for f in fields(cfg)}, output_stride=32,
                         recommended_overlap=64, **meta)
        dims = [cfg.embed_dim * 2**i for i in range(4)]
        self.patch_embed = nn.Conv2d(len(self.bands), dims[0], 4, stride=4)
        self.embed_norm = nn.LayerNorm(dims[0])
        dprs = drop_path_rates(cfg.drop_path_rate, cfg.depths)
        self.stages = nn.ModuleList(
            _blocks(dims[i], cfg.depths[i], cfg.num_heads[i], cfg.window, cfg.mlp_ratio, dprs[i]) for i in range(4)
        )
        self.merges = nn.ModuleList(PatchMerging(dims[i]) for i in range(3))
        self.norm = nn.LayerNorm(dims[3])
        self.expands = nn.ModuleList()
        self.concat_proj = nn.ModuleList()
        self.dec_stages = nn.ModuleList()
        for j, i in enumerate((2, 1, 0)):
            self.expands.append(PatchExpand(dims[i + 1], 2, dims[i]))
            self.concat_proj.append(nn.Linear(2 * dims[i], dims[i]))
            self.dec_stages.append(_blocks(dims[i], cfg.decoder_depths[j], cfg.num_heads[i], cfg.window,
                                           cfg.mlp_ratio, [0.0] * cfg.decoder_depths[j]))
        self.dec_norm = nn.LayerNorm(dims[0])
        self.final_expand = PatchExpand(dims[0], 4, dims[0])
        self.classifier = nn.Conv2d(dims[0], self.num_classes, 1)
        trunc_normal_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        skips = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < 3:
                skips.append(x)
                x = self.merges[i](x)
        x = self.norm(x)
        for expand, proj, stage, skip in zip(self.expands, self.concat_proj, self.dec_stages, skips[::-1], strict=True):
            x = stage(proj(torch.cat([expand(x), skip], dim=-1)))
        x = self.final_expand(self.dec_norm(x))
        return self.classifier(x.permute(0, 3, 1, 2).contiguous())

