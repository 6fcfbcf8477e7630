"""glacierxr: lazy, Dask-native glacier mapping from STAC imagery.

>>> import glacierxr as gx
>>> items = gx.search(url, bbox=(w, s, e, n), datetime="2023-07-15/2023-09-30")   # doctest: +SKIP
>>> cube = gx.open_cube(items, bbox=(w, s, e, n), resolution=10)                  # doctest: +SKIP
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glacierxr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

from glacierxr import accessor, errors, models, sensors  # noqa: E402,F401  (accessor registers .glacier)
from glacierxr.cube import open_cube, plan_cube  # noqa: E402
from glacierxr.errors import GlacierxrError  # noqa: E402
from glacierxr.store import to_zarr  # noqa: E402
from glacierxr.evaluate import evaluate  # noqa: E402
from glacierxr.inventory import compare_inventories, inventory, read_inventory, write_inventory  # noqa: E402
from glacierxr.pipeline import open_mosaic, run_inventory  # noqa: E402
from glacierxr.plan import plan_region  # noqa: E402
from glacierxr.search import late_summer, search  # noqa: E402

__all__ = ["__version__", "errors", "models", "sensors", "search", "late_summer", "open_cube", "plan_cube", "to_zarr",
           "evaluate", "inventory", "plan_region", "run_inventory", "open_mosaic", "compare_inventories", "write_inventory", "read_inventory", "GlacierxrError"]
