"""The Local-Global Transformer (LGT) encoder and the LGT segmentation models of Peng et al. (2023).

The encoder follows Twins-SVT (Chu et al. 2021, "Twins: Revisiting the design of spatial attention in
vision transformers"): four stages, each a patch embedding (a strided conv, strides 4, 2, 2, 2, i.e.
patch sizes 4, 8, 16, 32 relative to the input) and a stack of pre-LayerNorm Transformer blocks with
residuals and an FFN (Peng et al. 2023, Eq. 9)::

    z' = z + Attn(LN(z));    z = z' + FFN(LN(z'))

where ``Attn`` is

* **LSA**, locally-grouped self-attention: attention inside non-overlapping ``k x k`` sub-windows, or
* **GSA**, global sub-sampled attention: every token queries keys/values computed from a
  sub-sampled map (one representative per ``s x s`` sub-window, by a strided ``s x s`` conv).

A stage's *pattern* says which attention its blocks use: ``"LG"`` alternates LSA and GSA (Twins-SVT),
``"LL"`` uses only LSA, ``"GG"`` only GSA. A stage of depth ``d`` has ``d`` blocks (so ``"LG"`` with
depth 2 is one LSA/GSA pair). Position information comes from a conditional position encoding (CPE,
Chu et al. 2021: a depth-wise ``3 x 3`` conv with a residual, inserted after the first block of each
stage) or, for the ablation ``pos_encoding="abs"``, a learned absolute embedding per stage (defined
for a ``pe_size`` x ``pe_size`` input and resized bicubically for other sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from glacierxr.models.base import GlacierModel, ModelConfigError
from glacierxr.models.layers import DropPath, Mlp, drop_path_rates, trunc_normal_init, window_attention

__all__ = ["LGTConfig", "LGTEncoder", "LGTSegmenter", "LGTBlock", "LocallyGroupedAttention",
           "GlobalSubsampledAttention", "FullResolutionRefinement"]

ENCODER_PATTERNS = ("LG", "LL", "GG")
DECODERS = ("lgcb", "lgt", "resnet18", "resnet50")
POS_ENCODINGS = ("cpe", "abs")


@dataclass(frozen=True)
class LGTConfig:
    """Configuration of an LGT encoder + decoder segmentation model.

    The ``"paper"`` preset uses these defaults: C1 = 64 doubling per stage and patch sizes 4/8/16/32
    (Peng et al. 2023), and the depths, heads, window and sub-sampling ratios of Twins-SVT-S, the
    Twins-SVT configuration with C1 = 64 (Chu et al. 2021, Table 1).
    """

    #: Channels per stage (C1, 2 C1, 4 C1, 8 C1).
    embed_dims: tuple[int, ...] = (64, 128, 256, 512)
    #: Transformer blocks per stage (Twins-SVT-S: 2, 2, 10, 4).
    depths: tuple[int, ...] = (2, 2, 10, 4)
    #: Attention heads per stage (Twins-SVT-S: 2, 4, 8, 16, i.e. 32 channels per head).
    num_heads: tuple[int, ...] = (2, 4, 8, 16)
    #: Attention pattern per stage: "LG", "LL" or "GG".
    encoder_pattern: tuple[str, ...] = ("LG", "LG", "LG", "LG")
    #: LSA sub-window side per stage, in tokens (Twins-SVT: 7).
    windows: tuple[int, ...] = (7, 7, 7, 7)
    #: GSA sub-sampling ratio per stage (Twins-SVT: 8, 4, 2, 1).
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    #: Patch-embedding stride per stage (patch sizes 4, 8, 16, 32).
    patch_strides: tuple[int, ...] = (4, 2, 2, 2)
    #: FFN hidden width as a multiple of the stage width.
    mlp_ratio: float = 4.0
    #: Stochastic depth rate at the deepest encoder block (Twins-SVT-S: 0.2).
    drop_path_rate: float = 0.2
    #: Position encoding: "cpe" (conditional, depth-wise conv) or "abs" (learned absolute).
    pos_encoding: str = "cpe"
    #: Input side (pixels) the learned absolute embedding is defined for (``pos_encoding="abs"``).
    pe_size: int = 512
    #: Decoder: "lgcb" (UNetFormer-style), "lgt" (Transformer), "resnet18" or "resnet50" (CNN).
    decoder: str = "lgcb"
    #: Width of the LGCB decoder (UNetFormer: 64).
    decoder_channels: int = 64
    #: Heads of the LGCB decoder's window attention (UNetFormer: 8).
    decoder_heads: int = 8
    #: Window side of the LGCB decoder's attention (UNetFormer: 8).
    decoder_window: int = 8
    #: Dropout before the classifier.
    head_dropout: float = 0.1
    #: Width of a full-resolution refinement of the logits from the input bands (0: none, the
    #: paper's head: logits at stride 4, upsampled bilinearly). See :class:`FullResolutionRefinement`.
    refine_channels: int = 0

    def __post_init__(self) -> None:
        n = len(self.embed_dims)
        for name in ("depths", "num_heads", "encoder_pattern", "windows", "sr_ratios", "patch_strides"):
            value = getattr(self, name)
            if len(value) != n:
                raise ModelConfigError(f"{name} has {len(value)} entries; it needs one per stage ({n})")
        if n != 4:
            raise ModelConfigError(f"the LGT encoder has 4 stages; embed_dims has {n} entries")
        bad = [p for p in self.encoder_pattern if p not in ENCODER_PATTERNS]
        if bad:
            raise ModelConfigError(f"encoder_pattern entries must be one of {ENCODER_PATTERNS}; got {bad}")
        for dim, heads in zip(self.embed_dims, self.num_heads, strict=True):
            if heads < 1 or dim % heads:
                raise ModelConfigError(f"stage width {dim} is not divisible by its {heads} heads")
        if any(d < 1 for d in self.depths):
            raise ModelConfigError(f"every stage needs at least one block; depths={self.depths}")
        if self.decoder not in DECODERS:
            raise ModelConfigError(f"decoder must be one of {DECODERS}; got {self.decoder!r}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ModelConfigError(f"pos_encoding must be one of {POS_ENCODINGS}; got {self.pos_encoding!r}")
        if self.decoder_channels % self.decoder_heads:
            raise ModelConfigError(
                f"decoder_channels={self.decoder_channels} is not divisible by decoder_heads={self.decoder_heads}"
            )
        if any(s < 1 for s in self.windows + self.sr_ratios + self.patch_strides):
            raise ModelConfigError("windows, sr_ratios and patch_strides must be positive")
        if self.refine_channels < 0:
            raise ModelConfigError(f"refine_channels={self.refine_channels} must be >= 0 (0: no refinement)")

    @property
    def output_stride(self) -> int:
        """Product of the patch-embedding strides (32 for 4, 2, 2, 2)."""
        return math.prod(self.patch_strides)


def stage_kinds(pattern: str, depth: int) -> list[str]:
    """Attention kind ("L" or "G") of each block of a stage: the pattern's letters, cycled."""
    return [pattern[i % len(pattern)] for i in range(depth)]


class PatchEmbed(nn.Module):
    """Strided ``k x k`` conv (k = stride) and LayerNorm; returns channels-last tokens ``(B, H, W, C)``."""

    def __init__(self, cin: int, dim: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, stride, stride=stride)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class LocallyGroupedAttention(nn.Module):
    """LSA: multi-head self-attention inside ``window x window`` sub-windows (channels-last input)."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(window_attention(x, self.qkv, self.heads, self.window))


class GlobalSubsampledAttention(nn.Module):
    """GSA: every token attends to keys/values of a map sub-sampled by ``sr`` (one token per sub-window).

    The sub-sampling is a strided ``sr x sr`` conv followed by LayerNorm (Twins-SVT); ``sr = 1``
    gives full global attention.
    """

    def __init__(self, dim: int, heads: int, sr: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr = sr
        if sr > 1:
            self.reduce = nn.Conv2d(dim, dim, sr, stride=sr)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(b, h * w, self.heads, d).transpose(1, 2)
        if self.sr > 1:
            if h < self.sr or w < self.sr:
                kv_in = x.reshape(b, h * w, c)  # map smaller than one sub-window: attend to all tokens
            else:
                kv_in = self.norm(self.reduce(x.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2))
        else:
            kv_in = x.reshape(b, h * w, c)
        k, v = self.kv(kv_in).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class LGTBlock(nn.Module):
    """Pre-LN Transformer block with LSA (``kind="L"``) or GSA (``kind="G"``) and an FFN."""

    def __init__(self, dim: int, heads: int, kind: str, *, window: int, sr: int, mlp_ratio: float,
                 drop_path: float) -> None:
        super().__init__()
        self.kind = kind
        self.norm1 = nn.LayerNorm(dim)
        self.attn = (
            LocallyGroupedAttention(dim, heads, window) if kind == "L" else GlobalSubsampledAttention(dim, heads, sr)
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConditionalPositionEncoding(nn.Module):
    """CPE / PEG: ``x + DWConv3x3(x)`` on the tokens re-shaped to a map (channels-last in and out)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class LGTStage(nn.Module):
    """A stack of :class:`LGTBlock` with a CPE after the first block (if ``cpe``)."""

    def __init__(self, dim: int, depth: int, heads: int, pattern: str, *, window: int, sr: int,
                 mlp_ratio: float, drop_paths: list[float], cpe: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            LGTBlock(dim, heads, kind, window=window, sr=sr, mlp_ratio=mlp_ratio, drop_path=dp)
            for kind, dp in zip(stage_kinds(pattern, depth), drop_paths, strict=True)
        )
        self.cpe = ConditionalPositionEncoding(dim) if cpe else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == 0 and self.cpe is not None:
                x = self.cpe(x)
        return x


class LGTEncoder(nn.Module):
    """Four-stage LGT encoder; returns the stage outputs ``[(B, C_i, H/s_i, W/s_i)]``, strides 4..32."""

    def __init__(self, in_channels: int, cfg: LGTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dims = tuple(cfg.embed_dims)
        dprs = drop_path_rates(cfg.drop_path_rate, cfg.depths)
        self.embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        cin = in_channels
        for i, dim in enumerate(cfg.embed_dims):
            self.embeds.append(PatchEmbed(cin, dim, cfg.patch_strides[i]))
            self.stages.append(
                LGTStage(dim, cfg.depths[i], cfg.num_heads[i], cfg.encoder_pattern[i], window=cfg.windows[i],
                         sr=cfg.sr_ratios[i], mlp_ratio=cfg.mlp_ratio, drop_paths=dprs[i],
                         cpe=cfg.pos_encoding == "cpe")
            )
            self.norms.append(nn.LayerNorm(dim))
            cin = dim
        if cfg.pos_encoding == "abs":
            self.pos_embeds = nn.ParameterList()
            stride = 1
            for i, dim in enumerate(cfg.embed_dims):
                stride *= cfg.patch_strides[i]
                side = max(cfg.pe_size // stride, 1)
                self.pos_embeds.append(nn.Parameter(torch.zeros(1, dim, side, side)))
        else:
            self.pos_embeds = None
        trunc_normal_init(self)
        if self.pos_embeds is not None:
            for p in self.pos_embeds:
                nn.init.trunc_normal_(p, std=0.02)

    def _abs_pos(self, i: int, h: int, w: int) -> torch.Tensor:
        pe = self.pos_embeds[i]
        if pe.shape[-2:] != (h, w):
            pe = F.interpolate(pe, size=(h, w), mode="bicubic", align_corners=False)
        return pe.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, (embed, stage, norm) in enumerate(zip(self.embeds, self.stages, self.norms, strict=True)):
            t = embed(x)
            if self.pos_embeds is not None:
                t = t + self._abs_pos(i, t.shape[1], t.shape[2])
            t = norm(stage(t))
            x = t.permute(0, 3, 1, 2).contiguous()
            feats.append(x)
        return feats


class LGTSegmenter(GlacierModel):
    """LGT encoder + one of the decoders of Peng et al. (2023) Table 3 (LGCB, LGT, ResNet18/50-style).

    Parameters
    ----------
    cfg
        The configuration (see :class:`LGTConfig`).
    **meta
        ``arch``, ``preset``, ``bands``, ``normalization`` (see :class:`GlacierModel`).
    """

    def __init__(self, cfg: LGTConfig, **meta) -> None:
        from glacierxr.models import decoders

        super().__init__(config=_config_dict(cfg), output_stride=cfg.output_stride, recommended_overlap=64,
                         **meta)
        self.encoder = LGTEncoder(len(self.bands), cfg)
        dims = tuple(cfg.embed_dims)
        if cfg.decoder == "lgcb":
            self.decoder = decoders.LGCBDecoder(dims, channels=cfg.decoder_channels, heads=cfg.decoder_heads,
                                                window=cfg.decoder_window, num_classes=self.num_classes,
                                                head_dropout=cfg.head_dropout)
        elif cfg.decoder == "lgt":
            self.decoder = decoders.LGTDecoder(cfg, num_classes=self.num_classes)
        else:
            self.decoder = decoders.ResNetDecoder(dims, style=cfg.decoder, num_classes=self.num_classes,
                                                  head_dropout=cfg.head_dropout)
        self.refine = FullResolutionRefinement(len(self.bands), cfg.refine_channels, self.num_classes) \
            if cfg.refine_channels else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.encoder(x))
        return logits if self.refine is None else self.refine(x, logits)


class FullResolutionRefinement(nn.Module):
    """Logits refined at full resolution: ``logits + conv(relu(conv([bands, logits])))``.

    The decoders predict at stride 4 and upsample bilinearly, so a boundary can be off by a
    pixel or two; two ``3 x 3`` convs on the input bands next to the upsampled logits put it on
    the pixel where the bands change. The last conv starts at 0: the module begins as the
    identity and the model as the paper's.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels + num_classes, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, num_classes, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.conv2(F.relu(self.conv1(torch.cat([x, logits], dim=1))))


def _config_dict(cfg) -> dict:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
