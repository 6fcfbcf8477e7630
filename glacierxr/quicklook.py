"""Quicklook PNGs of a datacube: a true-colour composite, downsampled lazily, outlines optional."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from glacierxr.errors import MissingBandError

__all__ = ["quicklook"]


def quicklook(
    ds: xr.Dataset,
    path: str | Path,
    *,
    bands: Sequence[str] = ("B04", "B03", "B02"),
    max_size: int = 1024,
    gamma: float = 1.6,
    outlines=None,
) -> Path:
    """Write an RGB PNG of ``ds`` no larger than ``max_size`` pixels a side.

    The cube is block-averaged (lazily, with Dask) before anything is read, so a quicklook
    of a large region reads every pixel once and holds only the small image in memory.
    Reflectance 0..1 is mapped to 0..255 with a ``1/gamma`` power so that snow and shaded
    rock are both readable; missing data is black.

    Parameters
    ----------
    ds
        Datacube with the three ``bands``.
    path
        Output PNG path.
    bands
        Red, green and blue variables.
    max_size
        Longest side of the image in pixels.
    gamma
        Display gamma.
    outlines
        Optional GeoDataFrame of polygons (any CRS) drawn in yellow.
    """
    from PIL import Image, ImageDraw

    missing = [b for b in bands if b not in ds]
    if missing:
        raise MissingBandError(f"quicklook needs bands {list(bands)}; the dataset lacks {missing}.")
    factor = max(1, math.ceil(max(ds.sizes["y"], ds.sizes["x"]) / max_size))
    rgb = ds[list(bands)].to_array("band")
    if factor > 1:
        rgb = rgb.coarsen(y=factor, x=factor, boundary="trim").mean()
    values = np.asarray(rgb.values, dtype=np.float64)
    img = np.nan_to_num(np.clip(values, 0, 1) ** (1 / gamma) * 255, nan=0).astype(np.uint8)
    image = Image.fromarray(np.moveaxis(img, 0, -1), "RGB")
    if outlines is not None and len(outlines):
        _draw(ImageDraw.Draw(image), outlines.to_crs(ds.rio.crs), rgb)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    return out


def _draw(draw, outlines, rgb: xr.DataArray) -> None:
    x0, y0 = float(rgb.x[0]), float(rgb.y[0])
    dx = float(rgb.x[1] - rgb.x[0]) if rgb.sizes["x"] > 1 else 1.0
    dy = float(rgb.y[1] - rgb.y[0]) if rgb.sizes["y"] > 1 else -1.0
    for geom in outlines.geometry:
        for poly in getattr(geom, "geoms", [geom]):
            for ring in [poly.exterior, *poly.interiors]:
                xs, ys = np.asarray(ring.coords).T
                pts = list(zip((xs - x0) / dx + 0.5, (ys - y0) / dy + 0.5, strict=True))
                draw.line(pts, fill=(255, 220, 0), width=1)
