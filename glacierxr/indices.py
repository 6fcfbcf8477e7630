"""Spectral indices used for glacier mapping, computed lazily on a datacube.

NDVI = (B08 - B04) / (B08 + B04); NDSI = (B03 - B11) / (B03 + B11) (Dozier 1989);
NDWI = (B03 - B08) / (B03 + B08) (McFeeters 1996); the band ratio red / SWIR = B04 / B11
(Paul et al. 2002). Each is NaN where its denominator is zero or a band is missing.
"""

from __future__ import annotations

import xarray as xr

__all__ = ["normalized_difference", "band_ratio", "add_indices", "INDICES"]

#: Index name -> (first band, second band) of the normalised difference (a - b) / (a + b).
INDICES = {"NDVI": ("B08", "B04"), "NDSI": ("B03", "B11"), "NDWI": ("B03", "B08")}


def normalized_difference(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """``(a - b) / (a + b)``, NaN where ``a + b`` is zero."""
    total = a + b
    return ((a - b) / total.where(total != 0)).astype("float32")


def band_ratio(red: xr.DataArray, swir: xr.DataArray) -> xr.DataArray:
    """The red / SWIR ratio of glacier inventories, NaN where SWIR is not positive."""
    return (red / swir.where(swir > 0)).astype("float32")


def add_indices(ds: xr.Dataset) -> xr.Dataset:
    """Add NDVI, NDSI and NDWI to a dataset that has their bands (skipping any that lack one)."""
    new = {
        name: normalized_difference(ds[a], ds[b]).rename(name)
        for name, (a, b) in INDICES.items()
        if a in ds and b in ds
    }
    for name in new:
        new[name].attrs = {"long_name": name, "units": "1"}
    return ds.assign(new)
