"""glacierxr: lazy, Dask-native glacier mapping from STAC imagery.

>>> import glacierxr as gx
>>> items = gx.search(url, bbox=(w, s, e, n), datetime="2023-07-15/2023-09-30")   # doctest: +SKIP
>>> cube = gx.open_cube(items, bbox=(w, s, e, n), resolution=10)                  # doctest: +SKIP

The names below are imported on first use (:mod:`glacierxr._lazy`): ``import glacierxr`` loads
xarray (for the ``.glacier`` accessors) but not torch, geopandas, rasterio or pystac.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from glacierxr import accessor, errors  # noqa: F401  (accessor registers .glacier)
from glacierxr._lazy import lazy_namespace
from glacierxr.errors import GlacierxrError

try:
    __version__ = version("glacierxr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

_ATTRIBUTES = {
    "open_cube": "glacierxr.cube", "plan_cube": "glacierxr.cube",
    "to_zarr": "glacierxr.store",
    "evaluate": "glacierxr.evaluate",
    "inventory": "glacierxr.inventory", "compare_inventories": "glacierxr.inventory",
    "read_inventory": "glacierxr.inventory", "write_inventory": "glacierxr.inventory",
    "open_mosaic": "glacierxr.pipeline", "run_inventory": "glacierxr.pipeline",
    "plan_region": "glacierxr.plan",
    "split_glaciers": "glacierxr.divides", "complexes_of": "glacierxr.divides",
    "late_summer": "glacierxr.search", "search": "glacierxr.search",
}
_SUBMODULES = ("cli", "cube", "divides", "geo", "indices", "merge", "models", "pipeline", "plan", "predict", "quicklook",
               "reader", "sensors", "store", "synthetic", "testing", "tiles", "tilework", "tiling", "training",
               "vectorize")

__getattr__, __dir__ = lazy_namespace(__name__, _ATTRIBUTES, _SUBMODULES)

__all__ = ["__version__", "errors", "models", "sensors", "search", "late_summer", "open_cube", "plan_cube", "to_zarr",
           "evaluate", "inventory", "split_glaciers", "complexes_of", "plan_region", "run_inventory", "open_mosaic",
           "compare_inventories",
           "write_inventory", "read_inventory", "GlacierxrError"]
