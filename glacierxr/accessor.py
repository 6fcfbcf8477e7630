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

    def outlines(self, *, threshold: float = 0.5, min_area_km2: float = 0.05, simplify: float | None = None,
                 min_hole_km2: float = 0.01, labels: bool = False, dem: xr.DataArray | None = None):
        """Glacier polygons, stitched across chunks; see :func:`glacierxr.vectorize.outlines`."""
        from glacierxr.vectorize import outlines

        return outlines(self._obj, threshold=threshold, min_area_km2=min_area_km2, simplify=simplify,
                        min_hole_km2=min_hole_km2, labels=labels, dem=dem)

    def evaluate(self, reference, *, threshold: float = 0.5, objects: bool = True) -> dict:
        """Pixel and object accuracy against reference outlines; see :func:`glacierxr.evaluate.evaluate`."""
        from glacierxr.evaluate import evaluate

        return evaluate(self._obj, reference, threshold=threshold, objects=objects)
