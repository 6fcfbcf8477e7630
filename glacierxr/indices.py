"""Spectral indices used for glacier mapping, computed lazily on a datacube.

NDVI = (B08 - B04) / (B08 + B04); NDSI = (B03 - B11) / (B03 + B11) (Dozier 1989);
NDWI = (B03 - B08) / (B03 + B08) (McFeeters 1996); the band ratio red / SWIR = B04 / B11
(Paul et al. 2002). Each is NaN where its denominator is zero or a band is missing.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["normalized_difference", "band_ratio", "add_indices", "INDICES"]

#: Index name -> (first band, second band) of the normalised difference (a - b) / (a + b).
INDICES = {"NDVI": ("B08", "B04"), "NDSI": ("B03", "B11"), "NDWI": ("B03", "B08")}


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = np.add(a, b, dtype=np.float32)
    out = np.full(total.shape, np.nan, np.float32)
    return np.divide(np.subtract(a, b, dtype=np.float32), total, out=out, where=total != 0)


def _ratio(red: np.ndarray, swir: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast_shapes(red.shape, swir.shape), np.nan, np.float32)
    return np.divide(red, swir, out=out, where=swir > 0, dtype=np.float32)


def _elementwise(func, *arrays: xr.DataArray) -> xr.DataArray:
    """``func`` on NumPy blocks: one task per chunk instead of one per xarray operation."""
    return xr.apply_ufunc(func, *arrays, dask="parallelized", output_dtypes=[np.float32])


def normalized_difference(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """``(a - b) / (a + b)`` as float32, NaN where ``a + b`` is zero."""
    return _elementwise(_nd, a, b)


def band_ratio(red: xr.DataArray, swir: xr.DataArray) -> xr.DataArray:
    """The red / SWIR ratio of glacier inventories as float32, NaN where SWIR is not positive."""
    return _elementwise(_ratio, red, swir)


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
