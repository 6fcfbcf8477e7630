"""Shared model attributes, the input-shape check and the default per-band normalisation.

Every glacierxr model is a :class:`GlacierModel`: a :class:`torch.nn.Module` that maps a batch of
*normalised* bands ``(N, C, H, W)`` to two-class logits ``(N, 2, H, W)`` (class 0 background,
class 1 glacier) and carries what a predictor needs to use it (band names and order, per-band
normalisation, output stride, recommended halo, whether test-time augmentation is advised).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from glacierxr.errors import InputShapeError, ModelConfigError

__all__ = [
    "DEFAULT_NORMALIZATION",
    "GlacierModel",
    "ModelConfigError",
    "NUM_CLASSES",
    "check_input",
    "nearest_multiples",
    "resolve_bands",
    "resolve_normalization",
]

#: Number of output classes of every model: 0 background, 1 glacier.
NUM_CLASSES = 2


_REFLECTANCE = (0.2, 0.2)

#: Default ``(mean, std)`` per cube variable, used for bands the caller gives no statistics for.
#:
#: These are broad priors for glacierised mountain scenes, not statistics of a data set; a model
#: trained on real data should carry the statistics of its training chips (pass
#: ``normalization=`` to :func:`glacierxr.models.create`). Units follow the cube:
#:
#: * Sentinel-2 L2A surface reflectance (scaled to 0-1, offset applied) and the STAC common names:
#:   ``(0.2, 0.2)``: snow and ice reach 0.6-0.9 in the visible, rock and vegetation 0.05-0.3.
#: * SWIR bands (``B11``, ``B12``, ``swir16``, ``swir22``): ``(0.15, 0.15)``: ice and snow are dark
#:   (< 0.1) in the SWIR, rock 0.2-0.35.
#: * Sentinel-1 linear gamma0 (not dB): ``VV`` / ``HH`` ``(0.10, 0.10)`` (about -10 dB), ``VH`` / ``HV``
#:   ``(0.025, 0.03)`` (about -16 dB); wet snow and ice are darker, layover brighter.
#: * Normalised-difference indices in [-1, 1]: ``NDVI`` ``(0.1, 0.3)``, ``NDSI`` ``(0.2, 0.5)``,
#:   ``NDWI`` ``(0.0, 0.3)``.
#: * Terrain: ``elevation`` / ``dem`` in metres ``(4000, 1500)`` (High-Mountain Asia glaciers lie at
#:   3000-6500 m), ``slope`` in degrees ``(25, 15)``.
#:
#: Any other name gets ``(0, 1)`` (no scaling).
DEFAULT_NORMALIZATION: dict[str, tuple[float, float]] = {
    **{b: _REFLECTANCE for b in ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09")},
    **{b: (0.15, 0.15) for b in ("B10", "B11", "B12", "swir16", "swir22")},
    **{
        b: _REFLECTANCE
        for b in ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08",
                  "nir09")
    },
    "VV": (0.10, 0.10),
    "HH": (0.10, 0.10),
    "VH": (0.025, 0.03),
    "HV": (0.025, 0.03),
    "NDVI": (0.1, 0.3),
    "NDSI": (0.2, 0.5),
    "NDWI": (0.0, 0.3),
    "elevation": (4000.0, 1500.0),
    "dem": (4000.0, 1500.0),
    "slope": (25.0, 15.0),
}


def resolve_bands(bands: Sequence[str] | str | None, *, default: Sequence[str] | None, arch: str) -> tuple[str, ...]:
    """Validate a band list and return it as a tuple.

    Parameters
    ----------
    bands
        Cube variable names in the order the model reads them, or ``None`` for the architecture's
        default (only some architectures have one).
    default
        The architecture's default band list, or ``None`` when the caller must give one.
    arch
        Registry name, used in error messages.

    Raises
    ------
    ModelConfigError
        If no bands are given and there is no default, or names are empty, not strings or repeated.
    """
    if bands is None:
        if default is None:
            raise ModelConfigError(
                f"{arch!r} needs `bands`: the cube variables it reads, in order, "
                "e.g. bands=['B02', 'B03', 'B04', 'B08', 'B11']"
            )
        bands = default
    if isinstance(bands, str):
        raise ModelConfigError(f"`bands` must be a list of names, not the string {bands!r}; use [{bands!r}]")
    out = tuple(bands)
    if not out:
        raise ModelConfigError("`bands` is empty; give at least one cube variable name")
    bad = [b for b in out if not isinstance(b, str) or not b]
    if bad:
        raise ModelConfigError(f"band names must be non-empty strings; got {bad!r}")
    dupes = sorted({b for b in out if out.count(b) > 1})
    if dupes:
        raise ModelConfigError(f"band names must be unique; repeated: {dupes}")
    return out


def resolve_normalization(
    bands: Sequence[str], normalization: Mapping[str, Sequence[float]] | None = None
) -> dict[str, tuple[float, float]]:
    """Per-band ``(mean, std)`` for ``bands``: given values first, then :data:`DEFAULT_NORMALIZATION`.

    Parameters
    ----------
    bands
        Band names of the model.
    normalization
        Optional ``{band: (mean, std)}``; bands it leaves out take the default table's value, or
        ``(0, 1)`` for names the table does not know.

    Raises
    ------
    ModelConfigError
        If ``normalization`` names a band not in ``bands`` or a std is not a positive finite number.
    """
    given = dict(normalization or {})
    extra = sorted(set(given) - set(bands))
    if extra:
        raise ModelConfigError(
            f"normalization names bands the model does not read: {extra}; the model's bands are {list(bands)}"
        )
    out: dict[str, tuple[float, float]] = {}
    for band in bands:
        value = given.get(band, DEFAULT_NORMALIZATION.get(band, (0.0, 1.0)))
        try:
            mean, std = (float(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ModelConfigError(f"normalization[{band!r}] must be (mean, std); got {value!r}") from exc
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ModelConfigError(
                f"normalization[{band!r}] = ({mean}, {std}): mean must be finite and std a positive number"
            )
        out[band] = (mean, std)
    return out


def nearest_multiples(n: int, m: int) -> tuple[int, ...]:
    """The multiples of ``m`` just below and above ``n`` (only the upper one when the lower is 0)."""
    lower = (n // m) * m
    upper = lower + m
    return (upper,) if lower == 0 else (lower, upper)


def check_input(x: torch.Tensor, *, bands: Sequence[str], output_stride: int) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is ``(N, len(bands), H, W)`` with H, W multiples of the stride.

    Parameters
    ----------
    x
        The batch given to a model.
    bands
        The model's band names (their number is the expected channel count).
    output_stride
        H and W must be multiples of this.
    """
    if x.ndim != 4:
        raise InputShapeError(
            f"expected a 4-D batch (N, C, H, W); got shape {tuple(x.shape)}. Add a batch axis with x[None]"
        )
    n_ch = x.shape[1]
    if n_ch != len(bands):
        raise InputShapeError(
            f"expected {len(bands)} channels, the bands {list(bands)} in this order; got {n_ch}"
        )
    problems = []
    for axis, size in (("H", x.shape[2]), ("W", x.shape[3])):
        if size == 0 or size % output_stride:
            options = " or ".join(str(v) for v in nearest_multiples(size, output_stride))
            problems.append(f"{axis}={size} is not a multiple of {output_stride}; use {options}")
    if problems:
        raise InputShapeError("; ".join(problems) + " (pad or crop the input; see model.output_stride)")


class GlacierModel(nn.Module):
    """Base class of every glacierxr segmentation model.

    Subclasses build their layers in ``__init__`` (after calling this one) and implement
    :meth:`forward_features`; :meth:`forward` checks the input first.

    Parameters
    ----------
    arch
        Registry name the model was created under.
    preset
        Preset name (``"paper"``, ``"small"``, ``"tiny"``).
    config
        The full configuration (JSON-serialisable) from which :func:`glacierxr.models.create`
        rebuilds the model.
    bands
        Cube variable names the model reads, in channel order.
    normalization
        ``{band: (mean, std)}`` the input was normalised with: ``x = (value - mean) / std``.
    output_stride
        H and W of the input must be multiples of this.
    recommended_overlap
        Pixels of context a sliding-window predictor should add around each window.
    default_tta
        Whether test-time augmentation is advised for this model.
    """

    #: Registry name.
    arch: str
    #: Preset name.
    preset: str
    #: Everything needed to rebuild the model, JSON-serialisable.
    config: dict[str, Any]
    #: Cube variable names, in channel order.
    bands: tuple[str, ...]
    #: Per-band (mean, std) of the input normalisation.
    normalization: dict[str, tuple[float, float]]
    #: Input H and W must be multiples of this.
    output_stride: int
    #: Halo (pixels) a sliding-window predictor should use.

    recommended_overlap: int
    #: Whether the predictor should use test-time augmentation by default.
    default_tta: bool
    #: Number of output classes (background, glacier).
    num_classes: int = NUM_CLASSES

    def __init__(
        self,
        *,
        arch: str,
        preset: str,
        config: Mapping[str, Any],
        bands: Sequence[str],
        normalization: Mapping[str, tuple[float, float]],
        output_stride: int,
        recommended_overlap: int,
        default_tta: bool = False,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.preset = preset
        self.config = _jsonable(dict(config))
        self.bands = tuple(bands)
        self.normalization = {b: (float(m), float(s)) for b, (m, s) in normalization.items()}
        self.output_stride = int(output_stride)
        self.recommended_overlap = int(recommended_overlap)
        self.default_tta = bool(default_tta)
        self.provenance: dict[str, Any] = {}
        #: What the model was trained on: ``sensors``, ``resolution`` (m), ``units`` per band
        #: (:func:`glacierxr.models.inputs.inputs_of`); empty for a model never trained.
        self.inputs: dict[str, Any] = {}

    @property
    def in_channels(self) -> int:
        """Number of input channels (``len(self.bands)``)."""
        return len(self.bands)

    @property
    def tta(self) -> bool:
        """Alias of :attr:`default_tta`."""
        return self.default_tta

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputShapeError` if ``x`` does not fit this model (see :func:`check_input`)."""
        check_input(x, bands=self.bands, output_stride=self.output_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 2, H, W)`` for a batch of normalised bands ``(N, C, H, W)``."""
        self.check_input(x)
        return self.forward_features(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Model body, called by :meth:`forward` after the input check."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, preset={self.preset!r}, bands={list(self.bands)}"


def _jsonable(value: Any) -> Any:
    """Tuples to lists, recursively (so ``config`` equals its JSON round trip)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
