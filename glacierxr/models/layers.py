"""Building blocks shared by the architectures: conv-BN blocks, drop path, MLPs, window attention, CBAM."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CBAM",
    "ConvBN",
    "ConvBNReLU",
    "ConvMlp",
    "DropPath",
    "Mlp",
    "RelativePositionBias",
    "SegHead",
    "SeparableConvBN",
    "drop_path_rates",
    "trunc_normal_init",
    "window_attention",
]


class ConvBN(nn.Sequential):
    """``Conv2d`` (no bias; "same" size for odd kernels at stride 1) followed by ``BatchNorm2d``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, stride: int = 1, dilation: int = 1,
                 groups: int = 1) -> None:
        padding = ((kernel - 1) * dilation) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(cout),
        )


class ConvBNReLU(nn.Sequential):
    """``Conv2d`` (no bias; "same" size for odd kernels at stride 1), ``BatchNorm2d`` and ``ReLU``
    (``ReLU6`` if ``relu6``)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, stride: int = 1, dilation: int = 1,
                 groups: int = 1, relu6: bool = False) -> None:
        padding = ((kernel - 1) * dilation) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True) if relu6 else nn.ReLU(inplace=True),
        )


class SeparableConvBN(nn.Sequential):
    """Depth-wise ``k x k`` conv, ``BatchNorm2d``, then a point-wise ``1 x 1`` conv ("same" size).

    Even kernels are zero-padded one pixel more at the bottom/right than at the top/left.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        lo = (kernel - 1) // 2
        hi = kernel - 1 - lo
        super().__init__(
            nn.ZeroPad2d((lo, hi, lo, hi)),
            nn.Conv2d(cin, cin, kernel, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 1, bias=False),
        )


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p`` in training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(total_rate: float, depths: list[int] | tuple[int, ...]) -> list[list[float]]:
    """Linearly increasing stochastic-depth rates from 0 to ``total_rate``, split per stage."""
    n = sum(depths)
    rates = [total_rate * i / max(n - 1, 1) for i in range(n)]
    out, start = [], 0
    for d in depths:
        out.append(rates[start:start + d])
        start += d
    return out


class Mlp(nn.Module):
    """Token MLP (``Linear``, ``GELU``, ``Linear``) on channels-last tensors."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ConvMlp(nn.Module):
    """Channel MLP with ``1 x 1`` convs and ``ReLU6`` on ``(N, C, H, W)`` tensors."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.ReLU6(inplace=True)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class RelativePositionBias(nn.Module):
    """Learned relative position bias of a ``window x window`` attention window (Swin-style table).

    Calling it returns the ``(heads, window**2, window**2)`` bias to add to the attention logits.
    """

    def __init__(self, window: int, heads: int) -> None:
        super().__init__()
        self.window = window
        self.heads = heads
        self.table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        index = rel[..., 0] * (2 * window - 1) + rel[..., 1]
        self.register_buffer("index", index, persistent=False)

    def forward(self) -> torch.Tensor:
        n = self.window * self.window
        return self.table[self.index.reshape(-1)].reshape(n, n, self.heads).permute(2, 0, 1)


@functools.lru_cache(maxsize=64)
def _window_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor | None:
    """Boolean ``(n_windows, N, N)`` mask (True: may attend) for padded and/or shifted windows.

    Keys that are padding are masked; with a cyclic shift, tokens attend only to tokens of the
    same (unshifted) region, as in Swin. Every token may attend to itself, so no row is empty.
    """
    hp = math.ceil(h / window) * window
    wp = math.ceil(w / window) * window
    if hp == h and wp == w and shift == 0:
        return None
    valid = torch.zeros(hp, wp, dtype=torch.bool)
    valid[:h, :w] = True
    region = torch.zeros(hp, wp, dtype=torch.long)
    if shift:
        label = 0
        for hs in (slice(0, hp - window), slice(hp - window, hp - shift), slice(hp - shift, hp)):
            for ws in (slice(0, wp - window), slice(wp - window, wp - shift), slice(wp - shift, wp)):
                region[hs, ws] = label
                label += 1
        valid = torch.roll(valid, (-shift, -shift), dims=(0, 1))
    n = window * window
    valid_w = _partition(valid[None, :, :, None], window).reshape(-1, n)
    region_w = _partition(region[None, :, :, None], window).reshape(-1, n)
    mask = valid_w[:, None, :] & (region_w[:, :, None] == region_w[:, None, :])
    mask |= torch.eye(n, dtype=torch.bool)[None]
    return mask


def _partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, Hp, Wp, C)`` -> ``(B, n_windows, window*window, C)``."""
    b, hp, wp, c = x.shape
    x = x.reshape(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (hp // window) * (wp // window), window * window, c)


def _merge(x: torch.Tensor, window: int, hp: int, wp: int) -> torch.Tensor:
    """Inverse of :func:`_partition`."""
    b, _, _, c = x.shape
    x = x.reshape(b, hp // window, wp // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, c)


def window_attention(
    x: torch.Tensor,
    qkv: nn.Module,
    heads: int,
    window: int,
    *,
    shift: int = 0,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-head self-attention inside non-overlapping ``window x window`` windows.

    Parameters
    ----------
    x
        Channels-last tokens ``(B, H, W, C)``; H and W need not be multiples of ``window`` (the map
        is zero-padded at the bottom/right and padded keys are masked out).
    qkv
        Module mapping ``C`` to ``3 C`` channels (query, key, value).
    heads
        Number of heads (``C`` must be divisible by it).
    window
        Window side in tokens.
    shift
        Cyclic shift (Swin's shifted windows); tokens attend only within their original region.
    bias
        Optional ``(heads, window**2, window**2)`` additive bias (relative position bias).

    Returns
    -------
    torch.Tensor
        ``(B, H, W, C)`` attention output (before the output projection).
    """
    b, h, w, c = x.shape
    hp = math.ceil(h / window) * window
    wp = math.ceil(w / window) * window
    if hp != h or wp != w:
        x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
    if shift:
        x = torch.roll(x, (-shift, -shift), dims=(1, 2))
    tokens = _partition(x, window)  # B, nW, N, C
    nw, n = tokens.shape[1], tokens.shape[2]
    q, k, v = qkv(tokens).reshape(b, nw, n, 3, heads, c // heads).permute(3, 0, 1, 4, 2, 5).unbind(0)
    mask = _window_mask(h, w, window, shift)
    attn_mask: torch.Tensor | None = None
    if mask is not None:
        mask = mask.to(x.device)
        if bias is None:
            attn_mask = mask[:, None]
        else:
            attn_mask = bias[None].masked_fill(~mask[:, None], float("-inf"))
    elif bias is not None:
        attn_mask = bias.to(q.dtype)
    if attn_mask is not None and attn_mask.is_floating_point():
        attn_mask = attn_mask.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # B, nW, heads, N, d
    out = out.transpose(2, 3).reshape(b, nw, n, c)
    out = _merge(out, window, hp, wp)
    if shift:
        out = torch.roll(out, (shift, shift), dims=(1, 2))
    return out[:, :h, :w]


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al. 2018): channel then spatial attention.

    Channel attention: a shared MLP (``C -> C/r -> C``) on the average- and max-pooled descriptors,
    summed, sigmoid. Spatial attention: a ``7 x 7`` conv on the channel-wise mean and max, sigmoid.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(avg + mx)
        desc = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(desc))


class SegHead(nn.Module):
    """``3 x 3`` ConvBNReLU, dropout, ``1 x 1`` conv to the classes, bilinear upsampling by ``scale``."""

    def __init__(self, cin: int, hidden: int, num_classes: int, *, scale: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, hidden, 3)
        self.drop = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(hidden, num_classes, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cls(self.drop(self.conv(x)))
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return x


def trunc_normal_init(module: nn.Module) -> None:
    """Transformer-style init: truncated normal (std 0.02) for Linear weights, zeros for biases,
    ones/zeros for LayerNorm, Kaiming (fan-out) for convs."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
