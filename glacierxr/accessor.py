"""The ``.glacier`` accessors on xarray objects: stateless, forwarding to the modules."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

__all__ = ["GlacierDatasetAccessor", "GlacierDataArrayAccessor"]


@xr.register_dataset_accessor("glacier")
class GlacierDatasetAccessor:
    """``cube.glacier``: glacier mapping on a datacube."""

    def __init__(self, obj: xr.Dataset) -> None:
        self._obj = obj

    def predict(self, model, **kwargs) -> xr.DataArray:
        """Glacier probability, lazily; see :func:`glacierxr.predict.predict` for the options."""
        from glacierxr.predict import predict

        return predict(self._obj, model, **kwargs)


@xr.register_dataarray_accessor("glacier")
class GlacierDataArrayAccessor:
    """``prob.glacier``: outputs of a glacier probability (or mask) raster."""

    def __init__(self, obj: xr.DataArray) -> None:
        self._obj = obj

    def to_zarr(self, store: str | Path, *, mode: str = "w-", dtype: str = "float32") -> Path:
        """Write to Zarr v3, resumably; see :func:`glacierxr.store.to_zarr`."""
        from glacierxr.store import to_zarr

        return to_zarr(self._obj, store, mode=mode, dtype=dtype)
