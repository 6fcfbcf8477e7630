"""The band-ratio method: the classic, non-learned way glacier inventories are made, as a model.

Clean and slightly dirty ice and snow are bright in the red and dark in the short-wave infrared, so
the ratio red / SWIR (Landsat TM3/TM5, Sentinel-2 B04/B11) above a threshold maps them. Paul et al.
(2002, Ann. Glaciol. 34) used TM3/TM5 with a threshold of about 2.0; Paul et al. (2015, Remote Sens.
Environ. 162, the Glaciers_cci guidelines) and Raup et al. (2007, Global Planet. Change 56, GLIMS)
recommend red/SWIR ratios with thresholds near 2 (chosen per scene, typically 1.8-2.6). Two optional
tests refine it:

* NDSI = (green - SWIR) / (green + SWIR) above ``ndsi_threshold`` (0.4 is the usual snow/ice value,
  Hall et al. 1995), which removes some bright rock;
* water exclusion: NDWI (McFeeters 1996) = (green - NIR) / (green + NIR) above ``ndwi_threshold``
  marks water, which the ratio alone maps as ice (its SWIR is near zero). 0.4 keeps blue ice
  (NDWI about 0.1-0.35) on the ice side.

Debris-covered ice is not mapped by any of these tests (a known limit of the method).

The model un-normalises its input with its own :attr:`normalization` (so it runs through the same
predictor as the learned models), evaluates every enabled test as a signed margin, takes the
smallest (a soft AND) and returns logits ``(-z/2, z/2)``: a softmax gives ``sigmoid(z)``, 0.5 exactly
at a threshold. It has no trainable parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from glacierxr.errors import MissingBandError
from glacierxr.models.base import GlacierModel, ModelConfigError

__all__ = ["BandRatio", "BandRatioConfig"]


@dataclass(frozen=True)
class BandRatioConfig:
    """Thresholds and band names of :class:`BandRatio`."""

    #: Cube variable holding red reflectance.
    red_band: str = "B04"
    #: Cube variable holding SWIR (about 1.6 um) reflectance.
    swir_band: str = "B11"
    #: Cube variable holding green reflectance (NDSI, NDWI).
    green_band: str = "B03"
    #: Cube variable holding NIR reflectance (NDWI).
    nir_band: str = "B08"
    #: Glacier if red / SWIR is above this (Paul et al. 2002: about 2.0).
    ratio_threshold: float = 2.0
    #: Glacier only if NDSI is above this (when the NDSI test is on).
    ndsi_threshold: float = 0.4
    #: Not glacier if NDWI is above this (when the water test is on).
    ndwi_threshold: float = 0.4
    #: NDSI test: True, False, or None to use it when the green band is among the model's bands.
    use_ndsi: bool | None = None
    #: Water test: True, False, or None to use it when the green and NIR bands are among the bands.
    use_ndwi: bool | None = None
    #: Logit per unit of ratio above the threshold (10: ratio 2.3 -> p = 0.95).
    ratio_sharpness: float = 10.0
    #: Logit per unit of NDSI/NDWI margin (20: 0.15 above the threshold -> p = 0.95).
    index_sharpness: float = 20.0
    #: Logits are clipped to +-this.
    max_logit: float = 30.0

    def __post_init__(self) -> None:
        if self.ratio_threshold <= 0 or self.ratio_sharpness <= 0 or self.index_sharpness <= 0 or self.max_logit <= 0:
            raise ModelConfigError("ratio_threshold, ratio_sharpness, index_sharpness and max_logit must be positive")


class BandRatio(GlacierModel):
    """Red/SWIR band-ratio glacier mapping with optional NDSI and NDWI tests (see module docstring)."""

    def __init__(self, cfg: BandRatioConfig, **meta) -> None:
        super().__init__(config={f.name: getattr(cfg, f.name) for f in fields(cfg)}, output_stride=1,
                         recommended_overlap=0, **meta)
        self.cfg = cfg
        index = {b: i for i, b in enumerate(self.bands)}
        for role in ("red_band", "swir_band"):
            name = getattr(cfg, role)
            if name not in index:
                raise MissingBandError(
                    f"band-ratio needs the {role.split('_')[0]} band {name!r} among its bands {list(self.bands)}; "
                    f"add it to `bands` or pass {role}= with the cube variable that holds it"
                )
        self.use_ndsi = cfg.green_band in index if cfg.use_ndsi is None else bool(cfg.use_ndsi)
        if cfg.use_ndwi is None:
            self.use_ndwi = cfg.green_band in index and cfg.nir_band in index
        else:
            self.use_ndwi = bool(cfg.use_ndwi)
        needed = [cfg.green_band] if self.use_ndsi or self.use_ndwi else []
        if self.use_ndwi:
            needed.append(cfg.nir_band)
        missing = [b for b in needed if b not in index]
        if missing:
            raise MissingBandError(
                f"band-ratio's NDSI/NDWI tests need {missing} among its bands {list(self.bands)}; add them or "
                "pass use_ndsi=False / use_ndwi=False"
            )
        self._index = index
        mean = torch.tensor([self.normalization[b][0] for b in self.bands], dtype=torch.float32)
        std = torch.tensor([self.normalization[b][1] for b in self.bands], dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def _band(self, raw: torch.Tensor, name: str) -> torch.Tensor:
        return raw[:, self._index[name]]

    def glacier_score(self, x: torch.Tensor) -> torch.Tensor:
        """The glacier logit ``z`` ``(N, H, W)`` for normalised input ``x``."""
        cfg = self.cfg
        raw = x * self.std.to(x.dtype) + self.mean.to(x.dtype)
        red = self._band(raw, cfg.red_band)
        swir = self._band(raw, cfg.swir_band)
        tiny = torch.finfo(x.dtype).tiny
        ratio = red / swir.clamp(min=1e-4)
        z = cfg.ratio_sharpness * (ratio - cfg.ratio_threshold)
        if self.use_ndsi or self.use_ndwi:
            green = self._band(raw, cfg.green_band)
        if self.use_ndsi:
            ndsi = (green - swir) / (green + swir).abs().clamp(min=tiny)
            z = torch.minimum(z, cfg.index_sharpness * (ndsi - cfg.ndsi_threshold))
        if self.use_ndwi:
            nir = self._band(raw, cfg.nir_band)
            ndwi = (green - nir) / (green + nir).abs().clamp(min=tiny)
            z = torch.minimum(z, cfg.index_sharpness * (cfg.ndwi_threshold - ndwi))
        return z.clamp(-cfg.max_logit, cfg.max_logit)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        z = self.glacier_score(x)
        return torch.stack([-0.5 * z, 0.5 * z], dim=1)
